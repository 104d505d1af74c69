package controllers

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodeaction/nodeaction-operator/api/v1alpha1"
	"github.com/nodeaction/nodeaction-operator/internal/provider"
)

// handleSubmitting handles an attempt whose intent is recorded and whose
// answer is not: its slot has not come yet, or the process died during the
// call, or the answer was lost. It never calls again before the provider
// has been asked what became of the attempt.
func (s *step) handleSubmitting(ctx context.Context, t target) (ctrl.Result, error) {
	na := s.na
	st := &na.Status
	if st.SubmittedAt == nil || st.AttemptID == "" {
		progress(na, v1alpha1.PhasePending, v1alpha1.ReasonPending, "waiting to submit")
		return s.handlePending(ctx, t)
	}
	key := client.ObjectKeyFromObject(na)
	if v, ok := s.r.tickets.Load(key); ok && v.(heldTicket).attemptID == st.AttemptID {
		held := v.(heldTicket)
		if wait := held.ticket.At.Sub(s.now); wait > s.r.Drivers.MaxRateWait() {
			return s.bound(ctrl.Result{RequeueAfter: wait}), nil
		}
		s.r.tickets.Delete(key)
		if s.now.Add(s.r.Drivers.RequestTimeout()).After(s.submitDeadline()) {
			// Woken too late to send within the recorded window: the
			// request never left, so a new attempt takes a new slot.
			held.ticket.Cancel()
			return s.handlePending(ctx, t)
		}
		return s.send(ctx, t, held.ticket)
	}
	// This process did not record the attempt (it restarted, or another
	// replica led before). An attempt whose slot had not come when its
	// recorder stopped never left: a leader only starts once the last one
	// has stopped, and nobody sends before the recorded time.
	if s.now.Add(clockSkew).Before(st.SubmittedAt.Time) {
		s.event(corev1.EventTypeNormal, "Rescheduled", "Submit",
			"attempt %s was waiting for its request slot when the operator restarted; it was never sent, so a new slot is taken", st.AttemptID)
		return s.handlePending(ctx, t)
	}
	if wait := s.submitDeadline().Add(settleMargin).Sub(s.now); wait > 0 {
		return s.bound(ctrl.Result{RequeueAfter: wait}), nil
	}
	// The cache may be behind our own writes: confirm before asking.
	fresh := &v1alpha1.NodeAction{}
	if err := s.r.APIReader.Get(ctx, key, fresh); err != nil {
		return ctrl.Result{}, err
	}
	if fresh.Status.Phase != v1alpha1.PhaseSubmitting || fresh.Status.AttemptID != st.AttemptID {
		return ctrl.Result{RequeueAfter: time.Second}, nil
	}
	return s.lookup(ctx, t)
}

// lookupWindow is when the lost attempt can have started at the provider:
// from its slot to its deadline plus the margin, widened by clock skew.
func (s *step) lookupWindow() provider.Window {
	return provider.Window{
		From: s.na.Status.SubmittedAt.Add(-clockSkew),
		To:   s.submitDeadline().Add(settleMargin + clockSkew),
	}
}

// lookup asks the provider what became of the attempt and acts on it.
func (s *step) lookup(ctx context.Context, t target) (ctrl.Result, error) {
	na := s.na
	st := &na.Status
	found, err := t.driver.Lookup(ctx, t.req, s.lookupWindow())
	if err == nil {
		var claimed map[string]string
		if claimed, err = s.claimedActions(ctx); err != nil {
			err = provider.NewRetryable(provider.Unavailable, fmt.Sprintf("cannot list the NodeActions on node %s: %v", na.Spec.NodeID, err), 0)
		} else {
			return s.judged(ctx, t, judgeLookup(found, claimed))
		}
	}
	pe := provider.AsError(err)
	switch {
	case pe.Class == provider.SubmissionUnknown:
		st.Attempts++ // it may have reached the provider
		return s.unknownUnlessNodeProves(t, pe.Message), nil
	case pe.Class == provider.AuthFailed:
		return s.credentialsRejected(ctx, t, pe, "looking up attempt "+st.AttemptID), nil
	case pe.Kind == provider.Terminal:
		s.end(failure(reasonFor(pe.Class),
			fmt.Sprintf("checking attempt %s with %s: %s", st.AttemptID, t.provider.Spec.Type, describeError(pe))))
		return ctrl.Result{}, nil
	default:
		wait := pe.RetryAfter
		if wait <= 0 {
			wait = backoff(max(st.Attempts, 1))
		}
		progress(na, v1alpha1.PhaseSubmitting, reasonFor(pe.Class),
			fmt.Sprintf("checking attempt %s with %s failed (%s); trying again in %s", st.AttemptID, t.provider.Spec.Type, describeError(pe), wait.Round(100*time.Millisecond)))
		return s.bound(ctrl.Result{RequeueAfter: wait}), nil
	}
}

// verdict is what a lookup decided.
type verdict struct {
	// adopt is the one action that can be the attempt.
	adopt *provider.Submission
	// notAccepted: the provider's records are complete and show no such action.
	notAccepted bool
	// why explains an unknown outcome (neither of the above).
	why string
}

// judgeLookup decides what a lookup's candidates mean. An action another
// NodeAction (or an earlier run) has recorded as its own is not a candidate.
// One candidate is adopted; none is "not accepted" only where the provider's
// records are complete; several, or records that are not complete, cannot
// be told apart and are left to a person. It never guesses.
func judgeLookup(found provider.Found, claimed map[string]string) verdict {
	var open []provider.Submission
	var skipped []string
	for _, c := range found.Candidates {
		if owner, ok := claimed[c.ActionID]; ok && c.ActionID != "" {
			skipped = append(skipped, fmt.Sprintf("%s (NodeAction %s's)", c.ActionID, owner))
			continue
		}
		open = append(open, c)
	}
	switch {
	case len(open) == 1:
		return verdict{adopt: &open[0]}
	case len(open) > 1:
		ids := make([]string, 0, len(open))
		for _, c := range open {
			ids = append(ids, orUnnamed(c.ActionID))
		}
		return verdict{why: fmt.Sprintf("%d actions of this type started while the attempt could have landed (%s), and nothing tells which is this attempt's",
			len(open), strings.Join(ids, ", "))}
	case found.Complete:
		return verdict{notAccepted: true}
	default:
		why := "the provider's records do not show it, but they are not complete enough to prove it was not accepted"
		if found.Why != "" {
			why = found.Why
		}
		if len(skipped) > 0 {
			why += "; earlier actions " + strings.Join(skipped, ", ") + " are not this attempt's"
		}
		return verdict{why: why}
	}
}

func orUnnamed(id string) string {
	if id == "" {
		return "one without an id"
	}
	return id
}

// judged acts on a lookup's verdict.
func (s *step) judged(ctx context.Context, t target, v verdict) (ctrl.Result, error) {
	st := &s.na.Status
	switch {
	case v.adopt != nil:
		st.Attempts++
		res := s.answer(ctx, t, *v.adopt, nil, true)
		if err := s.commitAnswer(ctx); err != nil {
			return ctrl.Result{}, err
		}
		return res, nil
	case v.notAccepted:
		s.event(corev1.EventTypeNormal, "NotAccepted", "Lookup",
			"%s shows attempt %s was not accepted; submitting again", t.provider.Spec.Type, st.AttemptID)
		return s.handlePending(ctx, t)
	default:
		st.Attempts++ // it may have reached the provider
		return s.unknownUnlessNodeProves(t, v.why), nil
	}
}

// unknownUnlessNodeProves stops the run for a person, unless the Node can
// still prove the attempt ran: for an action that restarts the guest, a new
// bootID after the intent does (phase_waitingfornode.go).
func (s *step) unknownUnlessNodeProves(t target, why string) ctrl.Result {
	if s.provesByNode(t) {
		return s.startWaitForNode(t, outcome{reason: outcomeUnknown,
			message: fmt.Sprintf("%s cannot tell whether attempt %s reached it (%s)", t.provider.Spec.Type, s.na.Status.AttemptID, why)})
	}
	s.unknown(t, why)
	return ctrl.Result{}
}

// unknown stops the run for a person: whether the attempt reached the
// provider cannot be known, and a second call would be a guess.
func (s *step) unknown(t target, why string) {
	na := s.na
	st := na.Status
	msg := fmt.Sprintf("cannot tell whether attempt %s reached %s: %s. Check the VM; to submit again, run: kubectl annotate nodeaction %s -n %s %s=%s",
		st.AttemptID, t.provider.Spec.Type, why, na.Name, na.Namespace, v1alpha1.AnnotationRetrySubmission, st.AttemptID)
	s.end(failure(v1alpha1.ReasonSubmissionUnknown, msg))
}

// claimedActions maps the provider action ids that NodeActions on the same
// VM id have recorded (current runs and history; this one's earlier runs
// too) to their names.
func (s *step) claimedActions(ctx context.Context) (map[string]string, error) {
	list := &v1alpha1.NodeActionList{}
	if err := s.r.Client.List(ctx, list, client.MatchingFields{indexNodeID: s.na.Spec.NodeID}); err != nil {
		return nil, err
	}
	claimed := map[string]string{}
	for i := range list.Items {
		o := &list.Items[i]
		if o.UID != s.na.UID && o.Status.ProviderActionID != "" {
			claimed[o.Status.ProviderActionID] = o.Namespace + "/" + o.Name
		}
		for _, h := range o.Status.History {
			if h.ProviderActionID != "" {
				claimed[h.ProviderActionID] = o.Namespace + "/" + o.Name
			}
		}
	}
	return claimed, nil
}

// credentialsRejected keeps an accepted (or possibly accepted) action
// waiting when the provider refuses the credentials: the action may still
// be running, so failing the NodeAction would invite a second call. It
// tries again with new credentials as soon as the Secret changes, and every
// waitForConfig in any case (the refusal may pass).
func (s *step) credentialsRejected(ctx context.Context, t target, pe *provider.Error, doing string) ctrl.Result {
	if s.r.Drivers.CredentialsChanged(ctx, t.provider) {
		s.r.Drivers.Invalidate(t.provider)
		return s.bound(ctrl.Result{RequeueAfter: time.Second})
	}
	msg := fmt.Sprintf("%s refused the credentials in Secret %q while %s (%s). The action may still be running at %s; put working credentials in the Secret and the operator resumes without a new call",
		t.provider.Spec.Type, t.provider.Spec.CredentialsSecretRef.Name, doing, describeError(pe), t.provider.Spec.Type)
	if readyReason(s.na) != v1alpha1.ReasonCredentialsRejected {
		s.event(corev1.EventTypeWarning, v1alpha1.ReasonCredentialsRejected, "Wait", "%s", msg)
	}
	stall(s.na, v1alpha1.ReasonCredentialsRejected, msg)
	return s.bound(ctrl.Result{RequeueAfter: waitForConfig})
}
