package kubenode

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/kubectl/pkg/drain"

	"github.com/nodeaction/nodeaction-operator/api/v1alpha1"
)

// Drainer cordons, drains and uncordons Nodes with kubectl's own drain
// package (k8s.io/kubectl/pkg/drain): pods go through the Eviction API, so
// PodDisruptionBudgets are respected. Each call does one round and returns:
// a reconciler calls it again until the Node is empty or its time is up.
type Drainer struct {
	Client kubernetes.Interface
}

// Cordon marks the Node unschedulable. It reports whether this call
// cordoned it (false when it already was: then it is not ours to uncordon).
func (d Drainer) Cordon(ctx context.Context, node *corev1.Node) (bool, error) {
	return d.setUnschedulable(ctx, node, true)
}

// Uncordon marks the Node schedulable again.
func (d Drainer) Uncordon(ctx context.Context, node *corev1.Node) error {
	_, err := d.setUnschedulable(ctx, node, false)
	return err
}

func (d Drainer) setUnschedulable(ctx context.Context, node *corev1.Node, desired bool) (bool, error) {
	c := drain.NewCordonHelper(node)
	if !c.UpdateIfRequired(desired) {
		return false, nil
	}
	err, patchErr := c.PatchOrReplaceWithContext(ctx, d.Client, false)
	if patchErr != nil {
		return false, patchErr
	}
	if err != nil {
		return false, err
	}
	return true, nil
}

// Round is what one drain round found.
type Round struct {
	// Left is how many pods are still to go (being evicted, terminating,
	// or refused by a PodDisruptionBudget).
	Left int
	// Blocked names pods the drain will not evict (not managed by a
	// controller, using emptyDir data, or DaemonSet pods when they are not
	// ignored), with why.
	Blocked []string
	// Refused names pods a PodDisruptionBudget kept this round.
	Refused []string
}

// Done tells a drained Node.
func (r Round) Done() bool { return r.Left == 0 && len(r.Blocked) == 0 }

// String says what is left, for a condition message.
func (r Round) String() string {
	var parts []string
	parts = append(parts, fmt.Sprintf("%d pods left", r.Left))
	if len(r.Refused) > 0 {
		parts = append(parts, fmt.Sprintf("%d kept by a PodDisruptionBudget (%s)", len(r.Refused), strings.Join(first(r.Refused, 5), ", ")))
	}
	if len(r.Blocked) > 0 {
		parts = append(parts, fmt.Sprintf("%d the drain will not evict: %s", len(r.Blocked), strings.Join(first(r.Blocked, 5), "; ")))
	}
	return strings.Join(parts, ", ")
}

func first(s []string, n int) []string {
	if len(s) > n {
		return append(s[:n:n], fmt.Sprintf("and %d more", len(s)-n))
	}
	return s
}

// Evict does one drain round on the Node: it lists the pods to go as
// kubectl drain does and asks the Eviction API to evict each one that is
// not already terminating.
func (d Drainer) Evict(ctx context.Context, nodeName string, spec v1alpha1.DrainSpec) (Round, error) {
	h := d.helper(ctx, spec)
	if spec.PodSelector != nil {
		sel, err := metav1.LabelSelectorAsSelector(spec.PodSelector)
		if err != nil {
			return Round{}, fmt.Errorf("spec.node.drain.podSelector: %w", err)
		}
		h.PodSelector = sel.String()
	}
	list, errs := h.GetPodsForDeletion(nodeName)
	if list == nil {
		return Round{}, fmt.Errorf("listing the pods on node %s: %v", nodeName, errs)
	}
	var r Round
	for _, err := range errs {
		r.Blocked = append(r.Blocked, err.Error())
	}
	pods := list.Pods()
	r.Left = len(pods)
	for _, pod := range pods {
		if pod.DeletionTimestamp != nil {
			continue // evicted: going
		}
		err := d.evict(ctx, pod)
		switch {
		case err == nil, apierrors.IsNotFound(err):
		case apierrors.IsTooManyRequests(err):
			r.Refused = append(r.Refused, pod.Namespace+"/"+pod.Name)
		default:
			return r, fmt.Errorf("evicting pod %s/%s: %w", pod.Namespace, pod.Name, err)
		}
	}
	sort.Strings(r.Refused)
	return r, nil
}

// evict asks the Eviction API to evict pod, once. (The drain helper's
// EvictPod goes through client-go's retries, which wait out a
// PodDisruptionBudget's 429 for many seconds; a reconciler comes back on its
// own.)
func (d Drainer) evict(ctx context.Context, pod corev1.Pod) error {
	eviction := &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Namespace: pod.Namespace, Name: pod.Name}}
	return d.Client.PolicyV1().RESTClient().Post().MaxRetries(0).AbsPath("/api/v1").
		Namespace(pod.Namespace).Resource("pods").Name(pod.Name).SubResource("eviction").
		Body(eviction).Do(ctx).Error()
}

func (d Drainer) helper(ctx context.Context, spec v1alpha1.DrainSpec) *drain.Helper {
	ignoreDS := spec.IgnoreDaemonSets == nil || *spec.IgnoreDaemonSets
	return &drain.Helper{
		Ctx: ctx, Client: d.Client,
		// Pods a controller does not manage are not evicted (kubectl
		// drain's --force is not offered): they would be gone for good.
		Force:               false,
		GracePeriodSeconds:  -1, // the pod's own terminationGracePeriodSeconds
		IgnoreAllDaemonSets: ignoreDS,
		DeleteEmptyDirData:  spec.DeleteEmptyDirData,
		Out:                 io.Discard, ErrOut: io.Discard,
	}
}
