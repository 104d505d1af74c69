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
// allows): when the operator looks, 36 s after a lost submission, an empty
// list proves nothing yet, and only after that lag does it mean "not
// accepted" (and a second POST).
func TestLookupWaitsOutTheListLag(t *testing.T) {
	const vm = "5609f1ee1b0c4d2da622737b5ca25e6c"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"actions": [], "links": {"pages": {}}, "meta": {"total": 0}}`))
	}))
	defer srv.Close()
	now := time.Now()
	d := drivertest.DriverAt(t, cloudsfor.New, provider.Config{Endpoint: srv.URL, Now: func() time.Time { return now },
		Credentials: map[string][]byte{"username": []byte("u"), "password": []byte("p")}})
	req := provider.Request{NodeID: vm, Action: "reboot"}
	sent := now.Add(-36 * time.Second)
	w := provider.Window{From: sent.Add(-5 * time.Second), To: sent.Add(41 * time.Second)}
	if found, err := d.Lookup(context.Background(), req, w); !provider.IsKind(err, provider.Retryable) {
		t.Fatalf("Lookup = %+v, %v within the list's lag; want Retryable", found, err)
	}
	now = w.To.Add(2*time.Minute + time.Second)
	found, err := d.Lookup(context.Background(), req, w)
	if err != nil || !found.Complete || len(found.Candidates) != 0 {
		t.Fatalf("Lookup = %+v, %v after the list's lag; want complete and empty (not accepted)", found, err)
	}
}
