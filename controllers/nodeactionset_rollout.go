package controllers

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodeaction/nodeaction-operator/api/v1alpha1"
	"github.com/nodeaction/nodeaction-operator/internal/metrics"
	"github.com/nodeaction/nodeaction-operator/internal/window"
)

// How often a set looks again without an event to wake it.
const (
	// setRecheck: while members are in flight (their events wake it sooner).
	setRecheck = 5 * time.Minute
	// setRecheckNodes: while Nodes are selected, for Nodes that came to match.
	setRecheckNodes = 30 * time.Second
	// setRecheckBlocked: while a VM waits for another NodeAction.
	setRecheckBlocked = 30 * time.Second
	// setRecheckRefused: after the API server refused a member.
	setRecheckRefused = time.Minute
)

// rollout is one reconcile of one NodeActionSet.
type rollout struct {
	r      *NodeActionSetReconciler
	set    *v1alpha1.NodeActionSet
	before *v1alpha1.NodeActionSet
	now    time.Time
	log    logr.Logger
	// effects (events, metrics, finalizer releases) wait for the status
	// write that records what they tell or rely on.
	effects []func(context.Context) error
}

// reconcile moves the rollout on and fills in status; its error is only
// ever a failed read or write of the API.
func (ro *rollout) reconcile(ctx context.Context) (ctrl.Result, error) {
	set := ro.set
	members, others, err := ro.readNodeActions(ctx)
	if err != nil {
		return ctrl.Result{}, err
	}
	if !set.DeletionTimestamp.IsZero() {
		for _, m := range members {
			if !m.DeletionTimestamp.IsZero() && hasFinalizer(m) {
				ro.release(m)
			}
		}
		return ctrl.Result{}, nil
	}

	ro.beginRun()
	run := set.Status.RunID
	removed := ro.recordDeletions(members)
	ro.recordVanished(members, removed)
	for name, m := range members {
		if m.Spec.RunID == run {
			ro.r.expectations.observed(set.UID, name)
		}
		if finishedRun(m) || !m.DeletionTimestamp.IsZero() {
			ro.r.claims.drop(ro.claimKey(m.Spec.NodeID), name)
		}
	}
	in := planInput{set: set, run: run, members: members, others: others, removed: removed,
		expected: ro.r.expectations.pending(set.UID, ro.now), now: ro.now,
		claimedBy: func(nodeID string) string { return ro.r.claims.holder(ro.claimKey(nodeID), ro.now) }}

	var g gates
	ws, err := window.Parse(set.Spec.Windows, ro.now)
	if err != nil {
		g.invalid, g.invalidReason = err.Error(), v1alpha1.ReasonInvalidWindow
	}
	g.window = window.At(ws, ro.now)
	p := &v1alpha1.Provider{}
	if err := ro.r.Client.Get(ctx, client.ObjectKey{Namespace: set.Namespace, Name: set.Spec.ProviderRef.Name}, p); err != nil {
		if !apierrors.IsNotFound(err) {
			return ctrl.Result{}, err
		}
		g.noProvider = fmt.Sprintf("Provider %q not found in namespace %q", set.Spec.ProviderRef.Name, set.Namespace)
	}
	var unmapped []string
	if g.noProvider == "" || set.Spec.NodeSelector == nil {
		in.targets, unmapped, err = targets(ctx, ro.r.Client, set, p)
		var unreadable *nodesUnreadable
		var badSelector *invalidSelector
		switch {
		case errors.As(err, &badSelector):
			g.invalid, g.invalidReason = err.Error(), v1alpha1.ReasonInvalidSelector
		case errors.As(err, &unreadable):
			if g.invalid == "" {
				g.invalid, g.invalidReason = err.Error(), v1alpha1.ReasonNodesUnreadable
			}
		case err != nil:
			return ctrl.Result{}, err
		}
	}
	if st := set.Status; st.CompletionTime != nil && ro.before.Status.ObservedGeneration == set.Generation {
		// A finished run takes in no Node that came to match since; a spec
		// change (or a new runID) does.
		in.targets = startedOnly(in, in.targets)
	}
	pl := plan(in)
	if pl.collision != "" && g.invalid == "" {
		g.invalid, g.invalidReason = pl.collision+": the set cannot tell them apart", v1alpha1.ReasonMemberNameCollision
	}
	g.halted = pl.failed > maxFailures(set)
	g.paused = set.Spec.Paused

	refused := ""
	if g.open() {
		if refused, err = ro.start(ctx, &pl); err != nil {
			return ctrl.Result{}, err
		}
	}
	ro.summarize(&pl, g, unmapped, refused)
	ro.observe(&pl)
	return ro.requeue(&pl, g, refused), nil
}

// startedOnly keeps the targets the run started.
func startedOnly(in planInput, ts []setTarget) []setTarget {
	var out []setTarget
	for _, t := range ts {
		name := memberName(in.set.Name, t.nodeID)
		_, removed := in.removed[name]
		if m := in.members[name]; removed || (m != nil && m.Spec.RunID == in.run) {
			out = append(out, t)
		}
	}
	return out
}

// claimKey names a VM of this set's Provider.
func (ro *rollout) claimKey(nodeID string) string {
	return claimKey(ro.set.Namespace, ro.set.Spec.ProviderRef.Name, nodeID)
}

// readNodeActions splits the namespace's NodeActions into the set's
// members (by name) and the others, and releases those an earlier set of
// this name left being deleted.
func (ro *rollout) readNodeActions(ctx context.Context) (map[string]*v1alpha1.NodeAction, []*v1alpha1.NodeAction, error) {
	all := &v1alpha1.NodeActionList{}
	if err := ro.r.Client.List(ctx, all, client.InNamespace(ro.set.Namespace), client.UnsafeDisableDeepCopy); err != nil {
		return nil, nil, err
	}
	members := map[string]*v1alpha1.NodeAction{}
	var others []*v1alpha1.NodeAction
	for i := range all.Items {
		na := &all.Items[i]
		switch {
		case controlledBy(na, ro.set):
			members[na.Name] = na
		case na.Labels[v1alpha1.LabelNodeActionSet] == ro.set.Name && !na.DeletionTimestamp.IsZero() && hasFinalizer(na):
			// Nobody records it now.
			ro.release(na)
			others = append(others, na)
		default:
			others = append(others, na)
		}
	}
	return members, others, nil
}

// gates are what may hold new starts back.
type gates struct {
	invalid, invalidReason string
	noProvider             string
	halted                 bool
	window                 window.State
	paused                 bool
}

func (g gates) open() bool {
	return g.invalid == "" && g.noProvider == "" && !g.halted && !g.paused && g.window.Open
}

// beginRun starts a run: the first, or a new spec.runID.
func (ro *rollout) beginRun() {
	st := &ro.set.Status
	if st.StartTime != nil && st.RunID == ro.set.Spec.RunID {
		return
	}
	if st.StartTime != nil {
		ro.event(corev1.EventTypeNormal, "NewRun", "Run", "spec.runID changed from %q to %q: every VM runs again", st.RunID, ro.set.Spec.RunID)
	}
	st.RunID = ro.set.Spec.RunID
	st.StartTime = ptrTime(metav1.NewTime(ro.now))
	st.CompletionTime = nil
	st.RemovedMembers = nil
}

// recordDeletions keeps a record of each member of the run deleted before
// it was released, so its VM is not started again in the run (its action
// may have run), and releases it once the record is written. It returns
// the run's records by member name.
func (ro *rollout) recordDeletions(members map[string]*v1alpha1.NodeAction) map[string]v1alpha1.RemovedMember {
	st := &ro.set.Status
	byName := map[string]v1alpha1.RemovedMember{}
	for _, rec := range st.RemovedMembers {
		byName[rec.Name] = rec
	}
	var names []string
	for name, m := range members {
		if !m.DeletionTimestamp.IsZero() && hasFinalizer(m) {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		m := members[name]
		if _, done := byName[name]; !done && m.Spec.RunID == st.RunID {
			rec := removalRecord(name, m)
			st.RemovedMembers = append(st.RemovedMembers, rec)
			byName[name] = rec
			if !rec.Phase.Finished() {
				ro.eventAbout(m, corev1.EventTypeWarning, v1alpha1.ReasonMembersRemoved, "Record",
					"member %s (VM %s) was deleted in phase %s; its VM is not started again in run %q (its action may have run)", name, m.Spec.NodeID, rec.Phase, st.RunID)
			}
		}
		ro.release(m)
	}
	return byName
}

// removalRecord is what the set keeps of member m (named name) of its
// spec.runID's run: the phase it was in, Pending before its run began.
func removalRecord(name string, m *v1alpha1.NodeAction) v1alpha1.RemovedMember {
	phase := v1alpha1.PhasePending
	if m.Status.RunID == m.Spec.RunID && m.Status.Phase != "" {
		phase = m.Status.Phase
	}
	return v1alpha1.RemovedMember{Name: name, NodeID: m.Spec.NodeID, RunID: m.Spec.RunID, Phase: phase}
}

// recordVanished records members of this run that were seen and are gone
// with no record: deleted with the set's finalizer removed by hand. Their
// VMs are not started again in the run, as for any deleted member.
func (ro *rollout) recordVanished(members map[string]*v1alpha1.NodeAction, removed map[string]v1alpha1.RemovedMember) {
	st := &ro.set.Status
	for _, rec := range ro.r.seen.vanished(ro.set, st.RunID, members) {
		if _, done := removed[rec.Name]; done {
			continue
		}
		st.RemovedMembers = append(st.RemovedMembers, rec)
		removed[rec.Name] = rec
		if !rec.Phase.Finished() {
			ro.eventAbout(nil, corev1.EventTypeWarning, v1alpha1.ReasonMembersRemoved, "Record",
				"member %s (VM %s) was deleted in phase %s without the set's finalizer; its VM is not started again in run %q (its action may have run)", rec.Name, rec.NodeID, rec.Phase, st.RunID)
		}
	}
}

// release removes the set's finalizer from a deleted member once status is written.
func (ro *rollout) release(m *v1alpha1.NodeAction) {
	key := client.ObjectKeyFromObject(m)
	ro.effects = append(ro.effects, func(ctx context.Context) error {
		latest := &v1alpha1.NodeAction{}
		if err := ro.r.Client.Get(ctx, key, latest); err != nil {
			return client.IgnoreNotFound(err)
		}
		if latest.DeletionTimestamp.IsZero() {
			return nil
		}
		return releaseMember(ctx, ro.r.Client, latest)
	})
}

// releaseMember removes the set's finalizer from na.
func releaseMember(ctx context.Context, c client.Client, na *v1alpha1.NodeAction) error {
	if !hasFinalizer(na) {
		return nil
	}
	before := na.DeepCopy()
	kept := na.Finalizers[:0:0]
	for _, f := range na.Finalizers {
		if f != v1alpha1.FinalizerNodeActionSet {
			kept = append(kept, f)
		}
	}
	na.Finalizers = kept
	return client.IgnoreNotFound(c.Patch(ctx, na, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})))
}

// releaseOrphans releases the deleted members of a set that is gone.
func (r *NodeActionSetReconciler) releaseOrphans(ctx context.Context, namespace, name string, keep *v1alpha1.NodeActionSet) error {
	list := &v1alpha1.NodeActionList{}
	if err := r.Client.List(ctx, list, client.InNamespace(namespace), client.MatchingLabels{v1alpha1.LabelNodeActionSet: name}); err != nil {
		return err
	}
	for i := range list.Items {
		na := &list.Items[i]
		if na.DeletionTimestamp.IsZero() || (keep != nil && controlledBy(na, keep)) {
			continue
		}
		if err := releaseMember(ctx, r.Client, na); err != nil {
			return err
		}
	}
	return nil
}

// start starts members on free slots, in target order, skipping blocked
// VMs. It stops at the first sign that the cache is behind (the member
// exists, or changed since read): the next reconcile sees more. It
// returns the API server's refusal of a member, if any.
func (ro *rollout) start(ctx context.Context, pl *rolloutPlan) (string, error) {
	set := ro.set
	for i := range pl.vms {
		if pl.free == 0 {
			break
		}
		v := &pl.vms[i]
		if v.state != vmPending || v.blockedBy != "" {
			continue
		}
		run := set.Status.RunID
		key := ro.claimKey(v.target.nodeID)
		if holder, ok := ro.r.claims.claim(key, v.member, ro.now); !ok {
			// Another set took the VM since this reconcile read the cache.
			v.blockedBy = fmt.Sprintf("NodeAction %s was just started on VM %s", holder, v.target.nodeID)
			pl.blocked++
			continue
		}
		var err error
		var m *v1alpha1.NodeAction
		if v.existing == nil {
			m = memberFor(set, v.target, run)
			err = ro.r.Client.Create(ctx, m)
		} else {
			m = v.existing.DeepCopy()
			before := m.DeepCopy()
			m.Spec.RunID = run
			err = ro.r.Client.Patch(ctx, m, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
		}
		if err != nil {
			ro.r.claims.drop(key, v.member)
		}
		switch {
		case apierrors.IsAlreadyExists(err) && v.existing == nil:
			// The cache is behind (its create event wakes the set), or the
			// member is in another shard, which this manager never sees.
			return ro.memberElsewhere(ctx, v)
		case apierrors.IsAlreadyExists(err) || apierrors.IsConflict(err):
			ro.log.V(1).Info("cache behind; looking again", "member", v.member, "error", err.Error())
			return "", nil
		case apierrors.IsInvalid(err) || apierrors.IsForbidden(err):
			return fmt.Sprintf("the API server refused member %s (VM %s): %s", v.member, v.target.nodeID, err.Error()), nil
		case err != nil:
			return "", err
		}
		ro.r.expectations.expect(set.UID, v.member, run, ro.now)
		v.state, v.slot, v.existing = vmRunning, true, nil
		pl.pending--
		pl.running++
		pl.free--
		// Told now, not after the status write: the start is done and the
		// next reconcile sees the member, so nothing would tell it again.
		ro.announce(m, fmt.Sprintf("started %s on VM %s (member %s): %d of at most %d in flight",
			set.Spec.Action, v.target.nodeID, v.member, pl.running+pl.cooling, pl.limit))
	}
	return "", nil
}

// memberElsewhere reads a member the set could not create because it
// exists: when it carries another shard's label than the set (the set was
// relabelled, its members were not), this manager will never see it, and
// what to do is told; otherwise the cache is behind and "" is returned.
func (ro *rollout) memberElsewhere(ctx context.Context, v *vmEntry) (string, error) {
	m := &v1alpha1.NodeAction{}
	if err := ro.r.reader().Get(ctx, client.ObjectKey{Namespace: ro.set.Namespace, Name: v.member}, m); err != nil {
		return "", client.IgnoreNotFound(err)
	}
	theirs, ours := m.Labels[v1alpha1.LabelShard], ro.set.Labels[v1alpha1.LabelShard]
	if theirs == ours {
		ro.log.V(1).Info("cache behind; looking again", "member", v.member)
		return "", nil
	}
	return fmt.Sprintf("member %s (VM %s) exists with label %s=%q and the set has %q: this manager does not see it. "+
		"Give the set's members the set's shard: kubectl label nodeactions -n %s -l %s=%s %s=%s --overwrite",
		v.member, v.target.nodeID, v1alpha1.LabelShard, theirs, ours,
		ro.set.Namespace, v1alpha1.LabelNodeActionSet, ro.set.Name, v1alpha1.LabelShard, ours), nil
}

// requeue is when the set should look again without an event: when a
// cooling slot frees, a window opens or closes, Nodes may have changed, a
// blocked VM may be free, a start is unconfirmed; and now and then while
// members are in flight.
func (ro *rollout) requeue(pl *rolloutPlan, g gates, refused string) ctrl.Result {
	var waits []time.Duration
	at := func(t time.Time) {
		if !t.IsZero() {
			waits = append(waits, max(t.Sub(ro.now), 100*time.Millisecond))
		}
	}
	if g.invalidReason == v1alpha1.ReasonNodesUnreadable {
		return ctrl.Result{RequeueAfter: setRecheckRefused}
	}
	if g.invalid != "" {
		return ctrl.Result{}
	}
	if ro.set.Status.CompletionTime != nil && ro.set.Spec.NodeSelector == nil {
		return ctrl.Result{}
	}
	if refused != "" {
		waits = append(waits, setRecheckRefused)
	}
	at(pl.nextFree)
	if pl.pending > 0 {
		at(g.window.Next)
		at(g.window.End)
	}
	if len(ro.r.expectations.pending(ro.set.UID, ro.now)) > 0 {
		waits = append(waits, 2*time.Second)
	}
	if ro.set.Spec.NodeSelector != nil || g.noProvider != "" {
		waits = append(waits, setRecheckNodes)
	}
	if pl.blocked > 0 {
		waits = append(waits, setRecheckBlocked)
	}
	if pl.running > 0 {
		waits = append(waits, setRecheck)
	}
	if len(waits) == 0 {
		return ctrl.Result{}
	}
	res := waits[0]
	for _, w := range waits[1:] {
		res = min(res, w)
	}
	return ctrl.Result{RequeueAfter: res}
}

// announce tells of a member just started: an event naming it, and the count.
func (ro *rollout) announce(m *v1alpha1.NodeAction, note string) {
	metrics.SetStarts.WithLabelValues(ro.set.Namespace, ro.set.Name).Inc()
	if ro.r.Recorder != nil {
		ro.r.Recorder.Eventf(ro.set, m.DeepCopy(), corev1.EventTypeNormal, "Started", "Start", "%s", cut(note, maxNote))
	}
}

// observe queues the metrics of the run as it stands.
func (ro *rollout) observe(pl *rolloutPlan) {
	ns, name := ro.set.Namespace, ro.set.Name
	counts := map[string]int{"pending": pl.pending, "running": pl.running, "succeeded": pl.succeeded, "failed": pl.failed, "removed": pl.removed}
	halted := 0.0
	if pl.failed > maxFailures(ro.set) {
		halted = 1
	}
	ro.effects = append(ro.effects, func(context.Context) error {
		for state, n := range counts {
			metrics.SetMembers.WithLabelValues(ns, name, state).Set(float64(n))
		}
		metrics.SetHalted.WithLabelValues(ns, name).Set(halted)
		return nil
	})
}

// event is emitted once the status write that records it lands.
func (ro *rollout) event(eventType, reason, action, format string, args ...any) {
	ro.eventAbout(nil, eventType, reason, action, format, args...)
}

// eventAbout is an event on the set that names a member as its related
// object: the events API folds events that differ only in their note into
// one series, so each member's start stays an event of its own.
func (ro *rollout) eventAbout(member *v1alpha1.NodeAction, eventType, reason, action, format string, args ...any) {
	if ro.r.Recorder == nil {
		return
	}
	obj := ro.set
	var related runtime.Object
	if member != nil {
		related = member.DeepCopy()
	}
	note := cut(fmt.Sprintf(format, args...), maxNote)
	ro.effects = append(ro.effects, func(context.Context) error {
		ro.r.Recorder.Eventf(obj, related, eventType, reason, action, "%s", note)
		return nil
	})
}

// commit writes status if it changed (failing on a stale object), then
// runs the effects.
func (ro *rollout) commit(ctx context.Context) error {
	s := ro.set
	s.Status.ObservedGeneration = s.Generation
	for i := range s.Status.Conditions {
		s.Status.Conditions[i].ObservedGeneration = s.Generation
	}
	if !equality.Semantic.DeepEqual(ro.before.Status, s.Status) {
		// The whole status, so counts at zero are written too (a merge patch
		// leaves out what equals the old value, and "failed: 0" would never
		// show); it fails on a stale object like any update.
		if err := ro.r.Client.Status().Update(ctx, s); err != nil {
			return err
		}
	}
	for _, f := range ro.effects {
		if err := f(ctx); err != nil {
			return err
		}
	}
	ro.effects = nil
	return nil
}
