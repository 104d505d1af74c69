package e2e_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nodeaction/nodeaction-operator/internal/fakecloud"
	"github.com/nodeaction/nodeaction-operator/internal/provider"
	"github.com/nodeaction/nodeaction-operator/internal/provider/drivertest"
	"github.com/nodeaction/nodeaction-operator/internal/provider/e2e"
)

func batcher(t *testing.T, d provider.Driver) provider.BatchStatuser {
	t.Helper()
	b, ok := d.(provider.BatchStatuser)
	if !ok {
		t.Fatal("the E2E driver reads statuses in batches")
	}
	return b
}

// A sweep walks the node list page by page, in whichever order it comes,
// finds nodes on any page, and stops at the last page (total_page_number):
// a node the list does not show is left to the caller.
func TestStatusBatchWalksThePages(t *testing.T) {
	for _, world := range []fakecloud.TestWorld{fakecloud.FaithfulWorld(), fakecloud.CompatWorld()} {
		t.Run(world.Name, func(t *testing.T) {
			e := harness.NewEnv(t, drivertest.EnvOptions{World: &world, Cloud: fakecloud.Options{ActionDuration: time.Hour}})
			ctx := context.Background()
			// 450 nodes: three pages of 200, by id one way or the other.
			for i := range 450 {
				e.Cloud.AddVM(fakecloud.VM{ID: strconv.Itoa(1000 + i)})
			}
			var subs []provider.Submission
			for _, id := range []string{"1000", "1210", "1449"} {
				sub, err := e.Driver.Submit(ctx, provider.Request{NodeID: id, Action: "power_off"})
				if err != nil {
					t.Fatal(err)
				}
				subs = append(subs, sub)
			}
			// A node the list does not hold.
			subs = append(subs, provider.Submission{Request: provider.Request{NodeID: "99999", Action: "power_off"}, StartedAt: time.Now()})

			before := len(e.Cloud.Log())
			got, err := batcher(t, e.Driver).StatusBatch(ctx, subs)
			if err != nil {
				t.Fatal(err)
			}
			if pages := len(e.Cloud.Log()) - before; pages != 3 {
				t.Errorf("the sweep read %d pages, want the 3 the list has", pages)
			}
			for i, s := range subs[:3] {
				want, err := e.Driver.Status(ctx, s)
				if err != nil {
					t.Fatal(err)
				}
				if got[i].State == "" || got[i].State != want.State || got[i].Class != want.Class {
					t.Errorf("node %s: sweep %s/%s, Status %s/%s", s.NodeID, got[i].State, got[i].Class, want.State, want.Class)
				}
			}
			if got[3].State != "" {
				t.Errorf("a node the list does not show: %+v, want left out", got[3])
			}
		})
	}
}

// listServer serves E2E's node list from pages, and each node alone.
type listServer struct {
	pages    [][]map[string]any
	requests atomic.Int32
}

func (s *listServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	envelope := map[string]any{"code": 200, "errors": map[string]any{}, "message": "Success"}
	if r.URL.Path == "/api/v1/nodes/" {
		page, _ := strconv.Atoi(r.URL.Query().Get("page_no"))
		envelope["data"] = []map[string]any{}
		if page >= 1 && page <= len(s.pages) {
			envelope["data"] = s.pages[page-1]
		}
		envelope["total_page_number"] = len(s.pages)
	} else {
		for _, p := range s.pages {
			for _, n := range p {
				if r.URL.Path == "/api/v1/nodes/"+strconv.Itoa(n["id"].(int))+"/" {
					envelope["data"] = n
				}
			}
		}
	}
	_ = json.NewEncoder(w).Encode(envelope)
}

func stubDriver(t *testing.T, s *listServer) provider.Driver {
	t.Helper()
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	d, err := e2e.New(provider.Config{Endpoint: srv.URL, Location: "Delhi", HTTPClient: srv.Client(),
		Credentials: map[string][]byte{"apiKey": []byte("key1"), "token": []byte("token1")}})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// Entries a read alone would not trust are left out: a node with no status
// (getNode reads it again), a node listed twice (the list moved between
// pages). Several submissions on one node are each judged; unverifiable
// actions need no read.
func TestStatusBatchLeavesOutWhatItCannotTell(t *testing.T) {
	s := &listServer{pages: [][]map[string]any{
		{
			{"id": 7, "name": "a", "status": "", "is_locked": false},
			{"id": 8, "name": "b", "status": "Powering", "is_locked": false},
			{"id": 9, "name": "c", "status": "Powered off", "is_locked": false},
		},
		{
			{"id": 8, "name": "b", "status": "Running", "is_locked": false},
			{"id": 10, "name": "d", "status": "Powering", "is_locked": false},
		},
	}}
	d := stubDriver(t, s)
	ctx := context.Background()
	started := time.Now()
	sub := func(id, action string) provider.Submission {
		return provider.Submission{Request: provider.Request{NodeID: id, Action: action}, StartedAt: started}
	}
	subs := []provider.Submission{
		sub("7", "power_off"), // no status
		sub("8", "reboot"),    // listed twice
		sub("9", "power_off"), // shows it
		sub("9", "power_on"),  // the same node, another action
		sub("10", "reboot"),   // under way
	}
	got, err := batcher(t, d).StatusBatch(ctx, subs)
	if err != nil {
		t.Fatal(err)
	}
	if n := s.requests.Load(); n != 2 {
		t.Errorf("%d requests, want the list's 2 pages", n)
	}
	for i, want := range []provider.State{"", "", provider.StateSucceeded, provider.StateInProgress, provider.StateInProgress} {
		if got[i].State != want {
			t.Errorf("node %s %s: %s (%s), want %q", subs[i].NodeID, subs[i].Action, got[i].State, got[i].Message, want)
		}
	}
	// The list's entry is judged as the node read alone.
	for _, i := range []int{2, 3, 4} {
		alone := status(t, d, subs[i])
		g := got[i]
		if g.State != alone.State || g.Class != alone.Class || g.Progress != alone.Progress || g.Watch != alone.Watch || g.Message != alone.Message {
			t.Errorf("node %s %s: sweep %+v, alone %+v", subs[i].NodeID, subs[i].Action, g, alone)
		}
	}
	if got[4].Progress != "left:Powering" {
		t.Errorf("a reboot under way: progress %q, want the workflow noted", got[4].Progress)
	}

	// Unverifiable actions are answered without a request.
	s.requests.Store(0)
	toggles := []provider.Submission{sub("7", "enable_recovery_mode"), sub("9", "disable_node_compliance")}
	got, err = batcher(t, d).StatusBatch(ctx, toggles)
	if err != nil {
		t.Fatal(err)
	}
	if n := s.requests.Load(); n != 0 {
		t.Errorf("%d requests for unverifiable actions, want none", n)
	}
	for i, st := range got {
		if st.State != provider.StateSucceeded || st.Class != provider.Unverified {
			t.Errorf("%s: %s/%s, want Succeeded/Unverified as Status says", toggles[i].Action, st.State, st.Class)
		}
	}
}

// A sweep never reads more pages than there are nodes to find (reading
// those alone would cost no more), and at most maxListPages.
func TestStatusBatchCapsTheWalk(t *testing.T) {
	s := &listServer{}
	for p := range 60 {
		s.pages = append(s.pages, []map[string]any{{"id": 100 + p, "name": "n", "status": "Running", "is_locked": false}})
	}
	d := stubDriver(t, s)
	for _, c := range []struct{ nodes, requests int }{{2, 2}, {8, 8}, {55, 50}} {
		var subs []provider.Submission
		for i := range c.nodes {
			subs = append(subs, provider.Submission{Request: provider.Request{NodeID: strconv.Itoa(9000 + i), Action: "reboot"}, StartedAt: time.Now()})
		}
		s.requests.Store(0)
		got, err := batcher(t, d).StatusBatch(context.Background(), subs)
		if err != nil {
			t.Fatal(err)
		}
		if n := int(s.requests.Load()); n != c.requests {
			t.Errorf("%d nodes not listed: %d requests, want %d", c.nodes, n, c.requests)
		}
		for i, st := range got {
			if st.State != "" {
				t.Errorf("node %s: %+v, want left out", subs[i].NodeID, st)
			}
		}
	}
}
