package cloudsfor_test

import (
	"context"
	"testing"
	"time"

	"github.com/nodeaction/nodeaction-operator/internal/fakecloud"
	"github.com/nodeaction/nodeaction-operator/internal/provider"
	"github.com/nodeaction/nodeaction-operator/internal/provider/drivertest"
)

// The seed fixes no order for action lists and shows started_at in whole
// seconds. The faithful fakecloud lists oldest first: Status and Lookup must
// find the action whatever the order, also when the VM has older actions
// of the same type.
func TestStatusAndLookupDoNotDependOnListOrder(t *testing.T) {
	clk := drivertest.NewClock(time.Date(2026, 11, 3, 10, 0, 0, 250e6, time.UTC))
	clock, advance := clk.Now, clk.Advance
	faithful := fakecloud.FaithfulWorld()
	env := harness.NewEnv(t, drivertest.EnvOptions{World: &faithful, Cloud: fakecloud.Options{ActionDuration: time.Minute, Now: clock}})
	cloud, d := env.Cloud, env.Driver
	ctx := context.Background()
	id := nodeID(7)
	cloud.AddVM(fakecloud.VM{ID: id})
	req := provider.Request{NodeID: id, Action: "reboot"}

	// A reboot of the same VM, finished ten minutes before ours.
	if _, err := d.Submit(ctx, req); err != nil {
		t.Fatal(err)
	}
	advance(10 * time.Minute)

	intent := clock()
	sub, err := d.Submit(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	st, err := d.Status(ctx, sub)
	if err != nil || st.State != provider.StateInProgress {
		t.Errorf("Status of the running reboot: %+v, %v; want InProgress (the list is oldest first)\n%s", st, err, cloud.Story(id))
	}
	found, err := d.Lookup(ctx, req, provider.Window{From: intent.Add(-5 * time.Second), To: intent.Add(time.Minute)})
	if err != nil || len(found.Candidates) != 1 || found.Candidates[0].ActionID != sub.ActionID {
		t.Errorf("Lookup since the intent: %+v, %v; want the reboot started at %s\n%s", found, err, sub.StartedAt, cloud.Story(id))
	}
	advance(2 * time.Minute)
	if st, err := d.Status(ctx, sub); err != nil || st.State != provider.StateSucceeded {
		t.Errorf("Status after the reboot ended: %+v, %v; want Succeeded\n%s", st, err, cloud.Story(id))
	}
}
