package v1alpha1

// Condition types, following kstatus so that kubectl wait, Flux and Argo CD
// read them without custom code.
const (
	// ConditionReady is True only when the action succeeded (NodeAction) or
	// the credentials work (Provider).
	ConditionReady = "Ready"
	// ConditionReconciling is True while the action is pending or running.
	ConditionReconciling = "Reconciling"
	// ConditionStalled is True when the action failed for good.
	ConditionStalled = "Stalled"
	// ConditionSubmitted is True once the provider accepted the action.
	ConditionSubmitted = "Submitted"
)

// Condition reasons. docs/troubleshooting.md explains each one.
const (
	// Progress.
	ReasonPending          = "Pending"
	ReasonProviderNotFound = "ProviderNotFound"
	ReasonCredentialsError = "CredentialsError"
	ReasonNodeBusy         = "NodeBusy"
	ReasonSubmitting       = "Submitting"
	ReasonInProgress       = "InProgress"
	ReasonRateLimited      = "RateLimited"
	ReasonProviderBusy     = "ProviderBusy"
	ReasonRetrying         = "Retrying"
	ReasonVerifying        = "Verifying"
	ReasonEscalated        = "Escalated"
	ReasonAccepted         = "Accepted"
	// Refused credentials while an accepted action is followed or looked
	// up: it may still run, so the NodeAction waits (Stalled) for working
	// credentials, then resumes without a new call.
	ReasonCredentialsRejected = "CredentialsRejected"
	ReasonDraining            = "Draining"       // the Kubernetes Node is cordoned and being drained
	ReasonWaitingForNode      = "WaitingForNode" // the provider is done; the Node is not back yet
	ReasonNodeUnresolved      = "NodeUnresolved" // no Node (or more than one) is on the VM

	// Success (Ready=True).
	ReasonCompleted          = "Completed"
	ReasonAcceptedUnverified = "AcceptedUnverified"
	ReasonAlreadyInState     = "AlreadyInState"
	ReasonVerified           = "Verified" // the Node came back with a new bootID: the action that restarts the guest ran

	// Terminal failure (Stalled=True).
	ReasonProviderFailed       = "ProviderFailed"
	ReasonRejected             = "Rejected"
	ReasonInvalidParameters    = "InvalidParameters"
	ReasonInvalidNodeID        = "InvalidNodeID"
	ReasonUnsupportedAction    = "UnsupportedAction"
	ReasonNodeNotFound         = "NodeNotFound"
	ReasonAuthFailed           = "AuthFailed"
	ReasonDeadlineExceeded     = "DeadlineExceeded"
	ReasonBackoffLimitExceeded = "BackoffLimitExceeded"
	ReasonSubmissionUnknown    = "SubmissionUnknown"
	ReasonNodeMismatch         = "NodeMismatch"    // the Node named in spec.node is on another VM
	ReasonDrainTimeout         = "DrainTimeout"    // pods were still on the Node after the drain's timeout
	ReasonNodeNotReturned      = "NodeNotReturned" // the Node was not back within spec.node.waitReadySeconds
	ReasonInvalidSelector      = "InvalidSelector" // a label selector of the spec cannot be parsed (NodeActionSet too)

	// NodeActionSet only. A set that finished with every member succeeded
	// is Ready=True with reason Completed.
	ReasonRolling               = "Rolling"
	ReasonPaused                = "Paused"
	ReasonOutsideWindow         = "OutsideWindow"
	ReasonFailureBudgetExceeded = "FailureBudgetExceeded"
	ReasonMembersFailed         = "MembersFailed"
	ReasonMembersRemoved        = "MembersRemoved"
	ReasonUnmappedNodes         = "UnmappedNodes"
	ReasonNoTargets             = "NoTargets"
	ReasonInvalidWindow         = "InvalidWindow"
	ReasonMemberNameCollision   = "MemberNameCollision"
	ReasonMemberRefused         = "MemberRefused"
	ReasonNodesUnreadable       = "NodesUnreadable"

	// Provider only.
	ReasonProbeSucceeded      = "ProbeSucceeded"
	ReasonSecretNotFound      = "SecretNotFound"
	ReasonInvalidConfig       = "InvalidConfig"
	ReasonEndpointUnreachable = "EndpointUnreachable"
)

// Annotations a person sets to steer a NodeAction.
const (
	// AnnotationRetrySubmission, set to the value of status.attemptID,
	// submits again a NodeAction that stopped with reason SubmissionUnknown.
	// The person setting it has checked that the provider did not run it.
	AnnotationRetrySubmission = "compute.nodeaction.dev/retry-submission"

	// AnnotationVM, on a Kubernetes Node, names the VM under it as
	// "<Provider name>/<nodeID>", for providers whose cloud controller
	// manager sets no spec.providerID the operator can read.
	AnnotationVM = "compute.nodeaction.dev/vm"
)

// LabelShard, on a NodeAction or a Provider, names the manager shard that
// reconciles it (a manager started with --shard=<value>). Objects without
// it belong to the manager started without --shard. docs/sharding.md.
const LabelShard = "compute.nodeaction.dev/shard"

// Labels and finalizers the operator puts on the NodeActions a
// NodeActionSet creates.
const (
	// LabelNodeActionSet names the NodeActionSet a member belongs to.
	LabelNodeActionSet = "compute.nodeaction.dev/nodeactionset"

	// FinalizerNodeActionSet holds a member's deletion until its set has
	// recorded it, so that a member deleted mid-run is never started again
	// in that run (its action may have happened).
	FinalizerNodeActionSet = "compute.nodeaction.dev/nodeactionset"
)
