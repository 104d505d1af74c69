package cloudsfor_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nodeaction/nodeaction-operator/internal/provider"
	"github.com/nodeaction/nodeaction-operator/internal/provider/cloudsfor"
)

// listed is one action of a crafted account history.
type listed struct {
	vm, status string
	started    time.Time
}

// listServer serves history (oldest first) as CloudsFor's account and VM
// action lists, in the order given, paginated as the fakecloud skin does
// (per_page at most 200, links.pages, meta.total). It counts the account
// list's requests.
func listServer(t *testing.T, history []listed, order string) (provider.Driver, *atomic.Int32) {
	t.Helper()
	all := slices.Clone(history)
	switch order {
	case "newest first":
		slices.Reverse(all)
	case "shuffled":
		rand.New(rand.NewPCG(1, 2)).Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	}
	var globalReads atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var items []listed
		switch p := strings.TrimPrefix(r.URL.Path, "/api/v1/"); {
		case p == "actions":
			globalReads.Add(1)
			items = all
		case strings.HasPrefix(p, "vms/") && strings.HasSuffix(p, "/actions"):
			vm := strings.TrimSuffix(strings.TrimPrefix(p, "vms/"), "/actions")
			for _, a := range all {
				if a.vm == vm {
					items = append(items, a)
				}
			}
		default:
			http.NotFound(w, r)
			return
		}
		page, _ := strconv.Atoi(r.URL.Query().Get("page"))
		size, _ := strconv.Atoi(r.URL.Query().Get("per_page"))
		size = min(size, 200)
		last := max((len(items)+size-1)/size, 1)
		pages := map[string]string{}
		if page < last {
			link := func(p int) string { return fmt.Sprintf("http://%s%s?page=%d&per_page=%d", r.Host, r.URL.Path, p, size) }
			pages["next"], pages["last"] = link(page+1), link(last)
		}
		actions := []map[string]any{}
		for _, a := range items[min((page-1)*size, len(items)):min(page*size, len(items))] {
			end := a.started.Add(time.Minute).Format(time.RFC3339)
			actions = append(actions, map[string]any{"id": a.vm, "status": a.status, "type": "reboot",
				"started_at": a.started.Format(time.RFC3339), "completed_at": &end, "resource_type": "vm"})
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"actions": actions, "links": map[string]any{"pages": pages}, "meta": map[string]int{"total": len(items)}})
	}))
	t.Cleanup(srv.Close)
	d, err := cloudsfor.New(provider.Config{Endpoint: srv.URL, HTTPClient: &http.Client{Transport: http.DefaultTransport},
		Credentials: map[string][]byte{"username": []byte("u"), "password": []byte("p")},
		Now:         func() time.Time { return history[len(history)-1].started.Add(time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	return d, &globalReads
}

// history is n completed reboots ten seconds apart on ten VMs, oldest
// first.
func history(n int) []listed {
	start := time.Date(2026, 11, 3, 10, 0, 0, 0, time.UTC)
	out := make([]listed, n)
	for k := range out {
		out[k] = listed{vm: nodeID(k % 10), status: "completed", started: start.Add(time.Duration(k) * 10 * time.Second)}
	}
	return out
}

// The account's list is read from its newest end, whatever its order, and
// only as far as the submissions' starts; an order it cannot tell is read
// whole or not at all; a submission beyond the pages read is left out.
func TestStatusBatchWalksOnlyThePagesThatHoldTheSubmissions(t *testing.T) {
	long, short := history(1100), history(300) // 6 pages of 200; 2 pages
	// The newest end is in progress; a finished errored reboot before it.
	long[1099].status, long[1098].status, long[1097].status = "in-progress", "errored", "in-progress"
	// Two reboots on one VM in one second, on both sides of the boundary
	// of pages 1 and 2 when the list is newest first: one completed, one
	// errored. Status cannot say which was ours: Failed, from either list.
	tied := history(201)
	tied[0].vm, tied[0].started, tied[0].status = tied[1].vm, tied[1].started, "errored"

	newest := func(h []listed, n int) []listed { return h[len(h)-n:] }
	cases := []struct {
		name     string
		history  []listed
		order    string
		subs     []listed
		answered []bool
		maxReads int32
		first    provider.State // the first submission's state, when set
	}{
		{"newest first: the first page", long, "newest first", newest(long, 3), []bool{true, true, true}, 1, ""},
		{"oldest first: the first and the last page", long, "oldest first", newest(long, 3), []bool{true, true, true}, 2, ""},
		{"oldest first: back to the oldest", short, "oldest first", []listed{short[0], short[299]}, []bool{true, true}, 2, ""},
		{"unknown order, short: the whole list", short, "shuffled", []listed{short[0], short[299]}, []bool{true, true}, 2, ""},
		{"unknown order, too long: nothing", long, "shuffled", newest(long, 3), []bool{false, false, false}, 1, ""},
		{"beyond the bound: left out", long, "newest first", []listed{long[0], long[1099]}, []bool{false, true}, 5, ""},
		{"one second across a page boundary", tied, "newest first", []listed{tied[1], tied[200]}, []bool{true, true}, 2, provider.StateFailed},
	}
	ctx := context.Background()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d, reads := listServer(t, tc.history, tc.order)
			subs := make([]provider.Submission, len(tc.subs))
			for i, a := range tc.subs {
				subs[i] = provider.Submission{Request: provider.Request{NodeID: a.vm, Action: "reboot"}, StartedAt: a.started}
			}
			out, err := d.(provider.BatchStatuser).StatusBatch(ctx, subs)
			if err != nil {
				t.Fatal(err)
			}
			if n := reads.Load(); n > tc.maxReads {
				t.Errorf("the sweep read %d pages of the account's list, want at most %d", n, tc.maxReads)
			}
			for i, st := range out {
				if answered := st.State != ""; answered != tc.answered[i] {
					t.Errorf("submission %d (VM %s, %s): answered %v (%+v), want %v", i, subs[i].NodeID, tc.subs[i].started, answered, st, tc.answered[i])
					continue
				}
				if st.State == "" {
					continue
				}
				alone, err := d.Status(ctx, subs[i])
				if err != nil || alone.State != st.State || alone.Class != st.Class {
					t.Errorf("submission %d: the sweep says %s (%s), Status %s (%s), %v", i, st.State, st.Class, alone.State, alone.Class, err)
				}
			}
			if tc.first != "" && out[0].State != tc.first {
				t.Errorf("the first submission: %+v, want %s", out[0], tc.first)
			}
		})
	}
}
