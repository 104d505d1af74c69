package fakecloud_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nodeaction/nodeaction-operator/internal/fakecloud"
)

// adversarialCloud serves a cloud whose clock stands still, so that which
// actions are refused as busy does not depend on timing, and whose
// adversary waits little.
func adversarialCloud(t *testing.T, seed uint64) (*fakecloud.Cloud, string) {
	t.Helper()
	at := time.Date(2026, 11, 3, 10, 0, 0, 0, time.UTC)
	cloud := fakecloud.New(fakecloud.Options{Now: func() time.Time { return at }, Adversary: &fakecloud.Adversary{
		Seed: seed, MaxLatency: time.Millisecond, MaxAnswerDelay: 60 * time.Millisecond}})
	server := httptest.NewServer(cloud.Handler())
	t.Cleanup(server.Close)
	return cloud, server.URL
}

func doRequest(t *testing.T, base, method, path, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+fakecloud.DefaultCredentials().DigitalOceanToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// script makes the same requests on droplet id every time.
func script(t *testing.T, base, id string) {
	for _, typ := range []string{"reboot", "power_off", "reboot", "rename"} {
		doRequest(t, base, http.MethodPost, "/digitalocean/v2/droplets/"+id+"/actions", fmt.Sprintf(`{"type":%q,"name":"n"}`, typ))
		doRequest(t, base, http.MethodGet, "/digitalocean/v2/droplets/"+id+"/actions", "")
		doRequest(t, base, http.MethodGet, "/digitalocean/v2/droplets/"+id, "")
	}
}

// actionNumber is an action's number in a choice: the cloud numbers actions
// across VMs, so it is not the VM's to choose.
var actionNumber = regexp.MustCompile(`action \d+`)

// choices are the draws and choices logged for one VM, in order.
func choices(cloud *fakecloud.Cloud, id string) []string {
	var out []string
	for _, r := range cloud.Log() {
		if r.VMID == id {
			out = append(out, actionNumber.ReplaceAllString(fmt.Sprintf("%s %d %s %v", r.Draw, r.Status, r.Proxy, r.Choices), "action N"))
		}
	}
	return out
}

// The same seed and the same requests on a VM give the same choices, even
// while other requests run on other VMs; another seed gives others.
func TestAdversaryIsReproduciblePerVM(t *testing.T) {
	alone, baseA := adversarialCloud(t, 5)
	alone.AddVM(fakecloud.VM{ID: "101"})
	script(t, baseA, "101")

	busy, baseB := adversarialCloud(t, 5)
	busy.AddVM(fakecloud.VM{ID: "101"})
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		id := fmt.Sprint(200 + i)
		busy.AddVM(fakecloud.VM{ID: id})
		wg.Add(1)
		go func() { defer wg.Done(); script(t, baseB, id) }()
	}
	script(t, baseB, "101")
	wg.Wait()
	if a, b := choices(alone, "101"), choices(busy, "101"); !reflect.DeepEqual(a, b) {
		t.Errorf("seed 5, same requests on VM 101, other VMs busy meanwhile: choices differ\nalone:\n%s\nbusy:\n%s", strings.Join(a, "\n"), strings.Join(b, "\n"))
	}

	other, baseC := adversarialCloud(t, 6)
	other.AddVM(fakecloud.VM{ID: "101"})
	script(t, baseC, "101")
	if reflect.DeepEqual(choices(alone, "101"), choices(other, "101")) {
		t.Error("seeds 5 and 6 made the same choices")
	}
}

// A proxy error before forwarding leaves the VM alone; after forwarding
// the action was accepted. Either way the answer is an HTML page.
func TestAdversaryProxyErrors(t *testing.T) {
	cloud, base := adversarialCloud(t, 1)
	bodies := map[int]string{}
	for i := 0; i < 80; i++ {
		id := fmt.Sprint(300 + i)
		cloud.AddVM(fakecloud.VM{ID: id})
		_, body := doRequest(t, base, http.MethodPost, "/digitalocean/v2/droplets/"+id+"/actions", `{"type":"reboot"}`)
		bodies[i] = body
	}
	seen := map[string]int{}
	for i, r := range cloud.Log() {
		if r.Proxy == "" {
			continue
		}
		seen[r.Proxy]++
		if r.Status != 502 && r.Status != 503 && r.Status != 504 {
			t.Errorf("proxy error with status %d", r.Status)
		}
		if !strings.Contains(bodies[i], "<html>") {
			t.Errorf("proxy error body %q is not an HTML page", bodies[i])
		}
		accepted := cloud.AcceptedActions(r.VMID) == 1
		if wantAccepted := r.Proxy == "after-forwarding"; accepted != wantAccepted || r.Accepted != wantAccepted {
			t.Errorf("%s on VM %s: accepted %v (logged %v), want %v", r.Proxy, r.VMID, accepted, r.Accepted, wantAccepted)
		}
	}
	if seen["before-forwarding"] == 0 || seen["after-forwarding"] == 0 {
		t.Errorf("80 action calls met proxy errors %v: want both kinds", seen)
	}
}

// The faithful world lists oldest first; Compat lists newest first.
func TestListOrder(t *testing.T) {
	for _, tc := range []struct {
		compat fakecloud.Compat
		first  string
	}{{fakecloud.Compat{}, "rename"}, {fakecloud.Issue13Compat(), "power_off"}} {
		var mu sync.Mutex
		at := time.Date(2026, 11, 3, 10, 0, 0, 0, time.UTC)
		cloud := fakecloud.New(fakecloud.Options{ActionDuration: time.Second, Compat: tc.compat, Now: func() time.Time {
			mu.Lock()
			defer mu.Unlock()
			at = at.Add(time.Second) // every look at the clock is a second later
			return at
		}})
		server := httptest.NewServer(cloud.Handler())
		cloud.AddVM(fakecloud.VM{ID: "7"})
		doRequest(t, server.URL, http.MethodPost, "/digitalocean/v2/droplets/7/actions", `{"type":"rename","name":"x"}`)
		doRequest(t, server.URL, http.MethodPost, "/digitalocean/v2/droplets/7/actions", `{"type":"power_off"}`)
		_, body := doRequest(t, server.URL, http.MethodGet, "/digitalocean/v2/droplets/7/actions", "")
		server.Close()
		if i := strings.Index(body, `"type":"`); i < 0 || !strings.HasPrefix(body[i+len(`"type":"`):], tc.first) {
			t.Errorf("compat %+v: list %s, want %s first", tc.compat, body, tc.first)
		}
	}
}
