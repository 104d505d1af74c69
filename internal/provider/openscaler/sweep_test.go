package openscaler_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/nodeaction/nodeaction-operator/internal/fakecloud"
	"github.com/nodeaction/nodeaction-operator/internal/provider"
)

// lists counts the sweep's reads of the VM list.
func (e *env) lists() int {
	return e.cloud.CountRequests(func(r fakecloud.Request) bool {
		return r.Method == http.MethodGet && r.Path == "/openscaler/v1/vms"
	})
}

func (e *env) sweep(t *testing.T, subs []provider.Submission) []provider.ActionStatus {
	t.Helper()
	out, err := e.driver.(provider.BatchStatuser).StatusBatch(context.Background(), subs)
	if err != nil {
		t.Fatalf("StatusBatch: %v", err)
	}
	if len(out) != len(subs) {
		t.Fatalf("%d statuses for %d submissions", len(out), len(subs))
	}
	return out
}

func watch(id, action string) provider.Submission {
	return provider.Submission{Request: provider.Request{NodeID: id, Action: action}}
}

// addVMs adds n running VMs w-0000, w-0001, ...
func (e *env) addVMs(n int) {
	for i := range n {
		e.cloud.AddVM(fakecloud.VM{ID: fmt.Sprintf("w-%04d", i)})
	}
}

// The wanted VMs are on the list's second page: the sweep reads on to it,
// judges every submission naming a VM there (two name the same one), and
// answers those that need no read without one.
func TestSweepReadsOnUntilFound(t *testing.T) {
	e := newEnv(t, nil)
	e.addVMs(300) // by id after vm-7; pages of 200
	_ = e.cloud.UpdateVM("w-0250", func(vm *fakecloud.VM) { vm.Power = fakecloud.PowerOff })
	done := provider.ActionStatus{State: provider.StateSucceeded, Class: provider.AlreadyInState, Message: "recorded"}
	subs := []provider.Submission{
		watch("w-0250", "power_off"),
		watch("w-0260", "power_off"),
		watch("w-0250", "shutdown"),
		watch("w-0010", "reboot"),
		{Request: provider.Request{NodeID: "w-0011", Action: "start"}, Done: &done},
		watch("vm_7", "start"), // invalid: its own Status reports it
	}
	out := e.sweep(t, subs)
	want := []struct {
		state provider.State
		class provider.Class
	}{
		{provider.StateSucceeded, provider.Completed},
		{provider.StateInProgress, provider.Verifying},
		{provider.StateSucceeded, provider.Completed},
		{provider.StateSucceeded, provider.Unverified},
		{provider.StateSucceeded, provider.AlreadyInState},
		{"", ""},
	}
	for i, w := range want {
		if out[i].State != w.state || out[i].Class != w.class {
			t.Errorf("%s %s: got %s (%s), want %s (%s)", subs[i].Action, subs[i].NodeID, out[i].State, out[i].Class, w.state, w.class)
		}
		if w.state == "" {
			continue
		}
		if st := e.status(t, subs[i]); st.State != out[i].State || st.Class != out[i].Class {
			t.Errorf("%s %s: the sweep said %s (%s), Status %s (%s)", subs[i].Action, subs[i].NodeID, out[i].State, out[i].Class, st.State, st.Class)
		}
	}
	if n := e.lists(); n != 2 {
		t.Errorf("%d list reads, want 2 (the wanted VMs are on page 2)", n)
	}
}

// A VM the list does not show is left out, and the walk stops: at no more
// pages than there are VMs to find, and at most maxListPages.
func TestSweepWalkIsBounded(t *testing.T) {
	e := newEnv(t, nil)
	e.addVMs(2500) // 13 pages
	out := e.sweep(t, []provider.Submission{watch("gone", "power_off"), watch("gone", "start")})
	if out[0].State != "" || out[1].State != "" {
		t.Errorf("a VM the list does not show: %+v", out)
	}
	if n := e.lists(); n != 1 {
		t.Errorf("%d list reads for one VM, want 1: reading it alone costs no more", n)
	}

	var many []provider.Submission
	for i := range 10 {
		many = append(many, watch(fmt.Sprintf("gone-%d", i), "power_off"))
	}
	before := e.lists()
	e.sweep(t, many)
	if n := e.lists() - before; n != 10 {
		t.Errorf("%d list reads for 10 VMs the list does not show, want 10 of its 13 pages", n)
	}
}

// Numeric ids are listed as numbers, so VMs 23 and 023 both show as 23:
// neither record can be told apart, and neither VM is judged from them.
func TestSweepLeavesAmbiguousIDsOut(t *testing.T) {
	e := newEnv(t, nil)
	e.cloud.AddVM(fakecloud.VM{ID: "23"})
	e.cloud.AddVM(fakecloud.VM{ID: "023", Power: fakecloud.PowerOff})
	e.cloud.AddVM(fakecloud.VM{ID: "24", Power: fakecloud.PowerOff})
	out := e.sweep(t, []provider.Submission{watch("23", "power_off"), watch("023", "power_off"), watch("24", "power_off")})
	if out[0].State != "" || out[1].State != "" {
		t.Errorf("VMs 23 and 023 judged from a record either could own: %+v, %+v", out[0], out[1])
	}
	if out[2].State != provider.StateSucceeded || out[2].Class != provider.Completed {
		t.Errorf("VM 24, listed as the number 24: %+v, want Completed", out[2])
	}
}
