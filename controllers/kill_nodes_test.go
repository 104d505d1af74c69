package controllers

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"
	"time"

	"k8s.io/utils/ptr"

	"github.com/nodeaction/nodeaction-operator/api/v1alpha1"
	"github.com/nodeaction/nodeaction-operator/internal/fakecloud"
)

// TestKillManagerWithNodes kills the manager binary at random points while
// reboots run on VMs that are Kubernetes Nodes, drained first and waited
// for after: kills land while draining, between intent and answer, while
// following and while waiting for the Node. Every reboot must end
// Succeeded with exactly one provider call; where the provider cannot show
// what became of a lost answer, the Node's bootID does, so none stops for a
// person (SubmissionUnknown).
func TestKillManagerWithNodes(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("kill test runs the manager binary; skipped with -short")
	}
	ns := newNamespace(t)
	kubeconfig := writeKubeconfig(t)
	types := []v1alpha1.ProviderType{v1alpha1.ProviderDigitalOcean, v1alpha1.ProviderSenlin, v1alpha1.ProviderE2E, v1alpha1.ProviderCloudsFor, v1alpha1.ProviderOpenScaler}
	for _, typ := range types {
		createProvider(t, ns, string(typ), typ)
	}
	type kcase struct {
		typ       v1alpha1.ProviderType
		id, node  string
		na        *v1alpha1.NodeAction
		heldFault *fakecloud.Fault
	}
	var cases []*kcase
	var nodes []string
	for i := 0; i < 3; i++ {
		for _, typ := range types {
			id := matrixIDs[typ](1600 + len(cases)) // 10600.., clear of the other tests' VMs
			c := &kcase{typ: typ, id: id, node: fmt.Sprintf("kn-%d-%s", i, strings.ToLower(id))}
			vm := fakecloud.VM{ID: id, ActionDuration: 3 * time.Second} // long enough to be seen, and killed in
			cloud.AddVM(vm)
			kubeNode(t, c.node, string(typ)+"/"+id, "", id)
			podOn(t, ns, "app-"+c.node, c.node, "ReplicaSet", "app", nil)
			if i == 0 {
				c.heldFault = cloud.InjectFault(fakecloud.Fault{PathContains: "/" + id + "/", ActionOnly: true, Mode: fakecloud.AcceptThenHold, Times: 1})
			}
			c.na = nodeAction(ns, "kn-"+strings.ToLower(id), string(typ), id, "reboot")
			c.na.Spec.Node = &v1alpha1.NodeSpec{Drain: &v1alpha1.DrainSpec{TimeoutSeconds: 120}, WaitReadySeconds: ptr.To(int32(20))}
			cases = append(cases, c)
			nodes = append(nodes, c.node)
		}
	}
	startKubelet(t, cloud, 2*time.Second, nodes...)

	proc := startManagerProcess(t, kubeconfig, "--watch-namespace="+ns)
	var names []string
	for _, c := range cases {
		create(t, c.na)
		names = append(names, c.na.Name)
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 11))
	kills, heldKills := 0, 0
	restart := func() {
		proc.kill()
		kills++
		proc = startManagerProcess(t, kubeconfig, "--watch-namespace="+ns)
	}
	held := make(chan *fakecloud.Fault, len(cases))
	for _, c := range cases {
		if f := c.heldFault; f != nil {
			go func() {
				select {
				case <-f.Held():
					held <- f
				case <-time.After(2 * time.Minute):
				}
			}()
		}
	}
	killUntil := time.Now().Add(30 * time.Second)
	for time.Now().Before(killUntil) && !allFinished(t, ns, names) {
		select {
		case f := <-held:
			restart() // the POST was accepted; its answer dies with the process
			heldKills++
			f.Release()
		case <-time.After(time.Duration(300+rng.IntN(2000)) * time.Millisecond):
			restart()
		}
	}
	if !waitUntil(3*time.Minute, func() bool { return allFinished(t, ns, names) }) {
		t.Fatalf("not every NodeAction finished after %d kills; manager log tail:\n%s", kills, tail(proc.out.String(), 4000))
	}
	proc.kill()

	succeeded, unknown := 0, 0
	var lines []string
	for _, c := range cases {
		na := &v1alpha1.NodeAction{}
		if err := k8s.Get(context.Background(), keyOf(c.na), na); err != nil {
			t.Fatal(err)
		}
		calls := cloud.HandledActionCalls(c.id)
		reason := readyReason(na)
		lines = append(lines, fmt.Sprintf("%-12s %-9s %-16s calls=%d cordoned=%v", c.typ, na.Status.Phase, reason, calls, getNode(t, c.node).Spec.Unschedulable))
		switch {
		case na.Status.Phase == v1alpha1.PhaseSucceeded && calls == 1 && !getNode(t, c.node).Spec.Unschedulable:
			succeeded++
		default:
			if reason == v1alpha1.ReasonSubmissionUnknown {
				unknown++
			}
			t.Errorf("%s (%s reboot of %s): phase %s reason %s with %d provider calls, Node cordoned=%v: want Succeeded with exactly 1 call and the Node uncordoned; message %q; what the cloud did:\n%s",
				na.Name, c.typ, c.id, na.Status.Phase, reason, calls, getNode(t, c.node).Spec.Unschedulable, na.Status.Message, cloud.Story(c.id))
		}
	}
	sort.Strings(lines)
	t.Logf("kill test with Nodes: %d reboots of drained Nodes, %d SIGKILLs (%d while a POST was held open): %d Succeeded with exactly 1 call, %d SubmissionUnknown\n%s",
		len(cases), kills, heldKills, succeeded, unknown, joinLines(lines))
	if heldKills == 0 {
		t.Error("no kill happened while fakecloud held a POST open")
	}
}
