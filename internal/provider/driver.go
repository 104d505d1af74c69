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

	// Lookup lists what could be a submission whose answer was lost (the
	// process died during the call, or the answer did not come back): the
	// actions on the request's node of the request's kind (and parameters,
	// where the API shows them) that started within window. It does not
	// choose among them: the reconciler knows which actions are already
	// other NodeActions'. An error of class SubmissionUnknown says the
	// provider cannot tell at all.
	Lookup(ctx context.Context, req Request, window Window) (Found, error)
}

// Window is when a lost submission can have started at the provider: from
// the moment its request could first leave the operator to the moment the
// last one could land, each widened by the clock skew allowed between the
// operator and the provider.
type Window struct {
	From, To time.Time
}

// Contains tells whether a provider's time falls in the window. Providers
// show whole seconds (some show less), so the bounds are compared at whole
// seconds, widening the window, never narrowing it.
func (w Window) Contains(t time.Time) bool {
	return !t.Before(w.From.Truncate(time.Second)) && !t.After(w.To)
}

// Found is what a lookup found.
type Found struct {
	// Candidates could each be the lost submission.
	Candidates []Submission
	// Complete: the provider's records cover the window whole, so no
	// candidate proves the request was not accepted.
	Complete bool
	// Why, when not Complete, says what the records cannot show.
	Why string
	// SettlesAt, when set, is when the records stop changing for the
	// window: until then the provider may still list an accepted action.
	// Before it, finding no action that can be the submission's proves
	// nothing, whatever actions of others the records show.
	SettlesAt time.Time
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
	// Progress is what the driver has seen of the action so far, as its
	// last ActionStatus said (opaque to the caller, who keeps it across
	// restarts and hands it back).
	Progress string
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
	// Progress, when set, replaces what the caller keeps of the action
	// (Submission.Progress): what the driver has seen so far.
	Progress string
	// Watch asks the caller to look again at the Provider's poll interval,
	// not later: something brief is expected (a transient state to see).
	Watch bool
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
	// HardPowerOff is the native action that forces a VM off: what
	// spec.escalation follows a shutdown with. Empty when the provider has
	// none (its power_off is the graceful shutdown, or it has no power
	// actions).
	HardPowerOff string
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
	// RestartsGuest: the action boots the VM's operating system (anew):
	// a Kubernetes Node on it comes back with a new bootID.
	RestartsGuest bool
	// RestartsGuestIf, when set, decides RestartsGuest per request (Senlin's
	// recover with check may find the node healthy and leave it as it is).
	RestartsGuestIf func(Request) bool
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
	// Now tells the time (tests set a fake clock); nil is time.Now.
	Now func() time.Time
	// RecordsLag is how long after a request could last land the
	// provider's records (an action list, a node's state) may still not
	// show it, so that a lookup finding nothing before then proves
	// nothing. Zero is the driver's own figure for the real provider
	// (the documents give none); tests set the simulator's.
	RecordsLag time.Duration
}

// LagOr is c's RecordsLag, or def when it is unset.
func (c Config) LagOr(def time.Duration) time.Duration {
	if c.RecordsLag > 0 {
		return c.RecordsLag
	}
	return def
}

// BatchStatuser is implemented by drivers whose API lists many actions or
// VMs in one call (DigitalOcean's and CloudsFor's account-wide action
// lists, Senlin's project actions, E2E's nodes, OpenScaler's VMs): one list
// answers the polls of many NodeActions, so a fleet stays under the rate
// budget.
type BatchStatuser interface {
	// StatusBatch reads the status of many submissions in as few requests
	// as the API allows. out[i] is subs[i]'s status, judged as Status
	// judges it, or the zero ActionStatus (State "") where the list did not
	// show it: the caller reads those one by one. On an error, out is not
	// read.
	StatusBatch(ctx context.Context, subs []Submission) (out []ActionStatus, err error)
}

// ServerIDer is implemented by drivers whose VM is known to a cloud
// controller manager by another id than the node id: a Senlin node's Nova
// server (physical_id), which a Node's providerID names.
type ServerIDer interface {
	ServerID(ctx context.Context, nodeID string) (string, error)
}

// ResolvedEndpoint is implemented by drivers whose endpoint is discovered
// (Senlin's catalog), so the Provider status can show it.
type ResolvedEndpoint interface {
	Endpoint() string
}
