package controllers

import (
	"context"
	"errors"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/nodeaction/nodeaction-operator/api/v1alpha1"
	"github.com/nodeaction/nodeaction-operator/internal/fakecloud"
	"github.com/nodeaction/nodeaction-operator/internal/shard"
)

// Sharding (docs/sharding.md): two managers against one API server, the
// unsharded one and --shard=blue, each acting on its own objects only, and
// a NodeAction relabelled from one to the other mid-action finishing in its
// new shard without a second provider call.

func mustShard(t *testing.T, name string) *shard.Shard {
	t.Helper()
	s, err := shard.Parse(name)
	if err != nil {
		t.Fatal(err)
	}
	return &s
}

// shardOf names the shard whose manager sent a request, from its User-Agent.
func shardOf(r fakecloud.Request) string {
	if _, rest, ok := strings.Cut(r.UserAgent, "(shard "); ok {
		name, _, _ := strings.Cut(rest, ")")
		return name
	}
	return ""
}

// watchShardCalls watches fakecloud's request log for window and fails at
// the first request about one of the VMs from a manager other than the
// VM's shard (want maps VM id to shard name; "none" for VMs nobody may
// touch), or at the first action call on a VM beyond calls[vm].
func watchShardCalls(t *testing.T, cloud *fakecloud.Cloud, want map[string]string, calls map[string]int, window time.Duration) {
	t.Helper()
	deadline := time.Now().Add(window)
	for {
		count := map[string]int{}
		for _, r := range cloud.Log() {
			owner, ours := want[r.VMID]
			if !ours {
				continue
			}
			if owner == "none" || shardOf(r) != owner {
				t.Fatalf("%s %s about VM %s came from shard %q (User-Agent %q); only shard %q may touch it",
					r.Method, r.Path, r.VMID, shardOf(r), r.UserAgent, owner)
			}
			if r.ActionCall {
				count[r.VMID]++
			}
		}
		for vm, n := range count {
			if n > calls[vm] {
				t.Fatalf("%d action calls on VM %s, want %d", n, vm, calls[vm])
			}
		}
		if time.Now().After(deadline) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func labelled(na *v1alpha1.NodeAction, shardName string) *v1alpha1.NodeAction {
	if shardName != "" {
		na.Labels = map[string]string{shard.Label: shardName}
	}
	return na
}

// privateCloud is a fakecloud of the test's own, so that other tests'
// requests neither show in its log nor count in theirs.
func privateCloud(t *testing.T) (*fakecloud.Cloud, string) {
	t.Helper()
	c := fakecloud.New(fakecloud.DefaultTestWorld().Apply(suiteCloudOptions()))
	srv := httptest.NewServer(c.Handler())
	t.Cleanup(srv.Close)
	return c, srv.URL
}

func TestShardsActOnTheirOwnObjectsOnly(t *testing.T) {
	t.Parallel()
	cloud, base := privateCloud(t)
	ns := newNamespace(t)
	startShardManager(t, ns, mustShard(t, ""))
	startShardManager(t, ns, mustShard(t, "blue"))

	// One Provider for both shards (a NodeAction may name any Provider of
	// its namespace), and one of a shard no manager serves: nobody probes it.
	createProviderAt(t, ns, "do", v1alpha1.ProviderDigitalOcean, base)
	p, s := providerAt(t, ns, "do-green", v1alpha1.ProviderDigitalOcean, base)
	p.Labels = map[string]string{shard.Label: "green"}
	create(t, s)
	create(t, p)

	const vmDefault, vmBlue, vmGreen = "8601", "8602", "8603"
	for _, vm := range []string{vmDefault, vmBlue, vmGreen} {
		cloud.AddVM(fakecloud.VM{ID: vm})
	}
	want := map[string]string{vmDefault: "", vmBlue: "blue", vmGreen: "none"}
	calls := map[string]int{vmDefault: 1, vmBlue: 1}
	unsharded := labelled(nodeAction(ns, "unsharded", "do", vmDefault, "reboot"), "")
	blue := labelled(nodeAction(ns, "blue", "do", vmBlue, "reboot"), "blue")
	green := labelled(nodeAction(ns, "green", "do", vmGreen, "reboot"), "green")
	for _, na := range []*v1alpha1.NodeAction{unsharded, blue, green} {
		create(t, na)
	}
	expectReady(t, finished(t, unsharded, 30*time.Second))
	expectReady(t, finished(t, blue, 30*time.Second))
	// Several poll intervals and a reconcile's worth of time: no shard
	// touches another's VM, and nobody the unserved shard's.
	watchShardCalls(t, cloud, want, calls, 3*time.Second)
	for vm, n := range calls {
		if got := cloud.ActionCalls(vm); got != n {
			t.Errorf("%d action calls on VM %s, want %d", got, vm, n)
		}
	}
	if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(green), green); err != nil {
		t.Fatal(err)
	}
	if green.Status.Phase != "" || len(green.Status.Conditions) != 0 {
		t.Errorf("a NodeAction of a shard no manager serves has status %+v", green.Status)
	}
	if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(p), p); err != nil {
		t.Fatal(err)
	}
	if len(p.Status.Conditions) != 0 {
		t.Errorf("a Provider of a shard no manager serves was probed: %+v", p.Status.Conditions)
	}
	shared := &v1alpha1.Provider{}
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "do"}, shared); err != nil {
		t.Fatal(err)
	}
	if c := condition(shared.Status.Conditions, v1alpha1.ConditionReady); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("the unlabelled Provider was not probed by the unsharded manager: %+v", shared.Status.Conditions)
	}
}

// relabel moves a NodeAction to another shard ("" removes the label).
func relabel(t *testing.T, na *v1alpha1.NodeAction, shardName string) {
	t.Helper()
	cur := &v1alpha1.NodeAction{}
	if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(na), cur); err != nil {
		t.Fatal(err)
	}
	patch := client.MergeFrom(cur.DeepCopy())
	if shardName == "" {
		delete(cur.Labels, shard.Label)
	} else {
		if cur.Labels == nil {
			cur.Labels = map[string]string{}
		}
		cur.Labels[shard.Label] = shardName
	}
	if err := k8s.Patch(context.Background(), cur, patch); err != nil {
		t.Fatal(err)
	}
}

// A NodeAction relabelled while its action runs at the provider leaves its
// shard, and the shard it moves to follows the action from status to its
// end: one provider call in all, and the old shard touches the VM no more.
func TestRelabelledNodeActionMovesWithoutASecondCall(t *testing.T) {
	t.Parallel()
	cloud, base := privateCloud(t)
	ns := newNamespace(t)
	startShardManager(t, ns, mustShard(t, ""))
	startShardManager(t, ns, mustShard(t, "blue"))

	for _, tc := range []struct{ vm, from, to string }{{"8611", "", "blue"}, {"8612", "blue", ""}} {
		// A Provider per case, so each manager follows the action with its
		// own GETs (a fleet sweep would not name the VM).
		createProviderAt(t, ns, "do-"+tc.vm, v1alpha1.ProviderDigitalOcean, base)
		cloud.AddVM(fakecloud.VM{ID: tc.vm, ActionDuration: 3 * time.Second})
		na := labelled(nodeAction(ns, "move-"+tc.vm, "do-"+tc.vm, tc.vm, "reboot"), tc.from)
		create(t, na)
		running := waitFor(t, na, 20*time.Second, "the action accepted and running", func(n *v1alpha1.NodeAction) bool {
			return n.Status.Phase == v1alpha1.PhaseRunning && n.Status.ProviderActionID != ""
		})
		actionPath := "/actions/" + running.Status.ProviderActionID
		if n := cloud.ActionCalls(tc.vm); n != 1 {
			t.Fatalf("%d action calls on VM %s before the move, want 1", n, tc.vm)
		}
		moved := len(cloud.Log())
		relabel(t, na, tc.to)
		got := finished(t, na, 30*time.Second)
		expectReady(t, got, v1alpha1.ReasonCompleted)
		// The new shard followed the action from status, the old one let go
		// of it (a poll it had under way may land before the new shard's
		// first), and nobody called again.
		followed := false
		for _, r := range cloud.Log()[moved:] {
			if r.VMID != tc.vm && !strings.HasSuffix(r.Path, actionPath) {
				continue
			}
			if r.ActionCall {
				t.Fatalf("an action call on VM %s after the move, from shard %q", tc.vm, shardOf(r))
			}
			switch shardOf(r) {
			case tc.to:
				followed = true
			case tc.from:
				if followed {
					t.Errorf("shard %q still read %s after shard %q took it over", tc.from, r.Path, tc.to)
				}
			}
		}
		if !followed {
			t.Errorf("shard %q never read action %s after the move", tc.to, running.Status.ProviderActionID)
		}
		expectNoNewActionCalls(t, cloud, tc.vm, 1, 2*time.Second, "after the move")
	}
}

// The race a relabel opens for a submission that waits for its request
// slot: the old shard's cache may learn of the move late, while the new
// shard already sees the NodeAction. Whichever shard gets there first, the
// attempt is sent once. Unit test: the "API server" is a fake client, the
// old shard's late cache another one holding the object as it was.
func TestRelabelWhileWaitingForTheSlot(t *testing.T) {
	for _, newShardFirst := range []bool{true, false} {
		name := map[bool]string{true: "new shard acts before the slot", false: "slot comes before the new shard acts"}[newShardFirst]
		t.Run(name, func(t *testing.T) {
			u := newUnit(t, unitAction("reboot"), nil)
			u.r.Shard = mustShard(t, "")
			slot := unitStart.Add(10 * time.Second)
			u.drivers.slot = slot
			_, na := u.reconcile()
			if s, _, _ := u.driver.calls(); s != 0 || na.Status.Phase != v1alpha1.PhaseSubmitting || readyReason(na) != v1alpha1.ReasonRateLimited {
				t.Fatalf("%d submissions, phase %s, reason %s; want the intent recorded and the call waiting for its slot", s, na.Status.Phase, readyReason(na))
			}
			p := &v1alpha1.Provider{}
			if err := u.client.Get(context.Background(), client.ObjectKey{Namespace: "ns", Name: "p"}, p); err != nil {
				t.Fatal(err)
			}
			lateCache := fake.NewClientBuilder().WithScheme(testScheme).WithObjects(na.DeepCopy(), p).WithStatusSubresource(&v1alpha1.NodeAction{}).
				WithIndex(&v1alpha1.NodeAction{}, indexNodeID, func(o client.Object) []string { return []string{o.(*v1alpha1.NodeAction).Spec.NodeID} }).
				Build()

			na.Labels = map[string]string{shard.Label: "blue"}
			if err := u.client.Update(context.Background(), na); err != nil {
				t.Fatal(err)
			}
			blueClock := clocktesting.NewFakeClock(unitStart.Add(time.Second))
			blue := &NodeActionReconciler{Client: u.client, APIReader: u.client, Drivers: &fakeDrivers{driver: u.driver},
				Recorder: u.events, Clock: blueClock, Shard: mustShard(t, "blue")}
			blueReconcile := func() ctrl.Result {
				t.Helper()
				res, err := blue.Reconcile(context.Background(), ctrl.Request{NamespacedName: u.key})
				if err != nil {
					t.Fatal(err)
				}
				return res
			}
			if newShardFirst {
				// Ten seconds before the slot: the attempt has not left and
				// cannot, so the new shard submits at once.
				blueReconcile()
				if s, _, _ := u.driver.calls(); s != 1 {
					t.Fatalf("%d submissions by the new shard, want 1", s)
				}
			}

			// The old shard's slot comes; its cache has not seen the move.
			u.r.Client = lateCache
			u.clock.SetTime(slot)
			u.reconcile()
			if s, _, _ := u.driver.calls(); s != map[bool]int{true: 1, false: 0}[newShardFirst] {
				t.Fatalf("%d submissions after the old shard's slot came: it sent for a NodeAction it no longer serves", s)
			}

			if !newShardFirst {
				// Now the new shard: the slot has come, so it cannot know the
				// attempt did not leave; it waits for the attempt's deadline,
				// asks the provider, and submits when it was not accepted.
				blueClock.SetTime(slot)
				res := blueReconcile()
				if s, _, l := u.driver.calls(); s != 0 || l != 0 {
					t.Fatalf("%d submissions, %d lookups before the attempt's deadline", s, l)
				}
				blueClock.Step(res.RequeueAfter)
				blueReconcile()
				if s, _, l := u.driver.calls(); s != 1 || l != 1 {
					t.Fatalf("%d submissions, %d lookups; want one lookup, then one submission", s, l)
				}
			}
			if got := u.get(); got.Status.Phase != v1alpha1.PhaseRunning {
				t.Errorf("phase %s, want Running", got.Status.Phase)
			}
		})
	}
}

// A sharded manager's cache holds only its shard's NodeActions; the order
// on a node holds across shards all the same.
func TestNodeOrderHoldsAcrossShards(t *testing.T) {
	earlier := unitAction("reboot")
	earlier.Name, earlier.UID = "earlier", "0f1e2d3c-0000-4000-8000-000000000002"
	earlier.Namespace, earlier.Generation = "ns", 1
	earlier.CreationTimestamp = metav1.NewTime(unitStart.Add(-time.Minute))
	later := labelled(unitAction("reboot"), "blue")
	later.CreationTimestamp = metav1.NewTime(unitStart)
	cacheOfBlue := cacheOfShard("blue")
	for _, sharded := range []bool{false, true} {
		u := newUnit(t, later.DeepCopy(), cacheOfBlue, earlier.DeepCopy())
		if sharded {
			u.r.Shard = mustShard(t, "blue")
		}
		_, na := u.reconcile()
		s, _, _ := u.driver.calls()
		switch {
		case sharded && (s != 0 || readyReason(na) != v1alpha1.ReasonNodeBusy || !strings.Contains(na.Status.Message, "earlier")):
			t.Errorf("sharded: %d submissions, reason %s (%q); want it to wait for the other shard's earlier NodeAction", s, readyReason(na), na.Status.Message)
		case !sharded && s != 1:
			// Without Shard the reconciler trusts its cache: this is what
			// the API server read is for.
			t.Errorf("unsharded reconciler over a shard's cache: %d submissions, want 1 (the test's cache does hide the other)", s)
		}
	}
}

// What other shards own in a namespace decides whether a submission asks
// the API server for every shard's NodeActions on its VM (a field selector
// the API server answers by scanning the namespace: with many NodeActions,
// what each submission cost most). Where the metadata of other shards'
// NodeActions shows none in the namespace, the manager's cache holds all
// this one can wait for: no read. Where it shows some, the read is made
// and the order on the node holds.
func TestOtherShardsDecideTheAPIRead(t *testing.T) {
	for _, othersThere := range []bool{false, true} {
		later := labelled(unitAction("reboot"), "blue")
		later.CreationTimestamp = metav1.NewTime(unitStart)
		var objs []client.Object
		var otherNames []string
		if othersThere {
			earlier := unitAction("reboot")
			earlier.Name, earlier.UID = "earlier", "0f1e2d3c-0000-4000-8000-000000000002"
			earlier.Namespace, earlier.Generation = "ns", 1
			earlier.CreationTimestamp = metav1.NewTime(unitStart.Add(-time.Minute))
			objs, otherNames = append(objs, earlier), []string{"earlier"}
		}
		u := newUnit(t, later, cacheOfShard("blue"), objs...)
		u.r.Shard = mustShard(t, "blue")
		api := &countingReader{Reader: u.r.APIReader}
		u.r.APIReader = api
		u.r.OtherShards = otherShardsMetadata(otherNames)
		_, na := u.reconcile()
		s, _, _ := u.driver.calls()
		switch {
		case othersThere && (api.lists != 1 || s != 0 || readyReason(na) != v1alpha1.ReasonNodeBusy):
			t.Errorf("another shard's earlier NodeAction in the namespace: %d API lists, %d submissions, reason %s; want 1 list and a wait (NodeBusy)", api.lists, s, readyReason(na))
		case !othersThere && (api.lists != 0 || s != 1):
			t.Errorf("no other shard's NodeAction in the namespace: %d API lists, %d submissions; want no list and the submission", api.lists, s)
		}
	}
}

// apiReader is the unit's read around the cache: the same objects, its
// lists marked so cacheOfShard leaves them whole.
type apiReader struct{ client.Reader }

func (r apiReader) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	return r.Reader.List(ctx, list, append(opts, aroundCache{})...)
}

// aroundCache marks a List made around the cache.
type aroundCache struct{}

func (aroundCache) ApplyToList(*client.ListOptions) {}

// countingReader counts the lists made through it.
type countingReader struct {
	client.Reader
	lists int
}

func (r *countingReader) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	r.lists++
	return r.Reader.List(ctx, list, opts...)
}

// otherShardsMetadata is the metadata cache of other shards' NodeActions,
// holding the named ones in namespace "ns".
type otherShardsMetadata []string

func (o otherShardsMetadata) Get(context.Context, client.ObjectKey, client.Object, ...client.GetOption) error {
	return errors.New("not used")
}

func (o otherShardsMetadata) List(_ context.Context, list client.ObjectList, opts ...client.ListOption) error {
	lo := (&client.ListOptions{}).ApplyOptions(opts)
	l := list.(*metav1.PartialObjectMetadataList)
	for _, name := range o {
		if lo.Namespace == "" || lo.Namespace == "ns" {
			l.Items = append(l.Items, metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name}})
		}
	}
	return nil
}

// cacheOfShard makes a unit test's client answer as a shard's cache: a
// List of NodeActions through it sees the shard's NodeActions only (a read
// around the cache, through the unit's APIReader, sees them all).
func cacheOfShard(name string) *interceptor.Funcs {
	return &interceptor.Funcs{List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
		if err := c.List(ctx, list, opts...); err != nil {
			return err
		}
		if l, ok := list.(*v1alpha1.NodeActionList); ok && !slices.Contains(opts, client.ListOption(aroundCache{})) {
			kept := l.Items[:0]
			for _, o := range l.Items {
				if o.Labels[shard.Label] == name {
					kept = append(kept, o)
				}
			}
			l.Items = kept
		}
		return nil
	}}
}
