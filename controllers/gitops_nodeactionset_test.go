package controllers

import (
	"strings"
	"testing"
	"time"

	"github.com/fluxcd/cli-utils/pkg/kstatus/status"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"

	"github.com/nodeaction/nodeaction-operator/api/v1alpha1"
	"github.com/nodeaction/nodeaction-operator/internal/fakecloud"
)

// What kstatus, Argo CD (config/argocd/nodeactionset-health.lua), Flux
// (the expressions in docs/gitops.md) and kubectl wait read from every
// version of real NodeActionSets.

var (
	gitopsNodeActionSetGVR = v1alpha1.GroupVersion.WithResource("nodeactionsets")
	gitopsNodeActionSetGVK = v1alpha1.GroupVersion.WithKind("NodeActionSet")

	// A set reads as a NodeAction does: the same three expressions.
	gitopsFluxNodeActionSet = gitopsFluxNodeAction
)

// gitopsCheckNodeActionSet asserts that one version of a set reads the same
// to kstatus, Argo CD and Flux, and returns what it is ("" before any
// status, "stale", or the Ready reason).
func gitopsCheckNodeActionSet(t *testing.T, script string, u *unstructured.Unstructured) string {
	t.Helper()
	ks := gitopsKstatus(t, u)
	argo, argoMsg := gitopsArgoHealth(t, script, u)
	flux, fluxErr := gitopsFluxEval(t, gitopsFluxNodeActionSet, u)
	where := gitopsDescribe(u)
	readySt, readyReason, readyMsg, found := gitopsCondition(u, v1alpha1.ConditionReady)
	stalledSt, _, stalledMsg, _ := gitopsCondition(u, v1alpha1.ConditionStalled)
	reconcilingSt, reconcilingReason, _, _ := gitopsCondition(u, v1alpha1.ConditionReconciling)
	switch {
	case !found:
		if ks.Status != status.CurrentStatus || argo != "Progressing" || fluxErr == nil {
			t.Errorf("a set without status (%s): kstatus %s, Argo CD %s, Flux %s %v; want Current, Progressing, an evaluation error", where, ks.Status, argo, flux, fluxErr)
		}
		return ""
	case !gitopsGenerationObserved(u) || gitopsRunID(u, "spec") != gitopsRunID(u, "status"):
		if ks.Status != status.InProgressStatus || argo != "Progressing" || flux != "InProgress" {
			t.Errorf("spec or run not yet observed (%s): kstatus %s, Argo CD %s, Flux %s %v; want InProgress, Progressing, InProgress", where, ks.Status, argo, flux, fluxErr)
		}
		return "stale"
	case stalledSt == "True":
		if readySt != "False" || reconcilingSt != "" || ks.Status != status.FailedStatus || ks.Message != stalledMsg ||
			argo != "Degraded" || !strings.Contains(argoMsg, stalledMsg) || flux != "Failed" {
			t.Errorf("%s: Ready=%s Reconciling=%s; kstatus %s %q, Argo CD %s %q, Flux %s %v; want False, none; Failed, Degraded, Failed",
				where, readySt, reconcilingSt, ks.Status, ks.Message, argo, argoMsg, flux, fluxErr)
		}
	case readySt == "True":
		if reconcilingSt != "" || ks.Status != status.CurrentStatus || argo != "Healthy" || !strings.Contains(argoMsg, readyMsg) || flux != "Current" {
			t.Errorf("%s: Reconciling=%s; kstatus %s, Argo CD %s %q, Flux %s %v; want none; Current, Healthy, Current", where, reconcilingSt, ks.Status, argo, argoMsg, flux, fluxErr)
		}
	case reconcilingSt == "True":
		wantArgo := "Progressing"
		if reconcilingReason == v1alpha1.ReasonPaused {
			wantArgo = "Suspended"
		}
		if ks.Status != status.InProgressStatus || argo != wantArgo || !strings.Contains(argoMsg, readyReason) || flux != "InProgress" {
			t.Errorf("%s: kstatus %s, Argo CD %s %q, Flux %s %v; want InProgress, %s with the reason, InProgress", where, ks.Status, argo, argoMsg, flux, fluxErr, wantArgo)
		}
	default:
		t.Errorf("%s: Ready=False with neither Reconciling nor Stalled", where)
	}
	return readyReason
}

func gitopsCheckSetVersions(t *testing.T, script string, versions []*unstructured.Unstructured) map[string]bool {
	t.Helper()
	seen := map[string]bool{}
	for _, u := range versions {
		seen[gitopsCheckNodeActionSet(t, script, u)] = true
	}
	return seen
}

func gitopsSetReasonIs(reason string) func(*unstructured.Unstructured) bool {
	return func(u *unstructured.Unstructured) bool {
		_, r, _, _ := gitopsCondition(u, v1alpha1.ConditionReady)
		return gitopsGenerationObserved(u) && gitopsRunID(u, "spec") == gitopsRunID(u, "status") && r == reason
	}
}

// A set waits for its Provider, rolls, is paused (Suspended in Argo CD,
// InProgress for kstatus and Flux: not done), rolls on and ends Ready;
// kubectl wait started mid-rollout returns 0. A new runID reads
// InProgress until its run is done.
func TestGitOpsNodeActionSetThroughARollout(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	startManagerIn(t, ns)
	kubeconfig := gitopsKubeconfig(t)
	script := gitopsReadFile(t, "config/argocd/nodeactionset-health.lua")
	ids := setVMs("1570", 4, 700*time.Millisecond)
	hist := gitopsRecordResource(t, gitopsNodeActionSetGVR, ns, "gitops")
	s := nodeActionSet(ns, "gitops", "do", "reboot", 1, ids...)
	create(t, s)
	hist.waitFor(t, 20*time.Second, "ProviderNotFound", gitopsSetReasonIs(v1alpha1.ReasonProviderNotFound))
	createProvider(t, ns, "do", v1alpha1.ProviderDigitalOcean)
	hist.waitFor(t, 20*time.Second, "Rolling", gitopsSetReasonIs(v1alpha1.ReasonRolling))
	updateSet(t, s, func(s *v1alpha1.NodeActionSet) { s.Spec.Paused = true })
	hist.waitFor(t, 20*time.Second, "Paused", gitopsSetReasonIs(v1alpha1.ReasonPaused))
	wait := gitopsKubectlStart(t, kubeconfig, "wait", "--for=condition=Ready", "nodeactionset/gitops", "-n", ns, "--timeout=60s")
	updateSet(t, s, func(s *v1alpha1.NodeActionSet) { s.Spec.Paused = false })
	if res := wait(); res.code != 0 || !strings.Contains(res.output, "condition met") {
		t.Fatalf("kubectl wait --for=condition=Ready exited %d: %s", res.code, res.output)
	}
	hist.waitFor(t, 20*time.Second, "Ready", gitopsSetReasonIs(v1alpha1.ReasonCompleted))

	updateSet(t, s, func(s *v1alpha1.NodeActionSet) { s.Spec.RunID = "second" })
	hist.waitFor(t, 60*time.Second, "run second Ready", func(u *unstructured.Unstructured) bool {
		return gitopsRunID(u, "status") == "second" && gitopsSetReasonIs(v1alpha1.ReasonCompleted)(u)
	})
	seen := gitopsCheckSetVersions(t, script, hist.all())
	for _, want := range []string{"", v1alpha1.ReasonProviderNotFound, v1alpha1.ReasonRolling, v1alpha1.ReasonPaused, v1alpha1.ReasonCompleted} {
		if !seen[want] {
			t.Errorf("no version read %q (seen %v)", want, seen)
		}
	}
	if res := gitopsKubectl(t, kubeconfig, "get", "nodeactionset", "gitops", "-n", ns); res.code != 0 ||
		!containsAll(res.output, "PROVIDER", "ACTION", "TOTAL", "RUNNING", "SUCCEEDED", "FAILED", "REASON", "do", "reboot", "Completed") {
		t.Errorf("kubectl get nodeactionset: %d\n%s", res.code, res.output)
	}
}

// A rollout halted by its failure budget reads Failed / Degraded / Failed
// with the Stalled message; kubectl wait --for=condition=Stalled returns.
func TestGitOpsNodeActionSetHalted(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	startManagerIn(t, ns)
	kubeconfig := gitopsKubeconfig(t)
	script := gitopsReadFile(t, "config/argocd/nodeactionset-health.lua")
	createProvider(t, ns, "do", v1alpha1.ProviderDigitalOcean)
	ids := setVMs("1585", 3, 300*time.Millisecond)
	if err := cloud.UpdateVM(ids[0], func(vm *fakecloud.VM) { vm.FailNext = "disk on fire" }); err != nil {
		t.Fatal(err)
	}
	hist := gitopsRecordResource(t, gitopsNodeActionSetGVR, ns, "halts")
	s := nodeActionSet(ns, "halts", "do", "reboot", 1, ids...)
	s.Spec.MaxFailures = ptr.To(int32(0))
	wait := gitopsKubectlStart(t, kubeconfig, "wait", "--for=condition=Stalled", "nodeactionset/halts", "-n", ns, "--timeout=60s")
	create(t, s)
	if res := wait(); res.code != 0 {
		t.Fatalf("kubectl wait --for=condition=Stalled exited %d: %s", res.code, res.output)
	}
	u := hist.waitFor(t, 20*time.Second, "FailureBudgetExceeded", gitopsSetReasonIs(v1alpha1.ReasonFailureBudgetExceeded))
	if _, msg := gitopsArgoHealth(t, script, u); !strings.Contains(msg, "halts."+ids[0]) {
		t.Errorf("Argo CD message %q does not name the failed member", msg)
	}
	gitopsCheckSetVersions(t, script, hist.all())
}

// Cases of the set's Lua script the reconciler makes only briefly.
func TestGitOpsNodeActionSetArgoCDHealthOnFixtures(t *testing.T) {
	t.Parallel()
	script := gitopsReadFile(t, "config/argocd/nodeactionset-health.lua")
	for _, c := range []struct {
		name      string
		obj       *unstructured.Unstructured
		want, msg string
	}{
		{"outside a window", gitopsFixture("NodeActionSet", 1, 1, "",
			gitopsCond("Ready", "False", "OutsideWindow", "the next opens at 02:00"), gitopsCond("Reconciling", "True", "OutsideWindow", "the next opens at 02:00")),
			"Progressing", "OutsideWindow: the next opens at 02:00"},
		{"paused", gitopsFixture("NodeActionSet", 2, 2, "",
			gitopsCond("Ready", "False", "Paused", "paused"), gitopsCond("Reconciling", "True", "Paused", "paused")), "Suspended", "Paused: paused"},
		{"paused, spec change not seen", gitopsFixture("NodeActionSet", 3, 2, "",
			gitopsCond("Ready", "False", "Paused", "paused"), gitopsCond("Reconciling", "True", "Paused", "paused")), "Progressing", "generation 3"},
		{"finished with failures", gitopsFixture("NodeActionSet", 1, 1, "",
			gitopsCond("Ready", "False", "MembersFailed", "2 failed"), gitopsCond("Stalled", "True", "MembersFailed", "2 failed")), "Degraded", "MembersFailed: 2 failed"},
		{"new run not started", gitopsWithRunID(gitopsFixture("NodeActionSet", 2, 2, "",
			gitopsCond("Ready", "True", "Completed", "all 3")), "next", ""), "Progressing", `start run "next"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got, msg := gitopsArgoHealth(t, script, c.obj); got != c.want || !strings.Contains(msg, c.msg) {
				t.Errorf("health %s %q, want %s with %q", got, msg, c.want, c.msg)
			}
		})
	}
}

func containsAll(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}
