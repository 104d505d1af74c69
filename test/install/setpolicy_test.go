package install

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodeaction/nodeaction-operator/api/v1alpha1"
)

// A NodeActionSet's members are created by the operator's ServiceAccount,
// so the policy nodeaction-set-permissions asks, of the person who creates
// or changes the set, what nodeaction-permissions asks of a NodeAction's
// creator. These tests impersonate the users of policyNamespace.

// nodeActionSet builds a set of two VMs that passes the CRD's own rules.
func nodeActionSet(ns, name, provider, action string, recoverOp ...string) *v1alpha1.NodeActionSet {
	na := nodeAction(ns, name, provider, action, recoverOp...)
	s := &v1alpha1.NodeActionSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: v1alpha1.NodeActionSetSpec{
		ProviderRef: na.Spec.ProviderRef, Action: action, Parameters: na.Spec.Parameters, NodeIDs: []string{"4242", "4243"}}}
	if na.Spec.Confirm != "" {
		s.Spec.Confirm = name
	}
	return s
}

// setPolicyNamespace is policyNamespace, once the set policy is in force too.
func setPolicyNamespace(t *testing.T, name string) string {
	t.Helper()
	ns := policyNamespace(t, name)
	as := impersonate(t, operatorUser)
	if err := pollUntil(30*time.Second, func() error {
		err := as.Create(context.Background(), nodeActionSet(ns, "probe-reinstall", "p1", "reinstall"), client.DryRunAll)
		if err == nil || !strings.Contains(err.Error(), setPolicyName) {
			return fmt.Errorf("the set policy is not in force yet: dry-run reinstall set as %s: %v", operatorUser, err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return ns
}

func TestSetAdmissionPolicyOnCreate(t *testing.T) {
	ns := setPolicyNamespace(t, "set-policy-create")
	ctx := context.Background()
	cases := []struct {
		name, user, provider, action string
		recoverOp                    string
		refused                      []string // parts of the refusal; nil = allowed
	}{
		{"operator rolls a reboot", operatorUser, "p1", "reboot", "", nil},
		{"operator rolls a recover REBOOT", operatorUser, "p1", "recover", "REBOOT", nil},
		{"operator refused a reinstall set", operatorUser, "p1", "reinstall", "", []string{setPolicyName, operatorUser, "destructive action reinstall", "set of VMs", `verb "reinstall"`, "nodeactions.compute.nodeaction.dev", "nodeaction-admin"}},
		{"operator refused a rebuild set", operatorUser, "p1", "rebuild", "", []string{`verb "rebuild"`}},
		{"operator refused a restore set", operatorUser, "p1", "restore", "", []string{`verb "restore"`}},
		{"operator refused a recover RECREATE set", operatorUser, "p1", "recover", "recreate", []string{"recover RECREATE", `verb "recreate"`}},
		{"admin rolls a reinstall", adminUser, "p1", "reinstall", "", nil},
		{"admin rolls a recover REBUILD", adminUser, "p2", "recover", "REBUILD", nil},
		{"limited user rolls on its Provider", limitedUser, "p2", "power_off", "", nil},
		{"limited user refused another Provider", limitedUser, "p1", "power_off", "", []string{setPolicyName, limitedUser, "may not use Provider p1", `verb "use"`}},
		{"viewer refused by RBAC", viewerUser, "p1", "reboot", "", []string{"forbidden", `cannot create resource "nodeactionsets"`}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := nodeActionSet(ns, fmt.Sprintf("case-%d", i), tc.provider, tc.action, tc.recoverOp)
			err := impersonate(t, tc.user).Create(ctx, s)
			if tc.refused == nil {
				if err != nil {
					t.Fatalf("%s creating a %s set on %s was refused: %v", tc.user, tc.action, tc.provider, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("%s created a %s set on %s; want it refused", tc.user, tc.action, tc.provider)
			}
			t.Logf("refused: %v", err)
			if !apierrors.IsForbidden(err) {
				t.Errorf("refusal %v is not Forbidden (reason %s)", err, apierrors.ReasonForError(err))
			}
			for _, part := range tc.refused {
				if !strings.Contains(err.Error(), part) {
					t.Errorf("refusal %q does not say %q", err.Error(), part)
				}
			}
		})
	}
}

// Any spec change that leaves the set running can start members, so it
// needs the creator's permissions; pausing, and changes while paused, do
// not; unpausing does.
func TestSetAdmissionPolicyOnUpdate(t *testing.T) {
	ns := setPolicyNamespace(t, "set-policy-update")
	ctx := context.Background()
	admin, operator, limited := impersonate(t, adminUser), impersonate(t, operatorUser), impersonate(t, limitedUser)
	reinstall := nodeActionSet(ns, "reinstall", "p1", "reinstall")
	reboot := nodeActionSet(ns, "reboot", "p1", "reboot")
	for _, s := range []*v1alpha1.NodeActionSet{reinstall, reboot} {
		if err := admin.Create(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	update := func(c client.Client, s *v1alpha1.NodeActionSet, change func(*v1alpha1.NodeActionSet)) error {
		cur := &v1alpha1.NodeActionSet{}
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(s), cur); err != nil {
			t.Fatal(err)
		}
		change(cur)
		return c.Update(ctx, cur)
	}
	paused := func(p bool) func(*v1alpha1.NodeActionSet) {
		return func(s *v1alpha1.NodeActionSet) { s.Spec.Paused = p }
	}
	for _, tc := range []struct {
		name    string
		c       client.Client
		s       *v1alpha1.NodeActionSet
		change  func(*v1alpha1.NodeActionSet)
		refused string
	}{
		{"operator refused a new run of a reinstall set", operator, reinstall, func(s *v1alpha1.NodeActionSet) { s.Spec.RunID = "again" }, `verb "reinstall"`},
		{"operator refused more VMs for a reinstall set", operator, reinstall, func(s *v1alpha1.NodeActionSet) { s.Spec.NodeIDs = append(s.Spec.NodeIDs, "4244") }, `verb "reinstall"`},
		{"operator refused a wider maxUnavailable", operator, reinstall, func(s *v1alpha1.NodeActionSet) { s.Spec.MaxUnavailable = ptr.To(intstr.FromInt32(2)) }, `verb "reinstall"`},
		{"operator may label a reinstall set", operator, reinstall, func(s *v1alpha1.NodeActionSet) { s.Labels = map[string]string{"team": "sre"} }, ""},
		{"operator may pause a reinstall set", operator, reinstall, paused(true), ""},
		{"operator may change a paused reinstall set", operator, reinstall, func(s *v1alpha1.NodeActionSet) { s.Spec.RunID = "later" }, ""},
		{"operator refused unpausing a reinstall set", operator, reinstall, paused(false), `verb "reinstall"`},
		{"admin unpauses it", admin, reinstall, paused(false), ""},
		{"operator runs a reboot set again", operator, reboot, func(s *v1alpha1.NodeActionSet) { s.Spec.RunID = "again" }, ""},
		{"limited user refused more VMs on Provider p1", limited, reboot, func(s *v1alpha1.NodeActionSet) { s.Spec.NodeIDs = append(s.Spec.NodeIDs, "4244") }, "may not use Provider p1"},
		{"limited user may pause a set on p1", limited, reboot, paused(true), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := update(tc.c, tc.s, tc.change)
			switch {
			case tc.refused == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.refused != "" && err == nil:
				t.Fatalf("allowed; want it refused naming %s", tc.refused)
			case tc.refused != "" && (!strings.Contains(err.Error(), tc.refused) || !strings.Contains(err.Error(), setPolicyName)):
				t.Fatalf("refusal %q does not say %s (by %s)", err.Error(), tc.refused, setPolicyName)
			}
		})
	}
}
