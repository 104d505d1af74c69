package controllers

import (
	"context"
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
	mu      sync.Mutex
	watched map[string]watchedAction // by sweepKey
	results map[string]provider.ActionStatus
	sweptAt time.Time
	// sweepStart is when the last sweep took its list of actions to look for.
	sweepStart time.Time
	sweeping   chan struct{} // closed when the running sweep ends
}

type watchedAction struct {
	sub   provider.Submission
	asked time.Time
	// since is when the action was first asked about.
	since time.Time
}

// sweepKey names one submission among those a Provider's sweeps follow.
// Not every API gives an action id (OpenScaler has none; E2E's says
// nothing of the node), so the VM, action and start are part of it: a
// retried action is a new submission with a new start.
func sweepKey(sub provider.Submission) string {
	return fmt.Sprintf("%s|%s|%s|%d", sub.ActionID, sub.NodeID, sub.Action, sub.StartedAt.Unix())
}

// status answers one NodeAction's poll, through a shared sweep when the
// driver supports one and several actions are in flight. watchAge is how
// old a swept answer that asked to be watched may be (the poll interval).
func (f *fleetPoller) status(ctx context.Context, uid types.UID, d provider.Driver, sub provider.Submission, now time.Time, watchAge time.Duration) (provider.ActionStatus, error) {
	batch, ok := d.(provider.BatchStatuser)
	if !ok {
		return d.Status(provider.LowPriority(ctx), sub)
	}
	key := sweepKey(sub)
	fs := f.state(uid)
	fs.mu.Lock()
	w, seen := fs.watched[key]
	if !seen {
		w.since = now
	}
	w.sub, w.asked = sub, now
	fs.watched[key] = w
	for id, w := range fs.watched {
		if now.Sub(w.asked) > watchExpiry {
			delete(fs.watched, id)
			delete(fs.results, id)
		}
	}
	if len(fs.watched) < 2 {
		fs.mu.Unlock()
		st, err := d.Status(provider.LowPriority(ctx), sub)
		if err == nil && st.State != provider.StateInProgress {
			// Finished: no longer in flight, so the next lone action
			// is read on its own too, not through sweeps.
			fs.mu.Lock()
			delete(fs.watched, key)
			delete(fs.results, key)
			fs.mu.Unlock()
		}
		return st, err
	}
	for {
		st, found := fs.results[key]
		age := now.Sub(fs.sweptAt)
		if age < sweepInterval && (!found || !st.Watch || age < watchAge) {
			started := sub.StartedAt
			sweptAt := fs.sweptAt
			// Not among the actions the last sweep looked for: it was first
			// asked about after that sweep set out.
			unswept := !fs.watched[key].since.Before(fs.sweepStart)
			if found && st.State != provider.StateInProgress {
				delete(fs.watched, key)
				delete(fs.results, key)
			}
			fs.mu.Unlock()
			switch {
			case found:
				return st, nil
			case started.After(sweptAt) || unswept:
				// Accepted after the last sweep, or not looked for by it:
				// the next one will see it.
				return provider.ActionStatus{State: provider.StateInProgress, Message: "accepted; waiting for the next status sweep"}, nil
			default:
				// The list did not show it: ask about it alone.
				return d.Status(provider.LowPriority(ctx), sub)
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
		}
		done := make(chan struct{})
		fs.sweeping, fs.sweepStart = done, now
		fs.mu.Unlock()

		results, err := batch.StatusBatch(ctx, subs)

		fs.mu.Lock()
		fs.sweeping = nil
		close(done)
		if err != nil {
			fs.mu.Unlock()
			return provider.ActionStatus{}, err
		}
		fs.results = make(map[string]provider.ActionStatus, len(keys))
		for i, k := range keys {
			if i < len(results) && results[i].State != "" {
				fs.results[k] = results[i]
			}
		}
		// The answers are as old as the sweep's start: an action accepted
		// while the lists were read may be missing from them.
		fs.sweptAt = now
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
		fs = &fleetState{watched: map[string]watchedAction{}, results: map[string]provider.ActionStatus{}}
		f.providers[uid] = fs
	}
	return fs
}
