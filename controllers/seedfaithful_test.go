package controllers

import (
	"context"
	"testing"
	"time"

	"k8s.io/utils/ptr"

	"github.com/nodeaction/nodeaction-operator/api/v1alpha1"
	"github.com/nodeaction/nodeaction-operator/internal/fakecloud"
)

// NodeAction outcomes against the seed-faithful fakecloud (issue 13).

// E2E answers a reinstall "done" when it accepts it; the node goes through
// the workflow later (seed 000). A NodeAction that reports Ready before the
// node was reinstalled releases the node's queue while the wipe is ahead.
func TestE2EReinstallIsNotReadyWhileTheReinstallIsAhead(t *testing.T) {
	t.Parallel()
	wc := newWorldCloud(t, fakecloud.FaithfulWorld())
	ns := newNamespace(t)
	startManagerIn(t, ns)
	createProviderAt(t, ns, "e2e", v1alpha1.ProviderE2E, wc.url)
	const id = "9301"
	wc.cloud.AddVM(fakecloud.VM{ID: id, ActionDuration: 5 * time.Second}) // a reinstall takes its time
	na := nodeAction(ns, "reinstall", "e2e", id, "reinstall")
	na.Spec.Confirm = id
	create(t, na)
	if !waitUntil(60*time.Second, func() bool { return k8s.Get(context.Background(), keyOf(na), na) == nil && na.Status.Phase.Finished() }) {
		t.Fatalf("not finished after 60s: %s: %s; what the cloud did:\n%s", readyReason(na), na.Status.Message, wc.cloud.Story(id))
	}
	vm, _ := wc.cloud.VM(id)
	if na.Status.Phase == v1alpha1.PhaseSucceeded && vm.Reinstalls != 1 {
		t.Fatalf("the NodeAction ended Succeeded (%s: %q) while node %s was not reinstalled yet (reinstalls=%d); what the cloud did:\n%s",
			readyReason(na), na.Status.Message, id, vm.Reinstalls, wc.cloud.Story(id))
	}
	expectReady(t, na, v1alpha1.ReasonCompleted, v1alpha1.ReasonAcceptedUnverified)
}

// CloudsFor's action object may already say "errored" in the answer that
// accepts it (seed 002). That is the same provider-reported failure as one
// that errors later: it is retried under backoffLimit.
func TestCloudsForActionErroredInItsAcceptingAnswerIsRetried(t *testing.T) {
	t.Parallel()
	// The suite's cloud: this is about the retry, not about list order.
	wc := suiteWorldCloud()
	ns := newNamespace(t)
	startManagerIn(t, ns)
	createProviderAt(t, ns, "cloudsfor", v1alpha1.ProviderCloudsFor, wc.url)
	const id = "c0ffee00000000000000000000009401"
	wc.cloud.AddVM(fakecloud.VM{ID: id, FailNextAtOnce: "hypervisor refused the operation"})
	na := nodeAction(ns, "reboot", "cloudsfor", id, "reboot")
	na.Spec.BackoffLimit = ptr.To(int32(2))
	create(t, na)
	na = finished(t, na, 60*time.Second)
	if na.Status.Phase != v1alpha1.PhaseSucceeded || na.Status.FailedAttempts != 1 || wc.cloud.AcceptedActions(id) != 2 {
		t.Fatalf("ended %s (%s: %q) after %d failed attempts and %d accepted actions; want Succeeded after 1 failed attempt and 2 accepted actions; what the cloud did:\n%s",
			na.Status.Phase, readyReason(na), na.Status.Message, na.Status.FailedAttempts, wc.cloud.AcceptedActions(id), wc.cloud.Story(id))
	}
	expectReady(t, na, v1alpha1.ReasonCompleted)
}
