package drivertest

import (
	"context"
	"testing"
	"time"

	"github.com/nodeaction/nodeaction-operator/internal/provider"
)

// sweepVMs is how many VMs run SweepAction at once.
const sweepVMs = 8

// testSweep: many actions in flight are read through the provider's list
// (StatusBatch), in fewer requests than one read each, and a sweep says
// what Status says. It never calls an action done before the cloud shows
// it done: the action's Check holds the moment a sweep says Succeeded.
func (h Harness) testSweep(t *testing.T) {
	ac, ok := h.Actions[h.SweepAction]
	if !ok {
		t.Fatalf("the harness's SweepAction %q is not one of its Actions", h.SweepAction)
	}
	e := h.newEnv(t, 5*time.Second)
	batch, ok := e.driver.(provider.BatchStatuser)
	if !ok {
		t.Fatal("the driver reads statuses one by one: it implements no StatusBatch")
	}
	ctx := context.Background()
	subs := make([]provider.Submission, 0, sweepVMs)
	for i := range sweepVMs {
		id := h.NodeID(40 + i)
		e.addVM(id, ac.Prepare)
		sub, unknowable, err := h.submitOnce(t, e.driver, provider.Request{NodeID: id, Action: h.SweepAction, Parameters: ac.Parameters})
		if err != nil {
			t.Fatalf("Submit on VM %s: %v", id, err)
		}
		if unknowable != "" {
			t.Logf("VM %s left out: %s", id, unknowable)
			continue
		}
		// Followed as the operator follows it, from what it recorded.
		sub.Done = nil
		subs = append(subs, sub)
	}

	sweep := func() []provider.ActionStatus {
		t.Helper()
		var out []provider.ActionStatus
		err := retrying(func() error {
			var err error
			out, err = batch.StatusBatch(ctx, subs)
			return err
		})
		if err != nil {
			t.Fatalf("StatusBatch: %v", err)
		}
		if len(out) != len(subs) {
			t.Fatalf("StatusBatch answered %d statuses for %d submissions", len(out), len(subs))
		}
		return out
	}

	seen := make([]bool, len(subs)) // found by a sweep at least once
	ended := make([]bool, len(subs))
	cheapest := -1 // fewest requests a sweep that found every action took
	deadline := time.Now().Add(30 * time.Second)
	for remaining := len(subs); remaining > 0; {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d actions did not end within 30s (found by a sweep: %v)", remaining, len(subs), seen)
		}
		before := len(e.cloud.Log())
		out := sweep()
		requests := len(e.cloud.Log()) - before
		all := true
		for i, st := range out {
			if ended[i] {
				continue
			}
			if st.State == "" {
				all = false
				var err error
				if st, err = status(e.driver, subs[i]); err != nil {
					t.Fatalf("Status of VM %s: %v", subs[i].NodeID, err)
				}
			} else {
				seen[i] = true
			}
			if st.Progress != "" {
				subs[i].Progress = st.Progress
			}
			switch st.State {
			case provider.StateInProgress:
				continue
			case provider.StateFailed:
				t.Fatalf("VM %s: %s ended %s (%s): %s", subs[i].NodeID, h.SweepAction, st.State, st.Class, st.Message)
			}
			want := ac.Classes
			if len(want) == 0 {
				want = []provider.Class{provider.Completed}
			}
			if !contains(want, st.Class) {
				t.Errorf("VM %s: reason %q, want one of %v (message %q)", subs[i].NodeID, st.Class, want, st.Message)
			}
			if ac.Check != nil {
				vm, _ := e.cloud.VM(subs[i].NodeID)
				ac.Check(t, vm)
			}
			if again, err := status(e.driver, subs[i]); err != nil || again.State != st.State || again.Class != st.Class {
				t.Errorf("VM %s: a sweep said %s (%s), its own read %s (%s), %v", subs[i].NodeID, st.State, st.Class, again.State, again.Class, err)
			}
			ended[i] = true
			remaining--
		}
		if all && (cheapest < 0 || requests < cheapest) {
			cheapest = requests
		}
		time.Sleep(50 * time.Millisecond)
	}
	for i, ok := range seen {
		if !ok {
			t.Errorf("no sweep found the action on VM %s: each was read on its own", subs[i].NodeID)
		}
	}
	if cheapest < 0 {
		t.Fatal("no sweep found every action in flight")
	}
	if cheapest > len(subs)/2 {
		t.Errorf("a sweep that found all %d actions took %d requests, want at most %d", len(subs), cheapest, len(subs)/2)
	}
	if len(subs) < sweepVMs/2 {
		t.Fatalf("only %d of %d submissions known: too few to check sweeps with", len(subs), sweepVMs)
	}
	for _, s := range subs {
		if n := e.cloud.AcceptedActions(s.NodeID); n != 1 {
			t.Errorf("VM %s: %d actions accepted, want 1", s.NodeID, n)
		}
	}
}
