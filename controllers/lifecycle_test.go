package controllers

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodeaction/nodeaction-operator/api/v1alpha1"
	"github.com/nodeaction/nodeaction-operator/internal/fakecloud"
)

// Two NodeActions on the same node run in creation order: the later one
// waits Pending with reason NodeBusy naming the earlier one.
func TestSameNodeRunsInCreationOrder(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	startManagerIn(t, ns)
	createProvider(t, ns, "do", v1alpha1.ProviderDigitalOcean)
	cloud.AddVM(fakecloud.VM{ID: "9501", ActionDuration: 2 * time.Second})

	first := nodeAction(ns, "first", "do", "9501", "reboot")
	create(t, first)
	time.Sleep(1100 * time.Millisecond) // creationTimestamp has one-second resolution
	second := nodeAction(ns, "second", "do", "9501", "rename")
	second.Spec.Parameters = &v1alpha1.ActionParameters{Name: "after-reboot"}
	create(t, second)

	waitFor(t, second, 10*time.Second, "NodeBusy naming the first", func(n *v1alpha1.NodeAction) bool {
		c := condition(n.Status.Conditions, v1alpha1.ConditionReady)
		return n.Status.Phase == v1alpha1.PhasePending && c != nil && c.Reason == v1alpha1.ReasonNodeBusy && strings.Contains(c.Message, `"first"`)
	})
	finished(t, first, 20*time.Second)
	finished(t, second, 20*time.Second)
	expectReady(t, first)
	expectReady(t, second)
	if !first.Status.CompletionTime.Time.After(time.Time{}) || second.Status.SubmittedAt.Before(first.Status.CompletionTime) {
		t.Fatalf("second submitted at %v, before first completed at %v", second.Status.SubmittedAt, first.Status.CompletionTime)
	}
	if n := cloud.AcceptedActions("9501"); n != 2 {
		t.Fatalf("%d actions accepted, want 2", n)
	}
}

// backoffLimit re-submits only after a provider-reported failure, and only
// an action that is safe to repeat.
func TestBackoffLimit(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	startManagerIn(t, ns)
	createProvider(t, ns, "do", v1alpha1.ProviderDigitalOcean)

	t.Run("a repeatable action is retried", func(t *testing.T) {
		cloud.AddVM(fakecloud.VM{ID: "9601", FailNext: "transient hypervisor fault"})
		na := nodeAction(ns, "retried", "do", "9601", "reboot")
		na.Spec.BackoffLimit = ptr.To(int32(2))
		create(t, na)
		finished(t, na, 30*time.Second)
		expectReady(t, na, v1alpha1.ReasonCompleted)
		if na.Status.FailedAttempts != 1 || cloud.AcceptedActions("9601") != 2 {
			t.Fatalf("failedAttempts %d, accepted %d: want one failure then one success", na.Status.FailedAttempts, cloud.AcceptedActions("9601"))
		}
		if !hasEvent(t, na, v1alpha1.ReasonRetrying) {
			t.Error("no Retrying event")
		}
	})
	t.Run("retries run out", func(t *testing.T) {
		cloud.AddVM(fakecloud.VM{ID: "9602", FailNext: "fault 1"})
		na := nodeAction(ns, "spent", "do", "9602", "power_cycle")
		na.Spec.BackoffLimit = ptr.To(int32(1))
		create(t, na)
		// Fail the retry too.
		waitFor(t, na, 20*time.Second, "the first failure", func(n *v1alpha1.NodeAction) bool { return n.Status.FailedAttempts == 1 })
		_ = cloud.UpdateVM("9602", func(vm *fakecloud.VM) { vm.FailNext = "fault 2" })
		finished(t, na, 30*time.Second)
		expectStalled(t, na, v1alpha1.ReasonBackoffLimitExceeded, "backoffLimit 1 reached")
		if n := cloud.AcceptedActions("9602"); n != 2 {
			t.Fatalf("%d actions accepted, want 2", n)
		}
	})
	t.Run("an action not safe to repeat is not retried", func(t *testing.T) {
		cloud.AddVM(fakecloud.VM{ID: "9603", FailNext: "image not found"})
		na := nodeAction(ns, "rebuild", "do", "9603", "rebuild")
		na.Spec.Confirm = "9603"
		na.Spec.Parameters = &v1alpha1.ActionParameters{Image: "ubuntu-24-04-x64"}
		na.Spec.BackoffLimit = ptr.To(int32(3))
		create(t, na)
		finished(t, na, 30*time.Second)
		expectStalled(t, na, v1alpha1.ReasonProviderFailed, "not safe to repeat")
		if n := cloud.AcceptedActions("9603"); n != 1 {
			t.Fatalf("%d actions accepted, want 1", n)
		}
	})
}

func TestTTLAfterFinishedDeletes(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	startManagerIn(t, ns)
	createProvider(t, ns, "do", v1alpha1.ProviderDigitalOcean)
	cloud.AddVM(fakecloud.VM{ID: "9701"})
	na := nodeAction(ns, "short-lived", "do", "9701", "reboot")
	na.Spec.TTLSecondsAfterFinished = ptr.To(int32(1))
	create(t, na)
	if !waitUntil(20*time.Second, func() bool {
		return apierrors.IsNotFound(k8s.Get(context.Background(), keyOf(na), &v1alpha1.NodeAction{}))
	}) {
		t.Fatal("the NodeAction was not deleted after ttlSecondsAfterFinished")
	}
	if n := cloud.AcceptedActions("9701"); n != 1 {
		t.Fatalf("%d actions accepted, want 1", n)
	}
}

// A shutdown the guest ignores is followed by power_off after
// spec.escalation.powerOffAfterSeconds, DigitalOcean's documented pattern.
func TestShutdownEscalatesToPowerOff(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	startManagerIn(t, ns)
	createProvider(t, ns, "do", v1alpha1.ProviderDigitalOcean)
	cloud.AddVM(fakecloud.VM{ID: "9801", IgnoreShutdown: true})
	na := nodeAction(ns, "stubborn", "do", "9801", "shutdown")
	na.Spec.Escalation = &v1alpha1.Escalation{PowerOffAfterSeconds: 2}
	create(t, na)
	finished(t, na, 30*time.Second)
	expectReady(t, na, v1alpha1.ReasonCompleted)
	if na.Status.EscalatedAt == nil || na.Status.ProviderAction != "power_off" {
		t.Fatalf("status %+v: want an escalation to power_off recorded", na.Status)
	}
	if vm, _ := cloud.VM("9801"); vm.Power != fakecloud.PowerOff {
		t.Fatal("the droplet is still on")
	}
	var types []string
	for _, a := range cloud.Actions() {
		if a.VMID == "9801" {
			types = append(types, a.Type)
		}
	}
	if strings.Join(types, ",") != "shutdown,power_off" {
		t.Fatalf("actions %v, want shutdown then power_off", types)
	}
	if !hasEvent(t, na, v1alpha1.ReasonEscalated) {
		t.Error("no Escalated event")
	}

	// Without escalation the same shutdown never claims success.
	cloud.AddVM(fakecloud.VM{ID: "9802", IgnoreShutdown: true})
	plain := nodeAction(ns, "plain", "do", "9802", "shutdown")
	plain.Spec.ActiveDeadlineSeconds = ptr.To(int64(12)) // longer than a status sweep
	create(t, plain)
	finished(t, plain, 30*time.Second)
	expectStalled(t, plain, v1alpha1.ReasonDeadlineExceeded, "the droplet is active, not off")
}

// E2E's only power off is its graceful one: an escalation could only send
// the same request again. It is refused before anything is sent, naming
// the provider.
func TestEscalationNeedsAHardPowerOff(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	startManagerIn(t, ns)
	createProvider(t, ns, "e2e", v1alpha1.ProviderE2E)
	cloud.AddVM(fakecloud.VM{ID: "9921"})
	na := nodeAction(ns, "shutdown", "e2e", "9921", "shutdown")
	na.Spec.Escalation = &v1alpha1.Escalation{PowerOffAfterSeconds: 5}
	create(t, na)
	finished(t, na, 20*time.Second)
	expectStalled(t, na, v1alpha1.ReasonUnsupportedAction, "e2e has none", "remove spec.escalation")
	expectNoNewActionCalls(t, cloud, "9921", 0, 2*time.Second, "an escalation that cannot escalate")
}

// Changing spec.runID re-runs the action and keeps the earlier run in history.
func TestRunIDStartsANewRun(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	startManagerIn(t, ns)
	createProvider(t, ns, "do", v1alpha1.ProviderDigitalOcean)
	cloud.AddVM(fakecloud.VM{ID: "9911"})
	na := nodeAction(ns, "rerun", "do", "9911", "reboot")
	na.Spec.RunID = "2026-11-01"
	create(t, na)
	finished(t, na, 20*time.Second)
	expectReady(t, na)
	firstID := na.Status.ProviderActionID

	na.Spec.RunID = "2026-11-02"
	if err := k8s.Update(context.Background(), na); err != nil {
		t.Fatal(err)
	}
	waitFor(t, na, 20*time.Second, "the second run to succeed", func(n *v1alpha1.NodeAction) bool {
		return n.Status.RunID == "2026-11-02" && n.Status.Phase == v1alpha1.PhaseSucceeded
	})
	expectReady(t, na)
	if len(na.Status.History) != 1 || na.Status.History[0].RunID != "2026-11-01" || na.Status.History[0].ProviderActionID != firstID ||
		na.Status.History[0].Phase != v1alpha1.PhaseSucceeded {
		t.Fatalf("history %+v", na.Status.History)
	}
	if na.Status.ProviderActionID == firstID || cloud.AcceptedActions("9911") != 2 {
		t.Fatalf("want a second provider action, got id %s and %d accepted", na.Status.ProviderActionID, cloud.AcceptedActions("9911"))
	}
}

// TLS verification is on; spec.caBundle adds trust for a private CA.
func TestCABundle(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	startManagerIn(t, ns)
	srv := httptest.NewTLSServer(cloud.Handler())
	defer srv.Close()
	pemCert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if _, err := x509.ParseCertificate(srv.Certificate().Raw); err != nil {
		t.Fatal(err)
	}

	untrusted, s1 := providerFor(t, ns, "untrusted", v1alpha1.ProviderDigitalOcean)
	untrusted.Spec.Endpoint = srv.URL + "/digitalocean"
	create(t, s1)
	create(t, untrusted)
	untrusted = providerReady(t, untrusted, metav1.ConditionFalse, v1alpha1.ReasonEndpointUnreachable)
	if c := condition(untrusted.Status.Conditions, v1alpha1.ConditionReady); !strings.Contains(c.Message, "certificate") {
		t.Errorf("message %q should say the certificate is not trusted", c.Message)
	}

	trusted, s2 := providerFor(t, ns, "trusted", v1alpha1.ProviderDigitalOcean)
	trusted.Spec.Endpoint = srv.URL + "/digitalocean"
	trusted.Spec.CABundle = pemCert
	create(t, s2)
	create(t, trusted)
	providerReady(t, trusted, metav1.ConditionTrue, v1alpha1.ReasonProbeSucceeded)

	cloud.AddVM(fakecloud.VM{ID: "9951"})
	na := nodeAction(ns, "over-tls", "trusted", "9951", "reboot")
	create(t, na)
	finished(t, na, 20*time.Second)
	expectReady(t, na)
}

// Two managers with leader election: only the leader submits, and the
// other takes over when the leader dies.
func TestLeaderElectionOnlyOneSubmits(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("runs the manager binary")
	}
	ns := newNamespace(t)
	kubeconfig := writeKubeconfig(t)
	createProvider(t, ns, "do", v1alpha1.ProviderDigitalOcean)
	le := []string{"--leader-elect", "--leader-election-namespace=" + ns, "--leader-election-id=le-test",
		"--leader-elect-lease-duration=3s", "--leader-elect-renew-deadline=2s", "--leader-elect-retry-period=500ms"}
	a := startManagerProcess(t, kubeconfig, append(le, "--watch-namespace="+ns)...)
	b := startManagerProcess(t, kubeconfig, append(le, "--watch-namespace="+ns)...)

	run := func(prefix string, from, n int) {
		for i := from; i < from+n; i++ {
			id := fmt.Sprint(9960 + i)
			cloud.AddVM(fakecloud.VM{ID: id, ActionDuration: 200 * time.Millisecond})
			create(t, nodeAction(ns, fmt.Sprintf("%s-%d", prefix, i), "do", id, "reboot"))
		}
		for i := from; i < from+n; i++ {
			na := finished(t, nodeAction(ns, fmt.Sprintf("%s-%d", prefix, i), "", "", ""), 60*time.Second)
			expectReady(t, na)
			if c := cloud.ActionCalls(fmt.Sprint(9960 + i)); c != 1 {
				t.Fatalf("%s: %d action calls, want 1", na.Name, c)
			}
		}
	}
	run("before", 0, 10)
	submitters := 0
	var leader, follower *managerProcess
	for _, p := range []*managerProcess{a, b} {
		if strings.Contains(p.out.String(), `"submitting"`) {
			submitters++
			leader = p
		} else {
			follower = p
		}
	}
	if submitters != 1 {
		t.Fatalf("%d managers submitted, want exactly 1 (the leader)", submitters)
	}

	leader.kill()
	run("after", 10, 5)
	if !strings.Contains(follower.out.String(), `"submitting"`) {
		t.Fatal("the second manager did not take over")
	}
	t.Logf("leader election: 2 managers, only the leader submitted 10 actions; after it was killed the other submitted 5; 15 actions, 15 provider calls")
}

// Credentials never show in the manager's logs (at debug level), in status,
// in events, or in a request path.
func TestCredentialsNeverLeak(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("runs the manager binary")
	}
	ns := newNamespace(t)
	kubeconfig := writeKubeconfig(t)
	proc := startManagerProcess(t, kubeconfig, "--zap-log-level=debug", "--zap-devel", "--watch-namespace="+ns)
	creds := fakecloud.DefaultCredentials()
	secrets := []string{creds.DigitalOceanToken, creds.E2EAPIKey, creds.E2EToken, creds.KeystonePassword,
		creds.CloudsForPassword, creds.OpenScalerToken, "wrong-token-never-to-be-seen"}

	var names []string
	for i, typ := range []v1alpha1.ProviderType{v1alpha1.ProviderDigitalOcean, v1alpha1.ProviderSenlin, v1alpha1.ProviderE2E, v1alpha1.ProviderCloudsFor, v1alpha1.ProviderOpenScaler} {
		createProvider(t, ns, string(typ), typ)
		id := []string{"9981", "5e000000-0000-4000-8000-000000009981", "9982", "c0ffee00000000000000000000009981", "os-9981"}[i]
		cloud.AddVM(fakecloud.VM{ID: id})
		na := nodeAction(ns, string(typ)+"-ok", string(typ), id, "power_off")
		if typ == v1alpha1.ProviderSenlin {
			na.Spec.Action = "reboot"
		}
		create(t, na)
		missing := nodeAction(ns, string(typ)+"-missing", string(typ), id+"0", na.Spec.Action)
		if typ == v1alpha1.ProviderSenlin {
			missing.Spec.NodeID = "5e000000-0000-4000-8000-000000000000"
		}
		create(t, missing)
		names = append(names, na.Name, missing.Name)
	}
	// A Provider whose token is refused.
	bad, badSecret := providerFor(t, ns, "bad", v1alpha1.ProviderDigitalOcean)
	badSecret.StringData["token"] = "wrong-token-never-to-be-seen"
	create(t, badSecret)
	create(t, bad)
	create(t, nodeAction(ns, "refused", "bad", "9981", "reboot"))
	names = append(names, "refused")
	for _, n := range names {
		finished(t, nodeAction(ns, n, "", "", ""), 60*time.Second)
	}
	time.Sleep(time.Second) // let the last events and log lines out
	proc.kill()

	var places []string
	places = append(places, proc.out.String())
	list := &v1alpha1.NodeActionList{}
	if err := k8s.List(context.Background(), list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	for _, na := range list.Items {
		places = append(places, fmt.Sprintf("%+v", na.Status))
	}
	plist := &v1alpha1.ProviderList{}
	if err := k8s.List(context.Background(), plist, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	for _, p := range plist.Items {
		places = append(places, fmt.Sprintf("%+v", p.Status))
	}
	events := &eventsv1.EventList{}
	if err := k8s.List(context.Background(), events, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	for _, e := range events.Items {
		places = append(places, e.Note+" "+e.Reason)
	}
	for _, r := range cloud.Log() {
		places = append(places, r.Path)
	}
	if len(events.Items) < 10 || !strings.Contains(proc.out.String(), "submitting") {
		t.Fatalf("too little to inspect: %d events, log %d bytes", len(events.Items), len(proc.out.String()))
	}
	for _, p := range places {
		for _, s := range secrets {
			if strings.Contains(p, s) {
				t.Errorf("a credential (%q...) shows up in: %.300s", s[:4], p)
			}
		}
	}
}
