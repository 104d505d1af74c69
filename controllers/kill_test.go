package controllers

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"testing"
	"time"

	"github.com/nodeaction/nodeaction-operator/api/v1alpha1"
	"github.com/nodeaction/nodeaction-operator/internal/fakecloud"
)

// killCase is one NodeAction of the kill test.
type killCase struct {
	typ     v1alpha1.ProviderType
	id      string
	action  string
	params  *v1alpha1.ActionParameters
	confirm bool
	prepare func(*fakecloud.VM)
	// hold: fakecloud keeps this action's POST open, and the manager is
	// killed while it waits for the answer.
	hold bool
}

// e2eWorkflow gives an E2E node's reboot the time a real one takes: E2E
// proves a reboot only by the node seen in its workflow, which a poll must
// be able to catch.
func e2eWorkflow(vm *fakecloud.VM) { vm.ActionDuration = 5 * time.Second }

func killCases() []killCase {
	off := func(vm *fakecloud.VM) { vm.Power = fakecloud.PowerOff }
	senlin := func(n int) string { return fmt.Sprintf("5e000000-0000-4000-8000-%012d", 800+n) }
	cloudsfor := func(n int) string { return fmt.Sprintf("c0ffee%026d", 800+n) }
	return []killCase{
		{typ: v1alpha1.ProviderDigitalOcean, id: "8001", action: "reboot", hold: true},
		{typ: v1alpha1.ProviderDigitalOcean, id: "8002", action: "power_off"},
		{typ: v1alpha1.ProviderDigitalOcean, id: "8003", action: "rename", params: &v1alpha1.ActionParameters{Name: "renamed"}},
		{typ: v1alpha1.ProviderDigitalOcean, id: "8004", action: "power_cycle"},
		{typ: v1alpha1.ProviderDigitalOcean, id: "8005", action: "power_on", prepare: off},
		{typ: v1alpha1.ProviderSenlin, id: senlin(1), action: "reboot", hold: true},
		{typ: v1alpha1.ProviderSenlin, id: senlin(2), action: "power_cycle"},
		{typ: v1alpha1.ProviderSenlin, id: senlin(3), action: "check"},
		{typ: v1alpha1.ProviderSenlin, id: senlin(4), action: "recover", confirm: true,
			params: &v1alpha1.ActionParameters{Recover: &v1alpha1.RecoverParameters{Operation: "REBUILD"}}},
		{typ: v1alpha1.ProviderE2E, id: "8101", action: "power_off", hold: true},
		{typ: v1alpha1.ProviderE2E, id: "8102", action: "rename", params: &v1alpha1.ActionParameters{Name: "renamed"}},
		{typ: v1alpha1.ProviderE2E, id: "8103", action: "power_on", prepare: off},
		{typ: v1alpha1.ProviderE2E, id: "8104", action: "reboot", prepare: e2eWorkflow},
		{typ: v1alpha1.ProviderE2E, id: "8105", action: "lock_vm"},
		{typ: v1alpha1.ProviderCloudsFor, id: cloudsfor(1), action: "reboot", hold: true},
		{typ: v1alpha1.ProviderCloudsFor, id: cloudsfor(2), action: "power_off"},
		{typ: v1alpha1.ProviderCloudsFor, id: cloudsfor(3), action: "rename", params: &v1alpha1.ActionParameters{Name: "renamed"}},
		{typ: v1alpha1.ProviderCloudsFor, id: cloudsfor(4), action: "shutdown"},
		{typ: v1alpha1.ProviderOpenScaler, id: "os-8201", action: "power_off", hold: true},
		{typ: v1alpha1.ProviderOpenScaler, id: "os-8202", action: "power_on", prepare: off},
		{typ: v1alpha1.ProviderOpenScaler, id: "os-8203", action: "power_cycle"},
		{typ: v1alpha1.ProviderOpenScaler, id: "os-8204", action: "shutdown"},
		{typ: v1alpha1.ProviderDigitalOcean, id: "8006", action: "snapshot", params: &v1alpha1.ActionParameters{Name: "snap"}},
		{typ: v1alpha1.ProviderE2E, id: "8106", action: "power_off"},
	}
}

// TestKillManagerAtRandomPoints runs the real manager binary, SIGKILLs it
// at random moments and while fakecloud holds action POSTs open, restarts
// it, and checks every NodeAction made exactly one action call that
// reached the provider and ended Succeeded, or Stalled with
// SubmissionUnknown (at most one such call). It runs in each fakecloud test
// world (FAKECLOUD_ADVERSARIAL=1, FAKECLOUD_SEED=N).
func TestKillManagerAtRandomPoints(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("kill test runs the manager binary; skipped with -short")
	}
	inEachWorld(t, runKillTest)
}

func runKillTest(t *testing.T, wc worldCloud) {
	cloud := wc.cloud
	ns := newNamespace(t)
	kubeconfig := writeKubeconfig(t)
	cases := killCases()
	if len(cases) < 20 {
		t.Fatalf("the kill test needs at least 20 NodeActions, has %d", len(cases))
	}
	for _, typ := range []v1alpha1.ProviderType{v1alpha1.ProviderDigitalOcean, v1alpha1.ProviderSenlin, v1alpha1.ProviderE2E, v1alpha1.ProviderCloudsFor, v1alpha1.ProviderOpenScaler} {
		createProviderAt(t, ns, string(typ), typ, wc.url)
	}
	held := make(chan *fakecloud.Fault, len(cases))
	for _, c := range cases {
		vm := fakecloud.VM{ID: c.id, ActionDuration: 1500 * time.Millisecond}
		if c.prepare != nil {
			c.prepare(&vm)
		}
		cloud.AddVM(vm)
		if c.hold {
			f := cloud.InjectFault(fakecloud.Fault{PathContains: "/" + c.id + "/", ActionOnly: true, Mode: fakecloud.AcceptThenHold, Times: 1})
			go func() {
				select {
				case <-f.Held():
					held <- f
				case <-time.After(2 * time.Minute):
				}
			}()
		}
	}

	proc := startManagerProcess(t, kubeconfig, "--watch-namespace="+ns)
	var names []string
	for i, c := range cases {
		na := nodeAction(ns, fmt.Sprintf("kill-%02d-%s", i, c.typ), string(c.typ), c.id, c.action)
		na.Spec.Parameters = c.params
		if c.confirm {
			na.Spec.Confirm = c.id
		}
		create(t, na)
		names = append(names, na.Name)
	}

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	kills, heldKills := 0, 0
	restart := func() {
		proc.kill()
		kills++
		proc = startManagerProcess(t, kubeconfig, "--watch-namespace="+ns)
	}
	killUntil := time.Now().Add(25 * time.Second)
	for time.Now().Before(killUntil) && !allFinished(t, ns, names) {
		select {
		case f := <-held:
			restart() // the POST was accepted; its answer dies with the process
			heldKills++
			f.Release()
		case <-time.After(time.Duration(200+rng.IntN(1800)) * time.Millisecond):
			restart()
		}
	}
	if !waitUntil(2*time.Minute, func() bool { return allFinished(t, ns, names) }) {
		t.Fatalf("not every NodeAction finished after %d kills; manager log tail:\n%s", kills, tail(proc.out.String(), 4000))
	}
	proc.kill()

	succeeded, unknown := 0, 0
	var lines []string
	for i, c := range cases {
		na := &v1alpha1.NodeAction{}
		if err := k8s.Get(context.Background(), keyOf(nodeAction(ns, names[i], "", "", "")), na); err != nil {
			t.Fatal(err)
		}
		calls, accepted := cloud.HandledActionCalls(c.id), cloud.AcceptedActions(c.id)
		reason := readyReason(na)
		lines = append(lines, fmt.Sprintf("%-12s %-11s %-9s %-18s calls=%d accepted=%d attempts=%d", c.typ, c.action, na.Status.Phase, reason, calls, accepted, na.Status.Attempts))
		switch {
		case na.Status.Phase == v1alpha1.PhaseSucceeded && calls == 1 && accepted == 1:
			succeeded++
		case na.Status.Phase == v1alpha1.PhaseFailed && reason == v1alpha1.ReasonSubmissionUnknown && calls <= 1:
			unknown++
		default:
			t.Errorf("%s (%s %s on %s): phase %s reason %s with %d action calls (%d accepted): want Succeeded with exactly 1 call, or SubmissionUnknown with at most 1; message %q; what the cloud did:\n%s",
				na.Name, c.typ, c.action, c.id, na.Status.Phase, reason, calls, accepted, na.Status.Message, cloud.Story(c.id))
		}
	}
	sort.Strings(lines)
	t.Logf("kill test (%s): %d NodeActions, %d SIGKILLs (%d while a POST was held open): %d Succeeded with exactly 1 call, %d SubmissionUnknown, 0 duplicates allowed\n%s",
		wc.world.Name, len(cases), kills, heldKills, succeeded, unknown, joinLines(lines))
	if heldKills == 0 {
		t.Error("no kill happened while fakecloud held a POST open")
	}
}

func allFinished(t *testing.T, ns string, names []string) bool {
	t.Helper()
	for _, n := range names {
		na := &v1alpha1.NodeAction{}
		if err := k8s.Get(context.Background(), keyOf(nodeAction(ns, n, "", "", "")), na); err != nil || !na.Status.Phase.Finished() {
			return false
		}
	}
	return true
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func joinLines(lines []string) string {
	out := ""
	for _, l := range lines {
		out += "  " + l + "\n"
	}
	return out
}
