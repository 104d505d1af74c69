package controllers

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodeaction/nodeaction-operator/api/v1alpha1"
	"github.com/nodeaction/nodeaction-operator/internal/fakecloud"
)

// NodeActionSets against the real apiserver, the real NodeAction
// reconciler and fakecloud: concurrency is read from fakecloud's timeline
// of actions (accepted request to completion), never from status, and
// "nothing happened" is watched for over a stated window.

// setVMs adds n DigitalOcean VMs with ids prefix01.. and returns their ids.
func setVMs(prefix string, n int, d time.Duration) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s%02d", prefix, i+1)
		cloud.AddVM(fakecloud.VM{ID: ids[i], ActionDuration: d})
	}
	return ids
}

func nodeActionSet(ns, name, provider, action string, mu int, ids ...string) *v1alpha1.NodeActionSet {
	return &v1alpha1.NodeActionSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1alpha1.NodeActionSetSpec{ProviderRef: v1alpha1.ProviderReference{Name: provider}, Action: action, NodeIDs: ids,
			MaxUnavailable: ptr.To(intstr.FromInt32(int32(mu)))}}
}

// waitForSet polls the set until cond holds.
func waitForSet(t *testing.T, s *v1alpha1.NodeActionSet, timeout time.Duration, what string, cond func(*v1alpha1.NodeActionSet) bool) *v1alpha1.NodeActionSet {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := k8s.Get(context.Background(), client.ObjectKeyFromObject(s), s)
		if err == nil && cond(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s on %s: last error %v, status %+v", timeout, what, s.Name, err, s.Status)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func setReason(s *v1alpha1.NodeActionSet) string {
	if c := apimeta.FindStatusCondition(s.Status.Conditions, v1alpha1.ConditionReady); c != nil && s.Status.ObservedGeneration == s.Generation {
		return c.Reason
	}
	return ""
}

func setHasReason(reason string) func(*v1alpha1.NodeActionSet) bool {
	return func(s *v1alpha1.NodeActionSet) bool { return setReason(s) == reason }
}

func inIDs(ids []string) func(string) bool {
	set := map[string]bool{}
	for _, id := range ids {
		set[id] = true
	}
	return func(vm string) bool { return set[vm] }
}

// expectPeak checks fakecloud's timeline: at most limit actions at once
// on ids, and (when atLeast > 0) at least atLeast at some point.
func expectPeak(t *testing.T, ids []string, limit, atLeast int) {
	t.Helper()
	peak, at := cloud.PeakConcurrent(inIDs(ids))
	if peak > limit {
		t.Errorf("fakecloud ran %d actions at once at %s on the set's VMs, more than maxUnavailable %d", peak, at.Format(time.StampMilli), limit)
	}
	if peak < atLeast {
		t.Errorf("at most %d actions ran at once; the set should have used %d slots", peak, atLeast)
	}
}

// expectNoActionCalls watches fakecloud's log for window and fails at the
// first action call on one of ids.
func expectNoActionCalls(t *testing.T, ids []string, window time.Duration, why string) {
	t.Helper()
	is := inIDs(ids)
	count := func() int {
		return cloud.CountRequests(func(r fakecloud.Request) bool { return r.ActionCall && is(r.VMID) })
	}
	before := count()
	deadline := time.Now().Add(window)
	for time.Now().Before(deadline) {
		if n := count(); n != before {
			t.Fatalf("%s: an action call reached fakecloud %s into the %s window", why, window-time.Until(deadline), window)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func expectCalls(t *testing.T, id string, want int) {
	t.Helper()
	if calls, accepted := cloud.HandledActionCalls(id), cloud.AcceptedActions(id); calls != want || accepted != want {
		t.Errorf("VM %s: %d action calls, %d accepted; want %d\n%s", id, calls, accepted, want, cloud.Story(id))
	}
}

// A set of 8 rolls over every VM, 3 at a time on fakecloud's timeline,
// one call each, and ends Ready=True.
func TestNodeActionSetRollsOutWithinMaxUnavailable(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	startManagerIn(t, ns)
	createProvider(t, ns, "do", v1alpha1.ProviderDigitalOcean)
	ids := setVMs("1510", 8, time.Second)
	s := nodeActionSet(ns, "roll", "do", "reboot", 3, ids...)
	create(t, s)
	waitForSet(t, s, 60*time.Second, "Ready", setHasReason(v1alpha1.ReasonCompleted))
	for _, id := range ids {
		expectCalls(t, id, 1)
	}
	expectPeak(t, ids, 3, 2)
	if st := s.Status; st.Total != 8 || st.Succeeded != 8 || st.Running != 0 || st.Pending != 0 || st.CompletionTime == nil || len(st.InFlight) != 0 {
		t.Errorf("status %+v", st)
	}
	// Zero counts are written too, so kubectl's columns show 0, not nothing.
	if _, found, _ := unstructured.NestedInt64(gitopsGet(t, gitopsNodeActionSetGVK, client.ObjectKeyFromObject(s)).Object, "status", "failed"); !found {
		t.Error("status.failed is not stored when 0")
	}
	c := apimeta.FindStatusCondition(s.Status.Conditions, v1alpha1.ConditionReady)
	if c.Status != metav1.ConditionTrue || apimeta.FindStatusCondition(s.Status.Conditions, v1alpha1.ConditionReconciling) != nil {
		t.Errorf("conditions %+v", s.Status.Conditions)
	}
	members := &v1alpha1.NodeActionList{}
	if err := k8s.List(context.Background(), members, client.InNamespace(ns), client.MatchingLabels{v1alpha1.LabelNodeActionSet: "roll"}); err != nil {
		t.Fatal(err)
	}
	if len(members.Items) != 8 {
		t.Errorf("%d members, want 8", len(members.Items))
	}
	if !hasSetEvent(t, s, v1alpha1.ReasonCompleted) {
		t.Error("no Completed event on the set")
	}
	// One Started event per member, each naming it (not folded into one series).
	started := map[string]bool{}
	waitUntil(5*time.Second, func() bool {
		list := &eventsv1.EventList{}
		if err := k8s.List(context.Background(), list, client.InNamespace(ns)); err != nil {
			return false
		}
		for _, e := range list.Items {
			if e.Regarding.Name == "roll" && e.Reason == "Started" && e.Related != nil && strings.Contains(e.Note, e.Related.Name) {
				started[e.Related.Name] = true
			}
		}
		return len(started) == len(ids)
	})
	if len(started) != len(ids) {
		t.Errorf("Started events name %d members, want %d: %v", len(started), len(ids), started)
	}
}

func hasSetEvent(t *testing.T, s *v1alpha1.NodeActionSet, reason string) bool {
	t.Helper()
	return hasEventOn(t, s.Namespace, s.Name, "NodeActionSet", reason)
}

// More failures than maxFailures halt the rollout: Stalled naming the
// failed members, and no action call for a stated window; raising
// maxFailures goes on.
func TestNodeActionSetFailureBudget(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	startManagerIn(t, ns)
	createProvider(t, ns, "do", v1alpha1.ProviderDigitalOcean)
	ids := setVMs("1520", 6, 500*time.Millisecond)
	for _, id := range ids[:2] {
		if err := cloud.UpdateVM(id, func(vm *fakecloud.VM) { vm.FailNext = "hypervisor fault" }); err != nil {
			t.Fatal(err)
		}
	}
	s := nodeActionSet(ns, "budget", "do", "reboot", 2, ids...)
	s.Spec.MaxFailures = ptr.To(int32(1))
	create(t, s)
	waitForSet(t, s, 30*time.Second, "FailureBudgetExceeded", setHasReason(v1alpha1.ReasonFailureBudgetExceeded))
	stalled := apimeta.FindStatusCondition(s.Status.Conditions, v1alpha1.ConditionStalled)
	for _, part := range []string{"2 members failed", "spec.maxFailures (1)", "budget." + ids[0], "budget." + ids[1]} {
		if stalled == nil || !strings.Contains(stalled.Message, part) {
			t.Errorf("Stalled %+v does not say %q", stalled, part)
		}
	}
	expectNoActionCalls(t, ids[2:], 3*time.Second, "halted by the failure budget")
	if !hasSetEvent(t, s, v1alpha1.ReasonFailureBudgetExceeded) {
		t.Error("no FailureBudgetExceeded event")
	}

	updateSet(t, s, func(s *v1alpha1.NodeActionSet) { s.Spec.MaxFailures = ptr.To(int32(2)) })
	waitForSet(t, s, 30*time.Second, "the run to finish", setHasReason(v1alpha1.ReasonMembersFailed))
	for _, id := range ids {
		expectCalls(t, id, 1)
	}
	expectPeak(t, ids, 2, 2)
	if s.Status.Failed != 2 || s.Status.Succeeded != 4 {
		t.Errorf("status %+v", s.Status)
	}
}

// Paused mid-rollout: members in flight finish, no new one starts for a
// stated window; unpaused, the rollout completes.
func TestNodeActionSetPausedMidRollout(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	startManagerIn(t, ns)
	createProvider(t, ns, "do", v1alpha1.ProviderDigitalOcean)
	ids := setVMs("1530", 6, 1500*time.Millisecond)
	s := nodeActionSet(ns, "pause", "do", "reboot", 2, ids...)
	create(t, s)
	waitForSet(t, s, 20*time.Second, "two in flight", func(s *v1alpha1.NodeActionSet) bool { return s.Status.Running == 2 })
	updateSet(t, s, func(s *v1alpha1.NodeActionSet) { s.Spec.Paused = true })
	waitForSet(t, s, 20*time.Second, "paused with nothing in flight", func(s *v1alpha1.NodeActionSet) bool {
		return setReason(s) == v1alpha1.ReasonPaused && s.Status.Running == 0
	})
	done := s.Status.Succeeded
	if done < 2 || done > 4 {
		t.Fatalf("%d succeeded when paused", done)
	}
	expectNoActionCalls(t, ids, 3*time.Second, "paused")
	updateSet(t, s, func(s *v1alpha1.NodeActionSet) { s.Spec.Paused = false })
	waitForSet(t, s, 60*time.Second, "Ready", setHasReason(v1alpha1.ReasonCompleted))
	for _, id := range ids {
		expectCalls(t, id, 1)
	}
	expectPeak(t, ids, 2, 2)
}

// A new runID mid-rollout: the VMs already started run again, the others
// run once, in the new run; never more than maxUnavailable at once across
// both runs.
func TestNodeActionSetRunIDChangedMidRollout(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	startManagerIn(t, ns)
	createProvider(t, ns, "do", v1alpha1.ProviderDigitalOcean)
	ids := setVMs("1540", 5, time.Second)
	s := nodeActionSet(ns, "rerun", "do", "reboot", 2, ids...)
	create(t, s)
	waitForSet(t, s, 20*time.Second, "two in flight", func(s *v1alpha1.NodeActionSet) bool { return s.Status.Running == 2 })
	updateSet(t, s, func(s *v1alpha1.NodeActionSet) { s.Spec.RunID = "second" })
	waitForSet(t, s, 60*time.Second, "run second Ready", func(s *v1alpha1.NodeActionSet) bool {
		return s.Status.RunID == "second" && setReason(s) == v1alpha1.ReasonCompleted
	})
	twice := 0
	for _, id := range ids {
		n := cloud.AcceptedActions(id)
		if n < 1 || n > 2 || cloud.HandledActionCalls(id) != n {
			t.Errorf("VM %s: %d accepted, %d calls", id, n, cloud.HandledActionCalls(id))
		}
		if n == 2 {
			twice++
		}
	}
	if twice < 2 {
		t.Errorf("%d VMs ran twice; the two in flight at the change should run again in run second", twice)
	}
	expectPeak(t, ids, 2, 2)
	m := &v1alpha1.NodeAction{}
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "rerun." + ids[0]}, m); err != nil {
		t.Fatal(err)
	}
	if m.Spec.RunID != "second" || len(m.Status.History) != 1 {
		t.Errorf("member %s: runID %q, history %+v", m.Name, m.Spec.RunID, m.Status.History)
	}
}

// A member deleted by hand mid-flight is not created again: its VM gets
// no second call, and the run ends Stalled (MembersRemoved).
func TestNodeActionSetMemberDeletedByHand(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	startManagerIn(t, ns)
	createProvider(t, ns, "do", v1alpha1.ProviderDigitalOcean)
	ids := setVMs("1550", 3, 1500*time.Millisecond)
	s := nodeActionSet(ns, "hand", "do", "reboot", 1, ids...)
	create(t, s)
	first := &v1alpha1.NodeAction{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hand." + ids[0]}}
	waitFor(t, first, 20*time.Second, "the first member running", func(n *v1alpha1.NodeAction) bool { return n.Status.Phase == v1alpha1.PhaseRunning })
	if err := k8s.Delete(context.Background(), first); err != nil {
		t.Fatal(err)
	}
	waitForSet(t, s, 60*time.Second, "MembersRemoved", setHasReason(v1alpha1.ReasonMembersRemoved))
	expectNoActionCalls(t, ids[:1], 2*time.Second, "a deleted member")
	expectCalls(t, ids[0], 1)
	expectCalls(t, ids[1], 1)
	expectCalls(t, ids[2], 1)
	if s.Status.Removed != 1 || s.Status.Succeeded != 2 || len(s.Status.RemovedMembers) != 1 {
		t.Errorf("status %+v", s.Status)
	}
	if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(first), first); err == nil {
		t.Errorf("the deleted member is still there (finalizers %v)", first.Finalizers)
	}
}

// Two sets over the same VM: its two actions run one after the other
// (NodeBusy holds across sets), each set's once.
func TestTwoNodeActionSetsOverTheSameVM(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	startManagerIn(t, ns)
	createProvider(t, ns, "do", v1alpha1.ProviderDigitalOcean)
	ids := setVMs("1560", 3, time.Second)
	a := nodeActionSet(ns, "a", "do", "reboot", 2, ids[0], ids[1])
	b := nodeActionSet(ns, "b", "do", "power_cycle", 2, ids[1], ids[2])
	create(t, a)
	create(t, b)
	waitForSet(t, a, 60*time.Second, "a Ready", setHasReason(v1alpha1.ReasonCompleted))
	waitForSet(t, b, 60*time.Second, "b Ready", setHasReason(v1alpha1.ReasonCompleted))
	expectCalls(t, ids[0], 1)
	expectCalls(t, ids[1], 2)
	expectCalls(t, ids[2], 1)
	if peak, at := cloud.PeakConcurrent(inIDs(ids[1:2])); peak != 1 {
		t.Errorf("%d actions at once on VM %s at %s", peak, ids[1], at)
	}
}

// Nodes selected by label become members through the VM under each; a
// Node that does not say which VM it runs on is reported, not guessed.
func TestNodeActionSetSelectsNodes(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	startManagerIn(t, ns)
	createProvider(t, ns, "do", v1alpha1.ProviderDigitalOcean)
	// The VMs exist, so the members do not fail (a failed member would
	// halt the set, and its message would no longer name the unmapped Node).
	cloud.AddVM(fakecloud.VM{ID: "157101"})
	cloud.AddVM(fakecloud.VM{ID: "157102"})
	pool := "pool-" + ns
	nodes := []*corev1.Node{
		{ObjectMeta: metav1.ObjectMeta{Name: ns + "-b", Labels: map[string]string{"pool": pool}}, Spec: corev1.NodeSpec{ProviderID: "digitalocean://157102"}},
		{ObjectMeta: metav1.ObjectMeta{Name: ns + "-a", Labels: map[string]string{"pool": pool},
			Annotations: map[string]string{v1alpha1.AnnotationVM: "do/157101"}}},
		{ObjectMeta: metav1.ObjectMeta{Name: ns + "-c", Labels: map[string]string{"pool": pool}}, Spec: corev1.NodeSpec{ProviderID: "kind://docker/x"}},
		{ObjectMeta: metav1.ObjectMeta{Name: ns + "-other", Labels: map[string]string{"pool": "other"}}, Spec: corev1.NodeSpec{ProviderID: "digitalocean://157109"}},
	}
	for _, n := range nodes {
		create(t, n)
		t.Cleanup(func() { _ = k8s.Delete(context.Background(), n) })
	}
	s := nodeActionSet(ns, "nodes", "do", "reboot", 1)
	s.Spec.NodeIDs = nil
	s.Spec.NodeSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"pool": pool}}
	s.Spec.Node = &v1alpha1.NodeSpec{WaitReadySeconds: ptr.To(int32(60))}
	create(t, s)
	waitForSet(t, s, 20*time.Second, "a member and the unmapped Node", func(s *v1alpha1.NodeActionSet) bool {
		return s.Status.Total == 2 && len(s.Status.UnmappedNodes) == 1
	})
	if s.Status.UnmappedNodes[0] != ns+"-c" || !strings.Contains(s.Status.Message, v1alpha1.AnnotationVM) {
		t.Errorf("unmapped %v, message %q", s.Status.UnmappedNodes, s.Status.Message)
	}
	m := &v1alpha1.NodeAction{}
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "nodes.157101"}, m); err != nil {
		t.Fatalf("the first Node by name (%s-a, VM 157101) was not started first: %v", ns, err)
	}
	if m.Spec.NodeID != "157101" || m.Spec.Node == nil || m.Spec.Node.Name != ns+"-a" || *m.Spec.Node.WaitReadySeconds != 60 {
		t.Errorf("member spec %+v node %+v", m.Spec, m.Spec.Node)
	}
}

// updateSet changes a set's spec as a user would, on the latest version.
func updateSet(t *testing.T, s *v1alpha1.NodeActionSet, change func(*v1alpha1.NodeActionSet)) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(s), s); err != nil {
			return err
		}
		change(s)
		return k8s.Update(context.Background(), s)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// hasEventOn waits a little for an event on an object (the recorder sends
// them in the background).
func hasEventOn(t *testing.T, ns, name, kind, reason string) bool {
	t.Helper()
	return waitUntil(5*time.Second, func() bool {
		list := &eventsv1.EventList{}
		if err := k8s.List(context.Background(), list, client.InNamespace(ns)); err != nil {
			return false
		}
		for _, e := range list.Items {
			if e.Regarding.Name == name && e.Regarding.Kind == kind && e.Reason == reason {
				return true
			}
		}
		return false
	})
}

// A set over Kubernetes Nodes with spec.node: each member drains its Node,
// reboots the VM and waits for the Node to come back, and all that time
// holds its slot. With maxUnavailable 1 no two Nodes are ever cordoned at
// once and no two members are unfinished at once, though the members pass
// through Draining and WaitingForNode; every VM is rebooted once, every
// Node ends drained and uncordoned, and the set ends Completed.
func TestNodeActionSetDrainsNodesWithinMaxUnavailable(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	startManagerIn(t, ns)
	createProvider(t, ns, "do", v1alpha1.ProviderDigitalOcean)
	ids := setVMs("1590", 2, 500*time.Millisecond)
	pool := "drain-" + ns
	names := make([]string, len(ids))
	var pods []*corev1.Pod
	for i, id := range ids {
		names[i] = fmt.Sprintf("%s-%d", ns, i)
		n := kubeNode(t, names[i], "", "digitalocean://"+id, id)
		n.Labels = map[string]string{"pool": pool}
		if err := k8s.Update(context.Background(), n); err != nil {
			t.Fatal(err)
		}
		pods = append(pods, podOn(t, ns, fmt.Sprintf("web-%d", i), names[i], "ReplicaSet", "web", nil))
	}
	startKubelet(t, cloud, time.Second, names...)

	// Watch the Nodes and the members while the set runs.
	type seen struct {
		cordoned, unfinished int
		phases               map[v1alpha1.Phase]bool
	}
	var (
		mu    sync.Mutex
		worst = seen{phases: map[v1alpha1.Phase]bool{}}
	)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			cordoned, unfinished := 0, 0
			for _, name := range names {
				n := &corev1.Node{}
				if k8s.Get(ctx, client.ObjectKey{Name: name}, n) == nil && n.Spec.Unschedulable {
					cordoned++
				}
			}
			list := &v1alpha1.NodeActionList{}
			if k8s.List(ctx, list, client.InNamespace(ns)) == nil {
				mu.Lock()
				for i := range list.Items {
					if m := &list.Items[i]; !finishedRun(m) {
						unfinished++
						worst.phases[m.Status.Phase] = true
					}
				}
				mu.Unlock()
			}
			mu.Lock()
			worst.cordoned, worst.unfinished = max(worst.cordoned, cordoned), max(worst.unfinished, unfinished)
			mu.Unlock()
			time.Sleep(20 * time.Millisecond)
		}
	}()
	stopWatching := func() { cancel(); <-done }
	defer stopWatching()

	s := nodeActionSet(ns, "drain", "do", "reboot", 1)
	s.Spec.NodeIDs = nil
	s.Spec.NodeSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"pool": pool}}
	s.Spec.Node = &v1alpha1.NodeSpec{Drain: &v1alpha1.DrainSpec{TimeoutSeconds: 60}, WaitReadySeconds: ptr.To(int32(60))}
	create(t, s)
	waitForSet(t, s, 60*time.Second, "Ready", func(s *v1alpha1.NodeActionSet) bool { return setReason(s) == v1alpha1.ReasonCompleted })
	stopWatching()

	if st := s.Status; st.Total != 2 || st.Succeeded != 2 {
		t.Errorf("status %+v, want 2 of 2 succeeded", st)
	}
	if worst.cordoned > 1 || worst.unfinished > 1 {
		t.Errorf("at once: %d Nodes cordoned, %d members unfinished; want at most 1 (maxUnavailable)", worst.cordoned, worst.unfinished)
	}
	if !worst.phases[v1alpha1.PhaseDraining] || !worst.phases[v1alpha1.PhaseWaitingForNode] {
		t.Errorf("members seen in phases %v; the test meant to see Draining and WaitingForNode", worst.phases)
	}
	for i, id := range ids {
		if n := cloud.ActionCalls(id); n != 1 {
			t.Errorf("VM %s: %d action calls, want 1", id, n)
		}
		m := &v1alpha1.NodeAction{}
		if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: memberName("drain", id)}, m); err != nil {
			t.Fatal(err)
		}
		if m.Status.Phase != v1alpha1.PhaseSucceeded || m.Status.Node.GetName() != names[i] || m.Status.Node.Cordoned {
			t.Errorf("member %s: phase %s, status.node %+v; want Succeeded, Node %s uncordoned", m.Name, m.Status.Phase, m.Status.Node, names[i])
		}
		if getNode(t, names[i]).Spec.Unschedulable || podExists(t, pods[i]) {
			t.Errorf("Node %s: cordoned=%v, pod still there=%v; want uncordoned and drained", names[i], getNode(t, names[i]).Spec.Unschedulable, podExists(t, pods[i]))
		}
	}
}
