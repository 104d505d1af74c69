package controllers

import (
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodeaction/nodeaction-operator/api/v1alpha1"
)

// A set's conditions, read the same way as a NodeAction's by kubectl wait,
// Flux and Argo CD:
//
//	rolling, paused, outside a window, Provider missing   Ready=False, Reconciling=True  (InProgress)
//	every member succeeded                                Ready=True                     (Current)
//	failure budget exceeded, finished with failures,
//	members removed, Nodes unmapped, bad spec             Ready=False, Stalled=True      (Failed)

// listLimit bounds the names status lists.
const listLimit = 100

// summarize writes the run's counts, lists, window and conditions.
func (ro *rollout) summarize(pl *rolloutPlan, g gates, unmapped []string, refused string) {
	set := ro.set
	st := &set.Status
	st.Total, st.Pending, st.Blocked = int32(len(pl.vms)), int32(pl.pending), int32(pl.blocked)
	st.Running, st.Succeeded, st.Failed, st.Removed = int32(pl.running), int32(pl.succeeded), int32(pl.failed), int32(pl.removed)
	var inFlight, failed, removed, blocked []string
	for _, v := range pl.vms {
		switch v.state {
		case vmRunning:
			inFlight = append(inFlight, v.member)
		case vmFailed:
			failed = append(failed, v.member)
		case vmRemoved:
			removed = append(removed, fmt.Sprintf("%s (VM %s)", v.member, v.target.nodeID))
		case vmPending:
			if v.blockedBy != "" {
				blocked = append(blocked, fmt.Sprintf("VM %s: %s", v.target.nodeID, v.blockedBy))
			}
		}
	}
	st.InFlight, st.FailedMembers, st.UnmappedNodes = firstN(inFlight), firstN(failed), firstN(unmapped)
	st.WindowOpen = g.window.Open
	st.WindowEnd, st.NextWindowStart = metaTimeOrNil(g.window.End), metaTimeOrNil(g.window.Next)

	complete := g.invalid == "" && g.noProvider == "" && pl.pending == 0 && pl.running == 0
	switch {
	case len(pl.vms) == 0:
		// Nothing selected (yet): not a finished run, so Nodes that come
		// to match are taken in.
		st.CompletionTime = nil
	case complete && st.CompletionTime == nil:
		st.CompletionTime = ptrTime(metav1.NewTime(ro.now))
		if pl.failed == 0 && pl.removed == 0 && len(unmapped) == 0 && pl.succeeded > 0 {
			ro.event(corev1.EventTypeNormal, v1alpha1.ReasonCompleted, "Complete", "all %d members succeeded in run %q", pl.succeeded, st.RunID)
		} else {
			ro.event(corev1.EventTypeWarning, "Finished", "Complete", "run %q finished: %d succeeded, %d failed, %d removed, %d Nodes unmapped",
				st.RunID, pl.succeeded, pl.failed, pl.removed, len(unmapped))
		}
	case !complete:
		st.CompletionTime = nil
	}

	progressMsg := fmt.Sprintf("%d of %d succeeded, %d failed, %d in flight%s, %d pending; at most %d at a time",
		pl.succeeded, len(pl.vms), pl.failed, pl.running, names(inFlight), pl.pending, pl.limit)
	if len(blocked) > 0 {
		progressMsg += fmt.Sprintf("; %d wait for another NodeAction on their VM (%s)", len(blocked), strings.Join(firstN(blocked), "; "))
	}
	if len(unmapped) > 0 {
		progressMsg += "; " + unmappedMsg(unmapped)
	}
	halted := pl.failed > maxFailures(set)
	wasHalted := readySetReason(ro.before) == v1alpha1.ReasonFailureBudgetExceeded

	switch {
	case g.invalid != "":
		ro.markStalled(g.invalidReason, g.invalid)
	case refused != "":
		ro.markStalled(v1alpha1.ReasonMemberRefused, refused+"; "+progressMsg)
	case halted:
		msg := fmt.Sprintf("%d members failed, more than spec.maxFailures (%d): %s; no new member starts", pl.failed, maxFailures(set), strings.Join(firstN(failed), ", "))
		if pl.running > 0 {
			msg += fmt.Sprintf(", the %d in flight finish", pl.running)
		}
		msg += ". Raise spec.maxFailures, or change spec.runID to run every VM again"
		if !wasHalted {
			ro.event(corev1.EventTypeWarning, v1alpha1.ReasonFailureBudgetExceeded, "Halt", "%s", msg)
		}
		ro.markStalled(v1alpha1.ReasonFailureBudgetExceeded, msg)
	case complete && len(pl.vms) == 0 && len(unmapped) == 0:
		ro.markStalled(v1alpha1.ReasonNoTargets, "spec.nodeSelector selects no Node: nothing to act on (the set looks again when Nodes change)")
	case complete && pl.failed > 0:
		ro.markStalled(v1alpha1.ReasonMembersFailed, fmt.Sprintf("run %q finished: %d of %d succeeded, %d failed (within spec.maxFailures %d): %s",
			st.RunID, pl.succeeded, len(pl.vms), pl.failed, maxFailures(set), strings.Join(firstN(failed), ", ")))
	case complete && pl.removed > 0:
		ro.markStalled(v1alpha1.ReasonMembersRemoved, fmt.Sprintf("run %q finished, but %d members were deleted before they finished: %s; their VMs were not started again, "+
			"as their actions may have run. Change spec.runID to run every VM again", st.RunID, pl.removed, strings.Join(firstN(removed), ", ")))
	case complete && len(unmapped) > 0:
		ro.markStalled(v1alpha1.ReasonUnmappedNodes, fmt.Sprintf("%d of %d members succeeded, but %s", pl.succeeded, len(pl.vms), unmappedMsg(unmapped)))
	case complete:
		ro.markReady(v1alpha1.ReasonCompleted, fmt.Sprintf("all %d members succeeded in run %q", pl.succeeded, st.RunID))
	case g.noProvider != "":
		ro.markProgressing(v1alpha1.ReasonProviderNotFound, g.noProvider+"; no member starts until it exists. "+progressMsg)
	case g.paused:
		ro.markProgressing(v1alpha1.ReasonPaused, "paused (spec.paused): no new member starts; "+progressMsg)
	case !g.window.Open && pl.pending > 0:
		ro.markProgressing(v1alpha1.ReasonOutsideWindow, fmt.Sprintf("outside the maintenance windows: the next opens at %s; %s",
			g.window.Next.UTC().Format("2006-01-02T15:04:05Z"), progressMsg))
	case pl.cooling > 0 && pl.free == 0 && pl.pending > 0:
		ro.markProgressing(v1alpha1.ReasonRolling, fmt.Sprintf("%s; the next starts at %s (spec.pauseBetweenSeconds)", progressMsg, pl.nextFree.UTC().Format("2006-01-02T15:04:05Z")))
	default:
		ro.markProgressing(v1alpha1.ReasonRolling, progressMsg)
	}
}

func unmappedMsg(unmapped []string) string {
	return fmt.Sprintf("%d Nodes match spec.nodeSelector but do not say which VM they run on (%s): give them the annotation %s: <Provider name>/<VM id>, "+
		"or a spec.providerID the operator reads (digitalocean://<droplet id>)", len(unmapped), strings.Join(firstN(unmapped), ", "), v1alpha1.AnnotationVM)
}

func names(list []string) string {
	if len(list) == 0 {
		return ""
	}
	if len(list) > 10 {
		return fmt.Sprintf(" (%s, ...)", strings.Join(list[:10], ", "))
	}
	return " (" + strings.Join(list, ", ") + ")"
}

func firstN(list []string) []string {
	if len(list) > listLimit {
		return list[:listLimit]
	}
	return list
}

func metaTimeOrNil(t time.Time) *metav1.Time {
	if t.IsZero() {
		return nil
	}
	return ptrTime(metav1.NewTime(t))
}

func (ro *rollout) markProgressing(reason, msg string) {
	ro.setConditions(reason, msg, metav1.ConditionFalse, true, false)
}

func (ro *rollout) markStalled(reason, msg string) {
	ro.setConditions(reason, msg, metav1.ConditionFalse, false, true)
}

func (ro *rollout) markReady(reason, msg string) {
	ro.setConditions(reason, msg, metav1.ConditionTrue, false, false)
}

// setConditions keeps Ready, Reconciling and Stalled in step.
func (ro *rollout) setConditions(reason, msg string, ready metav1.ConditionStatus, reconciling, stalled bool) {
	s := ro.set
	msg = bounded(msg)
	s.Status.Message = msg
	gen, now := s.Generation, metav1.NewTime(ro.now)
	apimeta.SetStatusCondition(&s.Status.Conditions, metav1.Condition{Type: v1alpha1.ConditionReady, Status: ready, Reason: reason, Message: msg,
		ObservedGeneration: gen, LastTransitionTime: now})
	for typ, on := range map[string]bool{v1alpha1.ConditionReconciling: reconciling, v1alpha1.ConditionStalled: stalled} {
		if on {
			apimeta.SetStatusCondition(&s.Status.Conditions, metav1.Condition{Type: typ, Status: metav1.ConditionTrue, Reason: reason, Message: msg,
				ObservedGeneration: gen, LastTransitionTime: now})
		} else {
			apimeta.RemoveStatusCondition(&s.Status.Conditions, typ)
		}
	}
}

// readySetReason is the reason of a set's Ready condition, or "".
func readySetReason(s *v1alpha1.NodeActionSet) string {
	if c := apimeta.FindStatusCondition(s.Status.Conditions, v1alpha1.ConditionReady); c != nil {
		return c.Reason
	}
	return ""
}
