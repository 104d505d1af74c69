package controllers

// What GitOps tools and a person at a terminal read from NodeActions and
// Providers produced by the real reconciler against the real apiserver:
// kstatus (Flux's wait, cli-utils), Argo CD's Lua health checks shipped in
// config/argocd, Flux CEL health check expressions given in docs/gitops.md,
// kubectl wait, and the manager's Prometheus metrics.

import (
	"context"
	"go/ast"
	"go/parser"
	"go/token"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fluxcd/cli-utils/pkg/kstatus/status"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodeaction/nodeaction-operator/api/v1alpha1"
	"github.com/nodeaction/nodeaction-operator/internal/fakecloud"
	"github.com/nodeaction/nodeaction-operator/internal/metrics"
)

// Flux health check expressions for the two kinds, as docs/gitops.md gives
// them (a test checks the page carries exactly these).
var (
	gitopsFluxNodeAction = gitopsFluxExprs{
		inProgress: "status.conditions.exists(c, c.type == 'Reconciling' && c.status == 'True') || (has(spec.runID) ? spec.runID : '') != (has(status.runID) ? status.runID : '')",
		failed:     "status.conditions.exists(c, c.type == 'Stalled' && c.status == 'True')",
		current:    "status.conditions.exists(c, c.type == 'Ready' && c.status == 'True')",
	}
	gitopsFluxProvider = gitopsFluxExprs{
		failed:  "status.conditions.exists(c, c.type == 'Stalled' && c.status == 'True')",
		current: "status.conditions.exists(c, c.type == 'Ready' && c.status == 'True')",
	}
)

// gitopsCheckNodeAction asserts that one version of a NodeAction reads the
// same to kstatus, Argo CD and Flux, and agrees with its phase. It returns
// the phase.
func gitopsCheckNodeAction(t *testing.T, script string, u *unstructured.Unstructured) string {
	t.Helper()
	phase := gitopsPhase(u)
	ks := gitopsKstatus(t, u)
	argo, argoMsg := gitopsArgoHealth(t, script, u)
	flux, fluxErr := gitopsFluxEval(t, gitopsFluxNodeAction, u)
	where := gitopsDescribe(u)
	readySt, readyReason, readyMsg, _ := gitopsCondition(u, v1alpha1.ConditionReady)
	stalledSt, stalledReason, stalledMsg, _ := gitopsCondition(u, v1alpha1.ConditionStalled)
	reconcilingSt, _, _, _ := gitopsCondition(u, v1alpha1.ConditionReconciling)

	switch {
	case phase == "":
		// Just created, not yet seen by the operator. kstatus cannot tell
		// this from an object that needs nothing and says Current: the
		// reason docs/gitops.md gives Flux users CEL expressions. Argo CD's
		// script and those expressions wait.
		if ks.Status != status.CurrentStatus {
			t.Errorf("kstatus of a NodeAction without status: %s (%s); kstatus v1.3.0 says Current, docs/gitops.md relies on that", ks.Status, where)
		}
		if argo != "Progressing" {
			t.Errorf("Argo CD health of a NodeAction without status: %s %q, want Progressing", argo, argoMsg)
		}
		if fluxErr == nil {
			t.Errorf("Flux expressions on a NodeAction without status gave %s, want an evaluation error (Flux: Unknown, keeps waiting)", flux)
		}
	case !gitopsGenerationObserved(u):
		if ks.Status != status.InProgressStatus || argo != "Progressing" || flux != "InProgress" {
			t.Errorf("spec not yet observed (%s): kstatus %s, Argo CD %s, Flux %s %v; want InProgress, Progressing, InProgress", where, ks.Status, argo, flux, fluxErr)
		}
	case gitopsRunID(u, "spec") != gitopsRunID(u, "status"):
		// A new spec.runID whose run has not started: the status is the
		// previous run's and must not read as the outcome of this one.
		if ks.Status != status.InProgressStatus || argo != "Progressing" || flux != "InProgress" {
			t.Errorf("spec.runID %q but status of run %q (%s): kstatus %s, Argo CD %s, Flux %s %v; want InProgress, Progressing, InProgress",
				gitopsRunID(u, "spec"), gitopsRunID(u, "status"), where, ks.Status, argo, flux, fluxErr)
		}
	case phase == string(v1alpha1.PhasePending) || phase == string(v1alpha1.PhaseSubmitting) || phase == string(v1alpha1.PhaseRunning):
		if readySt != "False" || reconcilingSt != "True" || stalledSt == "True" {
			t.Errorf("%s: conditions Ready=%s Reconciling=%s Stalled=%s, want False, True, not True", where, readySt, reconcilingSt, stalledSt)
		}
		if ks.Status != status.InProgressStatus {
			t.Errorf("kstatus %s in %s, want InProgress", ks.Status, where)
		}
		if argo != "Progressing" || !strings.Contains(argoMsg, phase) || !strings.Contains(argoMsg, readyReason) {
			t.Errorf("Argo CD health %s %q in %s, want Progressing with the phase and reason", argo, argoMsg, where)
		}
		if fluxErr != nil || flux != "InProgress" {
			t.Errorf("Flux expressions gave %s %v in %s, want InProgress", flux, fluxErr, where)
		}
	case phase == string(v1alpha1.PhaseSucceeded):
		if readySt != "True" || reconcilingSt != "" || stalledSt != "" {
			t.Errorf("%s: conditions Ready=%s Reconciling=%s Stalled=%s, want True and no others", where, readySt, reconcilingSt, stalledSt)
		}
		if ks.Status != status.CurrentStatus {
			t.Errorf("kstatus %s in %s, want Current", ks.Status, where)
		}
		if argo != "Healthy" || !strings.Contains(argoMsg, readyMsg) {
			t.Errorf("Argo CD health %s %q in %s, want Healthy with the Ready message", argo, argoMsg, where)
		}
		if fluxErr != nil || flux != "Current" {
			t.Errorf("Flux expressions gave %s %v in %s, want Current", flux, fluxErr, where)
		}
	case phase == string(v1alpha1.PhaseFailed):
		if readySt != "False" || stalledSt != "True" || reconcilingSt != "" || stalledReason != readyReason {
			t.Errorf("%s: conditions Ready=%s Stalled=%s (%s) Reconciling=%s, want False, True with the Ready reason, none", where, readySt, stalledSt, stalledReason, reconcilingSt)
		}
		if ks.Status != status.FailedStatus || ks.Message != stalledMsg {
			t.Errorf("kstatus %s %q in %s, want Failed with the Stalled message", ks.Status, ks.Message, where)
		}
		if argo != "Degraded" || !strings.Contains(argoMsg, stalledMsg) || !strings.Contains(argoMsg, stalledReason) {
			t.Errorf("Argo CD health %s %q in %s, want Degraded with the Stalled reason and message %q", argo, argoMsg, where, stalledMsg)
		}
		if fluxErr != nil || flux != "Failed" {
			t.Errorf("Flux expressions gave %s %v in %s, want Failed", flux, fluxErr, where)
		}
	default:
		t.Errorf("unknown phase in %s", where)
	}
	return phase
}

// gitopsCheckAll checks every recorded version and returns the phases seen.
func gitopsCheckAll(t *testing.T, script string, versions []*unstructured.Unstructured) map[string]bool {
	t.Helper()
	seen := map[string]bool{}
	for _, u := range versions {
		seen[gitopsCheckNodeAction(t, script, u)] = true
	}
	return seen
}

func gitopsExpectPhases(t *testing.T, seen map[string]bool, phases ...v1alpha1.Phase) {
	t.Helper()
	for _, p := range phases {
		if !seen[string(p)] {
			t.Errorf("no version in phase %q was published (seen %v)", p, seen)
		}
	}
}

// A NodeAction waits for its Provider (Pending), is submitted while the
// provider holds the POST open (Submitting), runs (Running) and succeeds.
// Every version the apiserver published on the way reads InProgress /
// Progressing until the end, then Current / Healthy; kubectl wait, started
// while the action is in flight, returns 0.
func TestGitOpsStatusThroughASuccessfulRun(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	startManagerIn(t, ns)
	kubeconfig := gitopsKubeconfig(t)
	script := gitopsReadFile(t, "config/argocd/nodeaction-health.lua")
	const vm = "7301"
	cloud.AddVM(fakecloud.VM{ID: vm})
	hist := gitopsRecord(t, ns, "reboot")

	na := nodeAction(ns, "reboot", "do", vm, "reboot")
	create(t, na)
	hist.waitFor(t, 20*time.Second, "Pending with reason ProviderNotFound", func(u *unstructured.Unstructured) bool {
		_, reason, _, _ := gitopsCondition(u, v1alpha1.ConditionReady)
		return gitopsPhase(u) == string(v1alpha1.PhasePending) && reason == v1alpha1.ReasonProviderNotFound
	})

	hold := cloud.InjectFault(fakecloud.Fault{Skin: "digitalocean", PathContains: "/droplets/" + vm + "/", ActionOnly: true, Mode: fakecloud.AcceptThenHold, Times: 1})
	defer hold.Release()
	createProvider(t, ns, "do", v1alpha1.ProviderDigitalOcean)
	select {
	case <-hold.Held():
	case <-time.After(20 * time.Second):
		t.Fatal("the POST never reached fakecloud")
	}
	if u := gitopsGet(t, gitopsNodeActionGVK, keyOf(na)); gitopsPhase(u) != string(v1alpha1.PhaseSubmitting) {
		t.Fatalf("while the POST is held: %s, want phase Submitting", gitopsDescribe(u))
	}

	wait := gitopsKubectlStart(t, kubeconfig, "wait", "--for=condition=Ready", "nodeaction/reboot", "-n", ns, "--timeout=30s")
	hold.Release()
	if res := wait(); res.code != 0 || !strings.Contains(res.output, "condition met") {
		t.Fatalf("kubectl wait --for=condition=Ready exited %d: %s", res.code, res.output)
	}
	hist.waitFor(t, 20*time.Second, "phase Succeeded", gitopsPhaseIs(v1alpha1.PhaseSucceeded))

	seen := gitopsCheckAll(t, script, hist.all())
	gitopsExpectPhases(t, seen, "", v1alpha1.PhasePending, v1alpha1.PhaseSubmitting, v1alpha1.PhaseRunning, v1alpha1.PhaseSucceeded)
	if n := cloud.ActionCalls(vm); n != 1 {
		t.Errorf("%d action calls, want 1", n)
	}
}

// Failures end Failed with Stalled=True, which kstatus reads as Failed,
// Argo CD as Degraded with the condition's message, Flux as Failed; kubectl
// wait for Ready times out (non-zero) while a wait for Stalled returns 0.
func TestGitOpsStatusThroughFailedRuns(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	startManagerIn(t, ns)
	kubeconfig := gitopsKubeconfig(t)
	script := gitopsReadFile(t, "config/argocd/nodeaction-health.lua")
	createProvider(t, ns, "do", v1alpha1.ProviderDigitalOcean)
	cloud.AddVM(fakecloud.VM{ID: "7302", FailNext: "hypervisor lost the disk"})

	cases := []struct {
		name, vm, reason, message string
		phases                    []v1alpha1.Phase
	}{
		// The provider answers the POST with 404: the run ends from Submitting.
		{name: "unknown-node", vm: "7399901", reason: v1alpha1.ReasonNodeNotFound, message: "HTTP 404",
			phases: []v1alpha1.Phase{v1alpha1.PhaseSubmitting, v1alpha1.PhaseFailed}},
		// The provider accepts the action and later reports it errored.
		{name: "provider-failure", vm: "7302", reason: v1alpha1.ReasonProviderFailed, message: "errored",
			phases: []v1alpha1.Phase{v1alpha1.PhaseSubmitting, v1alpha1.PhaseRunning, v1alpha1.PhaseFailed}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			hist := gitopsRecord(t, ns, c.name)
			na := nodeAction(ns, c.name, "do", c.vm, "reboot")
			create(t, na)
			last := hist.waitFor(t, 20*time.Second, "phase Failed", gitopsPhaseIs(v1alpha1.PhaseFailed))
			_, reason, msg, _ := gitopsCondition(last, v1alpha1.ConditionStalled)
			if reason != c.reason || !strings.Contains(msg, c.message) {
				t.Fatalf("Stalled %s %q, want %s with %q", reason, msg, c.reason, c.message)
			}
			seen := gitopsCheckAll(t, script, hist.all())
			gitopsExpectPhases(t, seen, append([]v1alpha1.Phase{""}, c.phases...)...)

			// Ready never turns True: kubectl wait gives up at its timeout.
			res := gitopsKubectl(t, kubeconfig, "wait", "--for=condition=Ready", "nodeaction/"+c.name, "-n", ns, "--timeout=3s")
			if res.code == 0 || !strings.Contains(res.output, "timed out") {
				t.Errorf("kubectl wait for Ready on a failed NodeAction exited %d: %s; want a timeout", res.code, res.output)
			}
			if res.took < 3*time.Second {
				t.Errorf("kubectl wait returned after %s, before its 3s timeout", res.took)
			}
			res = gitopsKubectl(t, kubeconfig, "wait", "--for=condition=Stalled", "nodeaction/"+c.name, "-n", ns, "--timeout=30s")
			if res.code != 0 {
				t.Errorf("kubectl wait --for=condition=Stalled exited %d: %s", res.code, res.output)
			}
		})
	}
}

// A provider 429 sends the NodeAction back to Pending with reason
// RateLimited: still InProgress / Progressing, never Failed, then Current.
func TestGitOpsStatusWhileRateLimited(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	startManagerIn(t, ns)
	script := gitopsReadFile(t, "config/argocd/nodeaction-health.lua")
	createProvider(t, ns, "do", v1alpha1.ProviderDigitalOcean)
	const vm = "7303"
	cloud.AddVM(fakecloud.VM{ID: vm})
	cloud.InjectFault(fakecloud.Fault{Skin: "digitalocean", PathContains: "/droplets/" + vm + "/", ActionOnly: true, Mode: fakecloud.Reject, Status: 429, RetryAfter: 1, Times: 1})
	hist := gitopsRecord(t, ns, "limited")
	create(t, nodeAction(ns, "limited", "do", vm, "reboot"))
	limited := hist.waitFor(t, 20*time.Second, "reason RateLimited", func(u *unstructured.Unstructured) bool {
		_, reason, _, _ := gitopsCondition(u, v1alpha1.ConditionReady)
		return reason == v1alpha1.ReasonRateLimited
	})
	if gitopsPhase(limited) != string(v1alpha1.PhasePending) {
		t.Errorf("rate-limited NodeAction in phase %q, want Pending", gitopsPhase(limited))
	}
	if h, msg := gitopsArgoHealth(t, script, limited); h != "Progressing" || !strings.Contains(msg, "RateLimited") {
		t.Errorf("Argo CD health %s %q while rate-limited, want Progressing naming RateLimited", h, msg)
	}
	hist.waitFor(t, 20*time.Second, "phase Succeeded", gitopsPhaseIs(v1alpha1.PhaseSucceeded))
	seen := gitopsCheckAll(t, script, hist.all())
	gitopsExpectPhases(t, seen, v1alpha1.PhasePending, v1alpha1.PhaseSubmitting, v1alpha1.PhaseRunning, v1alpha1.PhaseSucceeded)
}

// A GitOps re-run: changing spec.runID on a finished NodeAction. Until the
// operator has seen the new generation, the old Ready=True must not count:
// kstatus, Argo CD, Flux and kubectl wait all wait for the new run.
func TestGitOpsStatusOfARerun(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	stop := startManagerIn(t, ns)
	kubeconfig := gitopsKubeconfig(t)
	script := gitopsReadFile(t, "config/argocd/nodeaction-health.lua")
	createProvider(t, ns, "do", v1alpha1.ProviderDigitalOcean)
	const vm = "7304"
	cloud.AddVM(fakecloud.VM{ID: vm})
	hist := gitopsRecord(t, ns, "rerun")
	na := nodeAction(ns, "rerun", "do", vm, "reboot")
	create(t, na)
	hist.waitFor(t, 20*time.Second, "phase Succeeded", gitopsPhaseIs(v1alpha1.PhaseSucceeded))

	// With the operator stopped, the new runID stays unobserved.
	stop()
	patch := client.MergeFrom(na.DeepCopy())
	na.Spec.RunID = "second"
	if err := k8s.Patch(context.Background(), na, patch); err != nil {
		t.Fatal(err)
	}
	stale := gitopsGet(t, gitopsNodeActionGVK, keyOf(na))
	if gitopsGenerationObserved(stale) || gitopsPhase(stale) != string(v1alpha1.PhaseSucceeded) {
		t.Fatalf("want the old run's status with an unobserved generation, got %s", gitopsDescribe(stale))
	}
	if st, _, _, _ := gitopsCondition(stale, v1alpha1.ConditionReady); st != "True" {
		t.Fatalf("the old run's Ready is %q, want it still True", st)
	}
	gitopsCheckNodeAction(t, script, stale)
	res := gitopsKubectl(t, kubeconfig, "wait", "--for=condition=Ready", "nodeaction/rerun", "-n", ns, "--timeout=3s")
	if res.code == 0 {
		t.Errorf("kubectl wait accepted the previous run's Ready=True for a new runID: %s", res.output)
	}

	startManagerIn(t, ns)
	done := hist.waitFor(t, 20*time.Second, "the second run Succeeded", func(u *unstructured.Unstructured) bool {
		runID, _, _ := unstructured.NestedString(u.Object, "status", "runID")
		return runID == "second" && gitopsPhase(u) == string(v1alpha1.PhaseSucceeded)
	})
	if res := gitopsKubectl(t, kubeconfig, "wait", "--for=condition=Ready", "nodeaction/rerun", "-n", ns, "--timeout=30s"); res.code != 0 {
		t.Errorf("kubectl wait after the second run exited %d: %s", res.code, res.output)
	}
	history, _, _ := unstructured.NestedSlice(done.Object, "status", "history")
	if len(history) != 1 || history[0].(map[string]any)["phase"] != string(v1alpha1.PhaseSucceeded) {
		t.Errorf("status.history %v, want the first run, Succeeded", history)
	}
	seen := gitopsCheckAll(t, script, hist.all())
	gitopsExpectPhases(t, seen, v1alpha1.PhaseSubmitting, v1alpha1.PhaseRunning, v1alpha1.PhaseSucceeded)
	if n := cloud.ActionCalls(vm); n != 2 {
		t.Errorf("%d action calls for two runs, want 2", n)
	}
}

// spec.runID changed while the action is still running: the new run must
// follow the current one, and no version may present the old run's
// success as the outcome of the new runID.
func TestGitOpsRunIDChangedWhileRunning(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	startManagerIn(t, ns)
	script := gitopsReadFile(t, "config/argocd/nodeaction-health.lua")
	createProvider(t, ns, "do", v1alpha1.ProviderDigitalOcean)
	const vm = "7305"
	cloud.AddVM(fakecloud.VM{ID: vm, ActionDuration: 2 * time.Second})
	hist := gitopsRecord(t, ns, "changed")
	na := nodeAction(ns, "changed", "do", vm, "reboot")
	create(t, na)
	hist.waitFor(t, 20*time.Second, "phase Running", gitopsPhaseIs(v1alpha1.PhaseRunning))
	patch := client.MergeFrom(na.DeepCopy())
	na.Spec.RunID = "second"
	if err := k8s.Patch(context.Background(), na, patch); err != nil {
		t.Fatal(err)
	}
	hist.waitFor(t, 20*time.Second, "the second run Succeeded", func(u *unstructured.Unstructured) bool {
		return gitopsRunID(u, "status") == "second" && gitopsPhase(u) == string(v1alpha1.PhaseSucceeded)
	})
	gitopsCheckAll(t, script, hist.all())
	if n := cloud.ActionCalls(vm); n != 2 {
		t.Errorf("%d action calls, want 2 (one per run)", n)
	}
}

// ttlSecondsAfterFinished may be changed on a finished NodeAction (from Git,
// say). That spec change is observed without a new run, and the finished
// run must still read Ready everywhere, kubectl wait included (it compares
// each condition's observedGeneration with metadata.generation).
func TestGitOpsTTLChangeOnAFinishedNodeAction(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	startManagerIn(t, ns)
	kubeconfig := gitopsKubeconfig(t)
	script := gitopsReadFile(t, "config/argocd/nodeaction-health.lua")
	createProvider(t, ns, "do", v1alpha1.ProviderDigitalOcean)
	const vm = "7306"
	cloud.AddVM(fakecloud.VM{ID: vm})
	hist := gitopsRecord(t, ns, "keep")
	na := nodeAction(ns, "keep", "do", vm, "reboot")
	create(t, na)
	hist.waitFor(t, 20*time.Second, "phase Succeeded", gitopsPhaseIs(v1alpha1.PhaseSucceeded))
	patch := client.MergeFrom(na.DeepCopy())
	na.Spec.TTLSecondsAfterFinished = ptr.To(int32(86400))
	if err := k8s.Patch(context.Background(), na, patch); err != nil {
		t.Fatal(err)
	}
	hist.waitFor(t, 20*time.Second, "generation 2 observed", func(u *unstructured.Unstructured) bool {
		return u.GetGeneration() == 2 && gitopsGenerationObserved(u)
	})
	gitopsCheckAll(t, script, hist.all())
	if res := gitopsKubectl(t, kubeconfig, "wait", "--for=condition=Ready", "nodeaction/keep", "-n", ns, "--timeout=5s"); res.code != 0 {
		u := gitopsGet(t, gitopsNodeActionGVK, keyOf(na))
		conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
		t.Errorf("kubectl wait --for=condition=Ready on a succeeded NodeAction whose ttlSecondsAfterFinished changed exited %d: %s\ngeneration %d, conditions %v",
			res.code, res.output, u.GetGeneration(), conds)
	}
	if n := cloud.ActionCalls(vm); n != 1 {
		t.Errorf("%d action calls, want 1: changing the TTL must not run the action again", n)
	}
}

// gitopsCheckProvider asserts what kstatus, Argo CD and Flux make of a Provider.
func gitopsCheckProvider(t *testing.T, script string, u *unstructured.Unstructured, wantKstatus status.Status, wantArgo, wantFlux string, msgPart string) {
	t.Helper()
	where := gitopsDescribe(u)
	if ks := gitopsKstatus(t, u); ks.Status != wantKstatus {
		t.Errorf("kstatus %s (%s), want %s (%s)", ks.Status, ks.Message, wantKstatus, where)
	}
	argo, msg := gitopsArgoHealth(t, script, u)
	if argo != wantArgo || !strings.Contains(msg, msgPart) {
		t.Errorf("Argo CD health %s %q, want %s with %q (%s)", argo, msg, wantArgo, msgPart, where)
	}
	flux, err := gitopsFluxEval(t, gitopsFluxProvider, u)
	if wantFlux == "" {
		if err == nil {
			t.Errorf("Flux expressions gave %s, want an evaluation error (Unknown)", flux)
		}
	} else if err != nil || flux != wantFlux {
		t.Errorf("Flux expressions gave %s %v, want %s (%s)", flux, err, wantFlux, where)
	}
}

// Providers: Ready reads Current / Healthy; rejected credentials
// (Stalled) read Failed / Degraded; an unreachable endpoint (Ready=False,
// may recover) reads InProgress for kstatus and Degraded for Argo CD; a
// Provider not yet probed reads Progressing for Argo CD.
func TestGitOpsProviderStatus(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	kubeconfig := gitopsKubeconfig(t)
	script := gitopsReadFile(t, "config/argocd/provider-health.lua")

	// Created before this namespace has a manager: no status yet.
	good := createProvider(t, ns, "good", v1alpha1.ProviderDigitalOcean)
	gitopsCheckProvider(t, script, gitopsGet(t, gitopsProviderGVK, keyOf(good)), status.CurrentStatus, "Progressing", "", "probe")

	bad, badSecret := providerFor(t, ns, "rejected", v1alpha1.ProviderDigitalOcean)
	badSecret.StringData["token"] = "revoked-token-value"
	create(t, badSecret)
	create(t, bad)
	down, downSecret := providerFor(t, ns, "down", v1alpha1.ProviderDigitalOcean)
	down.Spec.Endpoint = "http://127.0.0.1:1"
	create(t, downSecret)
	create(t, down)

	startManagerIn(t, ns)
	providerReady(t, good, metav1.ConditionTrue, v1alpha1.ReasonProbeSucceeded)
	providerReady(t, bad, metav1.ConditionFalse, v1alpha1.ReasonAuthFailed)
	providerReady(t, down, metav1.ConditionFalse, v1alpha1.ReasonEndpointUnreachable)

	gitopsCheckProvider(t, script, gitopsGet(t, gitopsProviderGVK, keyOf(good)), status.CurrentStatus, "Healthy", "Current", "credentials accepted")
	gitopsCheckProvider(t, script, gitopsGet(t, gitopsProviderGVK, keyOf(bad)), status.FailedStatus, "Degraded", "Failed", "AuthFailed: Unable to authenticate you")
	gitopsCheckProvider(t, script, gitopsGet(t, gitopsProviderGVK, keyOf(down)), status.InProgressStatus, "Degraded", "InProgress", v1alpha1.ReasonEndpointUnreachable)

	if res := gitopsKubectl(t, kubeconfig, "wait", "--for=condition=Ready", "provider/good", "-n", ns, "--timeout=30s"); res.code != 0 {
		t.Errorf("kubectl wait on a ready Provider exited %d: %s", res.code, res.output)
	}
	if res := gitopsKubectl(t, kubeconfig, "wait", "--for=condition=Ready", "provider/rejected", "-n", ns, "--timeout=2s"); res.code == 0 {
		t.Errorf("kubectl wait on a Provider with rejected credentials succeeded: %s", res.output)
	}
}

// gitopsFixture is a hand-written NodeAction or Provider with a status.
func gitopsFixture(kind string, generation, observed int64, phase string, conds ...map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": v1alpha1.GroupVersion.String(), "kind": kind,
		"metadata": map[string]any{"name": "x", "namespace": "y", "generation": generation},
	}}
	if observed >= 0 {
		st := map[string]any{"observedGeneration": observed}
		if phase != "" {
			st["phase"] = phase
		}
		if conds != nil {
			list := make([]any, len(conds))
			for i, c := range conds {
				list[i] = c
			}
			st["conditions"] = list
		}
		u.Object["status"] = st
	}
	return u
}

func gitopsWithRunID(u *unstructured.Unstructured, spec, st string) *unstructured.Unstructured {
	if spec != "" {
		_ = unstructured.SetNestedField(u.Object, spec, "spec", "runID")
	}
	if st != "" {
		_ = unstructured.SetNestedField(u.Object, st, "status", "runID")
	}
	return u
}

func gitopsCond(typ, st, reason, msg string) map[string]any {
	return map[string]any{"type": typ, "status": st, "reason": reason, "message": msg}
}

// Extra cases for the Lua scripts that the reconciler does not produce on
// its own (or only briefly).
func TestGitOpsArgoCDHealthOnFixtures(t *testing.T) {
	t.Parallel()
	nodeScript := gitopsReadFile(t, "config/argocd/nodeaction-health.lua")
	providerScript := gitopsReadFile(t, "config/argocd/provider-health.lua")
	cases := []struct {
		name, script string
		obj          *unstructured.Unstructured
		want, msg    string
	}{
		{"nodeaction without status", nodeScript, gitopsFixture("NodeAction", 1, -1, ""), "Progressing", "operator"},
		{"nodeaction with status but no conditions", nodeScript, gitopsFixture("NodeAction", 1, 1, "Pending"), "Progressing", "operator"},
		{"failed run, runID changed, not yet seen", nodeScript, gitopsFixture("NodeAction", 2, 1, "Failed",
			gitopsCond("Ready", "False", "NodeNotFound", "gone"), gitopsCond("Stalled", "True", "NodeNotFound", "gone")), "Progressing", "generation 2"},
		{"Ready Unknown", nodeScript, gitopsFixture("NodeAction", 1, 1, "Running",
			gitopsCond("Ready", "Unknown", "InProgress", "following")), "Progressing", "Running: InProgress: following"},
		{"Stalled with an empty message", nodeScript, gitopsFixture("NodeAction", 1, 1, "Failed",
			gitopsCond("Ready", "False", "Rejected", ""), gitopsCond("Stalled", "True", "Rejected", "")), "Degraded", "Rejected"},
		{"Succeeded", nodeScript, gitopsFixture("NodeAction", 3, 3, "Succeeded",
			gitopsCond("Ready", "True", "AcceptedUnverified", "accepted; cannot be verified")), "Healthy", "AcceptedUnverified: accepted; cannot be verified"},
		{"succeeded run, runID changed, new run not started", nodeScript, gitopsWithRunID(gitopsFixture("NodeAction", 2, 2, "Succeeded",
			gitopsCond("Ready", "True", "Completed", "done")), "second", ""), "Progressing", `start run "second"`},
		{"run started for the current runID", nodeScript, gitopsWithRunID(gitopsFixture("NodeAction", 2, 2, "Succeeded",
			gitopsCond("Ready", "True", "Completed", "done")), "second", "second"), "Healthy", "Completed: done"},
		{"provider without status", providerScript, gitopsFixture("Provider", 1, -1, ""), "Progressing", "probe"},
		{"provider with a changed spec not yet probed", providerScript, gitopsFixture("Provider", 2, 1, "",
			gitopsCond("Ready", "True", "ProbeSucceeded", "ok")), "Progressing", "generation 2"},
		{"provider without a Ready condition", providerScript, gitopsFixture("Provider", 1, 1, "",
			gitopsCond("Other", "True", "X", "y")), "Progressing", "probe"},
		{"provider rate-limited", providerScript, gitopsFixture("Provider", 1, 1, "",
			gitopsCond("Ready", "False", "RateLimited", "429")), "Degraded", "RateLimited: 429"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, msg := gitopsArgoHealth(t, c.script, c.obj)
			if got != c.want || !strings.Contains(msg, c.msg) {
				t.Errorf("health %s %q, want %s with %q", got, msg, c.want, c.msg)
			}
		})
	}

	// Argo CD does not open Lua's string library for scripts from
	// argocd-cm; neither does the sandbox here, so a script using it would
	// have failed above.
	l := gitopsArgoSandbox(t)
	defer l.Close()
	if err := l.DoString("return string.upper('healthy')"); err == nil {
		t.Error("the test sandbox has Lua's string library, which Argo CD does not give argocd-cm scripts")
	}
}

// config/argocd/argocd-cm.yaml carries exactly the two scripts under the
// keys Argo CD reads, and merges into an existing argocd-cm with kubectl
// patch as docs/gitops.md says, keeping the keys already there.
func TestGitOpsArgoCDConfigMap(t *testing.T) {
	t.Parallel()
	raw := gitopsReadFile(t, "config/argocd/argocd-cm.yaml")
	cm := &corev1.ConfigMap{}
	if err := yaml.NewYAMLOrJSONDecoder(strings.NewReader(raw), 4096).Decode(cm); err != nil {
		t.Fatal(err)
	}
	if cm.Name != "argocd-cm" || cm.Namespace != "argocd" || cm.Kind != "ConfigMap" {
		t.Fatalf("want ConfigMap argocd/argocd-cm, got %s %s/%s", cm.Kind, cm.Namespace, cm.Name)
	}
	want := map[string]string{
		"resource.customizations.health.compute.nodeaction.dev_NodeAction":    gitopsReadFile(t, "config/argocd/nodeaction-health.lua"),
		"resource.customizations.health.compute.nodeaction.dev_NodeActionSet": gitopsReadFile(t, "config/argocd/nodeactionset-health.lua"),
		"resource.customizations.health.compute.nodeaction.dev_Provider":      gitopsReadFile(t, "config/argocd/provider-health.lua"),
	}
	if len(cm.Data) != len(want) {
		t.Errorf("argocd-cm.yaml has keys %v, want %d", cm.Data, len(want))
	}
	for k, v := range want {
		if cm.Data[k] != v {
			t.Errorf("argocd-cm.yaml key %s differs from the .lua file: regenerate it from config/argocd/*.lua", k)
		}
	}

	ctx := context.Background()
	if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "argocd"}}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	existing := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "argocd", Name: "argocd-cm"},
		Data: map[string]string{"url": "https://argocd.example.com", "resource.customizations.health.example.com_Thing": "hs = {} return hs"}}
	_ = k8s.Delete(ctx, existing)
	create(t, existing)
	kubeconfig := gitopsKubeconfig(t)
	if res := gitopsKubectl(t, kubeconfig, "-n", "argocd", "patch", "configmap", "argocd-cm", "--patch-file", "../config/argocd/argocd-cm.yaml"); res.code != 0 {
		t.Fatalf("kubectl patch exited %d: %s", res.code, res.output)
	}
	got := &corev1.ConfigMap{}
	if err := k8s.Get(ctx, keyOf(existing), got); err != nil {
		t.Fatal(err)
	}
	for k, v := range existing.Data {
		if got.Data[k] != v {
			t.Errorf("patching dropped or changed key %s", k)
		}
	}
	for k, v := range want {
		if got.Data[k] != v {
			t.Errorf("after the patch key %s is not the script", k)
		}
	}
}

// The manager's /metrics endpoint shows what the operator did: finished
// actions by provider type, action and result; their durations; provider
// requests by code (a 429 among them); seconds held back by rate limits;
// actions in flight.
func TestGitOpsMetricsScrape(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	url := gitopsStartManagerWithMetrics(t, ns)
	createProvider(t, ns, "do", v1alpha1.ProviderDigitalOcean)
	cloud.AddVM(fakecloud.VM{ID: "7311"})
	cloud.AddVM(fakecloud.VM{ID: "7312", FailNext: "hypervisor lost the disk"})
	cloud.AddVM(fakecloud.VM{ID: "7313"})
	cloud.AddVM(fakecloud.VM{ID: "7314", ActionDuration: time.Hour})
	cloud.InjectFault(fakecloud.Fault{Skin: "digitalocean", PathContains: "/droplets/7313/", ActionOnly: true, Mode: fakecloud.Reject, Status: 429, RetryAfter: 1, Times: 1})
	before := gitopsScrapeMetrics(t, url)

	type run struct{ name, vm, reason string }
	runs := []run{
		{"ok", "7311", v1alpha1.ReasonCompleted},
		{"fails", "7312", v1alpha1.ReasonProviderFailed},
		{"limited", "7313", v1alpha1.ReasonCompleted},
		{"missing", "7399911", v1alpha1.ReasonNodeNotFound},
	}
	for _, r := range runs {
		create(t, nodeAction(ns, r.name, "do", r.vm, "reboot"))
	}
	// One more stays Running (its action takes an hour).
	running := nodeAction(ns, "running", "do", "7314", "reboot")
	create(t, running)
	for _, r := range runs {
		na := finished(t, &v1alpha1.NodeAction{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: r.name}}, 30*time.Second)
		if got := readyReason(na); got != r.reason {
			t.Fatalf("NodeAction %s ended with %s (%s), want %s", r.name, got, na.Status.Message, r.reason)
		}
	}
	waitFor(t, running, 20*time.Second, "phase Running", func(n *v1alpha1.NodeAction) bool { return n.Status.Phase == v1alpha1.PhaseRunning })
	after := gitopsScrapeMetrics(t, url)

	for name, typ := range map[string]string{
		"nodeaction_actions_total": "counter", "nodeaction_action_duration_seconds": "histogram",
		"nodeaction_provider_requests_total": "counter", "nodeaction_provider_request_duration_seconds": "histogram",
		"nodeaction_rate_limit_wait_seconds_total": "counter", "nodeaction_inflight_actions": "gauge",
	} {
		if after.types[name] != typ {
			t.Errorf("metric %s has TYPE %q, want %s", name, after.types[name], typ)
		}
	}

	delta := func(name string, labels map[string]string) float64 {
		return after.get(name, labels) - before.get(name, labels)
	}
	do := gitopsLabels("provider_type", "digitalocean", "action", "reboot")
	for reason, want := range map[string]float64{v1alpha1.ReasonCompleted: 2, v1alpha1.ReasonProviderFailed: 1, v1alpha1.ReasonNodeNotFound: 1} {
		if got := delta("nodeaction_actions_total", gitopsWith(do, "result", reason)); got < want {
			t.Errorf("nodeaction_actions_total{result=%q} rose by %g, want at least %g; series:\n  %s", reason, got, want, after.series("nodeaction_actions_total"))
		}
	}

	// Durations: two successes and two failures were observed, each far
	// below a minute, and the +Inf bucket equals the count.
	for phase, want := range map[string]float64{"Succeeded": 2, "Failed": 2} {
		l := gitopsWith(do, "phase", phase)
		count := delta("nodeaction_action_duration_seconds_count", l)
		sum := delta("nodeaction_action_duration_seconds_sum", l)
		if count < want || sum <= 0 || sum/count > 30 {
			t.Errorf("nodeaction_action_duration_seconds{phase=%q}: count +%g, sum +%g; want at least %g observations of a few seconds", phase, count, sum, want)
		}
		if inf := after.get("nodeaction_action_duration_seconds_bucket", gitopsWith(l, "le", "+Inf")); inf != after.get("nodeaction_action_duration_seconds_count", l) {
			t.Errorf("+Inf bucket %g != count %g", inf, after.get("nodeaction_action_duration_seconds_count", l))
		}
	}

	req := gitopsLabels("provider_type", "digitalocean")
	if got := delta("nodeaction_provider_requests_total", gitopsWith(req, "method", "POST", "code", "429")); got < 1 {
		t.Errorf("no POST answered 429 was counted; series:\n  %s", after.series("nodeaction_provider_requests_total"))
	}
	if got := delta("nodeaction_provider_requests_total", gitopsWith(req, "method", "POST", "code", "201")); got < 4 {
		t.Errorf("POSTs answered 201 rose by %g, want at least 4 (ok, fails, limited, running)", got)
	}
	if got := delta("nodeaction_provider_requests_total", gitopsWith(req, "method", "POST", "code", "404")); got < 1 {
		t.Errorf("POSTs answered 404 rose by %g, want at least 1", got)
	}
	if got := delta("nodeaction_provider_requests_total", gitopsWith(req, "method", "GET", "code", "200")); got < 3 {
		t.Errorf("GETs answered 200 (probe and polls) rose by %g, want at least 3", got)
	}
	if got := delta("nodeaction_provider_request_duration_seconds_count", gitopsWith(req, "method", "POST")); got < 6 {
		t.Errorf("request durations observed for %g POSTs, want at least 6", got)
	}

	// The namespace is this test's own, so these are absolute.
	mine := gitopsLabels("namespace", ns, "provider", "do")
	if got := after.get("nodeaction_rate_limit_wait_seconds_total", mine); got < 0.9 || got > 5 {
		t.Errorf("nodeaction_rate_limit_wait_seconds_total = %g for one 429 with Retry-After 1, want about 1; series:\n  %s", got, after.series("nodeaction_rate_limit_wait_seconds_total"))
	}
	if got, ok := after.value("nodeaction_inflight_actions", mine); !ok || got != 1 {
		t.Errorf("nodeaction_inflight_actions = %g (present %v) with one action Running, want 1; series:\n  %s", got, ok, after.series("nodeaction_inflight_actions"))
	}

	// Deleting the running NodeAction takes it out of flight.
	if err := k8s.Delete(context.Background(), running); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := gitopsScrapeMetrics(t, url).get("nodeaction_inflight_actions", mine)
		if got == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("nodeaction_inflight_actions = %g after the running NodeAction was deleted, want 0", got)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A NodeAction failing on its deadline is counted under its provider type,
// like every other result.
func TestGitOpsMetricsDeadlineExceededCountsProviderType(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	url := gitopsStartManagerWithMetrics(t, ns)
	createProvider(t, ns, "do", v1alpha1.ProviderDigitalOcean)
	cloud.AddVM(fakecloud.VM{ID: "7315", ActionDuration: time.Hour})
	before := gitopsScrapeMetrics(t, url)
	na := nodeAction(ns, "slow", "do", "7315", "power_cycle")
	na.Spec.ActiveDeadlineSeconds = ptr.To(int64(1))
	create(t, na)
	finished(t, na, 20*time.Second)
	expectStalled(t, na, v1alpha1.ReasonDeadlineExceeded)
	after := gitopsScrapeMetrics(t, url)
	l := gitopsLabels("provider_type", "digitalocean", "action", "power_cycle", "result", v1alpha1.ReasonDeadlineExceeded)
	if d := after.get("nodeaction_actions_total", l) - before.get("nodeaction_actions_total", l); d < 1 {
		t.Errorf("nodeaction_actions_total%v rose by %g, want at least 1; series:\n  %s", l, d, after.series("nodeaction_actions_total"))
	}
}

// gitopsMetricLabels maps each metric the operator declares to its
// variable labels.
func gitopsMetricLabels(t *testing.T) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	re := regexp.MustCompile(`fqName: "([^"]+)".*variableLabels: \{([^}]*)\}`)
	for _, c := range metrics.Collectors {
		ch := make(chan *prometheus.Desc, 4)
		c.Describe(ch)
		close(ch)
		for d := range ch {
			m := re.FindStringSubmatch(d.String())
			if m == nil {
				t.Fatalf("cannot read %s", d)
			}
			var labels []string
			for _, l := range strings.Split(m[2], ",") {
				if l = strings.TrimSpace(l); l != "" {
					labels = append(labels, l)
				}
			}
			out[m[1]] = labels
		}
	}
	return out
}

// gitopsReasonGroups reads api/v1alpha1/conditions.go: every Reason
// constant's value, grouped by the comment that opens its group.
func gitopsReasonGroups(t *testing.T) (all []string, groups map[string][]string) {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "../api/v1alpha1/conditions.go", nil, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	groups = map[string][]string{}
	for _, decl := range f.Decls {
		gd, ok := decl.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			continue
		}
		group := ""
		for _, spec := range gd.Specs {
			vs := spec.(*ast.ValueSpec)
			if vs.Doc != nil {
				group = strings.TrimSpace(vs.Doc.Text())
			}
			for i, name := range vs.Names {
				if !strings.HasPrefix(name.Name, "Reason") || i >= len(vs.Values) {
					continue
				}
				lit, ok := vs.Values[i].(*ast.BasicLit)
				if !ok {
					t.Fatalf("%s is not a literal", name.Name)
				}
				v, _ := strconv.Unquote(lit.Value)
				all = append(all, v)
				groups[group] = append(groups[group], v)
			}
		}
	}
	if len(all) < 20 {
		t.Fatalf("found only %d reasons in conditions.go", len(all))
	}
	return all, groups
}

// The PrometheusRule parses, has the shape the Prometheus Operator wants,
// and only uses metrics and labels the operator exports.
func TestGitOpsPrometheusRules(t *testing.T) {
	t.Parallel()
	rule := &struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name string `json:"name"`
		} `json:"metadata"`
		Spec struct {
			Groups []struct {
				Name  string `json:"name"`
				Rules []struct {
					Alert       string            `json:"alert"`
					Record      string            `json:"record"`
					Expr        string            `json:"expr"`
					For         string            `json:"for"`
					Labels      map[string]string `json:"labels"`
					Annotations map[string]string `json:"annotations"`
				} `json:"rules"`
			} `json:"groups"`
		} `json:"spec"`
	}{}
	raw := gitopsReadFile(t, "config/prometheus/alerts.yaml")
	if err := yaml.NewYAMLOrJSONDecoder(strings.NewReader(raw), 4096).Decode(rule); err != nil {
		t.Fatal(err)
	}
	if rule.APIVersion != "monitoring.coreos.com/v1" || rule.Kind != "PrometheusRule" || rule.Metadata.Name == "" || len(rule.Spec.Groups) == 0 {
		t.Fatalf("not a PrometheusRule: %+v", rule)
	}
	declared := gitopsMetricLabels(t)
	metricRef := regexp.MustCompile(`\b(nodeaction(?:set)?_[a-z_]+)`)
	selector := regexp.MustCompile(`(nodeaction(?:set)?_[a-z_]+)\{([^}]*)\}`)
	byClause := regexp.MustCompile(`by \(([^)]*)\)`)
	alerts := map[string]bool{}
	for _, g := range rule.Spec.Groups {
		if g.Name == "" || len(g.Rules) == 0 {
			t.Errorf("group %q is empty or unnamed", g.Name)
		}
		for _, r := range g.Rules {
			if r.Alert == "" || r.Expr == "" {
				t.Errorf("rule %+v lacks alert or expr", r)
				continue
			}
			if alerts[r.Alert] {
				t.Errorf("alert %s defined twice", r.Alert)
			}
			alerts[r.Alert] = true
			if r.For != "" {
				if _, err := time.ParseDuration(r.For); err != nil {
					t.Errorf("%s: for %q: %v", r.Alert, r.For, err)
				}
			}
			if s := r.Labels["severity"]; s != "warning" && s != "critical" && s != "info" {
				t.Errorf("%s: severity %q", r.Alert, s)
			}
			for _, a := range []string{"summary", "description", "runbook_url"} {
				if r.Annotations[a] == "" {
					t.Errorf("%s: no %s annotation", r.Alert, a)
				}
			}
			if strings.Count(r.Expr, "(") != strings.Count(r.Expr, ")") || strings.Count(r.Expr, "{") != strings.Count(r.Expr, "}") {
				t.Errorf("%s: unbalanced brackets in %q", r.Alert, r.Expr)
			}
			// Every metric exists; every label used exists on the metrics used.
			labelsOK := map[string]bool{"le": true}
			for _, m := range metricRef.FindAllStringSubmatch(r.Expr, -1) {
				name := m[1]
				labels, ok := declared[name]
				if !ok {
					for _, suffix := range []string{"_bucket", "_sum", "_count"} {
						if l, found := declared[strings.TrimSuffix(name, suffix)]; found && strings.HasSuffix(name, suffix) {
							labels, ok = l, true
						}
					}
				}
				if !ok {
					t.Errorf("%s uses metric %s, which the operator does not export", r.Alert, name)
				}
				for _, l := range labels {
					labelsOK[l] = true
				}
			}
			for _, m := range selector.FindAllStringSubmatch(r.Expr, -1) {
				for _, matcher := range strings.Split(m[2], ",") {
					l := strings.TrimSpace(regexp.MustCompile(`[=!~]`).Split(matcher, 2)[0])
					if l != "" && !labelsOK[l] {
						t.Errorf("%s: label %q is not a label of %s", r.Alert, l, m[1])
					}
				}
			}
			for _, m := range byClause.FindAllStringSubmatch(r.Expr, -1) {
				for _, l := range strings.Split(m[1], ",") {
					if l = strings.TrimSpace(l); !labelsOK[l] {
						t.Errorf("%s: aggregates by %q, not a label of the metrics it uses", r.Alert, l)
					}
				}
			}
		}
	}
	for _, a := range []string{"NodeActionStuck", "NodeActionDeadlineExceeded", "NodeActionFailureRateHigh", "ProviderRateLimited", "ProviderErrors"} {
		if !alerts[a] {
			t.Errorf("alert %s is missing", a)
		}
	}
	// The failure-rate alert counts as success exactly the reasons
	// conditions.go lists as successes.
	_, groups := gitopsReasonGroups(t)
	success := groups["Success (Ready=True)."]
	sort.Strings(success)
	m := regexp.MustCompile(`result!~"([^"]+)"`).FindStringSubmatch(raw)
	if m == nil {
		t.Fatal("NodeActionFailureRateHigh does not exclude the success results")
	}
	inRule := strings.Split(m[1], "|")
	sort.Strings(inRule)
	if strings.Join(inRule, "|") != strings.Join(success, "|") || len(success) == 0 {
		t.Errorf("the failure-rate alert treats %v as success; conditions.go says %v", inRule, success)
	}

	// The ServiceMonitor selects the metrics Service on its https port.
	mon := &struct {
		Kind string `json:"kind"`
		Spec struct {
			Endpoints []struct{ Port, Scheme, Path string } `json:"endpoints"`
			Selector  metav1.LabelSelector                  `json:"selector"`
		} `json:"spec"`
	}{}
	if err := yaml.NewYAMLOrJSONDecoder(strings.NewReader(gitopsReadFile(t, "config/prometheus/monitor.yaml")), 4096).Decode(mon); err != nil {
		t.Fatal(err)
	}
	svc := &corev1.Service{}
	if err := yaml.NewYAMLOrJSONDecoder(strings.NewReader(gitopsReadFile(t, "config/default/metrics_service.yaml")), 4096).Decode(svc); err != nil {
		t.Fatal(err)
	}
	sel, err := metav1.LabelSelectorAsSelector(&mon.Spec.Selector)
	if err != nil {
		t.Fatal(err)
	}
	if mon.Kind != "ServiceMonitor" || len(mon.Spec.Endpoints) != 1 || sel.Empty() || !sel.Matches(labels.Set(svc.Labels)) {
		t.Fatalf("ServiceMonitor %+v does not select the metrics Service (labels %v)", mon, svc.Labels)
	}
	ep := mon.Spec.Endpoints[0]
	portOK := false
	for _, p := range svc.Spec.Ports {
		portOK = portOK || (p.Name == ep.Port && p.Port == 8443)
	}
	if !portOK || ep.Scheme != "https" || ep.Path != "/metrics" {
		t.Errorf("ServiceMonitor endpoint %+v, want https /metrics on the Service's port 8443 (%+v)", ep, svc.Spec.Ports)
	}
}

// The docs stay true to the code: every condition reason has a section in
// docs/troubleshooting.md, every metric is described in docs/metrics.md,
// and docs/gitops.md gives the Flux expressions the tests above evaluate.
func TestGitOpsDocsMatchTheCode(t *testing.T) {
	t.Parallel()
	all, _ := gitopsReasonGroups(t)
	trouble := gitopsReadFile(t, "docs/troubleshooting.md")
	for _, r := range all {
		if !regexp.MustCompile(`(?m)^### ` + r + `\b`).MatchString(trouble) {
			t.Errorf("docs/troubleshooting.md has no section \"### %s\"", r)
		}
	}
	if !strings.Contains(trouble, v1alpha1.AnnotationRetrySubmission) {
		t.Error("docs/troubleshooting.md does not name the retry annotation")
	}
	metricsDoc := gitopsReadFile(t, "docs/metrics.md")
	for name, labels := range gitopsMetricLabels(t) {
		if !strings.Contains(metricsDoc, "`"+name+"`") {
			t.Errorf("docs/metrics.md does not describe %s", name)
		}
		for _, l := range labels {
			if !strings.Contains(metricsDoc, "`"+l+"`") {
				t.Errorf("docs/metrics.md does not name label %s of %s", l, name)
			}
		}
	}
	gitops := gitopsReadFile(t, "docs/gitops.md")
	for _, e := range []gitopsFluxExprs{gitopsFluxNodeAction, gitopsFluxNodeActionSet, gitopsFluxProvider} {
		for _, expr := range []string{e.inProgress, e.failed, e.current} {
			if expr != "" && !strings.Contains(gitops, expr) {
				t.Errorf("docs/gitops.md does not give the Flux expression %q", expr)
			}
		}
	}
	for _, key := range []string{"resource.customizations.health.compute.nodeaction.dev_NodeAction", "resource.customizations.health.compute.nodeaction.dev_NodeActionSet",
		"config/argocd/argocd-cm.yaml", "kubectl wait --for=condition=Ready"} {
		if !strings.Contains(gitops, key) {
			t.Errorf("docs/gitops.md does not mention %s", key)
		}
	}
}
