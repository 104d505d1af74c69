package controllers

import (
	"context"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/nodeaction/nodeaction-operator/api/v1alpha1"
)

// These run the CRD's CEL rules in the real apiserver: a bad manifest is
// refused at admission with a message that says what to fix.

func expectRefused(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("the apiserver accepted it; want a refusal mentioning %q", parts)
	}
	if !apierrors.IsInvalid(err) {
		t.Fatalf("want an Invalid error, got %v", err)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("refusal %q does not mention %q", err.Error(), p)
		}
	}
}

func TestAdmissionRefusesBadNodeActions(t *testing.T) {
	ns := newNamespace(t)
	ctx := context.Background()
	cases := []struct {
		name   string
		mutate func(*v1alpha1.NodeAction)
		want   []string
	}{
		{"rename without name", func(n *v1alpha1.NodeAction) { n.Spec.Action = "rename" },
			[]string{"spec.parameters.name", "action rename needs spec.parameters.name"}},
		{"save_images without name", func(n *v1alpha1.NodeAction) { n.Spec.Action = "save_images" },
			[]string{"spec.parameters.name"}},
		{"restore with a non-numeric image", func(n *v1alpha1.NodeAction) {
			n.Spec.Action, n.Spec.Confirm = "restore", n.Spec.NodeID
			n.Spec.Parameters = &v1alpha1.ActionParameters{Image: "ubuntu"}
		}, []string{"spec.parameters.image", "numeric id of a backup"}},
		{"rebuild without confirm", func(n *v1alpha1.NodeAction) {
			n.Spec.Action = "rebuild"
			n.Spec.Parameters = &v1alpha1.ActionParameters{Image: "ubuntu-24-04-x64"}
		}, []string{"spec.confirm", "destructive", "set spec.confirm to 42"}},
		{"reinstall with the wrong confirm", func(n *v1alpha1.NodeAction) {
			n.Spec.Action, n.Spec.Confirm = "reinstall", "43"
		}, []string{"spec.confirm", "destructive"}},
		{"recover RECREATE without confirm", func(n *v1alpha1.NodeAction) {
			n.Spec.Action = "recover"
			n.Spec.Parameters = &v1alpha1.ActionParameters{Recover: &v1alpha1.RecoverParameters{Operation: "recreate"}}
		}, []string{"spec.confirm"}},
		{"recover with an unknown operation", func(n *v1alpha1.NodeAction) {
			n.Spec.Action = "recover"
			n.Spec.Parameters = &v1alpha1.ActionParameters{Recover: &v1alpha1.RecoverParameters{Operation: "REPAIR"}}
		}, []string{"spec.parameters.recover.operation", "REBOOT, REBUILD, RECREATE"}},
		{"recover without parameters", func(n *v1alpha1.NodeAction) { n.Spec.Action = "recover" },
			[]string{"spec.parameters.recover"}},
		{"resize without a size", func(n *v1alpha1.NodeAction) { n.Spec.Action = "resize" },
			[]string{"action resize needs spec.parameters.size"}},
		{"resource without amount", func(n *v1alpha1.NodeAction) {
			n.Spec.Action = "resize"
			n.Spec.Parameters = &v1alpha1.ActionParameters{Resource: "ram"}
		}, []string{"resource and spec.parameters.amount go together"}},
		{"change_kernel without kernel", func(n *v1alpha1.NodeAction) { n.Spec.Action = "change_kernel" },
			[]string{"spec.parameters.kernel"}},
		{"weekly backup without weekday", func(n *v1alpha1.NodeAction) {
			n.Spec.Action = "change_backup_policy"
			n.Spec.Parameters = &v1alpha1.ActionParameters{BackupPolicy: &v1alpha1.BackupPolicy{Plan: "weekly"}}
		}, []string{"weekday (SUN..SAT) is required when plan is weekly"}},
		{"name with trailing space", func(n *v1alpha1.NodeAction) {
			n.Spec.Action = "rename"
			n.Spec.Parameters = &v1alpha1.ActionParameters{Name: "web-1 "}
		}, []string{"must not start or end with whitespace"}},
		{"path traversal in nodeID", func(n *v1alpha1.NodeAction) { n.Spec.NodeID = "1/../../v2/account" },
			[]string{"spec.nodeID", "no '/'"}},
		{"dot-dot nodeID", func(n *v1alpha1.NodeAction) { n.Spec.NodeID = "a..b" },
			[]string{"spec.nodeID"}},
		{"unknown action", func(n *v1alpha1.NodeAction) { n.Spec.Action = "explode" },
			[]string{"spec.action", "supported values"}},
		{"escalation on a reboot", func(n *v1alpha1.NodeAction) {
			n.Spec.Escalation = &v1alpha1.Escalation{PowerOffAfterSeconds: 60}
		}, []string{"spec.escalation is only valid with action shutdown"}},
		{"a podSelector's In without values", podSelector(metav1.LabelSelectorRequirement{Key: "app", Operator: metav1.LabelSelectorOpIn}),
			[]string{"spec.node.drain.podSelector", "In and NotIn need values"}},
		{"a podSelector's Exists with values", podSelector(metav1.LabelSelectorRequirement{Key: "app", Operator: metav1.LabelSelectorOpExists, Values: []string{"web"}}),
			[]string{"spec.node.drain.podSelector", "Exists and DoesNotExist take none"}},
		{"a podSelector's unknown operator", podSelector(metav1.LabelSelectorRequirement{Key: "app", Operator: "Matches", Values: []string{"web"}}),
			[]string{"spec.node.drain.podSelector", "operator must be In, NotIn, Exists or DoesNotExist"}},
		{"an activeDeadlineSeconds past 30 days", func(n *v1alpha1.NodeAction) { n.Spec.ActiveDeadlineSeconds = ptr.To(int64(10_000_000_000)) },
			[]string{"spec.activeDeadlineSeconds", "2592000"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			na := nodeAction(ns, "bad", "do", "42", "reboot")
			tc.mutate(na)
			expectRefused(t, k8s.Create(ctx, na), tc.want...)
		})
	}

	t.Run("a destructive action with confirm is accepted", func(t *testing.T) {
		na := nodeAction(ns, "rebuild-ok", "do", "42", "rebuild")
		na.Spec.Confirm = "42"
		na.Spec.Parameters = &v1alpha1.ActionParameters{Image: "ubuntu-24-04-x64"}
		if err := k8s.Create(ctx, na); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("recover REBOOT needs no confirm", func(t *testing.T) {
		na := nodeAction(ns, "recover-reboot", "senlin", "42", "recover")
		na.Spec.Parameters = &v1alpha1.ActionParameters{Recover: &v1alpha1.RecoverParameters{Operation: "reboot", RebootType: "soft"}}
		if err := k8s.Create(ctx, na); err != nil {
			t.Fatal(err)
		}
	})
}

// podSelector drains the Node of spec.node with a selector of one requirement.
func podSelector(r metav1.LabelSelectorRequirement) func(*v1alpha1.NodeAction) {
	return func(n *v1alpha1.NodeAction) {
		n.Spec.Node = &v1alpha1.NodeSpec{Name: "w1", Drain: &v1alpha1.DrainSpec{
			PodSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{r}}}}
	}
}

func TestSpecIsImmutableExceptRunIDAndTTL(t *testing.T) {
	ns := newNamespace(t)
	ctx := context.Background()
	na := nodeAction(ns, "immutable", "do", "42", "reboot")
	create(t, na)

	for name, mutate := range map[string]func(*v1alpha1.NodeAction){
		"action":     func(n *v1alpha1.NodeAction) { n.Spec.Action = "power_cycle" },
		"nodeID":     func(n *v1alpha1.NodeAction) { n.Spec.NodeID = "43" },
		"provider":   func(n *v1alpha1.NodeAction) { n.Spec.ProviderRef.Name = "other" },
		"parameters": func(n *v1alpha1.NodeAction) { n.Spec.Parameters = &v1alpha1.ActionParameters{Name: "x"} },
		"deadline":   func(n *v1alpha1.NodeAction) { n.Spec.ActiveDeadlineSeconds = ptr.To(int64(5)) },
		"confirm":    func(n *v1alpha1.NodeAction) { n.Spec.Confirm = "42" },
	} {
		t.Run(name, func(t *testing.T) {
			cur := &v1alpha1.NodeAction{}
			if err := k8s.Get(ctx, keyOf(na), cur); err != nil {
				t.Fatal(err)
			}
			mutate(cur)
			expectRefused(t, k8s.Update(ctx, cur), "spec is immutable except runID and ttlSecondsAfterFinished")
		})
	}
	t.Run("runID and ttl may change", func(t *testing.T) {
		cur := &v1alpha1.NodeAction{}
		if err := k8s.Get(ctx, keyOf(na), cur); err != nil {
			t.Fatal(err)
		}
		cur.Spec.RunID = "second"
		cur.Spec.TTLSecondsAfterFinished = ptr.To(int32(60))
		if err := k8s.Update(ctx, cur); err != nil {
			t.Fatal(err)
		}
	})
}

func TestAdmissionRefusesBadProviders(t *testing.T) {
	ns := newNamespace(t)
	ctx := context.Background()
	cases := []struct {
		name   string
		mutate func(*v1alpha1.Provider)
		want   []string
	}{
		{"senlin without authURL", func(p *v1alpha1.Provider) { p.Spec.Type = "senlin" }, []string{"spec.authURL", "required for type senlin"}},
		{"e2e without location", func(p *v1alpha1.Provider) { p.Spec.Type = "e2e" }, []string{"spec.location", "required for type e2e"}},
		{"cloudsfor without endpoint", func(p *v1alpha1.Provider) { p.Spec.Type = "cloudsfor" }, []string{"spec.endpoint", "required for type cloudsfor"}},
		{"endpoint not a URL", func(p *v1alpha1.Provider) { p.Spec.Endpoint = "api.example.com" }, []string{"spec.endpoint must be an http(s) URL"}},
		{"unknown type", func(p *v1alpha1.Provider) { p.Spec.Type = "aws" }, []string{"spec.type", "supported values"}},
		{"a pollInterval under 100ms", func(p *v1alpha1.Provider) { p.Spec.PollInterval = &metav1.Duration{Duration: time.Millisecond} },
			[]string{"spec.pollInterval must be at least 100ms"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := &v1alpha1.Provider{}
			p.Namespace, p.Name = ns, "bad"
			p.Spec = v1alpha1.ProviderSpec{Type: "digitalocean", CredentialsSecretRef: v1alpha1.SecretReference{Name: "s"}}
			tc.mutate(p)
			expectRefused(t, k8s.Create(ctx, p), tc.want...)
		})
	}
	t.Run("type changed in place", func(t *testing.T) {
		p := &v1alpha1.Provider{}
		p.Namespace, p.Name = ns, "retyped"
		p.Spec = v1alpha1.ProviderSpec{Type: "digitalocean", CredentialsSecretRef: v1alpha1.SecretReference{Name: "s"}}
		if err := k8s.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
		p.Spec.Type, p.Spec.Endpoint = "cloudsfor", "https://cloudsfor.example.com"
		expectRefused(t, k8s.Update(ctx, p), "spec.type cannot be changed")
	})
}
