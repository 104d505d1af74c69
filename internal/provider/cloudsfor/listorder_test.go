package cloudsfor_test

import (
	"context"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/nodeaction/nodeaction-operator/internal/fakecloud"
	"github.com/nodeaction/nodeaction-operator/internal/provider"
	"github.com/nodeaction/nodeaction-operator/internal/provider/cloudsfor"
)

// The seed fixes no order for action lists and shows started_at in whole
// seconds. The faithful fakecloud lists oldest first: Status and Lookup must
// find the action whatever the order, also when the VM has older actions
// of the same type.
func TestStatusAndLookupDoNotDependOnListOrder(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 11, 3, 10, 0, 0, 250e6, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); defer mu.Unlock(); now = now.Add(d) }

	cloud := fakecloud.New(fakecloud.Options{ActionDuration: time.Minute, Now: clock}) // the faithful world
	server := httptest.NewServer(cloud.Handler())
	t.Cleanup(server.Close)
	cfg := configure(server.URL, fakecloud.DefaultCredentials())
	client, err := provider.NewHTTPClient(provider.ClientOptions{Gate: provider.NewGate(100000, 1000), Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	cfg.HTTPClient = client
	d, err := cloudsfor.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
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
