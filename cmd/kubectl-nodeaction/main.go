// Command kubectl-nodeaction is a kubectl plugin for NodeActions: run an
// action, follow it, re-run it, and retry a submission whose outcome is
// unknown. It acts with the user's kubeconfig and identity, so RBAC and the
// operator's admission policies apply to the person running it.
//
// Installed on the PATH as kubectl-nodeaction, it runs as `kubectl nodeaction`.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"k8s.io/cli-runtime/pkg/genericiooptions"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	streams := genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}
	if err := newRootCommand(streams).ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "error: "+oneLine(err.Error()))
		os.Exit(1)
	}
}

// oneLine joins a multi-line error (the API server's, a watch's) into one
// line, so every failure reads as one clear sentence.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
