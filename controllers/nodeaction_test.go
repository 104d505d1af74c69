package controllers

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodeaction/nodeaction-operator/api/v1alpha1"
	"github.com/nodeaction/nodeaction-operator/internal/fakecloud"
)

func TestRebootCompletesWithOnePost(t *testing.T) {
	ns := newNamespace(t)
	startManagerIn(t, ns)
	createProvider(t, ns, "do", v1alpha1.ProviderDigitalOcean)
	cloud.AddVM(fakecloud.VM{ID: "1001"})

	na := nodeAction(ns, "reboot", "do", "1001", "reboot")
	create(t, na)
	finished(t, na, 20*time.Second)
	expectReady(t, na, v1alpha1.ReasonCompleted)

	if n := cloud.ActionCalls("1001"); n != 1 {
		t.Fatalf("fakecloud logged %d action POSTs for the NodeAction, want exactly 1", n)
	}
	if vm, _ := cloud.VM("1001"); vm.Boots != 1 {
		t.Errorf("the droplet booted %d times, want 1", vm.Boots)
	}
	st := na.Status
	if st.ProviderActionID == "" || st.ProviderAction != "reboot" || st.Attempts != 1 || st.SubmittedAt == nil || st.CompletionTime == nil || st.StartTime == nil {
		t.Errorf("status is missing what happened: %+v", st)
	}
	if c := condition(st.Conditions, v1alpha1.ConditionSubmitted); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("Submitted condition %+v, want True", c)
	}
	// Nothing more happens to a finished NodeAction.
	expectNoNewActionCalls(t, cloud, "1001", 1, 2*time.Second, "a finished NodeAction")
}

func TestOnePostAcrossManagerRestartWhileRunning(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	stop := startManagerIn(t, ns)
	createProvider(t, ns, "do", v1alpha1.ProviderDigitalOcean)
	cloud.AddVM(fakecloud.VM{ID: "1002", ActionDuration: 3 * time.Second})

	na := nodeAction(ns, "reboot", "do", "1002", "reboot")
	create(t, na)
	waitFor(t, na, 20*time.Second, "phase Running", func(n *v1alpha1.NodeAction) bool { return n.Status.Phase == v1alpha1.PhaseRunning })
	stop()

	startManagerIn(t, ns)
	finished(t, na, 20*time.Second)
	expectReady(t, na, v1alpha1.ReasonCompleted)
	if n := cloud.ActionCalls("1002"); n != 1 {
		t.Fatalf("fakecloud logged %d action POSTs across the restart, want exactly 1", n)
	}
}

// The manager stops while the provider holds the POST open: the action was
// accepted but its answer never recorded. The next manager must find it
// again instead of posting twice.
func TestOnePostWhenManagerStopsDuringThePost(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	stop := startManagerIn(t, ns)
	createProvider(t, ns, "do", v1alpha1.ProviderDigitalOcean)
	cloud.AddVM(fakecloud.VM{ID: "1003"})
	hold := cloud.InjectFault(fakecloud.Fault{Skin: "digitalocean", PathContains: "/droplets/1003/", ActionOnly: true, Mode: fakecloud.AcceptThenHold})
	defer hold.Release()

	na := nodeAction(ns, "reboot", "do", "1003", "reboot")
	create(t, na)
	select {
	case <-hold.Held():
	case <-time.After(20 * time.Second):
		t.Fatal("the POST never reached fakecloud")
	}
	stop()
	got := &v1alpha1.NodeAction{}
	if err := k8s.Get(context.Background(), keyOf(na), got); err != nil {
		t.Fatal(err)
	}
	if got.Status.Phase != v1alpha1.PhaseSubmitting || got.Status.ProviderActionID != "" {
		t.Fatalf("after stopping mid-POST the status should record intent without an answer, got %+v", got.Status)
	}

	startManagerIn(t, ns)
	finished(t, na, 30*time.Second)
	expectReady(t, na, v1alpha1.ReasonCompleted)
	if n := cloud.ActionCalls("1003"); n != 1 {
		t.Fatalf("fakecloud logged %d action POSTs, want exactly 1", n)
	}
	if na.Status.ProviderActionID == "" {
		t.Error("the adopted action's id is not in status")
	}
}

func TestUnknownDropletStallsWithProviderMessage(t *testing.T) {
	ns := newNamespace(t)
	startManagerIn(t, ns)
	createProvider(t, ns, "do", v1alpha1.ProviderDigitalOcean)

	na := nodeAction(ns, "missing", "do", "999999", "reboot")
	create(t, na)
	finished(t, na, 20*time.Second)
	expectStalled(t, na, v1alpha1.ReasonNodeNotFound, "could not be found", "HTTP 404")
}

func TestUnsupportedActionListsSupportedOnes(t *testing.T) {
	ns := newNamespace(t)
	startManagerIn(t, ns)
	createProvider(t, ns, "do", v1alpha1.ProviderDigitalOcean)
	cloud.AddVM(fakecloud.VM{ID: "1004"})
	before := cloud.CountRequests(nil)

	na := nodeAction(ns, "reinstall", "do", "1004", "reinstall")
	na.Spec.Confirm = "1004"
	create(t, na)
	finished(t, na, 20*time.Second)
	expectStalled(t, na, v1alpha1.ReasonUnsupportedAction, "reinstall", "power_cycle", "rebuild")
	if n := cloud.ActionCalls("1004"); n != 0 {
		t.Fatalf("an unsupported action made %d provider calls", n)
	}
	_ = before
}

func TestInvalidNodeIDForProviderStalls(t *testing.T) {
	ns := newNamespace(t)
	startManagerIn(t, ns)
	createProvider(t, ns, "do", v1alpha1.ProviderDigitalOcean)

	na := nodeAction(ns, "not-a-droplet", "do", "web-1", "reboot")
	create(t, na)
	finished(t, na, 20*time.Second)
	expectStalled(t, na, v1alpha1.ReasonInvalidNodeID, "positive integers")
}

func TestProviderRateLimitIsObeyed(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	startManagerIn(t, ns)
	createProvider(t, ns, "do", v1alpha1.ProviderDigitalOcean)
	cloud.AddVM(fakecloud.VM{ID: "1005"})
	f := cloud.InjectFault(fakecloud.Fault{Skin: "digitalocean", PathContains: "/droplets/1005/", ActionOnly: true, Mode: fakecloud.Reject, Status: 429, RetryAfter: 2, Times: 1})

	na := nodeAction(ns, "reboot", "do", "1005", "reboot")
	create(t, na)
	waitFor(t, na, 10*time.Second, "reason RateLimited", func(n *v1alpha1.NodeAction) bool {
		return readyReason(n) == v1alpha1.ReasonRateLimited
	})
	rateLimitedAt := time.Now()
	finished(t, na, 20*time.Second)
	expectReady(t, na, v1alpha1.ReasonCompleted)
	if f.Hits() != 1 || cloud.AcceptedActions("1005") != 1 {
		t.Fatalf("fault hits %d, accepted %d: want one refused and one accepted POST", f.Hits(), cloud.AcceptedActions("1005"))
	}
	var posts []time.Time
	for _, r := range cloud.Log() {
		if r.ActionCall && r.VMID == "1005" {
			posts = append(posts, r.Time)
		}
	}
	if len(posts) != 2 || posts[1].Sub(posts[0]) < 1900*time.Millisecond {
		t.Fatalf("want the second POST at least Retry-After (2s) after the 429, got POSTs at %v", posts)
	}
	_ = rateLimitedAt
}

func TestDeadlineExceeded(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	startManagerIn(t, ns)
	createProvider(t, ns, "do", v1alpha1.ProviderDigitalOcean)
	cloud.AddVM(fakecloud.VM{ID: "1006", ActionDuration: time.Hour})

	na := nodeAction(ns, "slow", "do", "1006", "reboot")
	na.Spec.ActiveDeadlineSeconds = ptr.To(int64(2))
	create(t, na)
	finished(t, na, 20*time.Second)
	expectStalled(t, na, v1alpha1.ReasonDeadlineExceeded, "activeDeadlineSeconds (2)", na.Status.ProviderActionID)
	if n := cloud.ActionCalls("1006"); n != 1 {
		t.Fatalf("%d POSTs, want 1", n)
	}
}

func TestProviderReportedFailureStalls(t *testing.T) {
	ns := newNamespace(t)
	startManagerIn(t, ns)
	createProvider(t, ns, "do", v1alpha1.ProviderDigitalOcean)
	cloud.AddVM(fakecloud.VM{ID: "1007", FailNext: "disk controller fault"})

	na := nodeAction(ns, "fails", "do", "1007", "reboot")
	create(t, na)
	finished(t, na, 20*time.Second)
	expectStalled(t, na, v1alpha1.ReasonProviderFailed, "errored")
}

func TestMissingProviderWaitsThenRuns(t *testing.T) {
	ns := newNamespace(t)
	startManagerIn(t, ns)
	cloud.AddVM(fakecloud.VM{ID: "1008"})

	na := nodeAction(ns, "early", "do-late", "1008", "power_off")
	create(t, na)
	waitFor(t, na, 10*time.Second, "reason ProviderNotFound", func(n *v1alpha1.NodeAction) bool {
		return readyReason(n) == v1alpha1.ReasonProviderNotFound && condition(n.Status.Conditions, v1alpha1.ConditionReconciling) != nil
	})
	createProvider(t, ns, "do-late", v1alpha1.ProviderDigitalOcean)
	finished(t, na, 20*time.Second)
	expectReady(t, na, v1alpha1.ReasonCompleted)
	if vm, _ := cloud.VM("1008"); vm.Power != fakecloud.PowerOff {
		t.Error("droplet is not off after power_off")
	}
}

func keyOf(o client.Object) client.ObjectKey { return client.ObjectKeyFromObject(o) }
