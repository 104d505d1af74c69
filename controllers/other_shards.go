package controllers

import (
	"context"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"

	"github.com/nodeaction/nodeaction-operator/api/v1alpha1"
	"github.com/nodeaction/nodeaction-operator/internal/shard"
)

// NewOtherShardsCache adds to mgr a cache of the metadata (names, labels)
// of the NodeActions sh does not own, in namespaces (empty: all), for
// NodeActionReconciler.OtherShards. Metadata only: a shard's manager keeps
// the memory split sharding is for.
func NewOtherShardsCache(mgr ctrl.Manager, sh shard.Shard, namespaces map[string]cache.Config) (cache.Cache, error) {
	c, err := cache.New(mgr.GetConfig(), cache.Options{
		HTTPClient: mgr.GetHTTPClient(), Scheme: mgr.GetScheme(), Mapper: mgr.GetRESTMapper(),
		DefaultNamespaces: namespaces, DefaultLabelSelector: sh.Others(),
		DefaultTransform: cache.TransformStripManagedFields(),
	})
	if err != nil {
		return nil, err
	}
	// Watch from the start, not from the first submission.
	meta := &metav1.PartialObjectMetadata{}
	meta.SetGroupVersionKind(v1alpha1.GroupVersion.WithKind("NodeAction"))
	if _, err := c.GetInformer(context.Background(), meta); err != nil {
		return nil, err
	}
	return c, mgr.Add(c)
}
