package controllers

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodeaction/nodeaction-operator/api/v1alpha1"
)

// beginRun starts a run when one is due: the first run, a new spec.runID
// after the last one ended, or a new submission a person asked for.
func (s *step) beginRun() {
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
}

// startRun begins a run: the first one, or a new spec.runID.
func (s *step) startRun() {
	st := &s.na.Status
	// Attempt ids are numbered over all runs, so none is ever reused. A
	// Node an earlier run cordoned stays the operator's to uncordon.
	var node *v1alpha1.NodeStatus
	if st.Node != nil && st.Node.Cordoned {
		node = &v1alpha1.NodeStatus{Name: st.Node.Name, Cordoned: true}
	}
	*st = v1alpha1.NodeActionStatus{RunID: s.na.Spec.RunID, StartTime: ptrTime(s.metaNow()), History: st.History, Conditions: st.Conditions,
		TotalAttempts: max(st.TotalAttempts, st.Attempts), Node: node}
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

// handleFinished handles a finished run: only TTL clean-up is left.
func (s *step) handleFinished(ctx context.Context) (ctrl.Result, error) {
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
