package fakecloud_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nodeaction/nodeaction-operator/internal/fakecloud"
)

// TestCloudsForWire checks the skin against PROVIDERS.md directly, without
// the driver.
func TestCloudsForWire(t *testing.T) {
	var now atomic.Int64 // the cloud's clock, in unix nanoseconds
	now.Store(time.Date(2026, 11, 3, 10, 0, 0, 0, time.UTC).UnixNano())
	cloud := fakecloud.New(fakecloud.Options{ActionDuration: time.Hour, Now: func() time.Time { return time.Unix(0, now.Load()) }})
	server := httptest.NewServer(cloud.Handler())
	defer server.Close()
	creds := fakecloud.DefaultCredentials()
	const id = "5609f1ee1b0c4d2da622737b5ca25e6c"
	cloud.AddVM(fakecloud.VM{ID: id, Region: "moscow_01"})
	cloud.AddVM(fakecloud.VM{ID: "off-1", Power: fakecloud.PowerOff})

	call := func(user, pass, method, path, body string) (int, http.Header, map[string]any) {
		t.Helper()
		req, err := http.NewRequest(method, server.URL+"/cloudsfor"+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.SetBasicAuth(user, pass)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var out map[string]any
		_ = json.Unmarshal(b, &out)
		return resp.StatusCode, resp.Header, out
	}
	do := func(method, path, body string) (int, map[string]any) {
		code, _, out := call(creds.CloudsForUser, creds.CloudsForPassword, method, path, body)
		return code, out
	}

	if code, h, out := call(creds.CloudsForUser, "wrong", http.MethodGet, "/api/v1/actions", ""); code != http.StatusUnauthorized ||
		out["message"] == nil || !strings.HasPrefix(h.Get("WWW-Authenticate"), "Basic") {
		t.Errorf("wrong password: %d %v", code, out)
	}

	code, out := do(http.MethodPost, "/api/v1/vms/"+id+"/actions", `{"type":"reboot"}`)
	a, _ := out["action"].(map[string]any)
	if code != http.StatusCreated || a["id"] != id || a["status"] != "in-progress" || a["type"] != "reboot" ||
		a["resource_type"] != "vm" || a["region"] != "moscow_01" || a["completed_at"] != nil {
		t.Errorf("reboot: %d %v", code, out)
	}
	// Whole seconds, as every example in the seed.
	if s, _ := a["started_at"].(string); s != "2026-11-03T10:00:00Z" {
		t.Errorf("started_at %q, want 2026-11-03T10:00:00Z", s)
	}

	refusals := []struct{ path, body, says string }{
		{"/api/v1/vms/" + id + "/actions", `{"type":"power_off"}`, "pending event"},
		{"/api/v1/vms/" + id + "/actions", `{"type":"resize_all"}`, "not a valid action type"},
		{"/api/v1/vms/off-1/actions", `{"type":"rename"}`, "name is required"},
		{"/api/v1/vms/off-1/actions", `{"type":"snapshot"}`, "name is required"},
		{"/api/v1/vms/off-1/actions", `{"type":"resize","size":"s-2vcpu-4gb"}`, "ram, disk or cpu"},
		{"/api/v1/vms/off-1/actions", `{"type":"resize","resource":"ram","size":0}`, "positive whole number"},
		{"/api/v1/vms/off-1/actions", `{"type":"resize","data":{"gpu":1}}`, "not one of cpu, ram, disk"},
		{"/api/v1/vms/off-1/actions", `{"type":"resize","resource":"ram","size":2,"data":{"cpu":1}}`, "not both"},
	}
	for _, r := range refusals {
		code, out := do(http.MethodPost, r.path, r.body)
		if msg, _ := out["message"].(string); code != http.StatusUnprocessableEntity || !strings.Contains(msg, r.says) {
			t.Errorf("%s: %d %v, want 422 saying %q", r.body, code, out, r.says)
		}
	}
	cloud.AddVM(fakecloud.VM{ID: "on-1"})
	if code, out := do(http.MethodPost, "/api/v1/vms/on-1/actions", `{"type":"resize","resource":"cpu","size":2}`); code != http.StatusUnprocessableEntity ||
		!strings.Contains(out["message"].(string), "powered off") {
		t.Errorf("resize while running: %d %v", code, out)
	}
	if code, out := do(http.MethodPost, "/api/v1/vms/nope/actions", `{"type":"reboot"}`); code != http.StatusNotFound || out["id"] != "not_found" {
		t.Errorf("unknown VM: %d %v", code, out)
	}

	code, out = do(http.MethodGet, "/api/v1/vms/"+id, "")
	vm, _ := out["vm"].(map[string]any)
	if code != http.StatusOK || vm["id"] != id || vm["status"] != "running" || vm["locked"] != true || vm["memory"] == nil {
		t.Errorf("VM read-back: %d %v", code, out)
	}

	_ = cloud.UpdateVM("off-1", func(vm *fakecloud.VM) { vm.ActionDuration = time.Nanosecond })
	for i := 0; i < 2; i++ {
		if code, out := do(http.MethodPost, "/api/v1/vms/off-1/actions", `{"type":"rename","name":"n"}`); code != http.StatusCreated {
			t.Fatalf("rename: %d %v", code, out)
		}
		now.Add(int64(time.Millisecond)) // past the nanosecond the rename takes
	}
	code, out = do(http.MethodGet, "/api/v1/actions?page=1&per_page=2", "")
	list, _ := out["actions"].([]any)
	links, _ := out["links"].(map[string]any)
	pages, _ := links["pages"].(map[string]any)
	meta, _ := out["meta"].(map[string]any)
	if code != http.StatusOK || len(list) != 2 || pages["next"] == nil || meta["total"] != float64(3) {
		t.Errorf("global list page 1: %d %v", code, out)
	}
	// The seed fixes no order: oldest first breaks a client that assumes
	// newest first.
	if first, _ := list[0].(map[string]any); first["id"] != id {
		t.Errorf("list is not oldest first: %v", list)
	}
	// The answer that accepts an action may already say it errored.
	cloud.AddVM(fakecloud.VM{ID: "refuses", FailNextAtOnce: "quota exceeded"})
	code, out = do(http.MethodPost, "/api/v1/vms/refuses/actions", `{"type":"reboot"}`)
	if a, _ := out["action"].(map[string]any); code != http.StatusCreated || a["status"] != "errored" || a["completed_at"] == nil {
		t.Errorf("errored at once: %d %v", code, out)
	}
	code, out = do(http.MethodGet, "/api/v1/vms/"+id+"/actions", "")
	if list, _ := out["actions"].([]any); code != http.StatusOK || len(list) != 1 {
		t.Errorf("VM list: %d %v", code, out)
	}
}
