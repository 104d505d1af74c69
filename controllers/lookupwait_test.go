package controllers

// A NodeAction in Submitting whose
// lookup is waiting out the records lag (the provider does not show the
// lost attempt yet) while (1) the credentials are rotated and the old ones
// revoked at the provider, or (2) the manager process is SIGKILLed and
// started again. Expected: one accepted provider call, Succeeded only with
// a provider action, the lookup goes on with the new credentials, no
// credential in status, events or the manager's log.
//
// Run (envtest, builds the manager binary):
//   KUBEBUILDER_ASSETS=$PWD/bin/k8s go test ./controllers -run 'TestLookupWait' -count=1 -timeout 15m -v

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodeaction/nodeaction-operator/api/v1alpha1"
	"github.com/nodeaction/nodeaction-operator/internal/fakecloud"
)

// lookupWaitLag is the manager's --provider-records-lag here: long enough to
// rotate credentials or kill the manager while a lookup waits it out.
const lookupWaitLag = 15 * time.Second

type lookupWaitCase struct {
	name   string
	typ    v1alpha1.ProviderType
	vm     string
	action string
	fault  fakecloud.Fault
	opts   fakecloud.Options
	// sent: the lost call reached the provider (the lookup must adopt it);
	// else the lookup must conclude "not sent" only after the lag.
	sent bool
}

func lookupWaitCases(n int) []lookupWaitCase {
	drop := fakecloud.Fault{Mode: fakecloud.DropBeforeAccept}
	return []lookupWaitCase{
		{name: "cloudsfor-dropped", typ: v1alpha1.ProviderCloudsFor, vm: fmt.Sprintf("c0ffee%026d", 4000+n), action: "power_off", fault: drop},
		{name: "openscaler-dropped", typ: v1alpha1.ProviderOpenScaler, vm: fmt.Sprintf("os-%d", 4000+n), action: "power_off", fault: drop},
		{name: "e2e-dropped", typ: v1alpha1.ProviderE2E, vm: fmt.Sprint(40000 + n), action: "power_off", fault: drop},
		// Accepted, answer lost, and E2E starts the workflow only 12 s
		// later: the lookup sees nothing for a while, then the node moving.
		{name: "e2e-accepted-late-workflow", typ: v1alpha1.ProviderE2E, vm: fmt.Sprint(40100 + n), action: "power_off", sent: true,
			fault: fakecloud.Fault{Mode: fakecloud.AcceptThenFail, Status: 503, Body: proxyErrorPage},
			opts:  fakecloud.Options{E2EWorkflowDelay: 12 * time.Second}},
		// The request reaches CloudsFor 9 s after it left (a proxy
		// forwarding late): it lands while the lookup waits.
		{name: "cloudsfor-forwarded-late", typ: v1alpha1.ProviderCloudsFor, vm: fmt.Sprintf("c0ffee%026d", 4100+n), action: "power_off", sent: true,
			fault: fakecloud.Fault{Mode: fakecloud.ForwardLate, Latency: 9 * time.Second}},
	}
}

// lookupWaitEnv is one case's world: its own fakecloud, namespace, Provider
// and one NodeAction, driven by a manager process.
type lookupWaitEnv struct {
	t          *testing.T
	c          lookupWaitCase
	cloud      *fakecloud.Cloud
	ns         string
	kubeconfig string
	secret     *corev1.Secret
	data       map[string]string // the Secret's data as created
	na         *v1alpha1.NodeAction
	proc       *managerProcess
	logs       []string // output of managers already stopped
	old, new   fakecloud.Credentials
}

func newLookupWaitEnv(t *testing.T, c lookupWaitCase) *lookupWaitEnv {
	cloud, url := cloudOfItsOwn(t, c.opts)
	e := &lookupWaitEnv{t: t, c: c, cloud: cloud, ns: newNamespace(t), kubeconfig: writeKubeconfig(t),
		old: fakecloud.DefaultCredentials()}
	e.new = rotate(e.old)
	e.new.E2EAPIKey += "rotated"
	p, s := providerAt(t, e.ns, "p", c.typ, url)
	e.data = map[string]string{}
	for k, v := range s.StringData {
		e.data[k] = v
	}
	create(t, s)
	create(t, p)
	e.secret = s
	cloud.AddVM(fakecloud.VM{ID: c.vm, ActionDuration: 500 * time.Millisecond})
	f := c.fault
	f.PathContains, f.ActionOnly, f.Times = "/"+c.vm+"/", true, 1
	cloud.InjectFault(f)
	e.start()
	e.na = nodeAction(e.ns, "na", "p", c.vm, c.action)
	create(t, e.na)
	return e
}

func (e *lookupWaitEnv) start() {
	e.proc = startManagerProcess(e.t, e.kubeconfig, "--watch-namespace="+e.ns, "--provider-records-lag="+lookupWaitLag.String())
}

func (e *lookupWaitEnv) kill() {
	e.proc.kill()
	e.logs = append(e.logs, e.proc.out.String())
}

// waitingOutTheLag waits until the lookup says it is waiting for the
// provider's records.
func (e *lookupWaitEnv) waitingOutTheLag() {
	waitFor(e.t, e.na, 40*time.Second, "the lookup to wait out the records lag", func(n *v1alpha1.NodeAction) bool {
		return n.Status.Phase == v1alpha1.PhaseSubmitting && strings.Contains(n.Status.Message, "looking again until")
	})
	e.t.Logf("waiting out the lag: %q", e.na.Status.Message)
}

// revoke makes the provider accept only the new credentials.
func (e *lookupWaitEnv) revoke() { e.cloud.SetCredentials(e.new) }

// updateSecret puts the new credentials in the Secret.
func (e *lookupWaitEnv) updateSecret() {
	cur := &corev1.Secret{}
	if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(e.secret), cur); err != nil {
		e.t.Fatal(err)
	}
	data := rotatedSecret(e.data, e.old, e.new)
	if v, ok := data["apiKey"]; ok && v == e.old.E2EAPIKey {
		data["apiKey"] = e.new.E2EAPIKey
	}
	cur.Data, cur.StringData = nil, data
	if err := k8s.Update(context.Background(), cur); err != nil {
		e.t.Fatal(err)
	}
}

// check waits for the end and checks the promise.
func (e *lookupWaitEnv) check() {
	t := e.t
	na := finished(t, e.na, 120*time.Second)
	time.Sleep(time.Second)
	accepted, calls := e.cloud.AcceptedActions(e.c.vm), e.cloud.ActionCalls(e.c.vm)
	var times []string
	var first, last time.Time
	for _, r := range e.cloud.Log() {
		if r.ActionCall && r.VMID == e.c.vm {
			times = append(times, fmt.Sprintf("%s status=%d accepted=%v", r.Time.Format("15:04:05.000"), r.Status, r.Accepted))
			if first.IsZero() {
				first = r.Time
			}
			last = r.Time
		}
	}
	unauthorized := e.cloud.CountRequests(func(r fakecloud.Request) bool { return r.Status == http.StatusUnauthorized })
	t.Logf("%s: phase %s reason %s attempts %d action %q; action calls %d (accepted %d): %v; 401 answers: %d\nmessage: %s",
		e.c.name, na.Status.Phase, readyReason(na), na.Status.Attempts, na.Status.ProviderActionID, calls, accepted, times, unauthorized, na.Status.Message)
	if accepted != 1 {
		t.Errorf("%d actions accepted on %s, want exactly 1", accepted, e.c.vm)
	}
	if na.Status.Phase != v1alpha1.PhaseSucceeded {
		t.Errorf("phase %s reason %s (%q), want Succeeded", na.Status.Phase, readyReason(na), na.Status.Message)
	}
	if na.Status.Phase == v1alpha1.PhaseSucceeded && accepted == 0 {
		t.Errorf("Succeeded without any provider action")
	}
	if e.c.sent && calls != 1 {
		t.Errorf("the lost call reached the provider, yet %d action calls were made", calls)
	}
	if !e.c.sent && calls == 2 && last.Sub(first) < lookupWaitLag {
		t.Errorf("sent again %s after the lost call: before the records lag (%s) was over", last.Sub(first), lookupWaitLag)
	}
	e.noCredentialsShown(na)
}

// noCredentialsShown looks for every credential value, old and new, in the
// NodeAction, the Provider, the namespace's events and the managers' output.
func (e *lookupWaitEnv) noCredentialsShown(na *v1alpha1.NodeAction) {
	t := e.t
	var secrets []string
	for _, c := range []fakecloud.Credentials{e.old, e.new} {
		secrets = append(secrets, c.CloudsForPassword, c.OpenScalerToken, c.E2EToken, c.E2EAPIKey,
			base64.StdEncoding.EncodeToString([]byte(c.CloudsForUser+":"+c.CloudsForPassword)))
	}
	st, _ := json.Marshal(na.Status)
	p := &v1alpha1.Provider{}
	_ = k8s.Get(context.Background(), client.ObjectKey{Namespace: e.ns, Name: "p"}, p)
	ps, _ := json.Marshal(p.Status)
	evs := &eventsv1.EventList{}
	if err := k8s.List(context.Background(), evs, client.InNamespace(e.ns)); err != nil {
		t.Fatal(err)
	}
	var notes []string
	for _, ev := range evs.Items {
		notes = append(notes, ev.Reason+": "+ev.Note)
	}
	corev1evs := &corev1.EventList{}
	_ = k8s.List(context.Background(), corev1evs, client.InNamespace(e.ns))
	for _, ev := range corev1evs.Items {
		notes = append(notes, ev.Reason+": "+ev.Message)
	}
	logs := strings.Join(append(e.logs, e.proc.out.String()), "\n")
	places := map[string]string{"NodeAction status": string(st), "Provider status": string(ps), "events": strings.Join(notes, "\n"), "manager log": logs}
	for where, text := range places {
		for _, s := range secrets {
			if s != "" && strings.Contains(text, s) {
				t.Errorf("a credential value (%d chars) is in the %s", len(s), where)
			}
		}
	}
	t.Logf("events:\n  %s", strings.Join(notes, "\n  "))
}

// Credentials rotated: the provider revokes the old credentials while the lookup
// waits; the Secret gets the new ones only 8 s later.
func TestLookupWaitRevokeThenSecret(t *testing.T) {
	t.Parallel()
	eachLookupWait(t, 20, false, func(t *testing.T, e *lookupWaitEnv) {
		e.revoke()
		waitFor(t, e.na, 30*time.Second, "the refusal to show", func(n *v1alpha1.NodeAction) bool {
			return readyReason(n) == v1alpha1.ReasonCredentialsRejected || n.Status.Phase.Finished()
		})
		if e.na.Status.Phase.Finished() {
			t.Fatalf("ended %s/%s while its credentials were refused: %q", e.na.Status.Phase, readyReason(e.na), e.na.Status.Message)
		}
		time.Sleep(8 * time.Second)
		e.updateSecret()
		e.check()
	})
}

// Killed: the manager is SIGKILLed while the lookup waits out the
// records lag, and started again 3 s later.
func TestLookupWaitKill(t *testing.T) {
	t.Parallel()
	eachLookupWait(t, 30, true, func(t *testing.T, e *lookupWaitEnv) {
		e.kill()
		time.Sleep(3 * time.Second)
		e.start()
		// and once more, if it is still waiting
		time.Sleep(4 * time.Second)
		if n := e.na; k8s.Get(context.Background(), client.ObjectKeyFromObject(n), n) == nil && n.Status.Phase == v1alpha1.PhaseSubmitting {
			e.kill()
			e.start()
		}
		e.check()
	})
}

// Both: killed while the lookup waits; the credentials are rotated
// (revoked, Secret updated) while no manager runs.
func TestLookupWaitKillAndRotate(t *testing.T) {
	t.Parallel()
	eachLookupWait(t, 40, false, func(t *testing.T, e *lookupWaitEnv) {
		e.kill()
		e.revoke()
		e.updateSecret()
		time.Sleep(2 * time.Second)
		e.start()
		e.check()
	})
}

// eachLookupWait runs do, in parallel, on each case's world once its
// lookup waits out the records lag. The cases' VM ids start at n. Without
// late, a request forwarded late is left out: it carries the old
// credentials, which a rotation revokes before it lands.
func eachLookupWait(t *testing.T, n int, late bool, do func(*testing.T, *lookupWaitEnv)) {
	for _, c := range lookupWaitCases(n) {
		if c.fault.Mode == fakecloud.ForwardLate && !late {
			continue
		}
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := newLookupWaitEnv(t, c)
			e.waitingOutTheLag()
			do(t, e)
		})
	}
}
