// Package controllers holds the Provider and NodeAction reconcilers.
package controllers

import (
	"context"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"

	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/nodeaction/nodeaction-operator/api/v1alpha1"
)

// Field indexes on NodeActions.
const (
	indexProvider = "spec.providerRef.name"
	// indexNodeID finds the NodeActions of every namespace on one VM id:
	// those an action waits for, and which provider actions are already
	// someone's. (One index for both: an index entry for a value each
	// NodeAction holds alone costs a map per NodeAction, the largest part
	// of the cache beside the objects.)
	indexNodeID = "spec.nodeID"
	// indexKubeNode finds the NodeActions caring for a Kubernetes Node.
	indexKubeNode = "status.node.name"
)

// fieldNodeID is the field selector the API server serves on NodeActions
// (the CRD's selectableFields), for the reads a sharded manager makes
// around its cache.
const fieldNodeID = "spec.nodeID"

// SetupWithManager registers the controller, its indexes and watches:
//   - NodeActions themselves, on spec or annotation changes (status writes
//     are the controller's own and do not need a reconcile);
//   - Providers, so NodeActions waiting for one move when it appears or changes;
//   - NodeActions that finish, so those queued behind them on the same node move.
func (r *NodeActionReconciler) SetupWithManager(mgr ctrl.Manager, opts controller.Options) error {
	ctx := context.Background()
	idx := mgr.GetFieldIndexer()
	if err := idx.IndexField(ctx, &v1alpha1.NodeAction{}, indexProvider, func(o client.Object) []string {
		return []string{o.(*v1alpha1.NodeAction).Spec.ProviderRef.Name}
	}); err != nil {
		return err
	}
	if err := idx.IndexField(ctx, &v1alpha1.NodeAction{}, indexNodeID, func(o client.Object) []string {
		return []string{o.(*v1alpha1.NodeAction).Spec.NodeID}
	}); err != nil {
		return err
	}
	if err := idx.IndexField(ctx, &v1alpha1.NodeAction{}, indexKubeNode, func(o client.Object) []string {
		if name := o.(*v1alpha1.NodeAction).Status.Node.GetName(); name != "" {
			return []string{name}
		}
		return nil
	}); err != nil {
		return err
	}
	b := ctrl.NewControllerManagedBy(mgr)
	if r.Nodes {
		b = b.Watches(&corev1.Node{}, handler.EnqueueRequestsFromMapFunc(r.caringForNode), builder.WithPredicates(nodeChanged()))
	}
	return b.
		For(&v1alpha1.NodeAction{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Watches(&v1alpha1.Provider{}, handler.EnqueueRequestsFromMapFunc(r.waitingOnProvider),
			builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&v1alpha1.NodeAction{}, handler.EnqueueRequestsFromMapFunc(r.queuedOnNode),
			builder.WithPredicates(finishedPredicate())).
		Watches(&v1alpha1.Provider{}, handler.Funcs{DeleteFunc: func(_ context.Context, e event.TypedDeleteEvent[client.Object], _ workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			// A deleted Provider's shared status sweeps go with it.
			r.fleet.forget(e.Object.GetUID())
		}}).
		WithOptions(opts).
		Named("nodeaction").
		Complete(r)
}

// waitingOnProvider maps a Provider to its unfinished NodeActions. The
// list is only read (a Provider may have 100,000 finished NodeActions: no
// copies of them).
func (r *NodeActionReconciler) waitingOnProvider(ctx context.Context, o client.Object) []reconcile.Request {
	list := &v1alpha1.NodeActionList{}
	if err := r.Client.List(ctx, list, client.InNamespace(o.GetNamespace()), client.MatchingFields{indexProvider: o.GetName()},
		client.UnsafeDisableDeepCopy); err != nil {
		return nil
	}
	return unfinished(list, o.GetName())
}

// queuedOnNode maps a NodeAction to the unfinished ones on the same
// Provider and node.
func (r *NodeActionReconciler) queuedOnNode(ctx context.Context, o client.Object) []reconcile.Request {
	na := o.(*v1alpha1.NodeAction)
	list := &v1alpha1.NodeActionList{}
	if err := r.Client.List(ctx, list, client.InNamespace(na.Namespace), client.MatchingFields{indexNodeID: na.Spec.NodeID},
		client.UnsafeDisableDeepCopy); err != nil {
		return nil
	}
	return unfinished(list, na.Spec.ProviderRef.Name)
}

// MayWatchNodes asks the API server whether the manager may list and watch
// Kubernetes Nodes (an install that serves one namespace may not).
func MayWatchNodes(ctx context.Context, c client.Client) (bool, error) {
	for _, verb := range []string{"list", "watch", "patch"} {
		r := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
			ResourceAttributes: &authorizationv1.ResourceAttributes{Resource: "nodes", Verb: verb}}}
		if err := c.Create(ctx, r); err != nil {
			return false, err
		}
		if !r.Status.Allowed {
			return false, nil
		}
	}
	return true, nil
}

// caringForNode maps a Kubernetes Node to the unfinished NodeActions that
// drain it or wait for it.
func (r *NodeActionReconciler) caringForNode(ctx context.Context, o client.Object) []reconcile.Request {
	list := &v1alpha1.NodeActionList{}
	if err := r.Client.List(ctx, list, client.MatchingFields{indexKubeNode: o.GetName()}, client.UnsafeDisableDeepCopy); err != nil {
		return nil
	}
	return unfinished(list, "")
}

// nodeChanged passes the Node changes a NodeAction waits for: readiness,
// bootID, schedulability, deletion (not the kubelet's heartbeats).
func nodeChanged() predicate.Funcs {
	return predicate.Funcs{
		CreateFunc:  func(event.CreateEvent) bool { return true },
		DeleteFunc:  func(event.DeleteEvent) bool { return true },
		GenericFunc: func(event.GenericEvent) bool { return false },
		UpdateFunc: func(e event.UpdateEvent) bool {
			o, ok1 := e.ObjectOld.(*corev1.Node)
			n, ok2 := e.ObjectNew.(*corev1.Node)
			return ok1 && ok2 && (o.Status.NodeInfo.BootID != n.Status.NodeInfo.BootID || nodeReady(o) != nodeReady(n) ||
				o.Spec.Unschedulable != n.Spec.Unschedulable)
		},
	}
}

// unfinished names the NodeActions in list not finished, through the
// Provider named (any Provider if "").
func unfinished(list *v1alpha1.NodeActionList, providerName string) []reconcile.Request {
	var out []reconcile.Request
	for i := range list.Items {
		o := &list.Items[i]
		if !o.Status.Phase.Finished() && (providerName == "" || o.Spec.ProviderRef.Name == providerName) {
			out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(o)})
		}
	}
	return out
}

// finishedPredicate passes a NodeAction's update when it finished, and its deletion.
func finishedPredicate() predicate.Funcs {
	return predicate.Funcs{
		CreateFunc:  func(event.CreateEvent) bool { return false },
		GenericFunc: func(event.GenericEvent) bool { return false },
		DeleteFunc:  func(event.DeleteEvent) bool { return true },
		UpdateFunc: func(e event.UpdateEvent) bool {
			o, ok1 := e.ObjectOld.(*v1alpha1.NodeAction)
			n, ok2 := e.ObjectNew.(*v1alpha1.NodeAction)
			return ok1 && ok2 && !o.Status.Phase.Finished() && n.Status.Phase.Finished()
		},
	}
}
