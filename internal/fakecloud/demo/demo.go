// Package demo holds what the standalone fakecloud (hack/fakecloud), the
// samples in config/samples and the test that applies them
// (controllers/samples_test.go) must agree on: the demo VMs, the address the
// samples point at, and the rate-limit fault `make demo` injects.
//
// Each VM id has the shape its provider uses (DigitalOcean and E2E integer
// ids, Senlin UUIDs, CloudsFor 32-hex ids, OpenScaler ids like the seed's
// 23). fakecloud has one VM model behind all five APIs, so every VM is
// visible through every skin whose id rules it fits; the samples only use
// each VM through its own provider.
package demo

import (
	"net/http"
	"time"

	"github.com/nodeaction/nodeaction-operator/internal/fakecloud"
)

// Addr is where hack/fakecloud listens by default, and BaseURL what the
// samples' Provider endpoints start with.
const (
	Addr    = "127.0.0.1:18080"
	BaseURL = "http://" + Addr
)

// Node ids the samples use.
const (
	// DigitalOcean droplets.
	DropletReboot      = "3164494"
	DropletRename      = "3164495"
	DropletResize      = "3164496" // powered off: DigitalOcean resizes only a droplet that is off
	DropletRateLimited = "3164497"
	// DropletNode is a Kubernetes Node (NodeName): its sample drains it,
	// reboots it and waits for it to come back.
	DropletNode = "3164493"
	// DropletMissing is not in the cloud: its sample ends Stalled with NodeNotFound.
	DropletMissing = "3164999"

	// NodeName is the Kubernetes Node on DropletNode (make demo creates it;
	// fakecloud --kubeconfig plays its kubelet).
	NodeName = "demo-worker-1"

	// Senlin nodes (UUIDs).
	SenlinReboot  = "5a7c3e1f-2b4d-4e6f-8a9b-0c1d2e3f4a5b"
	SenlinRebuild = "6b8d4f2a-3c5e-4f7a-9b0c-1d2e3f4a5b6c"

	// E2E Networks nodes.
	E2EReboot    = "102340"
	E2EReinstall = "102341"

	// CloudsFor VMs.
	CloudsForReboot = "5609f1ee1b0c4d2da622737b5ca25e6c"
	CloudsForResize = "8d1f0a2b3c4d4e5f8a9b0c1d2e3f4a5b" // powered off: CloudsFor resizes only a VM that is off

	// OpenScaler VMs.
	OpenScalerReboot   = "23"
	OpenScalerShutdown = "24"
)

// DropletWorkers are the droplets of the sample NodeActionSet
// (config/samples/nodeactionset.yaml), rebooted two at a time.
var DropletWorkers = []string{"3164501", "3164502", "3164503", "3164504", "3164505", "3164506"}

// VMs returns the demo VMs: the ones the samples act on, plus a few spare
// ones to try other actions on.
func VMs() []fakecloud.VM {
	off := fakecloud.PowerOff
	return []fakecloud.VM{
		// DigitalOcean
		{ID: DropletReboot, Name: "web-1", Region: "nyc3", Size: "s-1vcpu-1gb"},
		{ID: DropletRename, Name: "web-2", Region: "nyc3", Size: "s-1vcpu-1gb"},
		{ID: DropletResize, Name: "batch-1", Region: "nyc3", Size: "s-1vcpu-1gb", Power: off},
		{ID: DropletRateLimited, Name: "web-3", Region: "nyc3", Size: "s-1vcpu-1gb"},
		{ID: DropletNode, Name: "demo-worker-1", Region: "nyc3", Size: "s-2vcpu-4gb"},
		{ID: "3164498", Name: "db-1", Region: "ams3", Size: "s-2vcpu-4gb", Memory: 4, VCPUs: 2, Disk: 80},
		{ID: DropletWorkers[0], Name: "worker-1", Region: "nyc3"},
		{ID: DropletWorkers[1], Name: "worker-2", Region: "nyc3"},
		{ID: DropletWorkers[2], Name: "worker-3", Region: "nyc3"},
		{ID: DropletWorkers[3], Name: "worker-4", Region: "nyc3"},
		{ID: DropletWorkers[4], Name: "worker-5", Region: "nyc3"},
		{ID: DropletWorkers[5], Name: "worker-6", Region: "nyc3"},

		// Senlin
		{ID: SenlinReboot, Name: "senlin-node-1", Region: fakecloud.KeystoneRegion},
		{ID: SenlinRebuild, Name: "senlin-node-2", Region: fakecloud.KeystoneRegion},
		{ID: "7c9e5a3b-4d6f-4a8b-8c1d-2e3f4a5b6c7d", Name: "senlin-node-3", Region: fakecloud.KeystoneRegion},

		// E2E Networks
		// E2E shows a reboot or reinstall only while its workflow runs:
		// real ones take a while, and so do these.
		{ID: E2EReboot, Name: "e2e-node-1", Region: "Delhi", ActionDuration: 5 * time.Second},
		{ID: E2EReinstall, Name: "e2e-node-2", Region: "Delhi", ActionDuration: 5 * time.Second},
		{ID: "102342", Name: "e2e-node-3", Region: "Delhi", Power: off},

		// CloudsFor
		{ID: CloudsForReboot, Name: "cf-vm-1", Region: "eu-1", Memory: 2, VCPUs: 1, Disk: 40},
		{ID: CloudsForResize, Name: "cf-vm-2", Region: "eu-1", Memory: 2, VCPUs: 1, Disk: 40, Power: off},
		{ID: "9e2a1b3c4d5e4f6a9b0c1d2e3f4a5b6c", Name: "cf-vm-3", Region: "eu-1", Memory: 4, VCPUs: 2, Disk: 80},

		// OpenScaler
		{ID: OpenScalerReboot, Name: "os-vm-23", Region: "alpha"},
		{ID: OpenScalerShutdown, Name: "os-vm-24", Region: "alpha"},
		{ID: "25", Name: "os-vm-25", Region: "alpha", Power: off},
	}
}

// Seed adds the demo VMs to a cloud, replacing any with the same ids.
func Seed(c *fakecloud.Cloud) {
	for _, vm := range VMs() {
		c.AddVM(vm)
	}
}

// RateLimitRetryAfter is the Retry-After, in seconds, of RateLimitFault.
const RateLimitRetryAfter = 5

// RateLimitFault answers the first action POST for DropletRateLimited with
// DigitalOcean's 429 and a Retry-After, without acting on it. `make demo`
// injects it (as JSON, through the control API) before applying the
// samples, so the rate-limited sample shows reason RateLimited, waits, and
// then completes with a single accepted call.
func RateLimitFault() fakecloud.Fault {
	return fakecloud.Fault{
		Skin:         "digitalocean",
		Method:       http.MethodPost,
		PathContains: "/droplets/" + DropletRateLimited + "/actions",
		ActionOnly:   true,
		Times:        1,
		Mode:         fakecloud.Reject,
		Status:       http.StatusTooManyRequests,
		RetryAfter:   RateLimitRetryAfter,
		Body:         `{"id":"too_many_requests","message":"API Rate limit exceeded."}`,
	}
}
