package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodeaction/nodeaction-operator/api/v1alpha1"
	"github.com/nodeaction/nodeaction-operator/internal/provider"
)

// handleRunning polls a running action until the provider reports its end.
func (s *step) handleRunning(ctx context.Context, t target) (ctrl.Result, error) {
	na := s.na
	st := &na.Status
	if next, ok := s.r.polls.Load(client.ObjectKeyFromObject(na)); ok {
		if wait := next.(time.Time).Sub(s.now); wait > 0 {
			return s.bound(ctrl.Result{RequeueAfter: wait}), nil
		}
	}
	sub := provider.Submission{Request: t.req, ActionID: st.ProviderActionID, Progress: st.ProviderProgress}
	switch {
	case st.ProviderStartTime != nil:
		sub.StartedAt = st.ProviderStartTime.Time
	case st.SubmittedAt != nil:
		sub.StartedAt = st.SubmittedAt.Time
	}
	as, err := s.r.fleet.status(ctx, t.provider.UID, t.driver, sub, s.now, s.pollBase(t))
	if errors.Is(err, errAwaitingSweep) {
		// Nothing new to say: look again in a poll interval.
		return s.bound(ctrl.Result{RequeueAfter: s.schedulePollAt(t, s.pollBase(t))}), nil
	}
	if err != nil {
		pe := provider.AsError(err)
		if pe.Class == provider.AuthFailed {
			return s.credentialsRejected(ctx, t, pe, "following "+st.ProviderAction), nil
		}
		if pe.Kind == provider.Terminal {
			s.end(failure(reasonFor(pe.Class), fmt.Sprintf("following %s: %s", st.ProviderAction, describeError(pe))))
			return ctrl.Result{}, nil
		}
		if pe.NotSent && pe.Class == provider.RateLimited {
			// The Provider's own budget said not now: nothing to tell,
			// come back when it has a slot.
			return s.bound(ctrl.Result{RequeueAfter: s.schedulePollAt(t, max(pe.RetryAfter, 10*time.Millisecond))}), nil
		}
		wait := max(pe.RetryAfter, s.schedulePoll(t))
		progress(na, v1alpha1.PhaseRunning, reasonFor(pe.Class), fmt.Sprintf("reading the action's status failed (%s); trying again", describeError(pe)))
		return s.bound(ctrl.Result{RequeueAfter: wait}), nil
	}
	progressed := as.Progress != "" && as.Progress != st.ProviderProgress
	if progressed {
		st.ProviderProgress = as.Progress
	}
	if res, ended := s.ended(ctx, t, as); ended {
		return res, nil
	}
	if s.escalationDue() {
		// A swept answer may be seconds old: read the action itself
		// before sending a hard power-off it may no longer need.
		if fresh, err := t.driver.Status(provider.LowPriority(ctx), sub); err == nil {
			if res, ended := s.ended(ctx, t, fresh); ended {
				return res, nil
			}
		}
		return s.escalate(ctx, t)
	}
	if as.Class == provider.Verifying && s.provesByNode(t) {
		// The provider cannot show the effect yet (or ever, as E2E's quick
		// reboots): a Node back with a new bootID shows it.
		if node, err := s.getNode(ctx); err == nil && node != nil && node.Status.NodeInfo.BootID != na.Status.Node.BootID {
			return s.startWaitForNode(t, outcome{succeeded: true, reason: v1alpha1.ReasonAcceptedUnverified, message: as.Message}), nil
		}
	}
	// Still under way as last recorded: the provider's new wording of the
	// same state is not worth a status write (a fleet's writes are the API
	// server's scarce resource: intent, answer, end).
	if progressed || na.Status.Phase != v1alpha1.PhaseRunning || readyReason(na) != reasonFor(as.Class) {
		progress(na, v1alpha1.PhaseRunning, reasonFor(as.Class), as.Message)
	}
	if as.Watch {
		s.r.durations.markWatched(s.actionKind(t))
		return s.bound(ctrl.Result{RequeueAfter: s.schedulePollAt(t, s.pollBase(t))}), nil
	}
	return s.bound(ctrl.Result{RequeueAfter: s.schedulePoll(t)}), nil
}

// ended handles an answer that says the action is over.
func (s *step) ended(ctx context.Context, t target, as provider.ActionStatus) (ctrl.Result, bool) {
	switch as.State {
	case provider.StateSucceeded:
		s.learnDuration(t, outcomeOf(as))
		return s.providerDone(ctx, t, outcomeOf(as)), true
	case provider.StateFailed:
		return s.failed(ctx, t, as), true
	}
	return ctrl.Result{}, false
}

// maxBackoffLimit is spec.backoffLimit's maximum, and so the most failed
// attempts a run keeps the ids of.
const maxBackoffLimit = 10

// failed handles a provider-reported failure: retry within backoffLimit
// when the action is safe to repeat, else fail. A retried attempt's action
// id is kept: its action may lie in the next attempt's lookup window.
func (s *step) failed(_ context.Context, t target, as provider.ActionStatus) ctrl.Result {
	na := s.na
	st := &na.Status
	limit := int32(0)
	if na.Spec.BackoffLimit != nil {
		limit = *na.Spec.BackoffLimit
	}
	repeatable := t.driver.Capabilities().Repeatable(t.req)
	if st.FailedAttempts < limit && repeatable {
		st.FailedAttempts++
		if st.ProviderActionID != "" && len(st.FailedActionIDs) < maxBackoffLimit {
			st.FailedActionIDs = append(st.FailedActionIDs, st.ProviderActionID)
		}
		wait := backoff(st.FailedAttempts)
		msg := fmt.Sprintf("%s; retrying (%d of %d) in %s", as.Message, st.FailedAttempts, limit, wait.Round(100*time.Millisecond))
		s.event(corev1.EventTypeWarning, v1alpha1.ReasonRetrying, "Retry", "%s", msg)
		removeCondition(na, v1alpha1.ConditionSubmitted)
		progress(na, v1alpha1.PhasePending, v1alpha1.ReasonRetrying, msg)
		return s.bound(ctrl.Result{RequeueAfter: wait})
	}
	o := outcomeOf(as)
	if limit > 0 && st.FailedAttempts >= limit {
		o.reason = v1alpha1.ReasonBackoffLimitExceeded
		o.message = fmt.Sprintf("%s (backoffLimit %d reached)", as.Message, limit)
	} else if limit > 0 && !repeatable {
		o.message += fmt.Sprintf(" (not retried: %s is not safe to repeat)", t.req.Action)
	}
	s.end(o)
	return ctrl.Result{}
}

// escalationDue: a shutdown that has not powered the VM off in time.
func (s *step) escalationDue() bool {
	esc := s.na.Spec.Escalation
	st := s.na.Status
	return esc != nil && st.EscalatedAt == nil && st.SubmittedAt != nil &&
		!s.now.Before(st.SubmittedAt.Add(time.Duration(esc.PowerOffAfterSeconds)*time.Second))
}

// escalate follows the shutdown with the provider's hard power off (prepare
// refused an escalation where there is none), through the same
// record-intent-then-call path as the first submission.
func (s *step) escalate(ctx context.Context, t target) (ctrl.Result, error) {
	na := s.na
	caps := t.driver.Capabilities()
	req, err := provider.Resolve(caps, na.Spec.NodeID, caps.HardPowerOff, nil)
	if err != nil {
		pe := provider.AsError(err)
		s.end(failure(reasonFor(pe.Class), fmt.Sprintf("escalating the shutdown: %s", pe.Message)))
		return ctrl.Result{}, nil
	}
	na.Status.EscalatedAt = ptrTime(s.metaNow())
	s.event(corev1.EventTypeWarning, v1alpha1.ReasonEscalated, "Escalate",
		"shutdown has not powered the VM off after %ds; sending %s", na.Spec.Escalation.PowerOffAfterSeconds, caps.HardPowerOff)
	t.req = req
	return s.handlePending(ctx, t)
}
