package controllers

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	"github.com/nodeaction/nodeaction-operator/api/v1alpha1"
	"github.com/nodeaction/nodeaction-operator/internal/fakecloud"
)

// The tests in this file hold the operator's first promise against a hostile
// world: one intended action is one provider call, and a NodeAction never
// reports an action that did not happen.

// expectNoNewActionCalls watches fakecloud's request log for window and
// fails at the first action call on vmID beyond want: "nothing happens" is
// watched for a stated time, not looked at once.
func expectNoNewActionCalls(t *testing.T, c *fakecloud.Cloud, vmID string, want int, window time.Duration, why string) {
	t.Helper()
	deadline := time.Now().Add(window)
	for {
		if n := c.ActionCalls(vmID); n != want {
			t.Fatalf("%s: %d action calls on %s, want %d", why, n, vmID, want)
		}
		if time.Now().After(deadline) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// annotate sets one annotation on the current object.
func annotate(t *testing.T, na *v1alpha1.NodeAction, key, value string) {
	t.Helper()
	cur := &v1alpha1.NodeAction{}
	if err := k8s.Get(context.Background(), keyOf(na), cur); err != nil {
		t.Fatal(err)
	}
	if cur.Annotations == nil {
		cur.Annotations = map[string]string{}
	}
	cur.Annotations[key] = value
	if err := k8s.Update(context.Background(), cur); err != nil {
		t.Fatal(err)
	}
}

// Issue 12, reproduction 1: a retry annotation left from an earlier run must
// never submit a later run again. Each run's lost answer ends
// SubmissionUnknown; only a person's annotation naming the current attempt
// sends once more.
func TestStaleRetryAnnotationNeverSubmitsALaterRun(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	startManagerIn(t, ns)
	createProvider(t, ns, "e2e", v1alpha1.ProviderE2E)
	id := "102777"
	vm := fakecloud.VM{ID: id}
	e2eWorkflow(&vm)
	cloud.AddVM(vm)
	loseNextAnswer := func() {
		cloud.InjectFault(fakecloud.Fault{Skin: "e2e", PathContains: "/nodes/" + id + "/", ActionOnly: true, Times: 1, Mode: fakecloud.AcceptThenDrop})
	}

	loseNextAnswer()
	na := nodeAction(ns, "reboot", "e2e", id, "reboot")
	na.Spec.RunID = "r1"
	create(t, na)
	finished(t, na, 30*time.Second)
	expectStalled(t, na, v1alpha1.ReasonSubmissionUnknown)
	first := na.Status.AttemptID
	annotate(t, na, v1alpha1.AnnotationRetrySubmission, first)
	waitFor(t, na, 30*time.Second, "the retried run r1 to succeed", func(n *v1alpha1.NodeAction) bool {
		return n.Status.Phase == v1alpha1.PhaseSucceeded && n.Status.AttemptID != first
	})
	// The retry may meet the lost action still running: a refusal (busy)
	// starts nothing, so count the actions the cloud started.
	if n := cloud.AcceptedActions(id); n != 2 {
		t.Fatalf("%d actions started after the requested retry, want 2:\n%s", n, cloud.Story(id))
	}

	// Run r2 loses its answer too.
	loseNextAnswer()
	na.Spec.RunID = "r2"
	if err := k8s.Update(context.Background(), na); err != nil {
		t.Fatal(err)
	}
	waitFor(t, na, 30*time.Second, "run r2 to stop at SubmissionUnknown", func(n *v1alpha1.NodeAction) bool {
		return n.Status.RunID == "r2" && n.Status.Phase == v1alpha1.PhaseFailed
	})
	expectStalled(t, na, v1alpha1.ReasonSubmissionUnknown)
	if na.Status.AttemptID == first {
		t.Errorf("run r2 reuses attempt id %s of run r1", first)
	}
	// Any later reconcile (here an unrelated annotation) must not send r2
	// again: nobody asked for it.
	annotate(t, na, "example.com/touched", "yes")
	if n := cloud.AcceptedActions(id); n != 3 {
		t.Fatalf("%d actions started by run r2, want 3:\n%s", n, cloud.Story(id))
	}
	expectNoNewActionCalls(t, cloud, id, cloud.ActionCalls(id), 3*time.Second, "an old retry annotation after an unrelated edit")
	cur := &v1alpha1.NodeAction{}
	if err := k8s.Get(context.Background(), keyOf(na), cur); err != nil {
		t.Fatal(err)
	}
	expectStalled(t, cur, v1alpha1.ReasonSubmissionUnknown)

	// The annotation naming r2's attempt sends exactly once more.
	annotate(t, na, v1alpha1.AnnotationRetrySubmission, cur.Status.AttemptID)
	waitFor(t, na, 30*time.Second, "the retried run r2 to succeed", func(n *v1alpha1.NodeAction) bool {
		return n.Status.Phase == v1alpha1.PhaseSucceeded
	})
	if n := cloud.AcceptedActions(id); n != 4 {
		t.Fatalf("%d actions started after the retry of r2, want 4:\n%s", n, cloud.Story(id))
	}
	expectNoNewActionCalls(t, cloud, id, cloud.ActionCalls(id), time.Second, "after the retry of r2")
}

// Issue 12, reproduction 2: after a lost answer, the lookup must not adopt an
// earlier action of the same type on the same VM (another NodeAction's, or
// one from before this attempt), and so must never report an action that did
// not happen. Here the lost request never reached the provider: the
// NodeAction must send again and end with an action of its own.
func TestLookupNeverAdoptsAnEarlierAction(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	startManagerIn(t, ns)
	cases := []struct {
		typ  v1alpha1.ProviderType
		id   string
		skin string
	}{
		{v1alpha1.ProviderDigitalOcean, "3164498", "digitalocean"},
		{v1alpha1.ProviderSenlin, "5e000000-0000-4000-8000-000000003164", "senlin"},
		{v1alpha1.ProviderCloudsFor, "c0ffee00000000000000000000003164", "cloudsfor"},
	}
	for _, tc := range cases {
		t.Run(string(tc.typ), func(t *testing.T) {
			t.Parallel()
			createProvider(t, ns, string(tc.typ), tc.typ)
			cloud.AddVM(fakecloud.VM{ID: tc.id, ActionDuration: 200 * time.Millisecond})
			a := nodeAction(ns, string(tc.typ)+"-a", string(tc.typ), tc.id, "reboot")
			create(t, a)
			finished(t, a, 30*time.Second)
			expectReady(t, a)

			cloud.InjectFault(fakecloud.Fault{Skin: tc.skin, PathContains: "/" + tc.id + "/", ActionOnly: true, Times: 1, Mode: fakecloud.DropBeforeAccept})
			b := nodeAction(ns, string(tc.typ)+"-b", string(tc.typ), tc.id, "reboot")
			create(t, b)
			finished(t, b, 60*time.Second)
			if b.Status.ProviderActionID != "" && b.Status.ProviderActionID == a.Status.ProviderActionID {
				t.Fatalf("B adopted A's action %s: it reports a reboot that never ran (%s)", a.Status.ProviderActionID, b.Status.Message)
			}
			expectReady(t, b)
			if n := cloud.AcceptedActions(tc.id); n != 2 {
				t.Fatalf("%d actions accepted on the VM, want 2 (A's and B's own)", n)
			}
		})
	}
}

// A submission that waits for the Provider's request budget, whose request a
// proxy then forwards late (after the operator's 2 s request timeout), is
// looked up, found and adopted: one reboot. The Provider allows 6 requests
// a minute, so the second action waits about 10 s for its slot.
func TestRateLimitedSubmissionForwardedLateIsSentOnce(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	startManagerIn(t, ns)
	p, s := providerFor(t, ns, "do", v1alpha1.ProviderDigitalOcean)
	p.Spec.RateLimit = &v1alpha1.RateLimit{RequestsPerMinute: 6, Burst: 1}
	create(t, s)
	create(t, p)
	cloud.AddVM(fakecloud.VM{ID: "9651", ActionDuration: 200 * time.Millisecond})
	cloud.AddVM(fakecloud.VM{ID: "9652", ActionDuration: 200 * time.Millisecond})
	cloud.InjectFault(fakecloud.Fault{Skin: "digitalocean", PathContains: "/9652/", ActionOnly: true, Times: 1,
		Mode: fakecloud.ForwardLate, Latency: 3 * time.Second})

	first := nodeAction(ns, "first", "do", "9651", "power_cycle")
	create(t, first)
	waitFor(t, first, 20*time.Second, "the first action to be submitted", func(n *v1alpha1.NodeAction) bool {
		return n.Status.Phase == v1alpha1.PhaseRunning || n.Status.Phase.Finished()
	})
	second := nodeAction(ns, "second", "do", "9652", "reboot")
	second.Spec.ActiveDeadlineSeconds = ptr.To(int64(120))
	create(t, second)
	finished(t, second, 120*time.Second)
	if n := cloud.AcceptedActions("9652"); n != 1 {
		t.Fatalf("%d reboots accepted, want 1 (status: %s: %s)", n, readyReason(second), second.Status.Message)
	}
	expectReady(t, second)
}

// A proxy in front of the API can answer 502, 503 or 504 after forwarding an
// action: the operator must look before calling again. And an error page of
// any size must end up in status cut to a readable length.
func TestOversizedErrorAnswerIsCut(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	startManagerIn(t, ns)
	createProvider(t, ns, "cloudsfor", v1alpha1.ProviderCloudsFor)
	id := "c0ffee00000000000000000000009700"
	cloud.AddVM(fakecloud.VM{ID: id})
	huge := `{"message":"` + strings.Repeat("the VM cannot do that ", 50000) + `"}`
	cloud.InjectFault(fakecloud.Fault{Skin: "cloudsfor", PathContains: "/" + id + "/", ActionOnly: true, Times: 1,
		Mode: fakecloud.Reject, Status: 422, Body: huge})
	na := nodeAction(ns, "refused", "cloudsfor", id, "reboot")
	create(t, na)
	finished(t, na, 30*time.Second)
	expectStalled(t, na, v1alpha1.ReasonRejected, "the VM cannot do that", "cut")
	if l := len(na.Status.Message); l > 4096 {
		t.Fatalf("status message is %d bytes long", l)
	}
	expectNoNewActionCalls(t, cloud, id, 1, time.Second, "a refused action")
}

// Issue 12: credentials rotated (the old ones revoked) while an accepted
// action runs must not fail the NodeAction: it keeps following, says why it
// waits, and resumes once the Secret holds the new credentials, with no
// second call. Each provider gets its own fakecloud, so the rotation touches
// nothing else.
func TestCredentialsRotatedWhileFollowing(t *testing.T) {
	t.Parallel()
	rotateWhileFollowing(t, 1)
}

// The same with several actions in flight on one Provider, followed through
// the shared sweeps of its list (issue 16): the refused sweep must not fail
// or forget any of them, nor send any action again.
func TestCredentialsRotatedMidSweep(t *testing.T) {
	t.Parallel()
	rotateWhileFollowing(t, 4)
}

func rotateWhileFollowing(t *testing.T, n int) {
	actions := map[v1alpha1.ProviderType]string{
		v1alpha1.ProviderDigitalOcean: "reboot", v1alpha1.ProviderSenlin: "reboot", v1alpha1.ProviderCloudsFor: "reboot",
		v1alpha1.ProviderE2E: "power_off", v1alpha1.ProviderOpenScaler: "shutdown",
	}
	for typ, action := range actions {
		t.Run(string(typ), func(t *testing.T) {
			t.Parallel()
			own := fakecloud.New(fakecloud.Options{ActionDuration: 300 * time.Millisecond,
				RateBudget: fakecloud.RateBudget{Limit: 1_000_000, Window: time.Minute}})
			srv := httptest.NewServer(own.Handler())
			t.Cleanup(srv.Close)
			ns := newNamespace(t)
			startManagerIn(t, ns)
			p, s := providerFor(t, ns, "p", typ)
			pointAt(p, typ, srv.URL)
			create(t, s)
			create(t, p)
			var nas []*v1alpha1.NodeAction
			var ids []string
			for i := range n {
				id := matrixIDs[typ](700 + i)
				ids = append(ids, id)
				// Long enough to rotate the credentials while it runs; OpenScaler's
				// shutdown outlasts its own 5 s wait for the guest.
				own.AddVM(fakecloud.VM{ID: id, ActionDuration: 8 * time.Second})
				na := nodeAction(ns, fmt.Sprintf("rotated-%d", i), "p", id, action)
				na.Spec.ActiveDeadlineSeconds = ptr.To(int64(120))
				create(t, na)
				nas = append(nas, na)
			}
			for _, na := range nas {
				waitFor(t, na, 30*time.Second, "the action to run", func(n *v1alpha1.NodeAction) bool { return n.Status.Phase == v1alpha1.PhaseRunning })
			}
			if n > 1 && !waitUntil(10*time.Second, func() bool { return listReads(own, http.StatusOK) > 0 }) {
				t.Fatalf("%d actions in flight: no shared read of the account's list before the rotation", n)
			}

			old := fakecloud.DefaultCredentials()
			rotated := rotate(old)
			own.SetCredentials(rotated)
			for _, na := range nas {
				waitFor(t, na, 30*time.Second, "a wait that names the refused credentials", func(n *v1alpha1.NodeAction) bool {
					return n.Status.Phase == v1alpha1.PhaseRunning && readyReason(n) == v1alpha1.ReasonCredentialsRejected
				})
				if st := condition(na.Status.Conditions, v1alpha1.ConditionStalled); st == nil || !strings.Contains(st.Message, s.Name) {
					t.Errorf("%s: Stalled condition %+v should say the credentials in Secret %s were refused", na.Name, st, s.Name)
				}
			}
			if n > 1 && listReads(own, http.StatusUnauthorized, http.StatusForbidden) == 0 {
				t.Errorf("%d actions in flight: no shared read of the list was refused, so the rotation did not reach a sweep", n)
			}

			// A person puts the new credentials in the Secret.
			cur := &corev1.Secret{}
			if err := k8s.Get(context.Background(), keyOf(s), cur); err != nil {
				t.Fatal(err)
			}
			_, fresh := providerFor(t, ns, "p", typ)
			cur.Data = nil
			cur.StringData = rotatedSecret(fresh.StringData, old, rotated)
			if err := k8s.Update(context.Background(), cur); err != nil {
				t.Fatal(err)
			}
			for i, na := range nas {
				finished(t, na, 90*time.Second)
				expectReady(t, na)
				if got := own.AcceptedActions(ids[i]); got != 1 {
					t.Fatalf("%s: %d actions accepted, want 1", na.Name, got)
				}
			}
		})
	}
}

// listReads counts the reads of a whole list (a GET that names no VM) a
// fakecloud answered with one of the statuses.
func listReads(c *fakecloud.Cloud, statuses ...int) int {
	count := 0
	for _, r := range c.Log() {
		if r.Method == http.MethodGet && r.VMID == "" && slices.Contains(statuses, r.Status) {
			count++
		}
	}
	return count
}

// A deleted Provider leaves nothing behind in the manager: its driver, its
// request budget and its shared status sweeps go with it.
func TestDeletedProviderLeavesNothingBehind(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	m := startManagerWith(t, ns)
	p := createProvider(t, ns, "do", v1alpha1.ProviderDigitalOcean)
	// Two actions at once share a sweep of the account's actions.
	for _, id := range []string{"9661", "9662"} {
		cloud.AddVM(fakecloud.VM{ID: id, ActionDuration: 2 * time.Second})
		create(t, nodeAction(ns, "na-"+id, "do", id, "reboot"))
	}
	if !waitUntil(20*time.Second, func() bool { return m.drivers.Providers() == 1 && m.nodeAction.fleet.tracked() == 1 }) {
		t.Fatalf("before: the cache holds %d Providers, the poller %d", m.drivers.Providers(), m.nodeAction.fleet.tracked())
	}
	if err := k8s.Delete(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	if !waitUntil(20*time.Second, func() bool { return m.drivers.Providers() == 0 && m.nodeAction.fleet.tracked() == 0 }) {
		t.Fatalf("after deleting the Provider: the cache still holds %d Providers, the poller %d", m.drivers.Providers(), m.nodeAction.fleet.tracked())
	}
}

// pointAt points a Provider made by providerFor at another fakecloud.
func pointAt(p *v1alpha1.Provider, typ v1alpha1.ProviderType, base string) {
	if typ == v1alpha1.ProviderSenlin {
		p.Spec.AuthURL = base + "/identity/v3"
		return
	}
	p.Spec.Endpoint = strings.Replace(p.Spec.Endpoint, cloudURL, base, 1)
}

// rotate returns credentials with every secret value changed.
func rotate(c fakecloud.Credentials) fakecloud.Credentials {
	r := c
	r.DigitalOceanToken += "-rotated"
	r.OpenScalerToken += "-rotated"
	r.CloudsForPassword += "-rotated"
	r.E2EToken += "-rotated"
	r.KeystonePassword += "-rotated"
	return r
}

// rotatedSecret replaces the old secret values in data with the rotated ones.
func rotatedSecret(data map[string]string, old, rotated fakecloud.Credentials) map[string]string {
	swap := map[string]string{
		old.DigitalOceanToken: rotated.DigitalOceanToken, old.OpenScalerToken: rotated.OpenScalerToken,
		old.CloudsForPassword: rotated.CloudsForPassword, old.E2EToken: rotated.E2EToken, old.KeystonePassword: rotated.KeystonePassword,
	}
	out := map[string]string{}
	for k, v := range data {
		if n, ok := swap[v]; ok {
			v = n
		}
		out[k] = v
	}
	return out
}

var _ = fmt.Sprintf
