// Package fakekubelet plays the kubelets of Kubernetes Nodes whose VMs are
// fakecloud's, for tests and the demo (there is no real kubelet on an
// envtest or demo API server): a VM that boots again gives its Node a new
// bootID and takes it NotReady for a while, then Ready; a VM that is off
// leaves its Node NotReady; a pod being deleted on one of its Nodes is let
// go, as a kubelet confirms a deletion once the containers stopped.
//
// A Node is a VM's when its compute.nodeaction.dev/vm annotation names the
// VM ("<Provider>/<vm id>") or its providerID is digitalocean://<vm id>.
package fakekubelet

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodeaction/nodeaction-operator/api/v1alpha1"
	"github.com/nodeaction/nodeaction-operator/internal/fakecloud"
	"github.com/nodeaction/nodeaction-operator/internal/kubenode"
)

// Kubelet plays the kubelets of every Node on a fakecloud VM.
type Kubelet struct {
	Client client.Client
	// VMs reads fakecloud's VMs (Cloud.VMs in process, or its control API).
	VMs func(ctx context.Context) ([]fakecloud.VM, error)
	// BootDelay is how long a Node stays NotReady after its VM booted again.
	BootDelay time.Duration
	// Interval is how often the VMs are looked at. Default 100ms.
	Interval time.Duration
	// Manages, when set, limits the kubelet to the Nodes it returns true
	// for (tests that run side by side each play their own).
	Manages func(node *corev1.Node) bool

	mu    sync.Mutex
	nodes map[string]*nodeState
}

type nodeState struct {
	boots   int
	readyAt time.Time
}

// Run plays the kubelets until ctx ends.
func (k *Kubelet) Run(ctx context.Context) {
	interval := k.Interval
	if interval == 0 {
		interval = 100 * time.Millisecond
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		_ = k.Sync(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// vmOf is the fakecloud VM id under a Node, "" when it names none.
func vmOf(node *corev1.Node) string {
	if a, ok := node.Annotations[v1alpha1.AnnotationVM]; ok {
		_, id, _ := strings.Cut(a, "/")
		return id
	}
	if scheme, id, ok := kubenode.ParseProviderID(node.Spec.ProviderID); ok && scheme == "digitalocean" {
		return id
	}
	return ""
}

// BootID is the bootID a VM's Node shows after its n-th boot.
func BootID(vmID string, boots int) string {
	h := fnv.New32a()
	_, _ = h.Write([]byte(vmID))
	return fmt.Sprintf("%08x-0000-4000-8000-%012d", h.Sum32(), boots)
}

// Sync looks at the VMs once and brings their Nodes' status in line.
func (k *Kubelet) Sync(ctx context.Context) error {
	vms, err := k.VMs(ctx)
	if err != nil {
		return err
	}
	byID := make(map[string]fakecloud.VM, len(vms))
	for _, vm := range vms {
		byID[vm.ID] = vm
	}
	nodes := &corev1.NodeList{}
	if err := k.Client.List(ctx, nodes); err != nil {
		return err
	}
	now := time.Now()
	var errs []error
	for i := range nodes.Items {
		node := &nodes.Items[i]
		vm, ok := byID[vmOf(node)]
		if !ok || (k.Manages != nil && !k.Manages(node)) {
			continue
		}
		// A conflict with another writer of the Node is tried again at
		// the next round; one Node's trouble does not stop the others.
		if err := k.syncNode(ctx, node, vm, now); err != nil {
			errs = append(errs, err)
		}
		if err := k.letPodsGo(ctx, node.Name); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (k *Kubelet) syncNode(ctx context.Context, node *corev1.Node, vm fakecloud.VM, now time.Time) error {
	k.mu.Lock()
	if k.nodes == nil {
		k.nodes = map[string]*nodeState{}
	}
	st := k.nodes[node.Name]
	if st == nil {
		st = &nodeState{boots: vm.Boots}
		k.nodes[node.Name] = st
	}
	if vm.Boots != st.boots {
		st.boots, st.readyAt = vm.Boots, now.Add(k.BootDelay)
	}
	ready := vm.Power == fakecloud.PowerOn && !now.Before(st.readyAt)
	bootID := BootID(vm.ID, st.boots)
	k.mu.Unlock()

	want := node.DeepCopy()
	want.Status.NodeInfo.BootID = bootID
	status, reason, msg := corev1.ConditionTrue, "KubeletReady", "kubelet is posting ready status"
	switch {
	case vm.Power != fakecloud.PowerOn:
		status, reason, msg = corev1.ConditionUnknown, "NodeStatusUnknown", "Kubelet stopped posting node status (the VM is off)"
	case !ready:
		status, reason, msg = corev1.ConditionFalse, "KubeletNotReady", "the VM is booting"
	}
	setReady(want, status, reason, msg, now)
	if nodeUnchanged(node, want) {
		return nil
	}
	return client.IgnoreNotFound(k.Client.Status().Update(ctx, want))
}

func setReady(node *corev1.Node, status corev1.ConditionStatus, reason, msg string, now time.Time) {
	for i, c := range node.Status.Conditions {
		if c.Type == corev1.NodeReady {
			if c.Status != status {
				node.Status.Conditions[i].LastTransitionTime = metav1.NewTime(now)
			}
			node.Status.Conditions[i].Status, node.Status.Conditions[i].Reason, node.Status.Conditions[i].Message = status, reason, msg
			return
		}
	}
	node.Status.Conditions = append(node.Status.Conditions, corev1.NodeCondition{
		Type: corev1.NodeReady, Status: status, Reason: reason, Message: msg,
		LastHeartbeatTime: metav1.NewTime(now), LastTransitionTime: metav1.NewTime(now),
	})
}

func nodeUnchanged(a, b *corev1.Node) bool {
	if a.Status.NodeInfo.BootID != b.Status.NodeInfo.BootID {
		return false
	}
	ready := func(n *corev1.Node) corev1.ConditionStatus {
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady {
				return c.Status
			}
		}
		return ""
	}
	return ready(a) == ready(b)
}

// letPodsGo confirms the deletion of pods being deleted on the Node.
func (k *Kubelet) letPodsGo(ctx context.Context, nodeName string) error {
	pods := &corev1.PodList{}
	if err := k.Client.List(ctx, pods, client.MatchingFields{"spec.nodeName": nodeName}); err != nil {
		return err
	}
	for i := range pods.Items {
		p := &pods.Items[i]
		if p.DeletionTimestamp == nil {
			continue
		}
		if err := k.Client.Delete(ctx, p, client.GracePeriodSeconds(0)); client.IgnoreNotFound(err) != nil {
			return err
		}
	}
	return nil
}
