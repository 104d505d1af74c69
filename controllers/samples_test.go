package controllers

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodeaction/nodeaction-operator/api/v1alpha1"
	"github.com/nodeaction/nodeaction-operator/internal/fakecloud"
	"github.com/nodeaction/nodeaction-operator/internal/fakecloud/demo"
)

// samplesDir holds the samples `make demo` applies.
var samplesDir = filepath.Join("..", "config", "samples")

// sampleOutcome is how a sample NodeAction is meant to end.
type sampleOutcome struct {
	skin, node string // the fakecloud skin and VM id it acts on
	// reason of Ready (success) or Stalled (stalled).
	reason  string
	stalled bool
	// messageParts the final condition message contains.
	messageParts []string
	// providerAction is the native action status must record.
	providerAction string
	// effect checks the VM afterwards.
	effect func(vm fakecloud.VM) error
	// rateLimited: the first call gets demo.RateLimitFault's 429.
	rateLimited bool
}

func samplesBooted(vm fakecloud.VM) error {
	if vm.Boots != 1 {
		return fmt.Errorf("booted %d times, want 1", vm.Boots)
	}
	return nil
}

func samplesReinstalled(vm fakecloud.VM) error {
	if vm.Reinstalls != 1 {
		return fmt.Errorf("reinstalled %d times, want 1", vm.Reinstalls)
	}
	return nil
}

// sampleOutcomes lists every NodeAction in config/samples. A sample added
// without an entry here fails TestSamples.
var sampleOutcomes = map[string]sampleOutcome{
	"digitalocean-reboot": {skin: "digitalocean", node: demo.DropletReboot, reason: v1alpha1.ReasonCompleted,
		providerAction: "reboot", effect: samplesBooted},
	"digitalocean-rename": {skin: "digitalocean", node: demo.DropletRename, reason: v1alpha1.ReasonCompleted,
		providerAction: "rename", messageParts: []string{"the droplet shows it"}, effect: func(vm fakecloud.VM) error {
			if vm.Name != "web-2-blue" {
				return fmt.Errorf("named %q, want web-2-blue", vm.Name)
			}
			return nil
		}},
	"digitalocean-resize": {skin: "digitalocean", node: demo.DropletResize, reason: v1alpha1.ReasonCompleted,
		providerAction: "resize", effect: func(vm fakecloud.VM) error {
			if vm.Size != "s-2vcpu-4gb" {
				return fmt.Errorf("size %q, want s-2vcpu-4gb", vm.Size)
			}
			return nil
		}},
	"digitalocean-missing-droplet": {skin: "digitalocean", node: demo.DropletMissing, stalled: true, reason: v1alpha1.ReasonNodeNotFound,
		providerAction: "reboot", messageParts: []string{"could not be found", "HTTP 404"}},
	"digitalocean-node-reboot": {skin: "digitalocean", node: demo.DropletNode, reason: v1alpha1.ReasonCompleted,
		providerAction: "reboot", effect: samplesBooted},
	"digitalocean-ratelimited": {skin: "digitalocean", node: demo.DropletRateLimited, reason: v1alpha1.ReasonCompleted,
		providerAction: "reboot", effect: samplesBooted, rateLimited: true},
	"senlin-reboot": {skin: "senlin", node: demo.SenlinReboot, reason: v1alpha1.ReasonCompleted,
		providerAction: "recover REBOOT SOFT", effect: samplesBooted},
	"senlin-rebuild": {skin: "senlin", node: demo.SenlinRebuild, reason: v1alpha1.ReasonCompleted,
		providerAction: "recover REBUILD", effect: samplesReinstalled},
	"e2e-reboot": {skin: "e2e", node: demo.E2EReboot, reason: v1alpha1.ReasonCompleted,
		providerAction: "reboot", effect: samplesBooted},
	"e2e-reinstall": {skin: "e2e", node: demo.E2EReinstall, reason: v1alpha1.ReasonCompleted,
		providerAction: "reinstall", effect: samplesReinstalled},
	"cloudsfor-reboot": {skin: "cloudsfor", node: demo.CloudsForReboot, reason: v1alpha1.ReasonCompleted,
		providerAction: "reboot", effect: samplesBooted},
	"cloudsfor-resize": {skin: "cloudsfor", node: demo.CloudsForResize, reason: v1alpha1.ReasonCompleted,
		providerAction: "resize", effect: func(vm fakecloud.VM) error {
			if vm.VCPUs != 2 || vm.Memory != 4 || vm.Disk != 40 {
				return fmt.Errorf("%d vCPUs, %d GB RAM, %d GB disk; want 2, 4, 40", vm.VCPUs, vm.Memory, vm.Disk)
			}
			return nil
		}},
	"openscaler-reboot": {skin: "openscaler", node: demo.OpenScalerReboot, reason: v1alpha1.ReasonAcceptedUnverified,
		providerAction: "reboot", effect: samplesBooted},
	"openscaler-shutdown": {skin: "openscaler", node: demo.OpenScalerShutdown, reason: v1alpha1.ReasonCompleted,
		providerAction: "shutdown", effect: func(vm fakecloud.VM) error {
			if vm.Power != fakecloud.PowerOff {
				return fmt.Errorf("power %s, want off", vm.Power)
			}
			return nil
		}},
}

// TestSamples applies config/samples the way a person does, with kubectl's
// kustomize, pointed at the suite's fakecloud seeded with the demo VMs and
// with `make demo`'s rate-limit fault injected. Every sample NodeAction must
// end as it is meant to, having called its provider exactly once (the
// rate-limited one: one 429 and one accepted call).
func TestSamples(t *testing.T) {
	ns := newNamespace(t)
	demo.Seed(cloud)
	fault := cloud.InjectFault(demo.RateLimitFault())
	logFrom := len(cloud.Log())
	// The Node make demo creates on the node-reboot sample's droplet, with
	// a pod to drain and its kubelet played.
	kubeNode(t, demo.NodeName, "", "digitalocean://"+demo.DropletNode, demo.DropletNode)
	pod := podOn(t, ns, "web-7d4b9c-x2x9k", demo.NodeName, "ReplicaSet", "web-7d4b9c", nil)
	startKubelet(t, cloud, time.Second, demo.NodeName)
	startManager(t)

	dir := samplesRewritten(t, cloudURL)
	out := samplesKubectl(t, "apply", "-k", dir, "-n", ns)
	t.Logf("kubectl apply -k config/samples:\n%s", out)

	// Exactly the NodeActions this test knows were created (besides the
	// members of the sample NodeActionSet, checked below).
	list := &v1alpha1.NodeActionList{}
	if err := k8s.List(context.Background(), list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	var names, want []string
	for _, na := range list.Items {
		if na.Labels[v1alpha1.LabelNodeActionSet] == "" {
			names = append(names, na.Name)
		}
	}
	for name := range sampleOutcomes {
		want = append(want, name)
	}
	sort.Strings(names)
	sort.Strings(want)
	if !slices.Equal(names, want) {
		t.Fatalf("config/samples created NodeActions %v; this test expects %v (add an entry to sampleOutcomes for a new sample)", names, want)
	}

	log := func() []fakecloud.Request { return cloud.Log()[logFrom:] }
	for _, name := range want {
		t.Run(name, func(t *testing.T) { samplesCheck(t, ns, name, sampleOutcomes[name], log) })
	}

	t.Run("workers-reboot", func(t *testing.T) { samplesCheckSet(t, ns, log) })

	// The node-reboot sample drained its Node and left it uncordoned.
	if podExists(t, pod) || getNode(t, demo.NodeName).Spec.Unschedulable {
		t.Errorf("after the node-reboot sample: pod there=%v (want evicted), Node cordoned=%v (want not)", podExists(t, pod), getNode(t, demo.NodeName).Spec.Unschedulable)
	}

	// The rate-limited sample met the 429 and said so, in its events too.
	if fault.Hits() != 1 {
		t.Errorf("the rate-limit fault caught %d requests, want 1", fault.Hits())
	}
	events := &eventsv1.EventList{}
	waitForList(t, events, ns, func() bool {
		for _, e := range events.Items {
			if e.Regarding.Name == "digitalocean-ratelimited" && e.Reason == v1alpha1.ReasonRateLimited &&
				strings.Contains(e.Note, "retrying in") {
				return true
			}
		}
		return false
	})

	// The Providers the demo relies on are Ready with the demo credentials.
	for _, name := range []string{"digitalocean", "senlin", "e2e", "cloudsfor", "openscaler"} {
		p := &v1alpha1.Provider{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
		waitFor(t, p, 20*time.Second, "Ready=True", func(p *v1alpha1.Provider) bool {
			c := condition(p.Status.Conditions, v1alpha1.ConditionReady)
			return c != nil && c.Status == metav1.ConditionTrue
		})
	}
}

// TestSamplesKustomizationListsEveryFile fails when a sample file is left
// out of kustomization.yaml (make demo and kubectl apply -k would skip it).
func TestSamplesKustomizationListsEveryFile(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(samplesDir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k struct {
		Resources []string `json:"resources"`
	}
	if err := yaml.Unmarshal(b, &k); err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(samplesDir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var unlisted []string
	for _, f := range files {
		base := filepath.Base(f)
		if base != "kustomization.yaml" && !slices.Contains(k.Resources, base) {
			unlisted = append(unlisted, base)
		}
	}
	if len(unlisted) > 0 {
		t.Errorf("config/samples/kustomization.yaml does not list %v", unlisted)
	}
	for _, r := range k.Resources {
		if _, err := os.Stat(filepath.Join(samplesDir, r)); err != nil {
			t.Errorf("kustomization.yaml lists %s: %v", r, err)
		}
	}
}

// TestSamplesDemoInjectsTheRateLimitFault keeps hack/demo.sh's fault (JSON
// for fakecloud's control API) the same as demo.RateLimitFault, which
// TestSamples uses.
func TestSamplesDemoInjectsTheRateLimitFault(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "hack", "demo.sh"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?s)# BEGIN rate-limit fault[^\n]*\n[^\n]*<<'JSON'\n(.*?)\nJSON\n`).FindSubmatch(b)
	if m == nil {
		t.Fatal("hack/demo.sh has no rate-limit fault between '# BEGIN rate-limit fault' and a <<'JSON' heredoc")
	}
	var got fakecloud.Fault
	dec := json.NewDecoder(bytes.NewReader(m[1]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("hack/demo.sh's fault is not a fakecloud.Fault: %v\n%s", err, m[1])
	}
	if want := demo.RateLimitFault(); !reflect.DeepEqual(got, want) {
		t.Errorf("hack/demo.sh injects %+v, but demo.RateLimitFault() is %+v", got, want)
	}
}

// samplesCheck waits for one sample NodeAction to finish and checks its
// outcome, its provider calls and their effect on the VM.
func samplesCheck(t *testing.T, ns, name string, exp sampleOutcome, log func() []fakecloud.Request) {
	na := &v1alpha1.NodeAction{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	finished(t, na, 60*time.Second)
	if exp.stalled {
		expectStalled(t, na, exp.reason, exp.messageParts...)
	} else {
		expectReady(t, na, exp.reason)
		ready := condition(na.Status.Conditions, v1alpha1.ConditionReady)
		for _, p := range exp.messageParts {
			if !strings.Contains(ready.Message, p) {
				t.Errorf("%s: Ready message %q does not contain %q", name, ready.Message, p)
			}
		}
	}
	if na.Status.ProviderAction != exp.providerAction {
		t.Errorf("%s: status.providerAction %q, want %q", name, na.Status.ProviderAction, exp.providerAction)
	}

	calls := samplesActionCalls(log(), exp.skin, exp.node)
	switch {
	case exp.rateLimited:
		if len(calls) != 2 || calls[0].Status != 429 || calls[0].Accepted || !calls[1].Accepted {
			t.Errorf("%s: want one 429 then one accepted action call, fakecloud logged %s", name, samplesDescribe(calls))
		}
	case exp.stalled:
		if len(calls) != 1 || calls[0].Accepted {
			t.Errorf("%s: want exactly one refused action call, fakecloud logged %s", name, samplesDescribe(calls))
		}
	default:
		if len(calls) != 1 || !calls[0].Accepted {
			t.Errorf("%s: want exactly one accepted action call, fakecloud logged %s", name, samplesDescribe(calls))
		}
	}
	if exp.effect != nil {
		vm, ok := cloud.VM(exp.node)
		if !ok {
			t.Fatalf("%s: fakecloud has no VM %s", name, exp.node)
		}
		if err := exp.effect(vm); err != nil {
			t.Errorf("%s: VM %s %v", name, exp.node, err)
		}
	}
}

// samplesCheckSet: the sample NodeActionSet rebooted each worker droplet
// once, never more than two at once on fakecloud's timeline, and ended Ready.
func samplesCheckSet(t *testing.T, ns string, log func() []fakecloud.Request) {
	s := &v1alpha1.NodeActionSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "workers-reboot"}}
	waitForSet(t, s, 90*time.Second, "Ready", setHasReason(v1alpha1.ReasonCompleted))
	if s.Status.Total != int32(len(demo.DropletWorkers)) || s.Status.Succeeded != s.Status.Total {
		t.Errorf("status %+v", s.Status)
	}
	for _, id := range demo.DropletWorkers {
		calls := samplesActionCalls(log(), "digitalocean", id)
		if len(calls) != 1 || !calls[0].Accepted {
			t.Errorf("worker %s: want exactly one accepted action call, fakecloud logged %s", id, samplesDescribe(calls))
		}
		if vm, ok := cloud.VM(id); !ok || samplesBooted(vm) != nil {
			t.Errorf("worker %s did not reboot once: %+v", id, vm)
		}
	}
	if peak, at := cloud.PeakConcurrent(inIDs(demo.DropletWorkers)); peak != 2 {
		t.Errorf("%d reboots at once at %s; the sample's maxUnavailable is 2 and should be used", peak, at)
	}
}

// samplesRewritten copies config/samples to a temporary directory with the
// demo fakecloud's address replaced by base.
func samplesRewritten(t *testing.T, base string) string {
	t.Helper()
	dir := t.TempDir()
	files, err := filepath.Glob(filepath.Join(samplesDir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no samples in %s (%v)", samplesDir, err)
	}
	rewrote := false
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(demo.BaseURL)) {
			rewrote = true
		}
		b = bytes.ReplaceAll(b, []byte(demo.BaseURL), []byte(base))
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if !rewrote {
		t.Fatalf("no sample points at %s: the samples and internal/fakecloud/demo disagree", demo.BaseURL)
	}
	return dir
}

// samplesKubectl runs bin/k8s/kubectl against the suite's apiserver.
func samplesKubectl(t *testing.T, args ...string) string {
	t.Helper()
	kubectl := filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kubectl")
	if _, err := os.Stat(kubectl); err != nil {
		t.Fatalf("kubectl not found in KUBEBUILDER_ASSETS: run `make controlplane` (%v)", err)
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["envtest"] = &clientcmdapi.Cluster{Server: restConfig.Host, CertificateAuthorityData: restConfig.CAData}
	cfg.AuthInfos["admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: restConfig.CertData, ClientKeyData: restConfig.KeyData, Token: restConfig.BearerToken}
	cfg.Contexts["envtest"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "admin"}
	cfg.CurrentContext = "envtest"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, kubectl, append([]string{"--kubeconfig", path}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// samplesActionCalls returns the logged action calls of one skin on one VM.
func samplesActionCalls(log []fakecloud.Request, skin, vmID string) []fakecloud.Request {
	var out []fakecloud.Request
	for _, r := range log {
		if r.ActionCall && r.Skin == skin && r.VMID == vmID {
			out = append(out, r)
		}
	}
	return out
}

func samplesDescribe(calls []fakecloud.Request) string {
	if len(calls) == 0 {
		return "no call"
	}
	parts := make([]string, len(calls))
	for i, c := range calls {
		parts[i] = fmt.Sprintf("%s %s -> %d (accepted %t)", c.Method, c.Path, c.Status, c.Accepted)
	}
	return strings.Join(parts, "; ")
}
