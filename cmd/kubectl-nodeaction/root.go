package main

import (
	"fmt"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodeaction/nodeaction-operator/api/v1alpha1"
)

var scheme = runtime.NewScheme()

func init() {
	utilruntime.Must(v1alpha1.AddToScheme(scheme))
}

// session is what every subcommand shares: the user's kubeconfig flags
// (--kubeconfig, --context, -n, --as, ...) and the streams.
type session struct {
	flags   *genericclioptions.ConfigFlags
	streams genericiooptions.IOStreams
}

func newRootCommand(streams genericiooptions.IOStreams) *cobra.Command {
	s := &session{flags: genericclioptions.NewConfigFlags(true), streams: streams}
	root := &cobra.Command{
		Use:   "kubectl-nodeaction",
		Short: "Run, follow, re-run and retry NodeActions (nodeaction-operator)",
		Long: `Run, follow, re-run and retry NodeActions of nodeaction-operator.

It acts as you (your kubeconfig, context and identity), so your RBAC and the
operator's admission policies decide what you may run.`,
		Annotations: map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl nodeaction"},
		// Errors are printed once, as one line, by main.
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.SetIn(streams.In)
	root.SetOut(streams.Out)
	root.SetErr(streams.ErrOut)
	s.flags.AddFlags(root.PersistentFlags())
	root.AddCommand(newRunCommand(s), newStatusCommand(s), newRetryCommand(s), newRerunCommand(s))
	return root
}

// client returns a client acting as the user, and the namespace to work in
// (-n, or the kubeconfig context's).
func (s *session) client() (client.WithWatch, string, error) {
	cfg, err := s.flags.ToRESTConfig()
	if err != nil {
		return nil, "", fmt.Errorf("reading kubeconfig: %w", err)
	}
	ns, _, err := s.flags.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return nil, "", fmt.Errorf("reading the namespace from kubeconfig: %w", err)
	}
	c, err := client.NewWithWatch(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, "", fmt.Errorf("connecting to the cluster: %w", err)
	}
	return c, ns, nil
}

// explain turns API errors that need context into sentences; others pass
// as they are (the API server's messages already say what is wrong).
func explain(err error, what string) error {
	switch {
	case err == nil:
		return nil
	case apierrors.IsNotFound(err) && what != "":
		return fmt.Errorf("%s not found", what)
	case meta.IsNoMatchError(err):
		return fmt.Errorf("the cluster does not serve NodeActions (compute.nodeaction.dev/v1alpha1): is nodeaction-operator installed? (%v)", err)
	}
	return err
}
