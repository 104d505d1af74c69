package digitalocean_test

import (
	"strconv"
	"testing"

	"github.com/nodeaction/nodeaction-operator/api/v1alpha1"
	"github.com/nodeaction/nodeaction-operator/internal/fakecloud"
	"github.com/nodeaction/nodeaction-operator/internal/provider"
	"github.com/nodeaction/nodeaction-operator/internal/provider/digitalocean"
	"github.com/nodeaction/nodeaction-operator/internal/provider/drivertest"
)

func ptr[T any](v T) *T { return &v }

func TestConformance(t *testing.T) { drivertest.Run(t, harness) }

// harness describes DigitalOcean to the conformance suite; the list-order
// test uses its environment too.
var harness = drivertest.Harness{
	Type: v1alpha1.ProviderDigitalOcean,
	New:  digitalocean.New,
	Configure: func(base string, creds fakecloud.Credentials) provider.Config {
		return provider.Config{Endpoint: base + "/digitalocean", Credentials: map[string][]byte{"token": []byte(creds.DigitalOceanToken)}}
	},
	BadCredentials: func(map[string][]byte) map[string][]byte {
		return map[string][]byte{"token": []byte("revoked-token")}
	},
	NodeID: func(n int) string { return strconv.Itoa(4200 + n) },
	Actions: map[string]drivertest.ActionCase{
		"reboot":          {Check: drivertest.BootedOnce},
		"power_cycle":     {},
		"shutdown":        {Check: drivertest.IsOff},
		"power_off":       {},
		"power_on":        {Prepare: drivertest.PoweredOff},
		"enable_backups":  {Parameters: v1alpha1.ActionParameters{BackupPolicy: &v1alpha1.BackupPolicy{Plan: "weekly", Weekday: "SUN", Hour: ptr(int32(4))}}},
		"disable_backups": {},
		"change_backup_policy": {Parameters: v1alpha1.ActionParameters{BackupPolicy: &v1alpha1.BackupPolicy{Plan: "daily", Hour: ptr(int32(20))}},
			Check: func(t *testing.T, vm fakecloud.VM) {
				if vm.BackupPolicy["plan"] != "daily" {
					t.Errorf("backup policy %v", vm.BackupPolicy)
				}
			}},
		"rename": {Parameters: v1alpha1.ActionParameters{Name: "web-2"}, Check: func(t *testing.T, vm fakecloud.VM) {
			if vm.Name != "web-2" {
				t.Errorf("name = %q", vm.Name)
			}
		}},
		"change_kernel":  {Parameters: v1alpha1.ActionParameters{Kernel: ptr(int64(7515))}},
		"enable_ipv6":    {},
		"snapshot":       {Parameters: v1alpha1.ActionParameters{Name: "before-upgrade"}},
		"password_reset": {},
		"resize":         {Parameters: v1alpha1.ActionParameters{Size: "s-2vcpu-4gb", Disk: ptr(true)}, Prepare: drivertest.PoweredOff},
		"rebuild": {Parameters: v1alpha1.ActionParameters{Image: "ubuntu-22-04-x64"}, Check: func(t *testing.T, vm fakecloud.VM) {
			if vm.Image != "ubuntu-22-04-x64" || vm.Reinstalls != 1 {
				t.Errorf("image %q reinstalls %d", vm.Image, vm.Reinstalls)
			}
		}},
		"restore": {Parameters: v1alpha1.ActionParameters{Image: "12345"}},
	},
	Portable: map[string]string{
		"power_on": "power_on", "shutdown": "shutdown", "power_off": "power_off", "reboot": "reboot",
		"power_cycle": "power_cycle", "rename": "rename", "snapshot": "snapshot",
	},
	MissingParameter: provider.Request{Action: "rename"},
	Rejected:         provider.Request{Action: "resize", Parameters: v1alpha1.ActionParameters{Size: "NOT-A-SIZE"}},
	RejectedMessage:  "invalid size",
	FailingAction:    provider.Request{Action: "reboot"},
	LookupAction:     provider.Request{Action: "reboot"},
	SweepAction:      "reboot",
}
