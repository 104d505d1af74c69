package provider

// Class says, in provider terms, how an action ended, where it stands, or
// why a call failed. Drivers return classes; the controllers map each one to
// the condition reason people read (one table, controllers/reasons.go), so
// the API's reasons can change without touching a driver.
type Class string

// How a finished action ended, and what proves it.
const (
	// Completed: the provider showed the action took effect.
	Completed Class = "Completed"
	// Unverified: the provider accepted the action, but nothing its API
	// shows can prove the action took effect.
	Unverified Class = "Unverified"
	// AlreadyInState: the VM already was where the action would put it.
	AlreadyInState Class = "AlreadyInState"
	// ActionFailed: the provider reports the action failed.
	ActionFailed Class = "ActionFailed"
)

// Where a running action stands.
const (
	// InProgress: the provider is still working on it.
	InProgress Class = "InProgress"
	// Verifying: the provider says it is done; its effect is not visible yet.
	Verifying Class = "Verifying"
)

// Why a call failed.
const (
	// RateLimited: the provider (429) or the client-side budget said wait.
	RateLimited Class = "RateLimited"
	// Busy: another action holds the VM (409, 423, "pending event").
	Busy Class = "Busy"
	// Unavailable: a failure that may pass (connection refused, 503, a
	// garbled answer to a read).
	Unavailable Class = "Unavailable"
	// AnswerLost: the request went out and its answer did not come back.
	AnswerLost Class = "AnswerLost"
	// SubmissionUnknown: the provider cannot tell whether a lost
	// submission was accepted.
	SubmissionUnknown Class = "SubmissionUnknown"
	// AuthFailed: the provider refused the credentials (401, 403).
	AuthFailed Class = "AuthFailed"
	// NodeNotFound: the provider has no such VM (404).
	NodeNotFound Class = "NodeNotFound"
	// Rejected: the provider refused the request (other 4xx).
	Rejected Class = "Rejected"
	// InvalidParameters: the action's parameters cannot work.
	InvalidParameters Class = "InvalidParameters"
	// InvalidNodeID: the VM id is not one this provider uses.
	InvalidNodeID Class = "InvalidNodeID"
	// UnsupportedAction: the provider has no such action.
	UnsupportedAction Class = "UnsupportedAction"
	// InvalidConfig: the Provider's spec cannot work (endpoint, caBundle,
	// authURL, region, a missing field).
	InvalidConfig Class = "InvalidConfig"
	// CredentialsError: the credentials Secret lacks what the provider
	// needs, or cannot be read.
	CredentialsError Class = "CredentialsError"
	// SecretNotFound: the credentials Secret does not exist.
	SecretNotFound Class = "SecretNotFound"
)
