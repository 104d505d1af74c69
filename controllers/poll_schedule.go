package controllers

import (
	"slices"
	"sync"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Adaptive polling: an action of a kind this manager has seen finish is
// first polled shortly before it usually ends, then every pollInterval
// around that end; past it (or before any has finished) polls back off as
// the action ages. A lone 30 s reboot costs two or three status reads
// instead of eight, and its end is seen within a pollInterval.

// durationSamples is how many recent durations are kept per kind of action.
const durationSamples = 16

// maxDurationKinds bounds the memory: provider types × actions.
const maxDurationKinds = 256

// actionDurations learns how long each kind of action (provider type and
// action) takes, from the ones that succeeded.
type actionDurations struct {
	mu    sync.Mutex
	kinds map[string][]time.Duration // most recent last
	// watched are kinds whose progress shows only as a brief state to be
	// seen while it lasts (E2E's reboot): a first poll after the usual
	// duration would miss it, so they are never polled late.
	watched map[string]bool
}

// markWatched records that kind asked to be watched (ActionStatus.Watch).
func (d *actionDurations) markWatched(kind string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.watched == nil {
		d.watched = map[string]bool{}
	}
	if len(d.watched) < maxDurationKinds {
		d.watched[kind] = true
	}
}

// observe records one successful action's duration.
func (d *actionDurations) observe(kind string, took time.Duration) {
	if took < 0 {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.kinds == nil {
		d.kinds = map[string][]time.Duration{}
	}
	samples, known := d.kinds[kind]
	if !known && len(d.kinds) >= maxDurationKinds {
		return
	}
	if len(samples) == durationSamples {
		samples = samples[1:]
	}
	d.kinds[kind] = append(samples, took)
}

// expected is the median of the recent durations of kind; none for a
// kind that must be watched.
func (d *actionDurations) expected(kind string) (time.Duration, bool) {
	d.mu.Lock()
	samples := slices.Clone(d.kinds[kind])
	watched := d.watched[kind]
	d.mu.Unlock()
	if len(samples) == 0 || watched {
		return 0, false
	}
	slices.Sort(samples)
	return samples[len(samples)/2], true
}

// pollAfter is when to poll an action of the given age next. expected is
// how long its kind usually takes (known says whether any finished yet).
func pollAfter(age, base, expected time.Duration, known bool) time.Duration {
	backedOff := min(max(age/2, base), max(maxPollInterval, base))
	if !known {
		return backedOff
	}
	switch first := expected - base/2; {
	case age < first:
		// Capped: a failure early in a long action is seen as soon as
		// without learning.
		return min(first-age, max(maxPollInterval, base))
	case age < expected+2*base:
		return base
	default:
		return backedOff
	}
}

// actionKind names what durations are learned for.
func (s *step) actionKind(t target) string {
	return string(t.provider.Spec.Type) + "/" + s.na.Spec.Action
}

// schedulePoll picks the next poll (pollAfter) and remembers it.
func (s *step) schedulePoll(t target) time.Duration {
	base := s.pollBase(t)
	sub := s.na.Status.SubmittedAt
	if sub == nil {
		return s.schedulePollAt(t, base)
	}
	expected, known := s.r.durations.expected(s.actionKind(t))
	interval := pollAfter(s.now.Sub(sub.Time), base, expected, known)
	// A shutdown to be followed by a power-off is looked at when that is due.
	if esc := s.na.Spec.Escalation; esc != nil && s.na.Status.EscalatedAt == nil {
		if due := sub.Add(time.Duration(esc.PowerOffAfterSeconds) * time.Second).Sub(s.now); due > 0 && due < interval {
			interval = due
		}
	}
	return s.schedulePollAt(t, interval)
}

// learnDuration records how long a succeeded action took: the provider's
// own start and end where it gives both, else from the attempt's slot to
// when its end was seen.
func (s *step) learnDuration(t target, o outcome) {
	st := s.na.Status
	switch {
	case !o.succeeded || st.SubmittedAt == nil || st.EscalatedAt != nil:
		// An escalated shutdown ended as a power-off: neither's duration.
	case st.ProviderStartTime != nil && !o.at.IsZero():
		s.r.durations.observe(s.actionKind(t), o.at.Sub(st.ProviderStartTime.Time))
	default:
		s.r.durations.observe(s.actionKind(t), s.now.Sub(st.SubmittedAt.Time))
	}
}

// pollBase is the Provider's pollInterval (default 2s).
func (s *step) pollBase(t target) time.Duration {
	if pi := t.provider.Spec.PollInterval; pi != nil && pi.Duration > 0 {
		return pi.Duration
	}
	return defaultPollInterval
}

// schedulePollAt sets the next poll interval from now.
func (s *step) schedulePollAt(_ target, interval time.Duration) time.Duration {
	s.r.polls.Store(client.ObjectKeyFromObject(s.na), s.now.Add(interval))
	return interval
}
