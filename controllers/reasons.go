package controllers

import (
	"github.com/nodeaction/nodeaction-operator/api/v1alpha1"
	"github.com/nodeaction/nodeaction-operator/internal/provider"
)

// reasons maps what a driver says (provider classes) to the condition
// reasons people read. It is the one place where the two meet: a reason can
// be renamed here without touching a driver.
var reasons = map[provider.Class]string{
	provider.Completed:      v1alpha1.ReasonCompleted,
	provider.Unverified:     v1alpha1.ReasonAcceptedUnverified,
	provider.AlreadyInState: v1alpha1.ReasonAlreadyInState,
	provider.ActionFailed:   v1alpha1.ReasonProviderFailed,

	provider.InProgress: v1alpha1.ReasonInProgress,
	provider.Verifying:  v1alpha1.ReasonVerifying,

	provider.RateLimited:       v1alpha1.ReasonRateLimited,
	provider.Busy:              v1alpha1.ReasonProviderBusy,
	provider.Unavailable:       v1alpha1.ReasonRetrying,
	provider.AnswerLost:        v1alpha1.ReasonSubmitting,
	provider.SubmissionUnknown: v1alpha1.ReasonSubmissionUnknown,
	provider.AuthFailed:        v1alpha1.ReasonAuthFailed,
	provider.NodeNotFound:      v1alpha1.ReasonNodeNotFound,
	provider.Rejected:          v1alpha1.ReasonRejected,
	provider.InvalidParameters: v1alpha1.ReasonInvalidParameters,
	provider.InvalidNodeID:     v1alpha1.ReasonInvalidNodeID,
	provider.UnsupportedAction: v1alpha1.ReasonUnsupportedAction,
	provider.InvalidConfig:     v1alpha1.ReasonInvalidConfig,
	provider.CredentialsError:  v1alpha1.ReasonCredentialsError,
	provider.SecretNotFound:    v1alpha1.ReasonSecretNotFound,
}

// reasonFor is the condition reason for a class. An empty class is an
// action in progress; a class missing from the table (a driver bug, caught
// by TestEveryClassHasAReason) shows as itself rather than as nothing.
func reasonFor(c provider.Class) string {
	if c == "" {
		return v1alpha1.ReasonInProgress
	}
	if r, ok := reasons[c]; ok {
		return r
	}
	return string(c)
}
