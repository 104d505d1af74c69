package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ProviderReference names a Provider in the NodeAction's own namespace.
type ProviderReference struct {
	// name of the Provider.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// BackupPolicy is a DigitalOcean droplet backup schedule.
// +kubebuilder:validation:XValidation:rule="self.plan != 'weekly' || has(self.weekday)",message="spec.parameters.backupPolicy.weekday (SUN..SAT) is required when plan is weekly"
// +kubebuilder:validation:XValidation:rule="self.plan != 'daily' || !has(self.weekday)",message="spec.parameters.backupPolicy.weekday is only used with plan weekly"
type BackupPolicy struct {
	// plan is daily or weekly.
	// +kubebuilder:validation:Enum=daily;weekly
	Plan string `json:"plan"`
	// weekday of a weekly backup: SUN, MON, TUE, WED, THU, FRI or SAT.
	// +kubebuilder:validation:Enum=SUN;MON;TUE;WED;THU;FRI;SAT
	// +optional
	Weekday string `json:"weekday,omitempty"`
	// hour (UTC) the backup window starts: 0, 4, 8, 12, 16 or 20.
	// +kubebuilder:validation:Enum=0;4;8;12;16;20
	// +optional
	Hour *int32 `json:"hour,omitempty"`
}

// ResourceSizes resizes several CloudsFor VM resources in one call.
// +kubebuilder:validation:XValidation:rule="has(self.cpu) || has(self.ram) || has(self.disk)",message="spec.parameters.resources needs at least one of cpu, ram, disk"
type ResourceSizes struct {
	// cpu is the number of virtual CPUs.
	// +kubebuilder:validation:Minimum=1
	// +optional
	CPU *int32 `json:"cpu,omitempty"`
	// ram in GB.
	// +kubebuilder:validation:Minimum=1
	// +optional
	RAM *int32 `json:"ram,omitempty"`
	// disk in GB.
	// +kubebuilder:validation:Minimum=1
	// +optional
	Disk *int32 `json:"disk,omitempty"`
}

// RecoverParameters are OpenStack Senlin node recover parameters.
type RecoverParameters struct {
	// operation is REBOOT, REBUILD or RECREATE (any case). REBUILD and
	// RECREATE are destructive and need spec.confirm.
	// +kubebuilder:validation:MaxLength=16
	// +kubebuilder:validation:XValidation:rule="self.upperAscii() in ['REBOOT', 'REBUILD', 'RECREATE']",message="spec.parameters.recover.operation must be one of REBOOT, REBUILD, RECREATE"
	Operation string `json:"operation"`
	// rebootType is SOFT or HARD (any case), for operation REBOOT. Defaults to HARD, as Senlin does.
	// +kubebuilder:validation:MaxLength=8
	// +kubebuilder:validation:XValidation:rule="self.upperAscii() in ['SOFT', 'HARD']",message="spec.parameters.recover.rebootType must be SOFT or HARD"
	// +optional
	RebootType string `json:"rebootType,omitempty"`
	// check the node's health before recovering it.
	// +optional
	Check *bool `json:"check,omitempty"`
	// deleteTimeout in seconds, for RECREATE.
	// +kubebuilder:validation:Minimum=0
	// +optional
	DeleteTimeout *int32 `json:"deleteTimeout,omitempty"`
	// forceRecreate recreates the node even when its deletion failed.
	// +optional
	ForceRecreate *bool `json:"forceRecreate,omitempty"`
}

// ActionParameters are the optional inputs some actions need. Each action
// uses only the fields its documentation names; the API server refuses a
// NodeAction that lacks a field its action requires.
// +kubebuilder:validation:XValidation:rule="has(self.resource) == has(self.amount)",message="spec.parameters.resource and spec.parameters.amount go together (CloudsFor resize of one resource)"
type ActionParameters struct {
	// name is the new name (rename) or the image name (snapshot,
	// save_images). 1 to 255 characters, no leading or trailing spaces.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=255
	// +kubebuilder:validation:XValidation:rule="self == self.trim()",message="spec.parameters.name must not start or end with whitespace"
	// +optional
	Name string `json:"name,omitempty"`

	// image is the image id or slug for rebuild, or the numeric backup image
	// id for restore.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=255
	// +optional
	Image string `json:"image,omitempty"`

	// size is the DigitalOcean size slug for resize, e.g. s-2vcpu-4gb.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	// +optional
	Size string `json:"size,omitempty"`

	// disk, for DigitalOcean resize, also grows the disk. This is permanent:
	// the droplet can never be resized down again.
	// +optional
	Disk *bool `json:"disk,omitempty"`

	// resource is the one CloudsFor VM resource to resize: ram, disk or cpu
	// (with amount).
	// +kubebuilder:validation:Enum=ram;disk;cpu
	// +optional
	Resource string `json:"resource,omitempty"`

	// amount is the new size of resource: GB for ram and disk, a count for cpu.
	// +kubebuilder:validation:Minimum=1
	// +optional
	Amount *int32 `json:"amount,omitempty"`

	// resources resizes several CloudsFor VM resources in one call.
	// +optional
	Resources *ResourceSizes `json:"resources,omitempty"`

	// kernel is the DigitalOcean kernel id for change_kernel.
	// +kubebuilder:validation:Minimum=1
	// +optional
	Kernel *int64 `json:"kernel,omitempty"`

	// backupPolicy for DigitalOcean enable_backups (optional) and
	// change_backup_policy (required).
	// +optional
	BackupPolicy *BackupPolicy `json:"backupPolicy,omitempty"`

	// recover holds the OpenStack Senlin recover parameters (action recover).
	// +optional
	Recover *RecoverParameters `json:"recover,omitempty"`
}

// Escalation follows a graceful action with a forceful one when the graceful
// one has not had its effect in time.
type Escalation struct {
	// powerOffAfterSeconds: when a shutdown has not powered the VM off this
	// many seconds after it was accepted, send power_off (the pattern
	// DigitalOcean documents). Only valid with action shutdown.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=86400
	PowerOffAfterSeconds int32 `json:"powerOffAfterSeconds"`
}

// DrainSpec says how the Kubernetes Node is drained before the provider is
// called: cordoned, then its pods evicted through the Eviction API, so
// PodDisruptionBudgets are respected.
type DrainSpec struct {
	// timeoutSeconds bounds the drain. Defaults to 600.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=86400
	// +kubebuilder:default=600
	// +optional
	TimeoutSeconds int32 `json:"timeoutSeconds,omitempty"`
	// onTimeout is what happens when pods are still there after
	// timeoutSeconds: Fail (the default) ends the NodeAction without calling
	// the provider and leaves the Node cordoned; Proceed calls the provider
	// anyway.
	// +kubebuilder:validation:Enum=Fail;Proceed
	// +kubebuilder:default=Fail
	// +optional
	OnTimeout string `json:"onTimeout,omitempty"`
	// ignoreDaemonSets leaves DaemonSet pods in place (they would come back
	// at once). Defaults to true; false refuses to drain a Node that runs
	// DaemonSet pods.
	// +kubebuilder:default=true
	// +optional
	IgnoreDaemonSets *bool `json:"ignoreDaemonSets,omitempty"`
	// deleteEmptyDirData evicts pods that use emptyDir volumes (their data
	// is lost). Defaults to false: such pods stop the drain.
	// +optional
	DeleteEmptyDirData bool `json:"deleteEmptyDirData,omitempty"`
	// podSelector, when set, drains only the pods it selects.
	// +kubebuilder:validation:XValidation:rule="!has(self.matchExpressions) || self.matchExpressions.all(e, e.operator in ['In', 'NotIn', 'Exists', 'DoesNotExist'])",message="spec.node.drain.podSelector.matchExpressions: operator must be In, NotIn, Exists or DoesNotExist"
	// +kubebuilder:validation:XValidation:rule="!has(self.matchExpressions) || self.matchExpressions.all(e, (e.operator in ['In', 'NotIn']) == (has(e.values) && size(e.values) > 0))",message="spec.node.drain.podSelector.matchExpressions: In and NotIn need values; Exists and DoesNotExist take none"
	// +optional
	PodSelector *metav1.LabelSelector `json:"podSelector,omitempty"`
}

// NodeSpec is the Kubernetes Node running on the VM: drained before the
// action, and waited for after it.
type NodeSpec struct {
	// name of the Node. Without it the Node is found from the VM: by its
	// spec.providerID (digitalocean://<droplet id>; for senlin,
	// openstack:///<server id> where the server is the Senlin node's
	// physical_id), else by the annotation
	// compute.nodeaction.dev/vm: <Provider name>/<nodeID>.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	Name string `json:"name,omitempty"`
	// drain cordons and drains the Node before the provider is called.
	// +optional
	Drain *DrainSpec `json:"drain,omitempty"`
	// waitReadySeconds: after the provider reports the action done, wait
	// this long for the Node to be Ready again and, for actions that
	// restart the guest, to show a new bootID. Defaults to 900.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=86400
	// +kubebuilder:default=900
	// +optional
	WaitReadySeconds *int32 `json:"waitReadySeconds,omitempty"`
	// uncordon the Node when the action succeeded, only if the operator
	// cordoned it. Defaults to true.
	// +kubebuilder:default=true
	// +optional
	Uncordon *bool `json:"uncordon,omitempty"`
}

// NodeActionSpec is one action on one VM.
//
// Which actions need which parameters, and which are destructive, is checked
// here so that kubectl apply refuses a bad manifest with a message that says
// what to fix.
//
// +kubebuilder:validation:XValidation:rule="!(self.action in ['rename', 'save_images']) || (has(self.parameters) && has(self.parameters.name))",messageExpression="'action ' + self.action + ' needs spec.parameters.name (the new name)'",fieldPath=".parameters.name",reason=FieldValueRequired
// +kubebuilder:validation:XValidation:rule="self.action != 'rebuild' || (has(self.parameters) && has(self.parameters.image))",message="action rebuild needs spec.parameters.image (an image id or slug)",fieldPath=".parameters.image",reason=FieldValueRequired
// +kubebuilder:validation:XValidation:rule="self.action != 'restore' || (has(self.parameters) && has(self.parameters.image) && self.parameters.image.matches('^[0-9]+$'))",message="action restore needs spec.parameters.image set to the numeric id of a backup of this node",fieldPath=".parameters.image",reason=FieldValueRequired
// +kubebuilder:validation:XValidation:rule="self.action != 'change_kernel' || (has(self.parameters) && has(self.parameters.kernel))",message="action change_kernel needs spec.parameters.kernel (a kernel id)",fieldPath=".parameters.kernel",reason=FieldValueRequired
// +kubebuilder:validation:XValidation:rule="self.action != 'change_backup_policy' || (has(self.parameters) && has(self.parameters.backupPolicy))",message="action change_backup_policy needs spec.parameters.backupPolicy (plan, and weekday for weekly)",fieldPath=".parameters.backupPolicy",reason=FieldValueRequired
// +kubebuilder:validation:XValidation:rule="self.action != 'resize' || (has(self.parameters) && (has(self.parameters.size) || has(self.parameters.resource) || has(self.parameters.resources)))",message="action resize needs spec.parameters.size (DigitalOcean size slug), or resource with amount, or resources (CloudsFor)",fieldPath=".parameters",reason=FieldValueRequired
// +kubebuilder:validation:XValidation:rule="self.action != 'recover' || (has(self.parameters) && has(self.parameters.recover))",message="action recover needs spec.parameters.recover.operation (REBOOT, REBUILD or RECREATE)",fieldPath=".parameters.recover",reason=FieldValueRequired
// +kubebuilder:validation:XValidation:rule="!has(self.escalation) || self.action == 'shutdown'",message="spec.escalation is only valid with action shutdown",fieldPath=".escalation"
// +kubebuilder:validation:XValidation:rule="!(self.action in ['reinstall', 'rebuild', 'restore'] || (self.action == 'recover' && has(self.parameters) && has(self.parameters.recover) && self.parameters.recover.operation.upperAscii() != 'REBOOT')) || (has(self.confirm) && self.confirm == self.nodeID)",messageExpression="'this action is destructive: set spec.confirm to ' + self.nodeID + ' (the value of spec.nodeID) to confirm it'",fieldPath=".confirm",reason=FieldValueRequired
// +kubebuilder:validation:XValidation:rule="oldSelf.providerRef == self.providerRef && oldSelf.nodeID == self.nodeID && oldSelf.action == self.action && has(oldSelf.parameters) == has(self.parameters) && (!has(self.parameters) || oldSelf.parameters == self.parameters) && has(oldSelf.confirm) == has(self.confirm) && (!has(self.confirm) || oldSelf.confirm == self.confirm) && has(oldSelf.activeDeadlineSeconds) == has(self.activeDeadlineSeconds) && (!has(self.activeDeadlineSeconds) || oldSelf.activeDeadlineSeconds == self.activeDeadlineSeconds) && has(oldSelf.backoffLimit) == has(self.backoffLimit) && (!has(self.backoffLimit) || oldSelf.backoffLimit == self.backoffLimit) && has(oldSelf.escalation) == has(self.escalation) && (!has(self.escalation) || oldSelf.escalation == self.escalation) && has(oldSelf.node) == has(self.node) && (!has(self.node) || oldSelf.node == self.node)",message="spec is immutable except runID and ttlSecondsAfterFinished: create a new NodeAction for a different action, or change spec.runID to run this one again"
type NodeActionSpec struct {
	// providerRef names the Provider (same namespace) to call.
	ProviderRef ProviderReference `json:"providerRef"`

	// nodeID is the provider's id of the VM: a droplet id (digitalocean), a
	// node UUID or name (senlin), a node id (e2e), a VM id (cloudsfor,
	// openscaler).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:XValidation:rule="self.matches('^[A-Za-z0-9][A-Za-z0-9._-]*$') && !self.contains('..')",message="spec.nodeID must be the provider's VM id: letters, digits, '.', '_' and '-' only, no '/' and no '..'"
	NodeID string `json:"nodeID"`

	// action to run. Portable names (power_on, shutdown, power_off, reboot,
	// power_cycle, rename, snapshot) work with every provider that has the
	// action; a provider's own names work with that provider. An action the
	// Provider lacks ends Stalled with reason UnsupportedAction and the list
	// of actions it has.
	// +kubebuilder:validation:Enum=power_on;shutdown;power_off;reboot;power_cycle;rename;snapshot;enable_backups;disable_backups;change_backup_policy;restore;password_reset;resize;rebuild;change_kernel;enable_ipv6;check;recover;reinstall;save_images;enable_recovery_mode;disable_recovery_mode;lock_vm;unlock_vm;enable_accidental_protection;disable_accidental_protection;enable_node_compliance;disable_node_compliance;start;reset
	Action string `json:"action"`

	// parameters some actions need (name, image, size, ...).
	// +optional
	Parameters *ActionParameters `json:"parameters,omitempty"`

	// confirm must equal nodeID for destructive actions (reinstall, rebuild,
	// restore, recover with REBUILD or RECREATE).
	// +kubebuilder:validation:MaxLength=128
	// +optional
	Confirm string `json:"confirm,omitempty"`

	// activeDeadlineSeconds bounds the whole run, from when the operator
	// first sees it to the provider reporting the end; past it the
	// NodeAction fails with reason DeadlineExceeded. Defaults to 3600, at
	// most 2592000 (30 days).
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=2592000
	// +kubebuilder:default=3600
	// +optional
	ActiveDeadlineSeconds *int64 `json:"activeDeadlineSeconds,omitempty"`

	// backoffLimit is how many times to submit again after the provider
	// reported the action failed. Only actions that are safe to repeat are
	// retried. Defaults to 0.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=10
	// +kubebuilder:default=0
	// +optional
	BackoffLimit *int32 `json:"backoffLimit,omitempty"`

	// ttlSecondsAfterFinished deletes the NodeAction this long after it
	// finished. Off by default: a GitOps tool re-creates a deleted object,
	// which would run the action again. May be changed after creation.
	// +kubebuilder:validation:Minimum=0
	// +optional
	TTLSecondsAfterFinished *int32 `json:"ttlSecondsAfterFinished,omitempty"`

	// escalation follows a shutdown with power_off when the VM is not off in time.
	// +optional
	Escalation *Escalation `json:"escalation,omitempty"`

	// node is the Kubernetes Node on this VM: drained before the action,
	// proven back (Ready, and a new bootID after a restart) after it.
	// +optional
	Node *NodeSpec `json:"node,omitempty"`

	// runID starts a new run of the same action when changed (for GitOps:
	// reboot again without renaming the object). Earlier runs are kept in
	// status.history. The only spec field besides ttlSecondsAfterFinished
	// that may change after creation.
	// +kubebuilder:validation:MaxLength=63
	// +optional
	RunID string `json:"runID,omitempty"`
}

// Phase is where a NodeAction is in its life.
// +kubebuilder:validation:Enum=Pending;Draining;Submitting;Running;WaitingForNode;Succeeded;Failed
type Phase string

const (
	// PhasePending: not yet submitted (waiting for the provider, the node or a retry).
	PhasePending Phase = "Pending"
	// PhaseDraining: the Kubernetes Node is cordoned and its pods are being evicted.
	PhaseDraining Phase = "Draining"
	// PhaseSubmitting: intent recorded; the provider call is under way or its answer was lost.
	PhaseSubmitting Phase = "Submitting"
	// PhaseRunning: the provider accepted the action; the operator follows it.
	PhaseRunning Phase = "Running"
	// PhaseWaitingForNode: the provider reports the action done; the
	// operator waits for the Kubernetes Node to come back.
	PhaseWaitingForNode Phase = "WaitingForNode"
	// PhaseSucceeded: the action ended well.
	PhaseSucceeded Phase = "Succeeded"
	// PhaseFailed: the action ended badly, or cannot be run.
	PhaseFailed Phase = "Failed"
)

// Finished reports whether the phase is terminal.
func (p Phase) Finished() bool { return p == PhaseSucceeded || p == PhaseFailed }

// NodeStatus is what the operator knows of the Kubernetes Node on the VM.
type NodeStatus struct {
	// name of the Node.
	// +optional
	Name string `json:"name,omitempty"`
	// cordoned is true when the operator cordoned the Node (and so
	// uncordons it when the action succeeded).
	// +optional
	Cordoned bool `json:"cordoned,omitempty"`
	// drainStartTime is when the drain began.
	// +optional
	DrainStartTime *metav1.Time `json:"drainStartTime,omitempty"`
	// podsLeft is how many pods the drain still has to evict.
	// +optional
	PodsLeft *int32 `json:"podsLeft,omitempty"`
	// bootID is the Node's status.nodeInfo.bootID when the intent was
	// recorded: a different one afterwards proves the guest restarted.
	// +optional
	BootID string `json:"bootID,omitempty"`
	// waitStartTime is when the provider reported the action done and the
	// wait for the Node began.
	// +optional
	WaitStartTime *metav1.Time `json:"waitStartTime,omitempty"`
	// outcome is the provider's word on the action, kept while the operator
	// waits for the Node: the reason the run ends with once it is back.
	// +optional
	Outcome string `json:"outcome,omitempty"`
}

// GetName is the Node's name, "" for a nil status.
func (n *NodeStatus) GetName() string {
	if n == nil {
		return ""
	}
	return n.Name
}

// RunRecord is the outcome of an earlier run (an earlier spec.runID).
type RunRecord struct {
	// runID of that run.
	// +optional
	RunID string `json:"runID,omitempty"`
	// phase it ended in.
	Phase Phase `json:"phase"`
	// reason of its Ready condition when it ended.
	// +optional
	Reason string `json:"reason,omitempty"`
	// providerActionID it was given.
	// +optional
	ProviderActionID string `json:"providerActionID,omitempty"`
	// completionTime of that run.
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`
}

// NodeActionStatus is what the operator observed of the action.
type NodeActionStatus struct {
	// observedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// phase: Pending, Submitting, Running, Succeeded or Failed.
	// +optional
	Phase Phase `json:"phase,omitempty"`

	// runID is the spec.runID this status describes.
	// +optional
	RunID string `json:"runID,omitempty"`

	// providerAction is the provider's own name of the action sent (with its
	// operation where the API has one, e.g. "recover REBOOT SOFT"), so nobody
	// has to guess what a portable name became.
	// +optional
	ProviderAction string `json:"providerAction,omitempty"`

	// providerActionID is the provider's id of the accepted action, where the
	// API gives one.
	// +optional
	ProviderActionID string `json:"providerActionID,omitempty"`

	// providerProgress is what the driver has seen of the action so far
	// (for example that an E2E node was seen leaving its steady state),
	// kept so that a restart does not forget it.
	// +optional
	ProviderProgress string `json:"providerProgress,omitempty"`

	// providerStartTime is when the provider says the action started.
	// +optional
	ProviderStartTime *metav1.Time `json:"providerStartTime,omitempty"`

	// attemptID identifies the current submission attempt. It is recorded
	// before the provider is called, and is never used twice: not by a later
	// attempt, not by a later run. The retry-submission annotation names it.
	// +optional
	AttemptID string `json:"attemptID,omitempty"`

	// attempts counts the submissions of this run whose request left the
	// operator (and so may have reached the provider).
	// +optional
	Attempts int32 `json:"attempts,omitempty"`

	// totalAttempts counts every attempt recorded over all runs; attempt ids
	// are numbered by it.
	// +optional
	TotalAttempts int32 `json:"totalAttempts,omitempty"`

	// failedAttempts counts accepted actions the provider reported failed
	// in this run (compared with spec.backoffLimit).
	// +optional
	FailedAttempts int32 `json:"failedAttempts,omitempty"`

	// failedActionIDs are the provider's ids of this run's failed attempts,
	// oldest first: a later attempt whose answer was lost is never matched
	// with one of them.
	// +optional
	// +kubebuilder:validation:MaxItems=10
	FailedActionIDs []string `json:"failedActionIDs,omitempty"`

	// startTime is when the operator started this run.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`

	// submittedAt is the earliest time the current attempt's request may
	// leave the operator: when its slot of the Provider's request budget
	// comes. It is recorded with the intent, before the call.
	// +optional
	SubmittedAt *metav1.Time `json:"submittedAt,omitempty"`

	// submitDeadline is the latest time the current attempt's request may
	// leave the operator; the call is cut off then. A lost answer is looked
	// up only after it, when what the provider shows is final.
	// +optional
	SubmitDeadline *metav1.Time `json:"submitDeadline,omitempty"`

	// completionTime is when the run ended: the provider's own time where
	// it gives one, else the operator's.
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`

	// escalatedAt is when a shutdown was followed by power_off (spec.escalation).
	// +optional
	EscalatedAt *metav1.Time `json:"escalatedAt,omitempty"`

	// message is the latest human-readable word on the action.
	// +optional
	Message string `json:"message,omitempty"`

	// conditions: Ready, Reconciling, Stalled, Submitted (kstatus).
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// node is what the operator knows of the Kubernetes Node on the VM.
	// +optional
	Node *NodeStatus `json:"node,omitempty"`

	// history holds the outcomes of earlier runs, newest first (at most 5).
	// +kubebuilder:validation:MaxItems=5
	// +optional
	History []RunRecord `json:"history,omitempty"`
}

// NodeAction runs one action on one VM through a Provider, once, and reports
// its progress and outcome in status conditions (Ready, Reconciling,
// Stalled, Submitted).
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=nodeaction-operator,shortName=na
// +kubebuilder:selectablefield:JSONPath=`.spec.nodeID`
// +kubebuilder:printcolumn:name="Provider",type=string,JSONPath=`.spec.providerRef.name`
// +kubebuilder:printcolumn:name="Node",type=string,JSONPath=`.spec.nodeID`
// +kubebuilder:printcolumn:name="Action",type=string,JSONPath=`.spec.action`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Action ID",type=string,JSONPath=`.status.providerActionID`,priority=1
// +kubebuilder:printcolumn:name="Message",type=string,JSONPath=`.status.message`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type NodeAction struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   NodeActionSpec   `json:"spec,omitempty"`
	Status NodeActionStatus `json:"status,omitempty"`
}

// GetConditions returns the status conditions.
func (n *NodeAction) GetConditions() []metav1.Condition { return n.Status.Conditions }

// +kubebuilder:object:root=true

// NodeActionList contains a list of NodeAction.
type NodeActionList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []NodeAction `json:"items"`
}

func init() {
	SchemeBuilder.Register(&NodeAction{}, &NodeActionList{})
}
