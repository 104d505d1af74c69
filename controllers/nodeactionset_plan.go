package controllers

import (
	"fmt"
	"sort"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/nodeaction/nodeaction-operator/api/v1alpha1"
)

// Slot accounting. A set may have at most maxUnavailable VMs "in flight":
//
//   - A member is in flight from the moment the set started it (created
//     it, or gave it the run's runID) until its NodeAction run has ended
//     (status.runID = spec.runID and phase Succeeded or Failed), whatever
//     phase it is in meanwhile: Pending, Draining, Submitting, Running,
//     WaitingForNode. A member left over from an earlier run that has not
//     ended is in flight too: its VM is busy.
//   - A started member that waits NodeBusy (another NodeAction on its VM
//     was created first) is in flight: it will start on its own as soon
//     as the VM is free, and nothing could hold it back then.
//   - A member that ended less than pauseBetweenSeconds ago still holds
//     its slot (it is "cooling"), though it counts as succeeded or failed.
//   - A VM the set has not started holds no slot, whatever holds it back:
//     another unfinished NodeAction on it (the set does not create a
//     member there until that one ended: "blocked"), a closed window, a
//     pause, the failure budget.
//
// So the set never makes a VM unavailable beyond maxUnavailable, counted
// on what the provider runs, not only on what status says.

// vmState is where one VM of a set is in the current run.
type vmState string

const (
	vmPending   vmState = "pending"
	vmRunning   vmState = "running"
	vmSucceeded vmState = "succeeded"
	vmFailed    vmState = "failed"
	vmRemoved   vmState = "removed"
)

// vmEntry is one VM of a set's run.
type vmEntry struct {
	target setTarget
	member string
	state  vmState
	// blockedBy says why a pending VM cannot start now ("" when it can).
	blockedBy string
	// slot: in flight, or finished less than pauseBetweenSeconds ago.
	slot bool
	// cooling until freeAt: finished, still holding its slot.
	freeAt time.Time
	// existing is the member to give the run's runID (nil: create one).
	existing *v1alpha1.NodeAction
}

// planInput is what a set's reconcile read.
type planInput struct {
	set     *v1alpha1.NodeActionSet
	run     string
	targets []setTarget
	// members are the NodeActions the set controls, by name.
	members map[string]*v1alpha1.NodeAction
	// others are the namespace's other NodeActions.
	others []*v1alpha1.NodeAction
	// removed are the run's members deleted before it ended, by name.
	removed map[string]v1alpha1.RemovedMember
	// expected are members started (name → run) the cache does not show yet.
	expected map[string]string
	// claimedBy says which member of any set this manager just started on
	// a VM ("" when none).
	claimedBy func(nodeID string) string
	now       time.Time
}

// rolloutPlan is the run as it stands.
type rolloutPlan struct {
	vms                                                   []vmEntry
	pending, blocked, running, succeeded, failed, removed int
	cooling                                               int
	// limit is maxUnavailable for this set's size; free the slots left.
	limit, free int
	// nextFree is when the first cooling slot frees (zero: none cooling).
	nextFree time.Time
	// collision names two targets that would share a member name.
	collision string
}

// plan classifies every VM of the run and counts the slots.
func plan(in planInput) rolloutPlan {
	var p rolloutPlan
	busy := map[string]string{}  // nodeID → another unfinished NodeAction on it
	taken := map[string]string{} // member name → held by a NodeAction the set does not control
	for _, o := range in.others {
		taken[o.Name] = o.Name
		if o.Spec.ProviderRef.Name == in.set.Spec.ProviderRef.Name && !finishedRun(o) && o.DeletionTimestamp.IsZero() {
			if _, seen := busy[o.Spec.NodeID]; !seen {
				busy[o.Spec.NodeID] = o.Name
			}
		}
	}
	pause := time.Duration(in.set.Spec.PauseBetweenSeconds) * time.Second
	seen := map[string]string{} // member name → nodeID
	add := func(t setTarget) {
		name := memberName(in.set.Name, t.nodeID)
		if other, dup := seen[name]; dup {
			if other != t.nodeID && p.collision == "" {
				p.collision = fmt.Sprintf("VM ids %q and %q would both be member %s", other, t.nodeID, name)
			}
			if other == t.nodeID && p.collision == "" && in.set.Spec.NodeSelector != nil {
				p.collision = fmt.Sprintf("two Nodes say they run on VM %q", t.nodeID)
			}
			return
		}
		seen[name] = t.nodeID
		p.vms = append(p.vms, classify(in, t, name, busy, taken, pause))
	}
	for _, t := range in.targets {
		add(t)
	}
	// Members started in this run (or still in flight) whose VM is no
	// longer a target stay part of the run.
	var extra []string
	for name, m := range in.members {
		if _, ok := seen[name]; !ok && (m.Spec.RunID == in.run || !finishedRun(m)) {
			extra = append(extra, name)
		}
	}
	for name := range in.removed {
		if _, ok := seen[name]; !ok && in.members[name] == nil {
			extra = append(extra, name)
		}
	}
	sort.Strings(extra)
	for _, name := range extra {
		if m := in.members[name]; m != nil {
			add(setTarget{nodeID: m.Spec.NodeID, node: nodeNameOf(m)})
		} else {
			add(setTarget{nodeID: in.removed[name].NodeID})
		}
	}

	for i := range p.vms {
		v := &p.vms[i]
		switch v.state {
		case vmPending:
			p.pending++
			if v.blockedBy != "" {
				p.blocked++
			}
		case vmRunning:
			p.running++
		case vmSucceeded:
			p.succeeded++
		case vmFailed:
			p.failed++
		case vmRemoved:
			p.removed++
		}
		if v.slot && v.state != vmRunning {
			p.cooling++
			if p.nextFree.IsZero() || v.freeAt.Before(p.nextFree) {
				p.nextFree = v.freeAt
			}
		}
	}
	p.limit = maxUnavailable(in.set, len(p.vms))
	p.free = max(p.limit-p.running-p.cooling, 0)
	return p
}

// classify says where one VM is in the run.
func classify(in planInput, t setTarget, name string, busy, taken map[string]string, pause time.Duration) vmEntry {
	v := vmEntry{target: t, member: name, state: vmPending}
	if rec, ok := in.removed[name]; ok {
		switch rec.Phase {
		case v1alpha1.PhaseSucceeded:
			v.state = vmSucceeded
		case v1alpha1.PhaseFailed:
			v.state = vmFailed
		default:
			v.state = vmRemoved
		}
		return v
	}
	expRun, expected := in.expected[name]
	expected = expected && expRun == in.run
	m := in.members[name]
	if m == nil {
		switch {
		case expected:
			v.state, v.slot = vmRunning, true
		case taken[name] != "":
			v.blockedBy = fmt.Sprintf("the name %s is taken by a NodeAction this set does not own", name)
		case busy[t.nodeID] != "":
			v.blockedBy = fmt.Sprintf("NodeAction %s is unfinished on VM %s", busy[t.nodeID], t.nodeID)
		case claimed(in, t.nodeID, name) != "":
			v.blockedBy = fmt.Sprintf("NodeAction %s was just started on VM %s", claimed(in, t.nodeID, name), t.nodeID)
		}
		return v
	}
	started := m.Spec.RunID == in.run || expected
	ended := ranBefore(m, in.run)
	switch {
	case !finishedRun(m) || (started && m.Spec.RunID != in.run):
		// In flight: this run's, or an earlier one's (its VM is busy), or
		// given this run's runID and not yet seen so.
		v.state, v.slot = vmRunning, true
	case started && m.Status.Phase == v1alpha1.PhaseSucceeded:
		v.state = vmSucceeded
	case started:
		v.state = vmFailed
	case ended != nil:
		// This run already ended on the VM, and the member was given
		// another runID since (by hand): the run is not sent again.
		v.state = vmFailed
		if ended.Phase == v1alpha1.PhaseSucceeded {
			v.state = vmSucceeded
		}
	case !m.DeletionTimestamp.IsZero():
		v.blockedBy = fmt.Sprintf("member %s is being deleted", name)
	case busy[t.nodeID] != "":
		v.blockedBy = fmt.Sprintf("NodeAction %s is unfinished on VM %s", busy[t.nodeID], t.nodeID)
	case claimed(in, t.nodeID, name) != "":
		v.blockedBy = fmt.Sprintf("NodeAction %s was just started on VM %s", claimed(in, t.nodeID, name), t.nodeID)
	default:
		v.existing = m
	}
	if started && (v.state == vmSucceeded || v.state == vmFailed) && pause > 0 {
		if free := finishedAt(m).Add(pause); free.After(in.now) {
			v.slot, v.freeAt = true, free
		}
	}
	return v
}

// ranBefore is the record of run in m's history, or nil.
func ranBefore(m *v1alpha1.NodeAction, run string) *v1alpha1.RunRecord {
	for i := range m.Status.History {
		if r := &m.Status.History[i]; r.RunID == run && r.Phase.Finished() {
			return r
		}
	}
	return nil
}

// claimed is the member of another set this manager just started on the
// VM, or "".
func claimed(in planInput, nodeID, self string) string {
	if in.claimedBy == nil {
		return ""
	}
	if h := in.claimedBy(nodeID); h != self {
		return h
	}
	return ""
}

// finishedAt is when a member's run ended on the operator's clock: the
// Ready (success) or Stalled (failure) condition's transition, or the
// completion time if later (the provider's, possibly earlier than seen).
func finishedAt(m *v1alpha1.NodeAction) time.Time {
	var at time.Time
	if m.Status.CompletionTime != nil {
		at = m.Status.CompletionTime.Time
	}
	typ := v1alpha1.ConditionStalled
	if m.Status.Phase == v1alpha1.PhaseSucceeded {
		typ = v1alpha1.ConditionReady
	}
	if c := apimeta.FindStatusCondition(m.Status.Conditions, typ); c != nil && c.LastTransitionTime.After(at) {
		at = c.LastTransitionTime.Time
	}
	return at
}

// maxUnavailable is spec.maxUnavailable for a set of total VMs: a count,
// or a percentage rounded down; at least 1.
func maxUnavailable(set *v1alpha1.NodeActionSet, total int) int {
	mu := intstr.FromInt32(1)
	if set.Spec.MaxUnavailable != nil {
		mu = *set.Spec.MaxUnavailable
	}
	n, err := intstr.GetScaledValueFromIntOrPercent(&mu, total, false)
	if err != nil || n < 1 {
		return 1
	}
	return n
}

// maxFailures is spec.maxFailures (default 0).
func maxFailures(set *v1alpha1.NodeActionSet) int {
	if set.Spec.MaxFailures == nil {
		return 0
	}
	return int(*set.Spec.MaxFailures)
}

func nodeNameOf(m *v1alpha1.NodeAction) string {
	if m.Spec.Node != nil {
		return m.Spec.Node.Name
	}
	return ""
}
