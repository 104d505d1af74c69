package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodeaction/nodeaction-operator/api/v1alpha1"
)

// watchNodeActions lists the NodeActions that opts select, calls onChange
// with all of them, then watches and calls it again after every change,
// until onChange returns done, the context ends or timeout (if not 0)
// passes. A watch the API server closes is opened again from a new list.
func watchNodeActions(ctx context.Context, c client.WithWatch, timeout time.Duration, onChange func(items map[string]*v1alpha1.NodeAction) (done bool, err error), opts ...client.ListOption) error {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	for {
		list := &v1alpha1.NodeActionList{}
		if err := c.List(ctx, list, opts...); err != nil {
			return waitError(ctx, err)
		}
		items := map[string]*v1alpha1.NodeAction{}
		for i := range list.Items {
			items[key(&list.Items[i])] = &list.Items[i]
		}
		if done, err := onChange(items); done || err != nil {
			return err
		}
		w, err := c.Watch(ctx, &v1alpha1.NodeActionList{}, append(opts, &client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: list.ResourceVersion}})...)
		if err != nil {
			return waitError(ctx, err)
		}
		done, err := drain(ctx, w, items, onChange)
		w.Stop()
		if done || err != nil {
			return err
		}
	}
}

// drain applies watch events to items until the watch closes (done false,
// to list again) or onChange says done.
func drain(ctx context.Context, w watch.Interface, items map[string]*v1alpha1.NodeAction, onChange func(map[string]*v1alpha1.NodeAction) (bool, error)) (bool, error) {
	for {
		select {
		case <-ctx.Done():
			return true, waitError(ctx, ctx.Err())
		case ev, ok := <-w.ResultChan():
			if !ok {
				return false, nil
			}
			na, isNodeAction := ev.Object.(*v1alpha1.NodeAction)
			switch {
			case ev.Type == watch.Error:
				return false, nil // expired resourceVersion and the like: list again
			case !isNodeAction:
				continue
			case ev.Type == watch.Deleted:
				delete(items, key(na))
			default:
				items[key(na)] = na
			}
			if done, err := onChange(items); done || err != nil {
				return true, err
			}
		}
	}
}

func waitError(ctx context.Context, err error) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("timed out waiting")
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

func key(na *v1alpha1.NodeAction) string { return na.Namespace + "/" + na.Name }

// follow prints a NodeAction's progress (each new phase, reason or message)
// until it finishes; it returns an error when it failed or was deleted.
func follow(ctx context.Context, c client.WithWatch, out io.Writer, na *v1alpha1.NodeAction, timeout time.Duration) error {
	last := ""
	var final *v1alpha1.NodeAction
	err := watchNodeActions(ctx, c, timeout, func(items map[string]*v1alpha1.NodeAction) (bool, error) {
		cur, ok := items[key(na)]
		if !ok {
			return true, fmt.Errorf("nodeaction %s was deleted before it finished", na.Name)
		}
		line := progressLine(cur)
		if line != last {
			fmt.Fprintln(out, line)
			last = line
		}
		// A finished status of an earlier run (runID) does not count.
		if cur.Status.Phase.Finished() && cur.Status.RunID == cur.Spec.RunID && cur.Status.ObservedGeneration == cur.Generation {
			final = cur
			return true, nil
		}
		return false, nil
	}, client.InNamespace(na.Namespace), client.MatchingFieldsSelector{Selector: fields.OneTermEqualSelector("metadata.name", na.Name)})
	if err != nil {
		return err
	}
	if final.Status.Phase == v1alpha1.PhaseFailed {
		return fmt.Errorf("nodeaction %s failed (%s): %s", na.Name, readyReason(final), final.Status.Message)
	}
	return nil
}

func progressLine(na *v1alpha1.NodeAction) string {
	phase := string(na.Status.Phase)
	if phase == "" {
		phase = "Pending"
	}
	line := fmt.Sprintf("%s: %s", na.Name, phase)
	if r := readyReason(na); r != "" {
		line += " (" + r + ")"
	}
	if na.Status.Message != "" {
		line += ": " + oneLine(na.Status.Message)
	}
	return line
}
