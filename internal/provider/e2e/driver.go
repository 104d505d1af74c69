// Package e2e drives E2E Networks MyAccount node actions
// (PUT /api/v1/nodes/{node_id}/actions/). No Go client library exists for
// this API, so the driver is written by hand on provider.Send.
//
// E2E keeps no action object and no action history: completion is read back
// from the node, and a lost submission can only be resolved, for idempotent
// actions, by the node's state.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nodeaction/nodeaction-operator/internal/provider"
)

// DefaultEndpoint is E2E Networks' public MyAccount API.
const DefaultEndpoint = "https://api.e2enetworks.com/myaccount"

// RequestsPerMinute is a conservative budget: E2E publishes no limit.
const RequestsPerMinute = 120

var nodeID = regexp.MustCompile(`^[1-9][0-9]{0,18}$`)

// Node statuses that mean the node is off (E2E spells it several ways).
var offStatuses = map[string]bool{"Powered off": true, "Powered Off": true, "Stopped": true}

const (
	statusRunning = "Running"
	statusFailed  = "Failed"
)

// Driver is the E2E Networks driver.
type Driver struct {
	client *http.Client
	nodes  string     // base URL of /api/v1/nodes/
	query  url.Values // apikey, location, project_id
	// secrets are scrubbed from any provider text we quote.
	secrets []string
	now     func() time.Time
	// recordsLag, when set (Config.RecordsLag), replaces the lookup's
	// wait for a node to show an accepted action.
	recordsLag time.Duration
}

var (
	_ provider.Driver        = (*Driver)(nil)
	_ provider.BatchStatuser = (*Driver)(nil)
)

// New builds a driver from the Secret keys `apiKey` and `token`,
// spec.location (required) and spec.project (optional).
func New(cfg provider.Config) (provider.Driver, error) {
	apiKey := strings.TrimSpace(string(cfg.Credentials["apiKey"]))
	if apiKey == "" {
		return nil, provider.NewTerminal(provider.CredentialsError, `the credentials Secret has no key "apiKey" (the E2E Networks API key)`)
	}
	token := strings.TrimSpace(string(cfg.Credentials["token"]))
	if token == "" {
		return nil, provider.NewTerminal(provider.CredentialsError, `the credentials Secret has no key "token" (the E2E Networks API token)`)
	}
	if strings.TrimSpace(cfg.Location) == "" {
		return nil, provider.NewTerminal(provider.InvalidConfig, "spec.location (the E2E Networks region, e.g. Delhi) is required for type e2e")
	}
	endpoint := cfg.Endpoint
	if endpoint == "" {
		endpoint = DefaultEndpoint
	}
	if err := provider.CheckEndpoint(endpoint); err != nil {
		return nil, err
	}
	// The API key travels in the query: an endpoint with its own query
	// would mix with it.
	if u, _ := url.Parse(endpoint); u.RawQuery != "" || u.Fragment != "" {
		return nil, provider.NewTerminal(provider.InvalidConfig, "spec.endpoint must not carry a query or fragment")
	}
	q := url.Values{}
	q.Set("apikey", apiKey)
	q.Set("location", strings.TrimSpace(cfg.Location))
	if p := strings.TrimSpace(cfg.Project); p != "" {
		q.Set("project_id", p)
	}
	hc := provider.WithHeaders(cfg.HTTPClient, func(h http.Header) {
		h.Set("Authorization", "Bearer "+token)
		if cfg.UserAgent != "" {
			h.Set("User-Agent", cfg.UserAgent)
		}
	})
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	return &Driver{
		client:     hc,
		nodes:      strings.TrimSuffix(endpoint, "/") + "/api/v1/nodes/",
		query:      q,
		secrets:    []string{apiKey, token},
		now:        now,
		recordsLag: cfg.RecordsLag,
	}, nil
}

// Capabilities: the 14 node actions E2E documents. E2E has no hard power
// off and no power cycle, so those portable names do not resolve (the
// native power_off, graceful, wins over the portable one).
func (d *Driver) Capabilities() provider.Capabilities { return capabilities }

var capabilities = provider.Capabilities{
	Actions: map[string]provider.ActionInfo{
		"power_off":                     {Repeatable: true, Idempotent: true},
		"power_on":                      {Repeatable: true, Idempotent: true, RestartsGuest: true},
		"reboot":                        {Repeatable: true, RestartsGuest: true},
		"reinstall":                     {RestartsGuest: true},
		"save_images":                   {},
		"rename":                        {Repeatable: true, Idempotent: true},
		"lock_vm":                       {Repeatable: true, Idempotent: true},
		"unlock_vm":                     {Repeatable: true, Idempotent: true},
		"enable_recovery_mode":          {Repeatable: true},
		"disable_recovery_mode":         {Repeatable: true},
		"enable_accidental_protection":  {Repeatable: true},
		"disable_accidental_protection": {Repeatable: true},
		"enable_node_compliance":        {Repeatable: true},
		"disable_node_compliance":       {Repeatable: true},
	},
	Portable: map[string]provider.Native{
		"power_on": {Action: "power_on"},
		"shutdown": {Action: "power_off"},
		"reboot":   {Action: "reboot"},
		"rename":   {Action: "rename"},
		"snapshot": {Action: "save_images"},
	},
}

// unverifiable actions leave nothing on the node to read back.
func unverifiable(action string) bool {
	switch action {
	case "enable_recovery_mode", "disable_recovery_mode",
		"enable_accidental_protection", "disable_accidental_protection",
		"enable_node_compliance", "disable_node_compliance":
		return true
	}
	return false
}

// Probe lists nodes: one cheap authenticated GET. (The seed documents only
// node actions; GET /api/v1/nodes/ is the public API's node list.)
func (d *Driver) Probe(ctx context.Context) error {
	_, err := d.call(ctx, http.MethodGet, "", nil)
	return err
}

// Validate checks the node id and the name save_images and rename need.
func (d *Driver) Validate(req provider.Request) error {
	if err := validNode(req.NodeID); err != nil {
		return err
	}
	if _, ok := capabilities.Actions[req.Action]; !ok {
		return provider.NewTerminal(provider.UnsupportedAction,
			fmt.Sprintf("E2E Networks has no action %q; it supports: %s", req.Action, strings.Join(capabilities.Names(), ", ")))
	}
	if req.Action != "save_images" && req.Action != "rename" {
		return nil
	}
	name := req.Parameters.Name
	invalid := func(msg string) error {
		return provider.NewTerminal(provider.InvalidParameters, req.Action+" needs spec.parameters.name "+msg)
	}
	switch {
	case name == "":
		return invalid("(the new name)")
	case utf8.RuneCountInString(name) > 255:
		return invalid("of at most 255 characters")
	case strings.TrimSpace(name) != name:
		return invalid("without leading or trailing whitespace")
	}
	return nil
}

func validNode(id string) error {
	if !nodeID.MatchString(id) {
		return provider.NewTerminal(provider.InvalidNodeID,
			fmt.Sprintf("E2E Networks node ids are positive integers; %q is not one", id))
	}
	return nil
}

// actionBody is what the actions endpoint takes; name only where needed.
type actionBody struct {
	Type string `json:"type"`
	Name string `json:"name,omitempty"`
}

// actionData is the part of an accepted action's "data" the driver keeps.
// Its status ("done", "In Progress") only says the request was accepted, so
// it is not read.
type actionData struct {
	CreatedAt string      `json:"created_at"`
	ID        json.Number `json:"id"`
}

// Submit PUTs the action: exactly one request.
func (d *Driver) Submit(ctx context.Context, req provider.Request) (provider.Submission, error) {
	if err := d.Validate(req); err != nil {
		return provider.Submission{}, err
	}
	body := actionBody{Type: req.Action}
	if req.Action == "save_images" || req.Action == "rename" {
		body.Name = req.Parameters.Name
	}
	data, err := d.call(ctx, http.MethodPut, req.NodeID+"/actions/", body)
	if err != nil {
		pe := provider.AsError(err)
		msg := strings.ToLower(pe.Message)
		switch {
		case refusal(pe) && strings.Contains(msg, "already in state"):
			return provider.Submission{Request: req, StartedAt: time.Now(), Done: &provider.ActionStatus{
				State: provider.StateSucceeded, Class: provider.AlreadyInState, CompletedAt: time.Now(),
				Message: "E2E Networks changed nothing: " + pe.Message}}, nil
		case refusal(pe) && strings.Contains(msg, "locked"):
			// An administrative lock does not go away by waiting, whatever
			// status code carries it.
			pe.Kind, pe.Class = provider.Terminal, provider.Rejected
			pe.Message = "the node is locked (run unlock_vm first): " + pe.Message
		}
		return provider.Submission{}, pe
	}
	// HTTP 200 with code 200 is acceptance; data only adds the id and time.
	var a actionData
	_ = json.Unmarshal(data, &a)
	sub := provider.Submission{Request: req, ActionID: a.ID.String(), StartedAt: d.now()}
	if t, err := time.Parse(time.RFC3339, a.CreatedAt); err == nil {
		sub.StartedAt = t
	}
	if unverifiable(req.Action) {
		sub.Done = &provider.ActionStatus{State: provider.StateSucceeded, Class: provider.Unverified, CompletedAt: time.Now(),
			Message: fmt.Sprintf("E2E Networks accepted %s; the node shows nothing to verify it by", req.Action)}
	}
	return sub, nil
}

// refusal tells a 4xx about the node's state from auth, unknown node and
// quota answers, whose readings stand.
func refusal(pe *provider.Error) bool {
	switch pe.StatusCode {
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound, http.StatusTooManyRequests:
		return false
	}
	return pe.StatusCode >= 400 && pe.StatusCode < 500
}

// node is the part of GET node's data (and of a list entry) the driver
// reads.
type node struct {
	ID       json.Number `json:"id"`
	Name     string      `json:"name"`
	Status   string      `json:"status"`
	IsLocked bool        `json:"is_locked"`
}

func (d *Driver) getNode(ctx context.Context, id string) (node, error) {
	var n node
	data, err := d.call(ctx, http.MethodGet, id+"/", nil)
	if err != nil {
		return n, err
	}
	if err := json.Unmarshal(data, &n); err != nil || n.Status == "" {
		// A read changed nothing: read again.
		return n, provider.NewRetryable(provider.Unavailable, fmt.Sprintf("cannot read node %s from E2E Networks' answer", id), 0)
	}
	return n, nil
}

// maxListPages caps a sweep's walk of the node list (200 nodes a page): an
// account with more nodes has the rest read one by one. The list is the
// account's nodes, not a history, so its length is the fleet's; a sweep
// also never reads more pages than there are nodes to find.
const maxListPages = 50

// StatusBatch reads the node list, 200 nodes a page, and judges each
// submission by its node's entry as Status judges a node read alone. The
// list's order is not documented (by node id in practice), so it reads from
// the first page until every node is found, the last page is read, or the
// cap. Unverifiable actions need no read; a node not found, listed twice,
// or listed without a status is left to the caller.
func (d *Driver) StatusBatch(ctx context.Context, subs []provider.Submission) ([]provider.ActionStatus, error) {
	out := make([]provider.ActionStatus, len(subs))
	want := map[string]bool{} // node ids to find
	for i, sub := range subs {
		switch {
		case validNode(sub.NodeID) != nil:
			// Status answers it with its error.
		case unverifiable(sub.Action):
			out[i] = unverifiedStatus(sub)
		default:
			want[sub.NodeID] = true
		}
	}
	found := map[string]node{}
	twice := map[string]bool{}
	// More pages than nodes wanted would cost more than reading each alone.
	limit := min(maxListPages, len(want))
	for page := 1; page <= limit && len(found) < len(want); page++ {
		nodes, last, err := d.listNodes(ctx, page)
		if err != nil {
			return nil, err
		}
		for _, n := range nodes {
			id := n.ID.String()
			if !want[id] {
				continue
			}
			if _, seen := found[id]; seen {
				// The list moved between pages, or lists a node twice:
				// which entry is current cannot be told.
				twice[id] = true
			}
			found[id] = n
		}
		if last {
			break
		}
	}
	for i, sub := range subs {
		if n, ok := found[sub.NodeID]; ok && !twice[sub.NodeID] && out[i].State == "" {
			out[i] = d.statusOf(sub, n)
		}
	}
	return out, nil
}

// listNodes reads one page of GET /api/v1/nodes/ and says whether it is the
// last. Entries that do not parse, or carry no status (a read getNode would
// retry), are left out.
func (d *Driver) listNodes(ctx context.Context, page int) ([]node, bool, error) {
	env, err := d.request(ctx, http.MethodGet, "", url.Values{"page_no": {strconv.Itoa(page)}, "per_page": {"200"}}, nil)
	if err != nil {
		return nil, false, err
	}
	var entries []json.RawMessage
	if err := json.Unmarshal(env.Data, &entries); err != nil {
		// A read changed nothing: read again.
		return nil, false, provider.NewRetryable(provider.Unavailable, "cannot read the node list from E2E Networks' answer", 0)
	}
	nodes := make([]node, 0, len(entries))
	for _, raw := range entries {
		var n node
		if json.Unmarshal(raw, &n) == nil && n.Status != "" && n.ID != "" {
			nodes = append(nodes, n)
		}
	}
	// total_page_number says where the list ends; without it, an empty page
	// does (a short page may only mean E2E pages by fewer than asked).
	var pages int
	_ = json.Unmarshal(env.TotalPageNumber, &pages)
	last := len(entries) == 0 || (pages > 0 && page >= pages)
	return nodes, last, nil
}

// workflowWindow is how long after E2E accepted an action whose effect the
// node does not show (it is as steady before as after) its workflow must
// have begun: E2E answers "done" on acceptance and runs the workflow later
// (seed 000). Seen begin and end, the action is proven; not seen within
// the window, it is accepted but unverified.
var workflowWindow = map[string]time.Duration{
	"reboot":      2 * time.Minute,
	"reinstall":   10 * time.Minute,
	"save_images": 10 * time.Minute,
}

// effectWindow is how long an action whose end state the node shows (power,
// rename, lock) may take to show it before it counts as failed.
const effectWindow = 10 * time.Minute

// progressLeft is kept (Submission.Progress) once the node was seen
// leaving its steady state for the action's workflow.
const progressLeft = "left:"

// steady tells a node at rest (running or off) from one in a workflow.
func steady(status string) bool { return status == statusRunning || offStatuses[status] }

// Status reads the node back. It says Completed only where the node shows
// the action's effect: for power, rename and lock actions their end state;
// for reboot, reinstall and save_images the node seen leaving its steady
// state and coming back, since it looks the same before and after them.
func (d *Driver) Status(ctx context.Context, sub provider.Submission) (provider.ActionStatus, error) {
	if err := validNode(sub.NodeID); err != nil {
		return provider.ActionStatus{}, err
	}
	if unverifiable(sub.Action) {
		return unverifiedStatus(sub), nil
	}
	n, err := d.getNode(ctx, sub.NodeID)
	if err != nil {
		return provider.ActionStatus{}, err
	}
	return d.statusOf(sub, n), nil
}

// unverifiedStatus answers, without a read, an action the node cannot show.
func unverifiedStatus(sub provider.Submission) provider.ActionStatus {
	return provider.ActionStatus{State: provider.StateSucceeded, Class: provider.Unverified,
		Message: fmt.Sprintf("E2E Networks accepted %s; the node shows nothing to verify it by", sub.Action)}
}

// statusOf judges sub from its node as read (alone or from the list).
func (d *Driver) statusOf(sub provider.Submission, n node) provider.ActionStatus {
	if n.Status == statusFailed {
		if !d.failedIsOurs(sub) {
			// "Failed" may be left from an earlier action: E2E runs this
			// one asynchronously, so the node may not have moved yet.
			return provider.ActionStatus{State: provider.StateInProgress, Class: provider.Verifying, Watch: true,
				Message: fmt.Sprintf("node %s still reads %q, perhaps from an earlier action; waiting up to %s for %s to move it",
					sub.NodeID, n.Status, failedGrace(sub.Action), sub.Action)}
		}
		return provider.ActionStatus{State: provider.StateFailed, Class: provider.ActionFailed, CompletedAt: d.now(),
			Message: fmt.Sprintf("E2E Networks reports node %s status %q after %s", sub.NodeID, n.Status, sub.Action)}
	}
	if window, ok := workflowWindow[sub.Action]; ok {
		st := d.workflowStatus(sub, n, window)
		if st.Progress == "" && sub.Progress == "" {
			st.Progress = progressSeen + n.Status
		}
		return st
	}
	ok, want := shows(sub.Request, n)
	if ok {
		return provider.ActionStatus{State: provider.StateSucceeded, Class: provider.Completed, CompletedAt: d.now(),
			Message: fmt.Sprintf("node %s is %s: %s took effect", sub.NodeID, describe(sub.Action, n), sub.Action)}
	}
	if !sub.StartedAt.IsZero() && d.now().Sub(sub.StartedAt) >= effectWindow {
		// A guest that ignores E2E's graceful power_off (E2E has no hard
		// one), or any action the node still contradicts: the node says it
		// did not take effect, so it is no success, and the VM's queue is
		// not held for ever.
		return provider.ActionStatus{State: provider.StateFailed, Class: provider.ActionFailed, CompletedAt: d.now(),
			Message: fmt.Sprintf("E2E Networks accepted %s, but node %s is still %s, not %s, after %s: it did not take effect",
				sub.Action, sub.NodeID, describe(sub.Action, n), want, effectWindow)}
	}
	st := provider.ActionStatus{State: provider.StateInProgress, Class: provider.Verifying,
		Message: fmt.Sprintf("node %s is %s, not %s yet", sub.NodeID, describe(sub.Action, n), want)}
	if sub.Progress == "" {
		st.Progress = progressSeen + n.Status
	}
	return st
}

// progressSeen is kept (Submission.Progress) once the node was read in a
// state other than "Failed" after the action was accepted: a "Failed" read
// after that is this action's.
const progressSeen = "seen:"

// failedIsOurs tells whether a node reading "Failed" shows this action
// failed: it was seen in another state since E2E accepted the action, or
// the action has had time to move it.
func (d *Driver) failedIsOurs(sub provider.Submission) bool {
	return sub.Progress != "" || sub.StartedAt.IsZero() || d.now().Sub(sub.StartedAt) >= failedGrace(sub.Action)
}

// failedGrace is how long a "Failed" read is taken to be left from before:
// the workflow window of actions that have one, else two minutes.
func failedGrace(action string) time.Duration {
	if w, ok := workflowWindow[action]; ok {
		return w
	}
	return 2 * time.Minute
}

// workflowStatus follows an action the node shows only by going through a
// workflow: out of its steady state, then back.
func (d *Driver) workflowStatus(sub provider.Submission, n node, window time.Duration) provider.ActionStatus {
	if !steady(n.Status) {
		return provider.ActionStatus{State: provider.StateInProgress, Class: provider.InProgress, Progress: progressLeft + n.Status,
			Message: fmt.Sprintf("node %s is %q: the %s is under way", sub.NodeID, n.Status, sub.Action)}
	}
	if left, ok := strings.CutPrefix(sub.Progress, progressLeft); ok {
		return provider.ActionStatus{State: provider.StateSucceeded, Class: provider.Completed, CompletedAt: d.now(),
			Message: fmt.Sprintf("node %s went through %q and is %q again: the %s ran", sub.NodeID, left, n.Status, sub.Action)}
	}
	if age := d.now().Sub(sub.StartedAt); sub.StartedAt.IsZero() || age < window {
		// Look often: the workflow may pass quickly once it begins.
		return provider.ActionStatus{State: provider.StateInProgress, Class: provider.Verifying, Watch: true,
			Message: fmt.Sprintf("E2E Networks accepted %s and runs it asynchronously; node %s still reads %q, waiting up to %s to see the workflow begin",
				sub.Action, sub.NodeID, n.Status, window)}
	}
	return provider.ActionStatus{State: provider.StateSucceeded, Class: provider.Unverified, CompletedAt: d.now(),
		Message: fmt.Sprintf("E2E Networks accepted %s, but node %s was not seen leaving %q within %s; E2E shows no record that it ran",
			sub.Action, sub.NodeID, n.Status, window)}
}

// shows tells whether the node shows the request's effect, and what it
// should show ("" for actions it cannot show).
func shows(req provider.Request, n node) (bool, string) {
	switch req.Action {
	case "power_off":
		return offStatuses[n.Status], `"Powered off"`
	case "power_on":
		return n.Status == statusRunning, `"Running"`
	case "rename":
		return n.Name == req.Parameters.Name, fmt.Sprintf("named %q", req.Parameters.Name)
	case "lock_vm":
		return n.IsLocked, "locked"
	case "unlock_vm":
		return !n.IsLocked, "unlocked"
	}
	return false, ""
}

func describe(action string, n node) string {
	switch action {
	case "rename":
		return fmt.Sprintf("named %q", n.Name)
	case "lock_vm", "unlock_vm":
		if n.IsLocked {
			return "locked"
		}
		return "unlocked"
	}
	return strconv.Quote(n.Status)
}

// towards tells whether a node is in, or moving to, the state an
// idempotent action leads to.
func towards(req provider.Request, n node) bool {
	if ok, _ := shows(req, n); ok {
		return true
	}
	switch req.Action {
	case "power_off":
		return n.Status == "Stopping"
	case "power_on":
		return n.Status == "Powering"
	}
	return false
}

// Lookup cannot search a history E2E does not keep. For idempotent actions
// the node's state answers: in or moving to the state the action leads to,
// it is the candidate (with no action id); showing no sign of it once the
// request can no longer land, it was not accepted (and sending an
// idempotent action again has no further effect). For other actions,
// nothing can be known.
func (d *Driver) Lookup(ctx context.Context, req provider.Request, w provider.Window) (provider.Found, error) {
	if err := d.Validate(req); err != nil {
		return provider.Found{}, err
	}
	if !capabilities.Actions[req.Action].Idempotent {
		return provider.Found{}, provider.ErrSubmissionUnknown(fmt.Sprintf(
			"E2E Networks keeps no action history and the node does not show whether %s ran; check node %s in the E2E console before submitting again",
			req.Action, req.NodeID))
	}
	n, err := d.getNode(ctx, req.NodeID)
	if err != nil {
		return provider.Found{}, err
	}
	if n.Status == statusFailed {
		return provider.Found{}, provider.ErrSubmissionUnknown(fmt.Sprintf(
			"E2E Networks keeps no action history and node %s is %q, so whether %s was accepted cannot be known", req.NodeID, n.Status, req.Action))
	}
	found := provider.Found{Complete: true}
	if towards(req, n) {
		found.Candidates = []provider.Submission{{Request: req, StartedAt: w.From}}
		return found, nil
	}
	patience := failedGrace(req.Action)
	if d.recordsLag > 0 {
		patience = d.recordsLag
	}
	if wait := w.To.Add(patience).Sub(d.now()); wait > 0 {
		// Accepted, it may not have moved the node yet: E2E answers on
		// acceptance and runs the workflow later (seed 000), as Status
		// allows for; a rename or lock shows only once done. A second
		// request now could be a second action.
		return provider.Found{}, provider.NewRetryable(provider.Unavailable, fmt.Sprintf(
			"node %s does not show %s yet, and E2E may start it up to %s after accepting it; looking again until then",
			req.NodeID, req.Action, patience), min(wait, 5*time.Second))
	}
	return found, nil
}

// url builds a request URL under /api/v1/nodes/ with the auth query and
// any extra parameters. The result carries the API key: it must never be
// put in an error.
func (d *Driver) url(rest string, extra url.Values) string {
	if rest != "" {
		id, tail, _ := strings.Cut(rest, "/")
		rest = url.PathEscape(id) + "/" + tail
	}
	q := maps.Clone(d.query)
	maps.Copy(q, extra)
	return d.nodes + rest + "?" + q.Encode()
}

// envelope is E2E's answer: code and data, and on lists the page count
// (kept raw: only the list reads it).
type envelope struct {
	Code int `json:"code"`
	// StatusCode is the quota answer's code ({"errors": ..., "status_code":
	// 429}), read whatever the HTTP status it came with.
	StatusCode      int             `json:"status_code"`
	Data            json.RawMessage `json:"data"`
	TotalPageNumber json.RawMessage `json:"total_page_number"`
}

// call makes one request and returns the "data" of E2E's envelope.
func (d *Driver) call(ctx context.Context, method, rest string, in any) (json.RawMessage, error) {
	env, err := d.request(ctx, method, rest, nil, in)
	return env.Data, err
}

// request makes one request and returns E2E's envelope, or a typed error
// with the provider's words. E2E may also answer HTTP 200 with an error
// code in the envelope.
func (d *Driver) request(ctx context.Context, method, rest string, extra url.Values, in any) (envelope, error) {
	var env envelope
	resp, err := provider.Send(ctx, d.client, method, d.url(rest, extra), nil, in)
	if err != nil {
		return env, err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return env, provider.StatusError(resp.StatusCode, resp.Header, method, d.message(resp.Body))
	}
	if err := provider.Decode(resp, &env); err != nil {
		if method == http.MethodGet {
			// A garbled answer to a read changed nothing: read again.
			pe := provider.AsError(err)
			pe.Kind = provider.Retryable
			return envelope{}, pe
		}
		return envelope{}, err
	}
	if code := max(env.Code, env.StatusCode); code >= 400 {
		return envelope{}, provider.StatusError(code, resp.Header, method, d.message(resp.Body))
	}
	return env, nil
}

// message is the provider's own words from any of E2E's error shapes:
// the envelope's message and errors, DRF's detail, the quota's errors.
func (d *Driver) message(body []byte) string {
	var e struct {
		Message string          `json:"message"`
		Errors  json.RawMessage `json:"errors"`
		Detail  string          `json:"detail"`
	}
	_ = json.Unmarshal(body, &e)
	var parts []string
	for _, p := range []string{e.Message, errorsText(e.Errors), e.Detail} {
		if p != "" {
			parts = append(parts, p)
		}
	}
	return d.scrub(strings.Join(parts, ": "))
}

// errorsText renders "errors", a string or an object of field errors.
func errorsText(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" || string(raw) == "{}" || string(raw) == `""` || string(raw) == "[]" {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return string(raw)
}

// scrub removes the credentials from provider text, should it echo them.
func (d *Driver) scrub(s string) string {
	for _, v := range d.secrets {
		s = strings.ReplaceAll(s, v, "<redacted>")
	}
	return s
}
