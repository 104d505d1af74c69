package controllers

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/nodeaction/nodeaction-operator/api/v1alpha1"
	"github.com/nodeaction/nodeaction-operator/internal/provider"
)

// The reconciler's decisions, each with a fake driver, a fake clock and
// controller-runtime's fake client (Flux's controller tests are the model):
// fast, exact, and beside the envtest suite, which checks the same paths
// against a real API server and fakecloud.

// fakeDriver is a scripted provider.
type fakeDriver struct {
	mu       sync.Mutex
	submits  int
	statuses int
	lookups  []provider.Window
	submit   func(context.Context, provider.Request) (provider.Submission, error)
	status   func(provider.Submission) (provider.ActionStatus, error)
	lookup   func(provider.Request, provider.Window) (provider.Found, error)
}

func (d *fakeDriver) Capabilities() provider.Capabilities {
	return provider.Capabilities{Actions: map[string]provider.ActionInfo{
		"reboot": {Repeatable: true}, "power_off": {Repeatable: true, Idempotent: true},
	}}
}
func (d *fakeDriver) Probe(context.Context) error     { return nil }
func (d *fakeDriver) Validate(provider.Request) error { return nil }
func (d *fakeDriver) calls() (submits, statuses, lookups int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.submits, d.statuses, len(d.lookups)
}

func (d *fakeDriver) Submit(ctx context.Context, req provider.Request) (provider.Submission, error) {
	d.mu.Lock()
	d.submits++
	d.mu.Unlock()
	if d.submit != nil {
		return d.submit(ctx, req)
	}
	return provider.Submission{Request: req, ActionID: "a-1", StartedAt: time.Now()}, nil
}

func (d *fakeDriver) Status(_ context.Context, sub provider.Submission) (provider.ActionStatus, error) {
	d.mu.Lock()
	d.statuses++
	d.mu.Unlock()
	if d.status != nil {
		return d.status(sub)
	}
	return provider.ActionStatus{State: provider.StateInProgress}, nil
}

func (d *fakeDriver) Lookup(_ context.Context, req provider.Request, w provider.Window) (provider.Found, error) {
	d.mu.Lock()
	d.lookups = append(d.lookups, w)
	d.mu.Unlock()
	if d.lookup != nil {
		return d.lookup(req, w)
	}
	return provider.Found{Complete: true}, nil
}

// fakeDrivers is the DriverSource around one fakeDriver.
type fakeDrivers struct {
	driver      *fakeDriver
	err         error     // what Driver returns instead of the driver
	slot        time.Time // the next request slot; zero: now
	changed     bool      // CredentialsChanged's answer
	invalidated int
}

func (f *fakeDrivers) Driver(context.Context, *v1alpha1.Provider) (provider.Driver, error) {
	if f.err != nil {
		return nil, f.err
	}
	return f.driver, nil
}
func (f *fakeDrivers) Reserve(_ *v1alpha1.Provider, now time.Time) (*provider.Ticket, error) {
	return &provider.Ticket{At: maxTime(now, f.slot)}, nil
}
func (f *fakeDrivers) RequestTimeout() time.Duration { return 2 * time.Second }
func (f *fakeDrivers) MaxRateWait() time.Duration    { return 200 * time.Millisecond }
func (f *fakeDrivers) CredentialsChanged(context.Context, *v1alpha1.Provider) bool {
	return f.changed
}
func (f *fakeDrivers) Invalidate(*v1alpha1.Provider) { f.invalidated++ }

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// unit is one reconciler under test with its fakes.
type unit struct {
	t       *testing.T
	r       *NodeActionReconciler
	client  client.Client
	clock   *clocktesting.FakeClock
	drivers *fakeDrivers
	driver  *fakeDriver
	events  *events.FakeRecorder
	writes  int // status writes that landed
	key     types.NamespacedName
}

var unitStart = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

// newUnit builds a reconciler around a Provider "p" and the NodeAction na
// (in namespace "ns"); funcs, when given, intercept the client's calls.
func newUnit(t *testing.T, na *v1alpha1.NodeAction, funcs *interceptor.Funcs, others ...client.Object) *unit {
	t.Helper()
	u := &unit{t: t, clock: clocktesting.NewFakeClock(unitStart), driver: &fakeDriver{}, events: events.NewFakeRecorder(100)}
	u.drivers = &fakeDrivers{driver: u.driver}
	na.Namespace, na.UID = "ns", "0f1e2d3c-0000-4000-8000-000000000001"
	if na.Generation == 0 {
		na.Generation = 1
	}
	p := &v1alpha1.Provider{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "p", UID: "provider-uid"},
		Spec: v1alpha1.ProviderSpec{Type: v1alpha1.ProviderDigitalOcean, CredentialsSecretRef: v1alpha1.SecretReference{Name: "p-credentials"}}}
	b := fake.NewClientBuilder().WithScheme(testScheme).WithObjects(append([]client.Object{p, na}, others...)...).
		WithStatusSubresource(&v1alpha1.NodeAction{}).
		WithIndex(&v1alpha1.NodeAction{}, indexNodeID, func(o client.Object) []string { return []string{o.(*v1alpha1.NodeAction).Spec.NodeID} })
	count := interceptor.Funcs{SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
		if funcs != nil && funcs.SubResourcePatch != nil {
			if err := funcs.SubResourcePatch(ctx, c, sub, obj, patch, opts...); err != nil {
				return err
			}
		}
		err := c.SubResource(sub).Patch(ctx, obj, patch, opts...)
		if err == nil {
			u.writes++
		}
		return err
	}}
	if funcs != nil {
		count.List = funcs.List
	}
	u.client = b.WithInterceptorFuncs(count).Build()
	u.r = &NodeActionReconciler{Client: u.client, APIReader: apiReader{u.client}, Drivers: u.drivers, Recorder: u.events, Clock: u.clock}
	u.key = types.NamespacedName{Namespace: "ns", Name: na.Name}
	return u
}

// reconcile runs one reconcile and returns the object as stored after it.
func (u *unit) reconcile() (ctrl.Result, *v1alpha1.NodeAction) {
	u.t.Helper()
	res, err := u.r.Reconcile(context.Background(), ctrl.Request{NamespacedName: u.key})
	if err != nil {
		u.t.Fatalf("Reconcile: %v", err)
	}
	return res, u.get()
}

func (u *unit) get() *v1alpha1.NodeAction {
	u.t.Helper()
	na := &v1alpha1.NodeAction{}
	if err := u.client.Get(context.Background(), u.key, na); err != nil {
		u.t.Fatal(err)
	}
	return na
}

// eventReasons drains the recorded events.
func (u *unit) eventReasons() []string {
	var out []string
	for {
		select {
		case e := <-u.events.Events:
			out = append(out, strings.Fields(e)[1])
		default:
			return out
		}
	}
}

func unitAction(action string) *v1alpha1.NodeAction {
	return &v1alpha1.NodeAction{ObjectMeta: metav1.ObjectMeta{Name: "na"},
		Spec: v1alpha1.NodeActionSpec{ProviderRef: v1alpha1.ProviderReference{Name: "p"}, NodeID: "3164494", Action: action,
			ActiveDeadlineSeconds: ptr.To(int64(3600))}}
}

func TestJudgeLookup(t *testing.T) {
	a := provider.Submission{ActionID: "1017"}
	b := provider.Submission{ActionID: "1018"}
	state := provider.Submission{} // a state read-back: no action id
	claimed := map[string]claim{"1017": {owner: "ns/a", sure: true, records: 1}, "1020": {owner: "other/z"}}
	elsewhere := provider.Submission{ActionID: "1020"} // recorded through another Provider
	now := time.Date(2026, 12, 1, 7, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name    string
		found   provider.Found
		adopt   string
		notAcc  bool
		unknown string
		wait    time.Duration
	}{
		// CloudsFor names an action by VM and started_at in whole seconds:
		// two reboots in one second share an id. One recorded by another
		// NodeAction leaves the other unclaimed.
		{name: "an id listed twice and claimed once leaves one to adopt", found: provider.Found{Candidates: []provider.Submission{a, a}, Complete: true}, adopt: "1017"},
		// Records that may still show an accepted action prove nothing yet,
		// whatever claimed actions they list.
		{name: "claimed only, records still settling: wait", found: provider.Found{Candidates: []provider.Submission{a}, Complete: true, SettlesAt: now.Add(90 * time.Second)}, wait: 90 * time.Second},
		{name: "none, records still settling: wait", found: provider.Found{Complete: true, SettlesAt: now.Add(time.Second)}, wait: time.Second},
		{name: "none, records settled: not accepted", found: provider.Found{Complete: true, SettlesAt: now.Add(-time.Second)}, notAcc: true},
		{name: "one unclaimed while settling is adopted", found: provider.Found{Candidates: []provider.Submission{a, b}, Complete: true, SettlesAt: now.Add(time.Minute)}, adopt: "1018"},
		{name: "one unclaimed candidate is adopted", found: provider.Found{Candidates: []provider.Submission{b}, Complete: true}, adopt: "1018"},
		{name: "a claimed candidate is someone else's", found: provider.Found{Candidates: []provider.Submission{a}, Complete: true}, notAcc: true},
		{name: "claimed skipped, the other adopted", found: provider.Found{Candidates: []provider.Submission{a, b}, Complete: true}, adopt: "1018"},
		{name: "none in complete records: not accepted", found: provider.Found{Complete: true}, notAcc: true},
		{name: "none in incomplete records: unknown", found: provider.Found{Why: "list too long"}, unknown: "list too long"},
		{name: "two unclaimed: unknown, never a guess", found: provider.Found{Candidates: []provider.Submission{b, {ActionID: "1019"}}, Complete: true}, unknown: "1018, 1019"},
		{name: "a state read-back is adopted", found: provider.Found{Candidates: []provider.Submission{state}, Complete: true}, adopt: ""},
		{name: "claimed only, incomplete: unknown naming the claimed one", found: provider.Found{Candidates: []provider.Submission{a}}, unknown: "ns/a"},
		// Action ids are per account: an id recorded through another
		// Provider may be another account's. Counting it out would send
		// again an attempt that landed (seen in the kill test, where each
		// world's fakecloud numbers its actions from 1001).
		{name: "an id recorded through another Provider is not counted out", found: provider.Found{Candidates: []provider.Submission{elsewhere}, Complete: true}, unknown: "another Provider"},
		{name: "nor adopted beside another", found: provider.Found{Candidates: []provider.Submission{elsewhere, b}, Complete: true}, unknown: "1018, 1020"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := judgeLookup(tc.found, claimed, now)
			switch {
			case tc.wait > 0:
				if v.adopt != nil || v.notAccepted || v.wait != tc.wait {
					t.Errorf("got %+v, want a wait of %s", v, tc.wait)
				}
			case tc.unknown != "":
				if v.adopt != nil || v.notAccepted || !strings.Contains(v.why, tc.unknown) {
					t.Errorf("got %+v, want unknown mentioning %q", v, tc.unknown)
				}
			case tc.notAcc:
				if v.adopt != nil || !v.notAccepted {
					t.Errorf("got %+v, want not accepted", v)
				}
			default:
				if v.adopt == nil || v.adopt.ActionID != tc.adopt {
					t.Errorf("got %+v, want adopt %q", v, tc.adopt)
				}
			}
		})
	}
}

// The budget is taken before the intent: a submission whose slot is far
// off writes its intent once, with the time it will go, and no attempt is
// counted until its request leaves. Nothing is sent before the slot.
func TestSubmissionWaitsForItsSlotWithOneWrite(t *testing.T) {
	u := newUnit(t, unitAction("reboot"), nil)
	u.drivers.slot = unitStart.Add(40 * time.Second)
	res, na := u.reconcile()
	if u.writes != 1 || na.Status.Phase != v1alpha1.PhaseSubmitting || readyReason(na) != v1alpha1.ReasonRateLimited {
		t.Fatalf("%d writes, phase %s (%s), want one write of the intent waiting for its slot", u.writes, na.Status.Phase, readyReason(na))
	}
	if na.Status.Attempts != 0 || na.Status.TotalAttempts != 1 || !na.Status.SubmittedAt.Time.Equal(u.drivers.slot) {
		t.Errorf("attempts %d, totalAttempts %d, submittedAt %v; want 0, 1 and the slot's time", na.Status.Attempts, na.Status.TotalAttempts, na.Status.SubmittedAt)
	}
	// Back a moment before the slot (a busy work queue wakes it late);
	// the send itself waits out the rest.
	if s, _, _ := u.driver.calls(); s != 0 || res.RequeueAfter != 40*time.Second-wakeEarly {
		t.Fatalf("%d submissions, requeue %s; want none before the slot, back in 40s less %s", s, res.RequeueAfter, wakeEarly)
	}
	// Woken early (another event): still nothing sent.
	u.clock.Step(10 * time.Second)
	u.reconcile()
	if s, _, _ := u.driver.calls(); s != 0 {
		t.Fatalf("%d submissions before the slot", s)
	}
	u.clock.Step(30 * time.Second)
	_, na = u.reconcile()
	if s, _, _ := u.driver.calls(); s != 1 || na.Status.Phase != v1alpha1.PhaseRunning || na.Status.Attempts != 1 {
		t.Fatalf("%d submissions, phase %s, attempts %d at the slot; want 1, Running, 1", s, na.Status.Phase, na.Status.Attempts)
	}
	if u.writes != 2 {
		t.Errorf("%d status writes for intent and answer, want 2", u.writes)
	}
}

// A send the provider's window holds back at its slot (the budget the
// provider reports is spent until its reset) keeps its recorded intent: it
// goes when the window resets, inside the attempt's recorded window,
// without another status write. Only a hold past the last moment the
// attempt may leave sends it back for a new slot.
func TestSendHeldByTheProvidersWindowKeepsItsIntent(t *testing.T) {
	u := newUnit(t, unitAction("reboot"), nil)
	held := 0
	u.driver.submit = func(context.Context, provider.Request) (provider.Submission, error) {
		if held < 1 {
			held++
			return provider.Submission{}, &provider.Error{Kind: provider.Retryable, Class: provider.RateLimited, NotSent: true, WindowSpent: true,
				RetryAfter: 1500 * time.Millisecond, Message: "client-side rate limit: the provider's window is spent"}
		}
		return provider.Submission{ActionID: "a-1", StartedAt: u.clock.Now()}, nil
	}
	res, na := u.reconcile()
	if u.writes != 1 || na.Status.Phase != v1alpha1.PhaseSubmitting || na.Status.Attempts != 0 {
		t.Fatalf("%d writes, phase %s, attempts %d; want the intent only, still Submitting, nothing sent", u.writes, na.Status.Phase, na.Status.Attempts)
	}
	if res.RequeueAfter <= 0 || res.RequeueAfter > 1500*time.Millisecond {
		t.Fatalf("requeue %s, want back by the window's reset (1.5s)", res.RequeueAfter)
	}
	attempt := na.Status.AttemptID
	u.clock.Step(1500 * time.Millisecond)
	_, na = u.reconcile()
	if s, _, _ := u.driver.calls(); s != 2 || na.Status.Phase != v1alpha1.PhaseRunning || na.Status.AttemptID != attempt || na.Status.Attempts != 1 {
		t.Fatalf("%d submit calls, phase %s, attempt %s (was %s), attempts %d; want the same attempt sent once", s, na.Status.Phase, na.Status.AttemptID, attempt, na.Status.Attempts)
	}
	if u.writes != 2 {
		t.Errorf("%d status writes for intent and answer, want 2", u.writes)
	}

	// Held past the attempt's last moment to leave, or held for a
	// Retry-After (kept in memory only, a restart would have to look up an
	// attempt that never went, on a provider that may not show it): back
	// to Pending, on record, and a new slot.
	for _, held := range []*provider.Error{
		{Kind: provider.Retryable, Class: provider.RateLimited, NotSent: true, WindowSpent: true, RetryAfter: time.Minute, Message: "window spent"},
		{Kind: provider.Retryable, Class: provider.RateLimited, NotSent: true, RetryAfter: time.Second, Message: "Retry-After"},
	} {
		u = newUnit(t, unitAction("reboot"), nil)
		u.driver.submit = func(context.Context, provider.Request) (provider.Submission, error) {
			return provider.Submission{}, held
		}
		_, na = u.reconcile()
		if na.Status.Phase != v1alpha1.PhasePending || readyReason(na) != v1alpha1.ReasonRateLimited || na.Status.Attempts != 0 {
			t.Fatalf("%s: phase %s (%s), attempts %d; want Pending, RateLimited, nothing sent", held.Message, na.Status.Phase, readyReason(na), na.Status.Attempts)
		}
	}
}

// A request that never left (the client-side budget or a refused
// connection) is not counted as an attempt.
func TestNotSentIsNotAnAttempt(t *testing.T) {
	u := newUnit(t, unitAction("reboot"), nil)
	u.driver.submit = func(context.Context, provider.Request) (provider.Submission, error) {
		return provider.Submission{}, &provider.Error{Kind: provider.Retryable, Class: provider.Unavailable, NotSent: true, Message: "request not sent: connection refused"}
	}
	_, na := u.reconcile()
	if na.Status.Phase != v1alpha1.PhasePending || na.Status.Attempts != 0 || na.Status.TotalAttempts != 1 {
		t.Fatalf("phase %s, attempts %d, totalAttempts %d; want Pending, 0, 1", na.Status.Phase, na.Status.Attempts, na.Status.TotalAttempts)
	}
}

// The retry annotation is honoured for the current attempt only.
func TestRetryAnnotationOnlyForTheCurrentAttempt(t *testing.T) {
	stopped := func(annotation string) *v1alpha1.NodeAction {
		na := unitAction("reboot")
		na.Annotations = map[string]string{v1alpha1.AnnotationRetrySubmission: annotation}
		na.Status = v1alpha1.NodeActionStatus{Phase: v1alpha1.PhaseFailed, AttemptID: "0f1e2d3c-3", Attempts: 1, TotalAttempts: 3,
			StartTime: ptrTime(metav1.NewTime(unitStart)), CompletionTime: ptrTime(metav1.NewTime(unitStart))}
		fail(na, v1alpha1.ReasonSubmissionUnknown, "cannot tell", metav1.NewTime(unitStart))
		return na
	}
	u := newUnit(t, stopped("0f1e2d3c-1"), nil)
	_, na := u.reconcile()
	if s, _, _ := u.driver.calls(); s != 0 || na.Status.Phase != v1alpha1.PhaseFailed {
		t.Fatalf("an annotation naming an earlier attempt submitted %d times (phase %s)", s, na.Status.Phase)
	}
	u = newUnit(t, stopped("0f1e2d3c-3"), nil)
	_, na = u.reconcile()
	if s, _, _ := u.driver.calls(); s != 1 || na.Status.AttemptID != "0f1e2d3c-4" {
		t.Fatalf("the current attempt's annotation: %d submissions, attempt %s; want 1 and a new id", s, na.Status.AttemptID)
	}
	// Honoured once: the next reconcile does not send again.
	u.reconcile()
	if s, _, _ := u.driver.calls(); s != 1 {
		t.Fatalf("%d submissions after the retry, want 1", s)
	}
}

// A new run numbers its attempts on from the earlier runs', so an
// annotation naming an earlier run's attempt can never match one of it.
func TestNewRunNeverReusesAnAttemptID(t *testing.T) {
	na := unitAction("reboot")
	na.Spec.RunID = "r2"
	na.Status = v1alpha1.NodeActionStatus{Phase: v1alpha1.PhaseFailed, RunID: "r1", AttemptID: "0f1e2d3c-1", Attempts: 1, TotalAttempts: 1,
		StartTime: ptrTime(metav1.NewTime(unitStart)), CompletionTime: ptrTime(metav1.NewTime(unitStart))}
	na.Annotations = map[string]string{v1alpha1.AnnotationRetrySubmission: "0f1e2d3c-1"}
	u := newUnit(t, na, nil)
	u.driver.submit = func(context.Context, provider.Request) (provider.Submission, error) {
		return provider.Submission{}, provider.NewAmbiguous("connection reset")
	}
	u.driver.lookup = func(provider.Request, provider.Window) (provider.Found, error) {
		return provider.Found{}, provider.ErrSubmissionUnknown("no history")
	}
	_, got := u.reconcile()
	if got.Status.AttemptID != "0f1e2d3c-2" {
		t.Fatalf("run r2's first attempt is %s, want 0f1e2d3c-2", got.Status.AttemptID)
	}
	u.clock.Step(time.Minute)
	_, got = u.reconcile() // the lookup: SubmissionUnknown
	if readyReason(got) != v1alpha1.ReasonSubmissionUnknown {
		t.Fatalf("reason %s, want SubmissionUnknown", readyReason(got))
	}
	u.reconcile()
	if s, _, _ := u.driver.calls(); s != 1 {
		t.Fatalf("%d submissions: run r1's annotation sent run r2 again", s)
	}
}

// Events and metrics wait for the status write that records what they
// tell: when it fails, nothing is told, and the next reconcile tells it once.
func TestFinishEventOnlyAfterTheWriteLands(t *testing.T) {
	failing := true
	na := unitAction("reboot")
	na.Status = v1alpha1.NodeActionStatus{Phase: v1alpha1.PhaseRunning, AttemptID: "0f1e2d3c-1", Attempts: 1, TotalAttempts: 1,
		ProviderActionID: "a-1", StartTime: ptrTime(metav1.NewTime(unitStart)), SubmittedAt: ptrTime(metav1.NewTime(unitStart))}
	u := newUnit(t, na, &interceptor.Funcs{SubResourcePatch: func(context.Context, client.Client, string, client.Object, client.Patch, ...client.SubResourcePatchOption) error {
		if failing {
			return errors.New("etcd is having a bad day")
		}
		return nil
	}})
	providerEnd := unitStart.Add(7 * time.Second)
	u.driver.status = func(provider.Submission) (provider.ActionStatus, error) {
		return provider.ActionStatus{State: provider.StateSucceeded, Class: provider.Completed, Message: "done", CompletedAt: providerEnd}, nil
	}
	u.clock.Step(20 * time.Second)
	if _, err := u.r.Reconcile(context.Background(), ctrl.Request{NamespacedName: u.key}); err == nil {
		t.Fatal("a failed status write was not reported")
	}
	if ev := u.eventReasons(); len(ev) != 0 {
		t.Fatalf("events %v told before the status write landed", ev)
	}
	failing = false
	_, got := u.reconcile()
	if ev := u.eventReasons(); len(ev) != 1 || ev[0] != v1alpha1.ReasonCompleted {
		t.Fatalf("events %v, want one Completed", ev)
	}
	if got.Status.Phase != v1alpha1.PhaseSucceeded || !got.Status.CompletionTime.Time.Equal(providerEnd) {
		t.Errorf("phase %s, completionTime %v; want Succeeded at the provider's end time %v", got.Status.Phase, got.Status.CompletionTime, providerEnd)
	}
}

// When the NodeActions on the node cannot be listed, nothing is sent.
func TestNodeBusyCheckFailsClosed(t *testing.T) {
	u := newUnit(t, unitAction("reboot"), &interceptor.Funcs{List: func(context.Context, client.WithWatch, client.ObjectList, ...client.ListOption) error {
		return errors.New("the cache is not synced")
	}})
	_, na := u.reconcile()
	if s, _, _ := u.driver.calls(); s != 0 || na.Status.Phase != v1alpha1.PhasePending || !strings.Contains(na.Status.Message, "not submitting") {
		t.Fatalf("%d submissions, phase %s (%q); want none while the node cannot be checked", s, na.Status.Phase, na.Status.Message)
	}
}

// An earlier unfinished NodeAction on the same VM id blocks a submission
// only through the same Provider: the same id through another Provider may
// be another account's VM.
func TestNodeBusyOnlyThroughTheSameProvider(t *testing.T) {
	for _, sameProvider := range []bool{true, false} {
		earlier := unitAction("reboot")
		earlier.Name, earlier.UID = "earlier", "0f1e2d3c-0000-4000-8000-000000000002"
		earlier.Namespace, earlier.Generation = "ns", 1
		earlier.CreationTimestamp = metav1.NewTime(unitStart.Add(-time.Minute))
		if !sameProvider {
			earlier.Spec.ProviderRef.Name = "other-account"
		}
		later := unitAction("reboot")
		later.CreationTimestamp = metav1.NewTime(unitStart)
		u := newUnit(t, later, nil, earlier)
		_, na := u.reconcile()
		s, _, _ := u.driver.calls()
		switch {
		case sameProvider && (s != 0 || readyReason(na) != v1alpha1.ReasonNodeBusy):
			t.Errorf("same Provider: %d submissions, reason %s; want it to wait (NodeBusy) for the earlier NodeAction", s, readyReason(na))
		case !sameProvider && s != 1:
			t.Errorf("another Provider with the same VM id: %d submissions, reason %s (%q); want the submission", s, readyReason(na), na.Status.Message)
		}
	}
}

// Each reason a Provider cannot be used has its own condition reason; what
// only a changed Provider or Secret can fix stalls, and the run resumes
// when it is fixed.
func TestDriverErrorsHaveTheirOwnReasons(t *testing.T) {
	for _, tc := range []struct {
		err     error
		reason  string
		stalled bool
	}{
		{provider.NewTerminal(provider.SecretNotFound, `credentials Secret "p-credentials" not found`), v1alpha1.ReasonSecretNotFound, true},
		{provider.NewTerminal(provider.CredentialsError, `the credentials Secret has no key "token"`), v1alpha1.ReasonCredentialsError, true},
		{provider.NewTerminal(provider.InvalidConfig, "spec.caBundle holds no PEM certificate"), v1alpha1.ReasonInvalidConfig, true},
		{provider.NewRetryable(provider.Unavailable, "cannot read credentials Secret: timeout", 0), v1alpha1.ReasonRetrying, false},
	} {
		t.Run(tc.reason, func(t *testing.T) {
			u := newUnit(t, unitAction("reboot"), nil)
			u.drivers.err = tc.err
			_, na := u.reconcile()
			st := condition(na.Status.Conditions, v1alpha1.ConditionStalled)
			if readyReason(na) != tc.reason || (st != nil) != tc.stalled || na.Status.Phase != v1alpha1.PhasePending {
				t.Fatalf("reason %s, Stalled %+v, phase %s; want %s, stalled=%v, Pending", readyReason(na), st, na.Status.Phase, tc.reason, tc.stalled)
			}
			u.drivers.err = nil
			_, na = u.reconcile()
			if s, _, _ := u.driver.calls(); s != 1 || condition(na.Status.Conditions, v1alpha1.ConditionStalled) != nil {
				t.Fatalf("after the fix: %d submissions, conditions %+v", s, na.Status.Conditions)
			}
		})
	}
}

// A 401 while following an accepted action keeps it Running and waiting,
// and a changed Secret is tried at once.
func TestCredentialsRejectedWhileFollowingWaits(t *testing.T) {
	na := unitAction("reboot")
	na.Status = v1alpha1.NodeActionStatus{Phase: v1alpha1.PhaseRunning, AttemptID: "0f1e2d3c-1", Attempts: 1, TotalAttempts: 1,
		ProviderActionID: "a-1", StartTime: ptrTime(metav1.NewTime(unitStart)), SubmittedAt: ptrTime(metav1.NewTime(unitStart))}
	u := newUnit(t, na, nil)
	u.driver.status = func(provider.Submission) (provider.ActionStatus, error) {
		return provider.ActionStatus{}, &provider.Error{Kind: provider.Terminal, Class: provider.AuthFailed, StatusCode: 401, Message: "Unable to authenticate you"}
	}
	res, got := u.reconcile()
	if got.Status.Phase != v1alpha1.PhaseRunning || readyReason(got) != v1alpha1.ReasonCredentialsRejected ||
		condition(got.Status.Conditions, v1alpha1.ConditionStalled) == nil || res.RequeueAfter != waitForConfig {
		t.Fatalf("phase %s, reason %s, requeue %s; want Running, CredentialsRejected, Stalled, back in %s", got.Status.Phase, readyReason(got), res.RequeueAfter, waitForConfig)
	}
	u.drivers.changed = true
	u.clock.Step(waitForConfig)
	res, _ = u.reconcile()
	if u.drivers.invalidated != 1 || res.RequeueAfter != time.Second {
		t.Fatalf("after the Secret changed: %d invalidations, requeue %s; want the driver rebuilt and a try in 1s", u.drivers.invalidated, res.RequeueAfter)
	}
}

// An attempt recorded with a slot that had not come when the operator
// restarted was never sent: it is taken up again without a lookup. One whose
// slot had come is looked up, but only once its request can no longer land,
// with the window it could have started in.
func TestRestartWithARecordedAttempt(t *testing.T) {
	recorded := func(sendAt time.Time) *v1alpha1.NodeAction {
		na := unitAction("reboot")
		na.Status = v1alpha1.NodeActionStatus{Phase: v1alpha1.PhaseSubmitting, AttemptID: "0f1e2d3c-1", TotalAttempts: 1,
			StartTime: ptrTime(metav1.NewTime(unitStart)), SubmittedAt: ptrTime(metav1.NewTime(sendAt)),
			SubmitDeadline: ptrTime(metav1.NewTime(sendAt.Add(3 * time.Second)))}
		progress(na, v1alpha1.PhaseSubmitting, v1alpha1.ReasonRateLimited, "waiting for a request slot")
		return na
	}
	// The slot is a minute away: nothing can have left.
	u := newUnit(t, recorded(unitStart.Add(time.Minute)), nil)
	_, na := u.reconcile()
	if s, _, l := u.driver.calls(); s != 1 || l != 0 || na.Status.AttemptID == "0f1e2d3c-1" {
		t.Fatalf("%d submissions, %d lookups, attempt %s; want a new attempt sent without a lookup", s, l, na.Status.AttemptID)
	}

	// The slot was now: look up only after the deadline and the margin.
	u = newUnit(t, recorded(unitStart), nil)
	res, _ := u.reconcile()
	if s, _, l := u.driver.calls(); s != 0 || l != 0 || res.RequeueAfter != 3*time.Second+settleMargin {
		t.Fatalf("%d submissions, %d lookups, requeue %s; want to wait until the deadline and margin", s, l, res.RequeueAfter)
	}
	u.clock.Step(res.RequeueAfter)
	_, na = u.reconcile()
	s, _, l := u.driver.calls()
	if l != 1 || s != 1 || na.Status.Phase != v1alpha1.PhaseRunning {
		t.Fatalf("%d lookups, %d submissions, phase %s; want one lookup, then (not accepted) one submission", l, s, na.Status.Phase)
	}
	w := u.driver.lookups[0]
	if !w.From.Equal(unitStart.Add(-clockSkew)) || !w.To.Equal(unitStart.Add(3*time.Second+settleMargin+clockSkew)) {
		t.Errorf("lookup window %v..%v", w.From, w.To)
	}
}

// A manager that may not watch Nodes (installed for one namespace) leaves a
// NodeAction with spec.node waiting, Stalled, and calls nothing.
func TestNodeActionWithoutNodePermissionWaits(t *testing.T) {
	na := unitAction("reboot")
	na.Spec.Node = &v1alpha1.NodeSpec{Drain: &v1alpha1.DrainSpec{}}
	u := newUnit(t, na, nil)
	_, got := u.reconcile()
	if s, _, _ := u.driver.calls(); s != 0 || readyReason(got) != v1alpha1.ReasonNodeUnresolved ||
		condition(got.Status.Conditions, v1alpha1.ConditionStalled) == nil || !strings.Contains(got.Status.Message, "may not") {
		t.Fatalf("%d submissions, reason %s, message %q; want none, Stalled NodeUnresolved saying the operator may not read Nodes", s, readyReason(got), got.Status.Message)
	}
}

// Each run's action is one record, however many fields name it: between a
// failed attempt and its retry's intent, providerActionID and
// failedActionIDs both hold the failed action's id. Counted twice, it
// would count out a second listed action with the same id (CloudsFor's
// same-second ids), the lost attempt's own.
func TestClaimsCountEachRunsActionOnce(t *testing.T) {
	na := unitAction("reboot")
	other := unitAction("reboot")
	other.Name, other.Namespace, other.UID = "other", "ns", "0f1e2d3c-0000-4000-8000-000000000002"
	other.Status = v1alpha1.NodeActionStatus{Phase: v1alpha1.PhasePending, ProviderActionID: "vm@t1", FailedAttempts: 1,
		FailedActionIDs: []string{"vm@t0", "vm@t1"},
		History:         []v1alpha1.RunRecord{{RunID: "a", Phase: v1alpha1.PhaseSucceeded, ProviderActionID: "vm@t1"}}}
	u := newUnit(t, na, nil, other)
	s := &step{r: u.r, na: u.get(), now: unitStart}
	claimed, err := s.claimedActions(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// vm@t1: the current run's failed attempt (once) and an earlier run's.
	if c := claimed["vm@t1"]; !c.sure || c.records != 2 {
		t.Errorf("vm@t1 claimed %+v, want sure with 2 records (this run's, an earlier run's)", c)
	}
	if c := claimed["vm@t0"]; !c.sure || c.records != 1 {
		t.Errorf("vm@t0 claimed %+v, want sure with 1 record", c)
	}
}
