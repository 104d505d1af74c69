package controllers

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodeaction/nodeaction-operator/api/v1alpha1"
	"github.com/nodeaction/nodeaction-operator/internal/fakecloud"
)

// TestKillManagerMidRollout runs the real manager binary over two
// NodeActionSets, SIGKILLs it at random moments and while fakecloud holds
// a member's action POST open, restarts it, and checks on fakecloud's
// records that the rollouts carried on: every VM got exactly one action
// call (at most one where its member ended SubmissionUnknown), and no set
// ever had more than maxUnavailable actions running at once.
func TestKillManagerMidRollout(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("kill test runs the manager binary; skipped with -short")
	}
	ns := newNamespace(t)
	kubeconfig := writeKubeconfig(t)
	createProvider(t, ns, "do", v1alpha1.ProviderDigitalOcean)
	createProvider(t, ns, "senlin", v1alpha1.ProviderSenlin)

	type rolloutCase struct {
		set   *v1alpha1.NodeActionSet
		ids   []string
		limit int
	}
	var doIDs, senlinIDs []string
	for i := 1; i <= 12; i++ {
		doIDs = append(doIDs, fmt.Sprintf("158%03d", i))
		senlinIDs = append(senlinIDs, fmt.Sprintf("5e000000-0000-4000-8000-%012d", 158000+i))
	}
	senlinIDs = senlinIDs[:8]
	held := make(chan *fakecloud.Fault, 4)
	for i, id := range append(append([]string{}, doIDs...), senlinIDs...) {
		cloud.AddVM(fakecloud.VM{ID: id, ActionDuration: 1500 * time.Millisecond})
		if i%5 == 2 {
			f := cloud.InjectFault(fakecloud.Fault{PathContains: "/" + id + "/", ActionOnly: true, Mode: fakecloud.AcceptThenHold, Times: 1})
			go func() {
				select {
				case <-f.Held():
					held <- f
				case <-time.After(2 * time.Minute):
				}
			}()
		}
	}
	doSet := nodeActionSet(ns, "do-night", "do", "reboot", 3, doIDs...)
	senlinSet := nodeActionSet(ns, "senlin-night", "senlin", "power_cycle", 1, senlinIDs...)
	senlinSet.Spec.MaxUnavailable = ptr.To(intstr.FromString("25%"))
	cases := []rolloutCase{{doSet, doIDs, 3}, {senlinSet, senlinIDs, 2}}
	for _, c := range cases {
		c.set.Spec.MaxFailures = ptr.To(int32(len(c.ids))) // a SubmissionUnknown member must not halt the test
		create(t, c.set)
	}

	proc := startManagerProcess(t, kubeconfig, "--watch-namespace="+ns)
	finished := func() bool {
		for _, c := range cases {
			s := &v1alpha1.NodeActionSet{}
			if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(c.set), s); err != nil ||
				s.Status.ObservedGeneration != s.Generation || s.Status.CompletionTime == nil {
				return false
			}
		}
		return true
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 15))
	kills, heldKills, fullKills := 0, 0, 0
	restart := func() {
		if full(t, ns, cases[0].set, cases[0].limit) {
			fullKills++
		}
		proc.kill()
		kills++
		proc = startManagerProcess(t, kubeconfig, "--watch-namespace="+ns)
	}
	killUntil := time.Now().Add(25 * time.Second)
	for time.Now().Before(killUntil) && !finished() {
		select {
		case f := <-held:
			restart() // the POST was accepted; its answer dies with the process
			heldKills++
			f.Release()
		case <-time.After(time.Duration(300+rng.IntN(1700)) * time.Millisecond):
			restart()
		}
	}
	if !waitUntil(3*time.Minute, finished) {
		t.Fatalf("the rollouts did not finish after %d kills; manager log tail:\n%s", kills, tail(proc.out.String(), 4000))
	}
	proc.kill()

	var lines []string
	unknown := 0
	for _, c := range cases {
		s := &v1alpha1.NodeActionSet{}
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(c.set), s); err != nil {
			t.Fatal(err)
		}
		for _, id := range c.ids {
			m := &v1alpha1.NodeAction{}
			if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: memberName(c.set.Name, id)}, m); err != nil {
				t.Errorf("no member for VM %s: %v", id, err)
				continue
			}
			calls, accepted := cloud.HandledActionCalls(id), cloud.AcceptedActions(id)
			reason := readyReason(m)
			switch {
			case m.Status.Phase == v1alpha1.PhaseSucceeded && calls == 1 && accepted == 1:
			case m.Status.Phase == v1alpha1.PhaseFailed && reason == v1alpha1.ReasonSubmissionUnknown && calls <= 1:
				unknown++
			default:
				t.Errorf("VM %s (%s): phase %s reason %s with %d action calls (%d accepted); want Succeeded with exactly 1, or SubmissionUnknown with at most 1:\n%s",
					id, m.Name, m.Status.Phase, reason, calls, accepted, cloud.Story(id))
			}
		}
		peak, at := cloud.PeakConcurrent(inIDs(c.ids))
		if peak > c.limit {
			t.Errorf("set %s: fakecloud ran %d actions at once at %s, more than maxUnavailable %d", c.set.Name, peak, at.Format(time.StampMilli), c.limit)
		}
		lines = append(lines, fmt.Sprintf("%s: %d VMs, %d succeeded, %d failed, peak %d at once (maxUnavailable %d)",
			c.set.Name, len(c.ids), s.Status.Succeeded, s.Status.Failed, peak, c.limit))
	}
	t.Logf("kill test (NodeActionSets): %d SIGKILLs (%d while a POST was held open, %d with every slot of %s in flight): %d SubmissionUnknown, 0 duplicates allowed\n  %s",
		kills, heldKills, fullKills, doSet.Name, unknown, strings.Join(lines, "\n  "))
	if heldKills == 0 {
		t.Error("no kill happened while fakecloud held a POST open")
	}
	if fullKills == 0 {
		t.Error("no kill happened while a set had every slot in flight")
	}
}

// full tells whether set has limit members in flight.
func full(t *testing.T, ns string, set *v1alpha1.NodeActionSet, limit int) bool {
	t.Helper()
	list := &v1alpha1.NodeActionList{}
	if err := k8s.List(context.Background(), list, client.InNamespace(ns), client.MatchingLabels{v1alpha1.LabelNodeActionSet: set.Name}); err != nil {
		return false
	}
	n := 0
	for i := range list.Items {
		if !finishedRun(&list.Items[i]) {
			n++
		}
	}
	return n >= limit
}
