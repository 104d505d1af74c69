// Package senlin drives OpenStack Senlin node actions
// (POST /v1/nodes/{node_id}/actions). gophercloud does the Keystone side:
// authentication, the service catalog and renewing an expired token.
// gophercloud has no Senlin package any more, so Senlin is called through a
// gophercloud.ServiceClient with the wire format of gophercloud v1's
// openstack/clustering/v1.
//
// When Senlin answers 401 (the token expired), gophercloud gets a new token
// and sends the request once more. That is the only repeat: a 401 comes from
// the Keystone middleware in front of Senlin, so the refused request started
// nothing.
package senlin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"

	"github.com/nodeaction/nodeaction-operator/api/v1alpha1"
	"github.com/nodeaction/nodeaction-operator/internal/provider"
)

// DefaultEndpoint is empty: the endpoint comes from the Keystone catalog.
const DefaultEndpoint = ""

// RequestsPerMinute is a conservative budget: Senlin publishes none.
const RequestsPerMinute = 120

const (
	serviceType = "clustering"
	// baseMicroversion is enough for node actions and the action list;
	// recover's check parameter needs checkMicroversion.
	baseMicroversion  = "1.0"
	checkMicroversion = "1.6"
	// lookupPage and lookupPages bound how much action history one lookup reads.
	lookupPage  = 50
	lookupPages = 20
	// sweepPage, sweepPages and sweepSkew bound one StatusBatch: Senlin
	// sets no maximum page size, so 200 keeps an answer to a few hundred
	// kB; the walk stops sweepSkew past the oldest submission (the
	// operator's clock against Senlin's) or after sweepPages pages.
	sweepPage  = 200
	sweepPages = 5
	sweepSkew  = 5 * time.Minute
)

var (
	// nodeRef is a node UUID, short id or name: letters, digits and . _ ~ -
	// (no slash, dot-segment, space or percent sign can reach the URL).
	nodeRef  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._~-]{0,254}$`)
	actionID = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
)

// Driver is the Senlin driver.
type Driver struct {
	pc *gophercloud.ProviderClient
	// auth is nil when a token is used as it is, without Keystone.
	auth     *gophercloud.AuthOptions
	region   string
	override string // spec.endpoint

	mu sync.Mutex
	sc *gophercloud.ServiceClient // set once authenticated
}

var (
	_ provider.Driver           = (*Driver)(nil)
	_ provider.ResolvedEndpoint = (*Driver)(nil)
	_ provider.ServerIDer       = (*Driver)(nil)
	_ provider.BatchStatuser    = (*Driver)(nil)
)

// New builds a driver. It makes no request: Keystone is asked for a token
// on first use, so an unreachable endpoint shows up as a typed error from
// Probe or Submit.
//
// Secret keys: `token`; or `username`, `password`, `userDomainName`
// (default "Default") and `projectName` or `projectID` with
// `projectDomainName` (default "Default"); or `applicationCredentialID` and
// `applicationCredentialSecret`. A token with projectName/projectID is
// exchanged for one scoped to that project. Without spec.authURL, a token
// is used as it is against spec.endpoint.
func New(cfg provider.Config) (provider.Driver, error) {
	if cfg.HTTPClient == nil {
		return nil, provider.NewTerminal(provider.InvalidConfig, "no HTTP client configured")
	}
	auth, err := authOptions(cfg.Credentials)
	if err != nil {
		return nil, err
	}
	d := &Driver{region: cfg.Region, override: trimEndpoint(strings.TrimSpace(cfg.Endpoint))}
	if d.override != "" {
		if err := provider.CheckEndpoint(d.override); err != nil {
			return nil, err
		}
	}
	if cfg.AuthURL == "" {
		if auth.TokenID == "" || auth.Scope != nil || d.override == "" {
			return nil, provider.NewTerminal(provider.InvalidConfig,
				"senlin needs spec.authURL (the Keystone identity URL), unless the Secret holds only a `token` and spec.endpoint is set")
		}
		d.pc = &gophercloud.ProviderClient{}
		d.pc.UseTokenLock()
		d.pc.SetToken(auth.TokenID)
	} else {
		if err := provider.CheckEndpoint(cfg.AuthURL); err != nil {
			return nil, err
		}
		d.pc, err = openstack.NewClient(cfg.AuthURL)
		if err != nil {
			return nil, provider.NewTerminal(provider.InvalidConfig, "spec.authURL: "+provider.Redact(err.Error()))
		}
		auth.IdentityEndpoint = cfg.AuthURL
		d.auth = &auth
	}
	// The operator's client carries TLS, the rate limit and error classes.
	d.pc.HTTPClient = *cfg.HTTPClient
	if cfg.UserAgent != "" {
		d.pc.UserAgent.Prepend(cfg.UserAgent)
	}
	return d, nil
}

// authOptions reads the credentials Secret.
func authOptions(creds map[string][]byte) (gophercloud.AuthOptions, error) {
	get := func(k string) string { return strings.TrimSpace(string(creds[k])) }
	// Secrets are kept as written but for the newline files often end with.
	secret := func(k string) string { return strings.TrimRight(string(creds[k]), "\r\n") }
	orDefault := func(k string) string {
		if v := get(k); v != "" {
			return v
		}
		return "Default"
	}
	credErr := func(msg string) error { return provider.NewTerminal(provider.CredentialsError, msg) }
	missing := func(key, with string) error {
		return credErr(fmt.Sprintf("the credentials Secret has no key %q (needed with %s)", key, with))
	}

	token := get("token")
	user, password := get("username"), secret("password")
	appID, appSecret := get("applicationCredentialID"), secret("applicationCredentialSecret")
	projectName, projectID := get("projectName"), get("projectID")

	var ways []string
	if token != "" {
		ways = append(ways, `"token"`)
	}
	if user != "" || password != "" {
		ways = append(ways, `"username"/"password"`)
	}
	if appID != "" || appSecret != "" {
		ways = append(ways, `"applicationCredentialID"/"applicationCredentialSecret"`)
	}
	switch {
	case len(ways) == 0:
		return gophercloud.AuthOptions{}, credErr(`the credentials Secret has no OpenStack credentials: set "token"; or "username", "password" and "projectName" or "projectID"; or "applicationCredentialID" and "applicationCredentialSecret"`)
	case len(ways) > 1:
		return gophercloud.AuthOptions{}, credErr("the credentials Secret sets " + strings.Join(ways, " and ") + ": keep one way to authenticate")
	case projectName != "" && projectID != "":
		return gophercloud.AuthOptions{}, credErr(`the credentials Secret sets both "projectName" and "projectID": keep one`)
	}
	var scope *gophercloud.AuthScope
	switch {
	case projectID != "":
		scope = &gophercloud.AuthScope{ProjectID: projectID}
	case projectName != "":
		scope = &gophercloud.AuthScope{ProjectName: projectName, DomainName: orDefault("projectDomainName")}
	}

	switch {
	case token != "":
		// A token cannot be renewed: no AllowReauth.
		return gophercloud.AuthOptions{TokenID: token, Scope: scope}, nil
	case appID != "" || appSecret != "":
		if appID == "" {
			return gophercloud.AuthOptions{}, missing("applicationCredentialID", `"applicationCredentialSecret"`)
		}
		if appSecret == "" {
			return gophercloud.AuthOptions{}, missing("applicationCredentialSecret", `"applicationCredentialID"`)
		}
		if scope != nil {
			return gophercloud.AuthOptions{}, credErr(`an application credential is bound to its project: remove "projectName"/"projectID" from the credentials Secret`)
		}
		return gophercloud.AuthOptions{ApplicationCredentialID: appID, ApplicationCredentialSecret: appSecret, AllowReauth: true}, nil
	}
	if user == "" {
		return gophercloud.AuthOptions{}, missing("username", `"password"`)
	}
	if password == "" {
		return gophercloud.AuthOptions{}, missing("password", `"username"`)
	}
	if scope == nil {
		return gophercloud.AuthOptions{}, credErr(`the credentials Secret has neither "projectName" nor "projectID" (needed with "username"/"password": Senlin needs a project-scoped token)`)
	}
	return gophercloud.AuthOptions{Username: user, Password: password, DomainName: orDefault("userDomainName"),
		Scope: scope, AllowReauth: true}, nil
}

// service authenticates on first use and finds the Senlin endpoint.
func (d *Driver) service(ctx context.Context) (*gophercloud.ServiceClient, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.sc != nil {
		return d.sc, nil
	}
	endpoint := d.override
	if d.auth != nil {
		if err := openstack.Authenticate(ctx, d.pc, *d.auth); err != nil {
			return nil, keystoneError(err)
		}
		if endpoint == "" {
			ep, err := d.pc.EndpointLocator(gophercloud.EndpointOpts{
				Type: serviceType, Region: d.region, Availability: gophercloud.AvailabilityPublic,
			})
			if err != nil {
				where := "any region"
				if d.region != "" {
					where = fmt.Sprintf("region %q", d.region)
				}
				return nil, provider.NewTerminal(provider.InvalidConfig, fmt.Sprintf(
					"the Keystone catalog has no public %q (Senlin) endpoint in %s: set spec.region, or spec.endpoint", serviceType, where))
			}
			if err := provider.CheckEndpoint(ep); err != nil {
				return nil, err
			}
			endpoint = ep
		}
	}
	d.sc = &gophercloud.ServiceClient{ProviderClient: d.pc, Endpoint: trimEndpoint(endpoint) + "/", Type: serviceType}
	return d.sc, nil
}

// trimEndpoint drops a trailing slash and API version: catalogs list Senlin
// without its version, but some carry it.
func trimEndpoint(endpoint string) string {
	return strings.TrimSuffix(strings.TrimSuffix(endpoint, "/"), "/v1")
}

// Endpoint is the Senlin endpoint in use: spec.endpoint, or the one found in
// the catalog (empty until the first request has authenticated).
func (d *Driver) Endpoint() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.sc != nil {
		return strings.TrimSuffix(d.sc.Endpoint, "/")
	}
	return d.override
}

// do makes one Senlin request; path segments are already escaped.
func (d *Driver) do(ctx context.Context, method, microversion string, segs []string, query url.Values, body, out any, ok int) (http.Header, error) {
	sc, err := d.service(ctx)
	if err != nil {
		return nil, err
	}
	u := sc.ServiceURL(segs...)
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	opts := &gophercloud.RequestOpts{
		OkCodes:      []int{ok},
		MoreHeaders:  map[string]string{"OpenStack-API-Version": serviceType + " " + microversion},
		JSONResponse: out,
	}
	if body != nil {
		opts.JSONBody = body
	}
	resp, err := sc.Request(ctx, method, u, opts)
	if err != nil {
		return nil, classify(err, method)
	}
	return resp.Header, nil
}

// Capabilities: Senlin's two node actions, and the portable reboot and
// power_cycle as recover REBOOT SOFT and HARD.
func (d *Driver) Capabilities() provider.Capabilities { return capabilities }

var capabilities = provider.Capabilities{
	Actions: map[string]provider.ActionInfo{
		"check":   {Repeatable: true},
		"recover": {RepeatableIf: recoverRepeatable, RestartsGuestIf: recoverRestartsGuest},
	},
	Portable: map[string]provider.Native{
		"reboot":      {Action: "recover", Implies: recoverReboot("SOFT")},
		"power_cycle": {Action: "recover", Implies: recoverReboot("HARD")},
	},
	DescribeFunc: describe,
}

// recoverReboot is what the portable reboot (SOFT) and power_cycle (HARD) mean here.
func recoverReboot(rebootType string) func(*v1alpha1.ActionParameters) {
	return func(p *v1alpha1.ActionParameters) {
		p.Recover = &v1alpha1.RecoverParameters{Operation: "REBOOT", RebootType: rebootType}
	}
}

// describe names the action with its operation ("recover REBOOT SOFT").
func describe(r provider.Request) string {
	if r.Action != "recover" || r.Parameters.Recover == nil {
		return r.Action
	}
	op := strings.ToUpper(r.Parameters.Recover.Operation)
	if op == "REBOOT" {
		return "recover REBOOT " + rebootType(r.Parameters.Recover.RebootType)
	}
	return "recover " + op
}

// recoverRepeatable: a recover REBOOT may be submitted again after Senlin
// reported it failed; a REBUILD or RECREATE may not.
// recoverRestartsGuest: a recover with check first may find the node
// ACTIVE and leave it as it is, so no new boot proves or disproves it.
func recoverRestartsGuest(req provider.Request) bool {
	r := req.Parameters.Recover
	return r == nil || r.Check == nil || !*r.Check
}

func recoverRepeatable(req provider.Request) bool {
	return req.Parameters.Recover != nil && strings.EqualFold(req.Parameters.Recover.Operation, "REBOOT")
}

// Probe lists one action: a cheap authenticated request.
func (d *Driver) Probe(ctx context.Context) error {
	var out struct {
		Actions []json.RawMessage `json:"actions"`
	}
	_, err := d.do(ctx, http.MethodGet, baseMicroversion, []string{"v1", "actions"}, url.Values{"limit": {"1"}}, nil, &out, http.StatusOK)
	if pe := provider.AsError(err); pe != nil && pe.StatusCode == http.StatusNotFound {
		return provider.NewTerminal(provider.InvalidConfig,
			fmt.Sprintf("no Senlin API at %s: GET /v1/actions answered 404", provider.Redact(d.Endpoint())))
	}
	return err
}

// Validate checks the node id and the recover parameters.
func (d *Driver) Validate(req provider.Request) error {
	if !nodeRef.MatchString(req.NodeID) {
		return provider.NewTerminal(provider.InvalidNodeID, fmt.Sprintf(
			"Senlin node ids are UUIDs (a node's unique name or short id also works, made of letters, digits, '.', '_', '~' and '-'); %q is not one", req.NodeID))
	}
	switch req.Action {
	case "check":
		return nil
	case "recover":
		return validateRecover(req.Parameters.Recover)
	}
	return provider.NewTerminal(provider.UnsupportedAction, fmt.Sprintf("Senlin has no node action %q; it has check and recover", req.Action))
}

func validateRecover(r *v1alpha1.RecoverParameters) error {
	invalid := func(msg string) error { return provider.NewTerminal(provider.InvalidParameters, msg) }
	if r == nil || r.Operation == "" {
		return invalid("recover needs spec.parameters.recover.operation (REBOOT, REBUILD or RECREATE)")
	}
	op := strings.ToUpper(r.Operation)
	switch op {
	case "REBOOT", "REBUILD", "RECREATE":
	default:
		return invalid(fmt.Sprintf("spec.parameters.recover.operation must be one of REBOOT, REBUILD, RECREATE, not %q", r.Operation))
	}
	if r.RebootType != "" {
		if t := strings.ToUpper(r.RebootType); t != "SOFT" && t != "HARD" {
			return invalid(fmt.Sprintf("spec.parameters.recover.rebootType must be SOFT or HARD, not %q", r.RebootType))
		}
		if op != "REBOOT" {
			return invalid("spec.parameters.recover.rebootType applies only to operation REBOOT, not " + op)
		}
	}
	if r.DeleteTimeout != nil && *r.DeleteTimeout < 0 {
		return invalid("spec.parameters.recover.deleteTimeout must not be negative")
	}
	return nil
}

// actionBody is the request body and the microversion it needs. Senlin's
// defaults (RECREATE, and HARD for REBOOT) are never relied on: operation
// and reboot type are always sent.
func actionBody(req provider.Request) (map[string]any, string) {
	if req.Action == "check" {
		return map[string]any{"check": map[string]any{}}, baseMicroversion
	}
	r := req.Parameters.Recover
	op := strings.ToUpper(r.Operation)
	params := map[string]any{"operation": op}
	if op == "REBOOT" {
		params["operation_params"] = map[string]any{"type": rebootType(r.RebootType)}
	}
	microversion := baseMicroversion
	if r.Check != nil {
		params["check"] = *r.Check
		microversion = checkMicroversion
	}
	if r.DeleteTimeout != nil {
		params["delete_timeout"] = *r.DeleteTimeout
	}
	if r.ForceRecreate != nil {
		params["force_recreate"] = *r.ForceRecreate
	}
	return map[string]any{"recover": params}, microversion
}

func rebootType(t string) string {
	if t == "" {
		return "HARD"
	}
	return strings.ToUpper(t)
}

// senlinAction is Senlin's name for a node action.
func senlinAction(action string) string {
	if action == "check" {
		return "NODE_CHECK"
	}
	return "NODE_RECOVER"
}

// Submit posts the action: exactly one Senlin request (after Keystone
// authentication when the driver has no token yet).
func (d *Driver) Submit(ctx context.Context, req provider.Request) (provider.Submission, error) {
	if err := d.Validate(req); err != nil {
		return provider.Submission{}, err
	}
	body, microversion := actionBody(req)
	var out struct {
		Action string `json:"action"`
	}
	header, err := d.do(ctx, http.MethodPost, microversion,
		[]string{"v1", "nodes", url.PathEscape(req.NodeID), "actions"}, nil, body, &out, http.StatusAccepted)
	if err != nil {
		return provider.Submission{}, err
	}
	id := out.Action
	if id == "" && header.Get("Location") != "" {
		id = path.Base(header.Get("Location"))
	}
	if !actionID.MatchString(id) {
		return provider.Submission{}, provider.NewAmbiguous(fmt.Sprintf("Senlin accepted %s but named no action (%q)", describe(req), id))
	}
	return provider.Submission{Request: req, ActionID: id, StartedAt: time.Now()}, nil
}

// action is what Senlin shows of an action.
type action struct {
	ID           string         `json:"id"`
	Action       string         `json:"action"`
	Target       string         `json:"target"`
	Status       string         `json:"status"`
	StatusReason string         `json:"status_reason"`
	Inputs       map[string]any `json:"inputs"`
	CreatedAt    *string        `json:"created_at"`
	StartTime    *float64       `json:"start_time"`
	EndTime      *float64       `json:"end_time"`
}

func epoch(f *float64) time.Time {
	if f == nil {
		return time.Time{}
	}
	sec := int64(*f)
	return time.Unix(sec, int64((*f-float64(sec))*1e9)).UTC()
}

// created reads created_at: "2015-06-27T05:09:43Z", or without a zone (UTC).
func (a action) created() (time.Time, bool) {
	if a.CreatedAt == nil {
		return time.Time{}, false
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999"} {
		if t, err := time.Parse(layout, *a.CreatedAt); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

// Status reads the action: SUCCEEDED is done, FAILED and CANCELLED failed.
func (d *Driver) Status(ctx context.Context, sub provider.Submission) (provider.ActionStatus, error) {
	if !actionID.MatchString(sub.ActionID) {
		return provider.ActionStatus{}, provider.NewTerminal(provider.ActionFailed, fmt.Sprintf("%q is not a Senlin action id", sub.ActionID))
	}
	var out struct {
		Action action `json:"action"`
	}
	if _, err := d.do(ctx, http.MethodGet, baseMicroversion, []string{"v1", "actions", sub.ActionID}, nil, nil, &out, http.StatusOK); err != nil {
		if pe := provider.AsError(err); pe.StatusCode == http.StatusNotFound {
			return provider.ActionStatus{}, provider.NewTerminal(provider.ActionFailed, fmt.Sprintf("Senlin no longer knows action %s", sub.ActionID))
		}
		return provider.ActionStatus{}, err
	}
	return statusOf(sub, out.Action), nil
}

func statusOf(sub provider.Submission, a action) provider.ActionStatus {
	what := fmt.Sprintf("Senlin action %s (%s)", sub.ActionID, describe(sub.Request))
	reason := a.StatusReason
	if reason == "" {
		reason = "no reason given"
	}
	switch a.Status {
	case "SUCCEEDED":
		msg := fmt.Sprintf("%s succeeded: %s", what, reason)
		if r := sub.Parameters.Recover; sub.Action == "recover" && r != nil && r.Check != nil && *r.Check {
			msg += " (with check, Senlin leaves a node that is already ACTIVE as it is)"
		}
		return provider.ActionStatus{State: provider.StateSucceeded, Class: provider.Completed, Message: msg, CompletedAt: epoch(a.EndTime)}
	case "FAILED", "CANCELLED":
		return provider.ActionStatus{State: provider.StateFailed, Class: provider.ActionFailed, CompletedAt: epoch(a.EndTime),
			Message: fmt.Sprintf("%s %s: %s", what, a.Status, reason)}
	}
	msg := fmt.Sprintf("%s is %s", what, a.Status)
	if a.StatusReason != "" {
		msg += ": " + a.StatusReason
	}
	return provider.ActionStatus{State: provider.StateInProgress, Message: msg}
}

// StatusBatch reads the project's node actions, newest first (sort
// created_at:desc, which Senlin documents), and judges each submission
// found by its action id with statusOf, as Status does: a list item is the
// same action object GET /v1/actions/{id} answers. The walk follows the
// marker until every submission is found, the list is older than the
// oldest submission (less sweepSkew), it ends, or sweepPages pages were
// read. What it did not find stays zero: the caller reads it alone.
func (d *Driver) StatusBatch(ctx context.Context, subs []provider.Submission) ([]provider.ActionStatus, error) {
	out := make([]provider.ActionStatus, len(subs))
	want := make(map[string][]int, len(subs)) // action id → indexes in subs
	kinds := map[string]bool{}
	var oldest time.Time
	for i, s := range subs {
		if !actionID.MatchString(s.ActionID) {
			continue // Status reports the bad id
		}
		if len(want) == 0 || s.StartedAt.Before(oldest) {
			oldest = s.StartedAt
		}
		want[s.ActionID] = append(want[s.ActionID], i)
		kinds[senlinAction(s.Action)] = true
	}
	if len(want) == 0 {
		return out, nil
	}
	// Only node actions of the kind submitted, where there is one kind:
	// cluster and other node actions would crowd them off the pages. (The
	// seed names the filter, not whether it takes several values.)
	q := url.Values{"sort": {"created_at:desc"}, "limit": {strconv.Itoa(sweepPage)}}
	if len(kinds) == 1 {
		for k := range kinds {
			q.Set("action", k)
		}
	}
	cutoff := oldest.Add(-sweepSkew)
	// No more pages than the reads alone they replace.
	pages := min(sweepPages, len(want))
	for page := 0; page < pages && len(want) > 0; page++ {
		var list struct {
			Actions []action `json:"actions"`
		}
		if _, err := d.do(ctx, http.MethodGet, baseMicroversion, []string{"v1", "actions"}, q, nil, &list, http.StatusOK); err != nil {
			return nil, err
		}
		for _, a := range list.Actions {
			for _, i := range want[a.ID] {
				out[i] = statusOf(subs[i], a)
			}
			delete(want, a.ID)
		}
		if len(list.Actions) < sweepPage {
			break // the end of the list
		}
		last := list.Actions[len(list.Actions)-1]
		if !actionID.MatchString(last.ID) {
			break // no marker to go on from
		}
		// A submission without StartedAt (zero) never stops the walk early.
		if created, ok := last.created(); ok && created.Before(cutoff) {
			break // older than any submission
		}
		q.Set("marker", last.ID)
	}
	return out, nil
}

// Lookup lists the node's actions like the request created in the window.
// Senlin stores an action before it answers 202, so its list shows every
// accepted submission. The list is filtered by node and action and read
// whole (up to lookupPages pages), whatever its order.
func (d *Driver) Lookup(ctx context.Context, req provider.Request, w provider.Window) (provider.Found, error) {
	if err := d.Validate(req); err != nil {
		return provider.Found{}, err
	}
	// The list filters on the node's UUID; the NodeAction may name the
	// node by name or short id, so ask Senlin which node it is.
	var node struct {
		Node struct {
			ID string `json:"id"`
		} `json:"node"`
	}
	if _, err := d.do(ctx, http.MethodGet, baseMicroversion, []string{"v1", "nodes", url.PathEscape(req.NodeID)}, nil, nil, &node, http.StatusOK); err != nil {
		return provider.Found{}, err
	}
	if node.Node.ID == "" {
		return provider.Found{}, provider.ErrSubmissionUnknown(fmt.Sprintf("Senlin did not say which node %q is", req.NodeID))
	}
	q := url.Values{
		"target": {node.Node.ID}, "action": {senlinAction(req.Action)},
		"sort": {"created_at:desc"}, "limit": {strconv.Itoa(lookupPage)},
	}
	found := provider.Found{Complete: true}
	for page := 1; ; page++ {
		if page > lookupPages {
			found.Complete = false
			found.Why = fmt.Sprintf("node %s has more than %d %s actions; only %d were read", req.NodeID, lookupPages*lookupPage, senlinAction(req.Action), lookupPages*lookupPage)
			return found, nil
		}
		var out struct {
			Actions []action `json:"actions"`
		}
		if _, err := d.do(ctx, http.MethodGet, baseMicroversion, []string{"v1", "actions"}, q, nil, &out, http.StatusOK); err != nil {
			return provider.Found{}, err
		}
		for _, a := range out.Actions {
			match, readable := matches(req, a)
			if !readable {
				// Of the request's kind on its node, but which operation it
				// ran cannot be read: it may be the lost submission.
				if created, ok := a.created(); !ok || w.Contains(created) {
					found.Complete = false
					found.Why = fmt.Sprintf("Senlin action %s (%s on node %s) does not say its operation in a form the operator reads", a.ID, a.Action, req.NodeID)
				}
				continue
			}
			if !match {
				continue
			}
			created, ok := a.created()
			if !ok {
				found.Complete = false
				found.Why = fmt.Sprintf("Senlin action %s has no readable created_at", a.ID)
				continue
			}
			if w.Contains(created) {
				started := epoch(a.StartTime)
				if started.IsZero() {
					started = created
				}
				found.Candidates = append(found.Candidates, provider.Submission{Request: req, ActionID: a.ID, StartedAt: started})
			}
		}
		if len(out.Actions) < lookupPage {
			return found, nil
		}
		q.Set("marker", out.Actions[len(out.Actions)-1].ID)
	}
}

// ServerID is the Nova server under a Senlin node (its physical_id): what
// a Kubernetes Node's providerID (openstack:///<server>) names.
func (d *Driver) ServerID(ctx context.Context, nodeID string) (string, error) {
	if !nodeRef.MatchString(nodeID) {
		return "", provider.NewTerminal(provider.InvalidNodeID, fmt.Sprintf("%q is not a Senlin node id", nodeID))
	}
	var out struct {
		Node struct {
			PhysicalID string `json:"physical_id"`
		} `json:"node"`
	}
	if _, err := d.do(provider.LowPriority(ctx), http.MethodGet, baseMicroversion, []string{"v1", "nodes", url.PathEscape(nodeID)}, nil, nil, &out, http.StatusOK); err != nil {
		return "", err
	}
	return out.Node.PhysicalID, nil
}

// matches tells whether a listed action is the request: same action and,
// for recover, the same operation and reboot type. readable is false for
// an action of the request's kind whose operation cannot be read (the
// documents do not give the list's inputs; Senlin before 7.0 kept them as
// [{"name": op}], read too).
func matches(req provider.Request, a action) (match, readable bool) {
	if a.Action != senlinAction(req.Action) || !actionID.MatchString(a.ID) {
		return false, true
	}
	if req.Action == "check" {
		return true, true
	}
	r := req.Parameters.Recover
	op, ok := operationOf(a.Inputs["operation"])
	if !ok {
		return false, false
	}
	if !strings.EqualFold(op, r.Operation) {
		return false, true
	}
	if !strings.EqualFold(op, "REBOOT") {
		return true, true
	}
	var t string
	if p, ok := a.Inputs["operation_params"].(map[string]any); ok {
		t, _ = p["type"].(string)
	}
	return rebootType(t) == rebootType(r.RebootType), true
}

// operationOf reads a recover's operation from an action's inputs: a
// string, or a one-element list of {"name": op}.
func operationOf(v any) (string, bool) {
	switch op := v.(type) {
	case string:
		return op, op != ""
	case []any:
		if len(op) == 1 {
			if m, ok := op[0].(map[string]any); ok {
				name, ok := m["name"].(string)
				return name, ok && name != ""
			}
		}
	}
	return "", false
}

// classify turns a gophercloud error from a Senlin request into a provider error.
func classify(err error, method string) error {
	var reauth *gophercloud.ErrUnableToReauthenticate
	if errors.As(err, &reauth) {
		// Senlin refused the expired token (a 401: it did nothing) and
		// Keystone would not issue a new one.
		return keystoneError(reauth.ErrReauth)
	}
	if code, ok := responseCode(err); ok {
		return senlinError(code, method, err)
	}
	var pe *provider.Error
	if errors.As(err, &pe) {
		return pe
	}
	e := &provider.Error{Kind: provider.Retryable, Class: provider.Unavailable,
		Message: "cannot read Senlin's answer: " + provider.Redact(err.Error()), Err: err}
	if method != http.MethodGet {
		e.Kind = provider.Ambiguous // the request may have had its effect
	}
	return e
}

func responseCode(err error) (*gophercloud.ErrUnexpectedResponseCode, bool) {
	var v gophercloud.ErrUnexpectedResponseCode
	if errors.As(err, &v) {
		return &v, true
	}
	var p *gophercloud.ErrUnexpectedResponseCode
	if errors.As(err, &p) {
		return p, true
	}
	return nil, false
}

// busy are the 409 types that mean another action holds the node.
var busy = map[string]bool{"ResourceIsLocked": true, "ActionConflict": true, "ActionInProgress": true}

// senlinError reads Senlin's error envelope:
// {"code", "title", "explanation", "error": {"code", "message", "type"}}.
func senlinError(code *gophercloud.ErrUnexpectedResponseCode, method string, err error) error {
	var env struct {
		Explanation string `json:"explanation"`
		Message     string `json:"message"`
		Error       struct {
			Message string `json:"message"`
			Type    string `json:"type"`
		} `json:"error"`
	}
	_ = json.Unmarshal(code.Body, &env)
	msg := env.Error.Message
	for _, alt := range []string{env.Message, env.Explanation} {
		if msg == "" {
			msg = alt
		}
	}
	e := provider.StatusError(code.Actual, code.ResponseHeader, method, provider.Redact(msg))
	e.Err = err
	if code.Actual == http.StatusConflict && env.Error.Type != "" && !busy[env.Error.Type] {
		e.Kind, e.Class = provider.Terminal, provider.Rejected
	}
	return e
}

// keystoneError classifies a failed authentication. Nothing was asked of
// Senlin, so no error here is ambiguous.
func keystoneError(err error) error {
	if code, ok := responseCode(err); ok {
		var env struct {
			Error struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		_ = json.Unmarshal(code.Body, &env)
		msg := provider.Redact(env.Error.Message)
		if msg == "" {
			msg = http.StatusText(code.Actual)
		}
		terminal := func(class provider.Class, text string) error {
			return &provider.Error{Kind: provider.Terminal, Class: class, StatusCode: code.Actual, Message: text, Err: err}
		}
		switch code.Actual {
		case http.StatusUnauthorized, http.StatusForbidden:
			return terminal(provider.AuthFailed, "Keystone refused the credentials: "+msg)
		case http.StatusBadRequest:
			return terminal(provider.CredentialsError, "Keystone refused the authentication request: "+msg)
		case http.StatusNotFound:
			return terminal(provider.InvalidConfig, "Keystone answered 404: spec.authURL must be the identity URL, such as https://keystone.example.com/v3")
		}
		e := provider.StatusError(code.Actual, code.ResponseHeader, http.MethodGet, "Keystone: "+msg)
		e.Err = err
		return e
	}
	var pe *provider.Error
	if errors.As(err, &pe) {
		out := *pe
		out.Message = "Keystone: " + pe.Message
		if out.Kind == provider.Ambiguous {
			out.Kind = provider.Retryable // asking for a token again is harmless
		}
		return &out
	}
	var ue *url.Error
	if errors.As(err, &ue) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return &provider.Error{Kind: provider.Retryable, Class: provider.Unavailable, Message: "Keystone: " + provider.Redact(err.Error()), Err: err}
	}
	return &provider.Error{Kind: provider.Terminal, Class: provider.InvalidConfig,
		Message: "cannot authenticate with Keystone: " + provider.Redact(err.Error()), Err: err}
}
