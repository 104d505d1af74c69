package fakecloud

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"
	"time"
)

// What the cloud picks where the seed documents are silent. The faithful
// defaults are the choices hardest on a client (docs/fakecloud.md says why
// for each); Compat brings back what the drivers written before issue 13
// assumed, and Adversary varies the choices per request.

// DefaultE2EWorkflowDelay is how long an E2E node keeps its old state after
// the API accepted an action, before the workflow shows: the seed says
// long-running actions answer "done" at once and "the node will transition
// through the actual workflow asynchronously".
const DefaultE2EWorkflowDelay = 3 * time.Second

// Compat restores choices today's drivers rely on and the seeds do not
// promise. Test harnesses set it (through TestWorlds) until the drivers are
// fixed; the standalone program never does.
type Compat struct {
	// NewestFirst lists DigitalOcean and CloudsFor actions newest first.
	// Faithful: oldest first (neither seed fixes an order).
	NewestFirst bool
	// SubSecondTimes gives CloudsFor timestamps milliseconds. Faithful:
	// whole seconds, as the seed's examples show them.
	SubSecondTimes bool
	// E2EWorkflowAtOnce shows an E2E action's workflow (and its end) from
	// the moment the API accepts it. Faithful: DefaultE2EWorkflowDelay.
	E2EWorkflowAtOnce bool
}

// Issue13Compat is the world the drivers on main before issue 13 pass in.
func Issue13Compat() Compat {
	return Compat{NewestFirst: true, SubSecondTimes: true, E2EWorkflowAtOnce: true}
}

// listOrder is the order of a list whose order the seed leaves open.
type listOrder string

const (
	oldestFirst listOrder = "oldest-first"
	newestFirst listOrder = "newest-first"
	// byOpaqueKey is the order of an index on a key that says nothing of
	// time (a hash of the id), as an unordered database query may return.
	byOpaqueKey listOrder = "by-opaque-key"
)

// listOrderLocked picks the order of one list (named by skin and path).
func (c *Cloud) listOrderLocked(d *draw, list string) listOrder {
	o := oldestFirst
	switch {
	case c.adversary != nil:
		o = []listOrder{oldestFirst, newestFirst, byOpaqueKey}[c.adversary.source("order "+list).IntN(3)]
	case c.compat.NewestFirst:
		o = newestFirst
	}
	d.note("list order %s", o)
	return o
}

// arrange puts items, given oldest first, in order o; key identifies an
// item for byOpaqueKey.
func arrange[T any](items []T, o listOrder, seed uint64, key func(T) string) []T {
	out := slices.Clone(items)
	switch o {
	case newestFirst:
		slices.Reverse(out)
	case byOpaqueKey:
		hash := func(item T) uint64 {
			sum := sha256.Sum256(fmt.Appendf(nil, "%d\x00%s", seed, key(item)))
			return binary.LittleEndian.Uint64(sum[:8])
		}
		slices.SortStableFunc(out, func(a, b T) int { return cmp.Compare(hash(a), hash(b)) })
	}
	return out
}

// seedLocked is the adversary's seed, 0 without one.
func (c *Cloud) seedLocked() uint64 {
	if c.adversary == nil {
		return 0
	}
	return c.adversary.Seed
}
