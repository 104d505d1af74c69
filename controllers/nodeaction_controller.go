package controllers

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	"github.com/nodeaction/nodeaction-operator/api/v1alpha1"
	"github.com/nodeaction/nodeaction-operator/internal/drivercache"
	"github.com/nodeaction/nodeaction-operator/internal/metrics"
	"github.com/nodeaction/nodeaction-operator/internal/provider"
)

// Poll and retry timing.
const (
	defaultPollInterval = 2 * time.Second
	maxPollInterval     = 30 * time.Second
	retryBase           = 2 * time.Second
	maxRetry            = 5 * time.Minute
	waitForConfig       = 30 * time.Second
	waitForNode         = 30 * time.Second
	historyLimit        = 5
)

// NodeActionReconciler runs each NodeAction's action once and follows it.
//
// One reconcile reads the object, decides one step and writes status once at
// the end. Submission is the exception: it records the intent (with an
// optimistic lock, so a stale view can never submit), makes the one provider
// call, and records the answer.
type NodeActionReconciler struct {
	Client client.Client
	// APIReader reads around the cache, to confirm a submission really is
	// unanswered before asking the provider about it.
	APIReader client.Reader
	Drivers   *drivercache.Cache
	Recorder  recorder.EventRecorder

	inflight inflightTracker
	polls    sync.Map // types.NamespacedName → time.Time of the next poll
	fleet    fleetPoller
}

// +kubebuilder:rbac:groups=compute.nodeaction.dev,resources=nodeactions,verbs=get;list;watch;delete
// +kubebuilder:rbac:groups=compute.nodeaction.dev,resources=nodeactions/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=compute.nodeaction.dev,resources=providers,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile moves one NodeAction one step.
func (r *NodeActionReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	na := &v1alpha1.NodeAction{}
	if err := r.Client.Get(ctx, req.NamespacedName, na); err != nil {
		if apierrors.IsNotFound(err) {
			r.forget(req.NamespacedName)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	if !na.DeletionTimestamp.IsZero() {
		r.forget(req.NamespacedName)
		return ctrl.Result{}, nil
	}
	s := &step{r: r, na: na, before: na.DeepCopy(), now: time.Now(), log: log.FromContext(ctx)}
	result, err := s.run(ctx)
	if err == nil {
		err = s.commit(ctx)
	}
	if err == nil && s.na.Status.Phase.Finished() && result.RequeueAfter == 0 {
		result = s.ttlRequeue()
	}
	r.inflight.observe(s.na)
	switch {
	case err == nil:
		return result, nil
	case apierrors.IsConflict(err):
		// Someone wrote the object since we read it (often our own last
		// write, not yet in the cache). Look again shortly.
		return ctrl.Result{RequeueAfter: time.Second}, nil
	case apierrors.IsNotFound(err):
		return ctrl.Result{}, nil
	default:
		return ctrl.Result{}, err
	}
}

// forget drops what is kept in memory for a deleted NodeAction.
func (r *NodeActionReconciler) forget(key types.NamespacedName) {
	r.inflight.forget(key)
	r.polls.Delete(key)
}

// step is one reconcile of one NodeAction.
type step struct {
	r      *NodeActionReconciler
	na     *v1alpha1.NodeAction
	before *v1alpha1.NodeAction
	now    time.Time
	// ptype is the Provider's type once known, for metrics.
	ptype string
	log   logr.Logger
}

// commit writes status if it changed, failing on a stale object. Every
// reconcile judges the whole status against the current spec, so the
// conditions carry the current generation too (kubectl wait checks it).
func (s *step) commit(ctx context.Context) error {
	s.na.Status.ObservedGeneration = s.na.Generation
	for i := range s.na.Status.Conditions {
		s.na.Status.Conditions[i].ObservedGeneration = s.na.Generation
	}
	if equality.Semantic.DeepEqual(s.before.Status, s.na.Status) {
		return nil
	}
	patch := client.MergeFromWithOptions(s.before, client.MergeFromWithOptimisticLock{})
	if err := s.r.Client.Status().Patch(ctx, s.na, patch); err != nil {
		return err
	}
	s.before = s.na.DeepCopy()
	return nil
}

// commitAnswer records a provider's answer. The answer must not be lost
// to a conflict caused by an unrelated write (a label, an annotation), so on
// conflict it re-reads the object and, if it still waits for this attempt's
// answer, writes again.
func (s *step) commitAnswer(ctx context.Context) error {
	err := s.commit(ctx)
	for i := 0; i < 3 && apierrors.IsConflict(err); i++ {
		latest := &v1alpha1.NodeAction{}
		if gerr := s.r.APIReader.Get(ctx, client.ObjectKeyFromObject(s.na), latest); gerr != nil {
			return gerr
		}
		if latest.Status.AttemptID != s.before.Status.AttemptID || latest.Status.Phase != s.before.Status.Phase {
			return err // someone else moved it on; do not overwrite
		}
		status := s.na.Status
		s.before = latest.DeepCopy()
		s.na = latest
		s.na.Status = status
		err = s.commit(ctx)
	}
	return err
}

func (s *step) event(eventType, reason, action, format string, args ...any) {
	if s.r.Recorder != nil {
		s.r.Recorder.Eventf(s.na, nil, eventType, reason, action, format, args...)
	}
}

func (s *step) metaNow() metav1.Time { return metav1.NewTime(s.now) }

// run decides and takes one step. Its error is only ever a failed status
// write; everything the provider says ends up in status.
func (s *step) run(ctx context.Context) (ctrl.Result, error) {
	na := s.na
	switch {
	case na.Status.Phase == "":
		s.startRun()
	case na.Status.Phase.Finished() && na.Spec.RunID != na.Status.RunID:
		s.archiveRun()
		s.startRun()
	case s.retryRequested():
		s.event(corev1.EventTypeNormal, "RetryRequested", "Retry", "submission retry requested for attempt %s", na.Status.AttemptID)
		na.Status.CompletionTime = nil
		na.Status.StartTime = ptrTime(s.metaNow())
		progress(na, v1alpha1.PhasePending, v1alpha1.ReasonPending, "retry requested by annotation; submitting again")
	}
	if na.Status.Phase.Finished() {
		return s.finished(ctx)
	}
	if res, over := s.deadline(); over {
		return s.nextRun(res), nil
	}
	res, err := s.act(ctx)
	if err != nil {
		return res, err
	}
	return s.nextRun(res), nil
}

// nextRun starts the next run at once when spec.runID changed while the
// run that just ended was going, so status never shows the new generation
// as done with the old run.
func (s *step) nextRun(res ctrl.Result) ctrl.Result {
	if !s.na.Status.Phase.Finished() || s.na.Spec.RunID == s.na.Status.RunID {
		return res
	}
	s.archiveRun()
	s.startRun()
	return ctrl.Result{RequeueAfter: 100 * time.Millisecond}
}

// act takes the step the phase calls for.
func (s *step) act(ctx context.Context) (ctrl.Result, error) {
	target, ok, res := s.prepare(ctx)
	if !ok {
		return s.bound(res), nil
	}
	switch s.na.Status.Phase {
	case v1alpha1.PhaseSubmitting:
		return s.recover(ctx, target)
	case v1alpha1.PhaseRunning:
		return s.follow(ctx, target)
	default:
		return s.submit(ctx, target)
	}
}

func ptrTime(t metav1.Time) *metav1.Time { return &t }

// startRun begins a run: the first one, or a new spec.runID.
func (s *step) startRun() {
	st := &s.na.Status
	history := st.History
	conds := st.Conditions
	*st = v1alpha1.NodeActionStatus{RunID: s.na.Spec.RunID, StartTime: ptrTime(s.metaNow()), History: history, Conditions: conds}
	removeCondition(s.na, v1alpha1.ConditionSubmitted)
	progress(s.na, v1alpha1.PhasePending, v1alpha1.ReasonPending, "waiting to submit")
}

// archiveRun keeps the outcome of the run that just ended in history.
func (s *step) archiveRun() {
	st := &s.na.Status
	rec := v1alpha1.RunRecord{RunID: st.RunID, Phase: st.Phase, Reason: readyReason(s.na),
		ProviderActionID: st.ProviderActionID, CompletionTime: st.CompletionTime}
	st.History = append([]v1alpha1.RunRecord{rec}, st.History...)
	if len(st.History) > historyLimit {
		st.History = st.History[:historyLimit]
	}
	s.event(corev1.EventTypeNormal, "NewRun", "Run", "spec.runID changed from %q to %q: starting a new run", st.RunID, s.na.Spec.RunID)
}

// retryRequested: a person checked the VM after SubmissionUnknown and asked
// for a new submission by annotating with the attempt id.
func (s *step) retryRequested() bool {
	st := s.na.Status
	return st.Phase == v1alpha1.PhaseFailed && readyReason(s.na) == v1alpha1.ReasonSubmissionUnknown &&
		st.AttemptID != "" && s.na.Annotations[v1alpha1.AnnotationRetrySubmission] == st.AttemptID
}

// finished handles a finished run: only TTL clean-up is left.
func (s *step) finished(ctx context.Context) (ctrl.Result, error) {
	ttl := s.na.Spec.TTLSecondsAfterFinished
	if ttl == nil || s.na.Status.CompletionTime == nil {
		return ctrl.Result{}, nil
	}
	at := s.na.Status.CompletionTime.Add(time.Duration(*ttl) * time.Second)
	if wait := at.Sub(s.now); wait > 0 {
		return ctrl.Result{RequeueAfter: wait}, nil
	}
	// Flush status first, then delete exactly this object.
	if err := s.commit(ctx); err != nil {
		return ctrl.Result{}, err
	}
	uid := s.na.UID
	err := s.r.Client.Delete(ctx, s.na, client.Preconditions{UID: &uid}, client.PropagationPolicy(metav1.DeletePropagationBackground))
	if err != nil && !apierrors.IsNotFound(err) {
		return ctrl.Result{}, err
	}
	s.log.Info("deleted after ttlSecondsAfterFinished", "ttl", *ttl)
	return ctrl.Result{}, nil
}

// ttlRequeue comes back when a finished NodeAction's TTL runs out.
func (s *step) ttlRequeue() ctrl.Result {
	ttl := s.na.Spec.TTLSecondsAfterFinished
	if ttl == nil || s.na.Status.CompletionTime == nil || !s.na.DeletionTimestamp.IsZero() {
		return ctrl.Result{}
	}
	wait := s.na.Status.CompletionTime.Add(time.Duration(*ttl)*time.Second).Sub(s.now) + time.Second
	return ctrl.Result{RequeueAfter: max(wait, 100*time.Millisecond)}
}

// deadline fails the run once activeDeadlineSeconds have passed.
func (s *step) deadline() (ctrl.Result, bool) {
	d := s.na.Spec.ActiveDeadlineSeconds
	if d == nil || s.na.Status.StartTime == nil {
		return ctrl.Result{}, false
	}
	end := s.deadlineAt()
	if s.now.Before(end) {
		return ctrl.Result{}, false
	}
	msg := fmt.Sprintf("activeDeadlineSeconds (%d) passed in phase %s", *d, s.na.Status.Phase)
	switch s.na.Status.Phase {
	case v1alpha1.PhaseRunning:
		msg += fmt.Sprintf("; stopped following provider action %q, which may still complete", s.na.Status.ProviderActionID)
	case v1alpha1.PhaseSubmitting:
		msg += fmt.Sprintf("; the provider may have accepted attempt %s", s.na.Status.AttemptID)
	}
	if last := s.na.Status.Message; last != "" {
		msg += "; last word: " + last
	}
	s.finish(provider.ActionStatus{State: provider.StateFailed, Reason: v1alpha1.ReasonDeadlineExceeded, Message: msg})
	return ctrl.Result{}, true
}

// deadlineAt is when activeDeadlineSeconds run out. Status times are kept in
// whole seconds (truncated), so a second is added: the deadline may be
// reported up to a second late, never early.
func (s *step) deadlineAt() time.Time {
	return s.na.Status.StartTime.Add(time.Duration(*s.na.Spec.ActiveDeadlineSeconds)*time.Second + time.Second)
}

// bound keeps a requeue within the deadline, so the deadline is reported on time.
func (s *step) bound(res ctrl.Result) ctrl.Result {
	d := s.na.Spec.ActiveDeadlineSeconds
	if d == nil || s.na.Status.StartTime == nil || res.RequeueAfter == 0 {
		return res
	}
	left := s.deadlineAt().Sub(s.now) + 100*time.Millisecond
	if left < res.RequeueAfter {
		res.RequeueAfter = max(left, 100*time.Millisecond)
	}
	return res
}

// target is what a step acts on: the Provider, its driver and the request.
type target struct {
	provider *v1alpha1.Provider
	driver   provider.Driver
	req      provider.Request
}

// prepare finds the Provider and its driver and resolves the action. It
// returns ok=false with a result when the step ends here (waiting for
// configuration, or a request that can never run).
func (s *step) prepare(ctx context.Context) (target, bool, ctrl.Result) {
	na := s.na
	p := &v1alpha1.Provider{}
	key := types.NamespacedName{Namespace: na.Namespace, Name: na.Spec.ProviderRef.Name}
	if err := s.r.Client.Get(ctx, key, p); err != nil {
		msg := fmt.Sprintf("Provider %q not found in namespace %q", key.Name, key.Namespace)
		if !apierrors.IsNotFound(err) {
			msg = fmt.Sprintf("cannot read Provider %q: %s", key.Name, apierrors.ReasonForError(err))
		}
		progress(na, na.Status.Phase, v1alpha1.ReasonProviderNotFound, msg)
		return target{}, false, ctrl.Result{RequeueAfter: waitForConfig}
	}
	s.ptype = string(p.Spec.Type)
	d, err := s.r.Drivers.Driver(ctx, p)
	if err != nil {
		pe := provider.AsError(err)
		progress(na, na.Status.Phase, v1alpha1.ReasonCredentialsError, fmt.Sprintf("Provider %q cannot be used: %s", p.Name, pe.Message))
		return target{}, false, ctrl.Result{RequeueAfter: waitForConfig}
	}
	action := na.Spec.Action
	if na.Status.EscalatedAt != nil {
		action = "power_off"
	}
	req, err := provider.Resolve(d.Capabilities(), na.Spec.NodeID, action, na.Spec.Parameters)
	if err == nil {
		err = d.Validate(req)
	}
	if err != nil {
		pe := provider.AsError(err)
		s.finish(provider.ActionStatus{State: provider.StateFailed, Reason: pe.Reason, Message: fmt.Sprintf("%s: %s", p.Spec.Type, pe.Message)})
		return target{}, false, ctrl.Result{}
	}
	return target{provider: p, driver: d, req: req}, true, ctrl.Result{}
}

// submit records the intent, then makes the one provider call.
func (s *step) submit(ctx context.Context, t target) (ctrl.Result, error) {
	na := s.na
	if blocker := s.blocker(ctx); blocker != nil {
		msg := fmt.Sprintf("waiting for NodeAction %q (%s) on the same node: actions on one node run in creation order",
			blocker.Name, phaseOrPending(blocker.Status.Phase))
		if readyReason(na) != v1alpha1.ReasonNodeBusy {
			s.event(corev1.EventTypeNormal, v1alpha1.ReasonNodeBusy, "Wait", "%s", msg)
		}
		progress(na, v1alpha1.PhasePending, v1alpha1.ReasonNodeBusy, msg)
		return s.bound(ctrl.Result{RequeueAfter: waitForNode}), nil
	}

	st := &na.Status
	st.Attempts++
	st.AttemptID = fmt.Sprintf("%s-%d", shortUID(na.UID), st.Attempts)
	st.SubmittedAt = ptrTime(s.metaNow())
	st.ProviderAction = provider.Describe(t.req)
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
			done := *sub.Done
			done.Message = msg + ": " + done.Message
			s.finish(done)
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
		if pe.Reason == v1alpha1.ReasonAuthFailed && s.r.Drivers.CredentialsChanged(ctx, t.provider) {
			// The Secret was rotated since the driver was built: nothing
			// happened at the provider, so try once more with the new one.
			s.r.Drivers.Invalidate(t.provider)
			return s.retryLater(t, &provider.Error{Kind: provider.Retryable, Reason: v1alpha1.ReasonCredentialsError,
				Message: "credentials were refused and have changed since; retrying with the new ones", RetryAfter: time.Second})
		}
		s.finish(provider.ActionStatus{State: provider.StateFailed, Reason: pe.Reason,
			Message: fmt.Sprintf("%s refused %s: %s", t.provider.Spec.Type, st.ProviderAction, describeError(pe))})
		return ctrl.Result{}
	}
}

// retryLater goes back to Pending after the provider did not act on the call.
func (s *step) retryLater(t target, pe *provider.Error) ctrl.Result {
	wait := pe.RetryAfter
	if wait <= 0 {
		wait = backoff(s.na.Status.Attempts)
	}
	msg := fmt.Sprintf("%s; retrying in %s", describeError(pe), wait.Round(100*time.Millisecond))
	if pe.Reason == v1alpha1.ReasonRateLimited {
		metrics.RateLimitWait.WithLabelValues(s.na.Namespace, t.provider.Name).Add(wait.Seconds())
	}
	s.event(corev1.EventTypeWarning, pe.Reason, "Retry", "%s", msg)
	progress(s.na, v1alpha1.PhasePending, pe.Reason, msg)
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

// recover handles a submission without an answer: the process died during
// the call, or the answer was lost. It asks the provider before any new call.
func (s *step) recover(ctx context.Context, t target) (ctrl.Result, error) {
	na := s.na
	st := &na.Status
	if st.SubmittedAt == nil || st.AttemptID == "" {
		progress(na, v1alpha1.PhasePending, v1alpha1.ReasonPending, "waiting to submit")
		return s.submit(ctx, t)
	}
	// submittedAt is truncated to the second: wait a second more.
	if left := st.SubmittedAt.Add(s.r.Drivers.SettleTime() + time.Second).Sub(s.now); left > 0 {
		return s.bound(ctrl.Result{RequeueAfter: left}), nil
	}
	// The cache may be behind our own writes: confirm before asking.
	fresh := &v1alpha1.NodeAction{}
	if err := s.r.APIReader.Get(ctx, client.ObjectKeyFromObject(na), fresh); err != nil {
		return ctrl.Result{}, err
	}
	if fresh.Status.Phase != v1alpha1.PhaseSubmitting || fresh.Status.AttemptID != st.AttemptID {
		return ctrl.Result{RequeueAfter: time.Second}, nil
	}

	found, err := t.driver.Lookup(ctx, t.req, st.SubmittedAt.Time)
	switch pe := provider.AsError(err); {
	case err == nil && found != nil:
		res := s.answer(ctx, t, *found, nil, true)
		if err := s.commitAnswer(ctx); err != nil {
			return ctrl.Result{}, err
		}
		return res, nil
	case err == nil:
		s.event(corev1.EventTypeNormal, "NotAccepted", "Lookup",
			"%s shows attempt %s was not accepted; submitting again", t.provider.Spec.Type, st.AttemptID)
		return s.submit(ctx, t)
	case pe.Reason == v1alpha1.ReasonSubmissionUnknown:
		msg := fmt.Sprintf("cannot tell whether attempt %s reached %s: %s. Check the VM; to submit again, run: kubectl annotate nodeaction %s -n %s %s=%s",
			st.AttemptID, t.provider.Spec.Type, pe.Message, na.Name, na.Namespace, v1alpha1.AnnotationRetrySubmission, st.AttemptID)
		s.finish(provider.ActionStatus{State: provider.StateFailed, Reason: v1alpha1.ReasonSubmissionUnknown, Message: msg})
		return ctrl.Result{}, nil
	case pe.Kind == provider.Terminal:
		s.finish(provider.ActionStatus{State: provider.StateFailed, Reason: pe.Reason,
			Message: fmt.Sprintf("checking attempt %s with %s: %s", st.AttemptID, t.provider.Spec.Type, describeError(pe))})
		return ctrl.Result{}, nil
	default:
		wait := pe.RetryAfter
		if wait <= 0 {
			wait = backoff(st.Attempts)
		}
		progress(na, v1alpha1.PhaseSubmitting, pe.Reason,
			fmt.Sprintf("checking attempt %s with %s failed (%s); trying again in %s", st.AttemptID, t.provider.Spec.Type, describeError(pe), wait.Round(100*time.Millisecond)))
		return s.bound(ctrl.Result{RequeueAfter: wait}), nil
	}
}

// follow polls a running action until the provider reports its end.
func (s *step) follow(ctx context.Context, t target) (ctrl.Result, error) {
	na := s.na
	st := &na.Status
	if next, ok := s.r.polls.Load(client.ObjectKeyFromObject(na)); ok {
		if wait := next.(time.Time).Sub(s.now); wait > 0 {
			return s.bound(ctrl.Result{RequeueAfter: wait}), nil
		}
	}
	sub := provider.Submission{Request: t.req, ActionID: st.ProviderActionID}
	switch {
	case st.ProviderStartTime != nil:
		sub.StartedAt = st.ProviderStartTime.Time
	case st.SubmittedAt != nil:
		sub.StartedAt = st.SubmittedAt.Time
	}
	as, err := s.r.fleet.status(ctx, t.provider.UID, t.driver, sub, s.now)
	if err != nil {
		pe := provider.AsError(err)
		if pe.Kind == provider.Terminal {
			s.finish(provider.ActionStatus{State: provider.StateFailed, Reason: pe.Reason,
				Message: fmt.Sprintf("following %s: %s", st.ProviderAction, describeError(pe))})
			return ctrl.Result{}, nil
		}
		wait := max(pe.RetryAfter, s.schedulePoll(t))
		progress(na, v1alpha1.PhaseRunning, pe.Reason, fmt.Sprintf("reading the action's status failed (%s); trying again", describeError(pe)))
		return s.bound(ctrl.Result{RequeueAfter: wait}), nil
	}
	switch as.State {
	case provider.StateSucceeded:
		s.finish(as)
		return ctrl.Result{}, nil
	case provider.StateFailed:
		return s.failed(ctx, t, as), nil
	}
	reason := as.Reason
	if reason == "" {
		reason = v1alpha1.ReasonInProgress
	}
	if s.escalationDue() {
		return s.escalate(ctx, t)
	}
	progress(na, v1alpha1.PhaseRunning, reason, as.Message)
	return s.bound(ctrl.Result{RequeueAfter: s.schedulePoll(t)}), nil
}

// failed handles a provider-reported failure: retry within backoffLimit
// when the action is safe to repeat, else fail.
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
		wait := backoff(st.FailedAttempts)
		msg := fmt.Sprintf("%s; retrying (%d of %d) in %s", as.Message, st.FailedAttempts, limit, wait.Round(100*time.Millisecond))
		s.event(corev1.EventTypeWarning, v1alpha1.ReasonRetrying, "Retry", "%s", msg)
		removeCondition(na, v1alpha1.ConditionSubmitted)
		progress(na, v1alpha1.PhasePending, v1alpha1.ReasonRetrying, msg)
		return s.bound(ctrl.Result{RequeueAfter: wait})
	}
	if limit > 0 && st.FailedAttempts >= limit {
		as.Reason = v1alpha1.ReasonBackoffLimitExceeded
		as.Message = fmt.Sprintf("%s (backoffLimit %d reached)", as.Message, limit)
	} else if limit > 0 && !repeatable {
		as.Message += fmt.Sprintf(" (not retried: %s is not safe to repeat)", t.req.Action)
	}
	s.finish(as)
	return ctrl.Result{}
}

// escalationDue: a shutdown that has not powered the VM off in time.
func (s *step) escalationDue() bool {
	esc := s.na.Spec.Escalation
	st := s.na.Status
	return esc != nil && st.EscalatedAt == nil && st.SubmittedAt != nil &&
		!s.now.Before(st.SubmittedAt.Add(time.Duration(esc.PowerOffAfterSeconds)*time.Second))
}

// escalate follows the shutdown with power_off, through the same
// record-intent-then-call path as the first submission.
func (s *step) escalate(ctx context.Context, t target) (ctrl.Result, error) {
	na := s.na
	req, err := provider.Resolve(t.driver.Capabilities(), na.Spec.NodeID, "power_off", nil)
	if err != nil {
		msg := fmt.Sprintf("shutdown has not powered the VM off after %ds, and %s has no hard power_off to escalate to",
			na.Spec.Escalation.PowerOffAfterSeconds, t.provider.Spec.Type)
		na.Status.EscalatedAt = ptrTime(s.metaNow())
		progress(na, v1alpha1.PhaseRunning, v1alpha1.ReasonInProgress, msg)
		return s.bound(ctrl.Result{RequeueAfter: s.schedulePoll(t)}), nil
	}
	na.Status.EscalatedAt = ptrTime(s.metaNow())
	s.event(corev1.EventTypeWarning, v1alpha1.ReasonEscalated, "Escalate",
		"shutdown has not powered the VM off after %ds; sending power_off", na.Spec.Escalation.PowerOffAfterSeconds)
	t.req = req
	return s.submit(ctx, t)
}

// finish ends the run and counts it.
func (s *step) finish(as provider.ActionStatus) {
	na := s.na
	now := s.metaNow()
	s.log.Info("finished", "phase", map[bool]string{true: "Succeeded", false: "Failed"}[as.State == provider.StateSucceeded],
		"reason", as.Reason, "message", as.Message)
	if as.State == provider.StateSucceeded {
		succeed(na, as.Reason, as.Message, now)
		s.event(corev1.EventTypeNormal, as.Reason, "Complete", "%s", as.Message)
	} else {
		fail(na, as.Reason, as.Message, now)
		s.event(corev1.EventTypeWarning, as.Reason, "Fail", "%s", as.Message)
	}
	s.r.polls.Delete(client.ObjectKeyFromObject(na))
	typ := s.providerType()
	metrics.ActionsTotal.WithLabelValues(typ, na.Spec.Action, as.Reason).Inc()
	if sub := na.Status.SubmittedAt; sub != nil {
		metrics.ActionDuration.WithLabelValues(typ, na.Spec.Action, string(na.Status.Phase)).Observe(s.now.Sub(sub.Time).Seconds())
	}
}

// providerType is the Provider's type, for metrics ("" if it is gone).
func (s *step) providerType() string {
	if s.ptype == "" {
		p := &v1alpha1.Provider{}
		key := types.NamespacedName{Namespace: s.na.Namespace, Name: s.na.Spec.ProviderRef.Name}
		if err := s.r.Client.Get(context.Background(), key, p); err == nil {
			s.ptype = string(p.Spec.Type)
		}
	}
	return s.ptype
}

// schedulePoll picks the next poll: fast at first, backing off as the
// action ages (half its age so far), between the Provider's pollInterval and 30s.
func (s *step) schedulePoll(t target) time.Duration {
	base := defaultPollInterval
	if pi := t.provider.Spec.PollInterval; pi != nil && pi.Duration > 0 {
		base = pi.Duration
	}
	interval := base
	if sub := s.na.Status.SubmittedAt; sub != nil {
		interval = min(max(s.now.Sub(sub.Time)/2, base), max(maxPollInterval, base))
	}
	s.r.polls.Store(client.ObjectKeyFromObject(s.na), s.now.Add(interval))
	return interval
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

// backoff is capped exponential with ±20% jitter.
func backoff(n int32) time.Duration {
	d := retryBase
	for i := int32(1); i < n && d < maxRetry; i++ {
		d *= 2
	}
	d = min(d, maxRetry)
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

func shortUID(uid types.UID) string {
	s := string(uid)
	if len(s) > 8 {
		return s[:8]
	}
	return s
}

func describeError(pe *provider.Error) string {
	if pe.StatusCode != 0 {
		return fmt.Sprintf("%s (HTTP %d)", pe.Message, pe.StatusCode)
	}
	return pe.Message
}

// inflightTracker feeds the in-flight gauge.
type inflightTracker struct {
	mu  sync.Mutex
	set map[types.NamespacedName]string // → provider name
}

func (t *inflightTracker) observe(na *v1alpha1.NodeAction) {
	key := types.NamespacedName{Namespace: na.Namespace, Name: na.Name}
	active := na.Status.Phase == v1alpha1.PhaseSubmitting || na.Status.Phase == v1alpha1.PhaseRunning
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.set == nil {
		t.set = map[types.NamespacedName]string{}
	}
	prev, had := t.set[key]
	switch {
	case active && !had:
		t.set[key] = na.Spec.ProviderRef.Name
		metrics.InFlight.WithLabelValues(na.Namespace, na.Spec.ProviderRef.Name).Inc()
	case !active && had:
		delete(t.set, key)
		metrics.InFlight.WithLabelValues(na.Namespace, prev).Dec()
	}
}

func (t *inflightTracker) forget(key types.NamespacedName) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if prev, had := t.set[key]; had {
		delete(t.set, key)
		metrics.InFlight.WithLabelValues(key.Namespace, prev).Dec()
	}
}
