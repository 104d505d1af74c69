package controllers

import (
	"fmt"
	"testing"
	"time"
)

// A lone action of a kind seen before is polled shortly before it usually
// ends and every pollInterval around that end: a 30 s reboot costs two or
// three reads, not eight, and its end is seen within a pollInterval.
func TestPollScheduleFollowsLearnedDurations(t *testing.T) {
	const base = 2 * time.Second
	polls := func(took time.Duration, expected time.Duration, known bool) (n int, seenLate time.Duration) {
		for age := time.Duration(0); ; n++ {
			age += pollAfter(age, base, expected, known)
			if age >= took {
				return n + 1, age - took
			}
		}
	}
	for _, tc := range []struct {
		name           string
		took, expected time.Duration
		known          bool
		maxPolls       int
		maxLate        time.Duration
	}{
		{name: "unknown kind backs off with age", took: 30 * time.Second, maxPolls: 9, maxLate: 15 * time.Second},
		{name: "as usual", took: 30 * time.Second, expected: 30 * time.Second, known: true, maxPolls: 2, maxLate: base},
		{name: "a little longer than usual", took: 33 * time.Second, expected: 30 * time.Second, known: true, maxPolls: 3, maxLate: base},
		{name: "much longer than usual backs off again", took: 120 * time.Second, expected: 30 * time.Second, known: true, maxPolls: 9, maxLate: 60 * time.Second},
		{name: "instant kind", took: 500 * time.Millisecond, expected: 0, known: true, maxPolls: 1, maxLate: base},
		// A long kind is still looked at every 30s: an early failure is
		// seen as soon as without learning.
		{name: "early failure of a long kind", took: 20 * time.Second, expected: 10 * time.Minute, known: true, maxPolls: 1, maxLate: 10 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, late := polls(tc.took, tc.expected, tc.known)
			if n > tc.maxPolls || late > tc.maxLate {
				t.Errorf("%d polls, end seen %s late; want at most %d polls and %s", n, late, tc.maxPolls, tc.maxLate)
			}
		})
	}
	// Before the expected end nothing is read more often than the learned
	// schedule asks: the first poll waits for it.
	if first := pollAfter(0, base, 30*time.Second, true); first != 29*time.Second {
		t.Errorf("first poll after %s, want 29s (the usual 30s less half a pollInterval)", first)
	}
}

func TestActionDurationsMedianOfRecentAndBounded(t *testing.T) {
	var d actionDurations
	if _, known := d.expected("digitalocean/reboot"); known {
		t.Fatal("an unseen kind has no expected duration")
	}
	for _, s := range []int{30, 31, 29, 300, 30} { // one outlier
		d.observe("digitalocean/reboot", time.Duration(s)*time.Second)
	}
	if e, _ := d.expected("digitalocean/reboot"); e != 30*time.Second {
		t.Errorf("expected %s, want the median 30s", e)
	}
	// Only the recent ones count: a kind that got slower is learned anew.
	for range durationSamples {
		d.observe("digitalocean/reboot", 60*time.Second)
	}
	if e, _ := d.expected("digitalocean/reboot"); e != 60*time.Second {
		t.Errorf("expected %s after %d slower ones, want 60s", e, durationSamples)
	}
	if n := len(d.kinds["digitalocean/reboot"]); n != durationSamples {
		t.Errorf("%d samples kept, want %d", n, durationSamples)
	}
	// A kind whose progress must be watched (a brief state to see) is
	// never polled late, however long it usually takes: the stale retry
	// test's second E2E reboot missed its workflow and waited 2 minutes.
	d.observe("e2e/reboot", 6*time.Second)
	d.markWatched("e2e/reboot")
	if _, known := d.expected("e2e/reboot"); known {
		t.Error("a watched kind has an expected duration: its first poll would come late")
	}
	for i := range 2 * maxDurationKinds {
		d.observe(fmt.Sprintf("x/%d", i), time.Second)
	}
	if len(d.kinds) > maxDurationKinds {
		t.Errorf("%d kinds kept, want at most %d", len(d.kinds), maxDurationKinds)
	}
}
