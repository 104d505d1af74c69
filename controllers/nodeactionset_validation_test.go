package controllers

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/nodeaction/nodeaction-operator/api/v1alpha1"
)

// The NodeActionSet CRD's rules in the real apiserver: a bad set is
// refused at apply with a message naming the field.

func admissionSet(ns, name string) *v1alpha1.NodeActionSet {
	return &v1alpha1.NodeActionSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1alpha1.NodeActionSetSpec{ProviderRef: v1alpha1.ProviderReference{Name: "do"}, Action: "reboot", NodeIDs: []string{"41", "42"}}}
}

func TestAdmissionRefusesBadNodeActionSets(t *testing.T) {
	ns := newNamespace(t)
	ctx := context.Background()
	window := func(schedule, tz string) func(*v1alpha1.NodeActionSet) {
		return func(s *v1alpha1.NodeActionSet) {
			s.Spec.Windows = []v1alpha1.MaintenanceWindow{{Schedule: "0 2 * * *", DurationMinutes: 60}, {Schedule: schedule, DurationMinutes: 60, TimeZone: v1alpha1.TimeZone(tz)}}
		}
	}
	cases := []struct {
		name   string
		mutate func(*v1alpha1.NodeActionSet)
		want   []string
	}{
		{"the same VM twice", func(s *v1alpha1.NodeActionSet) { s.Spec.NodeIDs = []string{"41", "42", "41"} },
			[]string{"spec.nodeIDs[2]", "Duplicate value", `"41"`}},
		{"both nodeIDs and nodeSelector", func(s *v1alpha1.NodeActionSet) {
			s.Spec.NodeSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"pool": "workers"}}
		}, []string{"spec.nodeIDs", "exactly one of spec.nodeIDs", "spec.nodeSelector"}},
		{"neither nodeIDs nor nodeSelector", func(s *v1alpha1.NodeActionSet) { s.Spec.NodeIDs = nil },
			[]string{"spec.nodeIDs", "exactly one of spec.nodeIDs"}},
		{"an empty nodeIDs", func(s *v1alpha1.NodeActionSet) { s.Spec.NodeIDs = []string{} },
			[]string{"spec.nodeIDs"}},
		{"a VM id with a slash", func(s *v1alpha1.NodeActionSet) { s.Spec.NodeIDs = []string{"41", "1/../v2/account"} },
			[]string{"spec.nodeIDs[1]", "no '/'"}},
		{"maxUnavailable 0", func(s *v1alpha1.NodeActionSet) { s.Spec.MaxUnavailable = ptr.To(intstr.FromInt32(0)) },
			[]string{"spec.maxUnavailable", "at least 1 or a percentage from 1% to 100%"}},
		{"maxUnavailable 0%", func(s *v1alpha1.NodeActionSet) { s.Spec.MaxUnavailable = ptr.To(intstr.FromString("0%")) },
			[]string{"spec.maxUnavailable"}},
		{"maxUnavailable 101%", func(s *v1alpha1.NodeActionSet) { s.Spec.MaxUnavailable = ptr.To(intstr.FromString("101%")) },
			[]string{"spec.maxUnavailable", "1% to 100%"}},
		{"maxUnavailable not a number", func(s *v1alpha1.NodeActionSet) { s.Spec.MaxUnavailable = ptr.To(intstr.FromString("two")) },
			[]string{"spec.maxUnavailable"}},
		{"maxFailures below 0", func(s *v1alpha1.NodeActionSet) { s.Spec.MaxFailures = ptr.To(int32(-1)) },
			[]string{"spec.maxFailures"}},
		{"a nodeSelector's In without values", func(s *v1alpha1.NodeActionSet) {
			s.Spec.NodeIDs = nil
			s.Spec.NodeSelector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "pool", Operator: metav1.LabelSelectorOpNotIn}}}
		}, []string{"spec.nodeSelector", "In and NotIn need values"}},
		{"a nodeSelector's unknown operator", func(s *v1alpha1.NodeActionSet) {
			s.Spec.NodeIDs = nil
			s.Spec.NodeSelector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "pool", Operator: "Gt", Values: []string{"1"}}}}
		}, []string{"spec.nodeSelector", "operator must be In, NotIn, Exists or DoesNotExist"}},
		{"an activeDeadlineSeconds past 30 days", func(s *v1alpha1.NodeActionSet) { s.Spec.ActiveDeadlineSeconds = ptr.To(int64(2592001)) },
			[]string{"spec.activeDeadlineSeconds"}},
		{"a schedule of four fields", window("0 2 * *", "UTC"),
			[]string{"spec.windows[1].schedule", "five fields", "0 2 * * *"}},
		{"a minute of 60", window("60 2 * * *", "UTC"),
			[]string{"spec.windows[1].schedule", "first field (minute) must be 0-59"}},
		{"an hour of 24", window("0 24 * * *", "UTC"),
			[]string{"spec.windows[1].schedule", "second field (hour) must be 0-23"}},
		{"a day of month 0", window("0 2 0 * *", "UTC"),
			[]string{"spec.windows[1].schedule", "third field (day of month) must be 1-31"}},
		{"a month of 13", window("0 2 * 13 *", "UTC"),
			[]string{"spec.windows[1].schedule", "fourth field (month)"}},
		{"a weekday name misspelt", window("0 2 * * MONDAY", "UTC"),
			[]string{"spec.windows[1].schedule", "fifth field (day of week)"}},
		{"a step of 0", window("*/0 2 * * *", "UTC"),
			[]string{"spec.windows[1].schedule", "first field"}},
		{"a time zone in the schedule", window("CRON_TZ=UTC 0 2 * * *", "UTC"),
			[]string{"spec.windows[1].schedule"}},
		{"an unknown time zone", window("0 2 * * *", "Europe/Berln"),
			[]string{"spec.windows[1].timeZone", "IANA time zone name such as Europe/Berlin"}},
		{"an offset for a time zone", window("0 2 * * *", "+02:00"),
			[]string{"spec.windows[1].timeZone"}},
		{"a window of no minutes", func(s *v1alpha1.NodeActionSet) {
			s.Spec.Windows = []v1alpha1.MaintenanceWindow{{Schedule: "0 2 * * *", DurationMinutes: 0}}
		}, []string{"spec.windows[0].durationMinutes"}},
		{"a destructive action without confirm", func(s *v1alpha1.NodeActionSet) { s.Spec.Action = "reinstall" },
			[]string{"spec.confirm", "destructive", "set spec.confirm to bad (the name of this NodeActionSet)"}},
		{"a destructive action confirmed with a VM id", func(s *v1alpha1.NodeActionSet) {
			s.Spec.Action, s.Spec.Confirm = "rebuild", "41"
			s.Spec.Parameters = &v1alpha1.ActionParameters{Image: "ubuntu-24-04-x64"}
		}, []string{"spec.confirm", "set spec.confirm to bad"}},
		{"recover RECREATE without confirm", func(s *v1alpha1.NodeActionSet) {
			s.Spec.Action = "recover"
			s.Spec.Parameters = &v1alpha1.ActionParameters{Recover: &v1alpha1.RecoverParameters{Operation: "recreate"}}
		}, []string{"spec.confirm"}},
		{"a Node name for every member", func(s *v1alpha1.NodeActionSet) { s.Spec.Node = &v1alpha1.NodeSpec{Name: "worker-1"} },
			[]string{"spec.node.name", "each member finds its own Node"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := admissionSet(ns, "bad")
			tc.mutate(s)
			expectRefused(t, k8s.Create(ctx, s), tc.want...)
		})
	}
	t.Run("a name longer than a DNS label", func(t *testing.T) {
		expectRefused(t, k8s.Create(ctx, admissionSet(ns, strings.Repeat("n", 64))), "metadata.name", "DNS label")
	})
	t.Run("a name with a dot", func(t *testing.T) {
		expectRefused(t, k8s.Create(ctx, admissionSet(ns, "patch.night")), "metadata.name", "no dots")
	})

	t.Run("good windows, percentages and a confirmed destructive action are accepted", func(t *testing.T) {
		for i, mutate := range []func(*v1alpha1.NodeActionSet){
			func(s *v1alpha1.NodeActionSet) {
				s.Spec.Windows = []v1alpha1.MaintenanceWindow{
					{Schedule: "0 2 * * *", DurationMinutes: 180, TimeZone: "Europe/Berlin"},
					{Schedule: " 30  22 * *   fri ", DurationMinutes: 60, TimeZone: "America/New_York"},
					{Schedule: "*/15 0-5,22-23 1-7 JAN-MAR,oct sat,SUN", DurationMinutes: 10},
					{Schedule: "0 3 ? * 1-5/2", DurationMinutes: 10, TimeZone: "UTC"},
				}
				s.Spec.MaxUnavailable = ptr.To(intstr.FromString("10%"))
			},
			func(s *v1alpha1.NodeActionSet) { s.Spec.MaxUnavailable = ptr.To(intstr.FromString("100%")) },
			func(s *v1alpha1.NodeActionSet) {
				s.Spec.Action, s.Spec.Confirm = "reinstall", s.Name
			},
			func(s *v1alpha1.NodeActionSet) {
				s.Spec.NodeIDs = nil
				s.Spec.NodeSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"pool": "workers"}}
				s.Spec.Node = &v1alpha1.NodeSpec{Drain: &v1alpha1.DrainSpec{TimeoutSeconds: 600}}
			},
			func(s *v1alpha1.NodeActionSet) {
				// Every field of spec.node but its name, as a NodeAction takes them.
				s.Spec.Node = &v1alpha1.NodeSpec{
					Drain: &v1alpha1.DrainSpec{TimeoutSeconds: 120, OnTimeout: "Proceed", IgnoreDaemonSets: ptr.To(false), DeleteEmptyDirData: true,
						PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}},
					WaitReadySeconds: ptr.To(int32(300)), Uncordon: ptr.To(false)}
			},
		} {
			s := admissionSet(ns, "good-"+string(rune('a'+i)))
			mutate(s)
			if err := k8s.Create(ctx, s); err != nil {
				t.Errorf("case %d refused: %v", i, err)
			}
		}
		got := &v1alpha1.NodeActionSet{}
		if err := k8s.Get(ctx, keyOf(admissionSet(ns, "good-b")), got); err != nil {
			t.Fatal(err)
		}
		if got.Spec.MaxFailures == nil || *got.Spec.MaxFailures != 0 || got.Spec.ActiveDeadlineSeconds == nil {
			t.Errorf("defaults not applied: %+v", got.Spec)
		}
		if err := k8s.Get(ctx, keyOf(admissionSet(ns, "good-a")), got); err != nil {
			t.Fatal(err)
		}
		if got.Spec.Windows[2].TimeZone != "UTC" {
			t.Errorf("a window's timeZone defaults to %q, want UTC", got.Spec.Windows[2].TimeZone)
		}
		// spec.node's defaults are a NodeAction's, and so is its member.
		if err := k8s.Get(ctx, keyOf(admissionSet(ns, "good-d")), got); err != nil {
			t.Fatal(err)
		}
		if n := got.Spec.Node; n == nil || n.Drain.OnTimeout != "Fail" || n.Drain.IgnoreDaemonSets == nil || !*n.Drain.IgnoreDaemonSets ||
			n.WaitReadySeconds == nil || *n.WaitReadySeconds != 900 || n.Uncordon == nil || !*n.Uncordon {
			t.Errorf("spec.node defaults not applied: %+v", n)
		}
		if err := k8s.Get(ctx, keyOf(admissionSet(ns, "good-e")), got); err != nil {
			t.Fatal(err)
		}
		member := memberFor(got, setTarget{nodeID: "41"}, "")
		member.OwnerReferences, member.Finalizers = nil, nil
		if err := k8s.Create(ctx, member); err != nil {
			t.Errorf("the member of a set with every spec.node field refused: %v", err)
		}
		if n := member.Spec.Node; n == nil || n.Drain.OnTimeout != "Proceed" || *n.Drain.IgnoreDaemonSets || !n.Drain.DeleteEmptyDirData ||
			n.Drain.PodSelector == nil || *n.WaitReadySeconds != 300 || *n.Uncordon {
			t.Errorf("member spec.node %+v, want the set's", n)
		}
	})
}

// Whatever a member's own rules refuse, the set is refused for, with the
// same words: each bad template is tried as a set and as the member the
// controller would make of it (memberFor).
func TestAdmissionRefusesASetWhoseMembersWouldBeRefused(t *testing.T) {
	ns := newNamespace(t)
	ctx := context.Background()
	cases := []struct {
		name   string
		mutate func(*v1alpha1.NodeActionSetSpec)
		want   string
	}{
		{"rename without name", func(s *v1alpha1.NodeActionSetSpec) { s.Action = "rename" }, "action rename needs spec.parameters.name"},
		{"save_images without name", func(s *v1alpha1.NodeActionSetSpec) { s.Action = "save_images" }, "spec.parameters.name"},
		{"rebuild without image", func(s *v1alpha1.NodeActionSetSpec) { s.Action = "rebuild" }, "action rebuild needs spec.parameters.image"},
		{"restore with a non-numeric image", func(s *v1alpha1.NodeActionSetSpec) {
			s.Action, s.Parameters = "restore", &v1alpha1.ActionParameters{Image: "ubuntu"}
		}, "numeric id of a backup"},
		{"change_kernel without kernel", func(s *v1alpha1.NodeActionSetSpec) { s.Action = "change_kernel" }, "spec.parameters.kernel"},
		{"change_backup_policy without policy", func(s *v1alpha1.NodeActionSetSpec) { s.Action = "change_backup_policy" }, "spec.parameters.backupPolicy"},
		{"weekly backup without weekday", func(s *v1alpha1.NodeActionSetSpec) {
			s.Action, s.Parameters = "change_backup_policy", &v1alpha1.ActionParameters{BackupPolicy: &v1alpha1.BackupPolicy{Plan: "weekly"}}
		}, "weekday (SUN..SAT) is required when plan is weekly"},
		{"resize without size", func(s *v1alpha1.NodeActionSetSpec) { s.Action = "resize" }, "action resize needs spec.parameters.size"},
		{"resource without amount", func(s *v1alpha1.NodeActionSetSpec) {
			s.Action, s.Parameters = "resize", &v1alpha1.ActionParameters{Resource: "ram"}
		}, "resource and spec.parameters.amount go together"},
		{"recover without parameters", func(s *v1alpha1.NodeActionSetSpec) { s.Action = "recover" }, "spec.parameters.recover"},
		{"recover with an unknown operation", func(s *v1alpha1.NodeActionSetSpec) {
			s.Action, s.Parameters = "recover", &v1alpha1.ActionParameters{Recover: &v1alpha1.RecoverParameters{Operation: "REPAIR"}}
		}, "REBOOT, REBUILD, RECREATE"},
		{"a name with a trailing space", func(s *v1alpha1.NodeActionSetSpec) {
			s.Action, s.Parameters = "rename", &v1alpha1.ActionParameters{Name: "web "}
		}, "must not start or end with whitespace"},
		{"escalation on a reboot", func(s *v1alpha1.NodeActionSetSpec) { s.Escalation = &v1alpha1.Escalation{PowerOffAfterSeconds: 60} },
			"spec.escalation is only valid with action shutdown"},
		{"an unknown action", func(s *v1alpha1.NodeActionSetSpec) { s.Action = "explode" }, "spec.action"},
		{"a drain with no time", func(s *v1alpha1.NodeActionSetSpec) {
			s.Node = &v1alpha1.NodeSpec{Drain: &v1alpha1.DrainSpec{TimeoutSeconds: -1}}
		}, "spec.node.drain.timeoutSeconds"},
		{"backoffLimit over 10", func(s *v1alpha1.NodeActionSetSpec) { s.BackoffLimit = ptr.To(int32(11)) }, "spec.backoffLimit"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := admissionSet(ns, "bad")
			s.UID = "5e7a0000-0000-4000-8000-0000000000aa"
			tc.mutate(&s.Spec)
			member := memberFor(s, setTarget{nodeID: "41"}, "")
			member.OwnerReferences, member.Finalizers = nil, nil
			expectRefused(t, k8s.Create(ctx, member), tc.want)
			expectRefused(t, k8s.Create(ctx, s), tc.want)
		})
	}
}

// The template is fixed; the rollout settings, targets and runID are not.
func TestNodeActionSetTemplateIsImmutable(t *testing.T) {
	ns := newNamespace(t)
	ctx := context.Background()
	s := admissionSet(ns, "fixed")
	create(t, s)
	for name, change := range map[string]func(*v1alpha1.NodeActionSet){
		"action":     func(s *v1alpha1.NodeActionSet) { s.Spec.Action = "power_cycle" },
		"provider":   func(s *v1alpha1.NodeActionSet) { s.Spec.ProviderRef.Name = "other" },
		"parameters": func(s *v1alpha1.NodeActionSet) { s.Spec.Parameters = &v1alpha1.ActionParameters{Name: "x"} },
		"node":       func(s *v1alpha1.NodeActionSet) { s.Spec.Node = &v1alpha1.NodeSpec{} },
	} {
		got := &v1alpha1.NodeActionSet{}
		if err := k8s.Get(ctx, keyOf(s), got); err != nil {
			t.Fatal(err)
		}
		change(got)
		expectRefused(t, k8s.Update(ctx, got), "immutable", "create a new NodeActionSet")
		_ = name
	}
	got := &v1alpha1.NodeActionSet{}
	if err := k8s.Get(ctx, keyOf(s), got); err != nil {
		t.Fatal(err)
	}
	got.Spec.RunID, got.Spec.Paused, got.Spec.MaxUnavailable = "again", true, ptr.To(intstr.FromString("50%"))
	got.Spec.NodeIDs = append(got.Spec.NodeIDs, "43")
	got.Spec.Windows = []v1alpha1.MaintenanceWindow{{Schedule: "0 2 * * *", DurationMinutes: 60}}
	if err := k8s.Update(ctx, got); err != nil {
		t.Fatalf("changing runID, paused, maxUnavailable, nodeIDs and windows: %v", err)
	}
}

// The set's template carries every rule of a NodeAction's spec that is
// about the action (all but the ones on nodeID, confirm and immutability,
// which the set has its own forms of), word for word, and the same actions.
func TestNodeActionSetCarriesTheNodeActionRules(t *testing.T) {
	spec := func(file string) apiextensionsv1.JSONSchemaProps {
		t.Helper()
		data, err := os.ReadFile(filepath.Join("..", "config", "crd", "bases", file))
		if err != nil {
			t.Fatal(err)
		}
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := yaml.Unmarshal(data, crd); err != nil {
			t.Fatal(err)
		}
		return crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"]
	}
	na, set := spec("compute.nodeaction.dev_nodeactions.yaml"), spec("compute.nodeaction.dev_nodeactionsets.yaml")
	have := map[string]bool{}
	for _, r := range set.XValidations {
		have[r.Rule+"|"+r.Message+"|"+r.MessageExpression+"|"+r.FieldPath] = true
	}
	carried := 0
	for _, r := range na.XValidations {
		if strings.Contains(r.Rule, "nodeID") || strings.Contains(r.Rule, "oldSelf") {
			continue
		}
		carried++
		if !have[r.Rule+"|"+r.Message+"|"+r.MessageExpression+"|"+r.FieldPath] {
			t.Errorf("NodeAction rule %q (%s) is missing from NodeActionSet's spec", r.Rule, r.Message)
		}
	}
	if carried < 8 {
		t.Fatalf("only %d rules carried: the test reads the wrong schema", carried)
	}
	for _, field := range []string{"action", "parameters", "escalation", "node", "activeDeadlineSeconds", "backoffLimit", "providerRef"} {
		a, b := na.Properties[field], set.Properties[field]
		a.Description, b.Description = "", ""
		if !equality.Semantic.DeepEqual(a, b) {
			t.Errorf("spec.%s differs between NodeAction and NodeActionSet", field)
		}
	}
}
