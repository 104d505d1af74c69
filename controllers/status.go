package controllers

import (
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodeaction/nodeaction-operator/api/v1alpha1"
)

// The helpers below keep a NodeAction's phase and its kstatus conditions in
// step, so every phase reads the same way to kubectl wait, Flux and Argo CD:
//
//	Pending, Submitting, Running  Ready=False, Reconciling=True  (InProgress)
//	Succeeded                     Ready=True                     (Current)
//	Failed                        Ready=False, Stalled=True      (Failed)

// progress marks the action as under way.
func progress(na *v1alpha1.NodeAction, phase v1alpha1.Phase, reason, msg string) {
	na.Status.Phase = phase
	na.Status.Message = msg
	gen := na.Generation
	apimeta.SetStatusCondition(&na.Status.Conditions, metav1.Condition{
		Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: reason, Message: msg, ObservedGeneration: gen,
	})
	apimeta.SetStatusCondition(&na.Status.Conditions, metav1.Condition{
		Type: v1alpha1.ConditionReconciling, Status: metav1.ConditionTrue, Reason: reason, Message: msg, ObservedGeneration: gen,
	})
	apimeta.RemoveStatusCondition(&na.Status.Conditions, v1alpha1.ConditionStalled)
}

// succeed ends the run well.
func succeed(na *v1alpha1.NodeAction, reason, msg string, now metav1.Time) {
	na.Status.Phase = v1alpha1.PhaseSucceeded
	na.Status.Message = msg
	na.Status.CompletionTime = &now
	apimeta.SetStatusCondition(&na.Status.Conditions, metav1.Condition{
		Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: reason, Message: msg, ObservedGeneration: na.Generation,
	})
	apimeta.RemoveStatusCondition(&na.Status.Conditions, v1alpha1.ConditionReconciling)
	apimeta.RemoveStatusCondition(&na.Status.Conditions, v1alpha1.ConditionStalled)
}

// fail ends the run badly, for good.
func fail(na *v1alpha1.NodeAction, reason, msg string, now metav1.Time) {
	na.Status.Phase = v1alpha1.PhaseFailed
	na.Status.Message = msg
	na.Status.CompletionTime = &now
	gen := na.Generation
	apimeta.SetStatusCondition(&na.Status.Conditions, metav1.Condition{
		Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: reason, Message: msg, ObservedGeneration: gen,
	})
	apimeta.SetStatusCondition(&na.Status.Conditions, metav1.Condition{
		Type: v1alpha1.ConditionStalled, Status: metav1.ConditionTrue, Reason: reason, Message: msg, ObservedGeneration: gen,
	})
	apimeta.RemoveStatusCondition(&na.Status.Conditions, v1alpha1.ConditionReconciling)
}

// markSubmitted records that the provider accepted the action.
func markSubmitted(na *v1alpha1.NodeAction, msg string) {
	apimeta.SetStatusCondition(&na.Status.Conditions, metav1.Condition{
		Type: v1alpha1.ConditionSubmitted, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonAccepted, Message: msg, ObservedGeneration: na.Generation,
	})
}

// readyReason is the reason of the Ready condition, or "".
func readyReason(na *v1alpha1.NodeAction) string {
	if c := apimeta.FindStatusCondition(na.Status.Conditions, v1alpha1.ConditionReady); c != nil {
		return c.Reason
	}
	return ""
}

func removeCondition(na *v1alpha1.NodeAction, t string) {
	apimeta.RemoveStatusCondition(&na.Status.Conditions, t)
}
