package main

import (
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"golang.org/x/term"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/duration"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodeaction/nodeaction-operator/api/v1alpha1"
)

type statusOptions struct {
	selector      string
	allNamespaces bool
	watch         bool
	timeout       time.Duration
}

func newStatusCommand(s *session) *cobra.Command {
	o := &statusOptions{}
	cmd := &cobra.Command{
		Use:   "status [NAME | -l SELECTOR]",
		Short: "Show NodeActions: phase, reason, age, provider action id and the latest message",
		Long: `Show NodeActions in a table that fits the terminal: name, provider, node,
action, phase, the Ready condition's reason, age, the provider's action id,
and the latest message (cut to the terminal's width; COLUMNS overrides it).

With --watch the table is printed again after every change; watching one
NAME ends when it finishes.`,
		Example: `  kubectl nodeaction status
  kubectl nodeaction status reboot-3164494-x7k2p --watch
  kubectl nodeaction status -l team=sre -A`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := ""
			if len(args) == 1 {
				name = args[0]
			}
			return o.run(cmd, s, name)
		},
	}
	cmd.Flags().StringVarP(&o.selector, "selector", "l", "", "label selector (key=value,...) of the NodeActions to show")
	cmd.Flags().BoolVarP(&o.allNamespaces, "all-namespaces", "A", false, "show NodeActions of every namespace")
	cmd.Flags().BoolVarP(&o.watch, "watch", "w", false, "print the table again after every change")
	cmd.Flags().DurationVar(&o.timeout, "timeout", 0, "with --watch, stop after this long (0: until interrupted, or until NAME finishes)")
	return cmd
}

func (o *statusOptions) run(cmd *cobra.Command, s *session, name string) error {
	if name != "" && o.selector != "" {
		return fmt.Errorf("give a NAME or -l SELECTOR, not both")
	}
	c, ns, err := s.client()
	if err != nil {
		return err
	}
	var opts []client.ListOption
	if !o.allNamespaces {
		opts = append(opts, client.InNamespace(ns))
	}
	if o.selector != "" {
		sel, err := labels.Parse(o.selector)
		if err != nil {
			return fmt.Errorf("-l %q: %v", o.selector, err)
		}
		opts = append(opts, client.MatchingLabelsSelector{Selector: sel})
	}
	if name != "" {
		opts = append(opts, client.MatchingFieldsSelector{Selector: fields.OneTermEqualSelector("metadata.name", name)})
	}
	width := terminalWidth(s.streams.Out)
	printed := false
	return watchNodeActions(cmd.Context(), c, o.timeout, func(items map[string]*v1alpha1.NodeAction) (bool, error) {
		if name != "" && len(items) == 0 {
			return true, fmt.Errorf("nodeaction %s not found in namespace %s", name, ns)
		}
		if len(items) == 0 && !o.watch {
			fmt.Fprintf(s.streams.ErrOut, "No NodeActions found%s.\n", where(o.allNamespaces, ns))
			return true, nil
		}
		if printed {
			fmt.Fprintln(s.streams.Out)
		}
		printTable(s.streams.Out, sorted(items), o.allNamespaces, width, time.Now())
		printed = true
		if !o.watch {
			return true, nil
		}
		if name != "" {
			for _, na := range items {
				return na.Status.Phase.Finished() && na.Status.RunID == na.Spec.RunID, nil
			}
		}
		return false, nil
	}, opts...)
}

func where(all bool, ns string) string {
	if all {
		return ""
	}
	return " in namespace " + ns
}

func sorted(items map[string]*v1alpha1.NodeAction) []*v1alpha1.NodeAction {
	out := make([]*v1alpha1.NodeAction, 0, len(items))
	for _, na := range items {
		out = append(out, na)
	}
	sort.Slice(out, func(i, j int) bool { return key(out[i]) < key(out[j]) })
	return out
}

// terminalWidth is COLUMNS when set, else the terminal's width, else 0
// (not a terminal: nothing is cut).
func terminalWidth(out io.Writer) int {
	if n, err := strconv.Atoi(os.Getenv("COLUMNS")); err == nil && n > 0 {
		return n
	}
	if f, ok := out.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		if w, _, err := term.GetSize(int(f.Fd())); err == nil {
			return w
		}
	}
	return 0
}

// Columns that give way, the widest first, when the terminal is too narrow
// for the others and a useful MESSAGE.
var droppable = []string{"ACTION ID", "PROVIDER", "NODE"}

const (
	columnGap    = 2
	minMessage   = 20
	messageTitle = "MESSAGE"
)

// printTable writes the NodeActions as aligned columns. With a width, the
// MESSAGE column takes what the others leave, ACTION ID, PROVIDER and NODE
// give way (the widest first) while that is less than minMessage, and no
// line is longer than width. With width 0 nothing is cut.
func printTable(out io.Writer, items []*v1alpha1.NodeAction, withNamespace bool, width int, now time.Time) {
	header := []string{"NAME", "PROVIDER", "NODE", "ACTION", "PHASE", "REASON", "AGE", "ACTION ID", messageTitle}
	if withNamespace {
		header = append([]string{"NAMESPACE"}, header...)
	}
	rows := [][]string{header}
	for _, na := range items {
		phase := string(na.Status.Phase)
		if phase == "" {
			phase = "Pending"
		}
		row := []string{na.Name, na.Spec.ProviderRef.Name, na.Spec.NodeID, na.Spec.Action, phase, readyReason(na),
			duration.HumanDuration(now.Sub(na.CreationTimestamp.Time)), na.Status.ProviderActionID, oneLine(na.Status.Message)}
		if withNamespace {
			row = append([]string{na.Namespace}, row...)
		}
		rows = append(rows, row)
	}
	widths := func() (w []int, fixed int) {
		w = make([]int, len(rows[0]))
		for _, r := range rows {
			for i, cell := range r {
				w[i] = max(w[i], utf8.RuneCountInString(cell))
			}
		}
		for _, cw := range w[:len(w)-1] {
			fixed += cw + columnGap
		}
		return w, fixed
	}
	w, fixed := widths()
	for width > 0 && width-fixed < minMessage {
		widest := -1
		for i, title := range rows[0] {
			if slices.Contains(droppable, title) && (widest < 0 || w[i] > w[widest]) {
				widest = i
			}
		}
		if widest < 0 {
			break
		}
		for r := range rows {
			rows[r] = slices.Delete(rows[r], widest, widest+1)
		}
		w, fixed = widths()
	}
	for _, r := range rows {
		var b strings.Builder
		for i, cell := range r[:len(r)-1] {
			b.WriteString(cell)
			b.WriteString(strings.Repeat(" ", w[i]-utf8.RuneCountInString(cell)+columnGap))
		}
		b.WriteString(r[len(r)-1])
		line := strings.TrimRight(b.String(), " ")
		if width > 0 {
			line = cut(line, width)
		}
		fmt.Fprintln(out, line)
	}
}

// cut shortens s to at most n runes, marking the cut with "…".
func cut(s string, n int) string {
	if n <= 0 {
		return ""
	}
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}
