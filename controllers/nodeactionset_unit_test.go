package controllers

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/nodeaction/nodeaction-operator/api/v1alpha1"
)

// The NodeActionSet reconciler's decisions with controller-runtime's fake
// client and a fake clock: slots, windows, pauses and the failure budget
// in exact steps, without waiting. Members are driven by hand here (their
// status set as the NodeAction reconciler would); the envtest tests run
// the real members against fakecloud.

// setUnit is a NodeActionSet reconciler under test.
type setUnit struct {
	t      *testing.T
	r      *NodeActionSetReconciler
	client client.Client
	clock  *clocktesting.FakeClock
	events *events.FakeRecorder
	// hide, when set, drops NodeActions from lists (a cache that is behind).
	hide func(*v1alpha1.NodeAction) bool
}

func newSetUnit(t *testing.T, set *v1alpha1.NodeActionSet, others ...client.Object) *setUnit {
	t.Helper()
	u := &setUnit{t: t, clock: clocktesting.NewFakeClock(unitStart), events: events.NewFakeRecorder(1000)}
	set.Namespace, set.UID = "ns", "5e7a0000-0000-4000-8000-000000000001"
	if set.Generation == 0 {
		set.Generation = 1
	}
	p := &v1alpha1.Provider{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "p", UID: "provider-uid"},
		Spec: v1alpha1.ProviderSpec{Type: v1alpha1.ProviderDigitalOcean, CredentialsSecretRef: v1alpha1.SecretReference{Name: "p-credentials"}}}
	u.client = fake.NewClientBuilder().WithScheme(testScheme).WithObjects(append([]client.Object{p, set}, others...)...).
		WithStatusSubresource(&v1alpha1.NodeAction{}, &v1alpha1.NodeActionSet{}).
		WithInterceptorFuncs(interceptor.Funcs{List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
			if err := c.List(ctx, list, opts...); err != nil {
				return err
			}
			if l, ok := list.(*v1alpha1.NodeActionList); ok && u.hide != nil {
				kept := l.Items[:0]
				for _, na := range l.Items {
					if !u.hide(&na) {
						kept = append(kept, na)
					}
				}
				l.Items = kept
			}
			return nil
		}}).Build()
	u.r = &NodeActionSetReconciler{Client: u.client, Recorder: u.events, Clock: u.clock}
	return u
}

// unitSet is a set of reboots over ids, maxUnavailable mu.
func unitSet(mu int, ids ...string) *v1alpha1.NodeActionSet {
	return &v1alpha1.NodeActionSet{ObjectMeta: metav1.ObjectMeta{Name: "night"},
		Spec: v1alpha1.NodeActionSetSpec{ProviderRef: v1alpha1.ProviderReference{Name: "p"}, Action: "reboot", NodeIDs: ids,
			MaxUnavailable: ptr.To(intstr.FromInt32(int32(mu))), ActiveDeadlineSeconds: ptr.To(int64(3600)), BackoffLimit: ptr.To(int32(0))}}
}

func (u *setUnit) reconcile() (ctrl.Result, *v1alpha1.NodeActionSet) {
	u.t.Helper()
	res, err := u.r.Reconcile(context.Background(), ctrl.Request{NamespacedName: types.NamespacedName{Namespace: "ns", Name: "night"}})
	if err != nil {
		u.t.Fatalf("Reconcile: %v", err)
	}
	return res, u.set()
}

func (u *setUnit) set() *v1alpha1.NodeActionSet {
	u.t.Helper()
	s := &v1alpha1.NodeActionSet{}
	if err := u.client.Get(context.Background(), types.NamespacedName{Namespace: "ns", Name: "night"}, s); err != nil {
		u.t.Fatal(err)
	}
	return s
}

// update changes the set's spec as a user would (a new generation).
func (u *setUnit) update(change func(*v1alpha1.NodeActionSet)) {
	u.t.Helper()
	s := u.set()
	change(s)
	s.Generation++
	if err := u.client.Update(context.Background(), s); err != nil {
		u.t.Fatal(err)
	}
}

// members are the set's NodeActions by VM id, and the started VMs in order of name.
func (u *setUnit) members() map[string]*v1alpha1.NodeAction {
	u.t.Helper()
	list := &v1alpha1.NodeActionList{}
	if err := u.client.List(context.Background(), list, client.InNamespace("ns"), client.MatchingLabels{v1alpha1.LabelNodeActionSet: "night"}); err != nil {
		u.t.Fatal(err)
	}
	out := map[string]*v1alpha1.NodeAction{}
	for i := range list.Items {
		out[list.Items[i].Spec.NodeID] = &list.Items[i]
	}
	return out
}

// startedIDs lists the VMs with a member in run.
func (u *setUnit) startedIDs(run string) []string {
	var ids []string
	for id, m := range u.members() {
		if m.Spec.RunID == run {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids
}

// member returns the member on VM id.
func (u *setUnit) member(id string) *v1alpha1.NodeAction {
	u.t.Helper()
	m := u.members()[id]
	if m == nil {
		u.t.Fatalf("no member on VM %s", id)
	}
	return m
}

// progress puts the member on VM id into a phase of its current run, with
// a Ready reason, as the NodeAction reconciler would.
func (u *setUnit) progress(id string, phase v1alpha1.Phase, reason string) {
	u.t.Helper()
	m := u.member(id)
	if m.Status.Phase.Finished() && m.Status.RunID != m.Spec.RunID {
		// As the NodeAction reconciler's archiveRun: a new run keeps the last one's outcome.
		m.Status.History = append([]v1alpha1.RunRecord{{RunID: m.Status.RunID, Phase: m.Status.Phase, Reason: readyReason(m)}}, m.Status.History...)
	}
	m.Status.RunID, m.Status.Phase = m.Spec.RunID, phase
	now := metav1.NewTime(u.clock.Now())
	switch phase {
	case v1alpha1.PhaseSucceeded:
		succeed(m, reason, "done", now)
	case v1alpha1.PhaseFailed:
		fail(m, reason, "failed", now)
	default:
		progress(m, phase, reason, "under way")
	}
	for i := range m.Status.Conditions {
		m.Status.Conditions[i].LastTransitionTime = now
	}
	if err := u.client.Status().Update(context.Background(), m); err != nil {
		u.t.Fatal(err)
	}
}

func (u *setUnit) finish(id string, phase v1alpha1.Phase) {
	u.t.Helper()
	reason := v1alpha1.ReasonCompleted
	if phase == v1alpha1.PhaseFailed {
		reason = v1alpha1.ReasonProviderFailed
	}
	u.progress(id, phase, reason)
}

func (u *setUnit) eventReasons() []string {
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

func expectIDs(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("%s: %v, want %v", what, got, want)
	}
}

func expectSetCondition(t *testing.T, s *v1alpha1.NodeActionSet, ready metav1.ConditionStatus, reason string, parts ...string) {
	t.Helper()
	r := apimeta.FindStatusCondition(s.Status.Conditions, v1alpha1.ConditionReady)
	if r == nil || r.Status != ready || r.Reason != reason {
		t.Fatalf("Ready %+v, want %s with reason %s (message %q)", r, ready, reason, s.Status.Message)
	}
	rec := apimeta.FindStatusCondition(s.Status.Conditions, v1alpha1.ConditionReconciling)
	st := apimeta.FindStatusCondition(s.Status.Conditions, v1alpha1.ConditionStalled)
	switch {
	case ready == metav1.ConditionTrue && (rec != nil || st != nil):
		t.Errorf("Ready=True with Reconciling %+v, Stalled %+v", rec, st)
	case ready == metav1.ConditionFalse && (rec == nil) == (st == nil):
		t.Errorf("Ready=False needs exactly one of Reconciling and Stalled: %+v, %+v", rec, st)
	}
	for _, p := range parts {
		if !strings.Contains(r.Message, p) {
			t.Errorf("message %q does not say %q", r.Message, p)
		}
	}
	if s.Status.ObservedGeneration != s.Generation {
		t.Errorf("observedGeneration %d, generation %d", s.Status.ObservedGeneration, s.Generation)
	}
}

func expectCounts(t *testing.T, s *v1alpha1.NodeActionSet, total, pending, running, succeeded, failed int32) {
	t.Helper()
	st := s.Status
	if st.Total != total || st.Pending != pending || st.Running != running || st.Succeeded != succeeded || st.Failed != failed {
		t.Fatalf("counts total=%d pending=%d running=%d succeeded=%d failed=%d, want %d %d %d %d %d (%s)",
			st.Total, st.Pending, st.Running, st.Succeeded, st.Failed, total, pending, running, succeeded, failed, st.Message)
	}
}

// A set starts members in nodeIDs order, at most maxUnavailable at once,
// and starts the next when one finishes; members are the set's template
// plus the VM and run, owned by the set.
func TestSetStartsAtMostMaxUnavailable(t *testing.T) {
	u := newSetUnit(t, unitSet(2, "30", "10", "20", "40", "50"))
	_, s := u.reconcile()
	expectIDs(t, "started", u.startedIDs(""), "10", "30")
	expectCounts(t, s, 5, 3, 2, 0, 0)
	expectSetCondition(t, s, metav1.ConditionFalse, v1alpha1.ReasonRolling, "0 of 5 succeeded", "2 in flight", "at most 2")

	m := u.member("30")
	ref := metav1.GetControllerOf(m)
	if m.Name != "night.30" || m.Labels[v1alpha1.LabelNodeActionSet] != "night" || ref == nil || ref.UID != s.UID || !hasFinalizer(m) {
		t.Errorf("member %s: labels %v, controller %+v, finalizers %v", m.Name, m.Labels, ref, m.Finalizers)
	}
	if m.Spec.Action != "reboot" || m.Spec.ProviderRef.Name != "p" || m.Spec.RunID != "" || m.Spec.Confirm != "" || *m.Spec.ActiveDeadlineSeconds != 3600 {
		t.Errorf("member spec %+v", m.Spec)
	}
	if _, ok := m.Labels[v1alpha1.LabelShard]; ok {
		t.Errorf("member of an unsharded set labelled %v", m.Labels)
	}
	// A sharded set's members are its shard's: the manager that rolls it
	// out is the one that sees them.
	sharded := unitSet(2, "30")
	sharded.Labels = map[string]string{v1alpha1.LabelShard: "blue"}
	if got := memberFor(sharded, setTarget{nodeID: "30"}, "").Labels[v1alpha1.LabelShard]; got != "blue" {
		t.Errorf("member of a set in shard blue has shard label %q", got)
	}

	// Members in flight, whatever their phase: nothing more starts.
	u.progress("30", v1alpha1.PhaseSubmitting, v1alpha1.ReasonSubmitting)
	u.progress("10", v1alpha1.PhaseRunning, v1alpha1.ReasonInProgress)
	u.reconcile()
	expectIDs(t, "started while two are in flight", u.startedIDs(""), "10", "30")

	u.finish("30", v1alpha1.PhaseSucceeded)
	_, s = u.reconcile()
	expectIDs(t, "started after one finished", u.startedIDs(""), "10", "20", "30")
	expectCounts(t, s, 5, 2, 2, 1, 0)
	if got := u.eventReasons(); strings.Count(strings.Join(got, " "), "Started") != 3 {
		t.Errorf("events %v, want 3 Started", got)
	}
	for _, id := range []string{"10", "20"} {
		u.finish(id, v1alpha1.PhaseSucceeded)
	}
	u.reconcile()
	u.finish("40", v1alpha1.PhaseSucceeded)
	u.finish("50", v1alpha1.PhaseSucceeded)
	res, s := u.reconcile()
	expectCounts(t, s, 5, 0, 0, 5, 0)
	expectSetCondition(t, s, metav1.ConditionTrue, v1alpha1.ReasonCompleted, "all 5 members succeeded")
	if s.Status.CompletionTime == nil || res.RequeueAfter != 0 {
		t.Errorf("completionTime %v, requeue %v: want set, none", s.Status.CompletionTime, res)
	}
}

// Which members hold a slot, phase by phase (the definition in
// nodeactionset_plan.go): started and not ended holds one, NodeBusy
// included; a VM with another unfinished NodeAction on it is not started
// and holds none.
func TestSetSlotAccounting(t *testing.T) {
	cases := []struct {
		phase  v1alpha1.Phase
		reason string
		holds  bool
	}{
		{"", "", true},
		{v1alpha1.PhasePending, v1alpha1.ReasonPending, true},
		{v1alpha1.PhasePending, v1alpha1.ReasonNodeBusy, true},
		{v1alpha1.PhasePending, v1alpha1.ReasonRateLimited, true},
		{v1alpha1.PhasePending, v1alpha1.ReasonNodeUnresolved, true},
		{v1alpha1.PhaseDraining, v1alpha1.ReasonDraining, true},
		{v1alpha1.PhaseSubmitting, v1alpha1.ReasonSubmitting, true},
		{v1alpha1.PhaseRunning, v1alpha1.ReasonInProgress, true},
		{v1alpha1.PhaseWaitingForNode, v1alpha1.ReasonWaitingForNode, true},
		{v1alpha1.PhaseSucceeded, v1alpha1.ReasonCompleted, false},
		{v1alpha1.PhaseSucceeded, v1alpha1.ReasonVerified, false},
		{v1alpha1.PhaseFailed, v1alpha1.ReasonProviderFailed, false},
		{v1alpha1.PhaseFailed, v1alpha1.ReasonDrainTimeout, false},
		{v1alpha1.PhaseFailed, v1alpha1.ReasonNodeNotReturned, false},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%s-%s", c.phase, c.reason), func(t *testing.T) {
			set := unitSet(1, "1", "2")
			set.Spec.MaxFailures = ptr.To(int32(5))
			u := newSetUnit(t, set)
			u.reconcile()
			if c.phase != "" {
				u.progress("1", c.phase, c.reason)
			}
			u.reconcile()
			started := len(u.startedIDs("")) == 2
			if started == c.holds {
				t.Errorf("member in %s (%s): second member started=%v, want holds a slot=%v", c.phase, c.reason, started, c.holds)
			}
		})
	}

	t.Run("an earlier run's member still running holds a slot", func(t *testing.T) {
		u := newSetUnit(t, unitSet(1, "1", "2"))
		u.reconcile()
		u.update(func(s *v1alpha1.NodeActionSet) { s.Spec.RunID = "second" })
		_, s := u.reconcile()
		if got := u.startedIDs("second"); len(got) != 0 {
			t.Fatalf("started %v in run second while VM 1 still runs run \"\"", got)
		}
		expectCounts(t, s, 2, 1, 1, 0, 0)
	})

	t.Run("a VM with another unfinished NodeAction is not started and holds no slot", func(t *testing.T) {
		other := &v1alpha1.NodeAction{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "by-hand"},
			Spec: v1alpha1.NodeActionSpec{ProviderRef: v1alpha1.ProviderReference{Name: "p"}, NodeID: "1", Action: "power_off"}}
		u := newSetUnit(t, unitSet(1, "1", "2", "3"), other)
		_, s := u.reconcile()
		expectIDs(t, "started", u.startedIDs(""), "2")
		if s.Status.Blocked != 1 || !strings.Contains(s.Status.Message, "NodeAction by-hand is unfinished on VM 1") {
			t.Errorf("blocked %d, message %q", s.Status.Blocked, s.Status.Message)
		}
		// The other one ends: VM 1 is next once a slot frees.
		other.Status = v1alpha1.NodeActionStatus{Phase: v1alpha1.PhaseSucceeded}
		if err := u.client.Status().Update(context.Background(), other); err != nil {
			t.Fatal(err)
		}
		u.finish("2", v1alpha1.PhaseSucceeded)
		u.reconcile()
		expectIDs(t, "started", u.startedIDs(""), "1", "2")
	})

	t.Run("a percentage is of the set's VMs, rounded down, at least 1", func(t *testing.T) {
		for _, c := range []struct {
			mu   intstr.IntOrString
			n    int
			want int
		}{{intstr.FromString("10%"), 25, 2}, {intstr.FromString("10%"), 5, 1}, {intstr.FromString("100%"), 7, 7}, {intstr.FromInt32(50), 7, 7}} {
			var ids []string
			for i := 0; i < c.n; i++ {
				ids = append(ids, fmt.Sprint(100+i))
			}
			set := unitSet(1, ids...)
			set.Spec.MaxUnavailable = &c.mu
			u := newSetUnit(t, set)
			u.reconcile()
			if got := len(u.startedIDs("")); got != c.want {
				t.Errorf("maxUnavailable %s of %d VMs: %d started, want %d", c.mu.String(), c.n, got, c.want)
			}
		}
	})
}

// A reconcile on a cache that does not show the members just started yet
// counts them anyway: a VM freed meanwhile does not push the set past
// maxUnavailable.
func TestSetCountsStartsTheCacheDoesNotShowYet(t *testing.T) {
	other := &v1alpha1.NodeAction{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "by-hand"},
		Spec: v1alpha1.NodeActionSpec{ProviderRef: v1alpha1.ProviderReference{Name: "p"}, NodeID: "1", Action: "power_off"}}
	u := newSetUnit(t, unitSet(2, "1", "2", "3"), other)
	u.reconcile()
	expectIDs(t, "started", u.startedIDs(""), "2", "3")
	other.Status = v1alpha1.NodeActionStatus{Phase: v1alpha1.PhaseSucceeded}
	if err := u.client.Status().Update(context.Background(), other); err != nil {
		t.Fatal(err)
	}
	u.hide = func(na *v1alpha1.NodeAction) bool { return na.Labels[v1alpha1.LabelNodeActionSet] != "" }
	u.reconcile()
	u.hide = nil
	expectIDs(t, "started with a cache behind", u.startedIDs(""), "2", "3")
}

// pauseBetweenSeconds: a finished member keeps its slot that long.
func TestSetPausesBetweenMembers(t *testing.T) {
	set := unitSet(1, "1", "2")
	set.Spec.PauseBetweenSeconds = 60
	u := newSetUnit(t, set)
	u.reconcile()
	u.finish("1", v1alpha1.PhaseSucceeded)
	res, s := u.reconcile()
	expectIDs(t, "started right after the first finished", u.startedIDs(""), "1")
	if res.RequeueAfter != time.Minute {
		t.Errorf("requeue after %s, want 1m (the pause)", res.RequeueAfter)
	}
	expectSetCondition(t, s, metav1.ConditionFalse, v1alpha1.ReasonRolling, "pauseBetweenSeconds", unitStart.Add(time.Minute).Format(time.RFC3339))
	u.clock.Step(59 * time.Second)
	u.reconcile()
	expectIDs(t, "started 59s after", u.startedIDs(""), "1")
	u.clock.Step(time.Second)
	u.reconcile()
	expectIDs(t, "started 60s after", u.startedIDs(""), "1", "2")
}

// Members start only inside a window; those started run on past its end.
func TestSetStartsOnlyInsideWindows(t *testing.T) {
	set := unitSet(1, "1", "2")
	// unitStart is 12:00 UTC = 13:00 in Berlin; the window opens at 14:00 Berlin.
	set.Spec.Windows = []v1alpha1.MaintenanceWindow{{Schedule: "0 14 * * *", DurationMinutes: 30, TimeZone: "Europe/Berlin"}}
	u := newSetUnit(t, set)
	res, s := u.reconcile()
	opens := unitStart.Add(time.Hour)
	if len(u.startedIDs("")) != 0 || res.RequeueAfter != time.Hour {
		t.Fatalf("outside the window: started %v, requeue %s (want none, 1h)", u.startedIDs(""), res.RequeueAfter)
	}
	if s.Status.WindowOpen || s.Status.NextWindowStart == nil || !s.Status.NextWindowStart.Time.Equal(opens) {
		t.Errorf("window status open=%v next=%v, want closed, next %s", s.Status.WindowOpen, s.Status.NextWindowStart, opens)
	}
	expectSetCondition(t, s, metav1.ConditionFalse, v1alpha1.ReasonOutsideWindow, opens.Format(time.RFC3339))

	u.clock.SetTime(opens)
	u.reconcile()
	expectIDs(t, "started when the window opened", u.startedIDs(""), "1")
	res, s = u.reconcile() // the start is confirmed: it looks again by the time the window closes
	if !s.Status.WindowOpen || s.Status.WindowEnd == nil || !s.Status.WindowEnd.Time.Equal(opens.Add(30*time.Minute)) || res.RequeueAfter <= 0 || res.RequeueAfter > 30*time.Minute {
		t.Errorf("open window: %+v, requeue %s", s.Status, res.RequeueAfter)
	}

	u.clock.SetTime(opens.Add(30 * time.Minute))
	u.finish("1", v1alpha1.PhaseSucceeded)
	_, s = u.reconcile()
	expectIDs(t, "started after the window closed", u.startedIDs(""), "1")
	expectSetCondition(t, s, metav1.ConditionFalse, v1alpha1.ReasonOutsideWindow)
	if !s.Status.NextWindowStart.Time.Equal(opens.AddDate(0, 0, 1)) {
		t.Errorf("next window %s, want %s", s.Status.NextWindowStart, opens.AddDate(0, 0, 1))
	}
}

// A window the API server could not check (a range that runs backwards)
// stalls the set, naming the field, and starts nothing.
func TestSetWithABadScheduleStalls(t *testing.T) {
	set := unitSet(1, "1")
	set.Spec.Windows = []v1alpha1.MaintenanceWindow{{Schedule: "0 5-2 * * *", DurationMinutes: 30, TimeZone: "UTC"}}
	u := newSetUnit(t, set)
	_, s := u.reconcile()
	if len(u.startedIDs("")) != 0 {
		t.Fatal("a member started")
	}
	expectSetCondition(t, s, metav1.ConditionFalse, v1alpha1.ReasonInvalidWindow, "spec.windows[0].schedule", "0 5-2 * * *")
}

// paused: no new member; those in flight go on; unpaused, it carries on.
func TestSetPause(t *testing.T) {
	u := newSetUnit(t, unitSet(1, "1", "2"))
	u.reconcile()
	u.update(func(s *v1alpha1.NodeActionSet) { s.Spec.Paused = true })
	_, s := u.reconcile()
	expectSetCondition(t, s, metav1.ConditionFalse, v1alpha1.ReasonPaused, "1 in flight")
	u.finish("1", v1alpha1.PhaseSucceeded)
	u.reconcile()
	expectIDs(t, "started while paused", u.startedIDs(""), "1")
	u.update(func(s *v1alpha1.NodeActionSet) { s.Spec.Paused = false })
	u.reconcile()
	expectIDs(t, "started after unpausing", u.startedIDs(""), "1", "2")
}

// More failed members than maxFailures halts new starts (Stalled,
// FailureBudgetExceeded, naming them); members in flight are left to
// finish; raising maxFailures goes on, and a new runID starts over.
func TestSetFailureBudget(t *testing.T) {
	set := unitSet(3, "1", "2", "3", "4", "5", "6")
	set.Spec.MaxFailures = ptr.To(int32(1))
	u := newSetUnit(t, set)
	u.reconcile()
	u.finish("1", v1alpha1.PhaseFailed)
	u.reconcile()
	expectIDs(t, "started after one failure (within the budget)", u.startedIDs(""), "1", "2", "3", "4")
	u.finish("2", v1alpha1.PhaseFailed)
	_, s := u.reconcile()
	expectIDs(t, "started after the second failure", u.startedIDs(""), "1", "2", "3", "4")
	expectSetCondition(t, s, metav1.ConditionFalse, v1alpha1.ReasonFailureBudgetExceeded, "2 members failed", "spec.maxFailures (1)", "night.1", "night.2", "the 2 in flight finish")
	expectIDs(t, "failedMembers", s.Status.FailedMembers, "night.1", "night.2")
	if got := u.eventReasons(); strings.Count(strings.Join(got, " "), v1alpha1.ReasonFailureBudgetExceeded) != 1 {
		t.Errorf("events %v, want one FailureBudgetExceeded", got)
	}
	u.finish("3", v1alpha1.PhaseSucceeded)
	u.finish("4", v1alpha1.PhaseSucceeded)
	_, s = u.reconcile()
	expectIDs(t, "started while halted", u.startedIDs(""), "1", "2", "3", "4")
	expectSetCondition(t, s, metav1.ConditionFalse, v1alpha1.ReasonFailureBudgetExceeded)
	if got := u.eventReasons(); strings.Contains(strings.Join(got, " "), v1alpha1.ReasonFailureBudgetExceeded) {
		t.Errorf("the halt was told again: %v", got)
	}

	u.update(func(s *v1alpha1.NodeActionSet) { s.Spec.MaxFailures = ptr.To(int32(2)) })
	u.reconcile()
	expectIDs(t, "started after raising maxFailures", u.startedIDs(""), "1", "2", "3", "4", "5", "6")
	u.finish("5", v1alpha1.PhaseSucceeded)
	u.finish("6", v1alpha1.PhaseSucceeded)
	_, s = u.reconcile()
	expectSetCondition(t, s, metav1.ConditionFalse, v1alpha1.ReasonMembersFailed, "4 of 6 succeeded, 2 failed", "night.1, night.2")

	u.update(func(s *v1alpha1.NodeActionSet) { s.Spec.RunID = "again" })
	_, s = u.reconcile()
	expectIDs(t, "run again", u.startedIDs("again"), "1", "2", "3")
	expectCounts(t, s, 6, 3, 3, 0, 0)
	expectSetCondition(t, s, metav1.ConditionFalse, v1alpha1.ReasonRolling)
}

// A new runID runs every VM again, giving each member the new runID as
// slots allow; a member still in its earlier run keeps its slot until it ends.
func TestSetRunIDBump(t *testing.T) {
	u := newSetUnit(t, unitSet(2, "1", "2", "3"))
	u.reconcile()
	u.finish("1", v1alpha1.PhaseSucceeded)
	u.update(func(s *v1alpha1.NodeActionSet) { s.Spec.RunID = "r2" })
	_, s := u.reconcile()
	// VM 2 still runs run "": it holds a slot; VM 1 is given run r2.
	expectIDs(t, "run r2", u.startedIDs("r2"), "1")
	expectCounts(t, s, 3, 1, 2, 0, 0)
	if s.Status.RunID != "r2" || s.Status.StartTime == nil {
		t.Errorf("status run %q start %v", s.Status.RunID, s.Status.StartTime)
	}
	u.finish("2", v1alpha1.PhaseSucceeded)
	u.reconcile()
	expectIDs(t, "run r2", u.startedIDs("r2"), "1", "2")
	if got := u.members(); len(got) != 2 {
		t.Errorf("%d members, want 2 (VM 3 not started yet)", len(got))
	}
}

// A member deleted before it finished is recorded and released, and its
// VM is not started again in the run; the run ends Stalled
// (MembersRemoved). A member deleted after it finished counts as it ended.
func TestSetMemberDeletedByHand(t *testing.T) {
	u := newSetUnit(t, unitSet(2, "1", "2", "3"))
	u.reconcile()
	ctx := context.Background()
	for _, id := range []string{"1", "2"} {
		if id == "2" {
			u.finish(id, v1alpha1.PhaseSucceeded)
		} else {
			u.progress(id, v1alpha1.PhaseRunning, v1alpha1.ReasonInProgress)
		}
		if err := u.client.Delete(ctx, u.member(id)); err != nil {
			t.Fatal(err)
		}
		if m := u.member(id); m.DeletionTimestamp.IsZero() {
			t.Fatal("the finalizer did not hold the deletion")
		}
	}
	_, s := u.reconcile()
	if got := u.members(); len(got) != 1 || got["3"] == nil {
		t.Fatalf("members after the deletions: %v, want only VM 3's (released, not recreated)", got)
	}
	if len(s.Status.RemovedMembers) != 2 || s.Status.RemovedMembers[0].Phase != v1alpha1.PhaseRunning || s.Status.RemovedMembers[1].Phase != v1alpha1.PhaseSucceeded {
		t.Fatalf("removed records %+v", s.Status.RemovedMembers)
	}
	expectCounts(t, s, 3, 0, 1, 1, 0)
	u.finish("3", v1alpha1.PhaseSucceeded)
	_, s = u.reconcile()
	if len(u.members()) != 1 {
		t.Fatal("a deleted member was created again")
	}
	expectSetCondition(t, s, metav1.ConditionFalse, v1alpha1.ReasonMembersRemoved, "night.1 (VM 1)", "spec.runID")

	// A new run starts over, the deleted ones included.
	u.update(func(s *v1alpha1.NodeActionSet) { s.Spec.RunID = "r2" })
	_, s = u.reconcile()
	expectIDs(t, "run r2", u.startedIDs("r2"), "1", "2")
	if len(s.Status.RemovedMembers) != 0 {
		t.Errorf("records of run \"\" kept in run r2: %+v", s.Status.RemovedMembers)
	}
}

// Destructive actions: the set's confirm is its name; each member's is its VM.
func TestSetMembersOfADestructiveAction(t *testing.T) {
	set := unitSet(1, "1")
	set.Spec.Action, set.Spec.Confirm = "rebuild", "night"
	set.Spec.Parameters = &v1alpha1.ActionParameters{Image: "ubuntu-24-04-x64"}
	u := newSetUnit(t, set)
	u.reconcile()
	m := u.member("1")
	if m.Spec.Confirm != "1" || m.Spec.Parameters.Image != "ubuntu-24-04-x64" {
		t.Errorf("member spec %+v", m.Spec)
	}
}

// Member names: <set>.<VM>, DNS subdomains, never shared by two VM ids.
func TestSetMemberNames(t *testing.T) {
	ids := []string{"3164494", "web-1", "Web-1", "WEB-1", "web_1", "web.1", "web--1", "a", "A", "5e000000-0000-4000-8000-000000000801",
		strings.Repeat("x", 63), strings.Repeat("x", 64), strings.Repeat("x", 128), strings.Repeat("x", 127) + "X", "-", "_x_", "1.2.3", "1-2-3", "x-"}
	seen := map[string]string{}
	dns := `^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	for _, id := range ids {
		name := memberName("night", id)
		if prev, dup := seen[name]; dup {
			t.Errorf("ids %q and %q share member name %s", prev, id, name)
		}
		seen[name] = id
		vm := strings.TrimPrefix(name, "night.")
		if !strings.HasPrefix(name, "night.") || len(vm) > 63 || !regexpMatch(dns, name) || strings.Contains(vm, ".") {
			t.Errorf("id %q: member name %q is not <set>.<DNS label>", id, name)
		}
	}
	if got := memberName("night", "3164494"); got != "night.3164494" {
		t.Errorf("a clean id is kept: %s", got)
	}
}

func regexpMatch(pattern, s string) bool { return regexp.MustCompile(pattern).MatchString(s) }

// Nodes selected by label become targets through the VM under each, in
// the order of their names; a Node that does not say is listed, not guessed.
func TestSetMapsSelectedNodes(t *testing.T) {
	set := unitSet(5)
	set.Spec.NodeIDs = nil
	set.Spec.NodeSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"pool": "workers"}}
	workers := map[string]string{"pool": "workers"}
	u := newSetUnit(t, set,
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "w-b", Labels: workers}, Spec: corev1.NodeSpec{ProviderID: "digitalocean://22"}},
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "w-a", Labels: workers, Annotations: map[string]string{v1alpha1.AnnotationVM: "p/11"}}},
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "w-c", Labels: workers, Annotations: map[string]string{v1alpha1.AnnotationVM: "other-provider/33"}}},
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "w-d", Labels: workers, Annotations: map[string]string{v1alpha1.AnnotationVM: "p/../x"}}},
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "db", Labels: map[string]string{"pool": "db"}}, Spec: corev1.NodeSpec{ProviderID: "digitalocean://44"}},
	)
	_, s := u.reconcile()
	expectIDs(t, "started", u.startedIDs(""), "11", "22")
	expectIDs(t, "unmapped", s.Status.UnmappedNodes, "w-c", "w-d")
	if m := u.member("11"); m.Spec.Node == nil || m.Spec.Node.Name != "w-a" {
		t.Errorf("member of VM 11: node %+v, want w-a", m.Spec.Node)
	}
	u.finish("11", v1alpha1.PhaseSucceeded)
	u.finish("22", v1alpha1.PhaseSucceeded)
	_, s = u.reconcile()
	expectSetCondition(t, s, metav1.ConditionFalse, v1alpha1.ReasonUnmappedNodes, "w-c, w-d", v1alpha1.AnnotationVM)

	// After the run completed, a Node that comes to match is not taken in
	// (until the spec changes).
	if err := u.client.Create(context.Background(), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "w-e", Labels: workers},
		Spec: corev1.NodeSpec{ProviderID: "digitalocean://55"}}); err != nil {
		t.Fatal(err)
	}
	u.reconcile()
	expectIDs(t, "started after a Node joined a finished run", u.startedIDs(""), "11", "22")
	u.update(func(s *v1alpha1.NodeActionSet) { s.Spec.MaxFailures = ptr.To(int32(1)) })
	u.reconcile()
	expectIDs(t, "started after a spec change", u.startedIDs(""), "11", "22", "55")
}

// spec.node is every member's: drained before, proven back after (the
// members' Draining and WaitingForNode hold their slots, TestSetSlotAccounting).
// A member proven by its Node (Verified) has succeeded like any other, and
// one that failed around its Node (DrainTimeout) has failed.
func TestSetWithNodesCountsTheirOutcomes(t *testing.T) {
	set := unitSet(3, "1", "2", "3", "4")
	set.Spec.MaxFailures = ptr.To(int32(1))
	set.Spec.Node = &v1alpha1.NodeSpec{Drain: &v1alpha1.DrainSpec{TimeoutSeconds: 120, OnTimeout: "Fail"},
		WaitReadySeconds: ptr.To(int32(300)), Uncordon: ptr.To(true)}
	u := newSetUnit(t, set)
	u.reconcile()
	expectIDs(t, "started", u.startedIDs(""), "1", "2", "3")
	m := u.member("1")
	if n := m.Spec.Node; n == nil || n.Name != "" || n.Drain == nil || n.Drain.TimeoutSeconds != 120 || *n.WaitReadySeconds != 300 || !*n.Uncordon {
		t.Fatalf("member spec.node %+v, want the set's (no name: the member finds its Node from its VM)", n)
	}
	u.progress("1", v1alpha1.PhaseDraining, v1alpha1.ReasonDraining)
	u.progress("2", v1alpha1.PhaseWaitingForNode, v1alpha1.ReasonWaitingForNode)
	u.progress("3", v1alpha1.PhaseSucceeded, v1alpha1.ReasonVerified)
	_, s := u.reconcile()
	expectIDs(t, "started", u.startedIDs(""), "1", "2", "3", "4")
	expectCounts(t, s, 4, 0, 3, 1, 0)
	u.progress("1", v1alpha1.PhaseFailed, v1alpha1.ReasonDrainTimeout)
	u.progress("2", v1alpha1.PhaseSucceeded, v1alpha1.ReasonVerified)
	u.progress("4", v1alpha1.PhaseSucceeded, v1alpha1.ReasonAcceptedUnverified)
	_, s = u.reconcile()
	expectCounts(t, s, 4, 0, 0, 3, 1)
	expectSetCondition(t, s, metav1.ConditionFalse, v1alpha1.ReasonMembersFailed, "3 of 4 succeeded, 1 failed")

	u.update(func(s *v1alpha1.NodeActionSet) { s.Spec.RunID = "again" })
	u.reconcile()
	for _, id := range []string{"1", "2", "3"} {
		u.progress(id, v1alpha1.PhaseSucceeded, v1alpha1.ReasonVerified)
	}
	u.reconcile()
	u.progress("4", v1alpha1.PhaseSucceeded, v1alpha1.ReasonVerified)
	_, s = u.reconcile()
	expectCounts(t, s, 4, 0, 0, 4, 0)
	expectSetCondition(t, s, metav1.ConditionTrue, v1alpha1.ReasonCompleted, "all 4 members succeeded")
}

// Without the right to list Nodes the set says so and starts nothing,
// rather than waiting forever for the Node cache.
func TestSetThatCannotListNodesSaysSo(t *testing.T) {
	set := unitSet(1)
	set.Spec.NodeIDs = nil
	set.Spec.NodeSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"pool": "workers"}}
	u := newSetUnit(t, set)
	list := u.client
	u.client = interceptor.NewClient(list.(client.WithWatch), interceptor.Funcs{List: func(ctx context.Context, c client.WithWatch, l client.ObjectList, opts ...client.ListOption) error {
		if _, ok := l.(*corev1.NodeList); ok {
			return apierrors.NewForbidden(corev1.Resource("nodes"), "", fmt.Errorf("no RBAC"))
		}
		return c.List(ctx, l, opts...)
	}})
	u.r.Client = u.client
	res, s := u.reconcile()
	if len(u.members()) != 0 || res.RequeueAfter != time.Minute {
		t.Errorf("members %v, requeue %s", u.members(), res.RequeueAfter)
	}
	expectSetCondition(t, s, metav1.ConditionFalse, v1alpha1.ReasonNodesUnreadable, "get, list and watch on nodes", "forbidden")
}

// A selector that matches nothing is not a finished run: the set says
// NoTargets and takes in Nodes that come to match.
func TestSetWithNoNodesWaitsForThem(t *testing.T) {
	set := unitSet(1)
	set.Spec.NodeIDs = nil
	set.Spec.NodeSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"pool": "workers"}}
	u := newSetUnit(t, set)
	res, s := u.reconcile()
	expectSetCondition(t, s, metav1.ConditionFalse, v1alpha1.ReasonNoTargets, "selects no Node")
	if s.Status.CompletionTime != nil || res.RequeueAfter != setRecheckNodes {
		t.Errorf("completionTime %v, requeue %s", s.Status.CompletionTime, res.RequeueAfter)
	}
	if err := u.client.Create(context.Background(), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "w-a", Labels: map[string]string{"pool": "workers"}},
		Spec: corev1.NodeSpec{ProviderID: "digitalocean://77"}}); err != nil {
		t.Fatal(err)
	}
	u.reconcile()
	expectIDs(t, "started", u.startedIDs(""), "77")
}

// A deleted set holds nothing back: the members the garbage collector
// deletes after it lose the set's finalizer.
func TestDeletedSetReleasesItsMembers(t *testing.T) {
	u := newSetUnit(t, unitSet(2, "1", "2"))
	u.reconcile()
	ctx := context.Background()
	if err := u.client.Delete(ctx, u.set()); err != nil {
		t.Fatal(err)
	}
	for _, m := range u.members() {
		if err := u.client.Delete(ctx, m); err != nil { // as the garbage collector would
			t.Fatal(err)
		}
	}
	if len(u.members()) != 2 {
		t.Fatal("the finalizer did not hold the members")
	}
	if _, err := u.r.Reconcile(ctx, ctrl.Request{NamespacedName: types.NamespacedName{Namespace: "ns", Name: "night"}}); err != nil {
		t.Fatal(err)
	}
	if left := u.members(); len(left) != 0 {
		t.Errorf("members left after their set was deleted: %v", left)
	}
}
