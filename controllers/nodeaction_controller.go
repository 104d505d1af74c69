package controllers

import (
	"context"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	"github.com/nodeaction/nodeaction-operator/api/v1alpha1"
	"github.com/nodeaction/nodeaction-operator/internal/provider"
	"github.com/nodeaction/nodeaction-operator/internal/shard"
)

// Poll and retry timing.
const (
	defaultPollInterval = 2 * time.Second
	maxPollInterval     = 30 * time.Second
	retryBase           = 2 * time.Second
	maxRetry            = 5 * time.Minute
	waitForConfig       = 30 * time.Second
	waitForNode         = 30 * time.Second
	historyLimit        = 5
)

// NodeActionReconciler runs each NodeAction's action once and follows it.
//
// One reconcile reads the object, lets the handler of its phase decide one
// step, and writes status once at the end. Submission is the exception: it
// records the intent (with an optimistic lock, so a stale view can never
// submit), makes the one provider call, and records the answer.
//
// The handlers, one file each:
//
//	Pending         phase_pending.go         wait for the VM, find the Kubernetes Node, record the intent, submit
//	Draining        phase_draining.go        cordon the Node and evict its pods, then submit
//	Submitting      phase_submitting.go      an answer was lost: ask the provider before any new call
//	Running         phase_running.go         follow the action to its end
//	WaitingForNode  phase_waitingfornode.go  the provider is done: wait for the Node to come back
//	finished        phase_finished.go        TTL clean-up, a new run, a retry a person asked for
//
// Every run ends through step.end (nodeaction_step.go).
type NodeActionReconciler struct {
	Client client.Client
	// APIReader reads around the cache, to confirm a submission really is
	// unanswered before asking the provider about it.
	APIReader client.Reader
	Drivers   DriverSource
	Recorder  recorder.EventRecorder
	// Kube drains Nodes (kubectl's drain package works on a clientset).
	Kube kubernetes.Interface
	// Nodes is true when the manager may list and watch Kubernetes Nodes
	// (spec.node needs it); an install that serves one namespace may not.
	Nodes bool
	// Clock tells the time; tests set a fake one. Default: the real clock.
	Clock clock.PassiveClock
	// Shard is the part of the NodeActions this manager serves (its cache
	// holds only those, --shard). When set, the checks that compare a
	// NodeAction with the others on its VM (the order on a node, which
	// provider actions are already someone's) read every shard's through
	// APIReader, and a submission that waited for its slot confirms the
	// NodeAction is still this shard's before its call (docs/sharding.md).
	// nil: this manager's cache holds every NodeAction it must compare with.
	Shard *shard.Shard
	// OtherShards, when set with Shard, holds the metadata of the
	// NodeActions other shards own (NewOtherShardsCache): where it shows
	// none in a namespace, the order on a node is read from this manager's
	// cache alone, without a list from the API server for each submission.
	OtherShards client.Reader

	inflight inflightTracker
	polls    sync.Map // types.NamespacedName → time.Time of the next poll
	tickets  sync.Map // types.NamespacedName → heldTicket: a recorded attempt waiting for its slot
	fleet    fleetPoller
	// durations learns how long each kind of action takes (adaptive polling).
	durations actionDurations
}

// DriverSource builds and keeps the driver of each Provider
// (drivercache.Cache; a fake in unit tests).
type DriverSource interface {
	// Driver returns p's driver. Its errors are *provider.Error.
	Driver(ctx context.Context, p *v1alpha1.Provider) (provider.Driver, error)
	// Reserve takes p's next request slot for a submission.
	Reserve(p *v1alpha1.Provider, now time.Time) (*provider.Ticket, error)
	// RequestTimeout bounds one provider request.
	RequestTimeout() time.Duration
	// MaxRateWait is how long a reconcile waits for a request slot before
	// it comes back later instead.
	MaxRateWait() time.Duration
	// CredentialsChanged reports whether p's Secret changed since its driver was built.
	CredentialsChanged(ctx context.Context, p *v1alpha1.Provider) bool
	// Invalidate drops p's driver, so the next use reads the Secret again.
	Invalidate(p *v1alpha1.Provider)
}

// +kubebuilder:rbac:groups=compute.nodeaction.dev,resources=nodeactions,verbs=get;list;watch;delete
// +kubebuilder:rbac:groups=compute.nodeaction.dev,resources=nodeactions/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=compute.nodeaction.dev,resources=providers,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups="",resources=nodes,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list
// +kubebuilder:rbac:groups="",resources=pods/eviction,verbs=create
// +kubebuilder:rbac:groups=apps,resources=daemonsets,verbs=get

// Reconcile moves one NodeAction one step.
func (r *NodeActionReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	na := &v1alpha1.NodeAction{}
	if err := r.Client.Get(ctx, req.NamespacedName, na); err != nil {
		if apierrors.IsNotFound(err) {
			r.forget(req.NamespacedName)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	if !na.DeletionTimestamp.IsZero() {
		r.forget(req.NamespacedName)
		return ctrl.Result{}, nil
	}
	s := &step{r: r, na: na, before: na.DeepCopy(), now: r.now(), log: log.FromContext(ctx)}
	result, err := s.reconcile(ctx)
	if err == nil {
		// The one status write of this reconcile.
		err = s.commit(ctx)
	}
	if err == nil && s.na.Status.Phase.Finished() && result.RequeueAfter == 0 {
		result = s.ttlRequeue()
	}
	r.inflight.observe(s.na)
	switch {
	case err == nil:
		return result, nil
	case apierrors.IsConflict(err):
		// Someone wrote the object since we read it (often our own last
		// write, not yet in the cache). Look again shortly.
		return ctrl.Result{RequeueAfter: time.Second}, nil
	case apierrors.IsNotFound(err):
		return ctrl.Result{}, nil
	default:
		return ctrl.Result{}, err
	}
}

func (r *NodeActionReconciler) now() time.Time {
	if r.Clock == nil {
		return time.Now()
	}
	return r.Clock.Now()
}

// forget drops what is kept in memory for a deleted NodeAction.
func (r *NodeActionReconciler) forget(key types.NamespacedName) {
	r.inflight.forget(key)
	r.polls.Delete(key)
	if v, ok := r.tickets.LoadAndDelete(key); ok {
		v.(heldTicket).ticket.Cancel()
	}
}

// reconcile moves the run on: a new run or a retry first, then the handler
// of the phase. Its error is only ever a failed status write; everything
// the provider says ends up in status.
func (s *step) reconcile(ctx context.Context) (ctrl.Result, error) {
	s.beginRun()
	if s.na.Status.Phase.Finished() {
		return s.handleFinished(ctx)
	}
	if res, over := s.deadline(); over {
		return s.nextRun(res), nil
	}
	t, ok, res := s.prepare(ctx)
	if !ok {
		return s.nextRun(s.bound(res)), nil
	}
	var err error
	switch s.na.Status.Phase {
	case v1alpha1.PhaseDraining:
		res, err = s.handleDraining(ctx, t)
	case v1alpha1.PhaseWaitingForNode:
		res, err = s.handleWaitingForNode(ctx, t)
	case v1alpha1.PhaseSubmitting:
		res, err = s.handleSubmitting(ctx, t)
	case v1alpha1.PhaseRunning:
		res, err = s.handleRunning(ctx, t)
	default:
		res, err = s.handlePending(ctx, t)
	}
	if err != nil {
		return res, err
	}
	return s.nextRun(res), nil
}
