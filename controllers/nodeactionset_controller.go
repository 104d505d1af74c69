package controllers

import (
	"context"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	"github.com/nodeaction/nodeaction-operator/api/v1alpha1"
	"github.com/nodeaction/nodeaction-operator/internal/metrics"
)

// NodeActionSetReconciler rolls one action over many VMs through member
// NodeActions. It only decides which members start when; the members do
// the work, so every NodeAction guarantee (one provider call, crash
// recovery, NodeBusy) holds for each VM.
//
// One reconcile reads the set, its members and the namespace's other
// NodeActions from the cache, classifies every VM (nodeactionset_plan.go),
// starts members while slots, windows, pause and the failure budget allow
// (nodeactionset_rollout.go), and writes status once at the end
// (nodeactionset_status.go).
type NodeActionSetReconciler struct {
	Client   client.Client
	Recorder recorder.EventRecorder
	// Clock tells the time; tests set a fake one. Default: the real clock.
	Clock clock.PassiveClock
	// APIReader reads what the cache cannot show (a member carrying
	// another shard's label). Default: Client.
	APIReader client.Reader

	expectations memberExpectations
	claims       vmClaims
	seen         seenMembers
}

// +kubebuilder:rbac:groups=compute.nodeaction.dev,resources=nodeactionsets,verbs=get;list;watch
// +kubebuilder:rbac:groups=compute.nodeaction.dev,resources=nodeactionsets/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=compute.nodeaction.dev,resources=nodeactionsets/finalizers,verbs=update
// +kubebuilder:rbac:groups=compute.nodeaction.dev,resources=nodeactions,verbs=create;update;patch
// +kubebuilder:rbac:groups=compute.nodeaction.dev,resources=nodeactions,verbs=reinstall;rebuild;restore;recreate
// +kubebuilder:rbac:groups=compute.nodeaction.dev,resources=providers,verbs=use
// +kubebuilder:rbac:groups="",resources=nodes,verbs=get;list;watch

// Reconcile moves one NodeActionSet's rollout on.
func (r *NodeActionSetReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	set := &v1alpha1.NodeActionSet{}
	if err := r.Client.Get(ctx, req.NamespacedName, set); err != nil {
		if !apierrors.IsNotFound(err) {
			return ctrl.Result{}, err
		}
		// Gone: its deleted members wait for nobody now.
		metrics.ForgetSet(req.Namespace, req.Name)
		r.seen.forget(req.NamespacedName)
		return ctrl.Result{}, r.releaseOrphans(ctx, req.Namespace, req.Name, nil)
	}
	ro := &rollout{r: r, set: set, before: set.DeepCopy(), now: r.now(), log: log.FromContext(ctx)}
	result, err := ro.reconcile(ctx)
	if err == nil {
		err = ro.commit(ctx)
	}
	switch {
	case err == nil:
		return result, nil
	case apierrors.IsConflict(err):
		return ctrl.Result{RequeueAfter: time.Second}, nil
	case apierrors.IsNotFound(err):
		return ctrl.Result{}, nil
	default:
		return ctrl.Result{}, err
	}
}

func (r *NodeActionSetReconciler) reader() client.Reader {
	if r.APIReader == nil {
		return r.Client
	}
	return r.APIReader
}

func (r *NodeActionSetReconciler) now() time.Time {
	if r.Clock == nil {
		return time.Now()
	}
	return r.Clock.Now()
}

// SetupWithManager watches sets (spec changes and deletion), NodeActions
// (a member's progress moves its set; another NodeAction ending may free a
// VM a set waits for) and Providers (a set waits for its Provider).
func (r *NodeActionSetReconciler) SetupWithManager(mgr ctrl.Manager, opts controller.Options) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.NodeActionSet{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&v1alpha1.NodeAction{}, handler.EnqueueRequestsFromMapFunc(r.setsFor), builder.WithPredicates(nodeActionMoved())).
		Watches(&v1alpha1.Provider{}, handler.EnqueueRequestsFromMapFunc(r.setsOfProvider), builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		WithOptions(opts).
		Named("nodeactionset").
		Complete(r)
}

// setsFor maps a member to its set, and any other NodeAction to every set
// of its namespace (one that ended may free a VM a set waits for).
func (r *NodeActionSetReconciler) setsFor(ctx context.Context, o client.Object) []reconcile.Request {
	if name := o.GetLabels()[v1alpha1.LabelNodeActionSet]; name != "" {
		return []reconcile.Request{{NamespacedName: client.ObjectKey{Namespace: o.GetNamespace(), Name: name}}}
	}
	sets := &v1alpha1.NodeActionSetList{}
	if err := r.Client.List(ctx, sets, client.InNamespace(o.GetNamespace()), client.UnsafeDisableDeepCopy); err != nil {
		return nil
	}
	out := make([]reconcile.Request, 0, len(sets.Items))
	for i := range sets.Items {
		out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&sets.Items[i])})
	}
	return out
}

// setsOfProvider maps a Provider to the sets of its namespace that use it.
func (r *NodeActionSetReconciler) setsOfProvider(ctx context.Context, o client.Object) []reconcile.Request {
	sets := &v1alpha1.NodeActionSetList{}
	if err := r.Client.List(ctx, sets, client.InNamespace(o.GetNamespace()), client.UnsafeDisableDeepCopy); err != nil {
		return nil
	}
	var out []reconcile.Request
	for i := range sets.Items {
		if sets.Items[i].Spec.ProviderRef.Name == o.GetName() {
			out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&sets.Items[i])})
		}
	}
	return out
}

// nodeActionMoved passes what a set acts on: a member created or deleted,
// and a NodeAction whose run started or ended, whose Ready reason changed,
// or whose deletion began.
func nodeActionMoved() predicate.Funcs {
	return predicate.Funcs{
		CreateFunc:  func(e event.CreateEvent) bool { return e.Object.GetLabels()[v1alpha1.LabelNodeActionSet] != "" },
		DeleteFunc:  func(event.DeleteEvent) bool { return true },
		GenericFunc: func(event.GenericEvent) bool { return false },
		UpdateFunc: func(e event.UpdateEvent) bool {
			o, ok1 := e.ObjectOld.(*v1alpha1.NodeAction)
			n, ok2 := e.ObjectNew.(*v1alpha1.NodeAction)
			if !ok1 || !ok2 {
				return false
			}
			return o.Status.Phase != n.Status.Phase || o.Status.RunID != n.Status.RunID || o.Spec.RunID != n.Spec.RunID ||
				readyReason(o) != readyReason(n) || o.DeletionTimestamp.IsZero() != n.DeletionTimestamp.IsZero()
		},
	}
}
