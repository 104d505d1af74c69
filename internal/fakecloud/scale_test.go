package fakecloud_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/nodeaction/nodeaction-operator/internal/fakecloud"
)

// BenchmarkActionAmongManyVMs: what one DigitalOcean action call costs
// with 1,000 and 100,000 VMs in the cloud (the bench's scale100k row holds
// that many). It should not grow with the VMs.
func BenchmarkActionAmongManyVMs(b *testing.B) {
	for _, vms := range []int{1_000, 100_000} {
		b.Run(fmt.Sprintf("vms=%d", vms), func(b *testing.B) {
			cloud := fakecloud.New(fakecloud.Options{RateBudget: fakecloud.RateBudget{Limit: 1 << 30}})
			cloud.SetActionDuration(0)
			for i := range vms {
				cloud.AddVM(fakecloud.VM{ID: strconv.Itoa(1 + i)})
			}
			h := cloud.Handler()
			b.ResetTimer()
			for i := range b.N {
				req := httptest.NewRequest(http.MethodPost, "/digitalocean/v2/droplets/"+strconv.Itoa(1+i%vms)+"/actions", strings.NewReader(`{"type":"reboot"}`))
				req.Header.Set("Authorization", "Bearer "+fakecloud.DefaultCredentials().DigitalOceanToken)
				req.Header.Set("Content-Type", "application/json")
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				if w.Code != http.StatusCreated {
					b.Fatalf("%d %s", w.Code, w.Body)
				}
			}
		})
	}
}
