// Package cloudsfor drives CloudsFor VM actions (/api/v1/vms/{id}/actions)
// over HTTP Basic auth. CloudsFor has no Go client, so the few calls are
// written by hand with provider.Send.
//
// A CloudsFor action object's id is the VM's id, so an action is known by
// its VM, its type and its started_at: Status and Lookup find it again in
// the VM's action list, StatusBatch in the account's.
package cloudsfor

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/nodeaction/nodeaction-operator/api/v1alpha1"
	"github.com/nodeaction/nodeaction-operator/internal/provider"
)

// RequestsPerMinute is a conservative guess: CloudsFor publishes no limit.
const RequestsPerMinute = 120

const (
	// perPage and maxPages bound how much action history one call reads.
	perPage  = 50
	maxPages = 20
	// listLag is how long after its start an action may still be missing
	// from the VM's action list: the seed says an action can be read from
	// the lists, not that it shows there at once.
	listLag = 2 * time.Minute
)

// vmID: the seed shows 32 hex characters; allow letters, digits and dashes.
var vmID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]{0,63}$`)

// Driver is the CloudsFor driver.
type Driver struct {
	client    *http.Client
	base      string // endpoint up to, not including, /api/v1
	userAgent string
	now       func() time.Time
	// lookupLag is how late the list may show an accepted action, as a
	// lookup allows for (listLag unless the Config says).
	lookupLag time.Duration
}

var _ provider.Driver = (*Driver)(nil)

// New builds a driver from the Secret keys `username` and `password` and the
// Provider's spec.endpoint (CloudsFor has no single public endpoint).
func New(cfg provider.Config) (provider.Driver, error) {
	user := strings.TrimSpace(string(cfg.Credentials["username"]))
	// Only a trailing newline (a Secret made from a file) is trimmed: spaces
	// may belong to the password.
	pass := strings.TrimRight(string(cfg.Credentials["password"]), "\r\n")
	var missing []string
	if user == "" {
		missing = append(missing, `"username" (the CloudsFor account user)`)
	}
	if pass == "" {
		missing = append(missing, `"password" (the CloudsFor account password)`)
	}
	if len(missing) > 0 {
		return nil, provider.NewTerminal(provider.CredentialsError,
			"the credentials Secret has no key "+strings.Join(missing, " and no key "))
	}
	if cfg.Endpoint == "" {
		return nil, provider.NewTerminal(provider.InvalidConfig,
			"spec.endpoint is required for CloudsFor (its API base URL, e.g. https://cloudsfor.com)")
	}
	if err := provider.CheckEndpoint(cfg.Endpoint); err != nil {
		return nil, err
	}
	if u, _ := url.Parse(cfg.Endpoint); u.User != nil || u.RawQuery != "" {
		return nil, provider.NewTerminal(provider.InvalidConfig,
			"spec.endpoint must not carry credentials or a query; put username and password in the credentials Secret")
	}
	// Accept the endpoint with or without the API prefix.
	base := strings.TrimSuffix(strings.TrimSuffix(cfg.Endpoint, "/"), "/api/v1")
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
	hc := provider.WithHeaders(cfg.HTTPClient, func(h http.Header) { h.Set("Authorization", auth) })
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	return &Driver{client: hc, base: base, userAgent: cfg.UserAgent, now: now, lookupLag: cfg.LagOr(listLag)}, nil
}

// Capabilities: every VM action the seed documents. The portable names are
// all native here.
func (d *Driver) Capabilities() provider.Capabilities {
	return capabilities
}

var capabilities = provider.Capabilities{
	HardPowerOff: "power_off",
	Actions: map[string]provider.ActionInfo{
		"reboot":         {Repeatable: true, RestartsGuest: true},
		"power_cycle":    {Repeatable: true, RestartsGuest: true},
		"shutdown":       {Repeatable: true, Idempotent: true},
		"power_off":      {Repeatable: true, Idempotent: true},
		"power_on":       {Repeatable: true, Idempotent: true, RestartsGuest: true},
		"rename":         {Repeatable: true, Idempotent: true},
		"password_reset": {},
		"resize":         {},
		"snapshot":       {},
	},
}

// Probe reads one entry of the account's action list: one cheap
// authenticated GET (CloudsFor documents no account endpoint).
func (d *Driver) Probe(ctx context.Context) error {
	resp, err := d.send(ctx, http.MethodGet, globalActionsPath+"?page=1&per_page=1", nil)
	if err != nil {
		return err
	}
	if resp.StatusCode == http.StatusNotFound {
		return provider.NewTerminal(provider.InvalidConfig,
			"spec.endpoint does not serve the CloudsFor API: GET /api/v1/actions answered 404")
	}
	if resp.StatusCode/100 != 2 {
		return apiError(resp, http.MethodGet, "")
	}
	return nil
}

// Validate checks the VM id and the parameters the action needs.
func (d *Driver) Validate(req provider.Request) error {
	if !vmID.MatchString(req.NodeID) {
		return provider.NewTerminal(provider.InvalidNodeID,
			fmt.Sprintf("CloudsFor VM ids are letters, digits and dashes (such as 5609f1ee1b0c4d2da622737b5ca25e6c); %q is not one", req.NodeID))
	}
	if _, ok := capabilities.Actions[req.Action]; !ok {
		return provider.NewTerminal(provider.UnsupportedAction,
			fmt.Sprintf("CloudsFor has no action %q; it supports: %s", req.Action, strings.Join(capabilities.Names(), ", ")))
	}
	p := req.Parameters
	invalid := func(msg string) error { return provider.NewTerminal(provider.InvalidParameters, msg) }
	switch req.Action {
	case "rename":
		if p.Name == "" {
			return invalid("rename needs spec.parameters.name (the new name)")
		}
	case "snapshot":
		if p.Name == "" {
			return invalid("CloudsFor snapshot needs spec.parameters.name (the name of the image to create)")
		}
	case "resize":
		const how = "CloudsFor resize takes spec.parameters.resource (ram, disk or cpu) with spec.parameters.amount, or spec.parameters.resources (cpu, ram, disk)"
		switch {
		case p.Size != "" || p.Disk != nil:
			return invalid(how + "; spec.parameters.size and disk are DigitalOcean parameters")
		case p.Resource != "" && p.Resources != nil:
			return invalid(how + ", not both")
		case p.Resources != nil:
			r := p.Resources
			if len(sizes(r)) == 0 {
				return invalid("spec.parameters.resources needs at least one of cpu, ram, disk")
			}
			for _, s := range sizes(r) {
				if s.value < 1 {
					return invalid(fmt.Sprintf("spec.parameters.resources.%s must be at least 1", s.name))
				}
			}
		case p.Resource != "":
			if p.Resource != "ram" && p.Resource != "disk" && p.Resource != "cpu" {
				return invalid(fmt.Sprintf("spec.parameters.resource must be ram, disk or cpu, not %q", p.Resource))
			}
			if p.Amount == nil || *p.Amount < 1 {
				return invalid("spec.parameters.resource needs spec.parameters.amount (GB for ram and disk, a count for cpu), at least 1")
			}
		default:
			return invalid(how)
		}
	}
	return nil
}

// body is the POST body of an action.
func body(req provider.Request) map[string]any {
	p := req.Parameters
	b := map[string]any{"type": req.Action}
	switch req.Action {
	case "rename", "snapshot":
		b["name"] = p.Name
	case "resize":
		if p.Resources == nil {
			b["resource"], b["size"] = p.Resource, *p.Amount
			break
		}
		data := map[string]int32{}
		for _, s := range sizes(p.Resources) {
			data[s.name] = s.value
		}
		b["data"] = data
	}
	return b
}

type size struct {
	name  string
	value int32
}

// sizes lists the resources set, in the wire's key names.
func sizes(r *v1alpha1.ResourceSizes) []size {
	var out []size
	for _, s := range []struct {
		name string
		v    *int32
	}{{"cpu", r.CPU}, {"ram", r.RAM}, {"disk", r.Disk}} {
		if s.v != nil {
			out = append(out, size{s.name, *s.v})
		}
	}
	return out
}

// action is a CloudsFor VM actions object. Its id is the VM's id (which
// tells VMs apart in the account's list): the type and started_at tell a
// VM's actions apart.
type action struct {
	ID          string  `json:"id"`
	Status      string  `json:"status"`
	Type        string  `json:"type"`
	StartedAt   string  `json:"started_at"`
	CompletedAt *string `json:"completed_at"`
}

const (
	statusInProgress = "in-progress"
	statusCompleted  = "completed"
	statusErrored    = "errored"
)

// Submit posts the action: exactly one request.
func (d *Driver) Submit(ctx context.Context, req provider.Request) (provider.Submission, error) {
	if err := d.Validate(req); err != nil {
		return provider.Submission{}, err
	}
	resp, err := d.send(ctx, http.MethodPost, actionsPath(req.NodeID), body(req))
	if err != nil {
		return provider.Submission{}, err
	}
	if resp.StatusCode/100 != 2 {
		return provider.Submission{}, apiError(resp, http.MethodPost, req.NodeID)
	}
	var out struct {
		Action action `json:"action"`
	}
	if err := provider.Decode(resp, &out); err != nil {
		return provider.Submission{}, err
	}
	a := out.Action
	started, ok := parseTime(a.StartedAt)
	if !ok {
		// Without started_at the action cannot be told from others of its
		// type: look it up in the VM's history instead.
		return provider.Submission{}, provider.NewAmbiguous(
			fmt.Sprintf("CloudsFor accepted the %s but its answer has no readable started_at (%q)", req.Action, a.StartedAt))
	}
	sub := provider.Submission{Request: req, ActionID: actionID(req.NodeID, started), StartedAt: started}
	switch {
	case a.Status == statusErrored:
		st := failed(a, started)
		sub.Done = &st
	case a.Status == statusCompleted && !needsReadBack(req.Action):
		st := completed(a, started)
		sub.Done = &st
	}
	return sub, nil
}

// actionID names an action for people and for Status after a restart: the
// VM id and the start time, since CloudsFor gives no action id.
func actionID(node string, started time.Time) string {
	return node + "@" + started.UTC().Format(time.RFC3339Nano)
}

// startedOf is the submission's start time. The action id comes first: it
// is what status keeps, at full precision (a StartedAt that went through a
// metav1.Time would have lost its fraction of a second).
func startedOf(sub provider.Submission) (time.Time, bool) {
	if node, at, ok := strings.Cut(sub.ActionID, "@"); ok && node == sub.NodeID {
		if t, ok := parseTime(at); ok {
			return t, true
		}
	}
	return sub.StartedAt, !sub.StartedAt.IsZero()
}

// Status finds the action in the VM's action list by type and started_at,
// and for actions whose effect the VM shows (power state, name) reads the VM
// back before calling it done.
func (d *Driver) Status(ctx context.Context, sub provider.Submission) (provider.ActionStatus, error) {
	if err := d.Validate(sub.Request); err != nil {
		return provider.ActionStatus{}, err
	}
	started, ok := startedOf(sub)
	if !ok {
		return provider.ActionStatus{}, provider.NewTerminal(provider.ActionFailed,
			fmt.Sprintf("action id %q does not say when the CloudsFor action started, so it cannot be found", sub.ActionID))
	}
	matches, err := d.matching(ctx, sub.NodeID, sub.Action, started)
	if err != nil {
		return provider.ActionStatus{}, err
	}
	if len(matches) == 0 {
		at := started.UTC().Format(time.RFC3339Nano)
		if d.now().Sub(started) < listLag {
			return provider.ActionStatus{State: provider.StateInProgress,
				Message: fmt.Sprintf("CloudsFor accepted the %s action started at %s and does not list it on VM %s yet", sub.Action, at, sub.NodeID)}, nil
		}
		return provider.ActionStatus{}, provider.NewTerminal(provider.ActionFailed,
			fmt.Sprintf("CloudsFor no longer lists the %s action started at %s on VM %s", sub.Action, at, sub.NodeID))
	}
	return d.statusOf(ctx, sub, started, matches)
}

// statusOf judges a submission from the listed actions that match it (at
// least one: what a missing action means depends on which list was read),
// reading the VM back where its state shows the action's effect.
func (d *Driver) statusOf(ctx context.Context, sub provider.Submission, started time.Time, matches []action) (provider.ActionStatus, error) {
	var nCompleted, nErrored int
	running := ""
	for _, a := range matches {
		switch a.Status {
		case statusCompleted:
			nCompleted++
		case statusErrored:
			nErrored++
		default:
			// in-progress, or a status the seed does not name: not done.
			running = a.Status
		}
	}
	at := started.UTC().Format(time.RFC3339Nano)
	switch {
	case nCompleted+nErrored < len(matches):
		return provider.ActionStatus{State: provider.StateInProgress,
			Message: fmt.Sprintf("CloudsFor reports the %s action started at %s %s", sub.Action, at, running)}, nil
	case nErrored == len(matches):
		return failed(matches[0], started), nil
	case nErrored > 0:
		// started_at is all that tells actions apart; when several of one
		// type share it and ended differently, success cannot be proven.
		return provider.ActionStatus{State: provider.StateFailed, Class: provider.ActionFailed,
			Message: fmt.Sprintf("CloudsFor lists %d %s actions started at %s on VM %s: %d completed and %d errored; its API cannot show which one this was",
				len(matches), sub.Action, at, sub.NodeID, nCompleted, nErrored)}, nil
	}
	done := completed(matches[0], started)
	if !needsReadBack(sub.Action) {
		return done, nil
	}
	vm, err := d.vm(ctx, sub.NodeID)
	if err != nil {
		return provider.ActionStatus{}, err
	}
	if agrees, want := readBackAgrees(sub, vm); !agrees {
		return provider.ActionStatus{State: provider.StateInProgress, Class: provider.Verifying,
			Message: fmt.Sprintf("CloudsFor reports %s completed, but the VM is %s, not %s yet", sub.Action, describe(vm, sub.Action), want)}, nil
	}
	done.Message += " and the VM shows it"
	return done, nil
}

func completed(a action, started time.Time) provider.ActionStatus {
	end, _ := parseTime(deref(a.CompletedAt))
	return provider.ActionStatus{State: provider.StateSucceeded, Class: provider.Completed, CompletedAt: end,
		Message: fmt.Sprintf("CloudsFor reports the %s action started at %s completed", a.Type, started.UTC().Format(time.RFC3339Nano))}
}

func failed(a action, started time.Time) provider.ActionStatus {
	end, _ := parseTime(deref(a.CompletedAt))
	return provider.ActionStatus{State: provider.StateFailed, Class: provider.ActionFailed, CompletedAt: end,
		Message: fmt.Sprintf("CloudsFor reports the %s action started at %s errored (the API gives no reason)", a.Type, started.UTC().Format(time.RFC3339Nano))}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// matching returns the VM's actions of type typ that started at started.
// The seed documents no order for the list, so all of it is read (up to
// maxPages; a longer history is read as far as that).
func (d *Driver) matching(ctx context.Context, node, typ string, started time.Time) ([]action, error) {
	var out []action
	err := d.eachAction(ctx, node, func(a action, at time.Time, ok bool) bool {
		if ok && a.Type == typ && sameStart(at, started) {
			out = append(out, a)
		}
		return true
	})
	if errors.Is(err, errTooLong) {
		err = nil
	}
	return out, err
}

// sameStart compares start times at the coarser precision of the two, in
// case the list gives whole seconds where the POST answer gave fractions.
func sameStart(a, b time.Time) bool {
	if a.Nanosecond() == 0 || b.Nanosecond() == 0 {
		return a.Truncate(time.Second).Equal(b.Truncate(time.Second))
	}
	return a.Equal(b)
}

// Lookup reads the VM's action history for actions of the request's type
// started in the window. The seed documents no order for the list, so all
// of it is read (up to maxPages).
func (d *Driver) Lookup(ctx context.Context, req provider.Request, w provider.Window) (provider.Found, error) {
	if err := d.Validate(req); err != nil {
		return provider.Found{}, err
	}
	found := provider.Found{Complete: true}
	err := d.eachAction(ctx, req.NodeID, func(a action, at time.Time, ok bool) bool {
		switch {
		case a.Type != req.Action:
		case !ok:
			// An action of this type that cannot be dated might be the lost one.
			found.Complete = false
			found.Why = fmt.Sprintf("CloudsFor lists a %s action on VM %s whose started_at (%q) cannot be read", a.Type, req.NodeID, a.StartedAt)
		case w.Contains(at):
			found.Candidates = append(found.Candidates, provider.Submission{Request: req, ActionID: actionID(req.NodeID, at), StartedAt: at})
		}
		return true
	})
	if errors.Is(err, errTooLong) {
		found.Complete = false
		found.Why = fmt.Sprintf("VM %s has more than %d actions in its history; only those were read", req.NodeID, maxPages*perPage)
		err = nil
	}
	if err != nil {
		return provider.Found{}, err
	}
	// Status allows an accepted action listLag to show in the list: until
	// then, a list without the submission's action proves nothing, even one
	// that lists other NodeActions' actions in the window.
	found.SettlesAt = w.To.Add(d.lookupLag)
	return found, nil
}

// errTooLong: the history is longer than maxPages pages.
var errTooLong = errors.New("action history too long")

// eachAction pages through the VM's action list until visit returns false
// or the list ends. ok is false when an action's started_at cannot be read.
// A list longer than maxPages pages ends with errTooLong.
func (d *Driver) eachAction(ctx context.Context, node string, visit func(a action, started time.Time, ok bool) bool) error {
	for page := 1; page <= maxPages; page++ {
		list, err := d.listPage(ctx, actionsPath(node), node, page, perPage)
		if err != nil {
			return err
		}
		for _, a := range list.Actions {
			at, ok := parseTime(a.StartedAt)
			if !visit(a, at, ok) {
				return nil
			}
		}
		if !list.more(page, perPage) {
			return nil
		}
	}
	return errTooLong
}

// actionList is one page of an action list, paginated as DigitalOcean's
// (PROVIDERS.md): page and per_page, links.pages, meta.total.
type actionList struct {
	Actions []action `json:"actions"`
	Links   struct {
		Pages map[string]string `json:"pages"`
	} `json:"links"`
	Meta struct {
		Total int `json:"total"`
	} `json:"meta"`
}

// listPage reads one page of the action list at path; node names the VM
// for error messages ("" for the account's list).
func (d *Driver) listPage(ctx context.Context, path, node string, page, size int) (actionList, error) {
	resp, err := d.send(ctx, http.MethodGet, fmt.Sprintf("%s?page=%d&per_page=%d", path, page, size), nil)
	if err != nil {
		return actionList{}, err
	}
	if resp.StatusCode/100 != 2 {
		return actionList{}, apiError(resp, http.MethodGet, node)
	}
	var list actionList
	if err := provider.Decode(resp, &list); err != nil {
		return actionList{}, err
	}
	return list, nil
}

// more tells whether pages follow page. The next page's link is not
// followed (it could name another host); its presence, or meta.total,
// says there is more.
func (l actionList) more(page, size int) bool {
	return len(l.Actions) > 0 && (l.Links.Pages["next"] != "" || l.Meta.Total > page*size)
}

// lastPage is the number of the list's last page from its links, 0 when
// they do not say.
func (l actionList) lastPage() int {
	u, err := url.Parse(l.Links.Pages["last"])
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(u.Query().Get("page"))
	return n
}

// vmState is what the VM read-back needs.
type vmState struct {
	Name   string `json:"name"`
	Status string `json:"status"`
}

func (d *Driver) vm(ctx context.Context, node string) (vmState, error) {
	resp, err := d.send(ctx, http.MethodGet, "/api/v1/vms/"+url.PathEscape(node), nil)
	if err != nil {
		return vmState{}, err
	}
	if resp.StatusCode/100 != 2 {
		return vmState{}, apiError(resp, http.MethodGet, node)
	}
	var out struct {
		VM vmState `json:"vm"`
	}
	if err := provider.Decode(resp, &out); err != nil {
		return vmState{}, err
	}
	return out.VM, nil
}

func needsReadBack(action string) bool {
	switch action {
	case "power_on", "power_off", "shutdown", "rename":
		return true
	}
	return false
}

// readBackAgrees tells whether the VM shows the action's effect, and what it
// should show.
func readBackAgrees(sub provider.Submission, vm vmState) (bool, string) {
	switch sub.Action {
	case "power_on":
		return vm.Status == "running", "running"
	case "power_off", "shutdown":
		return vm.Status == "stopped", "stopped"
	case "rename":
		return vm.Name == sub.Parameters.Name, fmt.Sprintf("named %q", sub.Parameters.Name)
	}
	return true, ""
}

func describe(vm vmState, action string) string {
	if action == "rename" {
		return fmt.Sprintf("named %q", vm.Name)
	}
	return vm.Status
}

func actionsPath(node string) string {
	return "/api/v1/vms/" + url.PathEscape(node) + "/actions"
}

func (d *Driver) send(ctx context.Context, method, path string, in any) (*provider.Response, error) {
	h := http.Header{}
	if d.userAgent != "" {
		h.Set("User-Agent", d.userAgent)
	}
	return provider.Send(ctx, d.client, method, d.base+path, h, in)
}

// apiError reads a CloudsFor error answer ({"id": ..., "message": ...}).
// A 422 refusing the action because another one is pending is worth
// waiting for; other 422s are the provider rejecting the request.
func apiError(resp *provider.Response, method, node string) *provider.Error {
	var body struct {
		Message string `json:"message"`
	}
	_ = json.Unmarshal(resp.Body, &body)
	msg := provider.Redact(strings.TrimSpace(body.Message))
	e := provider.StatusError(resp.StatusCode, resp.Header, method, msg)
	switch {
	case resp.StatusCode == http.StatusUnprocessableEntity && busy(msg):
		e.Kind, e.Class = provider.Retryable, provider.Busy
	case e.Class == provider.AuthFailed:
		e.Message += " (check the username and password keys of the credentials Secret)"
	case e.Class == provider.NodeNotFound && node != "":
		e.Message = fmt.Sprintf("CloudsFor has no VM %q: %s", node, e.Message)
	}
	return e
}

func busy(msg string) bool {
	m := strings.ToLower(msg)
	return strings.Contains(m, "pending") || strings.Contains(m, "in progress") || strings.Contains(m, "in-progress")
}

// parseTime reads an ISO 8601 time, with or without fractional seconds; a
// time without a zone is taken as UTC.
func parseTime(s string) (time.Time, bool) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}
