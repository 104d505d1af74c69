package monitoring

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
)

func init() {
	// Panel targets on a Prometheus datasource decode as Prometheus queries.
	cog.NewRuntime().RegisterDataqueryVariant(prometheus.VariantConfig())
}

// loadDashboard decodes config/grafana/nodeaction-operator.json strictly
// into Grafana's dashboard schema (grafana-foundation-sdk): an unknown or
// mistyped field fails, as does a missing required one.
func loadDashboard(t *testing.T) *dashboard.Dashboard {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot, "config", "grafana", "nodeaction-operator.json"))
	if err != nil {
		t.Fatal(err)
	}
	d, err := decodeDashboard(data)
	if err != nil {
		t.Fatalf("config/grafana/nodeaction-operator.json is not a Grafana dashboard: %v", err)
	}
	return d
}

// decodeDashboard checks data strictly against the schema, then decodes
// it. (The SDK's strict decoding reports every error but, in v0.0.22, keeps
// no panel, so the model comes from its ordinary decoding.)
func decodeDashboard(data []byte) (*dashboard.Dashboard, error) {
	if err := sdkError((&dashboard.Dashboard{}).UnmarshalJSONStrict(data)); err != nil {
		return nil, err
	}
	d := &dashboard.Dashboard{}
	if err := json.Unmarshal(data, d); err != nil {
		return nil, err
	}
	return d, sdkError(d.Validate())
}

// sdkError turns the SDK's empty error list (a non-nil error holding no
// error) into nil.
func sdkError(err error) error {
	if errs, ok := err.(cog.BuildErrors); ok && len(errs) == 0 {
		return nil
	}
	return err
}

// The strict decoding catches a misspelt field and a wrong type, so a
// dashboard that loads here loads in Grafana.
func TestDashboardDecodingIsStrict(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(repoRoot, "config", "grafana", "nodeaction-operator.json"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := decodeDashboard(data); err != nil {
		t.Fatalf("the dashboard itself does not load: %v", err)
	}
	for name, broken := range map[string]string{
		"misspelt field": strings.Replace(string(data), `"gridPos"`, `"gridPosition"`, 1),
		"wrong type":     strings.Replace(string(data), `"schemaVersion": 41`, `"schemaVersion": "41"`, 1),
	} {
		if broken == string(data) {
			t.Fatalf("%s: the replacement did not apply", name)
		}
		if _, err := decodeDashboard([]byte(broken)); err == nil {
			t.Errorf("a dashboard with a %s loads", name)
		}
	}
}

// dashboardQuery is one panel target.
type dashboardQuery struct {
	panel, expr string
}

func dashboardQueries(t *testing.T, d *dashboard.Dashboard) []dashboardQuery {
	t.Helper()
	var out []dashboardQuery
	for _, p := range d.Panels {
		if p.Panel == nil {
			t.Errorf("the dashboard has a row; keep it flat (rows hide panels from this check)")
			continue
		}
		title := *p.Panel.Title
		for _, target := range p.Panel.Targets {
			q, ok := target.(*prometheus.Dataquery)
			if !ok {
				t.Errorf("panel %q has a %T target, want a Prometheus query", title, target)
				continue
			}
			out = append(out, dashboardQuery{panel: title, expr: q.Expr})
		}
	}
	return out
}

// The dashboard loads as a Grafana dashboard: every panel has a title, a
// description, Prometheus queries on the $datasource variable, and a place
// on the 24-column grid that no other panel takes.
func TestDashboardLoads(t *testing.T) {
	d := loadDashboard(t)
	if d.Uid == nil || *d.Uid != "nodeaction-operator" || d.Title == nil || *d.Title == "" {
		t.Errorf("dashboard uid %v title %v: want uid nodeaction-operator and a title", d.Uid, d.Title)
	}
	type cell struct{ x, y uint32 }
	taken := map[cell]string{}
	ids := map[uint32]bool{}
	for _, p := range d.Panels {
		if p.Panel == nil {
			continue
		}
		panel := p.Panel
		title := ""
		if panel.Title != nil {
			title = *panel.Title
		}
		if title == "" || panel.Description == nil || *panel.Description == "" {
			t.Errorf("panel %q lacks a title or a description", title)
		}
		if panel.Id == nil || ids[*panel.Id] {
			t.Errorf("panel %q has no id or a duplicate one", title)
		} else {
			ids[*panel.Id] = true
		}
		if panel.Datasource == nil || panel.Datasource.Type == nil || *panel.Datasource.Type != "prometheus" ||
			panel.Datasource.Uid == nil || *panel.Datasource.Uid != "${datasource}" {
			t.Errorf("panel %q: datasource %+v, want Prometheus ${datasource}", title, panel.Datasource)
		}
		if len(panel.Targets) == 0 {
			t.Errorf("panel %q has no query", title)
		}
		g := panel.GridPos
		if g == nil || g.W == 0 || g.H == 0 || g.X+g.W > 24 {
			t.Errorf("panel %q: gridPos %+v does not fit the 24-column grid", title, g)
			continue
		}
		for x := g.X; x < g.X+g.W; x++ {
			for y := g.Y; y < g.Y+g.H; y++ {
				if other, ok := taken[cell{x, y}]; ok {
					t.Fatalf("panels %q and %q overlap at %d,%d", other, title, x, y)
				}
				taken[cell{x, y}] = title
			}
		}
	}
	if len(ids) < 10 {
		t.Errorf("the dashboard has %d panels; want the overview the README promises", len(ids))
	}
}

// What the dashboard is for: every metric the operator exports is on it,
// actions by result and by provider type, 429s, and the stuck-action view
// the NodeActionStuck alert points at.
func TestDashboardShowsWhatItPromises(t *testing.T) {
	d := loadDashboard(t)
	all := ""
	for _, q := range dashboardQueries(t, d) {
		all += q.expr + "\n"
	}
	for name := range exportedSeries(t) {
		if strings.HasPrefix(name, "nodeaction_") && !strings.HasSuffix(name, "_sum") && !strings.HasSuffix(name, "_count") && !strings.Contains(all, name) {
			t.Errorf("no panel shows %s", name)
		}
	}
	for what, re := range map[string]string{
		"actions by result":        `sum by \(result\) \([^\n]*nodeaction_actions_total`,
		"actions by provider type": `sum by \(provider_type\) \([^\n]*nodeaction_actions_total`,
		"provider 429s":            `nodeaction_provider_requests_total\{code="429"`,
		"stuck actions":            `min_over_time\([^\n]*nodeaction_inflight_actions[^\n]*\[1h:5m\]\)`,
		"durations":                `histogram_quantile\([^\n]*nodeaction_action_duration_seconds_bucket`,
		"rate-limit waits":         `rate\(nodeaction_rate_limit_wait_seconds_total`,
	} {
		if !regexp.MustCompile(re).MatchString(all) {
			t.Errorf("no panel shows %s (no query matches %s)", what, re)
		}
	}
}

// Grafana's own variables, given values so that Prometheus's parser reads
// the query as Grafana would send it.
var grafanaIntervals = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "6h")

// Every dashboard query, and every template variable's label_values(),
// parses and uses only metrics and labels the operator exports; every
// variable a query uses is defined.
func TestDashboardQueriesUseExportedMetrics(t *testing.T) {
	d := loadDashboard(t)
	series := exportedSeries(t)
	defined := map[string]bool{}
	labelValues := regexp.MustCompile(`^label_values\((\w+),\s*(\w+)\)$`)
	for _, v := range d.Templating.List {
		defined[v.Name] = true
		if v.Type != dashboard.VariableTypeQuery {
			continue
		}
		query := ""
		if v.Query != nil && v.Query.String != nil {
			query = *v.Query.String
		}
		m := labelValues.FindStringSubmatch(query)
		if m == nil {
			t.Errorf("variable %s: query %q, want label_values(metric, label)", v.Name, query)
			continue
		}
		if labels, ok := series[m[1]]; !ok || !slices.Contains(labels, m[2]) {
			t.Errorf("variable %s: %s has no label %s", v.Name, m[1], m[2])
		}
	}
	queries := dashboardQueries(t, d)
	var exprs []string
	variable := regexp.MustCompile(`\$\{?(\w+)`)
	for _, q := range queries {
		expr := grafanaIntervals.Replace(q.expr)
		for _, m := range variable.FindAllStringSubmatch(expr, -1) {
			if !defined[m[1]] {
				t.Errorf("panel %q uses $%s, which the dashboard does not define", q.panel, m[1])
			}
		}
		exprs = append(exprs, expr)
	}
	if len(exprs) == 0 {
		t.Fatal("no queries found")
	}
	for i, r := range parseQueries(t, exprs) {
		for _, p := range unexportedRefs(r, series) {
			t.Errorf("panel %q: %s: %s", queries[i].panel, fmt.Sprintf("%.80s", queries[i].expr), p)
		}
	}
}
