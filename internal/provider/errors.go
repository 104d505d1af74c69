package provider

import (
	"errors"
	"fmt"
	"time"
)

// Kind says what the reconciler may do after an error.
type Kind string

const (
	// Retryable: the provider did not act on the request; the same call
	// may be made again (after RetryAfter, when set).
	Retryable Kind = "Retryable"
	// Terminal: the request is wrong and will stay wrong (validation,
	// credentials, unknown node). No retry.
	Terminal Kind = "Terminal"
	// Ambiguous: the request was sent and the answer is unknown (timeout, 5xx
	// after sending, connection lost mid-call). Look before calling again.
	Ambiguous Kind = "Ambiguous"
)

// Error is the error every driver returns. Message never carries
// credentials: it holds the provider's own words, or ours.
type Error struct {
	Kind Kind
	// Class says why (RateLimited, NodeNotFound, ...).
	Class Class
	// Message is what a person reads in the condition.
	Message string
	// StatusCode is the HTTP status, 0 when there was none.
	StatusCode int
	// RetryAfter is how long the provider asked us to wait (429, Retry-After).
	RetryAfter time.Duration
	// NotSent is true when the request never left the operator: refused
	// by the client-side budget, or the connection failed before the
	// request was written. Nothing can have happened at the provider.
	NotSent bool
	// WindowSpent, with NotSent, says the request was held for the window
	// the provider reports with its answers (DigitalOcean's
	// ratelimit-remaining), not for a Retry-After.
	WindowSpent bool
	// Err is the underlying error, kept for errors.Is/As; it is not shown.
	Err error
}

func (e *Error) Error() string {
	if e.StatusCode != 0 {
		return fmt.Sprintf("%s (HTTP %d): %s", e.Class, e.StatusCode, e.Message)
	}
	return fmt.Sprintf("%s: %s", e.Class, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// NewRetryable returns a Retryable error.
func NewRetryable(class Class, message string, after time.Duration) *Error {
	return &Error{Kind: Retryable, Class: class, Message: message, RetryAfter: after}
}

// NewTerminal returns a Terminal error.
func NewTerminal(class Class, message string) *Error {
	return &Error{Kind: Terminal, Class: class, Message: message}
}

// NewAmbiguous returns an Ambiguous error.
func NewAmbiguous(message string) *Error {
	return &Error{Kind: Ambiguous, Class: AnswerLost, Message: message}
}

// ErrSubmissionUnknown is the reason Lookup gives when the provider cannot
// tell whether a lost submission was accepted.
func ErrSubmissionUnknown(message string) *Error {
	return NewTerminal(SubmissionUnknown, message)
}

// AsError returns err as an *Error. An error that is not one is treated as
// ambiguous: nobody can say whether the provider acted on it.
func AsError(err error) *Error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Kind: Ambiguous, Class: Unavailable, Message: "unexpected error", Err: err}
}

// IsNotSent reports whether err says the request never left the operator.
func IsNotSent(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.NotSent
}

// IsKind reports whether err is a provider error of the given kind.
func IsKind(err error, k Kind) bool {
	var e *Error
	return errors.As(err, &e) && e.Kind == k
}
