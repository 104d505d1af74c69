package monitoring

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// prometheusRule is the part of the PrometheusRule in
// config/prometheus/alerts.yaml that Prometheus itself reads.
type prometheusRule struct {
	Kind string `json:"kind"`
	Spec struct {
		Groups []map[string]any `json:"groups"`
	} `json:"spec"`
}

// alertRules reads config/prometheus/alerts.yaml and returns its groups as
// a plain Prometheus rules file, and the alerts' names and expressions.
func alertRules(t *testing.T) (rulesFile []byte, exprs map[string]string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot, "config", "prometheus", "alerts.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var rule prometheusRule
	if err := yaml.Unmarshal(data, &rule); err != nil {
		t.Fatal(err)
	}
	if rule.Kind != "PrometheusRule" || len(rule.Spec.Groups) == 0 {
		t.Fatalf("config/prometheus/alerts.yaml is not a PrometheusRule with groups")
	}
	exprs = map[string]string{}
	for _, g := range rule.Spec.Groups {
		rules, _ := g["rules"].([]any)
		for _, r := range rules {
			r, _ := r.(map[string]any)
			if name, ok := r["alert"].(string); ok {
				exprs[name], _ = r["expr"].(string)
			}
		}
	}
	rulesFile, err = yaml.Marshal(map[string]any{"groups": rule.Spec.Groups})
	if err != nil {
		t.Fatal(err)
	}
	return rulesFile, exprs
}

// promtoolUnitTests is the part of config/prometheus/alerts_test.yaml the
// coverage check reads.
type promtoolUnitTests struct {
	RuleFiles []string `json:"rule_files"`
	Tests     []struct {
		Name           string `json:"name"`
		AlertRuleTests []struct {
			Alertname string `json:"alertname"`
			ExpAlerts []any  `json:"exp_alerts"`
		} `json:"alert_rule_test"`
	} `json:"tests"`
}

// `promtool test rules` runs config/prometheus/alerts_test.yaml against the
// alerts of config/prometheus/alerts.yaml (the PrometheusRule's groups,
// written as the plain rules file promtool reads). Every alert is tested
// both ways: at least once expected to fire, and at least once expected to
// stay quiet.
func TestAlertRulesWithPromtool(t *testing.T) {
	promtool := prometheusTool(t, "promtool")
	rules, exprs := alertRules(t)
	testFile := filepath.Join(repoRoot, "config", "prometheus", "alerts_test.yaml")
	testData, err := os.ReadFile(testFile)
	if err != nil {
		t.Fatal(err)
	}
	var unit promtoolUnitTests
	if err := yaml.Unmarshal(testData, &unit); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(unit.RuleFiles, []string{"alerts.rules.yaml"}) {
		t.Fatalf("alerts_test.yaml reads rule_files %v; want [alerts.rules.yaml] (the groups of alerts.yaml, which this test writes)", unit.RuleFiles)
	}
	fires, quiet := map[string]int{}, map[string]int{}
	for _, tc := range unit.Tests {
		for _, a := range tc.AlertRuleTests {
			if _, ok := exprs[a.Alertname]; !ok {
				t.Errorf("test %q checks alert %s, which alerts.yaml does not define", tc.Name, a.Alertname)
			}
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname]++
			} else {
				quiet[a.Alertname]++
			}
		}
	}
	for name := range exprs {
		if fires[name] == 0 || quiet[name] == 0 {
			t.Errorf("alert %s is tested firing %d times and quiet %d times; want both at least once", name, fires[name], quiet[name])
		}
	}

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "alerts.rules.yaml"), rules, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "alerts_test.yaml"), testData, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"check", "rules", "alerts.rules.yaml"}, {"test", "rules", "alerts_test.yaml"}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		t.Logf("promtool %s:\n%s", strings.Join(args, " "), out)
	}
}

// Every alert's expression parses and uses only metrics and labels the
// operator exports (besides up and process_start_time_seconds).
func TestAlertQueriesUseExportedMetrics(t *testing.T) {
	_, exprs := alertRules(t)
	var names, queries []string
	for name, expr := range exprs {
		names = append(names, name)
		queries = append(queries, expr)
	}
	series := exportedSeries(t)
	for i, r := range parseQueries(t, queries) {
		for _, p := range unexportedRefs(r, series) {
			t.Errorf("alert %s %s", names[i], p)
		}
	}
}
