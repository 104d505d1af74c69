package fakecloud

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// E2E Networks MyAccount API wire types (PROVIDERS.md "e2e", seed 000).
//
// Served under /e2e, so https://api.e2enetworks.com/myaccount/api/v1/... is
// http://host/e2e/api/v1/...:
//
//	PUT|POST /api/v1/nodes/{node_id}/actions/   run an action
//	GET      /api/v1/nodes/{node_id}/           read a node
//	GET      /api/v1/nodes/                     list nodes, page_no and per_page
//	                                            (the public API's list; the
//	                                            seed does not name it)
//
// The seed says long-running actions answer status "done" at once and the
// node then goes through the workflow asynchronously: a node keeps its old
// state for the workflow delay after any accepted action (docs/fakecloud.md).
//
// Every request needs the query parameters apikey and location, optionally
// project_id (one of the account's projects, the first by default), and the
// header Authorization: Bearer <token>.

// e2eEnvelope is the answer to every call but auth failures and quota.
type e2eEnvelope struct {
	Code    int    `json:"code"`
	Data    any    `json:"data"`
	Errors  any    `json:"errors"`
	Message string `json:"message"`
}

type e2eActionData struct {
	ActionType string `json:"action_type"`
	CreatedAt  string `json:"created_at"`
	ID         int64  `json:"id"`
	ResourceID string `json:"resource_id"`
	Status     string `json:"status"`
}

type e2eNode struct {
	ID       int64  `json:"id"`
	VMID     int64  `json:"vm_id"`
	Name     string `json:"name"`
	Status   string `json:"status"`
	IsLocked bool   `json:"is_locked"`
	Location string `json:"location"`
	Plan     string `json:"plan"`
	OSInfo   string `json:"os_info"`
}

var e2ePositiveInt = regexp.MustCompile(`^[1-9][0-9]{0,18}$`)

// e2eToggles maps the flag actions to the VM flag they set.
var e2eToggles = map[string]struct {
	flag string
	on   bool
}{
	"enable_recovery_mode":          {"recovery_mode", true},
	"disable_recovery_mode":         {"recovery_mode", false},
	"enable_accidental_protection":  {"accidental_protection", true},
	"disable_accidental_protection": {"accidental_protection", false},
	"enable_node_compliance":        {"node_compliance", true},
	"disable_node_compliance":       {"node_compliance", false},
}

func e2eErr(status int, msg string) reply {
	return jsonReply(status, e2eEnvelope{Code: status, Data: map[string]any{}, Errors: map[string]any{}, Message: msg})
}

func e2eNotFound() reply { return e2eErr(http.StatusNotFound, "Node not found") }

// serveE2E routes /e2e/api/v1/...
func (c *Cloud) serveE2E(w http.ResponseWriter, r *http.Request, segs []string) {
	k := call{skin: "e2e"}
	var handle func(location string, d *draw) reply
	nodes := len(segs) >= 3 && segs[0] == "api" && segs[1] == "v1" && segs[2] == "nodes"
	switch {
	case nodes && len(segs) == 3 && r.Method == http.MethodGet:
		handle = func(location string, d *draw) reply { return c.e2eListNodes(r, location, d) }
	case nodes && len(segs) == 4 && r.Method == http.MethodGet:
		k.vmID = segs[3]
		handle = func(location string, _ *draw) reply { return c.e2eGetNode(segs[3], location) }
	case nodes && len(segs) == 5 && segs[4] == "actions" && (r.Method == http.MethodPut || r.Method == http.MethodPost):
		k.vmID, k.action = segs[3], true
		body := readBody(r)
		handle = func(_ string, d *draw) reply { return c.e2ePutAction(segs[3], body, d) }
	default:
		handle = func(string, *draw) reply { return e2eErr(http.StatusNotFound, "Not found.") }
	}
	q := r.URL.Query()
	token := bearer(r)
	c.serve(w, r, k, func(d *draw) reply {
		c.mu.Lock()
		defer c.mu.Unlock()
		if rep, ok := c.e2eAuthLocked(q, token); !ok {
			return rep
		}
		if q.Get("location") == "" {
			return e2eErr(http.StatusBadRequest, "location is required")
		}
		if _, _, reset, ok := c.takeLocked("e2e/" + q.Get("apikey")); !ok {
			rep := jsonReply(http.StatusTooManyRequests, map[string]any{
				"errors": "Request was throttled: API quota exceeded.", "status_code": http.StatusTooManyRequests,
			})
			rep.header.Set("Retry-After", strconv.Itoa(int(max(reset.Sub(c.now()).Round(time.Second)/time.Second, 1))))
			return rep
		}
		return handle(q.Get("location"), d)
	})
}

// e2eAuthLocked checks the API key, the token and the project, as DRF
// answers: 401 for missing or wrong credentials, 403 for a project the
// account does not have.
func (c *Cloud) e2eAuthLocked(q url.Values, token string) (reply, bool) {
	detail := func(status int, msg string) (reply, bool) {
		return jsonReply(status, map[string]string{"detail": msg}), false
	}
	key := q.Get("apikey")
	if key == "" || token == "" {
		return detail(http.StatusUnauthorized, "Authentication credentials were not provided.")
	}
	if !same(key, c.creds.E2EAPIKey) || !same(token, c.creds.E2EToken) {
		return detail(http.StatusUnauthorized, "Invalid API key or token.")
	}
	if p := q.Get("project_id"); p != "" && !slices.Contains(c.creds.E2EProjects, p) {
		return detail(http.StatusForbidden, "You do not have permission to perform this action.")
	}
	return reply{}, true
}

func (c *Cloud) e2eNodeLocked(id string) *VM {
	if !e2ePositiveInt.MatchString(id) {
		return nil
	}
	return c.vmLocked(id)
}

// e2eListPage is the list envelope: E2E's envelope plus the totals its
// list endpoints carry.
type e2eListPage struct {
	e2eEnvelope
	TotalCount      int `json:"total_count"`
	TotalPageNumber int `json:"total_page_number"`
}

// e2eListNodes lists nodes a page at a time (page_no, per_page), in an
// order neither the seed nor the public API fixes (by id unless the world
// says otherwise).
func (c *Cloud) e2eListNodes(r *http.Request, location string, d *draw) reply {
	c.advanceLocked()
	ids := make([]string, 0, len(c.vms))
	for id := range c.vms {
		if e2ePositiveInt.MatchString(id) {
			ids = append(ids, id)
		}
	}
	slices.SortFunc(ids, func(a, b string) int { return cmp.Or(cmp.Compare(len(a), len(b)), strings.Compare(a, b)) })
	ids = arrange(ids, c.listOrderLocked(d, "e2e nodes"), c.seedLocked(), func(id string) string { return id })
	page, size := pageParams(r, "page_no", "per_page")
	out := []e2eNode{}
	for _, id := range pageOf(ids, page, size) {
		out = append(out, c.e2eNodeJSON(c.vms[id], location))
	}
	return jsonReply(http.StatusOK, e2eListPage{
		e2eEnvelope:     e2eEnvelope{Code: http.StatusOK, Data: out, Errors: map[string]any{}, Message: "Success"},
		TotalCount:      len(ids),
		TotalPageNumber: max((len(ids)+size-1)/size, 1),
	})
}

func (c *Cloud) e2eGetNode(id, location string) reply {
	vm := c.e2eNodeLocked(id)
	if vm == nil {
		return e2eNotFound()
	}
	return jsonReply(http.StatusOK, e2eEnvelope{Code: http.StatusOK, Data: c.e2eNodeJSON(vm, location), Errors: map[string]any{}, Message: "Success"})
}

// e2eNodeJSON shows a node. The shared model has one place per VM for every
// skin, so the node reports the location it was asked for.
func (c *Cloud) e2eNodeJSON(vm *VM, location string) e2eNode {
	n, _ := strconv.ParseInt(vm.ID, 10, 64)
	return e2eNode{ID: n, VMID: n + 100000, Name: vm.Name, Status: c.e2eStatusLocked(vm), IsLocked: vm.Locked,
		Location: location, Plan: "C2.4GB", OSInfo: vm.Image}
}

// e2eStatusLocked is the node status: transitional while an action that
// changes it shows, "Failed" after the node's last finished action failed,
// else the power state. An accepted action whose workflow has not begun
// leaves the status as it was.
func (c *Cloud) e2eStatusLocked(vm *VM) string {
	if a := c.showingLocked(vm); a != nil {
		switch a.Type {
		case "power_off":
			return "Stopping"
		case "power_on", "reboot":
			return "Powering"
		case "reinstall":
			return "Reinstalling"
		case "save_images":
			return "Saving"
		}
	}
	last := c.lastLocked(func(a *Action) bool { return a.Skin == "e2e" && a.VMID == vm.ID && a.State != ActionInProgress })
	if last != nil && last.State == ActionErrored {
		return "Failed"
	}
	if vm.Power == PowerOff {
		return "Powered off"
	}
	return "Running"
}

func (c *Cloud) e2ePutAction(id string, body []byte, d *draw) reply {
	vm := c.e2eNodeLocked(id)
	if vm == nil {
		return e2eNotFound()
	}
	var req struct {
		Type string  `json:"type"`
		Name *string `json:"name"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return e2eErr(http.StatusBadRequest, "Invalid request body: "+err.Error())
	}
	name := ""
	if req.Name != nil {
		name = *req.Name
	}
	effect, params, msg := e2eEffect(req.Type, name)
	if msg != "" {
		return e2eErr(http.StatusBadRequest, msg)
	}
	// A locked node refuses everything but unlock (and lock, which changes nothing).
	if vm.Locked && req.Type != "unlock_vm" && req.Type != "lock_vm" {
		return e2eErr(http.StatusBadRequest, "Node is locked. Unlock the node to perform this action.")
	}
	if msg := e2eNoChange(vm, req.Type); msg != "" {
		return e2eErr(http.StatusBadRequest, msg)
	}
	if vm.Busy() {
		// Assumption: the seed does not say; a node mid-action refuses
		// another one as a conflict.
		return e2eErr(http.StatusConflict, "Another action is in progress on this node. Please try again later.")
	}
	a := c.startLocked("e2e", vm, req.Type, params, effect, d)
	// "done" means accepted, not finished: the seed says so of the
	// long-running actions and is silent on the others, so they answer it
	// too. The adversary picks either word.
	status := "done"
	if d.adversarial() && d.oneIn(2) {
		status = "In Progress"
	}
	d.note("e2e answer status %q", status)
	rep := jsonReply(http.StatusOK, e2eEnvelope{Code: http.StatusOK, Errors: map[string]any{}, Message: "Success",
		Data: e2eActionData{ActionType: req.Type, CreatedAt: a.StartedAt.Format(time.RFC3339), ID: a.ID, ResourceID: vm.ID, Status: status}})
	rep.accepted = true
	return rep
}

// e2eEffect validates an action and returns what it does.
func e2eEffect(typ, name string) (Effect, map[string]any, string) {
	params := map[string]any{}
	needName := func() string {
		switch {
		case name == "":
			return "name is required for " + typ
		case utf8.RuneCountInString(name) > 255:
			return "name must be at most 255 characters"
		case strings.TrimSpace(name) != name:
			return "name must not start or end with whitespace"
		}
		params["name"] = name
		return ""
	}
	switch typ {
	case "power_off":
		return GracefulOffEffect, params, ""
	case "power_on":
		return PowerOnEffect, params, ""
	case "reboot":
		return RebootEffect, params, ""
	case "reinstall":
		return ReinstallEffect(""), params, ""
	case "save_images":
		if msg := needName(); msg != "" {
			return nil, nil, msg
		}
		return SnapshotEffect(name), params, ""
	case "rename":
		if msg := needName(); msg != "" {
			return nil, nil, msg
		}
		return RenameEffect(name), params, ""
	case "lock_vm", "unlock_vm":
		lock := typ == "lock_vm"
		return func(vm *VM) error { vm.Locked = lock; return nil }, params, ""
	case "":
		return nil, nil, "type is required"
	}
	if t, ok := e2eToggles[typ]; ok {
		return FlagEffect(t.flag, t.on), params, ""
	}
	return nil, nil, fmt.Sprintf("Invalid action type %q", typ)
}

// e2eNoChange answers an action that would change nothing, as E2E does,
// with an error saying the node is already in that state.
func e2eNoChange(vm *VM, typ string) string {
	if vm.Busy() {
		return ""
	}
	already := func(state string) string { return "Node is already in state " + state }
	switch typ {
	case "power_on":
		if vm.Power == PowerOn {
			return already("Running")
		}
	case "power_off":
		if vm.Power == PowerOff {
			return already("Powered off")
		}
	case "lock_vm":
		if vm.Locked {
			return already("locked")
		}
	case "unlock_vm":
		if !vm.Locked {
			return already("unlocked")
		}
	}
	if t, ok := e2eToggles[typ]; ok && vm.Flags[t.flag] == t.on {
		return already(strings.TrimPrefix(strings.TrimPrefix(typ, "enable_"), "disable_") + " " + map[bool]string{true: "enabled", false: "disabled"}[t.on])
	}
	return ""
}
