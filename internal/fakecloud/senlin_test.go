package fakecloud_test

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nodeaction/nodeaction-operator/internal/fakecloud"
)

const (
	slNode  = "5e1a0001-0c1d-4e2f-8a3b-000000000001"
	slOther = "5e1a0002-0c1d-4e2f-8a3b-000000000002"
)

type slEnv struct {
	t      *testing.T
	cloud  *fakecloud.Cloud
	clock  *ksClock
	server *httptest.Server
}

func newSlEnv(t *testing.T) *slEnv {
	clk := &ksClock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	cloud := fakecloud.New(fakecloud.Options{ActionDuration: time.Minute, Now: clk.Now})
	server := httptest.NewServer(cloud.Handler())
	t.Cleanup(server.Close)
	cloud.AddVM(fakecloud.VM{ID: slNode, Name: "web-1"})
	cloud.AddVM(fakecloud.VM{ID: slOther, Name: "web-2"})
	return &slEnv{t: t, cloud: cloud, clock: clk, server: server}
}

// do calls Senlin with the static token at a microversion ("" for none).
func (e *slEnv) do(method, path, version, body string) (int, http.Header, map[string]any) {
	e.t.Helper()
	h := map[string]string{"X-Auth-Token": fakecloud.DefaultCredentials().KeystoneStaticToken}
	if version != "" {
		h["OpenStack-API-Version"] = "clustering " + version
	}
	return ksDo(e.t, method, e.server.URL+"/senlin"+path, h, body)
}

func errorOf(body map[string]any) (string, string) {
	e, _ := body["error"].(map[string]any)
	msg, _ := e["message"].(string)
	typ, _ := e["type"].(string)
	return msg, typ
}

func TestSenlinErrors(t *testing.T) {
	e := newSlEnv(t)
	cases := []struct {
		name, path, version, body string
		code                      int
		msg, typ                  string
	}{
		{"no action", "/v1/nodes/" + slNode + "/actions", "", ``, 400, "No action specified.", "HTTPBadRequest"},
		{"empty body", "/v1/nodes/" + slNode + "/actions", "", `{}`, 400, "No action specified.", "HTTPBadRequest"},
		{"two actions", "/v1/nodes/" + slNode + "/actions", "", `{"check":{},"recover":{}}`, 400, "Multiple actions specified.", "HTTPBadRequest"},
		{"unknown action", "/v1/nodes/" + slNode + "/actions", "", `{"reboot":{}}`, 400, "Unrecognized action 'reboot' specified", "HTTPBadRequest"},
		{"params not a map", "/v1/nodes/" + slNode + "/actions", "", `{"check":[]}`, 400, "The params provided is not a map.", "HTTPBadRequest"},
		{"unknown node", "/v1/nodes/" + strings.Replace(slNode, "1a0001", "ff0001", 1) + "/actions", "", `{"check":{}}`, 404,
			"The node '" + strings.Replace(slNode, "1a0001", "ff0001", 1) + "' could not be found.", "ResourceNotFound"},
		{"bad operation", "/v1/nodes/" + slNode + "/actions", "", `{"recover":{"operation":"reset"}}`, 400,
			"Operation value 'reset' has to be one of the following: REBOOT, REBUILD, RECREATE.", "BadRequest"},
		{"operation not a string", "/v1/nodes/" + slNode + "/actions", "", `{"recover":{"operation":1}}`, 400, "operation has to be a string", "BadRequest"},
		{"bad reboot type", "/v1/nodes/" + slNode + "/actions", "", `{"recover":{"operation":"reboot","operation_params":{"type":"gentle"}}}`, 400,
			"Type field 'gentle' in operation_params has to be one of the following: SOFT, HARD.", "BadRequest"},
		{"reboot params not a map", "/v1/nodes/" + slNode + "/actions", "", `{"recover":{"operation":"REBOOT","operation_params":"SOFT"}}`, 400,
			"operation_params must be a map", "BadRequest"},
		{"unknown parameter", "/v1/nodes/" + slNode + "/actions", "", `{"recover":{"operation":"REBUILD","force":true,"zap":1}}`, 400,
			"Action parameter ['force', 'zap'] is not recognizable.", "BadRequest"},
		{"operation_params without operation", "/v1/nodes/" + slNode + "/actions", "", `{"recover":{"operation_params":{"type":"SOFT"}}}`, 400,
			"Action parameter ['operation_params'] is not recognizable.", "BadRequest"},
		{"check before 1.6", "/v1/nodes/" + slNode + "/actions", "1.5", `{"recover":{"operation":"REBUILD","check":true}}`, 400,
			"Action parameter ['check'] is not recognizable.", "BadRequest"},
		{"version too new", "/v1/actions", "1.15", ``, 406,
			"Version '1.15' is not supported by the API. Minimum is '1.0' and maximum is '1.14'.", "InvalidGlobalAPIVersion"},
		{"version 2", "/v1/actions", "2.0", ``, 406,
			"Version '2.0' is not supported by the API. Minimum is '1.0' and maximum is '1.14'.", "InvalidGlobalAPIVersion"},
		{"version malformed", "/v1/actions", "one", ``, 400,
			"API Version String 'one' is of invalid format. It must be of format 'major.minor'.", "HTTPBadRequest"},
		{"unknown list parameter", "/v1/actions?target=x&page=2", "", ``, 400, "Invalid parameter page", "HTTPBadRequest"},
		{"unknown sort key", "/v1/actions?sort=id:desc", "", ``, 400, "Unsupported sort key 'id' for 'sort'.", "BadRequest"},
		{"negative limit", "/v1/actions?limit=-1", "", ``, 400, "Value must be >= 0 for field 'limit'.", "BadRequest"},
		{"bad action filter", "/v1/actions?action=NODE_REBOOT", "", ``, 400, "Value 'NODE_REBOOT' is not acceptable for field 'action'.", "BadRequest"},
		{"every project", "/v1/actions?global_project=true", "", ``, 403, "You are not authorized to complete this operation.", "Forbidden"},
		{"unknown action id", "/v1/actions/0f000000-0000-4000-8000-000000000000", "", ``, 404,
			"The action '0f000000-0000-4000-8000-000000000000' could not be found.", "ResourceNotFound"},
	}
	for _, tc := range cases {
		method := http.MethodPost
		if strings.HasPrefix(tc.path, "/v1/actions") {
			method = http.MethodGet
		}
		code, _, body := e.do(method, tc.path, tc.version, tc.body)
		msg, typ := errorOf(body)
		if code != tc.code || msg != tc.msg || typ != tc.typ || body["code"] != float64(tc.code) || body["title"] == "" || body["explanation"] == nil {
			t.Errorf("%s: %d %v, want %d %s %q", tc.name, code, body, tc.code, tc.typ, tc.msg)
		}
	}
	if n := e.cloud.AcceptedActions(slNode); n != 0 {
		t.Errorf("%d actions started by bad requests", n)
	}

	code, h, body := ksDo(t, http.MethodGet, e.server.URL+"/senlin/v1/actions", nil, "")
	if msg, _ := errorOf(body); code != http.StatusUnauthorized || msg == "" || !strings.Contains(h.Get("WWW-Authenticate"), "/identity") {
		t.Errorf("no token: %d %v", code, body)
	}
}

func TestSenlinActionLifecycle(t *testing.T) {
	e := newSlEnv(t)
	code, h, body := e.do(http.MethodPost, "/v1/nodes/web-1/actions", "1.14", `{"recover":{"operation":"reboot","operation_params":{"type":"soft"}}}`)
	id, _ := body["action"].(string)
	if code != http.StatusAccepted || id == "" || h.Get("Location") != "/v1/actions/"+id || h.Get("OpenStack-API-Version") != "clustering 1.14" {
		t.Fatalf("POST: %d %v %v", code, h, body)
	}
	get := func() map[string]any {
		code, _, body := e.do(http.MethodGet, "/v1/actions/"+id, "1.14", "")
		if code != http.StatusOK {
			t.Fatalf("GET: %d %v", code, body)
		}
		a, _ := body["action"].(map[string]any)
		return a
	}
	a := get()
	for _, k := range []string{"id", "name", "action", "target", "cause", "owner", "interval", "timeout", "status", "status_reason", "inputs",
		"outputs", "data", "depends_on", "depended_by", "created_at", "updated_at", "start_time", "end_time", "user", "project", "cluster_id"} {
		if _, ok := a[k]; !ok {
			t.Errorf("action lacks %q", k)
		}
	}
	stamp := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$`)
	if a["name"] != "node_recover_"+slNode[:8] || a["action"] != "NODE_RECOVER" || a["target"] != slNode || a["cause"] != "RPC Request" ||
		a["interval"] != float64(-1) || a["status"] != "READY" || a["start_time"] != nil || !stamp.MatchString(a["created_at"].(string)) {
		t.Errorf("READY action: %v", a)
	}
	if in := jsonString(a["inputs"]); in != `{"operation":"reboot","operation_params":{"type":"soft"}}` {
		t.Errorf("inputs %s", in)
	}

	// Another action on the node conflicts, then finds the node locked.
	code, _, body = e.do(http.MethodPost, "/v1/nodes/"+slNode+"/actions", "", `{"check":{}}`)
	if msg, typ := errorOf(body); code != http.StatusConflict || typ != "ActionConflict" ||
		msg != "The NODE_CHECK action for target "+slNode+" conflicts with the following action(s): "+id {
		t.Errorf("while READY: %d %v", code, body)
	}
	e.clock.Add(20 * time.Second)
	if a = get(); a["status"] != "RUNNING" || a["status_reason"] != "The action is being processed." || a["start_time"] == nil || a["end_time"] != nil {
		t.Errorf("RUNNING action: %v", a)
	}
	code, _, body = e.do(http.MethodPost, "/v1/nodes/"+slNode+"/actions", "", `{"check":{}}`)
	if msg, typ := errorOf(body); code != http.StatusConflict || typ != "ResourceIsLocked" ||
		msg != "NODE_CHECK for node '"+slNode+"' cannot be completed because it is already locked." {
		t.Errorf("while RUNNING: %d %v", code, body)
	}
	e.clock.Add(time.Minute)
	if a = get(); a["status"] != "SUCCEEDED" || a["status_reason"] != "Action completed successfully." || a["end_time"] == nil {
		t.Errorf("SUCCEEDED action: %v", a)
	}
	if vm, _ := e.cloud.VM(slNode); vm.Boots != 1 {
		t.Errorf("boots = %d after a soft reboot", vm.Boots)
	}

	// FailNext ends the next action FAILED with its text.
	_ = e.cloud.UpdateVM(slOther, func(vm *fakecloud.VM) { vm.FailNext = "server vanished" })
	_, _, body = e.do(http.MethodPost, "/v1/nodes/"+slOther[:8]+"/actions", "", `{"check":{}}`)
	id, _ = body["action"].(string)
	e.clock.Add(2 * time.Minute)
	if a = get(); a["status"] != "FAILED" || a["status_reason"] != "server vanished" || a["target"] != slOther {
		t.Errorf("FAILED action: %v", a)
	}
}

func TestSenlinNodeLookup(t *testing.T) {
	e := newSlEnv(t)
	e.cloud.AddVM(fakecloud.VM{ID: "5e1a0003-0c1d-4e2f-8a3b-000000000003", Name: "web-2"})
	for identity, want := range map[string]string{slNode: slNode, "web-1": slNode, slNode[:8]: slNode} {
		code, _, body := e.do(http.MethodGet, "/v1/nodes/"+identity, "", "")
		node, _ := body["node"].(map[string]any)
		if code != http.StatusOK || node["id"] != want {
			t.Errorf("node %q: %d %v", identity, code, body)
		}
	}
	for _, identity := range []string{"web-2", "5e1a000"} {
		code, _, body := e.do(http.MethodPost, "/v1/nodes/"+identity+"/actions", "", `{"check":{}}`)
		if msg, typ := errorOf(body); code != http.StatusBadRequest || typ != "MultipleChoices" ||
			msg != "Multiple results found matching the query criteria '"+identity+"'. Please be more specific." {
			t.Errorf("ambiguous %q: %d %v", identity, code, body)
		}
	}
	_ = e.cloud.UpdateVM(slNode, func(vm *fakecloud.VM) { vm.Locked = true })
	if code, _, _ := e.do(http.MethodPost, "/v1/nodes/"+slNode+"/actions", "", `{"check":{}}`); code != http.StatusForbidden {
		t.Errorf("locked node: %d", code)
	}
}

func TestSenlinActionList(t *testing.T) {
	e := newSlEnv(t)
	e.cloud.SetActionDuration(time.Second)
	var ids []string
	for _, call := range []struct{ node, body string }{
		{slNode, `{"check":{}}`}, {slOther, `{"check":{}}`}, {slNode, `{"recover":{"operation":"REBUILD"}}`}, {slNode, `{"check":{}}`},
	} {
		code, _, body := e.do(http.MethodPost, "/v1/nodes/"+call.node+"/actions", "", call.body)
		if code != http.StatusAccepted {
			t.Fatalf("POST: %d %v", code, body)
		}
		ids = append(ids, body["action"].(string))
		e.clock.Add(2 * time.Second)
	}
	list := func(query string) []string {
		code, _, body := e.do(http.MethodGet, "/v1/actions"+query, "", "")
		if code != http.StatusOK {
			t.Fatalf("list %s: %d %v", query, code, body)
		}
		var out []string
		for _, a := range body["actions"].([]any) {
			out = append(out, a.(map[string]any)["id"].(string))
		}
		return out
	}
	same := func(got []string, want ...string) bool { return strings.Join(got, ",") == strings.Join(want, ",") }
	if got := list(""); !same(got, ids...) {
		t.Errorf("default order %v, want oldest first %v", got, ids)
	}
	if got := list("?target=" + slNode + "&action=NODE_CHECK&sort=created_at:desc"); !same(got, ids[3], ids[0]) {
		t.Errorf("node's checks newest first: %v", got)
	}
	if got := list("?sort=created_at:desc&limit=2"); !same(got, ids[3], ids[2]) {
		t.Errorf("first page: %v", got)
	}
	if got := list("?sort=created_at:desc&limit=2&marker=" + ids[2]); !same(got, ids[1], ids[0]) {
		t.Errorf("second page: %v", got)
	}
	if got := list("?action=NODE_RECOVER&status=SUCCEEDED&global_project=false"); !same(got, ids[2]) {
		t.Errorf("succeeded recovers: %v", got)
	}
}
