package fakecloud

import (
	"testing"
	"time"
)

func TestPeakConcurrent(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := t0.Add(time.Hour)
	c := New(Options{Now: func() time.Time { return now }})
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	for _, a := range []Action{
		{VMID: "a", StartedAt: at(0), CompletedAt: at(10)},
		{VMID: "b", StartedAt: at(5), CompletedAt: at(12)},
		{VMID: "c", StartedAt: at(10), CompletedAt: at(20)}, // starts as a ends: no overlap with a
		{VMID: "d", StartedAt: at(11)},                      // still running
		{VMID: "e", StartedAt: at(11), CompletedAt: at(30), LookAlikeBefore: time.Second},
		{VMID: "x", StartedAt: at(11), CompletedAt: at(30)},
	} {
		a := a
		c.actions = append(c.actions, &a)
	}
	keep := func(vm string) bool { return vm != "x" }
	if peak, when := c.PeakConcurrent(keep); peak != 3 || !when.Equal(at(11)) {
		t.Errorf("peak %d at %s, want 3 (b, c, d) at +11s", peak, when)
	}
	if peak, _ := c.PeakConcurrent(nil); peak != 4 {
		t.Errorf("peak over every VM %d, want 4 (x too; never the look-alike)", peak)
	}
}
