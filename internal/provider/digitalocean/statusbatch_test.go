package digitalocean_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/nodeaction/nodeaction-operator/internal/fakecloud"
	"github.com/nodeaction/nodeaction-operator/internal/provider"
	"github.com/nodeaction/nodeaction-operator/internal/provider/drivertest"
)

// One sweep of the account's action list finds every action in flight
// whatever order the list comes in, and reads no more pages than the order
// needs: the newest page alone when it is newest first; the first page (to
// learn the order) and the last when it is oldest first.
func TestStatusBatchFindsActionsInAnyListOrder(t *testing.T) {
	batcher := func(d provider.Driver) provider.BatchStatuser {
		b, ok := d.(provider.BatchStatuser)
		if !ok {
			t.Fatal("the DigitalOcean driver reads statuses in batches")
		}
		return b
	}
	worlds := []struct {
		world    fakecloud.TestWorld
		maxPages int
	}{
		{fakecloud.FaithfulWorld(), 2}, // oldest first
		{fakecloud.CompatWorld(), 1},   // newest first
	}
	for _, w := range worlds {
		t.Run(w.world.Name, func(t *testing.T) {
			e := harness.NewEnv(t, drivertest.EnvOptions{World: &w.world, Cloud: fakecloud.Options{ActionDuration: time.Hour}})
			ctx := context.Background()
			// 650 older actions (four pages of 200), then 5 in flight.
			for i := range 650 {
				id := strconv.Itoa(7000 + i)
				e.Cloud.AddVM(fakecloud.VM{ID: id, ActionDuration: time.Millisecond})
				if _, err := e.Driver.Submit(ctx, provider.Request{NodeID: id, Action: "power_cycle"}); err != nil {
					t.Fatal(err)
				}
			}
			time.Sleep(50 * time.Millisecond)
			var subs []provider.Submission
			for i := range 5 {
				id := strconv.Itoa(8000 + i)
				e.Cloud.AddVM(fakecloud.VM{ID: id})
				sub, err := e.Driver.Submit(ctx, provider.Request{NodeID: id, Action: "reboot"})
				if err != nil {
					t.Fatal(err)
				}
				subs = append(subs, sub)
			}
			before := len(e.Cloud.Log())
			got, err := batcher(e.Driver).StatusBatch(ctx, subs)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(subs) {
				t.Fatalf("the sweep answered %d statuses for %d submissions", len(got), len(subs))
			}
			for i, s := range subs {
				if st := got[i]; st.State != provider.StateInProgress {
					t.Errorf("action %s: %+v, want found in progress", s.ActionID, st)
				}
			}
			if pages := len(e.Cloud.Log()) - before; pages > w.maxPages {
				t.Errorf("the sweep read %d pages, want at most %d", pages, w.maxPages)
			}
		})
	}
}
