package fakecloud

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// OpenStack Senlin v1 node actions (PROVIDERS.md, senlin; seed 001), under
// /senlin: POST /v1/nodes/{node}/actions, GET /v1/actions/{id},
// GET /v1/actions, GET /v1/nodes/{node} and PATCH /v1/actions/{id} (cancel,
// microversion 1.12). Every /v1 request needs an X-Auth-Token that
// /identity issued (project scoped) or the static token.
//
// A node is any VM of the cloud: VM.ID is its UUID, VM.Name its name, and
// it is found by UUID, unique name or short id, as Senlin finds nodes. A
// Senlin action is READY for the first quarter of its duration, then
// RUNNING, then SUCCEEDED, FAILED or CANCELLED. A VM with Locked set is one
// the project's policy forbids actions on: Senlin answers 403.

var (
	senlinMinVersion = senlinVersion{1, 0}
	senlinMaxVersion = senlinVersion{1, 14}

	senlinUUIDLike   = regexp.MustCompile(`^(?i)[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$`)
	senlinVersionRe  = regexp.MustCompile(`^([1-9][0-9]*)\.(0|[1-9][0-9]*)$`)
	senlinOperations = []string{"REBOOT", "REBUILD", "RECREATE"}
	senlinSortKeys   = []string{"name", "target", "action", "created_at", "status"}
	senlinStatuses   = []string{"INIT", "WAITING", "READY", "RUNNING", "SUSPENDED", "SUCCEEDED", "FAILED", "CANCELLED", "WAITING_LIFECYCLE_COMPLETION"}
	senlinActions    = []string{
		"CLUSTER_CREATE", "CLUSTER_DELETE", "CLUSTER_UPDATE", "CLUSTER_ADD_NODES", "CLUSTER_DEL_NODES",
		"CLUSTER_RESIZE", "CLUSTER_CHECK", "CLUSTER_RECOVER", "CLUSTER_REPLACE_NODES", "CLUSTER_SCALE_OUT",
		"CLUSTER_SCALE_IN", "CLUSTER_ATTACH_POLICY", "CLUSTER_DETACH_POLICY", "CLUSTER_UPDATE_POLICY", "CLUSTER_OPERATION",
		"NODE_CREATE", "NODE_DELETE", "NODE_UPDATE", "NODE_JOIN", "NODE_LEAVE", "NODE_CHECK", "NODE_RECOVER", "NODE_OPERATION",
	}
)

const (
	senlinReasonRunning   = "The action is being processed."
	senlinReasonSucceeded = "Action completed successfully."
	senlinReasonCancelled = "Action execution cancelled"
	senlinActionTimeout   = 3600
	// senlinEngineID owns (locks) running actions.
	senlinEngineID = "4f0e3c3a-7d1b-4c55-9a3e-6b1d2f8e9c01"
)

type senlinVersion struct{ major, minor int }

func (v senlinVersion) String() string { return fmt.Sprintf("%d.%d", v.major, v.minor) }

func (v senlinVersion) atLeast(o senlinVersion) bool {
	return v.major > o.major || (v.major == o.major && v.minor >= o.minor)
}

// senlinAction is an action as GET /v1/actions/{id} shows it.
type senlinAction struct {
	ID           string         `json:"id"`
	Name         string         `json:"name"`
	Action       string         `json:"action"`
	Target       string         `json:"target"`
	ClusterID    *string        `json:"cluster_id,omitempty"`
	Cause        string         `json:"cause"`
	Owner        *string        `json:"owner"`
	Interval     int            `json:"interval"`
	Timeout      int            `json:"timeout"`
	Status       string         `json:"status"`
	StatusReason string         `json:"status_reason"`
	Inputs       map[string]any `json:"inputs"`
	Outputs      map[string]any `json:"outputs"`
	Data         map[string]any `json:"data"`
	DependsOn    []string       `json:"depends_on"`
	DependedBy   []string       `json:"depended_by"`
	CreatedAt    *string        `json:"created_at"`
	UpdatedAt    *string        `json:"updated_at"`
	StartTime    *float64       `json:"start_time"`
	EndTime      *float64       `json:"end_time"`
	User         string         `json:"user"`
	Project      string         `json:"project"`
}

type senlinNode struct {
	ID           string         `json:"id"`
	Name         string         `json:"name"`
	ClusterID    string         `json:"cluster_id"`
	ProfileID    string         `json:"profile_id"`
	ProfileName  string         `json:"profile_name"`
	PhysicalID   string         `json:"physical_id"`
	Index        int            `json:"index"`
	Role         string         `json:"role"`
	Status       string         `json:"status"`
	StatusReason string         `json:"status_reason"`
	InitAt       string         `json:"init_at"`
	CreatedAt    string         `json:"created_at"`
	UpdatedAt    *string        `json:"updated_at"`
	Metadata     map[string]any `json:"metadata"`
	Data         map[string]any `json:"data"`
	Dependents   map[string]any `json:"dependents"`
	Domain       *string        `json:"domain"`
	User         string         `json:"user"`
	Project      string         `json:"project"`
	Tainted      *bool          `json:"tainted,omitempty"`
}

var senlinTitles = map[int][2]string{
	http.StatusBadRequest:    {"Bad Request", "The server could not comply with the request since it is either malformed or otherwise incorrect."},
	http.StatusUnauthorized:  {"Unauthorized", "This server could not verify that you are authorized to access the document you requested. Either you supplied the wrong credentials (e.g., bad password), or your browser does not understand how to supply the credentials required."},
	http.StatusForbidden:     {"Forbidden", "Access was denied to this resource."},
	http.StatusNotFound:      {"Not Found", "The resource could not be found."},
	http.StatusNotAcceptable: {"Not Acceptable", "The resource could not be generated that was acceptable to your browser (content of type application/json."},
	http.StatusConflict:      {"Conflict", "There was a conflict when trying to complete your request."},
}

// senlinErr is Senlin's error envelope.
func senlinErr(status int, typ, msg string) reply {
	t := senlinTitles[status]
	return jsonReply(status, map[string]any{
		"code": status, "title": t[0], "explanation": t[1],
		"error": map[string]any{"code": status, "message": msg, "type": typ},
	})
}

func senlinBadRequest(msg string) reply { return senlinErr(http.StatusBadRequest, "BadRequest", msg) }

func senlinNotFound(kind, id string) reply {
	return senlinErr(http.StatusNotFound, "ResourceNotFound", fmt.Sprintf("The %s '%s' could not be found.", kind, id))
}

func senlinForbidden() reply {
	return senlinErr(http.StatusForbidden, "Forbidden", "You are not authorized to complete this operation.")
}

func senlinRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("req-%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// serveSenlin routes /senlin/...
func (c *Cloud) serveSenlin(w http.ResponseWriter, r *http.Request, segs []string) {
	k := call{skin: "senlin"}
	if len(segs) == 0 && r.Method == http.MethodGet {
		c.serve(w, r, k, func(*draw) reply { return senlinVersions() })
		return
	}
	v1 := len(segs) >= 2 && segs[0] == "v1"
	var handle func(v senlinVersion, d *draw) reply
	switch {
	case v1 && len(segs) == 3 && segs[1] == "nodes" && r.Method == http.MethodGet:
		k.vmID = c.senlinResolve(segs[2])
		handle = func(v senlinVersion, _ *draw) reply { return c.senlinGetNodeLocked(segs[2], v) }
	case v1 && len(segs) == 4 && segs[1] == "nodes" && segs[3] == "actions" && r.Method == http.MethodPost:
		k.vmID, k.action = c.senlinResolve(segs[2]), true
		body := readBody(r)
		handle = func(v senlinVersion, d *draw) reply { return c.senlinPostActionLocked(segs[2], body, v, d) }
	case v1 && len(segs) == 2 && segs[1] == "actions" && r.Method == http.MethodGet:
		q := r.URL.Query()
		if target := q.Get("target"); target != "" {
			k.vmID = c.senlinResolve(target) // so the VM's story shows its lookups
		}
		handle = func(v senlinVersion, d *draw) reply { return c.senlinListActionsLocked(q, v, d) }
	case v1 && len(segs) == 3 && segs[1] == "actions" && r.Method == http.MethodGet:
		handle = func(v senlinVersion, _ *draw) reply { return c.senlinGetActionLocked(segs[2], v) }
	case v1 && len(segs) == 3 && segs[1] == "actions" && r.Method == http.MethodPatch:
		body := readBody(r)
		handle = func(v senlinVersion, _ *draw) reply { return c.senlinCancelLocked(segs[2], body, v) }
	default:
		handle = func(senlinVersion, *draw) reply {
			return senlinErr(http.StatusNotFound, "HTTPNotFound", "The resource could not be found.")
		}
	}
	token := r.Header.Get("X-Auth-Token")
	c.serve(w, r, k, func(d *draw) reply {
		c.mu.Lock()
		defer c.mu.Unlock()
		var rep reply
		if !c.ksProjectTokenLocked(token) {
			rep = senlinErr(http.StatusUnauthorized, "Unauthorized", "The request you have made requires authentication.")
			rep.header.Set("WWW-Authenticate", `Keystone uri="`+requestBase(r)+`/identity"`)
		} else if v, bad, ok := senlinMicroversion(r.Header); !ok {
			rep = bad
		} else {
			rep = handle(v, d)
			rep.header.Set("OpenStack-API-Version", "clustering "+v.String())
			rep.header.Set("Vary", "OpenStack-API-Version")
		}
		rep.header.Set("X-Openstack-Request-Id", senlinRequestID())
		return rep
	})
}

func senlinVersions() reply {
	return jsonReply(http.StatusMultipleChoices, map[string]any{"versions": []any{map[string]any{
		"id": "1.0", "status": "CURRENT", "updated": "2016-01-18T00:00:00Z",
		"min_version": senlinMinVersion.String(), "max_version": senlinMaxVersion.String(),
		"links":       []map[string]string{{"href": "/v1/", "rel": "self"}},
		"media-types": []map[string]string{{"base": "application/json", "type": "application/vnd.openstack.clustering-v1+json"}},
	}}})
}

// senlinMicroversion reads OpenStack-API-Version: clustering X.Y (1.0 when absent).
func senlinMicroversion(h http.Header) (senlinVersion, reply, bool) {
	var want string
	for _, item := range strings.Split(strings.Join(h.Values("OpenStack-API-Version"), ","), ",") {
		f := strings.Fields(item)
		if len(f) == 2 && strings.EqualFold(f[0], "clustering") {
			want = f[1]
		}
	}
	if want == "" {
		return senlinMinVersion, reply{}, true
	}
	if strings.EqualFold(want, "latest") {
		return senlinMaxVersion, reply{}, true
	}
	m := senlinVersionRe.FindStringSubmatch(want)
	if m == nil {
		return senlinVersion{}, senlinErr(http.StatusBadRequest, "HTTPBadRequest",
			fmt.Sprintf("API Version String '%s' is of invalid format. It must be of format 'major.minor'.", want)), false
	}
	major, _ := strconv.Atoi(m[1])
	minor, _ := strconv.Atoi(m[2])
	v := senlinVersion{major, minor}
	if !v.atLeast(senlinMinVersion) || !senlinMaxVersion.atLeast(v) {
		return senlinVersion{}, senlinErr(http.StatusNotAcceptable, "InvalidGlobalAPIVersion",
			fmt.Sprintf("Version '%s' is not supported by the API. Minimum is '%s' and maximum is '%s'.", want, senlinMinVersion, senlinMaxVersion)), false
	}
	return v, reply{}, true
}

// senlinResolve maps a node identity to its VM id for the request log.
func (c *Cloud) senlinResolve(identity string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if vm, _ := c.senlinFindLocked(identity); vm != nil {
		return vm.ID
	}
	return identity
}

// senlinFindLocked finds a node as Senlin does: a UUID-like identity by id,
// then by name; anything else by name, then by short id (an id prefix).
func (c *Cloud) senlinFindLocked(identity string) (*VM, reply) {
	c.advanceLocked()
	uuidLike := senlinUUIDLike.MatchString(identity)
	if uuidLike {
		if vm := c.vms[identity]; vm != nil {
			return vm, reply{}
		}
	}
	match := func(keep func(*VM) bool) []*VM {
		var out []*VM
		for _, vm := range c.vms {
			if keep(vm) {
				out = append(out, vm)
			}
		}
		return out
	}
	found := match(func(vm *VM) bool { return vm.Name == identity })
	if len(found) == 0 && !uuidLike && identity != "" {
		found = match(func(vm *VM) bool { return strings.HasPrefix(vm.ID, identity) })
	}
	switch len(found) {
	case 0:
		return nil, senlinNotFound("node", identity)
	case 1:
		return found[0], reply{}
	}
	return nil, senlinErr(http.StatusBadRequest, "MultipleChoices",
		fmt.Sprintf("Multiple results found matching the query criteria '%s'. Please be more specific.", identity))
}

func (c *Cloud) senlinPostActionLocked(identity string, body []byte, v senlinVersion, d *draw) reply {
	var req map[string]json.RawMessage
	if len(bytes.TrimSpace(body)) > 0 && json.Unmarshal(body, &req) != nil {
		return senlinErr(http.StatusBadRequest, "HTTPBadRequest", "The server could not comply with the request since it is either malformed or otherwise incorrect.")
	}
	switch len(req) {
	case 0:
		return senlinErr(http.StatusBadRequest, "HTTPBadRequest", "No action specified.")
	case 1:
	default:
		return senlinErr(http.StatusBadRequest, "HTTPBadRequest", "Multiple actions specified.")
	}
	var name string
	var raw json.RawMessage
	for k, v := range req {
		name, raw = k, v
	}
	if name != "check" && name != "recover" {
		return senlinErr(http.StatusBadRequest, "HTTPBadRequest", fmt.Sprintf("Unrecognized action '%s' specified", name))
	}
	var params map[string]any
	if json.Unmarshal(raw, &params) != nil || params == nil {
		return senlinErr(http.StatusBadRequest, "HTTPBadRequest", "The params provided is not a map.")
	}
	vm, rep := c.senlinFindLocked(identity)
	if vm == nil {
		return rep
	}
	typ, inputs, effect := "NODE_CHECK", params, Effect(nil)
	if name == "recover" {
		var msg string
		if inputs, effect, msg = senlinRecover(params, v); msg != "" {
			return senlinBadRequest(msg)
		}
		typ = "NODE_RECOVER"
	}
	if vm.Locked {
		return senlinForbidden()
	}
	if p := vm.pending; p != nil {
		if p.Skin == "senlin" && c.senlinStatusLocked(p).Status == "RUNNING" {
			return senlinErr(http.StatusConflict, "ResourceIsLocked",
				fmt.Sprintf("%s for node '%s' cannot be completed because it is already locked.", typ, vm.ID))
		}
		return senlinErr(http.StatusConflict, "ActionConflict",
			fmt.Sprintf("The %s action for target %s conflicts with the following action(s): %s", typ, vm.ID, p.UUID))
	}
	a := c.startLocked("senlin", vm, typ, inputs, effect, d)
	rep = jsonReply(http.StatusAccepted, map[string]any{"action": a.UUID})
	rep.header.Set("Location", "/v1/actions/"+a.UUID)
	rep.accepted = true
	return rep
}

// senlinRecover validates recover params as Senlin's conductor does and
// returns the action's inputs and effect, or the 400 message.
func senlinRecover(params map[string]any, v senlinVersion) (map[string]any, Effect, string) {
	rest := maps.Clone(params)
	inputs := map[string]any{}
	op, rebootType := "RECREATE", "HARD" // Senlin's defaults
	if raw, ok := rest["operation"]; ok {
		delete(rest, "operation")
		s, isString := raw.(string)
		if !isString {
			return nil, nil, "operation has to be a string"
		}
		op = strings.ToUpper(s)
		if !slices.Contains(senlinOperations, op) {
			return nil, nil, fmt.Sprintf("Operation value '%s' has to be one of the following: %s.", s, strings.Join(senlinOperations, ", "))
		}
		inputs["operation"] = s
		if opParams, ok := rest["operation_params"]; ok {
			delete(rest, "operation_params")
			if op == "REBOOT" {
				m, isMap := opParams.(map[string]any)
				if !isMap {
					return nil, nil, "operation_params must be a map"
				}
				if t, ok := m["type"]; ok {
					ts, _ := t.(string)
					if ts = strings.ToUpper(ts); ts != "SOFT" && ts != "HARD" {
						return nil, nil, fmt.Sprintf("Type field '%v' in operation_params has to be one of the following: SOFT, HARD.", t)
					}
					rebootType = ts
				}
			}
			inputs["operation_params"] = opParams
		}
	}
	keys := []string{"delete_timeout", "force_recreate"}
	if v.atLeast(senlinVersion{1, 6}) {
		keys = append(keys, "check") // recover's check exists from 1.6
	}
	for _, key := range keys {
		if val, ok := rest[key]; ok {
			delete(rest, key)
			inputs[key] = val
		}
	}
	if len(rest) > 0 {
		unknown := slices.Sorted(maps.Keys(rest))
		quoted := make([]string, len(unknown))
		for i, k := range unknown {
			quoted[i] = "'" + k + "'"
		}
		return nil, nil, fmt.Sprintf("Action parameter [%s] is not recognizable.", strings.Join(quoted, ", "))
	}
	var effect Effect
	switch {
	case op == "REBOOT" && rebootType == "SOFT":
		effect = RebootEffect
	case op == "REBOOT":
		effect = PowerCycleEffect
	default: // REBUILD, RECREATE
		effect = ReinstallEffect("")
	}
	if check, _ := inputs["check"].(bool); check {
		// With check, Senlin leaves a node that is ACTIVE alone.
		recover := effect
		effect = func(vm *VM) error {
			if vm.Power == PowerOn {
				return nil
			}
			return recover(vm)
		}
	}
	return inputs, effect, ""
}

// senlinStatusLocked derives the Senlin view of an action.
func (c *Cloud) senlinStatusLocked(a *Action) senlinAction {
	out := senlinAction{Status: "READY"}
	created := a.StartedAt.Format(time.RFC3339)
	out.CreatedAt = &created
	running := a.ShownAt.Add(time.Duration(float64(a.duration) * a.readyShare))
	epoch := func(t time.Time) *float64 { f := float64(t.UnixNano()) / 1e9; return &f }
	stamp := func(t time.Time) *string { s := t.UTC().Format(time.RFC3339); return &s }
	switch a.State {
	case ActionInProgress:
		if now := c.now(); !now.Before(running) {
			out.Status, out.StatusReason = "RUNNING", senlinReasonRunning
			out.StartTime, out.UpdatedAt = epoch(running), stamp(running)
			owner := senlinEngineID
			out.Owner = &owner
		}
		return out
	case ActionCompleted:
		out.Status, out.StatusReason = "SUCCEEDED", senlinReasonSucceeded
	default:
		out.Status, out.StatusReason = "FAILED", a.Message
		switch {
		case a.Message == senlinReasonCancelled:
			out.Status = "CANCELLED"
		case a.Message == "" && a.Type == "NODE_CHECK":
			out.StatusReason = "Node check failed."
		case a.Message == "":
			out.StatusReason = "Node recover failed."
		}
	}
	if !running.After(a.CompletedAt) {
		out.StartTime = epoch(running)
	}
	out.EndTime, out.UpdatedAt = epoch(a.CompletedAt), stamp(a.CompletedAt)
	return out
}

func (c *Cloud) senlinActionJSON(a *Action, v senlinVersion) senlinAction {
	out := c.senlinStatusLocked(a)
	prefix := a.VMID
	if len(prefix) > 8 {
		prefix = prefix[:8]
	}
	out.ID, out.Action, out.Target = a.UUID, a.Type, a.VMID
	out.Name = strings.ToLower(a.Type) + "_" + prefix
	out.Cause, out.Interval, out.Timeout = "RPC Request", -1, senlinActionTimeout
	out.Inputs, out.Outputs, out.Data = a.Params, map[string]any{}, map[string]any{}
	if out.Inputs == nil {
		out.Inputs = map[string]any{}
	}
	out.DependsOn, out.DependedBy = []string{}, []string{}
	out.User, out.Project = KeystoneUserID(c.creds.KeystoneUser), KeystoneProjectID(c.creds.KeystoneProject)
	if v.atLeast(senlinVersion{1, 14}) {
		none := ""
		out.ClusterID = &none
	}
	return out
}

// senlinActionLocked finds a Senlin action by id.
func (c *Cloud) senlinActionLocked(id string) *Action {
	a := c.actionByUUIDLocked(id)
	if a == nil || a.Skin != "senlin" {
		return nil
	}
	return a
}

func (c *Cloud) senlinGetActionLocked(id string, v senlinVersion) reply {
	a := c.senlinActionLocked(id)
	if a == nil {
		return senlinNotFound("action", id)
	}
	return jsonReply(http.StatusOK, map[string]any{"action": c.senlinActionJSON(a, v)})
}

// senlinCancelLocked is PATCH /v1/actions/{id} {"action": {"status": "CANCELLED"}}.
func (c *Cloud) senlinCancelLocked(id string, body []byte, v senlinVersion) reply {
	if !v.atLeast(senlinVersion{1, 12}) {
		return senlinErr(http.StatusBadRequest, "MethodVersionNotFound", fmt.Sprintf("API version '%s' is not supported on this method.", v))
	}
	var req struct {
		Action struct {
			Status string `json:"status"`
		} `json:"action"`
	}
	if json.Unmarshal(body, &req) != nil || req.Action.Status != "CANCELLED" {
		return senlinBadRequest(fmt.Sprintf("Value '%s' is not acceptable for field 'status'.", req.Action.Status))
	}
	a := c.senlinActionLocked(id)
	if a == nil {
		return senlinNotFound("action", id)
	}
	if a.State != ActionInProgress {
		st := c.senlinStatusLocked(a).Status
		return senlinErr(http.StatusConflict, "ActionImmutable", fmt.Sprintf(
			"Action (%s) is in status (%s) while expected status must be one of (INIT, WAITING, READY, RUNNING, WAITING_LIFECYCLE_COMPLETION).", id[:8], st))
	}
	a.State, a.Message, a.CompletedAt = ActionErrored, senlinReasonCancelled, c.now().UTC()
	if vm := c.vms[a.VMID]; vm != nil && vm.pending == a {
		c.setPendingLocked(vm, nil)
	}
	return jsonReply(http.StatusAccepted, nil)
}

func (c *Cloud) senlinGetNodeLocked(identity string, v senlinVersion) reply {
	vm, rep := c.senlinFindLocked(identity)
	if vm == nil {
		return rep
	}
	n := senlinNode{
		ID: vm.ID, Name: vm.Name, ProfileID: keystoneID("profile", "server"), ProfileName: "server-profile",
		PhysicalID: keystoneID("server", fmt.Sprintf("%s/%d", vm.ID, vm.Reinstalls)), Index: -1,
		Status: "ACTIVE", StatusReason: "Creation succeeded",
		InitAt: "2026-01-01T00:00:00Z", CreatedAt: "2026-01-01T00:00:05Z",
		Metadata: map[string]any{}, Data: map[string]any{}, Dependents: map[string]any{},
		User: KeystoneUserID(c.creds.KeystoneUser), Project: KeystoneProjectID(c.creds.KeystoneProject),
	}
	switch {
	case c.showingLocked(vm) != nil && vm.pending.Type == "NODE_RECOVER":
		n.Status, n.StatusReason = "RECOVERING", "Recovery in progress"
	case vm.Power != PowerOn:
		n.Status, n.StatusReason = "ERROR", "Check: Node is not ACTIVE."
	}
	if v.atLeast(senlinVersion{1, 13}) {
		tainted := false
		n.Tainted = &tainted
	}
	return jsonReply(http.StatusOK, map[string]any{"node": n})
}

// senlinListActionsLocked is GET /v1/actions with Senlin's query parameters.
func (c *Cloud) senlinListActionsLocked(q url.Values, v senlinVersion, d *draw) reply {
	allowed := []string{"name", "cluster_id", "target", "action", "status", "limit", "marker", "sort", "global_project"}
	for _, key := range slices.Sorted(maps.Keys(q)) {
		if !slices.Contains(allowed, key) {
			return senlinErr(http.StatusBadRequest, "HTTPBadRequest", "Invalid parameter "+key)
		}
	}
	if g := q.Get("global_project"); g != "" {
		on, err := strconv.ParseBool(g)
		if err != nil {
			return senlinBadRequest(fmt.Sprintf("Unrecognized value '%s' for 'global_project', acceptable values are: 'false', 'true'", g))
		}
		if on {
			return senlinForbidden() // only admins list every project's actions
		}
	}
	for field, valid := range map[string][]string{"action": senlinActions, "status": senlinStatuses} {
		for _, val := range q[field] {
			if !slices.Contains(valid, val) {
				return senlinBadRequest(fmt.Sprintf("Value '%s' is not acceptable for field '%s'.", val, field))
			}
		}
	}
	limit := -1
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			return senlinBadRequest(fmt.Sprintf("The value for limit must be an integer: '%s'.", s))
		}
		if n < 0 {
			return senlinBadRequest("Value must be >= 0 for field 'limit'.")
		}
		limit = n
	}
	type sortKey struct {
		key  string
		desc bool
	}
	sortKeys := []sortKey{{key: "created_at"}}
	if s := q.Get("sort"); s != "" {
		sortKeys = nil
		for _, part := range strings.Split(s, ",") {
			key, dir, _ := strings.Cut(part, ":")
			if !slices.Contains(senlinSortKeys, key) {
				return senlinBadRequest(fmt.Sprintf("Unsupported sort key '%s' for 'sort'.", key))
			}
			if dir != "" && dir != "asc" && dir != "desc" {
				return senlinBadRequest(fmt.Sprintf("Unsupported sort dir '%s' for 'sort'.", dir))
			}
			sortKeys = append(sortKeys, sortKey{key, dir == "desc"})
		}
	}

	in := func(field, val string) bool { return len(q[field]) == 0 || slices.Contains(q[field], val) }
	type entry struct {
		created time.Time
		sa      senlinAction
	}
	var entries []entry
	for _, a := range c.listedLocked(func(a *Action) bool { return a.Skin == "senlin" }) {
		sa := c.senlinActionJSON(a, v)
		if in("target", sa.Target) && in("action", sa.Action) && in("status", sa.Status) && in("name", sa.Name) &&
			in("cluster_id", "") {
			// Senlin stores created_at in whole seconds and its paging
			// breaks ties by id, not by when an action came.
			entries = append(entries, entry{a.StartedAt.Truncate(time.Second), sa})
		}
	}
	field := func(a senlinAction, key string) string {
		switch key {
		case "name":
			return a.Name
		case "target":
			return a.Target
		case "action":
			return a.Action
		}
		return a.Status
	}
	sort.SliceStable(entries, func(i, j int) bool {
		for _, k := range sortKeys {
			var cmp int
			if k.key == "created_at" {
				cmp = entries[i].created.Compare(entries[j].created)
			} else {
				cmp = strings.Compare(field(entries[i].sa, k.key), field(entries[j].sa, k.key))
			}
			if k.desc {
				cmp = -cmp
			}
			if cmp != 0 {
				return cmp < 0
			}
		}
		return entries[i].sa.ID < entries[j].sa.ID
	})
	items := make([]senlinAction, 0, len(entries))
	for _, e := range entries {
		items = append(items, e.sa)
	}
	if m := q.Get("marker"); m != "" {
		at := slices.IndexFunc(items, func(a senlinAction) bool { return a.ID == m })
		if at < 0 {
			return senlinNotFound("action", m)
		}
		items = items[at+1:]
	}
	if limit >= 0 && len(items) > limit {
		items = items[:limit]
	}
	return jsonReply(http.StatusOK, map[string]any{"actions": items})
}
