// Package provider defines what every cloud driver does (the Driver
// interface), the vocabulary of actions, the typed errors drivers return and
// the registry that builds a driver for a Provider.
package provider

import (
	"context"
	"net/http"
	"time"

	"github.com/nodeaction/nodeaction-operator/api/v1alpha1"
)

// Driver runs VM actions through one provider account.
//
// A driver never retries on its own: the reconciler owns retries, so that one
// intended action is one provider call.
type Driver interface {
	// Capabilities lists the actions the driver supports and how each one
	// behaves.
	Capabilities() Capabilities

	// Probe makes one cheap authenticated request, to tell whether the
	// endpoint and credentials work.
	Probe(ctx context.Context) error

	// Validate checks a request without calling the provider: node id
	// format and the parameters the action needs. Its errors are terminal.
	Validate(req Request) error

	// Submit makes exactly one provider call that starts the action.
	Submit(ctx context.Context, req Request) (Submission, error)

	// Status reports how a submitted action is doing.
	Status(ctx context.Context, sub Submission) (ActionStatus, error)

	// Lookup finds what became of a submission whose answer was lost (the
	// process died during the call, or the call timed out after the request
	// was sent). It returns the submission when the provider shows it was
	// accepted at or after since, nil when the provider shows it was not,
	// and an error of reason SubmissionUnknown when the provider cannot
	// tell.
	Lookup(ctx context.Context, req Request, since time.Time) (*Submission, error)
}

// Request is one action for one node, in the provider's own vocabulary
// (portable names are resolved before a driver sees them).
type Request struct {
	// NodeID is the provider's VM id, as written in the NodeAction.
	NodeID string
	// Action is the provider's native action name.
	Action string
	// Parameters the action needs; zero value when none.
	Parameters v1alpha1.ActionParameters
}

// Submission is an action the provider accepted.
type Submission struct {
	Request
	// ActionID is the provider's id for the action, empty where the API has
	// no action object.
	ActionID string
	// StartedAt is when the provider says the action started (or, where it
	// says nothing, when it was submitted).
	StartedAt time.Time
	// Done is set when the provider call itself already finished the action
	// (synchronous APIs, or an action that changed nothing).
	Done *ActionStatus
}

// State is where an action is.
type State string

const (
	StateInProgress State = "InProgress"
	StateSucceeded  State = "Succeeded"
	StateFailed     State = "Failed"
)

// ActionStatus is the provider's word on an action.
type ActionStatus struct {
	State State
	// Class says how a finished action ended (Completed, Unverified,
	// AlreadyInState, ActionFailed) or how a running one stands
	// (InProgress, Verifying; empty means InProgress).
	Class Class
	// Message is the provider's own words (status_reason, error text).
	Message string
	// CompletedAt is when the provider says the action ended, if it says.
	CompletedAt time.Time
}

// Capabilities says what a driver can do.
type Capabilities struct {
	// Actions maps native action names to how they behave.
	Actions map[string]ActionInfo
	// Portable maps portable names to the native action they become. Where
	// a name is both native and portable, the native meaning wins.
	Portable map[string]Native
	// DescribeFunc, when set, names what a request sends more precisely than
	// its action name.
	DescribeFunc func(Request) string
}

// Native is a native action plus the parameters a portable name implies
// (Senlin's reboot is recover with operation REBOOT, type SOFT).
type Native struct {
	Action string
	// Implies, when set, fills in the parameters the portable name stands for.
	Implies func(*v1alpha1.ActionParameters)
}

// ActionInfo describes one native action.
type ActionInfo struct {
	// Repeatable: submitting it again after a provider-reported failure is
	// safe (backoffLimit only retries these).
	Repeatable bool
	// RepeatableIf, when set, decides Repeatable per request (Senlin's
	// recover is safe to repeat as REBOOT, not as REBUILD or RECREATE).
	RepeatableIf func(Request) bool
	// Idempotent: the VM's state shows whether it is done, so a lost
	// submission can be resolved by reading the VM.
	Idempotent bool
}

// Config is what a driver is built from: the Provider's spec, its
// credentials and an HTTP client that already carries TLS settings, the
// rate limiter and metrics.
type Config struct {
	// Name is the Provider's namespace/name, for metrics and messages.
	Name string
	Type v1alpha1.ProviderType
	// Endpoint is spec.endpoint, empty for the type's default.
	Endpoint string
	// AuthURL is the Keystone URL (senlin).
	AuthURL  string
	Region   string
	Location string
	Project  string
	// Credentials are the Secret's data. Never log or return them.
	Credentials map[string][]byte
	// HTTPClient makes every request; it must not be replaced.
	HTTPClient *http.Client
	// UserAgent identifies the operator.
	UserAgent string
}

// BatchStatuser is implemented by drivers whose API lists many actions in
// one call (DigitalOcean's account-wide /v2/actions): one list answers the
// polls of many NodeActions, so a fleet stays under the rate budget.
type BatchStatuser interface {
	// StatusBatch returns the status of the submissions it finds, keyed by
	// ActionID, in as few requests as the API allows. Submissions it does
	// not find are left out (poll them one by one).
	StatusBatch(ctx context.Context, subs []Submission) (map[string]ActionStatus, error)
}

// ResolvedEndpoint is implemented by drivers whose endpoint is discovered
// (Senlin's catalog), so the Provider status can show it.
type ResolvedEndpoint interface {
	Endpoint() string
}
