// Package drivertest is the conformance suite every driver passes against
// fakecloud, as cert-manager's DNS drivers share one suite. A driver's test
// describes its provider in a Harness and calls Run.
package drivertest

import (
	"context"
	"errors"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nodeaction/nodeaction-operator/api/v1alpha1"
	"github.com/nodeaction/nodeaction-operator/internal/fakecloud"
	"github.com/nodeaction/nodeaction-operator/internal/provider"
)

// ActionCase is how to run one native action successfully.
type ActionCase struct {
	// Parameters the action needs.
	Parameters v1alpha1.ActionParameters
	// Prepare puts the VM in a state the action can run from (for example
	// powered off before power_on).
	Prepare func(vm *fakecloud.VM)
	// Check verifies the action's effect on the VM once it succeeded.
	Check func(t *testing.T, vm fakecloud.VM)
	// Classes a success may end with; default Completed.
	Classes []provider.Class
}

// Harness describes one provider to the suite.
type Harness struct {
	Type v1alpha1.ProviderType
	// New builds the driver.
	New func(provider.Config) (provider.Driver, error)
	// Configure fills Endpoint/AuthURL/Location/... and good Credentials
	// for a fakecloud served at baseURL (no trailing slash).
	Configure func(baseURL string, creds fakecloud.Credentials) provider.Config
	// BadCredentials turns good credentials into ones the cloud refuses.
	BadCredentials func(good map[string][]byte) map[string][]byte
	// NodeID returns the id of the n-th test VM, in the provider's format.
	NodeID func(n int) string
	// Actions has a case for every native action the driver supports.
	Actions map[string]ActionCase
	// Portable maps each portable name the driver supports to the native
	// action it must become.
	Portable map[string]string

	// MissingParameter is a request lacking a parameter its action needs.
	MissingParameter provider.Request
	// Rejected is a request that passes the driver's own checks and that
	// the provider refuses; RejectedMessage is a piece of the provider's
	// answer the error must carry.
	Rejected        provider.Request
	RejectedMessage string
	RejectedPrepare func(vm *fakecloud.VM)

	// FailingAction is an action the cloud reports failed when the VM's
	// FailNext is set.
	FailingAction provider.Request

	// LookupAction is an action Lookup can find again after its answer was lost.
	LookupAction provider.Request
	// LookupPrepare readies the VM for LookupAction.
	LookupPrepare func(vm *fakecloud.VM)
	// LookupByState is true where the API keeps no action history and
	// Lookup reads the VM's state instead: it then cannot return the
	// action's id.
	LookupByState bool
	// UnknowableAction, when set, is an action whose lost answer the
	// provider cannot show: Lookup must say SubmissionUnknown.
	UnknowableAction *provider.Request

	// SweepAction names the entry of Actions that many VMs run at once to
	// check StatusBatch against Status (its Parameters, Prepare, Check and
	// Classes are used).
	SweepAction string

	// world is how fakecloud behaves where the seeds leave a choice open
	// (set by Run).
	world fakecloud.TestWorld
}

// env is one fakecloud with one driver.
type env struct {
	cloud  *fakecloud.Cloud
	server *httptest.Server
	cfg    provider.Config
	driver provider.Driver
}

func (h Harness) newEnv(t *testing.T, duration time.Duration) *env {
	t.Helper()
	return h.newEnvWithTimeout(t, duration, 5*time.Second)
}

func (h Harness) newEnvWithTimeout(t *testing.T, duration, timeout time.Duration) *env {
	t.Helper()
	world := h.world
	e := h.NewEnv(t, EnvOptions{World: &world, Timeout: timeout, Cloud: fakecloud.Options{ActionDuration: duration}})
	return &env{cloud: e.Cloud, server: e.Server, cfg: e.Config, driver: e.Driver}
}

func (e *env) addVM(id string, prepare func(vm *fakecloud.VM)) {
	e.cloud.AddVM(fakecloud.VM{ID: id})
	if prepare != nil {
		_ = e.cloud.UpdateVM(id, prepare)
	}
}

// newCloud builds a cloud in the harness's world; when the test fails, it
// says which world it was, how to repeat it and what the cloud did.
func (h Harness) newCloud(t *testing.T, opts fakecloud.Options) *fakecloud.Cloud {
	t.Helper()
	cloud := fakecloud.New(h.world.Apply(opts))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s; what the cloud did:\n%s", h.world, cloud.Story(""))
		}
	})
	return cloud
}

// Run runs the conformance suite in each world fakecloud.TestWorlds names:
// the default world under the suite's own test names, any other under
// "world=<name>".
func Run(t *testing.T, h Harness) {
	worlds, err := fakecloud.TestWorlds()
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range worlds {
		h.world = w
		if w.Default {
			h.run(t)
			continue
		}
		t.Run("world="+w.Name, h.run)
	}
}

func (h Harness) run(t *testing.T) {
	t.Run("capabilities cover every action", func(t *testing.T) { h.testCapabilities(t) })
	t.Run("every action succeeds", func(t *testing.T) { h.testActions(t) })
	t.Run("portable names", func(t *testing.T) { h.testPortable(t) })
	t.Run("probe", func(t *testing.T) { h.testProbe(t) })
	t.Run("missing parameter", func(t *testing.T) { h.testMissingParameter(t) })
	t.Run("provider rejects", func(t *testing.T) { h.testRejected(t) })
	t.Run("unknown node", func(t *testing.T) { h.testUnknownNode(t) })
	t.Run("invalid node id never reaches the provider", func(t *testing.T) { h.testInvalidNodeID(t) })
	t.Run("bad credentials", func(t *testing.T) { h.testBadCredentials(t) })
	t.Run("provider failure", func(t *testing.T) { h.testProviderFailure(t) })
	t.Run("lookup finds a submitted action", func(t *testing.T) { h.testLookup(t) })
	t.Run("rate limited", func(t *testing.T) { h.testRateLimited(t) })
	t.Run("answer lost after sending", func(t *testing.T) { h.testAmbiguous(t) })
	t.Run("connection refused", func(t *testing.T) { h.testRefused(t) })
	t.Run("credentials never in errors", func(t *testing.T) { h.testNoSecretsInErrors(t) })
	t.Run("one sweep reads many actions", func(t *testing.T) { h.testSweep(t) })
}

func (h Harness) testCapabilities(t *testing.T) {
	e := h.newEnv(t, 0)
	caps := e.driver.Capabilities()
	if len(caps.Actions) == 0 {
		t.Fatal("driver lists no actions")
	}
	for name := range caps.Actions {
		if _, ok := h.Actions[name]; !ok {
			t.Errorf("native action %q has no conformance case", name)
		}
	}
	for name := range h.Actions {
		if _, ok := caps.Actions[name]; !ok {
			t.Errorf("conformance case %q is not an action the driver lists", name)
		}
	}
	for portable, native := range h.Portable {
		req, err := provider.Resolve(caps, h.NodeID(1), portable, nil)
		if err != nil {
			t.Errorf("portable %q: %v", portable, err)
			continue
		}
		if req.Action != native {
			t.Errorf("portable %q became %q, want %q", portable, req.Action, native)
		}
	}
	_, err := provider.Resolve(caps, h.NodeID(1), "no_such_action", nil)
	if pe := provider.AsError(err); pe == nil || pe.Class != provider.UnsupportedAction || !strings.Contains(pe.Message, caps.Names()[0]) {
		t.Errorf("unknown action: got %v, want UnsupportedAction listing the supported actions", err)
	}
}

func (h Harness) testActions(t *testing.T) {
	for name, ac := range h.Actions {
		t.Run(name, func(t *testing.T) {
			e := h.newEnv(t, 20*time.Millisecond)
			id := h.NodeID(1)
			e.addVM(id, ac.Prepare)
			req := provider.Request{NodeID: id, Action: name, Parameters: ac.Parameters}
			if err := e.driver.Validate(req); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			st := h.runToEnd(t, e, req)
			if st.State != provider.StateSucceeded {
				t.Fatalf("ended %s (%s): %s", st.State, st.Class, st.Message)
			}
			want := ac.Classes
			if len(want) == 0 {
				want = []provider.Class{provider.Completed}
			}
			if !contains(want, st.Class) {
				t.Errorf("reason %q, want one of %v (message %q)", st.Class, want, st.Message)
			}
			if n := e.cloud.HandledActionCalls(id); n != 1 {
				t.Errorf("%d action calls handled by the provider, want exactly 1", n)
			}
			if n := e.cloud.AcceptedActions(id); n != 1 {
				t.Errorf("%d actions accepted, want exactly 1", n)
			}
			if ac.Check != nil {
				vm, _ := e.cloud.VM(id)
				ac.Check(t, vm)
			}
		})
	}
}

// runToEnd submits and polls until the action ends.
func (h Harness) runToEnd(t *testing.T, e *env, req provider.Request) provider.ActionStatus {
	t.Helper()
	sub, err := h.submit(t, e.driver, req)
	if err != nil {
		t.Fatalf("Submit: %v", err)
	}
	if sub.Done != nil {
		return *sub.Done
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		st, err := status(e.driver, sub)
		if err != nil {
			t.Fatalf("Status: %v", err)
		}
		if st.State != provider.StateInProgress {
			return st
		}
		if st.Progress != "" {
			sub.Progress = st.Progress // kept as the operator keeps it
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("action did not end within 10s")
	return provider.ActionStatus{}
}

func (h Harness) testPortable(t *testing.T) {
	for portable, native := range h.Portable {
		t.Run(portable, func(t *testing.T) {
			e := h.newEnv(t, 20*time.Millisecond)
			id := h.NodeID(1)
			ac := h.Actions[native]
			e.addVM(id, ac.Prepare)
			req, err := provider.Resolve(e.driver.Capabilities(), id, portable, &ac.Parameters)
			if err != nil {
				t.Fatal(err)
			}
			st := h.runToEnd(t, e, req)
			if st.State != provider.StateSucceeded {
				t.Fatalf("portable %s (native %s) ended %s: %s", portable, native, st.State, st.Message)
			}
		})
	}
}

func (h Harness) testProbe(t *testing.T) {
	e := h.newEnv(t, 0)
	if err := probe(e.driver); err != nil {
		t.Fatalf("Probe with good credentials: %v", err)
	}
	if e.cloud.CountRequests(nil) == 0 {
		t.Fatal("Probe made no request")
	}
}

func (h Harness) testMissingParameter(t *testing.T) {
	e := h.newEnv(t, 0)
	req := h.MissingParameter
	req.NodeID = h.NodeID(1)
	e.addVM(req.NodeID, nil)
	_, err := e.driver.Submit(context.Background(), req)
	expectTerminal(t, err, provider.InvalidParameters)
	if n := e.cloud.CountRequests(nil); n != 0 {
		t.Errorf("a request with a missing parameter made %d provider requests, want 0", n)
	}
}

func (h Harness) testRejected(t *testing.T) {
	e := h.newEnv(t, 0)
	req := h.Rejected
	req.NodeID = h.NodeID(1)
	e.addVM(req.NodeID, h.RejectedPrepare)
	if err := e.driver.Validate(req); err != nil {
		t.Fatalf("the Rejected case must pass the driver's checks: %v", err)
	}
	_, err := h.submit(t, e.driver, req)
	pe := expectKind(t, err, provider.Terminal)
	if pe != nil && !strings.Contains(pe.Message, h.RejectedMessage) {
		t.Errorf("message %q does not carry the provider's words %q", pe.Message, h.RejectedMessage)
	}
	if n := e.cloud.HandledActionCalls(req.NodeID); n != 1 {
		t.Errorf("%d action calls handled by the provider, want 1", n)
	}
}

// windowFrom is the lookup window of an attempt recorded at since: its
// request may leave from then, and land within a minute.
// windowFrom is the window of an attempt sent at since, as the operator
// records it: from a little before, to past when it could last land (the
// suite's request timeout is 5s).
func windowFrom(since time.Time) provider.Window {
	return provider.Window{From: since.Add(-5 * time.Second), To: since.Add(10 * time.Second)}
}

func (h Harness) testUnknownNode(t *testing.T) {
	e := h.newEnv(t, 0)
	req := provider.Request{NodeID: h.NodeID(99), Action: h.LookupAction.Action, Parameters: h.LookupAction.Parameters}
	_, err := h.submit(t, e.driver, req)
	expectTerminal(t, err, provider.NodeNotFound)
}

func (h Harness) testInvalidNodeID(t *testing.T) {
	e := h.newEnv(t, 0)
	for _, id := range []string{"1/../../v2/account", "../actions", "a b", "%2e%2e", ""} {
		req := provider.Request{NodeID: id, Action: h.LookupAction.Action, Parameters: h.LookupAction.Parameters}
		_, err := e.driver.Submit(context.Background(), req)
		expectTerminal(t, err, provider.InvalidNodeID)
		_, err = e.driver.Lookup(context.Background(), req, windowFrom(time.Now()))
		if err == nil {
			t.Errorf("Lookup accepted node id %q", id)
		}
	}
	if n := e.cloud.CountRequests(nil); n != 0 {
		t.Errorf("invalid node ids made %d provider requests: %+v", n, e.cloud.Log())
	}
}

func (h Harness) testBadCredentials(t *testing.T) {
	cloud := h.newCloud(t, fakecloud.Options{})
	server := httptest.NewServer(cloud.Handler())
	defer server.Close()
	cfg := h.Configure(server.URL, fakecloud.DefaultCredentials())
	cfg.Type = h.Type
	cfg.Credentials = h.BadCredentials(cfg.Credentials)
	client, _ := provider.NewHTTPClient(provider.ClientOptions{Gate: provider.NewGate(100000, 1000), Timeout: 5 * time.Second})
	cfg.HTTPClient = client
	d, err := h.New(cfg)
	if err != nil {
		// Refusing to build is fine only for credentials it can see are wrong.
		expectTerminal(t, err, provider.CredentialsError)
		return
	}
	id := h.NodeID(1)
	cloud.AddVM(fakecloud.VM{ID: id})
	expectTerminal(t, probe(d), provider.AuthFailed)
	_, err = h.submit(t, d, provider.Request{NodeID: id, Action: h.LookupAction.Action, Parameters: h.LookupAction.Parameters})
	expectTerminal(t, err, provider.AuthFailed)
	if n := cloud.AcceptedActions(id); n != 0 {
		t.Errorf("bad credentials started %d actions", n)
	}
}

func (h Harness) testProviderFailure(t *testing.T) {
	e := h.newEnv(t, 20*time.Millisecond)
	req := h.FailingAction
	req.NodeID = h.NodeID(1)
	const reason = "hypervisor refused the operation"
	e.addVM(req.NodeID, func(vm *fakecloud.VM) { vm.FailNext = reason })
	sub, err := h.submit(t, e.driver, req)
	var st provider.ActionStatus
	switch {
	case err != nil:
		pe := expectKind(t, err, provider.Terminal)
		if pe != nil && !strings.Contains(pe.Message, reason) {
			t.Errorf("error %q does not carry the provider's reason %q", pe.Message, reason)
		}
		return
	case sub.Done != nil:
		st = *sub.Done
	default:
		deadline := time.Now().Add(10 * time.Second)
		for st.State == "" || st.State == provider.StateInProgress {
			if time.Now().After(deadline) {
				t.Fatal("failed action did not end")
			}
			time.Sleep(10 * time.Millisecond)
			if st, err = status(e.driver, sub); err != nil {
				t.Fatalf("Status: %v", err)
			}
			if st.Progress != "" {
				sub.Progress = st.Progress // kept as the operator keeps it
			}
		}
	}
	if st.State != provider.StateFailed || st.Class != provider.ActionFailed {
		t.Fatalf("got %s/%s, want Failed/ProviderFailed", st.State, st.Class)
	}
	if !strings.Contains(st.Message, reason) && !strings.Contains(strings.ToLower(st.Message), "errored") && !strings.Contains(strings.ToLower(st.Message), "fail") {
		t.Errorf("message %q says nothing of the failure", st.Message)
	}
}

func (h Harness) testLookup(t *testing.T) {
	e := h.newEnv(t, time.Second)
	req := h.LookupAction
	req.NodeID = h.NodeID(1)
	e.addVM(req.NodeID, h.LookupPrepare)
	since := time.Now()

	// Nothing submitted yet: the provider must not invent an action, and
	// says its records are complete enough to prove it. The window ended
	// minutes ago: for a recent one a driver may rightly wait (Retryable)
	// for a list that lags, or a node that moves late, to show it.
	found, err := h.lookup(t, e.driver, req, provider.Window{From: since.Add(-10 * time.Minute), To: since.Add(-5 * time.Minute)})
	if err != nil || len(found.Candidates) != 0 || !found.Complete {
		t.Fatalf("Lookup before any submission: %+v, %v; want no candidate and complete records", found, err)
	}

	sub, err := h.submit(t, e.driver, req)
	if err != nil {
		t.Fatalf("Submit: %v", err)
	}
	// The operator looks only once a submission has settled.
	time.Sleep(h.world.Settle())
	found, err = h.lookup(t, e.driver, req, windowFrom(since))
	if err != nil {
		t.Fatalf("Lookup after submission: %v", err)
	}
	// An adversarial world may add a look-alike earlier action of the same
	// type within the window's clock-skew margin: then the reconciler
	// cannot tell them apart (SubmissionUnknown), but the submitted action
	// must be among the candidates all the same.
	if len(found.Candidates) == 0 || (h.world.Adversary == nil && len(found.Candidates) != 1) {
		t.Fatalf("Lookup found %d candidates (%+v), want the submitted action", len(found.Candidates), found)
	}
	if !h.LookupByState && !slices.ContainsFunc(found.Candidates, func(c provider.Submission) bool { return c.ActionID == sub.ActionID }) {
		t.Errorf("Lookup found %+v, submitted %q", found.Candidates, sub.ActionID)
	}
	if n := e.cloud.AcceptedActions(req.NodeID); n != 1 {
		t.Errorf("%d actions started, want 1 (Lookup must not submit)", n)
	}
	if !h.LookupByState {
		// An action that started before the window is not a candidate:
		// it cannot be a later attempt's.
		// Asked once the records could have filled it (a driver may
		// rightly answer Retryable before), so the answer is final.
		from := time.Now().Add(time.Second)
		later := provider.Window{From: from, To: from.Add(time.Second)}
		time.Sleep(time.Until(later.To) + e.cfg.RecordsLag)
		if found, err := h.lookup(t, e.driver, req, later); err != nil || len(found.Candidates) != 0 {
			t.Errorf("Lookup with a window after the action: %+v, %v; want no candidate", found, err)
		}
	}

	if h.UnknowableAction != nil {
		u := *h.UnknowableAction
		u.NodeID = h.NodeID(2)
		e.addVM(u.NodeID, nil)
		_, err := h.lookup(t, e.driver, u, windowFrom(time.Now()))
		expectTerminal(t, err, provider.SubmissionUnknown)
	}
}

func (h Harness) testRateLimited(t *testing.T) {
	e := h.newEnv(t, 0)
	req := h.LookupAction
	req.NodeID = h.NodeID(1)
	e.addVM(req.NodeID, h.LookupPrepare)
	e.cloud.InjectFault(fakecloud.Fault{ActionOnly: true, Mode: fakecloud.Reject, Status: 429, RetryAfter: 7, Times: 1})
	_, err := e.driver.Submit(context.Background(), req)
	pe := expectKind(t, err, provider.Retryable)
	if pe != nil && (pe.Class != provider.RateLimited || pe.RetryAfter != 7*time.Second) {
		t.Errorf("got reason %s retryAfter %s, want RateLimited after 7s", pe.Class, pe.RetryAfter)
	}
	if n := e.cloud.AcceptedActions(req.NodeID); n != 0 {
		t.Errorf("a 429 started %d actions", n)
	}
}

func (h Harness) testAmbiguous(t *testing.T) {
	for _, mode := range []fakecloud.FaultMode{fakecloud.AcceptThenFail, fakecloud.AcceptThenDrop, fakecloud.AcceptThenHold} {
		t.Run(string(mode), func(t *testing.T) {
			// A held answer outlives the client's 500ms timeout.
			e := h.newEnvWithTimeout(t, time.Second, 500*time.Millisecond)
			req := h.LookupAction
			req.NodeID = h.NodeID(1)
			e.addVM(req.NodeID, h.LookupPrepare)
			f := e.cloud.InjectFault(fakecloud.Fault{ActionOnly: true, Mode: mode, Status: 502, Times: 1})
			defer f.Release()
			since := time.Now()
			_, err := e.driver.Submit(context.Background(), req)
			expectKind(t, err, provider.Ambiguous)
			if n := e.cloud.AcceptedActions(req.NodeID); n != 1 {
				t.Fatalf("fakecloud accepted %d actions, want 1", n)
			}
			time.Sleep(h.world.Settle())
			found, err := h.lookup(t, e.driver, req, windowFrom(since))
			if err != nil || len(found.Candidates) != 1 {
				t.Fatalf("Lookup after a lost answer: %+v, %v; want the accepted action", found, err)
			}
		})
	}
}

func (h Harness) testRefused(t *testing.T) {
	e := h.newEnv(t, 0)
	e.server.Close()
	req := h.LookupAction
	req.NodeID = h.NodeID(1)
	_, err := e.driver.Submit(context.Background(), req)
	expectKind(t, err, provider.Retryable)
}

func (h Harness) testNoSecretsInErrors(t *testing.T) {
	e := h.newEnv(t, 0)
	var msgs []string
	collect := func(err error) {
		if err != nil {
			msgs = append(msgs, err.Error())
		}
	}
	req := h.LookupAction
	req.NodeID = h.NodeID(5)
	_, err := e.driver.Submit(context.Background(), req) // unknown node
	collect(err)
	e.cloud.InjectFault(fakecloud.Fault{Mode: fakecloud.AcceptThenDrop})
	e.addVM(req.NodeID, h.LookupPrepare)
	_, err = e.driver.Submit(context.Background(), req)
	collect(err)
	collect(e.driver.Probe(context.Background()))
	e.server.Close()
	_, err = e.driver.Submit(context.Background(), req)
	collect(err)
	collect(e.driver.Probe(context.Background()))
	if len(msgs) < 3 {
		t.Fatalf("expected errors to inspect, got %d", len(msgs))
	}
	for _, m := range msgs {
		for k, v := range e.cfg.Credentials {
			if len(v) >= 4 && strings.Contains(m, string(v)) {
				t.Errorf("error %q shows the credential %q", m, k)
			}
		}
	}
}

func expectKind(t *testing.T, err error, kind provider.Kind) *provider.Error {
	t.Helper()
	var pe *provider.Error
	if !errors.As(err, &pe) {
		t.Errorf("got %v (%T), want a %s provider error", err, err, kind)
		return nil
	}
	if pe.Kind != kind {
		t.Errorf("got %s error %v, want %s", pe.Kind, pe, kind)
	}
	return pe
}

func expectTerminal(t *testing.T, err error, reason provider.Class) {
	t.Helper()
	if pe := expectKind(t, err, provider.Terminal); pe != nil && pe.Class != reason {
		t.Errorf("got reason %s (%v), want %s", pe.Class, pe, reason)
	}
}

func contains(list []provider.Class, s provider.Class) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
