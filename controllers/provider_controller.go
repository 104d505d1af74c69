package controllers

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrlruntime "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	ctrl "sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	"github.com/nodeaction/nodeaction-operator/api/v1alpha1"
	"github.com/nodeaction/nodeaction-operator/internal/drivercache"
	"github.com/nodeaction/nodeaction-operator/internal/provider"
	"github.com/nodeaction/nodeaction-operator/internal/provider/registry"
	"github.com/nodeaction/nodeaction-operator/internal/shard"
)

// ProviderReconciler checks that a Provider's endpoint and credentials work
// (one cheap authenticated request) and says so in its Ready condition.
type ProviderReconciler struct {
	Client   ctrl.Client
	Drivers  *drivercache.Cache
	Recorder recorder.EventRecorder
	// ProbeInterval is how often credentials are checked again. Default 10m.
	ProbeInterval time.Duration
	// Shard, when set, limits the probes and status writes to its shard's
	// Providers. The cache holds every Provider all the same: a NodeAction
	// of any shard may name any Provider of its namespace.
	Shard *shard.Shard
}

// +kubebuilder:rbac:groups=compute.nodeaction.dev,resources=providers,verbs=get;list;watch
// +kubebuilder:rbac:groups=compute.nodeaction.dev,resources=providers/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile probes the Provider and records the outcome.
func (r *ProviderReconciler) Reconcile(ctx context.Context, req ctrlruntime.Request) (ctrlruntime.Result, error) {
	p := &v1alpha1.Provider{}
	if err := r.Client.Get(ctx, req.NamespacedName, p); err != nil {
		if ctrl.IgnoreNotFound(err) == nil {
			r.Drivers.Forget(req.NamespacedName)
		}
		return ctrlruntime.Result{}, ctrl.IgnoreNotFound(err)
	}
	if !p.DeletionTimestamp.IsZero() {
		r.Drivers.Forget(req.NamespacedName)
		return ctrlruntime.Result{}, nil
	}
	if r.Shard != nil && !r.Shard.Owns(p.Labels) {
		// Another shard's (it was relabelled since this was queued): that
		// shard probes it. The driver stays, for this shard's NodeActions.
		return ctrlruntime.Result{}, nil
	}
	before := p.DeepCopy()
	interval := r.probeInterval()

	// A probe is due when the spec changed, or the last one is old, or it failed.
	ready := apimeta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionReady)
	if ready != nil && ready.Status == metav1.ConditionTrue && p.Status.ObservedGeneration == p.Generation &&
		p.Status.LastProbeTime != nil {
		if wait := time.Until(p.Status.LastProbeTime.Add(interval)); wait > 0 {
			return ctrlruntime.Result{RequeueAfter: wait}, nil
		}
	}

	result := r.probe(ctx, p)
	if err := r.Client.Status().Patch(ctx, p, ctrl.MergeFrom(before)); err != nil {
		if ctrl.IgnoreNotFound(err) == nil {
			return ctrlruntime.Result{}, nil
		}
		return ctrlruntime.Result{}, err
	}
	return result, nil
}

func (r *ProviderReconciler) probe(ctx context.Context, p *v1alpha1.Provider) ctrlruntime.Result {
	now := metav1.Now()
	p.Status.ObservedGeneration = p.Generation
	p.Status.LastProbeTime = &now
	interval := r.probeInterval()

	// Always read the Secret again on a probe: it is how rotation is seen.
	r.Drivers.Invalidate(p)
	d, err := r.Drivers.Driver(ctx, p)
	if err == nil {
		p.Status.SupportedActions = d.Capabilities().Names()
		if re, ok := d.(provider.ResolvedEndpoint); ok {
			defer func() { p.Status.Endpoint = re.Endpoint() }()
		} else {
			p.Status.Endpoint = endpointOf(p)
		}
		err = d.Probe(provider.LowPriority(ctx))
	}
	if err == nil {
		setReady(p, metav1.ConditionTrue, v1alpha1.ReasonProbeSucceeded, "credentials accepted by "+string(p.Spec.Type))
		return ctrlruntime.Result{RequeueAfter: interval}
	}

	pe := provider.AsError(err)
	reason := reasonFor(pe.Class)
	switch reason {
	case v1alpha1.ReasonAuthFailed, v1alpha1.ReasonSecretNotFound, v1alpha1.ReasonCredentialsError, v1alpha1.ReasonInvalidConfig, v1alpha1.ReasonRateLimited:
	default:
		reason = v1alpha1.ReasonEndpointUnreachable
	}
	msg := pe.Message
	if pe.StatusCode != 0 {
		msg = fmt.Sprintf("%s (HTTP %d)", pe.Message, pe.StatusCode)
	}
	setReady(p, metav1.ConditionFalse, reason, msg)
	if r.Recorder != nil {
		r.Recorder.Eventf(p, nil, corev1.EventTypeWarning, reason, "Probe", "%s", msg)
	}
	// Configuration a person must fix is retried slowly; the rest sooner.
	retry := 30 * time.Second
	if pe.Kind == provider.Terminal && reason != v1alpha1.ReasonSecretNotFound {
		retry = 2 * time.Minute
	}
	if reason == v1alpha1.ReasonRateLimited {
		retry = max(pe.RetryAfter, time.Second)
	} else if pe.RetryAfter > retry {
		retry = pe.RetryAfter
	}
	return ctrlruntime.Result{RequeueAfter: retry}
}

func (r *ProviderReconciler) probeInterval() time.Duration {
	if r.ProbeInterval == 0 {
		return 10 * time.Minute
	}
	return r.ProbeInterval
}

func endpointOf(p *v1alpha1.Provider) string {
	if p.Spec.Endpoint != "" {
		return p.Spec.Endpoint
	}
	e, _ := registry.Lookup(p.Spec.Type)
	return e.DefaultEndpoint
}

// setReady sets Ready and keeps Stalled/Reconciling in step for kstatus:
// configuration errors are Stalled, a probe that may pass later is not.
func setReady(p *v1alpha1.Provider, status metav1.ConditionStatus, reason, msg string) {
	apimeta.SetStatusCondition(&p.Status.Conditions, metav1.Condition{
		Type: v1alpha1.ConditionReady, Status: status, Reason: reason, Message: msg, ObservedGeneration: p.Generation,
	})
	apimeta.RemoveStatusCondition(&p.Status.Conditions, v1alpha1.ConditionReconciling)
	switch reason {
	case v1alpha1.ReasonAuthFailed, v1alpha1.ReasonSecretNotFound, v1alpha1.ReasonCredentialsError, v1alpha1.ReasonInvalidConfig:
		apimeta.SetStatusCondition(&p.Status.Conditions, metav1.Condition{
			Type: v1alpha1.ConditionStalled, Status: metav1.ConditionTrue, Reason: reason, Message: msg, ObservedGeneration: p.Generation,
		})
	default:
		apimeta.RemoveStatusCondition(&p.Status.Conditions, v1alpha1.ConditionStalled)
	}
}

// SetupWithManager registers the controller. A Provider is probed again when
// its spec or annotations change; Secret changes are seen at the next probe
// (Secrets are not watched, so the operator never lists them; annotate the
// Provider to probe at once).
// With a Shard, only the shard's Providers are probed, and a Provider
// relabelled into the shard is probed at once.
func (r *ProviderReconciler) SetupWithManager(mgr ctrlruntime.Manager, opts controller.Options) error {
	changed := predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{})
	if r.Shard != nil {
		owns := predicate.NewPredicateFuncs(func(o ctrl.Object) bool { return r.Shard.Owns(o.GetLabels()) })
		entered := predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
			return !r.Shard.Owns(e.ObjectOld.GetLabels()) && r.Shard.Owns(e.ObjectNew.GetLabels())
		}}
		changed = predicate.And(owns, predicate.Or(changed, entered))
	}
	return ctrlruntime.NewControllerManagedBy(mgr).
		WithOptions(opts).
		For(&v1alpha1.Provider{}, builder.WithPredicates(changed)).
		Named("provider").
		Complete(r)
}
