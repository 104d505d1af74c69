package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodeaction/nodeaction-operator/api/v1alpha1"
)

var errNotConfirmed = errors.New("not confirmed: nothing changed")

func newRetryCommand(s *session) *cobra.Command {
	var yes, wait bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "retry NAME",
		Short: "Submit again a NodeAction whose submission's outcome is unknown (reason SubmissionUnknown)",
		Long: `A NodeAction stops with reason SubmissionUnknown when the provider's answer
to its submission was lost and the provider cannot show whether it ran the
action. Check the VM first: if the action did not run, retry asks the
operator to submit it once more, by setting the annotation
compute.nodeaction.dev/retry-submission to the current status.attemptID.

retry shows what is known and asks before it changes anything (--yes skips
the question). It refuses a NodeAction that is not stopped with reason
SubmissionUnknown. A retry needs the same permissions as creating the
NodeAction.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ns, err := s.client()
			if err != nil {
				return err
			}
			na, err := retry(cmd.Context(), c, client.ObjectKey{Namespace: ns, Name: args[0]}, s.streams.Out, func(shown *v1alpha1.NodeAction) error {
				if yes {
					return nil
				}
				return confirm(s.streams.In, s.streams.Out, shown)
			})
			if err != nil {
				return err
			}
			if !wait {
				return nil
			}
			return follow(cmd.Context(), c, s.streams.Out, na, timeout)
		},
	}
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	cmd.Flags().BoolVar(&wait, "wait", false, "follow the new attempt until it succeeds or fails; exit 1 if it fails")
	cmd.Flags().DurationVar(&timeout, "timeout", 0, "with --wait, give up after this long (0: wait as long as it takes)")
	return cmd
}

// retry reads the NodeAction, refuses unless it stopped with reason
// SubmissionUnknown, shows what is known, asks (ask), then sets the retry
// annotation to the attempt id it showed, in a write that fails if the
// NodeAction changed since it was read. Attempt ids are copied from status,
// never made up.
func retry(ctx context.Context, c client.Client, nn client.ObjectKey, out io.Writer, ask func(*v1alpha1.NodeAction) error) (*v1alpha1.NodeAction, error) {
	na := &v1alpha1.NodeAction{}
	if err := c.Get(ctx, nn, na); err != nil {
		return nil, explain(err, fmt.Sprintf("nodeaction %s in namespace %s", nn.Name, nn.Namespace))
	}
	if err := retryable(na); err != nil {
		return nil, err
	}
	attempt := na.Status.AttemptID
	if na.Annotations[v1alpha1.AnnotationRetrySubmission] == attempt {
		return nil, fmt.Errorf("a retry of attempt %s of nodeaction %s was already asked for (annotation %s); the operator has not acted on it yet", attempt, na.Name, v1alpha1.AnnotationRetrySubmission)
	}
	describeUnknown(out, na)
	if err := ask(na); err != nil {
		return nil, err
	}
	before := na.DeepCopy()
	if na.Annotations == nil {
		na.Annotations = map[string]string{}
	}
	na.Annotations[v1alpha1.AnnotationRetrySubmission] = attempt
	if err := c.Patch(ctx, na, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
		if apierrors.IsConflict(err) {
			return nil, fmt.Errorf("nodeaction %s changed while you were deciding; nothing was retried: run retry again to see its new state", na.Name)
		}
		return nil, explain(err, "nodeaction "+na.Name)
	}
	fmt.Fprintf(out, "nodeaction.compute.nodeaction.dev/%s: retry of attempt %s requested\n", na.Name, attempt)
	return na, nil
}

// retryable says why a NodeAction cannot be retried, in one line, or nil.
func retryable(na *v1alpha1.NodeAction) error {
	reason := readyReason(na)
	if na.Status.Phase == v1alpha1.PhaseFailed && reason == v1alpha1.ReasonSubmissionUnknown && na.Status.AttemptID != "" {
		return nil
	}
	state := string(na.Status.Phase)
	if state == "" {
		state = "Pending"
	}
	if reason != "" {
		state += " (reason " + reason + ")"
	}
	hint := ""
	switch {
	case na.Status.Phase.Finished():
		hint = fmt.Sprintf("; to run the action again use: kubectl nodeaction rerun %s", na.Name)
	default:
		hint = "; the operator is still working on it"
	}
	return fmt.Errorf("nodeaction %s is %s, not stopped with reason %s: retry only resubmits an action whose submission's outcome is unknown%s",
		na.Name, state, v1alpha1.ReasonSubmissionUnknown, hint)
}

// describeUnknown shows what is known about the lost submission.
func describeUnknown(out io.Writer, na *v1alpha1.NodeAction) {
	fmt.Fprintf(out, "NodeAction %s/%s stopped: the provider's answer to its submission was lost.\n", na.Namespace, na.Name)
	show := func(label, value string) {
		if value != "" {
			fmt.Fprintf(out, "  %-18s %s\n", label+":", value)
		}
	}
	show("Provider", na.Spec.ProviderRef.Name)
	show("Node", na.Spec.NodeID)
	action := na.Spec.Action
	if na.Status.ProviderAction != "" && na.Status.ProviderAction != action {
		action += " (sent as " + na.Status.ProviderAction + ")"
	}
	show("Action", action)
	show("Attempt", na.Status.AttemptID)
	if na.Status.SubmittedAt != nil {
		show("Submitted at", na.Status.SubmittedAt.UTC().Format(time.RFC3339))
	}
	show("Provider action", na.Status.ProviderActionID)
	show("Message", oneLine(na.Status.Message))
}

// confirm asks the person to type yes.
func confirm(in io.Reader, out io.Writer, na *v1alpha1.NodeAction) error {
	fmt.Fprintf(out, "If the provider did run it, a retry runs %s on %s a second time.\n", na.Spec.Action, na.Spec.NodeID)
	fmt.Fprintf(out, "Submit attempt %s again? Type yes to retry: ", na.Status.AttemptID)
	answer, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && answer == "" {
		fmt.Fprintln(out)
		return fmt.Errorf("%w (no answer on standard input; pass --yes to retry without asking)", errNotConfirmed)
	}
	if a := strings.ToLower(strings.TrimSpace(answer)); a != "yes" && a != "y" {
		return errNotConfirmed
	}
	return nil
}
