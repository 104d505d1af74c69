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

// Neither the seed nor DigitalOcean's reference fixes the order of a
// droplet's action list; the faithful fakecloud lists oldest first. A
// lookup after a lost answer must find the accepted action whatever the
// order, also when the droplet has older actions of the same type.
func TestLookupDoesNotDependOnListOrder(t *testing.T) {
	clk := drivertest.NewClock(time.Date(2026, 11, 3, 10, 0, 0, 250e6, time.UTC))
	clock, advance := clk.Now, clk.Advance
	faithful := fakecloud.FaithfulWorld()
	env := harness.NewEnv(t, drivertest.EnvOptions{World: &faithful, Cloud: fakecloud.Options{ActionDuration: time.Minute, Now: clock}})
	cloud, d := env.Cloud, env.Driver
	ctx := context.Background()
	const id = "4242"
	cloud.AddVM(fakecloud.VM{ID: id})
	req := provider.Request{NodeID: id, Action: "reboot"}

	// A reboot of the same droplet, finished ten minutes before ours.
	if _, err := d.Submit(ctx, req); err != nil {
		t.Fatal(err)
	}
	advance(10 * time.Minute)

	// Ours is accepted and its answer lost.
	intent := clock()
	cloud.InjectFault(fakecloud.Fault{ActionOnly: true, Mode: fakecloud.AcceptThenDrop, Times: 1})
	if _, err := d.Submit(ctx, req); !provider.IsKind(err, provider.Ambiguous) {
		t.Fatalf("Submit with the answer dropped: %v, want Ambiguous", err)
	}
	var ours fakecloud.Action
	for _, a := range cloud.Actions() {
		if !a.StartedAt.Before(intent) {
			ours = a
		}
	}
	found, err := d.Lookup(ctx, req, provider.Window{From: intent.Add(-5 * time.Second), To: intent.Add(time.Minute)})
	if err != nil || len(found.Candidates) != 1 || found.Candidates[0].ActionID != strconv.FormatInt(ours.ID, 10) {
		t.Errorf("Lookup since the intent: %+v, %v; want action %d, accepted at %s (the list is oldest first)\n%s",
			found, err, ours.ID, ours.StartedAt, cloud.Story(id))
	}
}
