// Package monitoring tests what config/ gives Prometheus and Grafana: the
// alert rules, run by promtool on synthetic series
// (config/prometheus/alerts_test.yaml), and the Grafana dashboard
// (config/grafana), whose queries, like the alerts', may use only the
// metrics and labels the operator exports. PromQL is read by Prometheus's
// own parser (bin/promqlrefs, built with promtool from
// hack/tools/prometheus by `make promtool`).
package monitoring

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nodeaction/nodeaction-operator/internal/metrics"
)

var repoRoot = func() string {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		panic(err)
	}
	return root
}()

// prometheusTool returns bin/<name>-<version>, the version being the one
// hack/tools/prometheus/go.mod pins (as the Makefile names them).
func prometheusTool(t *testing.T, name string) string {
	t.Helper()
	mod, err := os.ReadFile(filepath.Join(repoRoot, "hack", "tools", "prometheus", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s*(?:require\s+)?github.com/prometheus/prometheus (v\S+)`).FindSubmatch(mod)
	if m == nil {
		t.Fatal("hack/tools/prometheus/go.mod pins no github.com/prometheus/prometheus")
	}
	bin := filepath.Join(repoRoot, "bin", name+"-"+string(m[1]))
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s is missing: run `make promtool` (it builds promtool and promqlrefs from Go modules)", bin)
	}
	return bin
}

// queryRefs is what bin/promqlrefs says one query refers to.
type queryRefs struct {
	Query     string `json:"query"`
	Error     string `json:"error"`
	Selectors []struct {
		Metric string   `json:"metric"`
		Labels []string `json:"labels"`
	} `json:"selectors"`
	LabelUses []struct {
		Label   string   `json:"label"`
		Where   string   `json:"where"`
		Metrics []string `json:"metrics"`
	} `json:"labelUses"`
}

// parseQueries runs every query through Prometheus's parser.
func parseQueries(t *testing.T, queries []string) []queryRefs {
	t.Helper()
	in, err := json.Marshal(queries)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(prometheusTool(t, "promqlrefs"))
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("promqlrefs: %v\n%s", err, stderr.String())
	}
	var refs []queryRefs
	if err := json.Unmarshal(out, &refs); err != nil {
		t.Fatal(err)
	}
	if len(refs) != len(queries) {
		t.Fatalf("promqlrefs answered %d queries of %d", len(refs), len(queries))
	}
	return refs
}

// Labels Prometheus adds to every scraped series of the manager (target
// labels of the Prometheus Operator's ServiceMonitor). namespace is not
// among them: the ServiceMonitor honours the metrics' own namespace label.
var targetLabels = []string{"job", "instance", "pod", "service", "endpoint", "container"}

// exportedSeries returns, for every series name a query may use, the labels
// it has: the operator's nodeaction_* metrics (from internal/metrics, with
// a histogram's _bucket, _sum and _count), and the scrape's own up and the
// process collector's start time, which the alerts use.
func exportedSeries(t *testing.T) map[string][]string {
	t.Helper()
	out := map[string][]string{
		"up":                         slices.Clone(targetLabels),
		"process_start_time_seconds": slices.Clone(targetLabels),
	}
	desc := regexp.MustCompile(`fqName: "([^"]+)".*variableLabels: \{([^}]*)\}`)
	for _, c := range metrics.Collectors {
		ch := make(chan *prometheus.Desc, 4)
		c.Describe(ch)
		close(ch)
		for d := range ch {
			m := desc.FindStringSubmatch(d.String())
			if m == nil {
				t.Fatalf("cannot read %s", d)
			}
			labels := slices.Clone(targetLabels)
			for _, l := range strings.Split(m[2], ",") {
				if l = strings.TrimSpace(l); l != "" {
					labels = append(labels, l)
				}
			}
			if _, isHistogram := c.(*prometheus.HistogramVec); isHistogram {
				out[m[1]+"_bucket"] = append(slices.Clone(labels), "le")
				out[m[1]+"_sum"] = labels
				out[m[1]+"_count"] = labels
			} else {
				out[m[1]] = labels
			}
		}
	}
	if len(out) < 8 {
		t.Fatalf("read only %d series from internal/metrics", len(out))
	}
	return out
}

// unexportedRefs lists what a parsed query uses that the operator does not
// export: unknown metrics, labels a selected metric does not have, and
// labels grouped or matched on that none of the metrics below them has.
func unexportedRefs(r queryRefs, series map[string][]string) []string {
	if r.Error != "" {
		return []string{"does not parse: " + r.Error}
	}
	var problems []string
	if len(r.Selectors) == 0 {
		problems = append(problems, "selects no metric")
	}
	for _, s := range r.Selectors {
		labels, ok := series[s.Metric]
		if !ok {
			problems = append(problems, fmt.Sprintf("uses metric %q, which the operator does not export", s.Metric))
			continue
		}
		for _, l := range s.Labels {
			if !slices.Contains(labels, l) {
				problems = append(problems, fmt.Sprintf("selects on label %q, which %s does not have (it has %v)", l, s.Metric, labels))
			}
		}
	}
	for _, u := range r.LabelUses {
		found := false
		for _, m := range u.Metrics {
			found = found || slices.Contains(series[m], u.Label)
		}
		if !found {
			problems = append(problems, fmt.Sprintf("uses label %q (%s) on %v, none of which has it", u.Label, u.Where, u.Metrics))
		}
	}
	return problems
}

// The check itself finds each kind of mistake, so a passing alert or
// dashboard test means something.
func TestUnexportedRefsCatchesMistakes(t *testing.T) {
	series := exportedSeries(t)
	queries := map[string]string{
		`sum(rate(nodeaction_actions_total[5m]))`:                                                    "",
		`histogram_quantile(0.9, sum by (le) (rate(nodeaction_action_duration_seconds_bucket[5m])))`: "",
		`sum by (namespace, provider) (nodeaction_inflight_actions)`:                                 "",
		`nodeaction_action_total`:                                                                    `metric "nodeaction_action_total"`,
		`nodeaction_actions_total{reason="Completed"}`:                                               `label "reason"`,
		`sum by (namespace) (nodeaction_actions_total)`:                                              `label "namespace"`,
		`nodeaction_inflight_actions * on (provider_type) group_left nodeaction_actions_total`:       "",
		`nodeaction_inflight_actions * on (node) group_left nodeaction_actions_total`:                `label "node"`,
		`sum(rate(nodeaction_actions_total[5m])`:                                                     "does not parse",
		`max(up{job="x"}) by (pod)`:                                                                  "",
		`sum by (le) (rate(nodeaction_action_duration_seconds_sum[5m]))`:                             `label "le"`,
	}
	var list []string
	for q := range queries {
		list = append(list, q)
	}
	for _, r := range parseQueries(t, list) {
		problems := strings.Join(unexportedRefs(r, series), "; ")
		want := queries[r.Query]
		switch {
		case want == "" && problems != "":
			t.Errorf("%s: flagged %s", r.Query, problems)
		case want != "" && !strings.Contains(problems, want):
			t.Errorf("%s: want a problem naming %s, got %q", r.Query, want, problems)
		}
	}
}
