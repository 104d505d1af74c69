package fakecloud

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// e2eEnv is a cloud on a clock the test moves, served over HTTP.
type e2eEnv struct {
	t      *testing.T
	cloud  *Cloud
	server *httptest.Server
	mu     sync.Mutex
	now    time.Time
}

func newE2EEnv(t *testing.T) *e2eEnv {
	e := &e2eEnv{t: t, now: time.Now()}
	e.cloud = New(Options{ActionDuration: time.Minute, Now: func() time.Time {
		e.mu.Lock()
		defer e.mu.Unlock()
		return e.now
	}})
	e.server = httptest.NewServer(e.cloud.Handler())
	t.Cleanup(e.server.Close)
	return e
}

// finish moves the clock past the workflow delay and the action.
func (e *e2eEnv) finish() { e.advance(DefaultE2EWorkflowDelay + time.Minute) }

func (e *e2eEnv) advance(d time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.now = e.now.Add(d)
}

var e2eGood = url.Values{"apikey": {"e2edemoapikey"}, "location": {"Delhi"}}

// do sends a request with the demo token unless token is set ("-" sends none).
func (e *e2eEnv) do(method, path string, q url.Values, token, body string) (int, map[string]any) {
	e.t.Helper()
	if token == "" {
		token = "e2e-demo-token"
	}
	req, _ := http.NewRequest(method, e.server.URL+"/e2e"+path+"?"+q.Encode(), strings.NewReader(body))
	if token != "-" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func (e *e2eEnv) action(id, body string) (int, map[string]any) {
	e.t.Helper()
	return e.do(http.MethodPut, "/api/v1/nodes/"+id+"/actions/", e2eGood, "", body)
}

func (e *e2eEnv) node(id string) map[string]any {
	e.t.Helper()
	code, out := e.do(http.MethodGet, "/api/v1/nodes/"+id+"/", e2eGood, "", "")
	if code != http.StatusOK {
		e.t.Fatalf("GET node %s: %d %v", id, code, out)
	}
	return out["data"].(map[string]any)
}

func TestE2EAuth(t *testing.T) {
	e := newE2EEnv(t)
	with := func(k, v string) url.Values {
		q := url.Values{}
		for key, vs := range e2eGood {
			q[key] = vs
		}
		if v == "" {
			q.Del(k)
		} else {
			q.Set(k, v)
		}
		return q
	}
	for _, tc := range []struct {
		q      url.Values
		token  string
		status int
		text   string
	}{
		{with("apikey", ""), "", 401, "Authentication credentials were not provided."},
		{e2eGood, "-", 401, "Authentication credentials were not provided."},
		{with("apikey", "wrong"), "", 401, "Invalid"},
		{e2eGood, "wrong", 401, "Invalid"},
		{with("project_id", "9999"), "", 403, "permission"},
		{with("location", ""), "", 400, "location is required"},
		{with("project_id", "1002"), "", 200, "Success"},
		{e2eGood, "", 200, "Success"},
	} {
		code, out := e.do(http.MethodGet, "/api/v1/nodes/", tc.q, tc.token, "")
		text, _ := out["detail"].(string)
		if text == "" {
			text, _ = out["message"].(string)
		}
		if code != tc.status || !strings.Contains(text, tc.text) {
			t.Errorf("query %v token %q: %d %v, want %d %q", tc.q, tc.token, code, out, tc.status, tc.text)
		}
	}
}

func TestE2ENodeAndStatuses(t *testing.T) {
	e := newE2EEnv(t)
	e.cloud.AddVM(VM{ID: "7", Name: "web-1"})
	n := e.node("7")
	if n["id"] != float64(7) || n["name"] != "web-1" || n["status"] != "Running" || n["is_locked"] != false ||
		n["location"] != "Delhi" || n["plan"] == nil || n["vm_id"] == nil {
		t.Errorf("node %v", n)
	}
	for _, step := range []struct{ body, before, during, after string }{
		{`{"type":"power_off"}`, "Running", "Stopping", "Powered off"},
		{`{"type":"power_on"}`, "Powered off", "Powering", "Running"},
		{`{"type":"reboot"}`, "Running", "Powering", "Running"},
		{`{"type":"reinstall"}`, "Running", "Reinstalling", "Running"},
		{`{"type":"save_images","name":"img-1"}`, "Running", "Saving", "Running"},
	} {
		code, out := e.action("7", step.body)
		data, _ := out["data"].(map[string]any)
		if code != 200 || out["code"] != float64(200) || out["message"] != "Success" || data["resource_id"] != "7" || data["id"] == nil {
			t.Fatalf("%s: %d %v", step.body, code, out)
		}
		// "done" means accepted; the node keeps its old state for a while.
		if data["status"] != "done" {
			t.Errorf("%s: answer status %v, want done", step.body, data["status"])
		}
		if s := e.node("7")["status"]; s != step.before {
			t.Errorf("%s: status %v right after acceptance, want the old %s", step.body, s, step.before)
		}
		e.advance(DefaultE2EWorkflowDelay - time.Millisecond)
		if s := e.node("7")["status"]; s != step.before {
			t.Errorf("%s: status %v just before the workflow delay ends, want the old %s", step.body, s, step.before)
		}
		e.advance(time.Millisecond)
		if s := e.node("7")["status"]; s != step.during {
			t.Errorf("%s: status %v while running, want %s", step.body, s, step.during)
		}
		e.finish()
		if s := e.node("7")["status"]; s != step.after {
			t.Errorf("%s: status %v after, want %s", step.body, s, step.after)
		}
	}
	vm, _ := e.cloud.VM("7")
	if vm.Boots != 3 || vm.Reinstalls != 1 || len(vm.Snapshots) != 1 {
		t.Errorf("vm %+v", vm)
	}

	// A failed action leaves the node Failed until the next action.
	_ = e.cloud.UpdateVM("7", func(vm *VM) { vm.FailNext = "hypervisor error" })
	e.action("7", `{"type":"reboot"}`)
	e.finish()
	if s := e.node("7")["status"]; s != "Failed" {
		t.Errorf("status %v after a failed action", s)
	}
}

func TestE2EActionRules(t *testing.T) {
	e := newE2EEnv(t)
	e.cloud.AddVM(VM{ID: "7"})
	e.cloud.AddVM(VM{ID: "8", Locked: true})
	for _, tc := range []struct {
		id, body string
		status   int
		text     string
	}{
		{"7", `{"type":"explode"}`, 400, "Invalid action type"},
		{"7", `{}`, 400, "type is required"},
		{"7", `{"type":"rename"}`, 400, "name is required"},
		{"7", `{"type":"save_images","name":""}`, 400, "name is required"},
		{"7", `{"type":"rename","name":" web"}`, 400, "whitespace"},
		{"7", `{"type":"rename","name":"` + strings.Repeat("a", 256) + `"}`, 400, "255"},
		{"7", `{"type":"power_on"}`, 400, "already in state"},
		{"7", `{"type":"unlock_vm"}`, 400, "already in state"},
		{"7", `{"type":"disable_node_compliance"}`, 400, "already in state"},
		{"8", `{"type":"reboot"}`, 400, "locked"},
		{"8", `{"type":"lock_vm"}`, 400, "already in state"},
		{"99", `{"type":"reboot"}`, 404, "not found"},
		{"abc", `{"type":"reboot"}`, 404, "not found"},
	} {
		code, out := e.action(tc.id, tc.body)
		msg, _ := out["message"].(string)
		if code != tc.status || out["code"] != float64(tc.status) || !strings.Contains(msg, tc.text) {
			t.Errorf("node %s %s: %d %v, want %d %q", tc.id, tc.body, code, out, tc.status, tc.text)
		}
	}
	if n := e.cloud.CountRequests(func(r Request) bool { return r.Accepted }); n != 0 {
		t.Errorf("%d refused actions started", n)
	}

	// The toggles set flags; a second action while one runs is a conflict.
	if code, _ := e.action("7", `{"type":"enable_recovery_mode"}`); code != 200 {
		t.Fatalf("enable_recovery_mode: %d", code)
	}
	if code, out := e.action("7", `{"type":"reboot"}`); code != http.StatusConflict {
		t.Errorf("action while busy: %d %v", code, out)
	}
	e.finish()
	if vm, _ := e.cloud.VM("7"); !vm.Flags["recovery_mode"] {
		t.Error("recovery_mode not set")
	}

	// unlock is the one action a locked node takes.
	if code, out := e.action("8", `{"type":"unlock_vm"}`); code != 200 {
		t.Fatalf("unlock_vm: %d %v", code, out)
	}
	if e.node("8")["is_locked"] != true {
		t.Error("unlocked before the action finished")
	}
	e.finish()
	if e.node("8")["is_locked"] != false {
		t.Error("still locked")
	}
}

func TestE2ENodeList(t *testing.T) {
	e := newE2EEnv(t)
	for _, id := range []string{"9", "10", "11"} {
		e.cloud.AddVM(VM{ID: id})
	}
	q := url.Values{"page_no": {"2"}, "per_page": {"2"}}
	for k, v := range e2eGood {
		q[k] = v
	}
	code, out := e.do(http.MethodGet, "/api/v1/nodes/", q, "", "")
	data, _ := out["data"].([]any)
	if code != 200 || len(data) != 1 || out["total_count"] != float64(3) || out["total_page_number"] != float64(2) {
		t.Fatalf("page 2 of 2: %d %v", code, out)
	}
	// By id, as numbers: 9, 10, then 11.
	if n, _ := data[0].(map[string]any); n["id"] != float64(11) {
		t.Errorf("page 2 holds %v, want node 11", n)
	}
}

func TestE2EQuota(t *testing.T) {
	e := newE2EEnv(t)
	e.cloud.SetRateBudget(RateBudget{Limit: 1, Window: time.Hour})
	e.do(http.MethodGet, "/api/v1/nodes/", e2eGood, "", "")
	code, out := e.do(http.MethodGet, "/api/v1/nodes/", e2eGood, "", "")
	if code != http.StatusTooManyRequests || out["status_code"] != float64(429) || out["errors"] == nil {
		t.Errorf("over quota: %d %v", code, out)
	}
}
