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

// clockSkew is how far the operator's clock may differ from a provider's
// (or another operator replica's): a lost submission is matched against
// provider times within it.
const clockSkew = 5 * time.Second

// settleMargin is how long after a request could last leave the operator
// it may still take to reach the provider and show in its records.
const settleMargin = 2 * time.Second

// handlePending submits the action once the node is free.
func (s *step) handlePending(ctx context.Context, t target) (ctrl.Result, error) {
	blocker, err := s.blocker(ctx)
	if err != nil {
		// Fail closed: without knowing what else runs on the node, nothing is sent.
		progress(s.na, v1alpha1.PhasePending, v1alpha1.ReasonNodeBusy,
			fmt.Sprintf("cannot check the other NodeActions on node %s (%v); not submitting until it can", s.na.Spec.NodeID, err))
		return s.bound(ctrl.Result{RequeueAfter: 5 * time.Second}), nil
	}
	if blocker != nil {
		msg := fmt.Sprintf("waiting for NodeAction %q (%s) on the same node: actions on one node run one at a time, in creation order",
			blocker.Name, phaseOrPending(blocker.Status.Phase))
		if readyReason(s.na) != v1alpha1.ReasonNodeBusy {
			s.event(corev1.EventTypeNormal, v1alpha1.ReasonNodeBusy, "Wait", "%s", msg)
		}
		progress(s.na, v1alpha1.PhasePending, v1alpha1.ReasonNodeBusy, msg)
		return s.bound(ctrl.Result{RequeueAfter: waitForNode}), nil
	}
	if !s.withNode() {
		return s.submit(ctx, t)
	}
	if why := s.badPodSelector(); why != "" {
		s.end(failure(v1alpha1.ReasonInvalidSelector, why+"; nothing was cordoned or sent. Fix it in a new NodeAction"))
		return ctrl.Result{}, nil
	}
	if !s.r.Nodes {
		stall(s.na, v1alpha1.ReasonNodeUnresolved, "spec.node needs an operator that may list, watch and patch Kubernetes Nodes, "+
			"and this one may not (an install that serves one namespace); nothing was sent. Use the cluster-wide install, or remove spec.node in a new NodeAction")
		return s.bound(ctrl.Result{RequeueAfter: waitForConfig}), nil
	}
	node, res, ok := s.resolveNode(ctx, t)
	if !ok {
		return s.bound(res), nil
	}
	if s.na.Spec.Node.Drain != nil {
		return s.startDrain(ctx, t, node)
	}
	return s.submitWithNode(ctx, t, node)
}

// submit takes a slot of the Provider's request budget, records the intent
// (with the window in which its request may leave), and makes the one
// provider call when the slot comes: now, or in a later reconcile.
func (s *step) submit(ctx context.Context, t target) (ctrl.Result, error) {
	na := s.na
	st := &na.Status
	ticket, err := s.r.Drivers.Reserve(t.provider, s.now)
	if err != nil {
		pe := provider.AsError(err)
		s.end(failure(reasonFor(pe.Class), pe.Message))
		return ctrl.Result{}, nil
	}
	sendAt := ticket.At
	if sendAt.Before(s.now) {
		sendAt = s.now
	}
	// Older objects counted attempts per run only: never reuse their ids.
	st.TotalAttempts = max(st.TotalAttempts, st.Attempts) + 1
	st.AttemptID = fmt.Sprintf("%s-%d", shortUID(na.UID), st.TotalAttempts)
	// Status keeps whole seconds: the window is widened to them, never narrowed.
	st.SubmittedAt = ptrTime(metav1.NewTime(sendAt.Truncate(time.Second)))
	st.SubmitDeadline = ptrTime(metav1.NewTime(ceilSecond(sendAt.Add(submitSlack + s.r.Drivers.RequestTimeout()))))
	st.ProviderAction = t.driver.Capabilities().Describe(t.req)
	st.ProviderActionID = ""
	st.ProviderStartTime = nil
	st.ProviderProgress = ""
	removeCondition(na, v1alpha1.ConditionSubmitted)
	wait := sendAt.Sub(s.now)
	later := wait > s.r.Drivers.MaxRateWait()
	if later {
		progress(na, v1alpha1.PhaseSubmitting, v1alpha1.ReasonRateLimited,
			fmt.Sprintf("waiting for a request slot of Provider %q: %s goes to %s at %s (attempt %s)",
				t.provider.Name, st.ProviderAction, t.provider.Spec.Type, sendAt.UTC().Format(time.RFC3339), st.AttemptID))
		metrics.RateLimitWait.WithLabelValues(na.Namespace, t.provider.Name).Add(wait.Seconds())
	} else {
		progress(na, v1alpha1.PhaseSubmitting, v1alpha1.ReasonSubmitting,
			fmt.Sprintf("submitting %s to %s (attempt %s)", st.ProviderAction, t.provider.Spec.Type, st.AttemptID))
	}
	// The intent must be on record before the call; a stale object fails here.
	if err := s.commit(ctx); err != nil {
		ticket.Cancel()
		return ctrl.Result{}, err
	}
	if later {
		s.r.tickets.Store(client.ObjectKeyFromObject(na), heldTicket{attemptID: st.AttemptID, ticket: ticket})
		return s.bound(ctrl.Result{RequeueAfter: max(wait-wakeEarly, 10*time.Millisecond)}), nil
	}
	return s.send(ctx, t, ticket)
}

// submitSlack widens the recorded window past the slot. A recorded
// attempt may leave until latestSend (half the request timeout later
// still): a late wake-up or the provider's window holding it back does
// not cost a new attempt; the gate counts late requests against the
// provider's window like any other.
const submitSlack = time.Second

// wakeEarly is how long before its slot a recorded attempt's reconcile is
// queued: a busy work queue wakes it a little late, and past latestSend
// that costs a new attempt (another intent written). The send waits out
// the rest of the slot itself.
const wakeEarly = time.Second

// heldTicket is a request slot kept in memory for an attempt recorded
// before its slot came.
type heldTicket struct {
	attemptID string
	ticket    *provider.Ticket
}

// send makes the recorded attempt's one provider call on its slot, cut
// off at the recorded deadline, and records the answer.
func (s *step) send(ctx context.Context, t target, ticket *provider.Ticket) (ctrl.Result, error) {
	st := &s.na.Status
	ticket.NotAfter = s.latestSend()
	sendCtx, cancel := context.WithDeadline(provider.WithTicket(ctx, ticket), s.submitDeadline())
	defer cancel()
	s.log.Info("submitting", "attempt", st.AttemptID, "providerAction", st.ProviderAction, "node", s.na.Spec.NodeID)
	sub, err := t.driver.Submit(sendCtx, t.req)
	if until, ok := s.heldBack(err); ok {
		// The provider's window is spent until its reset (or a Retry-After
		// came since the slot was taken), and the reset comes while the
		// attempt may still leave: it keeps its slot and its recorded
		// intent, and goes then, with no status written meanwhile.
		ticket.At = until
		s.r.tickets.Store(client.ObjectKeyFromObject(s.na), heldTicket{attemptID: st.AttemptID, ticket: ticket})
		s.log.V(1).Info("the provider's window holds the attempt back", "attempt", st.AttemptID, "until", until)
		return s.bound(ctrl.Result{RequeueAfter: max(until.Sub(s.now)-wakeEarly, 10*time.Millisecond)}), nil
	}
	if provider.IsNotSent(err) {
		ticket.Cancel()
	} else {
		st.Attempts++
	}
	res := s.answer(ctx, t, sub, err, false)
	if err := s.commitAnswer(ctx); err != nil {
		return ctrl.Result{}, err
	}
	return res, nil
}

// heldBack says whether a submission's error is the provider's reported
// window holding its request back (nothing sent) until a time the attempt
// may still leave at. The hold is kept in memory only: a manager that
// restarts meanwhile looks the attempt up after its recorded deadline.
// Providers that report their window (DigitalOcean) keep the whole action
// history a lookup needs to find it never went; a hold for a Retry-After,
// which any provider may send, goes back to Pending, on record.
func (s *step) heldBack(err error) (time.Time, bool) {
	pe := provider.AsError(err)
	if err == nil || !pe.NotSent || !pe.WindowSpent || pe.RetryAfter <= 0 {
		return time.Time{}, false
	}
	until := s.r.now().Add(pe.RetryAfter)
	return until, !until.After(s.latestSend())
}

// latestSend is the last moment the current attempt's request may leave
// the operator: it keeps half the request timeout for its answer before
// the recorded deadline cuts it off.
func (s *step) latestSend() time.Time {
	return s.submitDeadline().Add(-s.r.Drivers.RequestTimeout() / 2)
}

func ceilSecond(t time.Time) time.Time {
	if c := t.Truncate(time.Second); c.Before(t) {
		return c.Add(time.Second)
	}
	return t
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
		if adopted {
			msg += fmt.Sprintf("; found again after the answer to attempt %s was lost", st.AttemptID)
			s.event(corev1.EventTypeNormal, "Adopted", "Lookup", "%s", msg)
		}
		if sub.Done != nil {
			done := *sub.Done
			done.Message = msg + ": " + done.Message
			if done.State == provider.StateFailed {
				// Failed in the answer that accepted it: the same
				// provider-reported failure as one seen later.
				return s.failed(ctx, t, done)
			}
			// Accepted and done in one answer: one event tells both.
			s.learnDuration(t, outcomeOf(done))
			return s.providerDone(ctx, t, outcomeOf(done))
		}
		if !adopted {
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
			st.AttemptID, describeError(pe), t.provider.Spec.Type)
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
		wait = backoff(max(s.na.Status.Attempts, 1))
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

// submitDeadline is the latest time the current attempt's request could
// leave the operator. Attempts recorded before the deadline was kept in
// status get the bound the operator used then.
func (s *step) submitDeadline() time.Time {
	st := s.na.Status
	if st.SubmitDeadline != nil {
		return st.SubmitDeadline.Time
	}
	return st.SubmittedAt.Add(s.r.Drivers.MaxRateWait() + s.r.Drivers.RequestTimeout() + 2*time.Second)
}

// settle is how long until what the provider shows of the current attempt
// is final: its request can no longer leave, nor still be on its way.
func (s *step) settle() time.Duration {
	if s.na.Status.SubmittedAt == nil {
		return 0
	}
	return max(s.submitDeadline().Add(settleMargin).Sub(s.now), 100*time.Millisecond)
}

// blocker returns the NodeAction on the same Provider and node this one
// must wait for, or nil: one already under way (whenever it was created:
// a re-run or retry of an older NodeAction must not overtake it), else
// the earliest unfinished one created before this one. A sharded manager's
// cache holds only its shard's NodeActions: when it finds none there, it
// asks the API server about every shard's (a field selector on
// spec.nodeID, so the answer is the few on this VM).
func (s *step) blocker(ctx context.Context) (*v1alpha1.NodeAction, error) {
	list := &v1alpha1.NodeActionList{}
	if err := s.r.Client.List(ctx, list, client.InNamespace(s.na.Namespace),
		client.MatchingFields{indexNodeID: s.na.Spec.NodeID}); err != nil {
		return nil, err
	}
	earliest := s.waitFor(list)
	if earliest != nil || s.r.Shard == nil {
		return earliest, nil
	}
	if alone, err := s.onlyShardInNamespace(ctx); err != nil || alone {
		return nil, err
	}
	all := &v1alpha1.NodeActionList{}
	if err := s.r.APIReader.List(ctx, all, client.InNamespace(s.na.Namespace),
		client.MatchingFields{fieldNodeID: s.na.Spec.NodeID}); err != nil {
		return nil, err
	}
	return s.waitFor(all), nil
}

// onlyShardInNamespace tells, from the metadata of other shards'
// NodeActions, that none is in this NodeAction's namespace: the cache then
// holds every NodeAction this one can wait for. (The API server's answer
// to a field selector costs a scan of the namespace: with many NodeActions
// it was what each submission cost most.)
func (s *step) onlyShardInNamespace(ctx context.Context) (bool, error) {
	if s.r.OtherShards == nil {
		return false, nil
	}
	others := &metav1.PartialObjectMetadataList{}
	others.SetGroupVersionKind(v1alpha1.GroupVersion.WithKind("NodeActionList"))
	if err := s.r.OtherShards.List(ctx, others, client.InNamespace(s.na.Namespace), client.Limit(1)); err != nil {
		return false, err
	}
	return len(others.Items) == 0, nil
}

// waitFor is the NodeAction of list this one waits for: one under way,
// else the earliest unfinished one created before this one.
func (s *step) waitFor(list *v1alpha1.NodeActionList) *v1alpha1.NodeAction {
	var blockers []*v1alpha1.NodeAction
	for i := range list.Items {
		o := &list.Items[i]
		if o.UID == s.na.UID || o.Status.Phase.Finished() || !o.DeletionTimestamp.IsZero() {
			continue
		}
		// The same VM id through another Provider may be another account's VM.
		if o.Spec.ProviderRef.Name == s.na.Spec.ProviderRef.Name && (underWay(o) || createdBefore(o, s.na)) {
			blockers = append(blockers, o)
		}
	}
	if len(blockers) == 0 {
		return nil
	}
	sort.Slice(blockers, func(i, j int) bool {
		if a, b := underWay(blockers[i]), underWay(blockers[j]); a != b {
			return a
		}
		return createdBefore(blockers[i], blockers[j])
	})
	return blockers[0]
}

// underWay tells that o has left Pending in its current run: it may have
// cordoned the Node or sent its action, which is still going.
func underWay(o *v1alpha1.NodeAction) bool {
	p := o.Status.Phase
	return p != "" && p != v1alpha1.PhasePending && !p.Finished()
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
