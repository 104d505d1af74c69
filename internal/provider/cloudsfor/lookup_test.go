package cloudsfor_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/nodeaction/nodeaction-operator/internal/provider"
	"github.com/nodeaction/nodeaction-operator/internal/provider/cloudsfor"
	"github.com/nodeaction/nodeaction-operator/internal/provider/drivertest"
)

// The list may show an accepted action up to two minutes late (as Status
// allows): when the operator looks, 36 s after a lost submission, a list
// without it proves nothing yet, even one that lists another reboot in the
// window (another NodeAction's), and only after that lag does it mean "not
// accepted" (and a second POST). The driver says when its records settle;
// the operator, which knows whose the listed actions are, waits for it.
func TestLookupSaysWhenTheListSettles(t *testing.T) {
	const vm = "5609f1ee1b0c4d2da622737b5ca25e6c"
	now := time.Now()
	other := now.Add(-34 * time.Second).UTC().Format(time.RFC3339)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"actions": [{"id": "` + vm + `", "status": "errored", "type": "reboot", "started_at": "` + other +
			`", "completed_at": "` + other + `", "resource_type": "vm", "region": "nyc1"}], "links": {"pages": {}}, "meta": {"total": 1}}`))
	}))
	defer srv.Close()
	d := drivertest.DriverAt(t, cloudsfor.New, provider.Config{Endpoint: srv.URL, Now: func() time.Time { return now },
		Credentials: map[string][]byte{"username": []byte("u"), "password": []byte("p")}})
	req := provider.Request{NodeID: vm, Action: "reboot"}
	sent := now.Add(-36 * time.Second)
	w := provider.Window{From: sent.Add(-5 * time.Second), To: sent.Add(41 * time.Second)}
	found, err := d.Lookup(context.Background(), req, w)
	if err != nil || !found.Complete || len(found.Candidates) != 1 {
		t.Fatalf("Lookup = %+v, %v; want complete, with the listed reboot as its one candidate", found, err)
	}
	if want := w.To.Add(2 * time.Minute); !found.SettlesAt.Equal(want) {
		t.Fatalf("the records settle at %s, want %s (the window's end and the list's lag)", found.SettlesAt, want)
	}
}
