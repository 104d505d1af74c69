package controllers

import (
	"context"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/nodeaction/nodeaction-operator/internal/provider"
)

// Fleet polling: where a driver can list many actions in one call
// (provider.BatchStatuser), the NodeActions following actions on the same
// Provider share one sweep instead of one GET each. A sweep runs at most
// every sweepInterval; a poll between sweeps reads the last one.
const (
	sweepInterval = 5 * time.Second
	// watchExpiry drops actions nobody asked about for this long.
	watchExpiry = 2 * time.Minute
)

type fleetPoller struct {
	mu        sync.Mutex
	providers map[types.UID]*fleetState
}

type fleetState struct {
	mu      sync.Mutex
	watched map[string]watchedAction // by ActionID
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

// status answers one NodeAction's poll, through a shared sweep when the
// driver supports one and several actions are in flight.
func (f *fleetPoller) status(ctx context.Context, uid types.UID, d provider.Driver, sub provider.Submission, now time.Time) (provider.ActionStatus, error) {
	batch, ok := d.(provider.BatchStatuser)
	if !ok || sub.ActionID == "" {
		return d.Status(provider.LowPriority(ctx), sub)
	}
	fs := f.state(uid)
	fs.mu.Lock()
	w, seen := fs.watched[sub.ActionID]
	if !seen {
		w.since = now
	}
	w.sub, w.asked = sub, now
	fs.watched[sub.ActionID] = w
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
			delete(fs.watched, sub.ActionID)
			delete(fs.results, sub.ActionID)
			fs.mu.Unlock()
		}
		return st, err
	}
	for {
		if now.Sub(fs.sweptAt) < sweepInterval {
			st, found := fs.results[sub.ActionID]
			started := sub.StartedAt
			sweptAt := fs.sweptAt
			// Not among the actions the last sweep looked for: it was first
			// asked about after that sweep set out.
			unswept := !fs.watched[sub.ActionID].since.Before(fs.sweepStart)
			if found && st.State != provider.StateInProgress {
				delete(fs.watched, sub.ActionID)
				delete(fs.results, sub.ActionID)
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
			now = time.Now()
			continue
		}
		subs := make([]provider.Submission, 0, len(fs.watched))
		for _, w := range fs.watched {
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
		fs.results = results
		fs.sweptAt = time.Now()
		now = fs.sweptAt
	}
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
