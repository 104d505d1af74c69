package controllers

import (
	"fmt"
	"testing"
	"time"

	"github.com/nodeaction/nodeaction-operator/api/v1alpha1"
	"github.com/nodeaction/nodeaction-operator/internal/fakecloud"
)

// providerCase is one provider type through the real apiserver and reconciler.
type providerCase struct {
	typ v1alpha1.ProviderType
	// id returns the n-th VM id in the provider's format.
	id func(n int) string
	// action succeeds on a running VM; reasons it may end with.
	action  string
	params  *v1alpha1.ActionParameters
	reasons []string
}

var providerCases = []providerCase{
	{typ: v1alpha1.ProviderDigitalOcean, id: func(n int) string { return fmt.Sprint(5000 + n) },
		action: "reboot", reasons: []string{v1alpha1.ReasonCompleted}},
	{typ: v1alpha1.ProviderSenlin, id: func(n int) string { return fmt.Sprintf("5e000000-0000-4000-8000-%012d", n) },
		action: "reboot", reasons: []string{v1alpha1.ReasonCompleted}},
	{typ: v1alpha1.ProviderE2E, id: func(n int) string { return fmt.Sprint(6000 + n) },
		action: "power_off", reasons: []string{v1alpha1.ReasonCompleted}},
	{typ: v1alpha1.ProviderCloudsFor, id: func(n int) string { return fmt.Sprintf("c0ffee%026d", n) },
		action: "rename", params: &v1alpha1.ActionParameters{Name: "renamed-by-nodeaction"}, reasons: []string{v1alpha1.ReasonCompleted}},
	{typ: v1alpha1.ProviderOpenScaler, id: func(n int) string { return fmt.Sprintf("os-%d", 7000+n) },
		action: "power_cycle", reasons: []string{v1alpha1.ReasonAcceptedUnverified}},
}

func TestEveryProviderReachesReady(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	startManagerIn(t, ns)
	for _, pc := range providerCases {
		t.Run(string(pc.typ), func(t *testing.T) {
			createProvider(t, ns, string(pc.typ), pc.typ)
			id := pc.id(1)
			cloud.AddVM(fakecloud.VM{ID: id, Name: "node-" + id})
			na := nodeAction(ns, string(pc.typ)+"-ok", string(pc.typ), id, pc.action)
			na.Spec.Parameters = pc.params
			create(t, na)
			finished(t, na, 30*time.Second)
			expectReady(t, na, pc.reasons...)
			if n := cloud.ActionCalls(id); n != 1 {
				t.Fatalf("fakecloud logged %d action calls for %s, want exactly 1", n, pc.typ)
			}
			if na.Status.ProviderAction == "" {
				t.Error("status.providerAction is empty")
			}
		})
	}
}

func TestEveryProviderStallsOnAnUnknownNode(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	startManagerIn(t, ns)
	for _, pc := range providerCases {
		t.Run(string(pc.typ), func(t *testing.T) {
			createProvider(t, ns, string(pc.typ), pc.typ)
			na := nodeAction(ns, string(pc.typ)+"-missing", string(pc.typ), pc.id(999), pc.action)
			na.Spec.Parameters = pc.params
			create(t, na)
			finished(t, na, 30*time.Second)
			expectStalled(t, na, v1alpha1.ReasonNodeNotFound, "404")
		})
	}
}

func TestEveryProviderStallsOnAProviderFailure(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	startManagerIn(t, ns)
	for _, pc := range providerCases {
		t.Run(string(pc.typ), func(t *testing.T) {
			createProvider(t, ns, string(pc.typ), pc.typ)
			id := pc.id(2)
			cloud.AddVM(fakecloud.VM{ID: id, FailNext: "hypervisor " + string(pc.typ) + " refused"})
			na := nodeAction(ns, string(pc.typ)+"-fails", string(pc.typ), id, pc.action)
			na.Spec.Parameters = pc.params
			create(t, na)
			finished(t, na, 30*time.Second)
			expectStalled(t, na, v1alpha1.ReasonProviderFailed)
			if n := cloud.ActionCalls(id); n != 1 {
				t.Fatalf("%d action calls, want 1 (a failure is not retried with backoffLimit 0)", n)
			}
		})
	}
}
