package controllers

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/nodeaction/nodeaction-operator/api/v1alpha1"
	"github.com/nodeaction/nodeaction-operator/internal/kubenode"
)

// nodeRound is how often the wait for the Node looks again (a Node's
// changes also wake the NodeAction at once).
const nodeRound = 5 * time.Second

// defaultWaitReady is spec.node.waitReadySeconds when unset.
const defaultWaitReady = 900 * time.Second

// outcomeUnknown is status.node.outcome while the Node is the only proof
// left that an attempt whose answer was lost ran.
const outcomeUnknown = v1alpha1.ReasonSubmissionUnknown

// provesByNode tells whether the Node can show this run's action: the
// action restarts the guest and the Node's bootID was recorded with the
// intent.
func (s *step) provesByNode(t target) bool {
	return s.withNode() && s.na.Status.Node.GetName() != "" && s.na.Status.Node.BootID != "" &&
		t.driver.Capabilities().RestartsGuest(t.req)
}

// providerDone ends a run the provider reports done, or, when the Node can
// prove it, waits for the Node first: Ready again with a new bootID.
func (s *step) providerDone(ctx context.Context, t target, o outcome) ctrl.Result {
	if s.provesByNode(t) {
		return s.startWaitForNode(t, o)
	}
	s.endWithNode(ctx, t, o, nil)
	return ctrl.Result{}
}

// startWaitForNode keeps the provider's word and waits for the Node.
func (s *step) startWaitForNode(t target, o outcome) ctrl.Result {
	ns := s.nodeStatus()
	ns.WaitStartTime = ptrTime(s.metaNow())
	ns.Outcome = o.reason
	msg := fmt.Sprintf("%s; waiting up to %s for Kubernetes Node %s to be Ready with a new bootID", o.message, s.waitReady(), ns.Name)
	if o.reason == outcomeUnknown {
		msg = fmt.Sprintf("%s; the Node would prove it ran: waiting up to %s for Kubernetes Node %s to come back with a new bootID", o.message, s.waitReady(), ns.Name)
	}
	progress(s.na, v1alpha1.PhaseWaitingForNode, v1alpha1.ReasonWaitingForNode, msg)
	return s.bound(ctrl.Result{RequeueAfter: nodeRound})
}

func (s *step) waitReady() time.Duration {
	if w := s.na.Spec.Node.WaitReadySeconds; w != nil && *w > 0 {
		return time.Duration(*w) * time.Second
	}
	return defaultWaitReady
}

// handleWaitingForNode waits for the Node to be Ready with a bootID other
// than the one recorded with the intent. No provider call is made here.
func (s *step) handleWaitingForNode(ctx context.Context, t target) (ctrl.Result, error) {
	ns := s.nodeStatus()
	node, err := s.getNode(ctx)
	if err != nil {
		return ctrl.Result{}, err
	}
	if node == nil {
		s.end(failure(v1alpha1.ReasonNodeNotReturned, fmt.Sprintf(
			"Kubernetes Node %s was deleted while the operator waited for it to come back after %s", ns.Name, s.na.Status.ProviderAction)))
		return ctrl.Result{}, nil
	}
	rebooted := node.Status.NodeInfo.BootID != "" && node.Status.NodeInfo.BootID != ns.BootID
	if rebooted && nodeReady(node) {
		reason := ns.Outcome
		if reason == v1alpha1.ReasonAcceptedUnverified || reason == outcomeUnknown || reason == "" {
			reason = v1alpha1.ReasonVerified
		}
		msg := fmt.Sprintf("%s of %s VM %s done: Kubernetes Node %s is Ready with a new bootID (%s, was %s)",
			s.na.Status.ProviderAction, t.provider.Spec.Type, s.na.Spec.NodeID, node.Name, node.Status.NodeInfo.BootID, ns.BootID)
		s.nodeEvent(node, corev1.EventTypeNormal, "Rebooted", "Verify", "came back Ready with a new bootID after %s", s.na.Status.ProviderAction)
		s.endWithNode(ctx, t, outcome{succeeded: true, reason: reason, message: msg}, node)
		return ctrl.Result{}, nil
	}
	wait := s.waitReady()
	if !s.now.Before(ns.WaitStartTime.Add(wait)) {
		state := fmt.Sprintf("Ready=%v, bootID %s", nodeReady(node), node.Status.NodeInfo.BootID)
		if !rebooted {
			state += " (unchanged)"
		}
		if ns.Outcome == outcomeUnknown {
			if !rebooted && nodeReady(node) {
				// The guest never restarted while the attempt could have
				// run: it was not accepted. Send it again.
				s.event(corev1.EventTypeNormal, "NotAccepted", "Verify",
					"Kubernetes Node %s stayed Ready with bootID %s for %s after attempt %s: the %s did not run; submitting again",
					node.Name, ns.BootID, wait, s.na.Status.AttemptID, s.na.Status.ProviderAction)
				ns.WaitStartTime, ns.Outcome = nil, ""
				progress(s.na, v1alpha1.PhasePending, v1alpha1.ReasonPending, "submitting again")
				return s.handlePending(ctx, t)
			}
			s.unknown(t, fmt.Sprintf("the provider cannot tell, and Kubernetes Node %s did not come back with a new bootID within %s (%s)", node.Name, wait, state))
			return ctrl.Result{}, nil
		}
		s.end(failure(v1alpha1.ReasonNodeNotReturned, fmt.Sprintf(
			"%s reported done, but Kubernetes Node %s is not Ready with a new bootID after %s (%s); %s",
			t.provider.Spec.Type, node.Name, wait, state, uncordonHint(node.Name))))
		return ctrl.Result{}, nil
	}
	progress(s.na, v1alpha1.PhaseWaitingForNode, v1alpha1.ReasonWaitingForNode, fmt.Sprintf(
		"waiting for Kubernetes Node %s to be Ready with a new bootID (now Ready=%v, bootID %s, was %s); up to %s more",
		node.Name, nodeReady(node), node.Status.NodeInfo.BootID, ns.BootID, ns.WaitStartTime.Add(wait).Sub(s.now).Round(time.Second)))
	return s.bound(ctrl.Result{RequeueAfter: min(nodeRound, max(ns.WaitStartTime.Add(wait).Sub(s.now), 100*time.Millisecond))}), nil
}

// endWithNode ends a successful run, uncordoning the Node first when the
// operator cordoned it and the VM is up (spec.node.uncordon, default true).
// node may be nil (it is read then).
func (s *step) endWithNode(ctx context.Context, t target, o outcome, node *corev1.Node) {
	ns := s.na.Status.Node
	if !o.succeeded || !s.withNode() || ns == nil || !ns.Cordoned {
		s.end(o)
		return
	}
	if u := s.na.Spec.Node.Uncordon; u != nil && !*u {
		s.end(o)
		return
	}
	switch t.req.Action {
	case "shutdown", "power_off":
		o.message += "; " + uncordonHint(ns.Name) + " (the VM is off)"
		s.end(o)
		return
	}
	if node == nil {
		var err error
		if node, err = s.getNode(ctx); err != nil || node == nil {
			o.message += fmt.Sprintf("; Kubernetes Node %s could not be read to uncordon it: %s", ns.Name, uncordonHint(ns.Name))
			s.end(o)
			return
		}
	}
	if err := (kubenode.Drainer{Client: s.r.Kube}).Uncordon(ctx, node); err != nil {
		o.message += fmt.Sprintf("; uncordoning Kubernetes Node %s failed (%v): %s", ns.Name, err, uncordonHint(ns.Name))
		s.end(o)
		return
	}
	ns.Cordoned = false
	s.nodeEvent(node, corev1.EventTypeNormal, "Uncordoned", "Uncordon", "uncordoned after %s", s.na.Status.ProviderAction)
	o.message += fmt.Sprintf("; Kubernetes Node %s uncordoned", ns.Name)
	s.end(o)
}
