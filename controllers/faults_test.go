package controllers

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodeaction/nodeaction-operator/api/v1alpha1"
	"github.com/nodeaction/nodeaction-operator/internal/fakecloud"
)

// faultCase is one injected fault, applied to one NodeAction per provider.
type faultCase struct {
	name string
	// inject sets the fault up for a VM of cloud c; it returns a clean-up.
	inject func(t *testing.T, c *fakecloud.Cloud, vmID string) func()
	// providers it applies to (nil: all).
	providers []v1alpha1.ProviderType
	// event is a reason the NodeAction's events must show.
	event string
	// action overrides the provider's default action.
	action string
	vm     func(vm *fakecloud.VM)
}

// matrixAction is, per provider, an action whose lost answer the provider
// can resolve (history, or a state read-back of an idempotent action).
var matrixAction = map[v1alpha1.ProviderType]string{
	v1alpha1.ProviderDigitalOcean: "power_off",
	v1alpha1.ProviderSenlin:       "reboot",
	v1alpha1.ProviderE2E:          "power_off",
	v1alpha1.ProviderCloudsFor:    "power_off",
	v1alpha1.ProviderOpenScaler:   "power_off",
}

var matrixIDs = map[v1alpha1.ProviderType]func(n int) string{
	v1alpha1.ProviderDigitalOcean: func(n int) string { return fmt.Sprint(9000 + n) },
	v1alpha1.ProviderSenlin:       func(n int) string { return fmt.Sprintf("5e000000-0000-4000-8000-%012d", 9000+n) },
	v1alpha1.ProviderE2E:          func(n int) string { return fmt.Sprint(9100 + n) },
	v1alpha1.ProviderCloudsFor:    func(n int) string { return fmt.Sprintf("c0ffee%026d", 9000+n) },
	v1alpha1.ProviderOpenScaler:   func(n int) string { return fmt.Sprintf("os-%d", 9000+n) },
}

func faultCases() []faultCase {
	actionFault := func(f fakecloud.Fault) func(*testing.T, *fakecloud.Cloud, string) func() {
		return func(t *testing.T, c *fakecloud.Cloud, id string) func() {
			f.PathContains, f.ActionOnly, f.Times = "/"+id+"/", true, 1
			injected := c.InjectFault(f)
			return injected.Release
		}
	}
	return []faultCase{
		{name: "429 with Retry-After", event: v1alpha1.ReasonRateLimited,
			inject: actionFault(fakecloud.Fault{Mode: fakecloud.Reject, Status: 429, RetryAfter: 2})},
		// A 503 may come from a proxy that forwarded the request, so the
		// operator looks before calling again, and finds nothing here.
		{name: "503 before acting", event: "NotAccepted",
			inject: actionFault(fakecloud.Fault{Mode: fakecloud.Reject, Status: 503, RetryAfter: 1})},
		{name: "503 from a proxy after forwarding", event: "Adopted",
			inject: actionFault(fakecloud.Fault{Mode: fakecloud.AcceptThenFail, Status: 503, Body: proxyErrorPage})},
		{name: "504 from a proxy after forwarding", event: "Adopted",
			inject: actionFault(fakecloud.Fault{Mode: fakecloud.AcceptThenFail, Status: 504, Body: proxyErrorPage})},
		{name: "a 1 MiB error page after acting", event: "Adopted",
			inject: actionFault(fakecloud.Fault{Mode: fakecloud.AcceptThenFail, Status: 502, Body: hugeErrorPage})},
		{name: "500 after acting", event: "AnswerLost",
			inject: actionFault(fakecloud.Fault{Mode: fakecloud.AcceptThenFail, Status: 500})},
		{name: "connection dropped after acting", event: "AnswerLost",
			inject: actionFault(fakecloud.Fault{Mode: fakecloud.AcceptThenDrop})},
		{name: "timeout after acting", event: "AnswerLost", inject: holdAnswer},
		// Lookup proves nothing was accepted: from the history, or (power_off
		// being idempotent) from a VM that shows no sign of it.
		{name: "connection dropped before acting", event: "NotAccepted",
			inject: actionFault(fakecloud.Fault{Mode: fakecloud.DropBeforeAccept})},
		{name: "node busy with another action", event: v1alpha1.ReasonProviderBusy,
			inject: func(t *testing.T, c *fakecloud.Cloud, id string) func() {
				// Long enough that the NodeAction meets it even after
				// waiting for the client-side rate limit.
				if err := c.Occupy(id, 8*time.Second); err != nil {
					t.Fatal(err)
				}
				return func() {}
			}},
		{name: "OpenScaler shutdown times out (408) while the VM goes down",
			providers: []v1alpha1.ProviderType{v1alpha1.ProviderOpenScaler}, action: "shutdown",
			vm:     func(vm *fakecloud.VM) { vm.ActionDuration = 7 * time.Second }, // longer than its 5s server-side wait
			inject: func(*testing.T, *fakecloud.Cloud, string) func() { return func() {} }},
		{name: "OpenScaler shutdown outlasts the request timeout while the VM goes down",
			providers: []v1alpha1.ProviderType{v1alpha1.ProviderOpenScaler}, action: "shutdown",
			// Still shutting down when the controller would look (settle time).
			vm:     func(vm *fakecloud.VM) { vm.ActionDuration = 10 * time.Second },
			inject: holdAnswer},
	}
}

// proxyErrorPage is what a load balancer answers when it gave up waiting.
const proxyErrorPage = `<html><head><title>503 Service Temporarily Unavailable</title></head>
<body><center><h1>503 Service Temporarily Unavailable</h1></center><hr><center>nginx</center></body></html>`

// hugeErrorPage is an error page of 1 MiB: status must stay writable.
var hugeErrorPage = "<html><body><pre>" + strings.Repeat("upstream stack trace line\n", 1<<20/26) + "</pre></body></html>"

// holdAnswer accepts the VM's next action and answers only well after the
// client's 2s request timeout.
func holdAnswer(t *testing.T, c *fakecloud.Cloud, id string) func() {
	f := c.InjectFault(fakecloud.Fault{PathContains: "/" + id + "/", ActionOnly: true, Times: 1, Mode: fakecloud.AcceptThenHold})
	go func() {
		select {
		case <-f.Held():
			time.Sleep(4 * time.Second)
		case <-time.After(time.Minute):
		}
		f.Release()
	}()
	return f.Release
}

// TestFaultMatrix runs each fault against each provider that can produce
// it, all at once through one manager: no duplicate actions, a terminal
// state within the deadline, and the fault's reason in the events. It runs
// in each fakecloud test world (FAKECLOUD_ADVERSARIAL=1, FAKECLOUD_SEED=N).
func TestFaultMatrix(t *testing.T) {
	t.Parallel()
	inEachWorld(t, runFaultMatrix)
}

func runFaultMatrix(t *testing.T, wc worldCloud) {
	cloud := wc.cloud
	ns := newNamespace(t)
	startManagerIn(t, ns)
	types := []v1alpha1.ProviderType{v1alpha1.ProviderDigitalOcean, v1alpha1.ProviderSenlin, v1alpha1.ProviderE2E, v1alpha1.ProviderCloudsFor, v1alpha1.ProviderOpenScaler}
	for _, typ := range types {
		createProviderAt(t, ns, string(typ), typ, wc.url)
	}
	type cell struct {
		fc  faultCase
		typ v1alpha1.ProviderType
		id  string
		na  *v1alpha1.NodeAction
	}
	var cells []*cell
	n := 0
	for _, fc := range faultCases() {
		for _, typ := range types {
			if fc.providers != nil && !containsType(fc.providers, typ) {
				continue
			}
			n++
			c := &cell{fc: fc, typ: typ, id: matrixIDs[typ](n)}
			vm := fakecloud.VM{ID: c.id, ActionDuration: 500 * time.Millisecond}
			if fc.vm != nil {
				fc.vm(&vm)
			}
			cloud.AddVM(vm)
			t.Cleanup(fc.inject(t, cloud, c.id))
			action := matrixAction[typ]
			if fc.action != "" {
				action = fc.action
			}
			c.na = nodeAction(ns, fmt.Sprintf("m%02d-%s", n, typ), string(typ), c.id, action)
			c.na.Spec.ActiveDeadlineSeconds = ptr.To(int64(90))
			cells = append(cells, c)
		}
	}
	for _, c := range cells {
		create(t, c.na)
	}
	var lines []string
	succeeded, duplicates, unknowable := 0, 0, 0
	for _, c := range cells {
		na := finished(t, c.na, 100*time.Second)
		accepted := cloud.AcceptedActions(c.id)
		// Where the adversary lost an answer (a proxy error, an answer held
		// past the client's timeout), a provider without action history
		// may honestly be unable to tell: SubmissionUnknown without a
		// duplicate is a right answer then, and the fault's own event may
		// never come.
		lost := cloud.LostAnswers(c.id) > 0
		// Likewise where the adversary dated an earlier action of the same
		// type on the VM within the clock skew the lookup allows: nothing
		// tells the two apart, and adopting either would be a guess.
		twin := cloud.LookAlikes(c.id, clockSkew+2*time.Second) > 0
		honestUnknown := (lost || twin) && na.Status.Phase == v1alpha1.PhaseFailed && readyReason(na) == v1alpha1.ReasonSubmissionUnknown && accepted <= 1
		switch {
		case na.Status.Phase == v1alpha1.PhaseSucceeded:
			succeeded++
		case honestUnknown:
			unknowable++
		}
		if accepted > 1 {
			duplicates++
		}
		lines = append(lines, fmt.Sprintf("%-58s %-12s %-9s %-17s accepted=%d", c.fc.name, c.typ, na.Status.Phase, readyReason(na), accepted))
		if accepted != 1 && !honestUnknown {
			t.Errorf("%s / %s: %d actions accepted on the VM, want 1 (no duplicate); what the cloud did:\n%s", c.fc.name, c.typ, accepted, cloud.Story(c.id))
		}
		if na.Status.Phase != v1alpha1.PhaseSucceeded && !honestUnknown {
			t.Errorf("%s / %s: ended %s (%s): %s; what the cloud did:\n%s", c.fc.name, c.typ, na.Status.Phase, readyReason(na), na.Status.Message, cloud.Story(c.id))
		}
		if c.fc.event != "" && !lost && !twin && !hasEvent(t, na, c.fc.event) {
			t.Errorf("%s / %s: no %s event; events: %s; what the cloud did:\n%s", c.fc.name, c.typ, c.fc.event, eventsOf(t, na), cloud.Story(c.id))
		}
		if l := longestMessage(t, na); l > maxMessage {
			t.Errorf("%s / %s: a message of %d bytes in status or events", c.fc.name, c.typ, l)
		}
	}
	sort.Strings(lines)
	t.Logf("fault matrix (%s): %d faults x providers: %d Succeeded within the deadline, %d SubmissionUnknown after an answer the world lost or beside a look-alike, %d duplicate actions\n%s",
		wc.world.Name, len(cells), succeeded, unknowable, duplicates, joinLines(lines))
}

// Where the API keeps no history, a lost answer for an action whose effect
// the VM does not show cannot be resolved: the NodeAction stops with
// SubmissionUnknown and a way to retry, and never posts again on its own.
func TestLostAnswerWithoutHistoryStopsForAPerson(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	startManagerIn(t, ns)
	for _, typ := range []v1alpha1.ProviderType{v1alpha1.ProviderE2E, v1alpha1.ProviderOpenScaler} {
		t.Run(string(typ), func(t *testing.T) {
			createProvider(t, ns, string(typ), typ)
			id := matrixIDs[typ](500)
			vm := fakecloud.VM{ID: id, ActionDuration: 300 * time.Millisecond}
			if typ == v1alpha1.ProviderE2E {
				e2eWorkflow(&vm)
			}
			cloud.AddVM(vm)
			cloud.InjectFault(fakecloud.Fault{PathContains: "/" + id + "/", ActionOnly: true, Times: 1, Mode: fakecloud.AcceptThenDrop})
			na := nodeAction(ns, string(typ)+"-reboot", string(typ), id, "reboot")
			create(t, na)
			finished(t, na, 30*time.Second)
			expectStalled(t, na, v1alpha1.ReasonSubmissionUnknown, "cannot tell whether attempt", v1alpha1.AnnotationRetrySubmission+"="+na.Status.AttemptID)
			if n := cloud.ActionCalls(id); n != 1 {
				t.Fatalf("%d action calls, want 1", n)
			}

			// A person checked the VM and asks for another submission.
			cur := &v1alpha1.NodeAction{}
			if err := k8s.Get(context.Background(), keyOf(na), cur); err != nil {
				t.Fatal(err)
			}
			attempt := cur.Status.AttemptID
			cur.Annotations = map[string]string{v1alpha1.AnnotationRetrySubmission: attempt}
			if err := k8s.Update(context.Background(), cur); err != nil {
				t.Fatal(err)
			}
			waitFor(t, na, 30*time.Second, "a new attempt to succeed", func(n *v1alpha1.NodeAction) bool {
				return n.Status.AttemptID != attempt && n.Status.Phase == v1alpha1.PhaseSucceeded
			})
			if n := cloud.ActionCalls(id); n != 2 {
				t.Fatalf("%d action calls after the requested retry, want 2", n)
			}
			// The annotation names an old attempt now: it does not trigger again.
			expectNoNewActionCalls(t, cloud, id, 2, 2*time.Second, "a retry annotation naming an old attempt")
		})
	}
}

// TestConnectionRefusedIsRetried points a Provider at a port that refuses
// connections for a while: nothing was sent, so the operator retries, and
// exactly one action is accepted once the port opens.
func TestConnectionRefusedIsRetried(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	startManagerIn(t, ns)
	fwd := newForwarder(t, strings.TrimPrefix(cloudURL, "http://"))
	p, s := providerFor(t, ns, "do", v1alpha1.ProviderDigitalOcean)
	p.Spec.Endpoint = "http://" + fwd.addr + "/digitalocean"
	create(t, s)
	create(t, p)
	cloud.AddVM(fakecloud.VM{ID: "9901"})
	fwd.setOpen(false)

	na := nodeAction(ns, "refused", "do", "9901", "reboot")
	create(t, na)
	waitFor(t, na, 20*time.Second, "a retry after a refused connection", func(n *v1alpha1.NodeAction) bool {
		return n.Status.Phase == v1alpha1.PhasePending && strings.Contains(n.Status.Message, "request not sent")
	})
	fwd.setOpen(true)
	finished(t, na, 30*time.Second)
	expectReady(t, na, v1alpha1.ReasonCompleted)
	if n := cloud.AcceptedActions("9901"); n != 1 {
		t.Fatalf("%d actions accepted, want 1", n)
	}
}

// longestMessage is the length of the longest message the NodeAction's
// status and events carry.
func longestMessage(t *testing.T, na *v1alpha1.NodeAction) int {
	t.Helper()
	n := len(na.Status.Message)
	for _, c := range na.Status.Conditions {
		n = max(n, len(c.Message))
	}
	list := &eventsv1.EventList{}
	if err := k8s.List(context.Background(), list, client.InNamespace(na.Namespace)); err != nil {
		t.Fatal(err)
	}
	for _, e := range list.Items {
		if e.Regarding.Name == na.Name {
			n = max(n, len(e.Note))
		}
	}
	return n
}

func hasEvent(t *testing.T, na *v1alpha1.NodeAction, reason string) bool {
	t.Helper()
	list := &eventsv1.EventList{}
	if err := k8s.List(context.Background(), list, client.InNamespace(na.Namespace)); err != nil {
		t.Fatal(err)
	}
	for _, e := range list.Items {
		if e.Regarding.Name == na.Name && e.Reason == reason {
			return true
		}
	}
	return false
}

func eventsOf(t *testing.T, na *v1alpha1.NodeAction) string {
	t.Helper()
	list := &eventsv1.EventList{}
	if err := k8s.List(context.Background(), list, client.InNamespace(na.Namespace)); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range list.Items {
		if e.Regarding.Name == na.Name {
			out = append(out, e.Reason+": "+e.Note)
		}
	}
	return strings.Join(out, " | ")
}

func containsType(list []v1alpha1.ProviderType, t v1alpha1.ProviderType) bool {
	for _, x := range list {
		if x == t {
			return true
		}
	}
	return false
}

// forwarder is a TCP port that forwards to target while open and refuses
// connections while closed.
type forwarder struct {
	t      *testing.T
	addr   string
	target string
	mu     sync.Mutex
	ln     net.Listener
}

func newForwarder(t *testing.T, target string) *forwarder {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &forwarder{t: t, addr: ln.Addr().String(), target: target, ln: ln}
	go f.serve(ln)
	t.Cleanup(func() { f.setOpen(false) })
	return f
}

func (f *forwarder) setOpen(open bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !open && f.ln != nil {
		_ = f.ln.Close()
		f.ln = nil
	}
	if open && f.ln == nil {
		ln, err := net.Listen("tcp", f.addr)
		if err != nil {
			f.t.Fatal(err)
		}
		f.ln = ln
		go f.serve(ln)
	}
}

func (f *forwarder) serve(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			u, _ := url.Parse("http://" + f.target)
			up, err := net.Dial("tcp", u.Host)
			if err != nil {
				return
			}
			defer up.Close()
			go func() { _, _ = io.Copy(up, c) }()
			_, _ = io.Copy(c, up)
		}()
	}
}
