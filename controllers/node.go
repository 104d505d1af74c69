package controllers

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodeaction/nodeaction-operator/api/v1alpha1"
	"github.com/nodeaction/nodeaction-operator/internal/kubenode"
	"github.com/nodeaction/nodeaction-operator/internal/provider"
)

// The Kubernetes Node on the NodeAction's VM (spec.node): found from the VM,
// checked to be on it, cordoned and drained before the provider call
// (phase_draining.go), waited for after it (phase_waitingfornode.go).

// withNode tells whether the NodeAction names a Node to care for.
func (s *step) withNode() bool { return s.na.Spec.Node != nil }

// nodeStatus returns status.node, creating it.
func (s *step) nodeStatus() *v1alpha1.NodeStatus {
	if s.na.Status.Node == nil {
		s.na.Status.Node = &v1alpha1.NodeStatus{}
	}
	return s.na.Status.Node
}

// resolveNode finds the Node on the VM and checks it is the VM's. It
// returns ok=false with a result when the step ends here: no Node (or
// several) yet, which is waited out, or a Node on another VM, which ends the
// run before anything is cordoned or called.
func (s *step) resolveNode(ctx context.Context, t target) (*corev1.Node, ctrl.Result, bool) {
	vm := kubenode.VM{Provider: t.provider.Name, Type: t.provider.Spec.Type, NodeID: s.na.Spec.NodeID}
	if ids, ok := t.driver.(provider.ServerIDer); ok {
		id, err := ids.ServerID(ctx, s.na.Spec.NodeID)
		if err != nil {
			pe := provider.AsError(err)
			progress(s.na, s.na.Status.Phase, reasonFor(pe.Class),
				fmt.Sprintf("asking %s which server node %s is, to find its Kubernetes Node: %s", t.provider.Spec.Type, s.na.Spec.NodeID, describeError(pe)))
			return nil, ctrl.Result{RequeueAfter: waitForNode}, false
		}
		vm.ServerID = id
	}
	name := s.na.Spec.Node.Name
	if name == "" {
		name = s.na.Status.Node.GetName()
	}
	if name != "" {
		node := &corev1.Node{}
		if err := s.r.Client.Get(ctx, client.ObjectKey{Name: name}, node); err != nil {
			msg := fmt.Sprintf("Kubernetes Node %q not found; waiting for it", name)
			if !apierrors.IsNotFound(err) {
				msg = fmt.Sprintf("cannot read Kubernetes Node %q: %v", name, err)
			}
			progress(s.na, v1alpha1.PhasePending, v1alpha1.ReasonNodeUnresolved, msg)
			return nil, ctrl.Result{RequeueAfter: waitForNode}, false
		}
		if why := kubenode.Mismatch(node, vm); why != "" {
			s.end(failure(v1alpha1.ReasonNodeMismatch, fmt.Sprintf(
				"Kubernetes Node %s is not on %s VM %s: %s. Nothing was cordoned or sent; fix spec.node.name or spec.nodeID in a new NodeAction",
				name, t.provider.Spec.Type, s.na.Spec.NodeID, why)))
			return nil, ctrl.Result{}, false
		}
		s.nodeStatus().Name = name
		return node, ctrl.Result{}, true
	}
	list := &corev1.NodeList{}
	if err := s.r.Client.List(ctx, list); err != nil {
		progress(s.na, v1alpha1.PhasePending, v1alpha1.ReasonNodeUnresolved, fmt.Sprintf("cannot list the Kubernetes Nodes: %v", err))
		return nil, ctrl.Result{RequeueAfter: waitForNode}, false
	}
	var found []*corev1.Node
	for i := range list.Items {
		if kubenode.Is(&list.Items[i], vm) {
			found = append(found, &list.Items[i])
		}
	}
	switch len(found) {
	case 1:
		s.nodeStatus().Name = found[0].Name
		return found[0], ctrl.Result{}, true
	case 0:
		progress(s.na, v1alpha1.PhasePending, v1alpha1.ReasonNodeUnresolved, fmt.Sprintf(
			"no Kubernetes Node is on %s VM %s yet: none has %s; waiting for one (or name it in spec.node.name)",
			t.provider.Spec.Type, s.na.Spec.NodeID, howFound(vm)))
	default:
		names := make([]string, len(found))
		for i, n := range found {
			names[i] = n.Name
		}
		progress(s.na, v1alpha1.PhasePending, v1alpha1.ReasonNodeUnresolved, fmt.Sprintf(
			"%d Kubernetes Nodes claim %s VM %s (%s): name the right one in spec.node.name",
			len(found), t.provider.Spec.Type, s.na.Spec.NodeID, strings.Join(names, ", ")))
	}
	return nil, ctrl.Result{RequeueAfter: waitForNode}, false
}

// howFound says what marks a Node as being on vm.
func howFound(vm kubenode.VM) string {
	how := fmt.Sprintf("the annotation %s: %s", v1alpha1.AnnotationVM, kubenode.AnnotationValue(vm.Provider, vm.NodeID))
	switch {
	case vm.Type == v1alpha1.ProviderDigitalOcean:
		how = "spec.providerID digitalocean://" + vm.NodeID + ", nor " + how
	case vm.Type == v1alpha1.ProviderSenlin && vm.ServerID != "":
		how = "spec.providerID openstack:///" + vm.ServerID + ", nor " + how
	}
	return how
}

// getNode reads the Node the run cares for; nil when it is gone.
func (s *step) getNode(ctx context.Context) (*corev1.Node, error) {
	node := &corev1.Node{}
	if err := s.r.Client.Get(ctx, client.ObjectKey{Name: s.na.Status.Node.GetName()}, node); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, err
	}
	return node, nil
}

// nodeEvent tells the story on the Node too, so `kubectl describe node`
// shows which NodeAction cordoned, drained or rebooted it.
func (s *step) nodeEvent(node *corev1.Node, eventType, reason, action, format string, args ...any) {
	if s.r.Recorder == nil || node == nil {
		return
	}
	note := cut(fmt.Sprintf("NodeAction %s/%s: ", s.na.Namespace, s.na.Name)+fmt.Sprintf(format, args...), maxNote)
	s.effects = append(s.effects, func() { s.r.Recorder.Eventf(node, s.na, eventType, reason, action, "%s", note) })
}

// nodeReady tells whether the Node's Ready condition is True.
func nodeReady(node *corev1.Node) bool {
	for _, c := range node.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// uncordonHint tells a person how to put a Node left cordoned back in use.
func uncordonHint(name string) string {
	return fmt.Sprintf("the Node stays cordoned: once it is fine, run kubectl uncordon %s", name)
}
