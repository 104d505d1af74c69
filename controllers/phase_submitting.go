package controllers

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodeaction/nodeaction-operator/api/v1alpha1"
	"github.com/nodeaction/nodeaction-operator/internal/provider"
)

// handleSubmitting handles a submission without an answer: the process died
// during the call, or the answer was lost. It asks the provider before any
// new call.
func (s *step) handleSubmitting(ctx context.Context, t target) (ctrl.Result, error) {
	na := s.na
	st := &na.Status
	if st.SubmittedAt == nil || st.AttemptID == "" {
		progress(na, v1alpha1.PhasePending, v1alpha1.ReasonPending, "waiting to submit")
		return s.handlePending(ctx, t)
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
		return s.handlePending(ctx, t)
	case pe.Class == provider.SubmissionUnknown:
		msg := fmt.Sprintf("cannot tell whether attempt %s reached %s: %s. Check the VM; to submit again, run: kubectl annotate nodeaction %s -n %s %s=%s",
			st.AttemptID, t.provider.Spec.Type, pe.Message, na.Name, na.Namespace, v1alpha1.AnnotationRetrySubmission, st.AttemptID)
		s.end(failure(v1alpha1.ReasonSubmissionUnknown, msg))
		return ctrl.Result{}, nil
	case pe.Kind == provider.Terminal:
		s.end(failure(reasonFor(pe.Class),
			fmt.Sprintf("checking attempt %s with %s: %s", st.AttemptID, t.provider.Spec.Type, describeError(pe))))
		return ctrl.Result{}, nil
	default:
		wait := pe.RetryAfter
		if wait <= 0 {
			wait = backoff(st.Attempts)
		}
		progress(na, v1alpha1.PhaseSubmitting, reasonFor(pe.Class),
			fmt.Sprintf("checking attempt %s with %s failed (%s); trying again in %s", st.AttemptID, t.provider.Spec.Type, describeError(pe), wait.Round(100*time.Millisecond)))
		return s.bound(ctrl.Result{RequeueAfter: wait}), nil
	}
}
