package cloudsfor_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nodeaction/nodeaction-operator/api/v1alpha1"
	"github.com/nodeaction/nodeaction-operator/internal/fakecloud"
	"github.com/nodeaction/nodeaction-operator/internal/provider"
	"github.com/nodeaction/nodeaction-operator/internal/provider/cloudsfor"
	"github.com/nodeaction/nodeaction-operator/internal/provider/drivertest"
)

func ptr[T any](v T) *T { return &v }

func nodeID(n int) string { return fmt.Sprintf("5609f1ee1b0c4d2da622737b5ca2%04x", n) }

func configure(base string, creds fakecloud.Credentials) provider.Config {
	return provider.Config{Endpoint: base + "/cloudsfor", Credentials: map[string][]byte{
		"username": []byte(creds.CloudsForUser), "password": []byte(creds.CloudsForPassword)}}
}

func TestConformance(t *testing.T) { drivertest.Run(t, harness) }

// harness describes CloudsFor to the conformance suite; the tests below use
// its environment too.
var harness = drivertest.Harness{
	Type:      v1alpha1.ProviderCloudsFor,
	New:       cloudsfor.New,
	Configure: configure,
	BadCredentials: func(good map[string][]byte) map[string][]byte {
		return map[string][]byte{"username": good["username"], "password": []byte("wrong-password")}
	},
	NodeID: nodeID,
	Actions: map[string]drivertest.ActionCase{
		"reboot":      {Check: drivertest.BootedOnce},
		"power_cycle": {},
		"shutdown":    {Check: drivertest.IsOff},
		"power_off":   {},
		"power_on":    {Prepare: drivertest.PoweredOff},
		"password_reset": {Check: func(t *testing.T, vm fakecloud.VM) {
			if vm.PasswordResets != 1 {
				t.Errorf("password resets = %d, want 1", vm.PasswordResets)
			}
		}},
		"resize": {Parameters: v1alpha1.ActionParameters{Resource: "ram", Amount: ptr(int32(4))}, Prepare: drivertest.PoweredOff,
			Check: func(t *testing.T, vm fakecloud.VM) {
				if vm.Memory != 4 {
					t.Errorf("memory = %d, want 4", vm.Memory)
				}
			}},
		"rename": {Parameters: v1alpha1.ActionParameters{Name: "web-2"}, Check: func(t *testing.T, vm fakecloud.VM) {
			if vm.Name != "web-2" {
				t.Errorf("name = %q", vm.Name)
			}
		}},
		"snapshot": {Parameters: v1alpha1.ActionParameters{Name: "before-upgrade"}, Check: func(t *testing.T, vm fakecloud.VM) {
			if len(vm.Snapshots) != 1 || vm.Snapshots[0] != "before-upgrade" {
				t.Errorf("snapshots %v", vm.Snapshots)
			}
		}},
	},
	Portable: map[string]string{
		"power_on": "power_on", "shutdown": "shutdown", "power_off": "power_off", "reboot": "reboot",
		"power_cycle": "power_cycle", "rename": "rename", "snapshot": "snapshot",
	},
	MissingParameter: provider.Request{Action: "rename"},
	// The VM is on: CloudsFor refuses to resize it.
	Rejected:        provider.Request{Action: "resize", Parameters: v1alpha1.ActionParameters{Resource: "cpu", Amount: ptr(int32(2))}},
	RejectedMessage: "powered off",
	FailingAction:   provider.Request{Action: "reboot"},
	LookupAction:    provider.Request{Action: "reboot"},
	SweepAction:     "reboot",
}

// recorder keeps what reached the cloud, for checks on the wire.
type recorder struct {
	mu       sync.Mutex
	bodies   []map[string]any
	authz    []string
	requests int
}

func (r *recorder) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		req.Body = io.NopCloser(bytes.NewReader(b))
		r.mu.Lock()
		r.requests++
		r.authz = append(r.authz, req.Header.Get("Authorization"))
		if req.Method == http.MethodPost {
			var m map[string]any
			_ = json.Unmarshal(b, &m)
			r.bodies = append(r.bodies, m)
		}
		r.mu.Unlock()
		h.ServeHTTP(w, req)
	})
}

type env struct {
	cloud  *fakecloud.Cloud
	rec    *recorder
	driver provider.Driver
	cfg    provider.Config
}

// newEnv serves a fakecloud through a recorder. now, when set, is the
// cloud's clock.
func newEnv(t *testing.T, now func() time.Time) *env {
	t.Helper()
	rec := &recorder{}
	de := harness.NewEnv(t, drivertest.EnvOptions{
		Cloud:  fakecloud.Options{ActionDuration: time.Hour, Now: now},
		Wrap:   rec.wrap,
		Change: func(cfg *provider.Config) { cfg.Now = now },
	})
	return &env{cloud: de.Cloud, rec: rec, driver: de.Driver, cfg: de.Config}
}

func newClock() *drivertest.Clock {
	return drivertest.NewClock(time.Date(2026, 11, 3, 10, 0, 0, 0, time.UTC))
}

func TestResizeBothFormsOnTheWire(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name   string
		params v1alpha1.ActionParameters
		want   string
		check  func(vm fakecloud.VM) bool
	}{
		{"resource and size", v1alpha1.ActionParameters{Resource: "disk", Amount: ptr(int32(50))},
			`{"resource":"disk","size":50,"type":"resize"}`,
			func(vm fakecloud.VM) bool { return vm.Disk == 50 && vm.Memory == 1 }},
		{"data", v1alpha1.ActionParameters{Resources: &v1alpha1.ResourceSizes{CPU: ptr(int32(2)), RAM: ptr(int32(3)), Disk: ptr(int32(30))}},
			`{"data":{"cpu":2,"disk":30,"ram":3},"type":"resize"}`,
			func(vm fakecloud.VM) bool { return vm.VCPUs == 2 && vm.Memory == 3 && vm.Disk == 30 }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clk := newClock()
			e := newEnv(t, clk.Now)
			id := nodeID(1)
			e.cloud.AddVM(fakecloud.VM{ID: id, Power: fakecloud.PowerOff})
			sub, err := e.driver.Submit(ctx, provider.Request{NodeID: id, Action: "resize", Parameters: tc.params})
			if err != nil {
				t.Fatal(err)
			}
			got, _ := json.Marshal(e.rec.bodies[0])
			if string(got) != tc.want {
				t.Errorf("body %s, want %s", got, tc.want)
			}
			clk.Advance(2 * time.Hour)
			st, err := e.driver.Status(ctx, sub)
			if err != nil || st.State != provider.StateSucceeded || st.Class != provider.Completed {
				t.Fatalf("status %+v, %v", st, err)
			}
			if vm, _ := e.cloud.VM(id); !tc.check(vm) {
				t.Errorf("VM after resize: memory %d vcpus %d disk %d", vm.Memory, vm.VCPUs, vm.Disk)
			}
		})
	}
}

func TestBasicAuthHeader(t *testing.T) {
	e := newEnv(t, nil)
	if err := e.driver.Probe(context.Background()); err != nil {
		t.Fatal(err)
	}
	creds := fakecloud.DefaultCredentials()
	want := "Basic " + base64.StdEncoding.EncodeToString([]byte(creds.CloudsForUser+":"+creds.CloudsForPassword))
	if len(e.rec.authz) != 1 || e.rec.authz[0] != want {
		t.Errorf("Authorization headers %q, want [%q]", e.rec.authz, want)
	}
}

// Two reboots on one VM: each submission follows its own action, found by
// started_at, not the newest one of its type.
func TestMatchesItsOwnActionAmongTwoOfOneType(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	e := newEnv(t, clk.Now)
	id := nodeID(1)
	e.cloud.AddVM(fakecloud.VM{ID: id, ActionDuration: time.Second})
	req := provider.Request{NodeID: id, Action: "reboot"}

	first, err := e.driver.Submit(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(1500 * time.Millisecond)
	e.cloud.VM(id) // lets the first reboot end before the next one may fail
	_ = e.cloud.UpdateVM(id, func(vm *fakecloud.VM) { vm.FailNext = "disk on fire" })
	second, err := e.driver.Submit(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if first.ActionID == second.ActionID {
		t.Fatalf("both submissions have action id %q", first.ActionID)
	}
	if st, err := e.driver.Status(ctx, second); err != nil || st.State != provider.StateInProgress {
		t.Fatalf("second while running: %+v, %v", st, err)
	}
	if st, err := e.driver.Status(ctx, first); err != nil || st.State != provider.StateSucceeded {
		t.Fatalf("first: %+v, %v", st, err)
	}
	clk.Advance(2 * time.Second)
	if st, err := e.driver.Status(ctx, first); err != nil || st.State != provider.StateSucceeded {
		t.Errorf("first after the second errored: %+v, %v", st, err)
	}
	if st, err := e.driver.Status(ctx, second); err != nil || st.State != provider.StateFailed || st.Class != provider.ActionFailed {
		t.Errorf("second: %+v, %v", st, err)
	}

	// After a restart only the action id is known.
	kept := provider.Submission{Request: req, ActionID: first.ActionID}
	if st, err := e.driver.Status(ctx, kept); err != nil || st.State != provider.StateSucceeded {
		t.Errorf("first from its action id alone: %+v, %v", st, err)
	}

	// Lookup lists the reboots started in the window: here the second only.
	found, err := e.driver.Lookup(ctx, req, provider.Window{From: second.StartedAt, To: clk.Now().Add(time.Minute)})
	if err != nil || len(found.Candidates) != 1 || found.Candidates[0].ActionID != second.ActionID || !found.Complete {
		t.Errorf("Lookup: %+v, %v; want %q", found, err, second.ActionID)
	}
	// Nothing of that type in a window a minute later: the list may show
	// an accepted action late (listLag, as Status allows; the harness sets
	// its world's lag), so the records settle only after the window (the
	// operator waits for that before it calls the attempt not accepted).
	later := provider.Window{From: clk.Now().Add(time.Minute), To: clk.Now().Add(2 * time.Minute)}
	clk.Advance(2 * time.Minute)
	found, err = e.driver.Lookup(ctx, req, later)
	if err != nil || len(found.Candidates) != 0 || !found.Complete || !found.SettlesAt.After(later.To) {
		t.Errorf("Lookup of an empty window the list may still fill: %+v, %v; want no candidate, settling after the window", found, err)
	}
}

// When two actions of one type share a started_at (a provider that gives
// whole seconds, or the same millisecond here), success is claimed only
// when every one of them completed.
func TestSameStartTimeEndingDifferentlyIsNotSuccess(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	e := newEnv(t, clk.Now)
	id := nodeID(1)
	e.cloud.AddVM(fakecloud.VM{ID: id, ActionDuration: time.Nanosecond})
	req := provider.Request{NodeID: id, Action: "reboot"}
	first, err := e.driver.Submit(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Nanosecond)
	e.cloud.VM(id)
	_ = e.cloud.UpdateVM(id, func(vm *fakecloud.VM) { vm.FailNext = "disk on fire" })
	second, err := e.driver.Submit(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if first.ActionID != second.ActionID {
		t.Fatalf("test setup: start times differ: %q, %q", first.ActionID, second.ActionID)
	}
	clk.Advance(time.Second)
	st, err := e.driver.Status(ctx, first)
	if err != nil || st.State != provider.StateFailed || !strings.Contains(st.Message, "cannot show which") {
		t.Errorf("got %+v, %v; want Failed saying it cannot tell", st, err)
	}
}

func TestPendingEventIsProviderBusy(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, nil)
	id := nodeID(1)
	e.cloud.AddVM(fakecloud.VM{ID: id})
	if _, err := e.driver.Submit(ctx, provider.Request{NodeID: id, Action: "reboot"}); err != nil {
		t.Fatal(err)
	}
	_, err := e.driver.Submit(ctx, provider.Request{NodeID: id, Action: "power_off"})
	if pe := provider.AsError(err); pe == nil || pe.Kind != provider.Retryable || pe.Class != provider.Busy {
		t.Fatalf("got %v, want Retryable ProviderBusy", err)
	}
	if n := e.cloud.AcceptedActions(id); n != 1 {
		t.Errorf("%d actions accepted, want 1", n)
	}
}

func TestShutdownIgnoredIsNotCompleted(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	e := newEnv(t, clk.Now)
	id := nodeID(1)
	e.cloud.AddVM(fakecloud.VM{ID: id, IgnoreShutdown: true, ActionDuration: time.Second})
	sub, err := e.driver.Submit(ctx, provider.Request{NodeID: id, Action: "shutdown"})
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(2 * time.Second)
	st, err := e.driver.Status(ctx, sub)
	if err != nil || st.State != provider.StateInProgress || st.Class != provider.Verifying {
		t.Errorf("got %+v, %v; want InProgress/Verifying while the VM runs", st, err)
	}
}

func TestValidate(t *testing.T) {
	e := newEnv(t, nil)
	id := nodeID(1)
	cases := []struct {
		name   string
		req    provider.Request
		reason provider.Class
		says   string
	}{
		{"digitalocean size", provider.Request{Action: "resize", Parameters: v1alpha1.ActionParameters{Size: "s-2vcpu-4gb"}},
			provider.InvalidParameters, "spec.parameters.resource"},
		{"nothing to resize", provider.Request{Action: "resize"}, provider.InvalidParameters, "spec.parameters.resources"},
		{"both forms", provider.Request{Action: "resize", Parameters: v1alpha1.ActionParameters{Resource: "ram", Amount: ptr(int32(2)),
			Resources: &v1alpha1.ResourceSizes{CPU: ptr(int32(2))}}}, provider.InvalidParameters, "not both"},
		{"resource without amount", provider.Request{Action: "resize", Parameters: v1alpha1.ActionParameters{Resource: "ram"}},
			provider.InvalidParameters, "spec.parameters.amount"},
		{"bad resource", provider.Request{Action: "resize", Parameters: v1alpha1.ActionParameters{Resource: "gpu", Amount: ptr(int32(1))}},
			provider.InvalidParameters, "ram, disk or cpu"},
		{"empty resources", provider.Request{Action: "resize", Parameters: v1alpha1.ActionParameters{Resources: &v1alpha1.ResourceSizes{}}},
			provider.InvalidParameters, "at least one"},
		{"snapshot without name", provider.Request{Action: "snapshot"}, provider.InvalidParameters, "spec.parameters.name"},
		{"unknown action", provider.Request{Action: "rebuild"}, provider.UnsupportedAction, "power_cycle"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.req.NodeID = id
			_, err := e.driver.Submit(context.Background(), tc.req)
			pe := provider.AsError(err)
			if pe == nil || pe.Kind != provider.Terminal || pe.Class != tc.reason || !strings.Contains(pe.Message, tc.says) {
				t.Errorf("got %v, want Terminal %s saying %q", err, tc.reason, tc.says)
			}
		})
	}
	if e.rec.requests != 0 {
		t.Errorf("invalid requests made %d provider calls", e.rec.requests)
	}
}

func TestNewNamesWhatIsMissing(t *testing.T) {
	client, _ := provider.NewHTTPClient(provider.ClientOptions{})
	cases := []struct {
		name   string
		cfg    provider.Config
		reason provider.Class
		says   string
	}{
		{"no password", provider.Config{Endpoint: "https://cloudsfor.example", Credentials: map[string][]byte{"username": []byte("u")}},
			provider.CredentialsError, `"password"`},
		{"no username", provider.Config{Endpoint: "https://cloudsfor.example", Credentials: map[string][]byte{"password": []byte("p")}},
			provider.CredentialsError, `"username"`},
		{"no endpoint", provider.Config{Credentials: map[string][]byte{"username": []byte("u"), "password": []byte("p")}},
			provider.InvalidConfig, "spec.endpoint"},
		{"credentials in endpoint", provider.Config{Endpoint: "https://u:secret-pw@cloudsfor.example",
			Credentials: map[string][]byte{"username": []byte("u"), "password": []byte("p")}},
			provider.InvalidConfig, "Secret"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.HTTPClient = client
			_, err := cloudsfor.New(tc.cfg)
			pe := provider.AsError(err)
			if pe == nil || pe.Kind != provider.Terminal || pe.Class != tc.reason || !strings.Contains(pe.Message, tc.says) {
				t.Errorf("got %v, want Terminal %s saying %q", err, tc.reason, tc.says)
			}
			if pe != nil && strings.Contains(pe.Message, "secret-pw") {
				t.Errorf("error shows the password: %v", pe)
			}
		})
	}
}
