package openscaler_test

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nodeaction/nodeaction-operator/api/v1alpha1"
	"github.com/nodeaction/nodeaction-operator/internal/fakecloud"
	"github.com/nodeaction/nodeaction-operator/internal/provider"
	"github.com/nodeaction/nodeaction-operator/internal/provider/drivertest"
	"github.com/nodeaction/nodeaction-operator/internal/provider/openscaler"
)

func configure(base string, creds fakecloud.Credentials) provider.Config {
	return provider.Config{Endpoint: base + "/openscaler", Credentials: map[string][]byte{"token": []byte(creds.OpenScalerToken)}}
}

func TestConformance(t *testing.T) {
	power := func(want fakecloud.Power) func(*testing.T, fakecloud.VM) {
		return func(t *testing.T, vm fakecloud.VM) {
			if vm.Power != want {
				t.Errorf("power = %s, want %s", vm.Power, want)
			}
		}
	}
	booted := func(t *testing.T, vm fakecloud.VM) {
		if vm.Boots != 1 || vm.Power != fakecloud.PowerOn {
			t.Errorf("boots = %d, power %s; want 1 boot, on", vm.Boots, vm.Power)
		}
	}
	unverified := []provider.Class{provider.Unverified}
	drivertest.Run(t, drivertest.Harness{
		Type:      v1alpha1.ProviderOpenScaler,
		New:       openscaler.New,
		Configure: configure,
		BadCredentials: func(map[string][]byte) map[string][]byte {
			return map[string][]byte{"token": []byte("revoked-token")}
		},
		NodeID: func(n int) string { return strconv.Itoa(20 + n) },
		Actions: map[string]drivertest.ActionCase{
			"start":     {Prepare: drivertest.PoweredOff, Check: power(fakecloud.PowerOn)},
			"shutdown":  {Check: power(fakecloud.PowerOff)},
			"power_off": {Check: power(fakecloud.PowerOff)},
			"reboot":    {Check: booted, Classes: unverified},
			"reset":     {Check: booted, Classes: unverified},
		},
		Portable: map[string]string{
			"power_on": "start", "shutdown": "shutdown", "power_off": "power_off", "reboot": "reboot", "power_cycle": "reset",
		},
		// No OpenScaler action needs a parameter, so the suite's "missing
		// parameter" case is a parameter the action does not take: Validate
		// refuses it the same way, before any call.
		MissingParameter: provider.Request{Action: "reboot", Parameters: v1alpha1.ActionParameters{Name: "web-2"}},
		Rejected:         provider.Request{Action: "reboot"},
		RejectedPrepare:  drivertest.PoweredOff,
		RejectedMessage:  "VM is not running",
		FailingAction:    provider.Request{Action: "reboot"},
		LookupAction:     provider.Request{Action: "power_off"},
		SweepAction:      "power_off",
		LookupByState:    true,
		UnknowableAction: &provider.Request{Action: "reboot"},
	})
}

type env struct {
	cloud  *fakecloud.Cloud
	clock  *drivertest.Clock // fakecloud's, so a slow shutdown takes no real time
	driver provider.Driver
}

const vm = "vm-7"

func newEnv(t *testing.T, prepare func(*fakecloud.VM)) *env {
	t.Helper()
	return newEnvWithTimeout(t, prepare, 5*time.Second)
}

func newEnvWithTimeout(t *testing.T, prepare func(*fakecloud.VM), timeout time.Duration) *env {
	t.Helper()
	clk := drivertest.NewClock(time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC))
	faithful := fakecloud.FaithfulWorld()
	h := drivertest.Harness{Type: v1alpha1.ProviderOpenScaler, New: openscaler.New, Configure: configure}
	de := h.NewEnv(t, drivertest.EnvOptions{World: &faithful, Timeout: timeout,
		Cloud: fakecloud.Options{Now: clk.Now, ActionDuration: 20 * time.Millisecond}})
	de.Cloud.AddVM(fakecloud.VM{ID: vm})
	if prepare != nil {
		_ = de.Cloud.UpdateVM(vm, prepare)
	}
	return &env{cloud: de.Cloud, clock: clk, driver: de.Driver}
}

func (e *env) status(t *testing.T, sub provider.Submission) provider.ActionStatus {
	t.Helper()
	st, err := e.driver.Status(context.Background(), sub)
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	return st
}

func (e *env) posts() int {
	return e.cloud.CountRequests(func(r fakecloud.Request) bool { return r.Method == http.MethodPost })
}

func slowShutdown(vm *fakecloud.VM) { vm.ActionDuration = 2 * fakecloud.OpenScalerShutdownTimeout }

func TestShutdownTimeoutIsWatchedUntilShutoff(t *testing.T) {
	e := newEnv(t, slowShutdown)
	sub, err := e.driver.Submit(context.Background(), provider.Request{NodeID: vm, Action: "shutdown"})
	if err != nil {
		t.Fatalf("a shutdown answered 408 must not be an error: %v", err)
	}
	if sub.Done != nil {
		t.Fatalf("Done = %+v, want the state watched", sub.Done)
	}
	if st := e.status(t, sub); st.State != provider.StateInProgress || !strings.Contains(st.Message, "watching") {
		t.Fatalf("while the guest shuts down: %+v", st)
	}
	e.clock.Advance(2 * fakecloud.OpenScalerShutdownTimeout)
	st := e.status(t, sub)
	if st.State != provider.StateSucceeded || st.Class != provider.Completed {
		t.Fatalf("after the guest went down: %+v", st)
	}
	if n := e.posts(); n != 1 {
		t.Errorf("%d POSTs, want exactly 1", n)
	}
	if r := e.cloud.Log()[0]; r.Status != http.StatusRequestTimeout {
		t.Errorf("fakecloud answered %d, want the 408 this test is about", r.Status)
	}
}

func TestShutdownOutlastingTheRequestTimeoutIsWatched(t *testing.T) {
	// OpenScaler is still waiting for the guest when the operator's own
	// request timeout runs out: the same situation as its 408.
	e := newEnvWithTimeout(t, slowShutdown, 200*time.Millisecond)
	f := e.cloud.InjectFault(fakecloud.Fault{ActionOnly: true, Mode: fakecloud.AcceptThenHold, Times: 1})
	defer f.Release()
	sub, err := e.driver.Submit(context.Background(), provider.Request{NodeID: vm, Action: "shutdown"})
	if err != nil {
		t.Fatalf("a shutdown whose answer outlasted the request timeout must be watched, not an error: %v", err)
	}
	if sub.Done != nil {
		t.Fatalf("Done = %+v, want the state watched", sub.Done)
	}
	if st := e.status(t, sub); st.State != provider.StateInProgress || !strings.Contains(st.Message, "request timeout") {
		t.Fatalf("while the guest shuts down: %+v", st)
	}
	e.clock.Advance(2 * fakecloud.OpenScalerShutdownTimeout)
	if st := e.status(t, sub); st.State != provider.StateSucceeded || st.Class != provider.Completed {
		t.Fatalf("after the guest went down: %+v", st)
	}
	if n := e.posts(); n != 1 {
		t.Errorf("%d POSTs, want exactly 1", n)
	}
}

func TestLostAnswersOtherThanATimeoutStayAmbiguous(t *testing.T) {
	for _, tc := range []struct {
		action string
		mode   fakecloud.FaultMode
	}{
		// A dropped connection says nothing about OpenScaler still working on it.
		{"shutdown", fakecloud.AcceptThenDrop},
		// Only a graceful shutdown waits for the guest.
		{"power_off", fakecloud.AcceptThenHold},
	} {
		t.Run(tc.action+"/"+string(tc.mode), func(t *testing.T) {
			e := newEnvWithTimeout(t, slowShutdown, 200*time.Millisecond)
			f := e.cloud.InjectFault(fakecloud.Fault{ActionOnly: true, Mode: tc.mode, Times: 1})
			defer f.Release()
			_, err := e.driver.Submit(context.Background(), provider.Request{NodeID: vm, Action: tc.action})
			if !provider.IsKind(err, provider.Ambiguous) {
				t.Fatalf("got %v, want Ambiguous (the controller looks before anything else)", err)
			}
		})
	}
}

func TestShutdownAnswered500IsWatched(t *testing.T) {
	e := newEnv(t, nil)
	e.cloud.InjectFault(fakecloud.Fault{ActionOnly: true, Mode: fakecloud.AcceptThenFail, Status: http.StatusInternalServerError, Times: 1})
	sub, err := e.driver.Submit(context.Background(), provider.Request{NodeID: vm, Action: "shutdown"})
	if err != nil {
		t.Fatalf("a shutdown answered 500 must not be an error: %v", err)
	}
	if st := e.status(t, sub); st.State != provider.StateSucceeded || st.Class != provider.Completed {
		t.Fatalf("got %+v, want Completed", st)
	}
	if n := e.posts(); n != 1 {
		t.Errorf("%d POSTs, want exactly 1", n)
	}
}

func TestShutdownIgnoredKeepsWatching(t *testing.T) {
	e := newEnv(t, func(vm *fakecloud.VM) { vm.IgnoreShutdown = true })
	sub, err := e.driver.Submit(context.Background(), provider.Request{NodeID: vm, Action: "shutdown"})
	if err != nil {
		t.Fatalf("Submit: %v", err)
	}
	for range 3 {
		e.clock.Advance(time.Hour)
		if st := e.status(t, sub); st.State != provider.StateInProgress {
			t.Fatalf("a guest ignoring the shutdown ended %+v", st)
		}
	}
	if n := e.posts(); n != 1 {
		t.Errorf("%d POSTs, want exactly 1", n)
	}
}

func TestRebootIsAcceptedUnverified(t *testing.T) {
	e := newEnv(t, nil)
	sub, err := e.driver.Submit(context.Background(), provider.Request{NodeID: vm, Action: "reboot"})
	if err != nil {
		t.Fatalf("Submit: %v", err)
	}
	if sub.Done == nil || sub.Done.State != provider.StateSucceeded || sub.Done.Class != provider.Unverified {
		t.Fatalf("Done = %+v, want Succeeded/AcceptedUnverified", sub.Done)
	}
	if n := e.cloud.CountRequests(nil); n != 1 {
		t.Errorf("%d requests, want the one POST (a read-back proves nothing after a reboot)", n)
	}
}

func TestAlreadyInState(t *testing.T) {
	for _, tc := range []struct {
		action  string
		prepare func(*fakecloud.VM)
	}{{"start", nil}, {"power_off", drivertest.PoweredOff}, {"shutdown", drivertest.PoweredOff}} {
		t.Run(tc.action, func(t *testing.T) {
			e := newEnv(t, tc.prepare)
			sub, err := e.driver.Submit(context.Background(), provider.Request{NodeID: vm, Action: tc.action})
			if err != nil {
				t.Fatalf("Submit: %v", err)
			}
			if sub.Done == nil || sub.Done.Class != provider.AlreadyInState {
				t.Fatalf("Done = %+v, want AlreadyInState", sub.Done)
			}
			if n := e.posts(); n != 1 {
				t.Errorf("%d POSTs, want 1", n)
			}
		})
	}
}

func TestTimeoutOnOtherActionsIsAmbiguous(t *testing.T) {
	e := newEnv(t, drivertest.PoweredOff)
	e.cloud.InjectFault(fakecloud.Fault{ActionOnly: true, Mode: fakecloud.AcceptThenFail, Status: http.StatusRequestTimeout, Times: 1})
	_, err := e.driver.Submit(context.Background(), provider.Request{NodeID: vm, Action: "start"})
	if !provider.IsKind(err, provider.Ambiguous) {
		t.Fatalf("got %v, want Ambiguous", err)
	}
	found, err := e.driver.Lookup(context.Background(), provider.Request{NodeID: vm, Action: "start"}, window(time.Now()))
	if err != nil || len(found.Candidates) != 1 || found.Candidates[0].Done == nil || found.Candidates[0].Done.State != provider.StateSucceeded {
		t.Fatalf("Lookup: %+v, %v; want the start adopted from the running state", found, err)
	}
	if n := e.posts(); n != 1 {
		t.Errorf("%d POSTs, want 1 (Lookup never submits)", n)
	}
}

func TestLookupWhileShuttingDownIsUnknown(t *testing.T) {
	e := newEnv(t, slowShutdown)
	req := provider.Request{NodeID: vm, Action: "shutdown"}
	if _, err := e.driver.Submit(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	found, err := e.driver.Lookup(context.Background(), req, window(time.Now()))
	if err != nil || len(found.Candidates) != 0 || found.Complete {
		t.Fatalf("got %+v, %v; want records that cannot tell while the VM is not shutoff", found, err)
	}
	e.clock.Advance(2 * fakecloud.OpenScalerShutdownTimeout)
	found, err = e.driver.Lookup(context.Background(), req, window(time.Now()))
	if err != nil || len(found.Candidates) != 1 || found.Candidates[0].ActionID != "" {
		t.Fatalf("Lookup after shutoff: %+v, %v", found, err)
	}
}

// A start or power_off OpenScaler ran has changed the state before it
// answered: a VM that shows no sign of one, once the request can no longer
// land and one that landed has had time to finish at the server, did not
// get it. Before then it may still be running there.
func TestLookupOfASyncActionWithoutEffectIsNotAccepted(t *testing.T) {
	e := newEnv(t, nil)
	req := provider.Request{NodeID: vm, Action: "power_off"}
	if _, err := e.driver.Lookup(context.Background(), req, window(time.Now())); !provider.IsKind(err, provider.Retryable) {
		t.Fatalf("Lookup while a landed call may still run: %v; want Retryable", err)
	}
	found, err := e.driver.Lookup(context.Background(), req, window(time.Now().Add(-3*time.Minute)))
	if err != nil || len(found.Candidates) != 0 || !found.Complete {
		t.Fatalf("got %+v, %v; want not accepted", found, err)
	}
}

// window is the lookup window of an attempt recorded at since.
func window(since time.Time) provider.Window {
	return provider.Window{From: since.Add(-5 * time.Second), To: since.Add(time.Minute)}
}

func TestPowerOffOvertakesSlowShutdown(t *testing.T) {
	e := newEnv(t, slowShutdown)
	ctx := context.Background()
	if _, err := e.driver.Submit(ctx, provider.Request{NodeID: vm, Action: "shutdown"}); err != nil {
		t.Fatal(err)
	}
	sub, err := e.driver.Submit(ctx, provider.Request{NodeID: vm, Action: "power_off"})
	if err != nil {
		t.Fatalf("power_off during a slow shutdown: %v", err)
	}
	if sub.Done == nil || sub.Done.Class != provider.Completed {
		t.Fatalf("Done = %+v, want Completed", sub.Done)
	}
}

func TestReadBackFailureLeavesItToStatus(t *testing.T) {
	e := newEnv(t, nil)
	e.cloud.InjectFault(fakecloud.Fault{Method: http.MethodGet, Mode: fakecloud.Reject, Status: http.StatusBadGateway, Times: 1})
	sub, err := e.driver.Submit(context.Background(), provider.Request{NodeID: vm, Action: "power_off"})
	if err != nil {
		t.Fatalf("a failed read after an accepted POST must not fail the submission: %v", err)
	}
	if sub.Done != nil {
		t.Fatalf("Done = %+v without a read-back", sub.Done)
	}
	if st := e.status(t, sub); st.Class != provider.Completed {
		t.Fatalf("Status: %+v", st)
	}
}

func TestValidate(t *testing.T) {
	e := newEnv(t, nil)
	for _, tc := range []struct {
		req    provider.Request
		reason provider.Class
		text   string
	}{
		{provider.Request{NodeID: "vm_7", Action: "reboot"}, provider.InvalidNodeID, "vm_7"},
		{provider.Request{NodeID: vm, Action: "rename"}, provider.UnsupportedAction, "power_off"},
		{provider.Request{NodeID: vm, Action: "start", Parameters: v1alpha1.ActionParameters{Image: "ubuntu"}}, provider.InvalidParameters, "spec.parameters.image"},
	} {
		err := e.driver.Validate(tc.req)
		if pe := provider.AsError(err); pe == nil || pe.Kind != provider.Terminal || pe.Class != tc.reason || !strings.Contains(pe.Message, tc.text) {
			t.Errorf("%+v: got %v, want Terminal %s mentioning %q", tc.req, err, tc.reason, tc.text)
		}
	}
}

func TestMissingToken(t *testing.T) {
	_, err := openscaler.New(provider.Config{Credentials: map[string][]byte{"apiKey": []byte("x")}, HTTPClient: http.DefaultClient})
	if pe := provider.AsError(err); pe == nil || pe.Class != provider.CredentialsError || !strings.Contains(pe.Message, `"token"`) {
		t.Fatalf("got %v, want CredentialsError naming the key token", err)
	}
}
