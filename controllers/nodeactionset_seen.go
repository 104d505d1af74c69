package controllers

import (
	"sort"
	"sync"

	"k8s.io/apimachinery/pkg/types"

	"github.com/nodeaction/nodeaction-operator/api/v1alpha1"
)

// seenMembers remembers, per set, the members of its current run the
// manager has seen. The set's finalizer makes a member's deletion wait for
// its record (status.removedMembers); a member deleted with that finalizer
// removed by hand leaves no record, and without this memory its VM would
// look never started and get the run's action a second time. (A deletion
// while no manager runs is not seen: the finalizer is what covers that.)
type seenMembers struct {
	mu   sync.Mutex
	sets map[types.NamespacedName]*seenRun
}

type seenRun struct {
	uid     types.UID
	run     string
	members map[string]v1alpha1.RemovedMember
}

// vanished records the members of run now in members, and returns the
// ones seen earlier in the run that are gone from it, in name order, as
// removal records carrying the phase they were last seen in. They stay
// remembered (a failed status write must not lose them) until the run
// changes.
func (s *seenMembers) vanished(set *v1alpha1.NodeActionSet, run string, members map[string]*v1alpha1.NodeAction) []v1alpha1.RemovedMember {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sets == nil {
		s.sets = map[types.NamespacedName]*seenRun{}
	}
	key := types.NamespacedName{Namespace: set.Namespace, Name: set.Name}
	r := s.sets[key]
	if r == nil || r.uid != set.UID || r.run != run {
		r = &seenRun{uid: set.UID, run: run, members: map[string]v1alpha1.RemovedMember{}}
		s.sets[key] = r
	}
	var gone []v1alpha1.RemovedMember
	for name, rec := range r.members {
		if members[name] == nil {
			gone = append(gone, rec)
		}
	}
	for name, m := range members {
		if m.Spec.RunID == run {
			r.members[name] = removalRecord(name, m)
		}
	}
	sort.Slice(gone, func(i, j int) bool { return gone[i].Name < gone[j].Name })
	return gone
}

// forget drops a deleted set's memory.
func (s *seenMembers) forget(set types.NamespacedName) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.sets, set)
}
