package controllers

import (
	"context"
	"fmt"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodeaction/nodeaction-operator/api/v1alpha1"
	"github.com/nodeaction/nodeaction-operator/internal/metrics"
	"github.com/nodeaction/nodeaction-operator/internal/provider"
)

// handlePending submits the action once the node is free.
func (s *step) handlePending(ctx context.Context, t target) (ctrl.Result, error) {
	if blocker := s.blocker(ctx); blocker != nil {
		msg := fmt.Sprintf("waiting for NodeAction %q (%s) on the same node: actions on one node run in creation order",
			blocker.Name, phaseOrPending(blocker.Status.Phase))
		if readyReason(s.na) != v1alpha1.ReasonNodeBusy {
			s.event(corev1.EventTypeNormal, v1alpha1.ReasonNodeBusy, "Wait", "%s", msg)
		}
		progress(s.na, v1alpha1.PhasePending, v1alpha1.ReasonNodeBusy, msg)
		return s.bound(ctrl.Result{RequeueAfter: waitForNode}), nil
	}
	return s.submit(ctx, t)
}

// submit records the intent, then makes the one provider call.
func (s *step) submit(ctx context.Context, t target) (ctrl.Result, error) {
	na := s.na
	st := &na.Status
	st.Attempts++
	st.AttemptID = fmt.Sprintf("%s-%d", shortUID(na.UID), st.Attempts)
	st.SubmittedAt = ptrTime(s.metaNow())
	st.ProviderAction = t.driver.Capabilities().Describe(t.req)
	st.ProviderActionID = ""
	st.ProviderStartTime = nil
	removeCondition(na, v1alpha1.ConditionSubmitted)
	progress(na, v1alpha1.PhaseSubmitting, v1alpha1.ReasonSubmitting,
		fmt.Sprintf("submitting %s to %s (attempt %s)", st.ProviderAction, t.provider.Spec.Type, st.AttemptID))
	// The intent must be on record before the call; a stale object fails here.
	if err := s.commit(ctx); err != nil {
		return ctrl.Result{}, err
	}

	s.log.Info("submitting", "attempt", st.AttemptID, "providerAction", st.ProviderAction, "node", na.Spec.NodeID)
	sub, err := t.driver.Submit(ctx, t.req)
	res := s.answer(ctx, t, sub, err, false)
	if err := s.commitAnswer(ctx); err != nil {
		return ctrl.Result{}, err
	}
	return res, nil
}

// answer records what the provider said to a submission (or what Lookup found).
func (s *step) answer(ctx context.Context, t target, sub provider.Submission, err error, adopted bool) ctrl.Result {
	na := s.na
	st := &na.Status
	if err == nil {
		st.ProviderActionID = sub.ActionID
		if !sub.StartedAt.IsZero() {
			st.ProviderStartTime = ptrTime(metav1.NewTime(sub.StartedAt))
		}
		msg := fmt.Sprintf("%s accepted %s", t.provider.Spec.Type, st.ProviderAction)
		if sub.ActionID != "" {
			msg += fmt.Sprintf(" (action %s)", sub.ActionID)
		}
		markSubmitted(na, msg)
		if sub.Done != nil {
			// Accepted and done in one answer: one event tells both.
			done := outcomeOf(*sub.Done)
			done.message = msg + ": " + done.message
			s.end(done)
			return ctrl.Result{}
		}
		if adopted {
			msg += fmt.Sprintf("; found again after the answer to attempt %s was lost", st.AttemptID)
			s.event(corev1.EventTypeNormal, "Adopted", "Lookup", "%s", msg)
		} else {
			s.event(corev1.EventTypeNormal, "Submitted", "Submit", "%s", msg)
		}
		progress(na, v1alpha1.PhaseRunning, v1alpha1.ReasonInProgress, msg+"; following it")
		return s.bound(ctrl.Result{RequeueAfter: s.schedulePoll(t)})
	}

	pe := provider.AsError(err)
	switch pe.Kind {
	case provider.Retryable:
		return s.retryLater(t, pe)
	case provider.Ambiguous:
		msg := fmt.Sprintf("the answer to attempt %s was lost (%s); checking with %s before any new call",
			st.AttemptID, pe.Message, t.provider.Spec.Type)
		s.event(corev1.EventTypeWarning, "AnswerLost", "Submit", "%s", msg)
		progress(na, v1alpha1.PhaseSubmitting, v1alpha1.ReasonSubmitting, msg)
		return s.bound(ctrl.Result{RequeueAfter: s.settle()})
	default:
		if pe.Class == provider.AuthFailed && s.r.Drivers.CredentialsChanged(ctx, t.provider) {
			// The Secret was rotated since the driver was built: nothing
			// happened at the provider, so try once more with the new one.
			s.r.Drivers.Invalidate(t.provider)
			return s.retryLater(t, &provider.Error{Kind: provider.Retryable, Class: provider.CredentialsError,
				Message: "credentials were refused and have changed since; retrying with the new ones", RetryAfter: time.Second})
		}
		s.end(failure(reasonFor(pe.Class), fmt.Sprintf("%s refused %s: %s", t.provider.Spec.Type, st.ProviderAction, describeError(pe))))
		return ctrl.Result{}
	}
}

// retryLater goes back to Pending after the provider did not act on the call.
func (s *step) retryLater(t target, pe *provider.Error) ctrl.Result {
	wait := pe.RetryAfter
	if wait <= 0 {
		wait = backoff(s.na.Status.Attempts)
	}
	reason := reasonFor(pe.Class)
	msg := fmt.Sprintf("%s; retrying in %s", describeError(pe), wait.Round(100*time.Millisecond))
	if pe.Class == provider.RateLimited {
		metrics.RateLimitWait.WithLabelValues(s.na.Namespace, t.provider.Name).Add(wait.Seconds())
	}
	s.event(corev1.EventTypeWarning, reason, "Retry", "%s", msg)
	progress(s.na, v1alpha1.PhasePending, reason, msg)
	return s.bound(ctrl.Result{RequeueAfter: wait})
}

// settle is how long a submission may still be in flight after it was
// recorded: after that, what the provider shows is final.
func (s *step) settle() time.Duration {
	st := s.na.Status
	if st.SubmittedAt == nil {
		return 0
	}
	return max(st.SubmittedAt.Add(s.r.Drivers.SettleTime()+time.Second).Sub(s.now), 100*time.Millisecond)
}

// blocker returns the earliest unfinished NodeAction on the same Provider
// and node that was created before this one, or nil.
func (s *step) blocker(ctx context.Context) *v1alpha1.NodeAction {
	list := &v1alpha1.NodeActionList{}
	if err := s.r.Client.List(ctx, list, client.InNamespace(s.na.Namespace),
		client.MatchingFields{indexProviderNode: providerNodeKey(s.na)}); err != nil {
		s.log.Error(err, "listing NodeActions on the same node")
		return nil
	}
	var earlier []*v1alpha1.NodeAction
	for i := range list.Items {
		o := &list.Items[i]
		if o.UID == s.na.UID || o.Status.Phase.Finished() || !o.DeletionTimestamp.IsZero() {
			continue
		}
		if createdBefore(o, s.na) {
			earlier = append(earlier, o)
		}
	}
	if len(earlier) == 0 {
		return nil
	}
	sort.Slice(earlier, func(i, j int) bool { return createdBefore(earlier[i], earlier[j]) })
	return earlier[0]
}

func createdBefore(a, b *v1alpha1.NodeAction) bool {
	if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
		return a.CreationTimestamp.Before(&b.CreationTimestamp)
	}
	return a.Name < b.Name
}

func phaseOrPending(p v1alpha1.Phase) v1alpha1.Phase {
	if p == "" {
		return v1alpha1.PhasePending
	}
	return p
}
