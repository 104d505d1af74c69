package controllers

import (
	"unicode/utf8"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodeaction/nodeaction-operator/api/v1alpha1"
)

// The helpers below keep a NodeAction's phase and its kstatus conditions in
// step, so every phase reads the same way to kubectl wait, Flux and Argo CD:
//
//	Pending, Submitting, Running  Ready=False, Reconciling=True  (InProgress)
//	  ... waiting for a person    Ready=False, Stalled=True      (Failed, resumes by itself once fixed)
//	Succeeded                     Ready=True                     (Current)
//	Failed                        Ready=False, Stalled=True      (Failed)

// maxMessage bounds what status says (in bytes): conditions allow 32 KiB,
// and a person reads the first lines anyway. maxNote is the API server's
// limit on an event's note.
const (
	maxMessage = 4096
	maxNote    = 1024
)

// bounded cuts a status message to maxMessage bytes.
func bounded(msg string) string { return cut(msg, maxMessage) }

// cut cuts msg to limit bytes on a rune boundary, saying so.
func cut(msg string, limit int) string {
	if len(msg) <= limit {
		return msg
	}
	const tail = "... (cut)"
	n := limit - len(tail)
	for n > 0 && !utf8.RuneStart(msg[n]) {
		n--
	}
	return msg[:n] + tail
}

// progress marks the action as under way.
func progress(na *v1alpha1.NodeAction, phase v1alpha1.Phase, reason, msg string) {
	msg = bounded(msg)
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
	msg = bounded(msg)
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
	msg = bounded(msg)
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

// stall says the action cannot move on until something outside the
// operator changes (a Secret, a Provider), without ending the run: the
// phase stays, Stalled=True, and the run resumes when the cause is gone.
func stall(na *v1alpha1.NodeAction, reason, msg string) {
	msg = bounded(msg)
	na.Status.Message = msg
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
