package controllers

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodeaction/nodeaction-operator/api/v1alpha1"
	"github.com/nodeaction/nodeaction-operator/internal/provider"
	"github.com/nodeaction/nodeaction-operator/internal/shard"
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
		if wait := held.ticket.At.Sub(s.now); wait > max(s.r.Drivers.MaxRateWait(), wakeEarly) {
			return s.bound(ctrl.Result{RequeueAfter: wait - wakeEarly}), nil
		}
		s.r.tickets.Delete(key)
		if s.now.After(s.latestSend()) {
			// Woken too late to send within the recorded window: the
			// request never left, so a new attempt takes a new slot.
			held.ticket.Cancel()
			return s.handlePending(ctx, t)
		}
		if mine, err := s.stillMine(ctx); err != nil || !mine {
			held.ticket.Cancel()
			return ctrl.Result{}, err
		}
		return s.send(ctx, t, held.ticket)
	}
	// This process did not record the attempt (it restarted, another
	// replica led before, or the NodeAction moved here from another shard).
	// An attempt whose slot had not come when its recorder stopped never
	// left: a leader only starts once the last one has stopped, a shard
	// confirms the NodeAction is still its own when the slot comes (within
	// MaxRateWait of it, stillMine), and nobody sends before the recorded
	// time. So an attempt further out than the clock skew and that wait has
	// not left, and will not.
	if s.now.Add(clockSkew + s.r.Drivers.MaxRateWait()).Before(st.SubmittedAt.Time) {
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

// stillMine confirms, from the API server rather than the cache, that the
// NodeAction still waits for this attempt and is still this manager's
// shard's, right before the call of an attempt that waited for its slot.
// A NodeAction relabelled to another shard leaves this cache, but the cache
// may learn it late; the shard it moved to sends this attempt again only
// if the slot is further away than clockSkew + MaxRateWait (the "never
// left" rule of handleSubmitting), which a confirmation made within
// MaxRateWait of the slot excludes.
func (s *step) stillMine(ctx context.Context) (bool, error) {
	fresh := &v1alpha1.NodeAction{}
	if err := s.r.APIReader.Get(ctx, client.ObjectKeyFromObject(s.na), fresh); err != nil {
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return false, err
	}
	if fresh.UID != s.na.UID || fresh.Status.Phase != v1alpha1.PhaseSubmitting || fresh.Status.AttemptID != s.na.Status.AttemptID {
		return false, nil
	}
	if s.r.Shard != nil && !s.r.Shard.Owns(fresh.Labels) {
		s.log.Info("the NodeAction moved to another shard before its request slot; its new shard goes on from its status",
			"attempt", s.na.Status.AttemptID, "shard", fresh.Labels[shard.Label])
		return false, nil
	}
	return true, nil
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
		var claimed map[string]claim
		if claimed, err = s.claimedActions(ctx); err != nil {
			err = provider.NewRetryable(provider.Unavailable, fmt.Sprintf("cannot list the NodeActions on node %s: %v", na.Spec.NodeID, err), 0)
		} else {
			return s.judged(ctx, t, judgeLookup(found, claimed, s.now))
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
	// wait: the records may still show the attempt; look again after it.
	wait time.Duration
	// why explains an unknown outcome (neither of the above).
	why string
}

// judgeLookup decides what a lookup's candidates mean. An action another
// NodeAction (or an earlier run) has recorded as its own is not a candidate:
// each record counts out one listed action with its id (CloudsFor's ids can
// repeat). One candidate is adopted; none is "not accepted" only where the
// provider's records are complete and settled, and a wait while they may
// still change; several, or records that are not complete, cannot be told
// apart and are left to a person. It never guesses.
func judgeLookup(found provider.Found, claimed map[string]claim, now time.Time) verdict {
	var open, doubtful []provider.Submission
	var skipped []string
	countedOut := map[string]int{}
	for _, c := range found.Candidates {
		if cl, ok := claimed[c.ActionID]; ok && c.ActionID != "" {
			if cl.sure && countedOut[c.ActionID] < cl.records {
				countedOut[c.ActionID]++
				skipped = append(skipped, fmt.Sprintf("%s (NodeAction %s's)", c.ActionID, cl.owner))
				continue
			}
			if cl.sure {
				open = append(open, c)
				continue
			}
			// Recorded through another Provider: maybe another account,
			// whose action ids say nothing of this one's. Neither adopt
			// it nor count it out.
			doubtful = append(doubtful, c)
			skipped = append(skipped, fmt.Sprintf("%s (an id NodeAction %s recorded through another Provider)", c.ActionID, cl.owner))
			continue
		}
		open = append(open, c)
	}
	switch {
	case len(open) == 1 && len(doubtful) == 0:
		return verdict{adopt: &open[0]}
	case len(open)+len(doubtful) > 1:
		ids := make([]string, 0, len(open)+len(doubtful))
		for _, c := range append(open, doubtful...) {
			ids = append(ids, orUnnamed(c.ActionID))
		}
		return verdict{why: fmt.Sprintf("%d actions of this type started while the attempt could have landed (%s), and nothing tells which is this attempt's",
			len(open)+len(doubtful), strings.Join(ids, ", "))}
	case found.Complete && len(doubtful) == 0 && now.Before(found.SettlesAt):
		return verdict{wait: found.SettlesAt.Sub(now)}
	case found.Complete && len(doubtful) == 0:
		return verdict{notAccepted: true}
	default:
		why := "the provider's records do not show it, but they are not complete enough to prove it was not accepted"
		if found.Why != "" {
			why = found.Why
		}
		if len(doubtful) > 0 {
			why = "the only action of this type in the window has an id another NodeAction recorded through another Provider, which may be another account"
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
	case v.wait > 0:
		wait := min(v.wait, 5*time.Second)
		progress(s.na, v1alpha1.PhaseSubmitting, v1alpha1.ReasonRetrying,
			fmt.Sprintf("%s does not show attempt %s yet, and may still list it until %s; looking again until then",
				t.provider.Spec.Type, st.AttemptID, s.now.Add(v.wait).UTC().Format(time.RFC3339)))
		return s.bound(ctrl.Result{RequeueAfter: wait}), nil
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

// claim is a provider action id some NodeAction recorded: sure when it was
// recorded through the same Provider (same namespace and name, so the same
// account); ids through another Provider may belong to another account.
// records counts the sure records of the id: runs that each own one listed
// action with it.
type claim struct {
	owner   string
	sure    bool
	records int
}

// claimedActions maps the provider action ids that NodeActions on the same
// VM id have recorded (current runs, their failed attempts and history;
// this one's earlier runs and attempts too) to their names.
func (s *step) claimedActions(ctx context.Context) (map[string]claim, error) {
	list := &v1alpha1.NodeActionList{}
	var err error
	if s.r.Shard != nil {
		// The cache holds this shard's NodeActions only; an action another
		// shard's NodeAction recorded is someone's too. Lookups are rare:
		// ask the API server (a field selector on spec.nodeID).
		err = s.r.APIReader.List(ctx, list, client.MatchingFields{fieldNodeID: s.na.Spec.NodeID})
	} else {
		err = s.r.Client.List(ctx, list, client.MatchingFields{indexNodeID: s.na.Spec.NodeID})
	}
	if err != nil {
		return nil, err
	}
	claimed := map[string]claim{}
	add := func(o *v1alpha1.NodeAction, id string) {
		sure := o.Namespace == s.na.Namespace && o.Spec.ProviderRef.Name == s.na.Spec.ProviderRef.Name
		prev, ok := claimed[id]
		switch {
		case ok && prev.sure && sure:
			prev.records++
			claimed[id] = prev
		case ok && prev.sure:
		case sure:
			claimed[id] = claim{owner: o.Namespace + "/" + o.Name, sure: true, records: 1}
		default:
			claimed[id] = claim{owner: o.Namespace + "/" + o.Name}
		}
	}
	for i := range list.Items {
		o := &list.Items[i]
		// The current run's ids, each once: a failed attempt's id is also
		// providerActionID until the retry's intent replaces it.
		run := slices.Clone(o.Status.FailedActionIDs)
		if id := o.Status.ProviderActionID; o.UID != s.na.UID && id != "" && !slices.Contains(run, id) {
			run = append(run, id)
		}
		for _, id := range run {
			add(o, id)
		}
		for _, h := range o.Status.History {
			if h.ProviderActionID != "" {
				add(o, h.ProviderActionID)
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
