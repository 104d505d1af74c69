package install

import (
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/nodeaction/nodeaction-operator/api/v1alpha1"
	"github.com/nodeaction/nodeaction-operator/internal/shard"
)

// config/sharding (docs/sharding.md): config/default plus one Deployment
// per shard, each with a valid --shard that matches its label, no two
// Deployments selecting the same pods, and the metrics Service selecting
// every manager's pods.
func TestShardingOverlay(t *testing.T) {
	objs, err := decodeObjects(kustomizeBuild(t, "config/sharding"))
	if err != nil {
		t.Fatal(err)
	}
	var deployments []*appsv1.Deployment
	var metrics *corev1.Service
	for _, o := range objs {
		switch o.GetKind() {
		case "Deployment":
			d := &appsv1.Deployment{}
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, d); err != nil {
				t.Fatal(err)
			}
			deployments = append(deployments, d)
		case "Service":
			if strings.Contains(o.GetName(), "metrics") {
				metrics = &corev1.Service{}
				if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, metrics); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	shards := map[string]string{} // Deployment → --shard
	for _, d := range deployments {
		name := ""
		for _, a := range d.Spec.Template.Spec.Containers[0].Args {
			if v, ok := strings.CutPrefix(a, "--shard="); ok {
				name = v
			}
		}
		if _, err := shard.Parse(name); err != nil {
			t.Errorf("Deployment %s: %v", d.Name, err)
		}
		if d.Labels[v1alpha1.LabelShard] != name {
			t.Errorf("Deployment %s runs --shard=%q but is labelled %q", d.Name, name, d.Labels[v1alpha1.LabelShard])
		}
		if d.Namespace != "nodeaction-system" || d.Spec.Template.Spec.ServiceAccountName != "nodeaction-controller-manager" {
			t.Errorf("Deployment %s/%s runs as %s, want config/default's namespace and ServiceAccount", d.Namespace, d.Name, d.Spec.Template.Spec.ServiceAccountName)
		}
		if !slices.Contains(d.Spec.Template.Spec.Containers[0].Args, "--leader-elect") {
			t.Errorf("Deployment %s does not elect a leader", d.Name)
		}
		shards[d.Name] = name
		for _, other := range deployments {
			sel := labels.SelectorFromSet(other.Spec.Selector.MatchLabels)
			if other != d && sel.Matches(labels.Set(d.Spec.Template.Labels)) {
				t.Errorf("Deployment %s selects Deployment %s's pods", other.Name, d.Name)
			}
		}
		if metrics == nil || !labels.SelectorFromSet(metrics.Spec.Selector).Matches(labels.Set(d.Spec.Template.Labels)) {
			t.Errorf("the metrics Service does not select Deployment %s's pods", d.Name)
		}
	}
	want := map[string]string{"nodeaction-controller-manager": "", "nodeaction-controller-manager-shard-a": "shard-a", "nodeaction-controller-manager-shard-b": "shard-b"}
	if len(shards) != len(want) {
		t.Fatalf("Deployments %v, want %v", shards, want)
	}
	for d, s := range want {
		if got, ok := shards[d]; !ok || got != s {
			t.Errorf("Deployment %s: --shard=%q, want %q", d, got, s)
		}
	}
	if n := strings.Count(string(kustomizeBuild(t, "config/sharding")), "\nkind: Namespace\n"); n != 1 {
		t.Errorf("%d Namespaces, want 1", n)
	}
}
