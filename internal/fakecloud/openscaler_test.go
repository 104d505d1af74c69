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

// osCall makes one raw OpenScaler request and returns status and body.
func osCall(t *testing.T, base, token, method, path, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, base+"/openscaler"+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestOpenScalerWire(t *testing.T) {
	cloud := fakecloud.New(fakecloud.Options{ActionDuration: 20 * time.Millisecond})
	server := httptest.NewServer(cloud.Handler())
	defer server.Close()
	token := fakecloud.DefaultCredentials().OpenScalerToken
	cloud.AddVM(fakecloud.VM{ID: "23"})
	cloud.AddVM(fakecloud.VM{ID: "slow", ActionDuration: 2 * fakecloud.OpenScalerShutdownTimeout})
	do := func(method, path, body string) (int, string) {
		return osCall(t, server.URL, token, method, path, body)
	}

	if code, body := osCall(t, server.URL, "wrong", http.MethodGet, "/v1/vms", ""); code != http.StatusUnauthorized || !strings.Contains(body, `"message"`) {
		t.Errorf("wrong token: %d %s", code, body)
	}
	// DigitalOcean's list shape (the seed copies DigitalOcean's wording).
	if code, body := do(http.MethodGet, "/v1/vms?page=2&per_page=1", ""); code != http.StatusOK ||
		!strings.Contains(body, `"vms":[{"id":`) || !strings.Contains(body, `"total":2`) || !strings.Contains(body, `"prev"`) {
		t.Errorf("list page 2: %d %s", code, body)
	}

	code, body := do(http.MethodGet, "/v1/vms/23?only=state", "")
	var vm map[string]any
	if err := json.Unmarshal([]byte(body), &vm); code != http.StatusOK || err != nil {
		t.Fatalf("read: %d %s", code, body)
	}
	for _, k := range []string{"id", "name", "uuid", "region", "size", "created_at"} {
		if _, ok := vm[k]; !ok {
			t.Errorf("flat VM object lacks %q: %s", k, body)
		}
	}
	if vm["state"] != "running" || vm["id"] != float64(23) {
		t.Errorf("read: %s", body)
	}

	for _, tc := range []struct {
		path, body string
		code       int
		text       string
	}{
		{"/v1/vms/99/actions", `{"type":"reboot"}`, http.StatusNotFound, "not found"},
		{"/v1/vms/23/actions", `{"type":"hibernate"}`, http.StatusBadRequest, "unknown action type"},
		{"/v1/vms/23/actions", ``, http.StatusBadRequest, "type is required"},
		{"/v1/vms/23/actions", `{"type":"start"}`, http.StatusUnprocessableEntity, "already running"},
		{"/v1/vms/23/actions", `{"type":"power_off"}`, http.StatusNoContent, ""},
		{"/v1/vms/23/actions", `{"type":"reset"}`, http.StatusUnprocessableEntity, "not running"},
		{"/v1/vms/23/actions", `{"type":"start"}`, http.StatusNoContent, ""},
		{"/v1/vms/slow/actions", `{"type":"shutdown"}`, http.StatusRequestTimeout, "timed out"},
		{"/v1/vms/slow/actions", `{"type":"reboot"}`, http.StatusConflict, "busy"},
		{"/v1/vms/slow/actions", `{"type":"power_off"}`, http.StatusNoContent, ""},
	} {
		code, body := do(http.MethodPost, tc.path, tc.body)
		if code != tc.code || !strings.Contains(body, tc.text) {
			t.Errorf("POST %s %s: %d %s, want %d with %q", tc.path, tc.body, code, body, tc.code, tc.text)
		}
	}
	if v, _ := cloud.VM("slow"); v.Power != fakecloud.PowerOff || v.Busy() {
		t.Errorf("power_off did not overtake the slow shutdown: %+v", v)
	}
}

func TestOpenScalerShutdownStateWhileSlow(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var elapsed atomic.Int64 // read by the server's goroutines
	clock := func() time.Time { return start.Add(time.Duration(elapsed.Load())) }
	cloud := fakecloud.New(fakecloud.Options{Now: clock, ActionDuration: 2 * fakecloud.OpenScalerShutdownTimeout})
	server := httptest.NewServer(cloud.Handler())
	defer server.Close()
	token := fakecloud.DefaultCredentials().OpenScalerToken
	cloud.AddVM(fakecloud.VM{ID: "vm-1"})

	if code, _ := osCall(t, server.URL, token, http.MethodPost, "/v1/vms/vm-1/actions", `{"type":"shutdown"}`); code != http.StatusRequestTimeout {
		t.Fatalf("shutdown of a slow guest: %d, want 408", code)
	}
	if _, body := osCall(t, server.URL, token, http.MethodGet, "/v1/vms/vm-1?only=state", ""); !strings.Contains(body, `"state":"shutdown"`) {
		t.Errorf("while shutting down: %s", body)
	}
	elapsed.Add(int64(2 * fakecloud.OpenScalerShutdownTimeout))
	if _, body := osCall(t, server.URL, token, http.MethodGet, "/v1/vms/vm-1?only=state", ""); !strings.Contains(body, `"state":"shutoff"`) {
		t.Errorf("after the shutdown: %s", body)
	}
}
