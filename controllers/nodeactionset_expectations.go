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
	// Sets deleted meanwhile leave theirs behind: drop what has expired.
	for uid, names := range e.sets {
		for n, x := range names {
			if now.Sub(x.at) > expectationTTL {
				delete(names, n)
			}
		}
		if len(names) == 0 {
			delete(e.sets, uid)
		}
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

// vmClaims are the VMs sets of this manager have just started a member on,
// shared by every set, so two sets reconciled at the same moment never
// both start a member on one VM before the cache shows either. A claim
// lasts until its set sees the member's run end, or expectationTTL.
type vmClaims struct {
	mu     sync.Mutex
	claims map[string]vmClaim // by namespace/provider/nodeID
}

type vmClaim struct {
	member string
	at     time.Time
}

func claimKey(namespace, provider, nodeID string) string {
	return namespace + "/" + provider + "/" + nodeID
}

// claim gives the VM to member unless another member holds it; it returns
// the holder when it does not.
func (c *vmClaims) claim(key, member string, now time.Time) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.claims == nil {
		c.claims = map[string]vmClaim{}
	}
	if x, ok := c.claims[key]; ok && x.member != member && now.Sub(x.at) <= expectationTTL {
		return x.member, false
	}
	for k, x := range c.claims {
		if now.Sub(x.at) > expectationTTL {
			delete(c.claims, k)
		}
	}
	c.claims[key] = vmClaim{member: member, at: now}
	return "", true
}

// holder is the member holding the VM, if any.
func (c *vmClaims) holder(key string, now time.Time) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if x, ok := c.claims[key]; ok && now.Sub(x.at) <= expectationTTL {
		return x.member
	}
	return ""
}

// drop releases member's claim on the VM.
func (c *vmClaims) drop(key, member string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if x, ok := c.claims[key]; ok && x.member == member {
		delete(c.claims, key)
	}
}
