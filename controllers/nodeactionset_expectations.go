package controllers

import (
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// expectationTTL is how long a start is counted though the cache does not
// show it yet; past it the member was deleted or the write was lost, and
// the cache's word is taken.
const expectationTTL = 2 * time.Minute

// memberExpectations remembers the members a set started that the cache
// has not shown yet (ReplicaSet's expectations): until it does, they count
// as in flight, so a reconcile on a stale cache never starts more than
// maxUnavailable.
type memberExpectations struct {
	mu   sync.Mutex
	sets map[types.UID]map[string]expectation
}

type expectation struct {
	runID string
	at    time.Time
}

// expect records that member name was started in run.
func (e *memberExpectations) expect(set types.UID, name, run string, now time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.sets == nil {
		e.sets = map[types.UID]map[string]expectation{}
	}
	if e.sets[set] == nil {
		e.sets[set] = map[string]expectation{}
	}
	e.sets[set][name] = expectation{runID: run, at: now}
}

// pending returns the set's expected members (name → run), dropping
// those older than expectationTTL.
func (e *memberExpectations) pending(set types.UID, now time.Time) map[string]string {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := map[string]string{}
	for name, x := range e.sets[set] {
		if now.Sub(x.at) > expectationTTL {
			delete(e.sets[set], name)
			continue
		}
		out[name] = x.runID
	}
	return out
}

// observed drops an expectation the cache now shows.
func (e *memberExpectations) observed(set types.UID, name string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.sets[set], name)
}

// forget drops a deleted set's expectations.
func (e *memberExpectations) forget(set types.UID) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.sets, set)
}
