package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// MaintenanceWindow is a recurring span of time in which a NodeActionSet
// may start members. Members already started run on past its end: an
// action under way cannot be stopped halfway.
type MaintenanceWindow struct {
	// schedule is when the window opens, in cron's five fields (minute hour
	// day-of-month month day-of-week) read in timeZone: "0 2 * * *" opens it
	// every day at 02:00, "0 22 * * FRI" on Fridays at 22:00.
	// +kubebuilder:validation:MinLength=9
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:XValidation:rule="self.split(' ').filter(f, f != '').size() == 5",message="must be a cron schedule of five fields separated by spaces: minute hour day-of-month month day-of-week, for example \"0 2 * * *\" (every day at 02:00)"
	// +kubebuilder:validation:XValidation:rule="self.split(' ').filter(f, f != '').size() != 5 || self.split(' ').filter(f, f != '')[0].matches('^([*?]|[0-5]?[0-9](-[0-5]?[0-9])?)(/0*[1-9][0-9]*)?(,([*?]|[0-5]?[0-9](-[0-5]?[0-9])?)(/0*[1-9][0-9]*)?)*$')",message="its first field (minute) must be 0-59: a value, a range like 0-30, a list like 0,30, or *, each with an optional /step"
	// +kubebuilder:validation:XValidation:rule="self.split(' ').filter(f, f != '').size() != 5 || self.split(' ').filter(f, f != '')[1].matches('^([*?]|([01]?[0-9]|2[0-3])(-([01]?[0-9]|2[0-3]))?)(/0*[1-9][0-9]*)?(,([*?]|([01]?[0-9]|2[0-3])(-([01]?[0-9]|2[0-3]))?)(/0*[1-9][0-9]*)?)*$')",message="its second field (hour) must be 0-23: a value, a range like 2-5, a list like 2,14, or *, each with an optional /step"
	// +kubebuilder:validation:XValidation:rule="self.split(' ').filter(f, f != '').size() != 5 || self.split(' ').filter(f, f != '')[2].matches('^([*?]|(0?[1-9]|[12][0-9]|3[01])(-(0?[1-9]|[12][0-9]|3[01]))?)(/0*[1-9][0-9]*)?(,([*?]|(0?[1-9]|[12][0-9]|3[01])(-(0?[1-9]|[12][0-9]|3[01]))?)(/0*[1-9][0-9]*)?)*$')",message="its third field (day of month) must be 1-31: a value, a range like 1-7, a list like 1,15, or *, each with an optional /step"
	// +kubebuilder:validation:XValidation:rule="self.split(' ').filter(f, f != '').size() != 5 || self.split(' ').filter(f, f != '')[3].matches('(?i)^([*?]|(0?[1-9]|1[0-2]|jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)(-(0?[1-9]|1[0-2]|jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec))?)(/0*[1-9][0-9]*)?(,([*?]|(0?[1-9]|1[0-2]|jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)(-(0?[1-9]|1[0-2]|jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec))?)(/0*[1-9][0-9]*)?)*$')",message="its fourth field (month) must be 1-12 or JAN-DEC: a value, a range like 3-5, a list like JAN,JUL, or *, each with an optional /step"
	// +kubebuilder:validation:XValidation:rule="self.split(' ').filter(f, f != '').size() != 5 || self.split(' ').filter(f, f != '')[4].matches('(?i)^([*?]|([0-6]|sun|mon|tue|wed|thu|fri|sat)(-([0-6]|sun|mon|tue|wed|thu|fri|sat))?)(/0*[1-9][0-9]*)?(,([*?]|([0-6]|sun|mon|tue|wed|thu|fri|sat)(-([0-6]|sun|mon|tue|wed|thu|fri|sat))?)(/0*[1-9][0-9]*)?)*$')",message="its fifth field (day of week) must be 0-6 (0 is Sunday) or SUN-SAT: a value, a range like MON-FRI, a list like SAT,SUN, or *, each with an optional /step"
	Schedule string `json:"schedule"`
	// durationMinutes is how long the window stays open after each opening.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10080
	DurationMinutes int32 `json:"durationMinutes"`
	// timeZone is the IANA time zone the schedule is read in (Europe/Berlin,
	// America/New_York). Defaults to UTC. Daylight saving time is followed:
	// a window at 02:30 does not open on the night that has no 02:30.
	// +kubebuilder:default=UTC
	// +optional
	TimeZone TimeZone `json:"timeZone,omitempty"`
}

// NodeActionSetSpec is one action to run on many VMs, a few at a time.
//
// The action fields (providerRef, action, parameters, escalation,
// activeDeadlineSeconds, backoffLimit, node) are a template of the member
// NodeActions and are checked by the same rules as a NodeAction's: a set is
// refused when its members would be.
//
// +kubebuilder:validation:XValidation:rule="!(self.action in ['rename', 'save_images']) || (has(self.parameters) && has(self.parameters.name))",messageExpression="'action ' + self.action + ' needs spec.parameters.name (the new name)'",fieldPath=".parameters.name",reason=FieldValueRequired
// +kubebuilder:validation:XValidation:rule="self.action != 'rebuild' || (has(self.parameters) && has(self.parameters.image))",message="action rebuild needs spec.parameters.image (an image id or slug)",fieldPath=".parameters.image",reason=FieldValueRequired
// +kubebuilder:validation:XValidation:rule="self.action != 'restore' || (has(self.parameters) && has(self.parameters.image) && self.parameters.image.matches('^[0-9]+$'))",message="action restore needs spec.parameters.image set to the numeric id of a backup of this node",fieldPath=".parameters.image",reason=FieldValueRequired
// +kubebuilder:validation:XValidation:rule="self.action != 'change_kernel' || (has(self.parameters) && has(self.parameters.kernel))",message="action change_kernel needs spec.parameters.kernel (a kernel id)",fieldPath=".parameters.kernel",reason=FieldValueRequired
// +kubebuilder:validation:XValidation:rule="self.action != 'change_backup_policy' || (has(self.parameters) && has(self.parameters.backupPolicy))",message="action change_backup_policy needs spec.parameters.backupPolicy (plan, and weekday for weekly)",fieldPath=".parameters.backupPolicy",reason=FieldValueRequired
// +kubebuilder:validation:XValidation:rule="self.action != 'resize' || (has(self.parameters) && (has(self.parameters.size) || has(self.parameters.resource) || has(self.parameters.resources)))",message="action resize needs spec.parameters.size (DigitalOcean size slug), or resource with amount, or resources (CloudsFor)",fieldPath=".parameters",reason=FieldValueRequired
// +kubebuilder:validation:XValidation:rule="self.action != 'recover' || (has(self.parameters) && has(self.parameters.recover))",message="action recover needs spec.parameters.recover.operation (REBOOT, REBUILD or RECREATE)",fieldPath=".parameters.recover",reason=FieldValueRequired
// +kubebuilder:validation:XValidation:rule="!has(self.escalation) || self.action == 'shutdown'",message="spec.escalation is only valid with action shutdown",fieldPath=".escalation"
// +kubebuilder:validation:XValidation:rule="has(self.nodeIDs) != has(self.nodeSelector)",message="set exactly one of spec.nodeIDs (the provider's VM ids) and spec.nodeSelector (Kubernetes Nodes by label)",fieldPath=".nodeIDs"
// +kubebuilder:validation:XValidation:rule="!has(self.node) || !has(self.node.name)",message="spec.node.name cannot be set on a NodeActionSet: each member finds its own Node (from nodeSelector, or from its VM)",fieldPath=".node.name"
// +kubebuilder:validation:XValidation:rule="oldSelf.providerRef == self.providerRef && oldSelf.action == self.action && has(oldSelf.parameters) == has(self.parameters) && (!has(self.parameters) || oldSelf.parameters == self.parameters) && has(oldSelf.confirm) == has(self.confirm) && (!has(self.confirm) || oldSelf.confirm == self.confirm) && has(oldSelf.activeDeadlineSeconds) == has(self.activeDeadlineSeconds) && (!has(self.activeDeadlineSeconds) || oldSelf.activeDeadlineSeconds == self.activeDeadlineSeconds) && has(oldSelf.backoffLimit) == has(self.backoffLimit) && (!has(self.backoffLimit) || oldSelf.backoffLimit == self.backoffLimit) && has(oldSelf.escalation) == has(self.escalation) && (!has(self.escalation) || oldSelf.escalation == self.escalation) && has(oldSelf.node) == has(self.node) && (!has(self.node) || oldSelf.node == self.node)",message="spec.providerRef, action, parameters, escalation, activeDeadlineSeconds, backoffLimit, node and confirm are immutable: create a new NodeActionSet for a different action; the targets, the rollout settings and runID may change"
type NodeActionSetSpec struct {
	// providerRef names the Provider (same namespace) every member calls.
	ProviderRef ProviderReference `json:"providerRef"`

	// action to run on every VM, as a NodeAction's spec.action.
	// +kubebuilder:validation:Enum=power_on;shutdown;power_off;reboot;power_cycle;rename;snapshot;enable_backups;disable_backups;change_backup_policy;restore;password_reset;resize;rebuild;change_kernel;enable_ipv6;check;recover;reinstall;save_images;enable_recovery_mode;disable_recovery_mode;lock_vm;unlock_vm;enable_accidental_protection;disable_accidental_protection;enable_node_compliance;disable_node_compliance;start;reset
	Action string `json:"action"`

	// parameters some actions need (name, image, size, ...), as a NodeAction's.
	// +optional
	Parameters *ActionParameters `json:"parameters,omitempty"`

	// escalation follows a shutdown with power_off when the VM is not off in
	// time, as a NodeAction's.
	// +optional
	Escalation *Escalation `json:"escalation,omitempty"`

	// activeDeadlineSeconds bounds each member's run, as a NodeAction's.
	// Defaults to 3600, at most 2592000 (30 days).
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=2592000
	// +kubebuilder:default=3600
	// +optional
	ActiveDeadlineSeconds *int64 `json:"activeDeadlineSeconds,omitempty"`

	// backoffLimit of each member, as a NodeAction's. Defaults to 0.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=10
	// +kubebuilder:default=0
	// +optional
	BackoffLimit *int32 `json:"backoffLimit,omitempty"`

	// node is applied to every member: drain the Kubernetes Node before the
	// action and wait for it after. Its name is left out: with nodeSelector
	// each member gets its Node's name; with nodeIDs each member finds the
	// Node from its VM.
	// +optional
	Node *NodeSpec `json:"node,omitempty"`

	// nodeIDs are the provider's VM ids to act on, in the order they are
	// started. Each appears once.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=10000
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=128
	// +kubebuilder:validation:items:XValidation:rule="self.matches('^[A-Za-z0-9][A-Za-z0-9._-]*$') && !self.contains('..')",message="each of spec.nodeIDs must be the provider's VM id: letters, digits, '.', '_' and '-' only, no '/' and no '..'"
	// +listType=set
	// +optional
	NodeIDs []string `json:"nodeIDs,omitempty"`

	// nodeSelector selects Kubernetes Nodes by label; each is acted on through
	// the VM under it (its spec.providerID for digitalocean, else its
	// compute.nodeaction.dev/vm annotation), in the order of their names.
	// Nodes that do not say which VM they run on are listed in
	// status.unmappedNodes, never guessed. Nodes that come to match while
	// the run goes are added to it.
	// +kubebuilder:validation:XValidation:rule="!has(self.matchExpressions) || self.matchExpressions.all(e, e.operator in ['In', 'NotIn', 'Exists', 'DoesNotExist'])",message="spec.nodeSelector.matchExpressions: operator must be In, NotIn, Exists or DoesNotExist"
	// +kubebuilder:validation:XValidation:rule="!has(self.matchExpressions) || self.matchExpressions.all(e, (e.operator in ['In', 'NotIn']) == (has(e.values) && size(e.values) > 0))",message="spec.nodeSelector.matchExpressions: In and NotIn need values; Exists and DoesNotExist take none"
	// +optional
	NodeSelector *metav1.LabelSelector `json:"nodeSelector,omitempty"`

	// maxUnavailable is how many members may be in flight at once: a count,
	// or a percentage of the set's VMs (rounded down, at least 1). Defaults
	// to 1.
	// +kubebuilder:validation:XIntOrString
	// +kubebuilder:validation:XValidation:rule="type(self) == int ? self >= 1 : self.matches('^[0-9]+%$') && int(self.replace('%', '')) >= 1 && int(self.replace('%', '')) <= 100",message="spec.maxUnavailable must be a count of at least 1 or a percentage from 1% to 100%"
	// +kubebuilder:default=1
	// +optional
	MaxUnavailable *intstr.IntOrString `json:"maxUnavailable,omitempty"`

	// maxFailures is the failure budget: when more members than this have
	// failed in the run, no new member starts (Stalled, reason
	// FailureBudgetExceeded); members in flight finish. Raise it, or change
	// runID, to go on. Defaults to 0: the first failure halts.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:default=0
	// +optional
	MaxFailures *int32 `json:"maxFailures,omitempty"`

	// pauseBetweenSeconds: a member that finished keeps its slot this long
	// before another member takes it.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=86400
	// +optional
	PauseBetweenSeconds int32 `json:"pauseBetweenSeconds,omitempty"`

	// paused stops new members from starting; members in flight finish.
	// +optional
	Paused bool `json:"paused,omitempty"`

	// windows, when set, are the only times new members start.
	// +kubebuilder:validation:MaxItems=16
	// +optional
	Windows []MaintenanceWindow `json:"windows,omitempty"`

	// confirm must equal metadata.name for destructive actions (reinstall,
	// rebuild, restore, recover with REBUILD or RECREATE).
	// +kubebuilder:validation:MaxLength=63
	// +optional
	Confirm string `json:"confirm,omitempty"`

	// runID starts a new run over every VM when changed: each member runs
	// again (its spec.runID is set to this), as slots allow.
	// +kubebuilder:validation:MaxLength=63
	// +optional
	RunID string `json:"runID,omitempty"`
}

// RemovedMember is a member deleted while its run went on. The set keeps
// its record so that the VM is not acted on twice in the run.
type RemovedMember struct {
	// name of the NodeAction.
	Name string `json:"name"`
	// nodeID of its VM.
	NodeID string `json:"nodeID"`
	// runID it was deleted in.
	// +optional
	RunID string `json:"runID,omitempty"`
	// phase it was in when deleted (Succeeded and Failed count as such).
	// +optional
	Phase Phase `json:"phase,omitempty"`
}

// NodeActionSetStatus is the progress of the set's current run.
type NodeActionSetStatus struct {
	// observedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// runID is the spec.runID this status describes.
	// +optional
	RunID string `json:"runID,omitempty"`

	// startTime is when the run started.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`

	// completionTime is when every member of the run had finished.
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`

	// total is the number of VMs in the run: pending + running + succeeded
	// + failed + removed.
	// +optional
	Total int32 `json:"total"`
	// pending VMs have no member started in this run yet.
	// +optional
	Pending int32 `json:"pending"`
	// blocked is how many of the pending VMs have another unfinished
	// NodeAction on them; they are started once it finished.
	// +optional
	Blocked int32 `json:"blocked,omitempty"`
	// running members are in flight: started and not finished.
	// +optional
	Running int32 `json:"running"`
	// succeeded members finished well in this run.
	// +optional
	Succeeded int32 `json:"succeeded"`
	// failed members finished badly in this run.
	// +optional
	Failed int32 `json:"failed"`
	// removed members were deleted before they finished; their VMs are not
	// acted on again in this run.
	// +optional
	Removed int32 `json:"removed,omitempty"`

	// inFlight names the members in flight (the first 100).
	// +kubebuilder:validation:MaxItems=100
	// +optional
	InFlight []string `json:"inFlight,omitempty"`

	// failedMembers names the members that failed in this run (the first 100).
	// +kubebuilder:validation:MaxItems=100
	// +optional
	FailedMembers []string `json:"failedMembers,omitempty"`

	// unmappedNodes are Nodes that match spec.nodeSelector but do not say
	// which VM they run on (the first 100).
	// +kubebuilder:validation:MaxItems=100
	// +optional
	UnmappedNodes []string `json:"unmappedNodes,omitempty"`

	// removedMembers are the members of this run deleted while it went on.
	// +optional
	RemovedMembers []RemovedMember `json:"removedMembers,omitempty"`

	// windowOpen is true while a maintenance window is open (always, when
	// spec.windows is empty).
	// +optional
	WindowOpen bool `json:"windowOpen,omitempty"`

	// windowEnd is when the open window closes.
	// +optional
	WindowEnd *metav1.Time `json:"windowEnd,omitempty"`

	// nextWindowStart is when the next maintenance window opens.
	// +optional
	NextWindowStart *metav1.Time `json:"nextWindowStart,omitempty"`

	// message is the latest word on the rollout.
	// +optional
	Message string `json:"message,omitempty"`

	// conditions: Ready, Reconciling, Stalled (kstatus).
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// NodeActionSet runs one action on many VMs (or the Kubernetes Nodes on
// them) through member NodeActions, at most maxUnavailable at a time,
// inside maintenance windows, and halts when more than maxFailures fail.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=nodeaction-operator,shortName=nas
// +kubebuilder:validation:XValidation:rule="self.metadata.name.size() <= 63 && !self.metadata.name.contains('.')",message="metadata.name of a NodeActionSet must be a DNS label (at most 63 characters, no dots): its members are named <set>.<VM> and carry the set's name in a label"
// +kubebuilder:validation:XValidation:rule="!(self.spec.action in ['reinstall', 'rebuild', 'restore'] || (self.spec.action == 'recover' && has(self.spec.parameters) && has(self.spec.parameters.recover) && self.spec.parameters.recover.operation.upperAscii() != 'REBOOT')) || (has(self.spec.confirm) && self.spec.confirm == self.metadata.name)",messageExpression="'this action is destructive: set spec.confirm to ' + self.metadata.name + ' (the name of this NodeActionSet) to confirm it on every VM of the set'",fieldPath=".spec.confirm",reason=FieldValueRequired
// +kubebuilder:printcolumn:name="Provider",type=string,JSONPath=`.spec.providerRef.name`
// +kubebuilder:printcolumn:name="Action",type=string,JSONPath=`.spec.action`
// +kubebuilder:printcolumn:name="Total",type=integer,JSONPath=`.status.total`
// +kubebuilder:printcolumn:name="Running",type=integer,JSONPath=`.status.running`
// +kubebuilder:printcolumn:name="Succeeded",type=integer,JSONPath=`.status.succeeded`
// +kubebuilder:printcolumn:name="Failed",type=integer,JSONPath=`.status.failed`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Next Window",type=date,JSONPath=`.status.nextWindowStart`,priority=1
// +kubebuilder:printcolumn:name="Message",type=string,JSONPath=`.status.message`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type NodeActionSet struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   NodeActionSetSpec   `json:"spec,omitempty"`
	Status NodeActionSetStatus `json:"status,omitempty"`
}

// GetConditions returns the status conditions.
func (s *NodeActionSet) GetConditions() []metav1.Condition { return s.Status.Conditions }

// +kubebuilder:object:root=true

// NodeActionSetList contains a list of NodeActionSet.
type NodeActionSetList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []NodeActionSet `json:"items"`
}

func init() {
	SchemeBuilder.Register(&NodeActionSet{}, &NodeActionSetList{})
}
