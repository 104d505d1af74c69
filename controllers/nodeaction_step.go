package controllers

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
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

	"github.com/nodeaction/nodeaction-operator/api/v1alpha1"
	"github.com/nodeaction/nodeaction-operator/internal/metrics"
	"github.com/nodeaction/nodeaction-operator/internal/provider"
)

// step is one reconcile of one NodeAction.
type step struct {
	r      *NodeActionReconciler
	na     *v1alpha1.NodeAction
	before *v1alpha1.NodeAction
	now    time.Time
	// ptype is the Provider's type once known, for metrics.
	ptype string
	log   logr.Logger
	// effects (events, metrics) wait for the status write that records
	// what they tell: a write that fails is retried by a new reconcile,
	// which would tell it again.
	effects []func()
}

// target is what a step acts on: the Provider, its driver and the request.
type target struct {
	provider *v1alpha1.Provider
	driver   provider.Driver
	req      provider.Request
}

// commit writes status if it changed, failing on a stale object. Every
// reconcile judges the whole status against the current spec, so the
// conditions carry the current generation too (kubectl wait checks it).
func (s *step) commit(ctx context.Context) error {
	s.na.Status.ObservedGeneration = s.na.Generation
	for i := range s.na.Status.Conditions {
		s.na.Status.Conditions[i].ObservedGeneration = s.na.Generation
	}
	if !equality.Semantic.DeepEqual(s.before.Status, s.na.Status) {
		patch := client.MergeFromWithOptions(s.before, client.MergeFromWithOptimisticLock{})
		if err := s.r.Client.Status().Patch(ctx, s.na, patch); err != nil {
			if !apierrors.IsConflict(err) {
				s.effects = nil // the next reconcile decides again, and tells again
			}
			return err
		}
		s.before = s.na.DeepCopy()
	}
	for _, f := range s.effects {
		f()
	}
	s.effects = nil
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

// event is emitted once the status write that records it lands.
func (s *step) event(eventType, reason, action, format string, args ...any) {
	if s.r.Recorder == nil {
		return
	}
	obj := s.na
	note := cut(fmt.Sprintf(format, args...), maxNote)
	s.effects = append(s.effects, func() { s.r.Recorder.Eventf(obj, nil, eventType, reason, action, "%s", note) })
}

func (s *step) metaNow() metav1.Time { return metav1.NewTime(s.now) }

func ptrTime(t metav1.Time) *metav1.Time { return &t }

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
	s.end(failure(v1alpha1.ReasonDeadlineExceeded, msg))
	return ctrl.Result{}, true
}

// deadlineAt is when activeDeadlineSeconds run out. Status times are kept in
// whole seconds (truncated), so a second is added: the deadline may be
// reported up to a second late, never early.
func (s *step) deadlineAt() time.Time {
	// Capped (objects admitted before the CRD's maximum): a larger value
	// would overflow time.Duration and pass for a deadline long gone.
	secs := min(*s.na.Spec.ActiveDeadlineSeconds, maxDeadlineSeconds)
	return s.na.Status.StartTime.Add(time.Duration(secs)*time.Second + time.Second)
}

// maxDeadlineSeconds is the CRD's maximum of activeDeadlineSeconds.
const maxDeadlineSeconds = 30 * 24 * 3600

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
		// Each cause has its own reason. One that cannot change unless the
		// Provider or its Secret changes stalls until it does; the Provider
		// is watched, the Secret is read again at every try.
		pe := provider.AsError(err)
		msg := fmt.Sprintf("Provider %q cannot be used: %s", p.Name, pe.Message)
		if pe.Kind == provider.Terminal {
			stall(na, reasonFor(pe.Class), msg+"; waiting for the Provider or its credentials Secret "+
				fmt.Sprintf("%q to change", p.Spec.CredentialsSecretRef.Name))
		} else {
			progress(na, na.Status.Phase, reasonFor(pe.Class), msg)
		}
		return target{}, false, ctrl.Result{RequeueAfter: waitForConfig}
	}
	caps := d.Capabilities()
	if na.Spec.Escalation != nil && caps.HardPowerOff == "" {
		// Refused before anything is sent: the escalation could only send
		// the same graceful request again.
		s.end(failure(v1alpha1.ReasonUnsupportedAction, fmt.Sprintf(
			"spec.escalation follows the shutdown with a hard power off, and %s has none (its shutdown is all it has to turn a VM off): remove spec.escalation",
			p.Spec.Type)))
		return target{}, false, ctrl.Result{}
	}
	action := na.Spec.Action
	if na.Status.EscalatedAt != nil {
		action = caps.HardPowerOff
	}
	req, err := provider.Resolve(caps, na.Spec.NodeID, action, na.Spec.Parameters)
	if err == nil {
		err = d.Validate(req)
	}
	if err != nil {
		pe := provider.AsError(err)
		s.end(failure(reasonFor(pe.Class), fmt.Sprintf("%s: %s", p.Spec.Type, pe.Message)))
		return target{}, false, ctrl.Result{}
	}
	return target{provider: p, driver: d, req: req}, true, ctrl.Result{}
}

// outcome is how a run ends.
type outcome struct {
	succeeded bool
	// reason is the Ready (and, on failure, Stalled) condition's reason.
	reason  string
	message string
	// at is when the provider says the action ended; zero when it does not say.
	at time.Time
}

func failure(reason, msg string) outcome { return outcome{reason: reason, message: msg} }

// outcomeOf reads a driver's word on a finished action.
func outcomeOf(as provider.ActionStatus) outcome {
	return outcome{succeeded: as.State == provider.StateSucceeded, reason: reasonFor(as.Class), message: as.Message, at: as.CompletedAt}
}

// completedAt is the provider's end time where it gives a believable one
// (not after our own clock allows, nor before the attempt), else ours.
func (s *step) completedAt(o outcome) metav1.Time {
	at := o.at
	if at.IsZero() || at.After(s.now.Add(clockSkew)) {
		return s.metaNow()
	}
	if sub := s.na.Status.SubmittedAt; sub != nil && at.Before(sub.Add(-clockSkew)) {
		return s.metaNow()
	}
	return metav1.NewTime(at)
}

// end ends the run, well or badly, and counts it. Every terminal
// transition goes through here.
func (s *step) end(o outcome) {
	na := s.na
	now := s.completedAt(o)
	phase := v1alpha1.PhaseFailed
	if o.succeeded {
		phase = v1alpha1.PhaseSucceeded
	}
	if ns := na.Status.Node; !o.succeeded && ns != nil && ns.Cordoned && ns.Name != "" && !strings.Contains(o.message, uncordonHint(ns.Name)) {
		// Every way a run can fail after its cordon leaves the Node
		// cordoned: say so, and how to undo it, in the one place runs end.
		o.message += "; " + uncordonHint(ns.Name)
	}
	s.log.Info("finished", "phase", phase, "reason", o.reason, "message", o.message)
	if o.succeeded {
		succeed(na, o.reason, o.message, now)
		s.event(corev1.EventTypeNormal, o.reason, "Complete", "%s", o.message)
	} else {
		fail(na, o.reason, o.message, now)
		s.event(corev1.EventTypeWarning, o.reason, "Fail", "%s", o.message)
	}
	s.r.polls.Delete(client.ObjectKeyFromObject(na))
	typ, action := s.providerType(), na.Spec.Action
	// The duration is measured on the operator's clock, which is finer
	// than the whole seconds providers report.
	took := time.Duration(-1)
	if sub := na.Status.SubmittedAt; sub != nil {
		took = max(s.now.Sub(sub.Time), 0)
	}
	s.effects = append(s.effects, func() {
		metrics.ActionsTotal.WithLabelValues(typ, action, o.reason).Inc()
		if took >= 0 {
			metrics.ActionDuration.WithLabelValues(typ, action, string(phase)).Observe(took.Seconds())
		}
	})
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
	var active bool
	switch na.Status.Phase {
	case v1alpha1.PhaseDraining, v1alpha1.PhaseSubmitting, v1alpha1.PhaseRunning, v1alpha1.PhaseWaitingForNode:
		active = true
	}
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
