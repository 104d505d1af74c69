package senlin_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nodeaction/nodeaction-operator/internal/fakecloud"
	"github.com/nodeaction/nodeaction-operator/internal/provider"
)

// A sweep reads the action list newest first and stops once it is older
// than the oldest submission: recent actions behind a long history take one
// page (Senlin's default order, oldest first, would take three), and only
// an old submission makes the walk go on, by marker, to the page holding it.
func TestStatusBatchWalksNewestFirst(t *testing.T) {
	clk := &clock{now: time.Now().Add(-2 * time.Hour)}
	e := newEnv(t, fakecloud.Options{ActionDuration: time.Hour, Now: clk.Now})
	e.cloud.AddVM(fakecloud.VM{ID: nodeID(1), ActionDuration: time.Millisecond})
	d := e.driver(t, configure(e.base, fakecloud.DefaultCredentials()))
	ctx := context.Background()

	// 450 recovers two hours ago: more than two pages of 200.
	var first provider.Submission
	for i := range 450 {
		sub, err := d.Submit(ctx, provider.Request{NodeID: nodeID(1), Action: "recover", Parameters: recoverParams("REBOOT", "")})
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = sub
			first.StartedAt = clk.Now() // as if the operator's clock were the cloud's
		}
		clk.Add(time.Second)
	}
	clk.Add(time.Since(clk.Now())) // the cloud's clock is the operator's again
	var subs []provider.Submission
	for i, req := range []provider.Request{
		{NodeID: nodeID(2), Action: "recover", Parameters: recoverParams("REBUILD", "")},
		{NodeID: nodeID(3), Action: "check"},
	} {
		e.cloud.AddVM(fakecloud.VM{ID: nodeID(2 + i)})
		sub, err := d.Submit(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, sub)
	}
	// An action Senlin does not list (deleted, or not listed yet) and an id
	// that is none are left to Status.
	subs = append(subs,
		provider.Submission{Request: provider.Request{NodeID: nodeID(4), Action: "check"}, ActionID: "0f000000-0000-4000-8000-000000000000", StartedAt: time.Now()},
		provider.Submission{Request: provider.Request{NodeID: nodeID(4), Action: "check"}, ActionID: "not-an-id", StartedAt: time.Now()})

	sweep := func(subs []provider.Submission) ([]provider.ActionStatus, int) {
		t.Helper()
		before := e.count("senlin", http.MethodGet, "/v1/actions")
		out, err := d.StatusBatch(ctx, subs)
		if err != nil {
			t.Fatalf("StatusBatch: %v", err)
		}
		if len(out) != len(subs) {
			t.Fatalf("%d statuses for %d submissions", len(out), len(subs))
		}
		return out, e.count("senlin", http.MethodGet, "/v1/actions") - before
	}

	out, lists := sweep(subs)
	for i, st := range out[:2] {
		if st.State != provider.StateInProgress || !strings.Contains(st.Message, subs[i].ActionID) {
			t.Errorf("%s: %+v, want found in progress", subs[i].ActionID, st)
		}
	}
	for i, st := range out[2:] {
		if st.State != "" {
			t.Errorf("%s: %+v, want left to Status", subs[2+i].ActionID, st)
		}
	}
	if lists != 1 {
		t.Errorf("the sweep read %d pages, want 1 (the rest is older than every submission)", lists)
	}

	// The oldest recover is on the third page, newest first.
	out, lists = sweep(append(subs[:2:2], first))
	if st := out[2]; st.State != provider.StateSucceeded {
		t.Errorf("the oldest recover: %+v, want found succeeded", st)
	}
	if lists != 3 {
		t.Errorf("the sweep read %d pages, want 3", lists)
	}

	// A submission with no StartedAt could be anywhere: the walk goes on
	// to the end of the list (or its page cap).
	unknownStart := provider.Submission{Request: provider.Request{NodeID: nodeID(4), Action: "check"}, ActionID: "0f000000-0000-4000-8000-000000000000"}
	if _, lists = sweep(append([]provider.Submission{unknownStart}, subs[:2]...)); lists != 3 {
		t.Errorf("the sweep for a submission without StartedAt read %d pages, want 3", lists)
	}

	// Every list request keeps the driver's microversion; with recovers and
	// checks both in flight it asks for either (one filter value at most:
	// the seed does not say the filter takes several).
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, s := range e.seen {
		if s.method == http.MethodGet && s.path == "/senlin/v1/actions" && s.version != "clustering 1.0" {
			t.Errorf("list request with OpenStack-API-Version %q", s.version)
		}
	}
	for _, r := range e.cloud.Log() {
		if r.Method == http.MethodGet && r.Path == "/senlin/v1/actions" && strings.Count(r.Query, "action=") > 1 {
			t.Errorf("list request %q repeats the action filter", r.Query)
		}
	}
}
