package controllers

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/nodeaction/nodeaction-operator/internal/provider"
)

// Fleet polling: where a driver can list many actions or VMs in one call
// (provider.BatchStatuser), the NodeActions following actions on the same
// Provider share one sweep instead of one GET each. A sweep runs at most
// every sweepInterval; a poll between sweeps reads the last one (or, where
// the last answer asked to be watched, one no older than the poll interval).
const (
	sweepInterval = 5 * time.Second
	// watchExpiry drops actions nobody asked about for this long.
	watchExpiry = 2 * time.Minute
)

type fleetPoller struct {
	mu        sync.Mutex
	providers map[types.UID]*fleetState
	// clock tells the time after waiting for another's sweep; nil is
	// time.Now (unit tests set a fake one).
	clock func() time.Time
}

type fleetState struct {
	mu       sync.Mutex
	watched  map[string]watchedAction // by sweepKey
	results  map[string]sweptStatus
	sweptAt  time.Time
	sweeping chan struct{} // closed when the running sweep ends
}

type watchedAction struct {
	sub   provider.Submission
	asked time.Time
	// swept: a sweep has looked for it (whether or not it found it).
	swept bool
}

// sweepKey names one submission among those a Provider's sweeps follow.
// Not every API gives an action id (OpenScaler has none; E2E's says
// nothing of the node), so the VM, action and start are part of it: a
// retried action is a new submission with a new start.
func sweepKey(sub provider.Submission) string {
	return fmt.Sprintf("%s|%s|%s|%d", sub.ActionID, sub.NodeID, sub.Action, sub.StartedAt.Unix())
}

// errAwaitingSweep: the action was accepted after the last sweep set out;
// the next one will show it. Nothing to report meanwhile.
var errAwaitingSweep = errors.New("accepted; waiting for the next status sweep")

// status answers one NodeAction's poll, through a shared sweep when the
// driver supports one and several actions are in flight. watchAge is how
// old a swept answer that asked to be watched may be (the poll interval).
// It returns errAwaitingSweep for an action no sweep has looked for yet.
func (f *fleetPoller) status(ctx context.Context, uid types.UID, d provider.Driver, sub provider.Submission, now time.Time, watchAge time.Duration) (provider.ActionStatus, error) {
	batch, ok := d.(provider.BatchStatuser)
	if !ok {
		return d.Status(provider.LowPriority(ctx), sub)
	}
	key := sweepKey(sub)
	fs := f.state(uid)
	fs.mu.Lock()
	w := fs.watched[key]
	w.sub, w.asked = sub, now
	fs.watched[key] = w
	for id, w := range fs.watched {
		if now.Sub(w.asked) > watchExpiry {
			delete(fs.watched, id)
			delete(fs.results, id)
		}
	}
	// alone reads the action on its own; a finished one leaves the poller,
	// so that it no longer keeps sweeps going for the others.
	alone := func() (provider.ActionStatus, error) {
		st, err := d.Status(provider.LowPriority(ctx), sub)
		if err == nil && st.State != provider.StateInProgress {
			fs.mu.Lock()
			delete(fs.watched, key)
			delete(fs.results, key)
			fs.mu.Unlock()
		}
		return st, err
	}
	if len(fs.watched) < 2 {
		fs.mu.Unlock()
		return alone()
	}
	for {
		r, found := fs.results[key]
		st := r.status
		age := now.Sub(fs.sweptAt)
		if age < sweepInterval && (!found || !st.Watch || age < watchAge) {
			started := sub.StartedAt
			sweptAt := fs.sweptAt
			// Not among the actions a sweep looked for: first asked about
			// after the last one set out.
			unswept := !fs.watched[key].swept
			// Judged from what this NodeAction had seen of the action
			// before its last answer: judge again from what it has now.
			stale := found && r.progress != sub.Progress
			if found && !stale && st.State != provider.StateInProgress {
				delete(fs.watched, key)
				delete(fs.results, key)
			}
			fs.mu.Unlock()
			switch {
			case found && !stale:
				if st.Progress != "" {
					f.progressed(fs, key, st.Progress)
				}
				return st, nil
			case !found && (started.After(sweptAt) || unswept):
				return provider.ActionStatus{}, errAwaitingSweep
			default:
				// The list did not show it (or showed it judged from an
				// older view): ask about it alone.
				return alone()
			}
		}
		if fs.sweeping != nil {
			// Another NodeAction is sweeping: wait for its answer.
			done := fs.sweeping
			fs.mu.Unlock()
			select {
			case <-done:
			case <-ctx.Done():
				return provider.ActionStatus{}, ctx.Err()
			}
			fs.mu.Lock()
			now = f.now()
			continue
		}
		keys := make([]string, 0, len(fs.watched))
		subs := make([]provider.Submission, 0, len(fs.watched))
		for k, w := range fs.watched {
			keys = append(keys, k)
			subs = append(subs, w.sub)
			w.swept = true
			fs.watched[k] = w
		}
		done := make(chan struct{})
		fs.sweeping = done
		fs.mu.Unlock()

		// Polls yield the rate budget to submissions and lookups; a sweep
		// is polls.
		results, err := batch.StatusBatch(provider.LowPriority(ctx), subs)

		fs.mu.Lock()
		fs.sweeping = nil
		close(done)
		if err != nil && provider.AsError(err).NotSent {
			// The Provider's own budget said not now: so would it for a
			// read alone.
			fs.mu.Unlock()
			return provider.ActionStatus{}, err
		}
		// The answers are as old as the sweep's start: an action accepted
		// while the lists were read may be missing from them. A failed
		// sweep answers nothing, and is not tried again before the
		// interval: meanwhile each action is read alone. An error about a
		// list says nothing of any one action.
		fs.results = make(map[string]sweptStatus, len(keys))
		for i, k := range keys {
			if err == nil && i < len(results) && results[i].State != "" {
				fs.results[k] = sweptStatus{status: results[i], progress: subs[i].Progress}
			}
		}
		fs.sweptAt = now
	}
}

// sweptStatus is one submission's answer in a sweep, and the Progress it
// was judged with.
type sweptStatus struct {
	status   provider.ActionStatus
	progress string
}

// progressed records the Progress a NodeAction is about to keep, so that
// the next sweep judges its action from it. The answer that gave it stands
// for that Progress too: it comes from the very reading that moved it on.
func (f *fleetPoller) progressed(fs *fleetState, key, progress string) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if w, ok := fs.watched[key]; ok {
		w.sub.Progress = progress
		fs.watched[key] = w
	}
	if r, ok := fs.results[key]; ok {
		r.progress = progress
		fs.results[key] = r
	}
}

func (f *fleetPoller) now() time.Time {
	if f.clock != nil {
		return f.clock()
	}
	return time.Now()
}

// forget drops a deleted Provider's sweeps.
func (f *fleetPoller) forget(uid types.UID) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.providers, uid)
}

// tracked is how many Providers have sweep state (tests).
func (f *fleetPoller) tracked() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.providers)
}

func (f *fleetPoller) state(uid types.UID) *fleetState {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.providers == nil {
		f.providers = map[types.UID]*fleetState{}
	}
	fs := f.providers[uid]
	if fs == nil {
		fs = &fleetState{watched: map[string]watchedAction{}, results: map[string]sweptStatus{}}
		f.providers[uid] = fs
	}
	return fs
}
