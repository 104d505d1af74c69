package controllers

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	k8sfake "k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/nodeaction/nodeaction-operator/api/v1alpha1"
)

// A re-run (new spec.runID) of an older NodeAction waits for a newer one
// already under way on the same VM: creation order ranks only those that
// have not started.
func TestRerunOfAnOlderNodeActionWaitsForOneUnderWay(t *testing.T) {
	// "na" was created an hour ago, finished, and is now given a new runID.
	na := unitAction("reboot")
	na.CreationTimestamp = metav1.NewTime(unitStart.Add(-time.Hour))
	na.Spec.RunID = "r2"
	na.Status = v1alpha1.NodeActionStatus{Phase: v1alpha1.PhaseSucceeded, RunID: "", AttemptID: "0f1e2d3c-1", Attempts: 1, TotalAttempts: 1,
		ProviderActionID: "a-1", StartTime: ptrTime(metav1.NewTime(unitStart.Add(-time.Hour))), CompletionTime: ptrTime(metav1.NewTime(unitStart.Add(-50 * time.Minute)))}
	succeed(na, v1alpha1.ReasonCompleted, "done", metav1.NewTime(unitStart.Add(-50*time.Minute)))

	// "later" was created a minute ago on the same VM and its action is running at the provider.
	later := runningOnTheVM("later", "rebuild", unitStart.Add(-time.Minute))

	u := newUnit(t, na, nil, later)
	_, got := u.reconcile() // archives r1, starts run r2
	u.clock.Step(time.Second)
	_, got = u.reconcile()
	if s, _, _ := u.driver.calls(); s != 0 {
		t.Fatalf("re-run of %s submitted %d time(s) (phase %s, reason %s) while NodeAction %q's action %s is still running on the same VM",
			got.Name, s, got.Status.Phase, readyReason(got), later.Name, later.Status.ProviderActionID)
	}
}

// runningOnTheVM is another NodeAction on unitAction's VM, created at
// created, whose action the provider is running (action b-1).
func runningOnTheVM(name, action string, created time.Time) *v1alpha1.NodeAction {
	o := unitAction(action)
	o.Name, o.UID, o.Namespace, o.Generation = name, "0f1e2d3c-0000-4000-8000-000000000002", "ns", 1
	o.CreationTimestamp = metav1.NewTime(created)
	o.Status = v1alpha1.NodeActionStatus{Phase: v1alpha1.PhaseRunning, AttemptID: "0f1e2d3c-1", Attempts: 1, TotalAttempts: 1,
		ProviderActionID: "b-1", StartTime: ptrTime(metav1.NewTime(created)), SubmittedAt: ptrTime(metav1.NewTime(created))}
	progress(o, v1alpha1.PhaseRunning, v1alpha1.ReasonInProgress, "under way")
	return o
}

// A NodeAction created in the same second as one under way on its VM,
// with a name that sorts first, still waits for it.
func TestSameSecondNameOrderDoesNotOvertakeOneUnderWay(t *testing.T) {
	running := runningOnTheVM("zz-first", "reboot", unitStart)

	na := unitAction("reboot") // name "na" < "zz-first", created in the same second, after it
	na.CreationTimestamp = metav1.NewTime(unitStart)
	u := newUnit(t, na, nil, running)
	_, got := u.reconcile()
	if s, _, _ := u.driver.calls(); s != 0 {
		t.Fatalf("%d submission(s) (phase %s) while %q is Running on the same VM", s, got.Status.Phase, running.Name)
	}
}

// A retry asked for by annotation (after SubmissionUnknown) of an older
// NodeAction waits for a newer one under way on the VM.
func TestRetryOfAnOlderNodeActionWaitsForOneUnderWay(t *testing.T) {
	na := unitAction("reboot")
	na.CreationTimestamp = metav1.NewTime(unitStart.Add(-time.Hour))
	na.Annotations = map[string]string{v1alpha1.AnnotationRetrySubmission: "0f1e2d3c-1"}
	na.Status = v1alpha1.NodeActionStatus{Phase: v1alpha1.PhaseFailed, AttemptID: "0f1e2d3c-1", Attempts: 1, TotalAttempts: 1,
		StartTime: ptrTime(metav1.NewTime(unitStart.Add(-time.Hour))), CompletionTime: ptrTime(metav1.NewTime(unitStart.Add(-50 * time.Minute)))}
	fail(na, v1alpha1.ReasonSubmissionUnknown, "cannot tell", metav1.NewTime(unitStart.Add(-50*time.Minute)))

	later := runningOnTheVM("later", "reboot", unitStart.Add(-time.Minute))

	u := newUnit(t, na, nil, later)
	_, got := u.reconcile()
	if s, _, _ := u.driver.calls(); s != 0 {
		t.Fatalf("retry submitted %d time(s) (phase %s) while %q runs on the same VM", s, got.Status.Phase, later.Name)
	}
}

// An activeDeadlineSeconds past time.Duration's range (admitted before the
// CRD's maximum) does not overflow into a deadline long gone.
func TestHugeActiveDeadlineDoesNotOverflow(t *testing.T) {
	na := unitAction("reboot")
	na.Spec.ActiveDeadlineSeconds = ptr.To(int64(10_000_000_000)) // ~317 years, admitted (Minimum=1, no Maximum)
	u := newUnit(t, na, nil)
	u.reconcile()
	u.clock.Step(time.Second)
	_, got := u.reconcile()
	if got.Status.Phase == v1alpha1.PhaseFailed {
		t.Fatalf("phase %s, reason %s: %q", got.Status.Phase, readyReason(got), got.Status.Message)
	}
}

// A member whose spec.runID a person changed (to run one VM again) is not
// given the set's run once more when that ends: the set's run already
// ended on the VM (the member's status.history says so).
func TestSetDoesNotRerunAMemberWhoseRunIDWasEditedByHand(t *testing.T) {
	u := newSetUnit(t, unitSet(1, "1", "2"))
	u.reconcile()
	u.finish("1", v1alpha1.PhaseSucceeded) // run "" on VM 1: done (call #1)
	u.reconcile()                          // VM 2 starts
	u.finish("2", v1alpha1.PhaseSucceeded)
	_, s := u.reconcile()
	expectSetCondition(t, s, metav1.ConditionTrue, v1alpha1.ReasonCompleted)

	// A person re-runs VM 1 by hand: spec.runID "manual" on the member.
	m := u.member("1")
	m.Spec.RunID = "manual"
	if err := u.client.Update(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	u.reconcile()
	u.finish("1", v1alpha1.PhaseSucceeded) // run "manual": done (call #2, asked for)
	_, s = u.reconcile()
	if got := u.member("1").Spec.RunID; got != "manual" {
		t.Fatalf("the set gave member night.1 runID %q again after the hand-run ended: the set's run %q already ran on VM 1 (status.history), this is a third provider call (set Ready reason %s)",
			got, s.Status.RunID, readySetReason(s))
	}
}

// A nodeSelector that is no valid selector (In without values, admitted
// before the CRD checked it) stalls the set with a reason, not a
// reconcile error with no status.
func TestSetWithAnInvalidNodeSelectorStalls(t *testing.T) {
	set := unitSet(1)
	set.Spec.NodeIDs = nil
	set.Spec.NodeSelector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "pool", Operator: metav1.LabelSelectorOpIn}}}
	u := newSetUnit(t, set)
	_, err := u.r.Reconcile(context.Background(), reqFor("night"))
	s := u.set()
	if err != nil {
		t.Fatalf("Reconcile error %v: want a Stalled condition naming spec.nodeSelector", err)
	}
	expectSetCondition(t, s, metav1.ConditionFalse, v1alpha1.ReasonInvalidSelector, "spec.nodeSelector", "values")
}

// A member deleted mid-run with the set's finalizer removed by hand is
// recorded as removed and not created again in the run (its action may
// have reached the provider).
func TestSetDoesNotRecreateAMemberDeletedWithoutItsFinalizer(t *testing.T) {
	u := newSetUnit(t, unitSet(1, "1", "2"))
	u.reconcile()
	u.progress("1", v1alpha1.PhaseRunning, v1alpha1.ReasonInProgress) // provider action under way
	u.reconcile()                                                     // the set has seen its member
	ctx := context.Background()
	m := u.member("1")
	m.Finalizers = nil
	if err := u.client.Update(ctx, m); err != nil {
		t.Fatal(err)
	}
	if err := u.client.Delete(ctx, m); err != nil {
		t.Fatal(err)
	}
	_, s := u.reconcile()
	if got := u.members()["1"]; got != nil {
		t.Fatalf("member night.1 was created again in run %q after it was deleted mid-action (its action may have run): a second provider call", got.Spec.RunID)
	}
	if len(s.Status.RemovedMembers) != 1 || s.Status.RemovedMembers[0].Name != "night.1" || s.Status.RemovedMembers[0].Phase != v1alpha1.PhaseRunning {
		t.Fatalf("status.removedMembers = %+v, want night.1 removed in phase Running", s.Status.RemovedMembers)
	}
}

func reqFor(name string) ctrl.Request {
	return ctrl.Request{NamespacedName: types.NamespacedName{Namespace: "ns", Name: name}}
}

// nodeUnit is a unit whose reconciler may care for Kubernetes Nodes: the
// Node is in both the controller-runtime client and a fake clientset (the
// drainer's).
func nodeUnit(t *testing.T, na *v1alpha1.NodeAction, node *corev1.Node) (*unit, *k8sfake.Clientset) {
	u := newUnit(t, na, nil, node.DeepCopy())
	cs := k8sfake.NewSimpleClientset(node.DeepCopy())
	u.r.Nodes, u.r.Kube = true, cs
	return u, cs
}

func readyNode(name, providerID, bootID string, annotations map[string]string) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: annotations},
		Spec: corev1.NodeSpec{ProviderID: providerID},
		Status: corev1.NodeStatus{NodeInfo: corev1.NodeSystemInfo{BootID: bootID},
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}}}
}

// An invalid spec.node.drain.podSelector (admitted before the CRD checked
// it) ends the run before anything is cordoned or sent, whatever
// onTimeout says: it is not a drain that timed out.
func TestInvalidPodSelectorEndsBeforeCordonOrCall(t *testing.T) {
	na := unitAction("reboot")
	na.Spec.Node = &v1alpha1.NodeSpec{Name: "w1", Drain: &v1alpha1.DrainSpec{TimeoutSeconds: 60, OnTimeout: "Proceed",
		PodSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: metav1.LabelSelectorOpIn}}}}}
	u, cs := nodeUnit(t, na, readyNode("w1", "digitalocean://3164494", "boot-1", nil))
	_, got := u.reconcile()
	u.clock.Step(61 * time.Second)
	_, got = u.reconcile()
	n, _ := cs.CoreV1().Nodes().Get(context.Background(), "w1", metav1.GetOptions{})
	if s, _, _ := u.driver.calls(); s != 0 || got.Status.Phase != v1alpha1.PhaseFailed || readyReason(got) != v1alpha1.ReasonInvalidSelector || n.Spec.Unschedulable {
		t.Fatalf("an invalid spec.node.drain.podSelector: %d provider call(s), Node cordoned %v, phase %s, reason %s (%q); want Failed, InvalidSelector, no cordon, no call",
			s, n.Spec.Unschedulable, got.Status.Phase, readyReason(got), got.Status.Message)
	}
	if !strings.Contains(got.Status.Message, "spec.node.drain.podSelector") {
		t.Errorf("message %q does not name spec.node.drain.podSelector", got.Status.Message)
	}
}

// A Node named in spec.node.name whose providerID names another droplet is
// refused (NodeMismatch) also when its vm annotation names another
// Provider: only an annotation naming this Provider overrides the
// providerID.
func TestNodeMismatchWhenTheAnnotationNamesAnotherProvider(t *testing.T) {
	na := unitAction("reboot")
	na.Spec.Node = &v1alpha1.NodeSpec{Name: "w1", Drain: &v1alpha1.DrainSpec{TimeoutSeconds: 60}}
	node := readyNode("w1", "digitalocean://555", "boot-1", map[string]string{v1alpha1.AnnotationVM: "do-old/555"})
	u, cs := nodeUnit(t, na, node)
	_, got := u.reconcile()
	n, _ := cs.CoreV1().Nodes().Get(context.Background(), "w1", metav1.GetOptions{})
	s, _, _ := u.driver.calls()
	if readyReason(got) != v1alpha1.ReasonNodeMismatch || n.Spec.Unschedulable || s != 0 {
		t.Fatalf("Node w1 (providerID digitalocean://555) used for droplet 3164494: reason %s, Node cordoned %v, %d provider call(s); want NodeMismatch before any cordon or call",
			readyReason(got), n.Spec.Unschedulable, s)
	}
}

// A set relabelled to another shard whose members kept the old shard's
// label cannot see them there: a start that finds its member existing in
// another shard stalls the set with what to run, instead of Rolling with
// nothing in flight for ever.
func TestSetRelabelledWithoutItsMembersSaysWhatToDo(t *testing.T) {
	u := newSetUnit(t, unitSet(2, "1", "2"))
	u.reconcile()
	u.finish("1", v1alpha1.PhaseSucceeded)
	u.finish("2", v1alpha1.PhaseSucceeded)
	u.reconcile()
	u.update(func(s *v1alpha1.NodeActionSet) { s.Spec.Paused = true })
	u.reconcile()
	// Relabelled to shard b: its cache holds none of the members, which
	// keep the label they were created with.
	u.hide = func(na *v1alpha1.NodeAction) bool { return na.Labels[v1alpha1.LabelShard] != "b" }
	u.update(func(s *v1alpha1.NodeActionSet) {
		s.Labels = map[string]string{v1alpha1.LabelShard: "b"}
		s.Spec.Paused = false
		s.Spec.RunID = "r2"
	})
	var s *v1alpha1.NodeActionSet
	for i := 0; i < 5; i++ {
		u.clock.Step(time.Minute)
		_, s = u.reconcile()
	}
	m1 := &v1alpha1.NodeAction{}
	_ = u.client.Get(context.Background(), types.NamespacedName{Namespace: "ns", Name: "night.1"}, m1)
	t.Logf("after relabel and runID r2: Ready reason %s, message %q, member night.1 runID %q", readySetReason(s), s.Status.Message, m1.Spec.RunID)
	if readySetReason(s) == v1alpha1.ReasonRolling && s.Status.Running == 0 {
		t.Fatalf("set stuck: Rolling with nothing in flight and no Stalled condition")
	}
	expectSetCondition(t, s, metav1.ConditionFalse, v1alpha1.ReasonMemberRefused, "night.1", `compute.nodeaction.dev/shard=""`, "kubectl label nodeactions")
}
