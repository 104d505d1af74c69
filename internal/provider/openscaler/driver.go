// Package openscaler drives OpenScaler VM actions (POST /v1/vms/{id}/actions).
//
// The API is synchronous and keeps no action objects or history: an empty
// 2xx means the call did its work, and the VM's libvirt state
// (GET /v1/vms/{id}?only=state) is the only thing that shows an effect
// afterwards. A graceful shutdown waits for the guest and answers 408 (or
// 500) when the guest takes longer than the API's timeout, although the VM
// may still go down: the driver then watches the state instead of failing or
// calling again. It does the same when its own request timeout runs out
// first, which a long guest shutdown makes likely.
package openscaler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/nodeaction/nodeaction-operator/api/v1alpha1"
	"github.com/nodeaction/nodeaction-operator/internal/provider"
)

// DefaultEndpoint is OpenScaler's public API.
const DefaultEndpoint = "https://api.alpha.openscaler.net"

// RequestsPerMinute is a conservative guess: OpenScaler publishes no limit.
const RequestsPerMinute = 120

// VM ids are letters, digits and dashes (the documented example is 23).
var vmID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]{0,127}$`)

// targetState is the libvirt state each idempotent action leaves the VM in.
// reboot and reset leave it running, as it was, so the state proves nothing.
var targetState = map[string]string{
	"start":     "running",
	"shutdown":  "shutoff",
	"power_off": "shutoff",
}

var capabilities = provider.Capabilities{
	HardPowerOff: "power_off",
	Actions: map[string]provider.ActionInfo{
		"start":     {Repeatable: true, Idempotent: true, RestartsGuest: true},
		"shutdown":  {Repeatable: true, Idempotent: true},
		"power_off": {Repeatable: true, Idempotent: true},
		"reboot":    {Repeatable: true, RestartsGuest: true},
		"reset":     {Repeatable: true, RestartsGuest: true},
	},
	Portable: map[string]provider.Native{
		"power_on":    {Action: "start"},
		"shutdown":    {Action: "shutdown"},
		"power_off":   {Action: "power_off"},
		"reboot":      {Action: "reboot"},
		"power_cycle": {Action: "reset"},
	},
}

// Driver is the OpenScaler driver.
type Driver struct {
	client *http.Client
	base   string
	header http.Header
	now    func() time.Time
	// syncGrace is how long a synchronous call that reached OpenScaler may
	// still run there after the client gave up on it.
	syncGrace time.Duration
}

var (
	_ provider.Driver        = (*Driver)(nil)
	_ provider.BatchStatuser = (*Driver)(nil)
)

// New builds a driver from the Secret key `token`.
func New(cfg provider.Config) (provider.Driver, error) {
	token := strings.TrimSpace(string(cfg.Credentials["token"]))
	if token == "" {
		return nil, provider.NewTerminal(provider.CredentialsError, `the credentials Secret has no key "token" (an OpenScaler access token)`)
	}
	endpoint := cfg.Endpoint
	if endpoint == "" {
		endpoint = DefaultEndpoint
	}
	if err := provider.CheckEndpoint(endpoint); err != nil {
		return nil, err
	}
	h := http.Header{}
	h.Set("Authorization", "Bearer "+token)
	if cfg.UserAgent != "" {
		h.Set("User-Agent", cfg.UserAgent)
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	return &Driver{client: cfg.HTTPClient, base: strings.TrimSuffix(endpoint, "/"), header: h, now: now, syncGrace: cfg.LagOr(syncGrace)}, nil
}

// Capabilities: the five documented actions.
func (d *Driver) Capabilities() provider.Capabilities { return capabilities }

// Probe lists VMs: a cheap authenticated GET (GET /v1/vms is assumed; the
// seed documents only the actions endpoint and the VM read).
func (d *Driver) Probe(ctx context.Context) error {
	resp, err := provider.Send(ctx, d.client, http.MethodGet, d.base+"/v1/vms", d.header, nil)
	if err != nil {
		return err
	}
	if success(resp) {
		return nil
	}
	e := statusError(resp, http.MethodGet)
	if e.StatusCode == http.StatusNotFound {
		e.Kind, e.Class = provider.Terminal, provider.InvalidConfig
		e.Message = "the endpoint has no OpenScaler API at /v1/vms: " + e.Message
	}
	return e
}

// Validate checks the VM id and that no parameter is set: no OpenScaler
// action takes one, and silently ignoring one would mislead.
func (d *Driver) Validate(req provider.Request) error {
	if !vmID.MatchString(req.NodeID) {
		return provider.NewTerminal(provider.InvalidNodeID,
			fmt.Sprintf("OpenScaler VM ids are letters, digits and dashes; %q is not one", req.NodeID))
	}
	if _, ok := capabilities.Actions[req.Action]; !ok {
		return provider.NewTerminal(provider.UnsupportedAction,
			fmt.Sprintf("OpenScaler has no action %q; it supports: %s", req.Action, strings.Join(capabilities.Names(), ", ")))
	}
	if f := setParameter(req.Parameters); f != "" {
		return provider.NewTerminal(provider.InvalidParameters,
			fmt.Sprintf("OpenScaler's %s takes no parameters; remove spec.parameters.%s", req.Action, f))
	}
	return nil
}

// setParameter names the first parameter that is set, by its JSON name.
func setParameter(p v1alpha1.ActionParameters) string {
	v := reflect.ValueOf(p)
	for i := range v.NumField() {
		if !v.Field(i).IsZero() {
			name, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("json"), ",")
			return name
		}
	}
	return ""
}

// Submit posts the action: exactly one POST, then (for a 2xx or a refusal)
// at most one read of the VM's state, which never repeats the action.
func (d *Driver) Submit(ctx context.Context, req provider.Request) (provider.Submission, error) {
	if err := d.Validate(req); err != nil {
		return provider.Submission{}, err
	}
	sub := provider.Submission{Request: req, StartedAt: time.Now()}
	body := struct {
		Type string `json:"type"`
	}{req.Action}
	resp, err := provider.Send(ctx, d.client, http.MethodPost, d.vmURL(req.NodeID)+"/actions", d.header, body)
	if err != nil {
		if req.Action == "shutdown" && provider.IsKind(err, provider.Ambiguous) && errors.Is(err, context.DeadlineExceeded) {
			// The request was sent and our timeout ran out while OpenScaler
			// was still waiting for the guest: the same as its 408, only
			// sooner. Status watches the state; calling again could only
			// duplicate the shutdown.
			return sub, nil
		}
		return provider.Submission{}, err
	}
	code := resp.StatusCode
	switch {
	case success(resp):
		sub.Done = d.proven(ctx, req)
		return sub, nil
	case req.Action == "shutdown" && (code == http.StatusRequestTimeout || code == http.StatusInternalServerError):
		// Documented: the API gave up waiting for the guest, which may still
		// be shutting down. Not a failure and no reason to call again:
		// Status watches the state until it is shutoff.
		return sub, nil
	}
	e := statusError(resp, http.MethodPost)
	if refusal(code) {
		// An action refused because the VM is already where it would put
		// it changed nothing, and that is success.
		if want, idempotent := targetState[req.Action]; idempotent {
			if state, err := d.state(ctx, req.NodeID); err == nil && state == want {
				sub.Done = &provider.ActionStatus{State: provider.StateSucceeded, Class: provider.AlreadyInState, CompletedAt: time.Now(),
					Message: fmt.Sprintf("OpenScaler refused %s (%s) and VM %s is already %s", req.Action, e.Message, req.NodeID, want)}
				return sub, nil
			}
		}
	}
	if code == http.StatusUnprocessableEntity {
		// The synchronous call ran against the VM and did not do it; the VM
		// was left as it was.
		e.Kind, e.Class = provider.Terminal, provider.ActionFailed
		e.Message = fmt.Sprintf("OpenScaler did not %s VM %s: %s", req.Action, req.NodeID, e.Message)
	}
	return provider.Submission{}, e
}

// proven says how a 2xx ended: reboot and reset cannot be seen afterwards;
// the others are done when one read of the state shows it. nil leaves it to
// Status.
func (d *Driver) proven(ctx context.Context, req provider.Request) *provider.ActionStatus {
	if _, idempotent := targetState[req.Action]; !idempotent {
		st := unverified(req)
		return &st
	}
	st, err := d.readBack(ctx, req)
	if err != nil || st.State != provider.StateSucceeded {
		return nil
	}
	return &st
}

// Status reads the VM's state back; there is no action object to read.
func (d *Driver) Status(ctx context.Context, sub provider.Submission) (provider.ActionStatus, error) {
	if st, known, err := d.settled(sub); known {
		return st, err
	}
	return d.readBack(ctx, sub.Request)
}

// settled is Status's answer where no read is needed: an action already
// done, an invalid request, or one whose effect the state cannot show.
// known is false when the VM's state must be read and judged.
func (d *Driver) settled(sub provider.Submission) (st provider.ActionStatus, known bool, err error) {
	if sub.Done != nil {
		return *sub.Done, true, nil
	}
	if err := d.Validate(sub.Request); err != nil {
		return provider.ActionStatus{}, true, err
	}
	if _, idempotent := targetState[sub.Action]; !idempotent {
		return unverified(sub.Request), true, nil
	}
	return provider.ActionStatus{}, false, nil
}

func (d *Driver) readBack(ctx context.Context, req provider.Request) (provider.ActionStatus, error) {
	state, err := d.state(ctx, req.NodeID)
	if err != nil {
		return provider.ActionStatus{}, err
	}
	return judge(req, state), nil
}

// judge tells what the VM's state says about an idempotent action: done
// once the VM is in the action's target state, in progress until then.
func judge(req provider.Request, state string) provider.ActionStatus {
	want := targetState[req.Action]
	if state == want {
		return provider.ActionStatus{State: provider.StateSucceeded, Class: provider.Completed, CompletedAt: time.Now(),
			Message: fmt.Sprintf("VM %s is %s after OpenScaler's %s call", req.NodeID, state, req.Action)}
	}
	if req.Action == "shutdown" {
		return provider.ActionStatus{State: provider.StateInProgress, Class: provider.InProgress,
			Message: fmt.Sprintf("VM %s is %s, not shutoff yet. OpenScaler's shutdown waits for the guest and gives up (408 or 500, or past the operator's request timeout) "+
				"while the guest may still shut down; the operator is watching the VM state until it is shutoff", req.NodeID, state)}
	}
	return provider.ActionStatus{State: provider.StateInProgress, Class: provider.Verifying,
		Message: fmt.Sprintf("OpenScaler answered the %s call but VM %s is %s, not %s yet", req.Action, req.NodeID, state, want)}
}

// The VM list (GET /v1/vms, assumed as Probe assumes it; fakecloud gives it
// DigitalOcean's list shape) is read this many VMs a page, the most it
// serves, and at most this many pages a sweep (10,000 VMs: the list is the
// account's VMs, not a history, so reading it whole is what a large fleet
// costs, and still no more than reading each VM wanted alone).
const (
	listPageSize = 200
	maxListPages = 50
)

// StatusBatch reads the states of many VMs from the VM list and judges each
// submission as Status does. Nothing documents the list's order, so it reads
// pages until every wanted VM is found or the list ends, and never more
// pages than there are VMs to find (one read each would cost no more) or
// maxListPages. A VM the walk did not see, or saw twice, is left to the
// caller's own read.
func (d *Driver) StatusBatch(ctx context.Context, subs []provider.Submission) ([]provider.ActionStatus, error) {
	out := make([]provider.ActionStatus, len(subs))
	want := map[string][]int{} // VM id → indexes in subs; several may name one VM
	for i, s := range subs {
		st, known, err := d.settled(s)
		switch {
		case err != nil:
			// Left out: its own Status reports the error.
		case known:
			out[i] = st
		default:
			want[s.NodeID] = append(want[s.NodeID], i)
		}
	}
	state := map[string]string{} // wanted VM id → its listed state
	seen := map[string]int{}     // wanted VM id → how often listed
	for page := 1; len(seen) < len(want) && page <= min(len(want), maxListPages); page++ {
		vms, more, err := d.listVMs(ctx, page)
		if err != nil {
			return nil, err
		}
		for _, vm := range vms {
			id := vm.id()
			if _, ok := want[id]; ok {
				state[id] = vm.State
				seen[id]++
			}
		}
		if !more {
			break
		}
	}
	for id, is := range want {
		// Listed twice (the list shifted between pages, or VMs 23 and 023
		// both listed as 23): which record is this VM's is not known.
		if seen[id] != 1 || state[id] == "" {
			continue
		}
		for _, i := range is {
			out[i] = judge(subs[i].Request, state[id])
		}
	}
	return out, nil
}

// listedVM is one VM of the list with the fields a sweep reads.
type listedVM struct {
	ID    json.RawMessage `json:"id"`
	State string          `json:"state"`
}

// id is the VM's id as the driver names it: a string, or a number for a
// numeric id (the seed's example is VM 23). Anything else matches nothing.
func (v listedVM) id() string {
	var s string
	if json.Unmarshal(v.ID, &s) == nil {
		return s
	}
	if n := string(v.ID); plainNumber.MatchString(n) {
		return n
	}
	return ""
}

// plainNumber is a JSON integer as the list writes a numeric id. It has no
// leading zeros: VM 023, listed as 23, never matches and is read alone.
var plainNumber = regexp.MustCompile(`^(0|[1-9][0-9]*)$`)

// listVMs reads one page of the VM list; more says whether a later page
// holds more.
func (d *Driver) listVMs(ctx context.Context, page int) (vms []listedVM, more bool, err error) {
	q := url.Values{"page": {strconv.Itoa(page)}, "per_page": {strconv.Itoa(listPageSize)}}
	resp, err := provider.Send(ctx, d.client, http.MethodGet, d.base+"/v1/vms?"+q.Encode(), d.header, nil)
	if err != nil {
		return nil, false, err
	}
	if !success(resp) {
		return nil, false, statusError(resp, http.MethodGet)
	}
	var list struct {
		VMs   []listedVM `json:"vms"`
		Links struct {
			Pages struct {
				Next string `json:"next"`
			} `json:"pages"`
		} `json:"links"`
		Meta struct {
			Total int `json:"total"`
		} `json:"meta"`
	}
	if err := provider.Decode(resp, &list); err != nil {
		return nil, false, err
	}
	more = len(list.VMs) > 0 && (list.Links.Pages.Next != "" || list.Meta.Total > page*listPageSize)
	return list.VMs, more, nil
}

func unverified(req provider.Request) provider.ActionStatus {
	how := "a reset leaves the VM running before and after"
	if req.Action == "reboot" {
		how = "a reboot is a signal the guest may ignore, and the VM is running before and after"
	}
	return provider.ActionStatus{State: provider.StateSucceeded, Class: provider.Unverified, CompletedAt: time.Now(),
		Message: fmt.Sprintf("OpenScaler accepted the %s of VM %s; %s, so the API cannot show that it took effect", req.Action, req.NodeID, how)}
}

// Lookup recovers a submission whose answer was lost. OpenScaler keeps no
// action history, so only the VM's state can tell, and only for actions
// that leave a state of their own. The API is synchronous: a start or
// power_off it ran has changed the state before it answered, so once the
// request can no longer land and one that landed has had syncGrace to
// finish at the server, a VM not in that state did not get it. A graceful
// shutdown may still be waiting for the guest: a VM not yet shutoff proves
// nothing.
func (d *Driver) Lookup(ctx context.Context, req provider.Request, w provider.Window) (provider.Found, error) {
	if err := d.Validate(req); err != nil {
		return provider.Found{}, err
	}
	want, idempotent := targetState[req.Action]
	if !idempotent {
		return provider.Found{}, provider.ErrSubmissionUnknown(fmt.Sprintf(
			"OpenScaler keeps no action history and VM %s is running whether or not the lost %s ran: whether it was received cannot be known", req.NodeID, req.Action))
	}
	state, err := d.state(ctx, req.NodeID)
	if err != nil {
		return provider.Found{}, err
	}
	if state == want {
		return provider.Found{Complete: true, Candidates: []provider.Submission{{Request: req, StartedAt: w.From, Done: &provider.ActionStatus{
			State: provider.StateSucceeded, Class: provider.Completed, CompletedAt: time.Now(),
			Message: fmt.Sprintf("VM %s is %s, as the %s leaves it; OpenScaler keeps no action history, so the operator adopts the state", req.NodeID, state, req.Action),
		}}}}, nil
	}
	if req.Action == "shutdown" {
		return provider.Found{Why: fmt.Sprintf(
			"OpenScaler keeps no action history and VM %s is %s, not %s: a graceful shutdown may still be waiting for the guest, or may never have been received", req.NodeID, state, want)}, nil
	}
	if wait := w.To.Add(d.syncGrace).Sub(d.now()); wait > 0 {
		return provider.Found{}, provider.NewRetryable(provider.Unavailable, fmt.Sprintf(
			"VM %s is %s, not %s: a %s that reached OpenScaler after the operator stopped waiting may still be running there; looking again until %s after it could last land",
			req.NodeID, state, want, req.Action, d.syncGrace), min(wait, 5*time.Second))
	}
	return provider.Found{Complete: true}, nil
}

// syncGrace is how long a synchronous call that reached OpenScaler may
// still run there after the client gave up on it, unless the Config says
// (the documents give no figure; a start or a forced power_off takes
// seconds).
const syncGrace = time.Minute

// state reads the VM's libvirt state.
func (d *Driver) state(ctx context.Context, id string) (string, error) {
	resp, err := provider.Send(ctx, d.client, http.MethodGet, d.vmURL(id)+"?only=state", d.header, nil)
	if err != nil {
		return "", err
	}
	if !success(resp) {
		return "", statusError(resp, http.MethodGet)
	}
	var vm struct {
		State string `json:"state"`
	}
	if err := provider.Decode(resp, &vm); err != nil {
		return "", err
	}
	if vm.State == "" {
		return "", &provider.Error{Kind: provider.Retryable, Class: provider.Unavailable, StatusCode: resp.StatusCode,
			Message: fmt.Sprintf("OpenScaler's answer for VM %s has no state", id)}
	}
	return vm.State, nil
}

func (d *Driver) vmURL(id string) string {
	return d.base + "/v1/vms/" + url.PathEscape(id)
}

func success(r *provider.Response) bool { return r.StatusCode >= 200 && r.StatusCode < 300 }

// refusal is a 4xx that says the provider would not run the action, as
// opposed to credentials, an unknown VM, a timeout or a rate limit.
func refusal(code int) bool {
	switch code {
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound, http.StatusRequestTimeout, http.StatusTooManyRequests:
		return false
	}
	return code >= 400 && code < 500
}

// statusError classifies an error answer, carrying OpenScaler's own words.
func statusError(r *provider.Response, method string) *provider.Error {
	return provider.StatusError(r.StatusCode, r.Header, method, message(r.Body))
}

// message reads the error body. Its format is not documented: take the
// usual keys of a JSON error, else the start of the text.
func message(body []byte) string {
	var m map[string]any
	if json.Unmarshal(body, &m) == nil {
		for _, k := range []string{"message", "detail", "error", "error_description"} {
			if s, ok := m[k].(string); ok && s != "" {
				return provider.Redact(s)
			}
		}
	}
	s := []rune(strings.TrimSpace(string(body)))
	if len(s) > 200 {
		s = append(s[:200], []rune("...")...)
	}
	return provider.Redact(string(s))
}
