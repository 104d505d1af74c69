package window

import (
	"strings"
	"testing"
	"time"

	"github.com/nodeaction/nodeaction-operator/api/v1alpha1"
)

func mustParse(t *testing.T, specs ...v1alpha1.MaintenanceWindow) []Window {
	t.Helper()
	ws, err := Parse(specs, time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	return ws
}

func berlin(t *testing.T) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func TestNoWindowsIsAlwaysOpen(t *testing.T) {
	st := At(nil, time.Now())
	if !st.Open || !st.End.IsZero() || !st.Next.IsZero() {
		t.Fatalf("no windows: %+v, want open with no end and no next", st)
	}
}

// "0 2 * * *" for 180 minutes in Berlin: open from 02:00 to 05:00 Berlin
// time, whatever the offset; the edges are [start, end).
func TestWindowInItsTimeZone(t *testing.T) {
	loc := berlin(t)
	ws := mustParse(t, v1alpha1.MaintenanceWindow{Schedule: "0 2 * * *", DurationMinutes: 180, TimeZone: "Europe/Berlin"})
	day := func(h, m, s int) time.Time { return time.Date(2025, 6, 10, h, m, s, 0, loc) }
	cases := []struct {
		at         time.Time
		open       bool
		end, next  time.Time
		whyAtThese string
	}{
		{day(1, 59, 59), false, time.Time{}, day(2, 0, 0), "a second before it opens"},
		{day(2, 0, 0), true, day(5, 0, 0), day(2, 0, 0).AddDate(0, 0, 1), "the second it opens"},
		{day(4, 59, 59), true, day(5, 0, 0), day(2, 0, 0).AddDate(0, 0, 1), "the last second"},
		{day(5, 0, 0), false, time.Time{}, day(2, 0, 0).AddDate(0, 0, 1), "closed at its end"},
		{day(0, 0, 0).In(time.UTC), false, time.Time{}, day(2, 0, 0), "asked in UTC (22:00 UTC the day before)"},
	}
	for _, c := range cases {
		st := At(ws, c.at)
		if st.Open != c.open || !st.End.Equal(c.end) || !st.Next.Equal(c.next) {
			t.Errorf("%s (%s): got open=%v end=%s next=%s, want open=%v end=%s next=%s", c.whyAtThese, c.at,
				st.Open, st.End.In(loc), st.Next.In(loc), c.open, c.end, c.next)
		}
	}
}

// On the night clocks go forward there is no 02:30 in Berlin: the window
// does not open that night, and opens the next.
func TestWindowSkipsATimeThatDoesNotExist(t *testing.T) {
	loc := berlin(t)
	ws := mustParse(t, v1alpha1.MaintenanceWindow{Schedule: "30 2 * * *", DurationMinutes: 60, TimeZone: "Europe/Berlin"})
	st := At(ws, time.Date(2025, 3, 29, 12, 0, 0, 0, loc))
	if want := time.Date(2025, 3, 31, 2, 30, 0, 0, loc); st.Open || !st.Next.Equal(want) {
		t.Fatalf("before the spring-forward night: %+v, want closed, next %s", st, want)
	}
	if st := At(ws, time.Date(2025, 3, 30, 3, 15, 0, 0, loc)); st.Open {
		t.Fatalf("03:15 on the spring-forward night: open (%+v), want closed", st)
	}
}

// Windows that overlap or touch read as one: open until the last closes.
func TestOverlappingWindowsJoin(t *testing.T) {
	ws := mustParse(t,
		v1alpha1.MaintenanceWindow{Schedule: "0 2 * * *", DurationMinutes: 60, TimeZone: "UTC"},
		v1alpha1.MaintenanceWindow{Schedule: "30 2 * * *", DurationMinutes: 60, TimeZone: "UTC"},
		v1alpha1.MaintenanceWindow{Schedule: "30 3 * * *", DurationMinutes: 30, TimeZone: "UTC"},
	)
	at := time.Date(2025, 6, 10, 2, 10, 0, 0, time.UTC)
	st := At(ws, at)
	if want := time.Date(2025, 6, 10, 4, 0, 0, 0, time.UTC); !st.Open || !st.End.Equal(want) {
		t.Fatalf("at 02:10: %+v, want open until %s (02:00-03:00, 02:30-03:30 and 03:30-04:00 join)", st, want)
	}
	if want := time.Date(2025, 6, 11, 2, 0, 0, 0, time.UTC); !st.Next.Equal(want) {
		t.Errorf("next opening %s, want %s", st.Next, want)
	}
}

// A schedule that keeps reopening before it closes is reported open up to
// a bound, not followed forever.
func TestAWindowThatNeverClosesIsBounded(t *testing.T) {
	ws := mustParse(t, v1alpha1.MaintenanceWindow{Schedule: "* * * * *", DurationMinutes: 10, TimeZone: "UTC"})
	at := time.Date(2025, 6, 10, 2, 10, 30, 0, time.UTC)
	start := time.Now()
	st := At(ws, at)
	if !st.Open || st.End.Sub(at) < 24*time.Hour || st.End.Sub(at) > maxChainSpan {
		t.Fatalf("%+v: want open, ending within the bound %s", st, maxChainSpan)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("took %s", took)
	}
}

// What the API server's rules cannot see is refused here, naming the field.
func TestParseRefusesWhatCELCannotCheck(t *testing.T) {
	cases := []struct {
		w    v1alpha1.MaintenanceWindow
		want []string
	}{
		{v1alpha1.MaintenanceWindow{Schedule: "30-10 2 * * *", DurationMinutes: 60, TimeZone: "UTC"}, []string{"spec.windows[1].schedule", "30-10 2", "beyond end of range"}},
		{v1alpha1.MaintenanceWindow{Schedule: "0 0 30 2 *", DurationMinutes: 60, TimeZone: "UTC"}, []string{"spec.windows[1].schedule", "never comes"}},
		{v1alpha1.MaintenanceWindow{Schedule: "0 2 * *", DurationMinutes: 60, TimeZone: "UTC"}, []string{"spec.windows[1].schedule", "expected exactly 5 fields"}},
		{v1alpha1.MaintenanceWindow{Schedule: "CRON_TZ=UTC 0 2 * * *", DurationMinutes: 60, TimeZone: "UTC"}, []string{"spec.windows[1].schedule", "in timeZone"}},
		{v1alpha1.MaintenanceWindow{Schedule: "0 2 * * *", DurationMinutes: 60, TimeZone: "Mars/Olympus_Mons"}, []string{"spec.windows[1].timeZone", "Mars/Olympus_Mons"}},
		{v1alpha1.MaintenanceWindow{Schedule: "0 2 * * *", DurationMinutes: 60, TimeZone: "Local"}, []string{"spec.windows[1].timeZone"}},
		{v1alpha1.MaintenanceWindow{Schedule: "0 2 * * *", DurationMinutes: 0, TimeZone: "UTC"}, []string{"spec.windows[1].durationMinutes"}},
	}
	good := v1alpha1.MaintenanceWindow{Schedule: "0 2 * * *", DurationMinutes: 60, TimeZone: "UTC"}
	for _, c := range cases {
		_, err := Parse([]v1alpha1.MaintenanceWindow{good, c.w}, time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
		if err == nil {
			t.Errorf("%+v was accepted", c.w)
			continue
		}
		for _, p := range c.want {
			if !strings.Contains(err.Error(), p) {
				t.Errorf("%+v: error %q does not say %q", c.w, err, p)
			}
		}
	}
	// An empty time zone is UTC (the API's default).
	if _, err := Parse([]v1alpha1.MaintenanceWindow{{Schedule: "0 2 * * *", DurationMinutes: 60}}, time.Now()); err != nil {
		t.Errorf("no timeZone: %v", err)
	}
}
