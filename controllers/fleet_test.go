package controllers

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nodeaction/nodeaction-operator/api/v1alpha1"
	"github.com/nodeaction/nodeaction-operator/internal/fakecloud"
	"github.com/nodeaction/nodeaction-operator/internal/provider"
)

// Many DigitalOcean actions in flight are followed through shared sweeps of
// the account's action list, not one GET per action.
func TestFleetPollingSharesSweeps(t *testing.T) {
	ns := newNamespace(t)
	startManagerIn(t, ns)
	createProvider(t, ns, "do", v1alpha1.ProviderDigitalOcean)
	const n = 30
	before := len(cloud.Log())
	for i := 0; i < n; i++ {
		id := fmt.Sprint(12000 + i)
		cloud.AddVM(fakecloud.VM{ID: id, ActionDuration: 6 * time.Second})
		create(t, nodeAction(ns, fmt.Sprintf("fleet-%02d", i), "do", id, "reboot"))
	}
	for i := 0; i < n; i++ {
		na := finished(t, nodeAction(ns, fmt.Sprintf("fleet-%02d", i), "", "", ""), 60*time.Second)
		expectReady(t, na, v1alpha1.ReasonCompleted)
	}
	posts, singleGets, sweeps := 0, 0, 0
	for _, r := range cloud.Log()[before:] {
		switch {
		case r.Skin != "digitalocean":
		case r.ActionCall:
			posts++
		case r.Method == "GET" && r.Path == "/digitalocean/v2/actions":
			sweeps++
		case r.Method == "GET" && len(r.Path) > len("/digitalocean/v2/actions/"):
			singleGets++
		}
	}
	t.Logf("fleet polling: %d DigitalOcean actions of 6s: %d POSTs, %d list sweeps, %d single action GETs", n, posts, sweeps, singleGets)
	if posts != n {
		t.Fatalf("%d POSTs, want %d", posts, n)
	}
	if sweeps == 0 || singleGets+sweeps > n/2 {
		t.Fatalf("polling used %d sweeps and %d single GETs for %d actions: want shared sweeps, well under one request per action", sweeps, singleGets, n)
	}
}

// Every provider's fleet shares sweeps of its own list: CloudsFor's global
// actions, Senlin's project actions, E2E's nodes and OpenScaler's VMs
// (DigitalOcean's above), each action read far less than once a poll.
func TestFleetPollingSharesSweepsOnEveryProvider(t *testing.T) {
	cases := []struct {
		typ    v1alpha1.ProviderType
		action string
		id     func(i int) string
	}{
		{v1alpha1.ProviderCloudsFor, "reboot", func(i int) string { return fmt.Sprintf("%032x", 0xf1ee7<<20+i) }},
		{v1alpha1.ProviderSenlin, "reboot", func(i int) string { return fmt.Sprintf("f1ee7000-0000-4000-8000-%012d", i) }},
		{v1alpha1.ProviderE2E, "power_off", func(i int) string { return fmt.Sprint(913000 + i) }},
		// A shutdown longer than OpenScaler's timeout: answered 408 while
		// the guest goes on, then followed until the VM is off.
		{v1alpha1.ProviderOpenScaler, "shutdown", func(i int) string { return fmt.Sprintf("fleet-%d", i) }},
	}
	for _, c := range cases {
		t.Run(string(c.typ), func(t *testing.T) {
			t.Parallel()
			ns := newNamespace(t)
			startManagerIn(t, ns)
			createProvider(t, ns, "p", c.typ)
			const n = 12
			for i := range n {
				cloud.AddVM(fakecloud.VM{ID: c.id(i), ActionDuration: 6 * time.Second})
			}
			before := len(cloud.Log())
			for i := range n {
				create(t, nodeAction(ns, fmt.Sprintf("fleet-%02d", i), "p", c.id(i), c.action))
			}
			for i := range n {
				na := finished(t, nodeAction(ns, fmt.Sprintf("fleet-%02d", i), "", "", ""), 60*time.Second)
				if na.Status.Phase != v1alpha1.PhaseSucceeded {
					t.Fatalf("%s: %s, %+v", na.Name, na.Status.Phase, condition(na.Status.Conditions, v1alpha1.ConditionReady))
				}
			}
			calls, reads := 0, 0
			for _, r := range cloud.Log()[before:] {
				switch {
				case r.Skin != string(c.typ):
				case r.ActionCall:
					calls++
				default:
					reads++
				}
			}
			// Each action runs 6s and is polled at least every 2s by its
			// schedule: one by one, several reads each. Shared, a sweep
			// every sweepInterval answers them all.
			t.Logf("%s: %d %s actions of 6s: %d action calls, %d reads", c.typ, n, c.action, calls, reads)
			if calls != n {
				t.Errorf("%d action calls, want %d", calls, n)
			}
			if reads > n/2 {
				t.Errorf("%d reads for %d actions in flight: want shared sweeps, well under one read per action", reads, n)
			}
		})
	}
}

// Actions that arrive one by one (a NodeActionSet's members) join the
// shared sweeps too: an action the last sweep did not look for waits for
// the next one instead of a GET of its own.
func TestFleetPollingSharesSweepsWithActionsArrivingOneByOne(t *testing.T) {
	ns := newNamespace(t)
	startManagerIn(t, ns)
	createProvider(t, ns, "do", v1alpha1.ProviderDigitalOcean)
	const n = 24
	before := len(cloud.Log())
	for i := 0; i < n; i++ {
		id := fmt.Sprint(12100 + i)
		cloud.AddVM(fakecloud.VM{ID: id, ActionDuration: 4 * time.Second})
		create(t, nodeAction(ns, fmt.Sprintf("arriving-%02d", i), "do", id, "reboot"))
		time.Sleep(250 * time.Millisecond)
	}
	for i := 0; i < n; i++ {
		na := finished(t, nodeAction(ns, fmt.Sprintf("arriving-%02d", i), "", "", ""), 60*time.Second)
		expectReady(t, na, v1alpha1.ReasonCompleted)
	}
	singleGets, sweeps := 0, 0
	for _, r := range cloud.Log()[before:] {
		switch {
		case r.Skin != "digitalocean" || r.ActionCall:
		case r.Method == "GET" && r.Path == "/digitalocean/v2/actions":
			sweeps++
		case r.Method == "GET" && len(r.Path) > len("/digitalocean/v2/actions/"):
			singleGets++
		}
	}
	t.Logf("fleet polling: %d DigitalOcean actions of 4s, one every 250ms: %d list sweeps, %d single action GETs", n, sweeps, singleGets)
	if singleGets > n/6 {
		t.Errorf("%d single GETs for %d actions arriving one by one: the sweeps should follow them", singleGets, n)
	}
}

// batchDriver is a fakeDriver that can also sweep.
type batchDriver struct {
	*fakeDriver
	sweeps int
}

func (d *batchDriver) StatusBatch(_ context.Context, subs []provider.Submission) ([]provider.ActionStatus, error) {
	d.sweeps++
	out := make([]provider.ActionStatus, len(subs))
	for i, s := range subs {
		out[i], _ = d.Status(context.Background(), s)
	}
	return out, nil
}

// An action seen finished by its own read leaves the poller: the next
// lone action is read directly (within a pollInterval of its end), not
// through sweeps spaced sweepInterval apart because a finished one still
// counted as in flight.
func TestFinishedActionLeavesTheFleetPoller(t *testing.T) {
	d := &batchDriver{fakeDriver: &fakeDriver{}}
	done := map[string]bool{}
	d.status = func(s provider.Submission) (provider.ActionStatus, error) {
		if done[s.ActionID] {
			return provider.ActionStatus{State: provider.StateSucceeded}, nil
		}
		return provider.ActionStatus{State: provider.StateInProgress}, nil
	}
	var f fleetPoller
	now := unitStart
	first := provider.Submission{ActionID: "1001"}
	if _, err := f.status(context.Background(), "p", d, first, now, time.Second); err != nil {
		t.Fatal(err)
	}
	done["1001"] = true
	now = now.Add(30 * time.Second)
	if st, _ := f.status(context.Background(), "p", d, first, now, time.Second); st.State != provider.StateSucceeded {
		t.Fatalf("first action: %s, want succeeded", st.State)
	}
	second := provider.Submission{ActionID: "1002"}
	for range 3 {
		now = now.Add(2 * time.Second)
		if _, err := f.status(context.Background(), "p", d, second, now, time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if _, statuses, _ := d.calls(); d.sweeps != 0 || statuses != 5 {
		t.Fatalf("%d sweeps and %d reads of their own for two lone actions, want 0 and 5", d.sweeps, statuses)
	}
}

// Where the API gives no action id (OpenScaler, E2E's VMs), sweeps tell
// submissions apart by VM, action and start: each NodeAction gets its own
// VM's answer, and a retried action on the same VM never reads the answer
// swept for the attempt before it.
func TestFleetPollerTellsApartSubmissionsWithoutActionIDs(t *testing.T) {
	d := &batchDriver{fakeDriver: &fakeDriver{}}
	d.status = func(s provider.Submission) (provider.ActionStatus, error) {
		return provider.ActionStatus{State: provider.StateInProgress, Message: fmt.Sprintf("%s %s @%d", s.NodeID, s.Action, s.StartedAt.Unix())}, nil
	}
	var f fleetPoller
	now := unitStart
	f.clock = func() time.Time { return now }
	sub := func(vm string, started time.Time) provider.Submission {
		return provider.Submission{Request: provider.Request{NodeID: vm, Action: "shutdown"}, StartedAt: started}
	}
	a1, b1, c1 := sub("a", now), sub("b", now), sub("c", now)
	for _, s := range []provider.Submission{a1, b1, c1} {
		if _, err := f.status(context.Background(), "p", d, s, now, time.Second); err != nil && !errors.Is(err, errAwaitingSweep) {
			t.Fatal(err)
		}
	}
	now = now.Add(6 * time.Second)
	for _, s := range []provider.Submission{a1, b1, c1} {
		st, err := f.status(context.Background(), "p", d, s, now, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("%s shutdown @%d", s.NodeID, s.StartedAt.Unix()); st.Message != want {
			t.Errorf("VM %s read %q, want its own answer %q", s.NodeID, st.Message, want)
		}
	}
	// VM a's action is tried again: a new submission on the same VM.
	now = now.Add(time.Second)
	a2 := sub("a", now)
	st, err := f.status(context.Background(), "p", d, a2, now, time.Second)
	if err != nil && !errors.Is(err, errAwaitingSweep) {
		t.Fatal(err)
	}
	if err == nil && st.Message == fmt.Sprintf("a shutdown @%d", a1.StartedAt.Unix()) {
		t.Fatalf("the retried action read the answer swept for the attempt before it: %q", st.Message)
	}
	if d.sweeps == 0 {
		t.Fatal("three actions in flight were never swept together")
	}
}

// A swept answer that asks to be watched (E2E's brief workflow states) is
// read again at the Provider's poll interval, not only every sweepInterval.
func TestFleetPollerSweepsWatchedActionsAtThePollInterval(t *testing.T) {
	d := &batchDriver{fakeDriver: &fakeDriver{}}
	d.status = func(provider.Submission) (provider.ActionStatus, error) {
		return provider.ActionStatus{State: provider.StateInProgress, Watch: true}, nil
	}
	var f fleetPoller
	now := unitStart
	f.clock = func() time.Time { return now }
	x := provider.Submission{Request: provider.Request{NodeID: "x", Action: "reboot"}, StartedAt: now}
	y := provider.Submission{Request: provider.Request{NodeID: "y", Action: "reboot"}, StartedAt: now}
	poll := func(s provider.Submission) {
		t.Helper()
		if _, err := f.status(context.Background(), "p", d, s, now, time.Second); err != nil {
			t.Fatal(err)
		}
	}
	poll(x)
	poll(y) // two in flight: the first sweep
	now = now.Add(500 * time.Millisecond)
	poll(x) // within the poll interval: the last sweep answers
	if d.sweeps != 1 {
		t.Fatalf("%d sweeps within one poll interval, want 1", d.sweeps)
	}
	now = now.Add(time.Second)
	poll(x) // 1.5s after the sweep: older than the poll interval
	if d.sweeps != 2 {
		t.Fatalf("%d sweeps after a poll interval with watched answers, want 2 (sweepInterval is %s)", d.sweeps, sweepInterval)
	}
}

// A sweep that fails (a list refused, a page gone) says nothing of any one
// action: the NodeAction whose poll ran it reads its own action instead of
// taking the error, and the sweep is not run again before sweepInterval.
func TestFailedSweepNeverFailsAnAction(t *testing.T) {
	d := &failingSweeps{batchDriver: &batchDriver{fakeDriver: &fakeDriver{}}}
	d.status = func(provider.Submission) (provider.ActionStatus, error) {
		return provider.ActionStatus{State: provider.StateInProgress, Message: "its own read"}, nil
	}
	var f fleetPoller
	now := unitStart
	f.clock = func() time.Time { return now }
	x := provider.Submission{Request: provider.Request{NodeID: "x", Action: "reboot"}, ActionID: "1", StartedAt: now}
	y := provider.Submission{Request: provider.Request{NodeID: "y", Action: "reboot"}, ActionID: "2", StartedAt: now}
	if _, err := f.status(context.Background(), "p", d, x, now, time.Second); err != nil {
		t.Fatal(err)
	}
	now = now.Add(time.Second)
	for range 3 { // y's poll runs the sweep, then x's and y's read alone
		for _, s := range []provider.Submission{y, x} {
			st, err := f.status(context.Background(), "p", d, s, now, time.Second)
			if err != nil {
				t.Fatalf("action %s: %v (a failed sweep must not fail it)", s.ActionID, err)
			}
			if st.Message != "its own read" {
				t.Fatalf("action %s: %+v, want its own read", s.ActionID, st)
			}
		}
		now = now.Add(time.Second)
	}
	if d.sweeps != 1 {
		t.Errorf("%d sweeps within sweepInterval after one failed, want 1", d.sweeps)
	}
}

// failingSweeps is a batchDriver whose sweeps fail as a provider error about
// the list (terminal, as a 404 or 400 would be).
type failingSweeps struct{ *batchDriver }

func (d *failingSweeps) StatusBatch(context.Context, []provider.Submission) ([]provider.ActionStatus, error) {
	d.sweeps++
	return nil, provider.NewTerminal(provider.NodeNotFound, "the list is gone")
}

// A swept answer is judged from the Progress the NodeAction held when it
// last asked. Once an answer moves it on (E2E's "left:" after seeing the
// node leave its steady state), later sweeps judge from the new Progress,
// never from the old one: else an action seen running would end
// "not seen leaving" (Unverified).
func TestSweepsJudgeFromTheProgressTheActionHolds(t *testing.T) {
	d := &batchDriver{fakeDriver: &fakeDriver{}}
	leaving, windowPassed := false, false
	d.status = func(s provider.Submission) (provider.ActionStatus, error) {
		switch {
		case s.ActionID == "3":
			return provider.ActionStatus{State: provider.StateInProgress}, nil
		case s.Progress == "left:Rebooting" && windowPassed:
			return provider.ActionStatus{State: provider.StateSucceeded, Class: provider.Completed, Message: "went through Rebooting"}, nil
		case windowPassed:
			return provider.ActionStatus{State: provider.StateSucceeded, Class: provider.Unverified, Message: "not seen leaving"}, nil
		case leaving:
			return provider.ActionStatus{State: provider.StateInProgress, Progress: "left:Rebooting"}, nil
		}
		return provider.ActionStatus{State: provider.StateInProgress}, nil
	}
	var f fleetPoller
	now := unitStart
	f.clock = func() time.Time { return now }
	a := provider.Submission{Request: provider.Request{NodeID: "a", Action: "reboot"}, ActionID: "1", StartedAt: now}
	b := provider.Submission{Request: provider.Request{NodeID: "b", Action: "reboot"}, ActionID: "2", StartedAt: now}
	c := provider.Submission{Request: provider.Request{NodeID: "c", Action: "reboot"}, ActionID: "3", StartedAt: now.Add(time.Hour)} // still in flight
	poll := func(s *provider.Submission) provider.ActionStatus {
		t.Helper()
		st, err := f.status(context.Background(), "p", d, *s, now, time.Second)
		if err != nil && !errors.Is(err, errAwaitingSweep) {
			t.Fatal(err)
		}
		if st.Progress != "" {
			s.Progress = st.Progress // kept in status, as the reconciler does
		}
		return st
	}
	poll(&a)
	poll(&b)
	poll(&c)
	leaving = true
	now = now.Add(6 * time.Second)
	poll(&b) // sweeps a and b: both seen leaving
	poll(&a)
	if a.Progress != "left:Rebooting" {
		t.Fatalf("a's progress %q, want left:Rebooting from the sweep", a.Progress)
	}
	windowPassed = true
	now = now.Add(6 * time.Second)
	poll(&b) // the next sweep, run by b's poll
	if st := poll(&a); st.Class != provider.Completed {
		t.Fatalf("a ended %s %q, judged from an older progress than it holds; want Completed", st.Class, st.Message)
	}
}
