package controllers

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/nodeaction/nodeaction-operator/api/v1alpha1"
	"github.com/nodeaction/nodeaction-operator/internal/kubenode"
)

// drainRound is how often a drain looks again at the pods left.
const drainRound = 2 * time.Second

// startDrain cordons the Node and begins draining it. That the operator
// cordons it is recorded before the Node is patched (as an intent is before
// a provider call): a crash in between leaves a record to finish the
// cordon, never a cordon nobody knows to undo.
func (s *step) startDrain(ctx context.Context, t target, node *corev1.Node) (ctrl.Result, error) {
	ns := s.nodeStatus()
	// Already cordoned by someone else: not ours to uncordon (unless an
	// earlier attempt or run of this NodeAction cordoned it).
	ns.Cordoned = ns.Cordoned || !node.Spec.Unschedulable
	ns.DrainStartTime = ptrTime(s.metaNow())
	ns.PodsLeft = nil
	msg := fmt.Sprintf("cordoning and draining Kubernetes Node %s before %s", node.Name, s.na.Spec.Action)
	progress(s.na, v1alpha1.PhaseDraining, v1alpha1.ReasonDraining, msg)
	s.event(corev1.EventTypeNormal, v1alpha1.ReasonDraining, "Drain", "%s", msg)
	if err := s.commit(ctx); err != nil {
		return ctrl.Result{}, err
	}
	return s.handleDraining(ctx, t)
}

// handleDraining evicts the Node's pods, a round at a time, until it is
// empty (then the action is submitted) or the drain's time is up.
func (s *step) handleDraining(ctx context.Context, t target) (ctrl.Result, error) {
	spec := s.na.Spec.Node.Drain
	ns := s.nodeStatus()
	node, err := s.getNode(ctx)
	if err != nil {
		return ctrl.Result{}, err
	}
	if node == nil {
		s.end(failure(v1alpha1.ReasonNodeUnresolved, fmt.Sprintf(
			"Kubernetes Node %s was deleted while it was being drained; nothing was sent to %s", ns.Name, t.provider.Spec.Type)))
		return ctrl.Result{}, nil
	}
	if why := s.badPodSelector(); why != "" {
		// Admitted before the CRD checked it: a drain that cannot select
		// pods is no drain, whatever onTimeout says.
		s.end(failure(v1alpha1.ReasonInvalidSelector, fmt.Sprintf("%s; nothing was sent to %s. %s", why, t.provider.Spec.Type, uncordonHint(node.Name))))
		return ctrl.Result{}, nil
	}
	drainer := kubenode.Drainer{Client: s.r.Kube, NodeNotReady: !nodeReady(node)}
	timeout := time.Duration(spec.TimeoutSeconds) * time.Second
	if timeout == 0 {
		timeout = 600 * time.Second
	}
	timedOut := !s.now.Before(ns.DrainStartTime.Add(timeout))
	if ns.Cordoned && !node.Spec.Unschedulable {
		if _, err := drainer.Cordon(ctx, node); err != nil {
			what := fmt.Sprintf("cordoning Kubernetes Node %s failed: %v", node.Name, err)
			if timedOut {
				return s.drainTimedOut(ctx, t, node, fmt.Sprintf("Kubernetes Node %s was not cordoned after %s (%v)", node.Name, timeout, err))
			}
			progress(s.na, v1alpha1.PhaseDraining, v1alpha1.ReasonDraining, what+"; trying again")
			return s.bound(ctrl.Result{RequeueAfter: drainRound}), nil
		}
		s.nodeEvent(node, corev1.EventTypeNormal, "Cordoned", "Cordon", "cordoned before %s of %s VM %s", s.na.Spec.Action, t.provider.Spec.Type, s.na.Spec.NodeID)
	}
	round, err := drainer.Evict(ctx, node.Name, *spec)
	if err != nil {
		// An error that never goes away (a pod under two
		// PodDisruptionBudgets, a webhook refusing evictions, no right to
		// evict) still ends with the drain's timeout.
		if timedOut {
			return s.drainTimedOut(ctx, t, node, fmt.Sprintf("Kubernetes Node %s was not drained after %s: %v", node.Name, timeout, err))
		}
		progress(s.na, v1alpha1.PhaseDraining, v1alpha1.ReasonDraining, fmt.Sprintf("draining Kubernetes Node %s: %v; trying again", node.Name, err))
		return s.bound(ctrl.Result{RequeueAfter: drainRound}), nil
	}
	left := int32(round.Left + len(round.Blocked))
	ns.PodsLeft = &left
	if round.Done() {
		s.event(corev1.EventTypeNormal, "Drained", "Drain", "Kubernetes Node %s is drained", node.Name)
		s.nodeEvent(node, corev1.EventTypeNormal, "Drained", "Drain", "drained before %s of %s VM %s", s.na.Spec.Action, t.provider.Spec.Type, s.na.Spec.NodeID)
		return s.submitWithNode(ctx, t, node)
	}
	if timedOut {
		return s.drainTimedOut(ctx, t, node, fmt.Sprintf("Kubernetes Node %s was not drained after %s: %s", node.Name, timeout, round))
	}
	progress(s.na, v1alpha1.PhaseDraining, v1alpha1.ReasonDraining, fmt.Sprintf("draining Kubernetes Node %s: %s", node.Name, round))
	return s.bound(ctrl.Result{RequeueAfter: drainRound}), nil
}

// badPodSelector says what is wrong with spec.node.drain.podSelector, or
// "" when there is none or it parses.
func (s *step) badPodSelector() string {
	d := s.na.Spec.Node.Drain
	if d == nil || d.PodSelector == nil {
		return ""
	}
	if _, err := metav1.LabelSelectorAsSelector(d.PodSelector); err != nil {
		return fmt.Sprintf("spec.node.drain.podSelector is not a valid label selector (%v)", err)
	}
	return ""
}

// drainTimedOut follows spec.node.drain.onTimeout: Proceed submits the
// action on the undrained Node, Fail (the default) ends the run with
// nothing sent and the Node left cordoned.
func (s *step) drainTimedOut(ctx context.Context, t target, node *corev1.Node, what string) (ctrl.Result, error) {
	if s.na.Spec.Node.Drain.OnTimeout == "Proceed" {
		s.event(corev1.EventTypeWarning, v1alpha1.ReasonDrainTimeout, "Drain", "%s; onTimeout is Proceed: going on with %s", what, s.na.Spec.Action)
		return s.submitWithNode(ctx, t, node)
	}
	s.end(failure(v1alpha1.ReasonDrainTimeout, fmt.Sprintf("%s. Nothing was sent to %s; %s", what, t.provider.Spec.Type, uncordonHint(node.Name))))
	return ctrl.Result{}, nil
}

// submitWithNode records the Node's bootID with the intent, then submits:
// a different bootID later proves the guest restarted.
func (s *step) submitWithNode(ctx context.Context, t target, node *corev1.Node) (ctrl.Result, error) {
	// Only a Ready Node's bootID is a baseline: a Node not (yet) Ready may
	// still show the bootID of a boot before the last one, and any later
	// change would then pass for this action's proof.
	s.nodeStatus().BootID = ""
	if nodeReady(node) {
		s.nodeStatus().BootID = node.Status.NodeInfo.BootID
	}
	return s.submit(ctx, t)
}
