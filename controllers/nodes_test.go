package controllers

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodeaction/nodeaction-operator/api/v1alpha1"
	"github.com/nodeaction/nodeaction-operator/internal/fakecloud"
	"github.com/nodeaction/nodeaction-operator/internal/fakekubelet"
)

// Kubernetes Nodes on the VMs (spec.node): drained before the action,
// proven back after it. A simulated kubelet (internal/fakekubelet) gives a
// Node a new bootID when fakecloud boots its VM, NotReady for a while.

// startKubelet plays the kubelets of the named Nodes on c's VMs until the
// test ends.
func startKubelet(t *testing.T, c *fakecloud.Cloud, bootDelay time.Duration, nodes ...string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	k := &fakekubelet.Kubelet{Client: k8s, BootDelay: bootDelay,
		VMs:     func(context.Context) ([]fakecloud.VM, error) { return c.VMs(), nil },
		Manages: func(n *corev1.Node) bool { return slices.Contains(nodes, n.Name) }}
	done := make(chan struct{})
	go func() { defer close(done); k.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// kubeNode creates a Ready Node on the VM named by annotation
// ("<Provider>/<id>") or providerID, with the bootID of its VM's boots.
func kubeNode(t *testing.T, name, annotation, providerID, vmID string) *corev1.Node {
	t.Helper()
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.NodeSpec{ProviderID: providerID}}
	if annotation != "" {
		n.Annotations = map[string]string{v1alpha1.AnnotationVM: annotation}
	}
	// Created with its status, as a kubelet registers its Node: a manager
	// whose cache saw the Node before a status update would record no
	// bootID with the intent, and then nothing could prove a reboot.
	vm, _ := cloud.VM(vmID)
	status := corev1.NodeStatus{NodeInfo: corev1.NodeSystemInfo{BootID: fakekubelet.BootID(vmID, vm.Boots)},
		Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
			LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now()}}}
	n.Status = *status.DeepCopy()
	create(t, n)
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), n) })
	if n.Status.NodeInfo.BootID != status.NodeInfo.BootID {
		t.Fatalf("Node %s created without its status (bootID %q)", name, n.Status.NodeInfo.BootID)
	}
	return n
}

// podOn creates a pod on the Node, owned by a controller of kind (as a
// Deployment's or a DaemonSet's pods are).
func podOn(t *testing.T, ns, name, node, kind, owner string, labels map[string]string) *corev1.Pod {
	t.Helper()
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels,
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: kind, Name: owner, UID: "00000000-0000-4000-8000-0000000000aa", Controller: ptr.To(true)}}},
		Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "app", Image: "registry.example/app:1"}}}}
	create(t, p)
	return p
}

func getNode(t *testing.T, name string) *corev1.Node {
	t.Helper()
	n := &corev1.Node{}
	if err := k8s.Get(context.Background(), client.ObjectKey{Name: name}, n); err != nil {
		t.Fatal(err)
	}
	return n
}

// nodeEvents lists the reasons of the events regarding a Node.
func nodeEvents(t *testing.T, name string) []string {
	t.Helper()
	list := &eventsv1.EventList{}
	if err := k8s.List(context.Background(), list); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range list.Items {
		if e.Regarding.Kind == "Node" && e.Regarding.Name == name {
			out = append(out, e.Reason)
		}
	}
	return out
}

func podExists(t *testing.T, p *corev1.Pod) bool {
	t.Helper()
	err := k8s.Get(context.Background(), client.ObjectKeyFromObject(p), &corev1.Pod{})
	return err == nil
}

// The whole story on a DigitalOcean droplet: the Node is found by its
// providerID, cordoned, drained (a DaemonSet's pod stays), the droplet
// rebooted once, the Node back Ready with a new bootID, then uncordoned,
// with events on the Node telling which NodeAction did it.
func TestNodeDrainedRebootedAndUncordoned(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	startManagerIn(t, ns)
	startKubelet(t, cloud, time.Second, "worker-9711")
	createProvider(t, ns, "do", v1alpha1.ProviderDigitalOcean)
	cloud.AddVM(fakecloud.VM{ID: "9711", ActionDuration: time.Second})
	kubeNode(t, "worker-9711", "", "digitalocean://9711", "9711")
	before := getNode(t, "worker-9711").Status.NodeInfo.BootID
	web := podOn(t, ns, "web-1", "worker-9711", "ReplicaSet", "web-abc", nil)
	ds := &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "agent"}, Spec: appsv1.DaemonSetSpec{
		Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "agent"}},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "agent"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "agent", Image: "registry.example/agent:1"}}}}}}
	create(t, ds)
	agent := podOn(t, ns, "agent-1", "worker-9711", "DaemonSet", "agent", map[string]string{"app": "agent"})

	na := nodeAction(ns, "reboot", "do", "9711", "reboot")
	na.Spec.Node = &v1alpha1.NodeSpec{Drain: &v1alpha1.DrainSpec{TimeoutSeconds: 60}, WaitReadySeconds: ptr.To(int32(60))}
	create(t, na)
	waitFor(t, na, 30*time.Second, "the drain", func(n *v1alpha1.NodeAction) bool { return n.Status.Phase == v1alpha1.PhaseDraining })
	// Draining is recorded before the Node is patched (startDrain), so the
	// cordon may follow the phase by a moment; it then lasts at least a
	// drain round and the reboot.
	if !waitUntil(5*time.Second, func() bool { return getNode(t, "worker-9711").Spec.Unschedulable }) {
		t.Error("the Node is not cordoned while it drains")
	}
	finished(t, na, 60*time.Second)
	expectReady(t, na, v1alpha1.ReasonCompleted)
	if podExists(t, web) || !podExists(t, agent) {
		t.Errorf("after the drain: web pod there=%v (want evicted), DaemonSet pod there=%v (want kept)", podExists(t, web), podExists(t, agent))
	}
	node := getNode(t, "worker-9711")
	if node.Spec.Unschedulable || node.Status.NodeInfo.BootID == before {
		t.Errorf("after the reboot: unschedulable=%v, bootID %s (was %s); want uncordoned with a new bootID", node.Spec.Unschedulable, node.Status.NodeInfo.BootID, before)
	}
	if n := cloud.ActionCalls("9711"); n != 1 {
		t.Errorf("%d provider calls, want 1", n)
	}
	if st := na.Status.Node; st == nil || st.Name != "worker-9711" || st.BootID != before || st.Cordoned {
		t.Errorf("status.node %+v", st)
	}
	if !waitUntil(10*time.Second, func() bool {
		ev := strings.Join(nodeEvents(t, "worker-9711"), ",")
		return strings.Contains(ev, "Cordoned") && strings.Contains(ev, "Drained") && strings.Contains(ev, "Rebooted") && strings.Contains(ev, "Uncordoned")
	}) {
		t.Errorf("events on the Node: %v, want Cordoned, Drained, Rebooted, Uncordoned", nodeEvents(t, "worker-9711"))
	}
}

// A PodDisruptionBudget that allows no disruption keeps a pod; after the
// drain's timeout the NodeAction fails without calling the provider, the
// Node left cordoned. With onTimeout Proceed it goes ahead.
func TestDrainBlockedByAPodDisruptionBudget(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	startManagerIn(t, ns)
	startKubelet(t, cloud, 500*time.Millisecond, "worker-9721", "worker-9722")
	createProvider(t, ns, "do", v1alpha1.ProviderDigitalOcean)
	pdb := &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "db"}, Spec: policyv1.PodDisruptionBudgetSpec{
		MinAvailable: ptr.To(intstr.FromInt32(1)), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}}}}
	create(t, pdb)
	// envtest runs no disruption controller: the PDB's status is set as it
	// would set it, allowing no disruption of its one healthy pod.
	pdb.Status = policyv1.PodDisruptionBudgetStatus{ObservedGeneration: pdb.Generation, DisruptionsAllowed: 0,
		CurrentHealthy: 1, DesiredHealthy: 1, ExpectedPods: 1}
	if err := k8s.Status().Update(context.Background(), pdb); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		id, onTimeout string
		calls         int
	}{{"9721", "Fail", 0}, {"9722", "Proceed", 1}} {
		t.Run(tc.onTimeout, func(t *testing.T) {
			cloud.AddVM(fakecloud.VM{ID: tc.id, ActionDuration: 500 * time.Millisecond})
			name := "worker-" + tc.id
			kubeNode(t, name, "do/"+tc.id, "", tc.id)
			pod := podOn(t, ns, "db-"+tc.id, name, "StatefulSet", "db", map[string]string{"app": "db"})
			pod.Status.Phase = corev1.PodRunning
			pod.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
			if err := k8s.Status().Update(context.Background(), pod); err != nil {
				t.Fatal(err)
			}
			na := nodeAction(ns, "reboot-"+tc.id, "do", tc.id, "reboot")
			na.Spec.Node = &v1alpha1.NodeSpec{Drain: &v1alpha1.DrainSpec{TimeoutSeconds: 3, OnTimeout: tc.onTimeout}, WaitReadySeconds: ptr.To(int32(30))}
			create(t, na)
			finished(t, na, 40*time.Second)
			if tc.onTimeout == "Fail" {
				expectStalled(t, na, v1alpha1.ReasonDrainTimeout, "kubectl uncordon "+name, "PodDisruptionBudget")
				if !getNode(t, name).Spec.Unschedulable {
					t.Error("a Node whose drain timed out was uncordoned")
				}
			} else {
				expectReady(t, na)
			}
			expectNoNewActionCalls(t, cloud, tc.id, tc.calls, time.Second, "after the drain timed out with onTimeout "+tc.onTimeout)
			if !podExists(t, pod) {
				t.Error("the PodDisruptionBudget's pod was evicted")
			}
		})
	}
}

// An eviction that errors every round (here a pod under two
// PodDisruptionBudgets, which the Eviction API refuses with a 500) still
// ends with the drain's timeout, never a drain that loops for ever.
func TestDrainThatKeepsFailingEndsWithItsTimeout(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	startManagerIn(t, ns)
	startKubelet(t, cloud, 500*time.Millisecond, "worker-9725")
	createProvider(t, ns, "do", v1alpha1.ProviderDigitalOcean)
	for _, name := range []string{"one", "two"} {
		pdb := &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: policyv1.PodDisruptionBudgetSpec{
			MaxUnavailable: ptr.To(intstr.FromInt32(1)), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "twice"}}}}
		create(t, pdb)
		pdb.Status = policyv1.PodDisruptionBudgetStatus{ObservedGeneration: pdb.Generation, DisruptionsAllowed: 1,
			CurrentHealthy: 1, DesiredHealthy: 0, ExpectedPods: 1}
		if err := k8s.Status().Update(context.Background(), pdb); err != nil {
			t.Fatal(err)
		}
	}
	const id = "9725"
	cloud.AddVM(fakecloud.VM{ID: id, ActionDuration: 500 * time.Millisecond})
	kubeNode(t, "worker-"+id, "do/"+id, "", id)
	pod := podOn(t, ns, "twice-"+id, "worker-"+id, "ReplicaSet", "twice", map[string]string{"app": "twice"})
	// Running and Ready: the Eviction API skips PodDisruptionBudgets for
	// pods that are not.
	pod.Status.Phase = corev1.PodRunning
	pod.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
	if err := k8s.Status().Update(context.Background(), pod); err != nil {
		t.Fatal(err)
	}
	na := nodeAction(ns, "reboot-"+id, "do", id, "reboot")
	na.Spec.Node = &v1alpha1.NodeSpec{Drain: &v1alpha1.DrainSpec{TimeoutSeconds: 3}}
	create(t, na)
	finished(t, na, 40*time.Second)
	expectStalled(t, na, v1alpha1.ReasonDrainTimeout, "kubectl uncordon worker-"+id, "more than one PodDisruptionBudget")
	expectNoNewActionCalls(t, cloud, id, 0, time.Second, "a drain that kept failing")
	if !podExists(t, pod) {
		t.Error("the pod under two PodDisruptionBudgets was evicted")
	}
}

// A Node someone else cordoned stays cordoned: the operator uncordons only
// what it cordoned.
func TestNodeCordonedByAPersonStaysCordoned(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	startManagerIn(t, ns)
	startKubelet(t, cloud, 500*time.Millisecond, "worker-9731")
	createProvider(t, ns, "do", v1alpha1.ProviderDigitalOcean)
	cloud.AddVM(fakecloud.VM{ID: "9731", ActionDuration: 500 * time.Millisecond})
	kubeNode(t, "worker-9731", "", "digitalocean://9731", "9731")
	n := getNode(t, "worker-9731")
	n.Spec.Unschedulable = true
	if err := k8s.Update(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	na := nodeAction(ns, "reboot", "do", "9731", "reboot")
	na.Spec.Node = &v1alpha1.NodeSpec{Name: "worker-9731", Drain: &v1alpha1.DrainSpec{TimeoutSeconds: 30}}
	create(t, na)
	finished(t, na, 40*time.Second)
	expectReady(t, na)
	if !getNode(t, "worker-9731").Spec.Unschedulable {
		t.Error("the operator uncordoned a Node it had not cordoned")
	}
}

// A named Node on another VM stops the NodeAction before anything is
// cordoned or called, naming both.
func TestNodeOnAnotherVMIsAMismatch(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	startManagerIn(t, ns)
	createProvider(t, ns, "do", v1alpha1.ProviderDigitalOcean)
	cloud.AddVM(fakecloud.VM{ID: "9741"})
	kubeNode(t, "worker-9742", "", "digitalocean://9742", "9741")
	na := nodeAction(ns, "reboot", "do", "9741", "reboot")
	na.Spec.Node = &v1alpha1.NodeSpec{Name: "worker-9742", Drain: &v1alpha1.DrainSpec{}}
	create(t, na)
	finished(t, na, 20*time.Second)
	expectStalled(t, na, v1alpha1.ReasonNodeMismatch, "9741", "digitalocean://9742")
	if getNode(t, "worker-9742").Spec.Unschedulable {
		t.Error("a mismatched Node was cordoned")
	}
	expectNoNewActionCalls(t, cloud, "9741", 0, time.Second, "a mismatched Node")
}

// A Node that does not come back within waitReadySeconds ends the run
// NodeNotReturned, the Node left cordoned with the way to uncordon it.
func TestNodeThatDoesNotComeBack(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	startManagerIn(t, ns)
	startKubelet(t, cloud, time.Hour, "worker-9751") // it never gets Ready again
	createProvider(t, ns, "do", v1alpha1.ProviderDigitalOcean)
	cloud.AddVM(fakecloud.VM{ID: "9751", ActionDuration: 300 * time.Millisecond})
	kubeNode(t, "worker-9751", "", "digitalocean://9751", "9751")
	na := nodeAction(ns, "reboot", "do", "9751", "reboot")
	na.Spec.Node = &v1alpha1.NodeSpec{Drain: &v1alpha1.DrainSpec{}, WaitReadySeconds: ptr.To(int32(3))}
	create(t, na)
	finished(t, na, 30*time.Second)
	expectStalled(t, na, v1alpha1.ReasonNodeNotReturned, "kubectl uncordon worker-9751")
	if !getNode(t, "worker-9751").Spec.Unschedulable {
		t.Error("a Node that did not come back was uncordoned")
	}
}

// Where the provider's API cannot show that a reboot ran (OpenScaler's
// reboot, E2E's when its workflow is not seen) or the answer was lost
// (E2E), the Node's new bootID proves it: Succeeded, reason Verified.
func TestNodeBootIDVerifiesReboots(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	startManagerIn(t, ns)
	startKubelet(t, cloud, 500*time.Millisecond, "worker-os-9761", "worker-9762", "worker-9763")
	for _, tc := range []struct {
		typ      v1alpha1.ProviderType
		id       string
		loseIt   bool
		duration time.Duration
	}{
		{v1alpha1.ProviderOpenScaler, "os-9761", false, 300 * time.Millisecond},
		{v1alpha1.ProviderE2E, "9762", true, 300 * time.Millisecond}, // answer lost: SubmissionUnknown without the Node
		{v1alpha1.ProviderE2E, "9763", false, 50 * time.Millisecond}, // a workflow too quick to be seen
	} {
		t.Run(fmt.Sprintf("%s-%s", tc.typ, tc.id), func(t *testing.T) {
			pname := string(tc.typ) + "-" + tc.id
			createProvider(t, ns, pname, tc.typ)
			cloud.AddVM(fakecloud.VM{ID: tc.id, ActionDuration: tc.duration})
			kubeNode(t, "worker-"+tc.id, pname+"/"+tc.id, "", tc.id)
			if tc.loseIt {
				cloud.InjectFault(fakecloud.Fault{PathContains: "/" + tc.id + "/", ActionOnly: true, Times: 1, Mode: fakecloud.AcceptThenDrop})
			}
			na := nodeAction(ns, "reboot-"+tc.id, pname, tc.id, "reboot")
			na.Spec.Node = &v1alpha1.NodeSpec{WaitReadySeconds: ptr.To(int32(60))}
			create(t, na)
			finished(t, na, 60*time.Second)
			expectReady(t, na, v1alpha1.ReasonVerified)
			expectNoNewActionCalls(t, cloud, tc.id, 1, time.Second, "a reboot the Node proved")
		})
	}
}
