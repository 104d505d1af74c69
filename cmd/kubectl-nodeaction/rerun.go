package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodeaction/nodeaction-operator/api/v1alpha1"
)

func newRerunCommand(s *session) *cobra.Command {
	var wait bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "rerun NAME",
		Short: "Run a NodeAction's action again (sets a new spec.runID)",
		Long: `Run a NodeAction's action again by setting spec.runID to a new value (the
current time, printed). The operator starts the new run when the current
one, if any, has ended; status.history keeps the earlier runs' outcomes.
A re-run needs the same permissions as creating the NodeAction.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ns, err := s.client()
			if err != nil {
				return err
			}
			na := &v1alpha1.NodeAction{}
			if err := c.Get(cmd.Context(), client.ObjectKey{Namespace: ns, Name: args[0]}, na); err != nil {
				return explain(err, fmt.Sprintf("nodeaction %s in namespace %s", args[0], ns))
			}
			before := na.DeepCopy()
			na.Spec.RunID = newRunID(time.Now(), na.Spec.RunID)
			// The resourceVersion precondition: a run started by someone
			// else meanwhile is not run a third time.
			if err := c.Patch(cmd.Context(), na, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
				return explain(err, "nodeaction "+args[0])
			}
			fmt.Fprintf(s.streams.Out, "nodeaction.compute.nodeaction.dev/%s: new run %s (spec.runID, was %q)\n", na.Name, na.Spec.RunID, before.Spec.RunID)
			if !before.Status.Phase.Finished() && before.Status.Phase != "" {
				fmt.Fprintf(s.streams.Out, "the current run is %s: the new one starts when it ends\n", before.Status.Phase)
			}
			if !wait {
				return nil
			}
			return follow(cmd.Context(), c, s.streams.Out, na, timeout)
		},
	}
	cmd.Flags().BoolVar(&wait, "wait", false, "follow the new run until it succeeds or fails; exit 1 if it fails")
	cmd.Flags().DurationVar(&timeout, "timeout", 0, "with --wait, give up after this long (0: wait as long as it takes)")
	return cmd
}

// newRunID is the time in UTC to the millisecond, which sorts and says when
// the run was asked for; never the current value.
func newRunID(now time.Time, current string) string {
	id := now.UTC().Format("20060102t150405.000z")
	if id == current {
		id = now.UTC().Add(time.Millisecond).Format("20060102t150405.000z")
	}
	return id
}
