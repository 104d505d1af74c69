package digitalocean_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/nodeaction/nodeaction-operator/internal/provider"
	"github.com/nodeaction/nodeaction-operator/internal/provider/digitalocean"
	"github.com/nodeaction/nodeaction-operator/internal/provider/drivertest"
)

// A 201 whose action has no id (an empty object, or none at all) was
// accepted but cannot be followed: it is Ambiguous (found again by
// lookup), never a failure that backoffLimit would send again.
func TestAcceptedWithoutAnActionIDIsAmbiguous(t *testing.T) {
	for _, body := range []string{`{"action": {}}`, `{}`, `{"action": {"id": 0, "status": ""}}`} {
		t.Run(body, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusCreated)
				_, _ = w.Write([]byte(body))
			}))
			defer srv.Close()
			d := drivertest.DriverAt(t, digitalocean.New, provider.Config{Endpoint: srv.URL, Credentials: map[string][]byte{"token": []byte("dop_v1_test")}})
			sub, err := d.Submit(context.Background(), provider.Request{NodeID: "3164494", Action: "reboot"})
			if !provider.IsKind(err, provider.Ambiguous) {
				t.Fatalf("Submit = %+v, %v; want Ambiguous", sub, err)
			}
		})
	}
}
