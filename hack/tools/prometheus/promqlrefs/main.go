// Command promqlrefs parses PromQL queries with Prometheus's own parser and
// says which metrics and labels each one refers to, so that tests in the
// operator's module can check alerts and dashboards against the metrics the
// operator exports without importing Prometheus (and its dependencies).
//
// Input on stdin: a JSON array of queries. Output on stdout: a JSON array
// with one Refs per query, in the same order.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// Refs is what one query refers to.
type Refs struct {
	Query string `json:"query"`
	// Error is the parser's error; the other fields are then empty.
	Error     string     `json:"error,omitempty"`
	Selectors []Selector `json:"selectors,omitempty"`
	// LabelUses are labels named outside selectors (by/without, on/ignoring,
	// group_left/group_right, label_replace's source), each with the metrics
	// of the expression it applies to: one of them must carry the label.
	LabelUses []LabelUse `json:"labelUses,omitempty"`
}

// Selector is one vector selector: a metric name and the labels it matches on.
type Selector struct {
	Metric string   `json:"metric"`
	Labels []string `json:"labels,omitempty"`
}

// LabelUse is a label used on the result of an expression over Metrics.
type LabelUse struct {
	Label   string   `json:"label"`
	Where   string   `json:"where"`
	Metrics []string `json:"metrics"`
}

func main() {
	var queries []string
	if err := json.NewDecoder(os.Stdin).Decode(&queries); err != nil {
		fmt.Fprintln(os.Stderr, "promqlrefs: reading a JSON array of queries from stdin:", err)
		os.Exit(2)
	}
	p := parser.NewParser(parser.Options{})
	out := make([]Refs, 0, len(queries))
	for _, q := range queries {
		out = append(out, refs(p, q))
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		fmt.Fprintln(os.Stderr, "promqlrefs:", err)
		os.Exit(1)
	}
}

func refs(p parser.Parser, q string) Refs {
	r := Refs{Query: q}
	expr, err := p.ParseExpr(q)
	if err != nil {
		r.Error = err.Error()
		return r
	}
	parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
		switch n := node.(type) {
		case *parser.VectorSelector:
			s := Selector{Metric: n.Name}
			for _, m := range n.LabelMatchers {
				if m.Name != labels.MetricName {
					s.Labels = append(s.Labels, m.Name)
				}
			}
			r.Selectors = append(r.Selectors, s)
		case *parser.AggregateExpr:
			for _, l := range n.Grouping {
				r.LabelUses = append(r.LabelUses, LabelUse{Label: l, Where: n.Op.String() + " by/without", Metrics: metricsIn(n.Expr)})
			}
		case *parser.BinaryExpr:
			if n.VectorMatching != nil {
				both := append(metricsIn(n.LHS), metricsIn(n.RHS)...)
				for _, l := range append(slices.Clone(n.VectorMatching.MatchingLabels), n.VectorMatching.Include...) {
					r.LabelUses = append(r.LabelUses, LabelUse{Label: l, Where: "vector matching", Metrics: both})
				}
			}
		case *parser.Call:
			// label_replace(v, dst, replacement, src, regex): src must exist.
			if n.Func.Name == "label_replace" && len(n.Args) == 5 {
				if src, ok := n.Args[3].(*parser.StringLiteral); ok && src.Val != "" {
					r.LabelUses = append(r.LabelUses, LabelUse{Label: src.Val, Where: "label_replace source", Metrics: metricsIn(n.Args[0])})
				}
			}
		}
		return nil
	})
	return r
}

// metricsIn lists the metric names selected anywhere under node.
func metricsIn(node parser.Node) []string {
	var names []string
	parser.Inspect(node, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok && !slices.Contains(names, vs.Name) {
			names = append(names, vs.Name)
		}
		return nil
	})
	return names
}
