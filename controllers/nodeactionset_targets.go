package controllers

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodeaction/nodeaction-operator/api/v1alpha1"
	"github.com/nodeaction/nodeaction-operator/internal/kubenode"
)

// validNodeID is what a NodeAction's spec.nodeID may be (its CEL rule).
var validNodeID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// nodeListTimeout bounds the wait for the Node cache.
const nodeListTimeout = 30 * time.Second

// nodesUnreadable: the Nodes a set selects cannot be listed.
type nodesUnreadable struct{ err error }

func (e *nodesUnreadable) Error() string {
	return fmt.Sprintf("cannot list the Nodes spec.nodeSelector selects (%v): the operator needs get, list and watch on nodes "+
		"(a one-namespace install binds them with a ClusterRoleBinding, docs/install.md)", e.err)
}

// invalidSelector: spec.nodeSelector cannot be parsed (an object admitted
// before the CRD's rules, or a key the rules do not check).
type invalidSelector struct{ err error }

func (e *invalidSelector) Error() string {
	return fmt.Sprintf("spec.nodeSelector is not a valid label selector (%v): fix it; no member starts until then", e.err)
}

// setTarget is one VM a set acts on.
type setTarget struct {
	nodeID string
	// node is the Kubernetes Node on the VM when the set selects Nodes.
	node string
}

// targets lists the VMs of a set in the order they start: spec.nodeIDs
// as given, or the Nodes spec.nodeSelector selects by name, each mapped to
// the VM under it. Nodes that do not say which VM they run on are returned
// apart, never guessed.
func targets(ctx context.Context, c client.Reader, set *v1alpha1.NodeActionSet, p *v1alpha1.Provider) (ts []setTarget, unmapped []string, err error) {
	if set.Spec.NodeSelector == nil {
		for _, id := range set.Spec.NodeIDs {
			ts = append(ts, setTarget{nodeID: id})
		}
		return ts, nil, nil
	}
	sel, err := metav1.LabelSelectorAsSelector(set.Spec.NodeSelector)
	if err != nil {
		return nil, nil, &invalidSelector{err: err}
	}
	// The first list starts the manager's Node informer, which waits for
	// its first sync: without the right to list Nodes that would be
	// forever, so it is bounded.
	listCtx, cancel := context.WithTimeout(ctx, nodeListTimeout)
	defer cancel()
	nodes := &corev1.NodeList{}
	if err := c.List(listCtx, nodes, client.MatchingLabelsSelector{Selector: sel}); err != nil {
		return nil, nil, &nodesUnreadable{err: err}
	}
	sort.Slice(nodes.Items, func(i, j int) bool { return nodes.Items[i].Name < nodes.Items[j].Name })
	for i := range nodes.Items {
		n := &nodes.Items[i]
		id, ok := kubenode.NodeIDOf(n, p.Name, p.Spec.Type)
		if !ok || !validNodeID.MatchString(id) || strings.Contains(id, "..") || len(id) > 128 {
			unmapped = append(unmapped, n.Name)
			continue
		}
		ts = append(ts, setTarget{nodeID: id, node: n.Name})
	}
	return ts, unmapped, nil
}
