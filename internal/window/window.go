// Package window reads a NodeActionSet's maintenance windows (a cron
// schedule, a duration, a time zone) and says whether one is open at a
// given time and when the next one opens.
package window

import (
	"fmt"
	"strings"
	"time"
	// The manager loads time zones from its own copy of the tz database, the
	// one the API's TimeZone list was generated from, not from the image.
	_ "time/tzdata"

	"github.com/robfig/cron/v3"

	"github.com/nodeaction/nodeaction-operator/api/v1alpha1"
)

// The five fields of cron, as a CronJob's schedule has them.
var parser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow)

// Windows that open again before they close make one long window. How far
// it is followed: past this, the window is reported closing at the bound
// (and looked at again then).
const (
	maxChainSteps = 10000
	maxChainSpan  = 31 * 24 * time.Hour
)

// Window is one parsed maintenance window.
type Window struct {
	schedule cron.Schedule
	duration time.Duration
}

// Parse reads the windows of a NodeActionSet. Its error names the field at
// fault (spec.windows[i].schedule or .timeZone) and says what is wrong, for
// what the API server's rules cannot check: a range that runs backwards, a
// date that never comes (February 30), a time zone the manager cannot load.
func Parse(specs []v1alpha1.MaintenanceWindow, now time.Time) ([]Window, error) {
	out := make([]Window, 0, len(specs))
	for i, s := range specs {
		loc, err := time.LoadLocation(string(s.TimeZone))
		if err != nil || strings.EqualFold(string(s.TimeZone), "Local") {
			return nil, fmt.Errorf("spec.windows[%d].timeZone %q is not an IANA time zone name the manager knows", i, s.TimeZone)
		}
		if strings.Contains(s.Schedule, "=") {
			return nil, fmt.Errorf("spec.windows[%d].schedule %q: give the time zone in timeZone, not in the schedule", i, s.Schedule)
		}
		sched, err := parser.Parse(s.Schedule)
		if err != nil {
			return nil, fmt.Errorf("spec.windows[%d].schedule %q is not a valid cron schedule: %v", i, s.Schedule, err)
		}
		spec, ok := sched.(*cron.SpecSchedule)
		if !ok {
			return nil, fmt.Errorf("spec.windows[%d].schedule %q is not a five-field cron schedule", i, s.Schedule)
		}
		spec.Location = loc
		if spec.Next(now).IsZero() {
			return nil, fmt.Errorf("spec.windows[%d].schedule %q never comes (no such date in the next five years)", i, s.Schedule)
		}
		if s.DurationMinutes < 1 {
			return nil, fmt.Errorf("spec.windows[%d].durationMinutes must be at least 1", i)
		}
		out = append(out, Window{schedule: spec, duration: time.Duration(s.DurationMinutes) * time.Minute})
	}
	return out, nil
}

// State is where the windows are at one moment.
type State struct {
	// Open is true inside a window, and always when there are no windows.
	Open bool
	// End is when the open window closes (overlapping windows count as one);
	// zero when there are no windows.
	End time.Time
	// Next is when the next window opens after now (after End when open);
	// zero when there are no windows.
	Next time.Time
}

// At says whether a window is open at now, until when, and when the next opens.
func At(ws []Window, now time.Time) State {
	if len(ws) == 0 {
		return State{Open: true}
	}
	end := time.Time{}
	for _, w := range ws {
		if e, ok := w.openAt(now); ok && e.After(end) {
			end = e
		}
	}
	if end.IsZero() {
		next, _, _ := firstOpening(ws, now)
		return State{Next: next}
	}
	// A window that opens before the open one closes carries it on.
	cursor := now
	for i := 0; i < maxChainSteps && end.Sub(now) < maxChainSpan; i++ {
		t, w, ok := firstOpening(ws, cursor)
		if !ok || t.After(end) {
			break
		}
		if e := t.Add(w.duration); e.After(end) {
			end = e
		}
		cursor = t
	}
	if end.Sub(now) > maxChainSpan {
		end = now.Add(maxChainSpan)
	}
	next, _, _ := firstOpening(ws, end.Add(-time.Nanosecond))
	return State{Open: true, End: end, Next: next}
}

// openAt reports whether w is open at now, and when that opening closes.
// The schedule fires at whole seconds; an opening at t covers [t, t+duration).
func (w Window) openAt(now time.Time) (time.Time, bool) {
	t := w.schedule.Next(now.Add(-w.duration))
	if t.IsZero() || t.After(now) {
		return time.Time{}, false
	}
	// The latest opening at or before now closes last.
	for n := w.schedule.Next(t); !n.IsZero() && !n.After(now); n = w.schedule.Next(n) {
		t = n
	}
	return t.Add(w.duration), true
}

// firstOpening is the earliest opening of any window after t, and its window.
func firstOpening(ws []Window, t time.Time) (time.Time, Window, bool) {
	var (
		first time.Time
		which Window
	)
	for _, w := range ws {
		if n := w.schedule.Next(t); !n.IsZero() && (first.IsZero() || n.Before(first)) {
			first, which = n, w
		}
	}
	return first, which, !first.IsZero()
}
