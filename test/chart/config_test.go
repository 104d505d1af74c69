package chart

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"helm.sh/helm/v4/pkg/chart/v2/lint"
	"helm.sh/helm/v4/pkg/chart/v2/lint/support"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// What must be the same in the chart and in config/: the API and who may
// do what. Each kind is compared on the fields that grant or define.
var compared = map[string][]string{
	"CustomResourceDefinition":         {"spec"},
	"ClusterRole":                      {"rules", "aggregationRule"},
	"Role":                             {"rules"},
	"ClusterRoleBinding":               {"roleRef", "subjects"},
	"RoleBinding":                      {"roleRef", "subjects"},
	"ServiceAccount":                   {},
	"ValidatingAdmissionPolicy":        {"spec"},
	"ValidatingAdmissionPolicyBinding": {"spec"},
}

// rbacAndAPI indexes the compared objects by kind/namespace/name, each
// reduced to the compared fields and its RBAC aggregation labels.
func rbacAndAPI(objs []*unstructured.Unstructured) map[string]map[string]any {
	out := map[string]map[string]any{}
	for _, o := range objs {
		fields, ok := compared[o.GetKind()]
		if !ok {
			continue
		}
		reduced := map[string]any{}
		for _, f := range fields {
			if v, ok := o.Object[f]; ok {
				reduced[f] = v
			}
		}
		for k, v := range o.GetLabels() {
			if strings.HasPrefix(k, "rbac.authorization.k8s.io/") {
				reduced["label "+k] = v
			}
		}
		out[fmt.Sprintf("%s %s/%s", o.GetKind(), o.GetNamespace(), o.GetName())] = reduced
	}
	return out
}

// disagreements lists where want (config/) and got (the chart) differ.
func disagreements(want, got map[string]map[string]any) []string {
	var out []string
	for k, w := range want {
		g, ok := got[k]
		switch {
		case !ok:
			out = append(out, k+" is in config/ but not in the chart")
		case !reflect.DeepEqual(w, g):
			for f := range w {
				if !reflect.DeepEqual(w[f], g[f]) {
					out = append(out, fmt.Sprintf("%s: %s differs", k, f))
				}
			}
			for f := range g {
				if _, ok := w[f]; !ok {
					out = append(out, fmt.Sprintf("%s: %s is only in the chart", k, f))
				}
			}
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			out = append(out, k+" is in the chart but not in config/")
		}
	}
	sort.Strings(out)
	return out
}

// The chart's default rendering has exactly config/'s CRDs, RBAC (roles,
// their rules and aggregation labels, bindings and subjects, the
// ServiceAccount) and admission policies, rendered into the namespace
// config/default uses. This holds however the chart was made.
func TestChartRBACAndCRDsMatchConfig(t *testing.T) {
	fromConfig, err := decodeObjects(kustomizeBuild(t, "config/default"))
	if err != nil {
		t.Fatal(err)
	}
	want := rbacAndAPI(fromConfig)
	got := rbacAndAPI(mustRender(t, "nodeaction-system", nil))
	if len(want) < 15 {
		t.Fatalf("config/default has only %d CRDs, RBAC objects and policies: the test reads the wrong thing", len(want))
	}
	for _, d := range disagreements(want, got) {
		t.Errorf("chart and config/ disagree: %s (run `make chart`)", d)
	}

	// The comparison sees a changed rule, a missing role and an extra one.
	changed := map[string]map[string]any{}
	for k, v := range want {
		changed[k] = v
	}
	for k := range changed {
		if strings.HasPrefix(k, "ClusterRole /nodeaction-manager-role") {
			changed[k] = map[string]any{"rules": []any{"everything"}}
		}
		if strings.HasPrefix(k, "CustomResourceDefinition /nodeactions.") {
			delete(changed, k)
		}
	}
	changed["ClusterRole /nodeaction-extra"] = map[string]any{}
	if d := disagreements(changed, want); len(d) != 3 {
		t.Errorf("the comparison found %d disagreements in a changed copy, want 3: %q", len(d), d)
	}
}

// A rendering that would run several replicas without leader election is
// refused with a message that says why.
func TestChartRefusesReplicasWithoutLeaderElection(t *testing.T) {
	_, err := renderChart("ops", map[string]any{"replicaCount": 2, "manager": map[string]any{"args": []any{"--metrics-bind-address=:8443", "--health-probe-bind-address=:8081"}}})
	if err == nil || !strings.Contains(err.Error(), "replicaCount above 1 needs --leader-elect") {
		t.Fatalf("rendering 2 replicas without --leader-elect: %v; want it refused", err)
	}
	if _, err := renderChart("ops", map[string]any{"replicaCount": 2}); err != nil {
		t.Fatalf("2 replicas with the default --leader-elect: %v", err)
	}
}

// `helm lint` (the SDK's linter, as the CLI runs it) finds nothing worse
// than information in the chart, with the defaults and with the values of
// every switch flipped.
func TestChartLints(t *testing.T) {
	for name, values := range map[string]map[string]any{
		"defaults":             nil,
		"every switch flipped": everySwitch,
	} {
		result := lint.RunAll(filepath.Join(repoRoot, "dist", "chart"), values, "nodeaction-system")
		for _, m := range result.Messages {
			if m.Severity > support.InfoSev {
				t.Errorf("helm lint with %s: %v", name, m)
			}
		}
	}
}

// The linter finds a broken template, so a clean lint means something.
func TestChartLintCatchesABrokenTemplate(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []struct{ path, content string }{
		{"Chart.yaml", "apiVersion: v2\nname: broken\nversion: 0.1.0\n"},
		{"values.yaml", "{}\n"},
		{"templates/bad.yaml", "kind: ConfigMap\nmetadata:\n  name: {{ .Values.missing.field }}\n"},
	} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, f.path)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f.path), []byte(f.content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if lint.RunAll(dir, nil, "default").HighestSeverity != support.ErrorSev {
		t.Fatal("the linter passed a template that cannot render")
	}
}
