// Package drivercache keeps one driver per Provider, built from the
// Provider's spec and its credentials Secret, and one request budget (Gate)
// per Provider that outlives driver rebuilds.
//
// Secrets are read with a direct GET (never listed, watched or cached), so
// the operator holds only the Secrets Providers name, and only inside
// drivers. A driver is rebuilt when the Provider's generation changes, when
// it is older than MaxAge (so rotated credentials are picked up), or when
// Invalidate is called after the provider refused the credentials.
package drivercache

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodeaction/nodeaction-operator/api/v1alpha1"
	"github.com/nodeaction/nodeaction-operator/internal/metrics"
	"github.com/nodeaction/nodeaction-operator/internal/provider"
	"github.com/nodeaction/nodeaction-operator/internal/provider/registry"
)

// DefaultBurst is the client-side burst when spec.rateLimit.burst is unset.
const DefaultBurst = 10

// Options configure a Cache.
type Options struct {
	// MaxAge bounds how long a driver (and the credentials in it) is used
	// before the Secret is read again. Default 5 minutes.
	MaxAge time.Duration
	// RequestTimeout bounds one provider request. Default 30s.
	RequestTimeout time.Duration
	// MaxRateWait is how long a request may wait for the client-side budget
	// before it is handed back as RateLimited. Default 2s.
	MaxRateWait time.Duration
	// UserAgent sent to providers.
	UserAgent string
}

// Cache builds and keeps drivers. It is safe for concurrent use.
type Cache struct {
	reader client.Reader
	opts   Options

	mu      sync.Mutex
	entries map[types.NamespacedName]*entry
	gates   map[types.UID]*provider.Gate
}

type entry struct {
	uid           types.UID
	generation    int64
	secretVersion string
	built         time.Time
	driver        provider.Driver
}

// New returns a cache that reads Secrets through reader (use the manager's
// API reader so Secrets are never cached).
func New(reader client.Reader, opts Options) *Cache {
	if opts.MaxAge == 0 {
		opts.MaxAge = 5 * time.Minute
	}
	if opts.RequestTimeout == 0 {
		opts.RequestTimeout = 30 * time.Second
	}
	if opts.MaxRateWait == 0 {
		opts.MaxRateWait = 2 * time.Second
	}
	if opts.UserAgent == "" {
		opts.UserAgent = "nodeaction-operator"
	}
	return &Cache{reader: reader, opts: opts, entries: map[types.NamespacedName]*entry{}, gates: map[types.UID]*provider.Gate{}}
}

// SettleTime is how long after a submission was recorded its request may
// still reach the provider: the wait for a request slot plus the request
// timeout, plus a margin. After it, what the provider shows is final.
func (c *Cache) SettleTime() time.Duration {
	return c.opts.MaxRateWait + c.opts.RequestTimeout + 2*time.Second
}

// Driver returns the driver for p, building it when needed. Errors are
// *provider.Error: CredentialsError when the Secret is missing or lacks a
// key, InvalidConfig when the spec cannot work.
func (c *Cache) Driver(ctx context.Context, p *v1alpha1.Provider) (provider.Driver, error) {
	key := types.NamespacedName{Namespace: p.Namespace, Name: p.Name}
	c.mu.Lock()
	e := c.entries[key]
	c.mu.Unlock()
	if e != nil && e.uid == p.UID && e.generation == p.Generation && time.Since(e.built) < c.opts.MaxAge {
		return e.driver, nil
	}

	secret, err := c.secret(ctx, p)
	if err != nil {
		return nil, err
	}
	// The same Secret and spec: keep the driver (and its Keystone token).
	if e != nil && e.uid == p.UID && e.generation == p.Generation && e.secretVersion == secret.ResourceVersion {
		c.mu.Lock()
		e.built = time.Now()
		c.mu.Unlock()
		return e.driver, nil
	}
	d, err := c.build(p, secret)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.entries[key] = &entry{uid: p.UID, generation: p.Generation, secretVersion: secret.ResourceVersion, built: time.Now(), driver: d}
	c.mu.Unlock()
	return d, nil
}

// Invalidate drops p's driver, so the next use reads the Secret again.
func (c *Cache) Invalidate(p *v1alpha1.Provider) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.entries, types.NamespacedName{Namespace: p.Namespace, Name: p.Name})
}

// CredentialsChanged reports whether p's Secret changed since its driver was
// built (a provider's 401 is then worth one more try with the new ones).
func (c *Cache) CredentialsChanged(ctx context.Context, p *v1alpha1.Provider) bool {
	c.mu.Lock()
	e := c.entries[types.NamespacedName{Namespace: p.Namespace, Name: p.Name}]
	c.mu.Unlock()
	if e == nil {
		return false
	}
	s, err := c.secret(ctx, p)
	return err == nil && s.ResourceVersion != e.secretVersion
}

// Forget drops everything kept for a deleted Provider.
func (c *Cache) Forget(key types.NamespacedName, uid types.UID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.entries, key)
	delete(c.gates, uid)
}

func (c *Cache) secret(ctx context.Context, p *v1alpha1.Provider) (*corev1.Secret, error) {
	s := &corev1.Secret{}
	key := types.NamespacedName{Namespace: p.Namespace, Name: p.Spec.CredentialsSecretRef.Name}
	if err := c.reader.Get(ctx, key, s); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, provider.NewTerminal(provider.SecretNotFound,
				fmt.Sprintf("credentials Secret %q not found in namespace %q", key.Name, key.Namespace))
		}
		return nil, &provider.Error{Kind: provider.Retryable, Class: provider.CredentialsError,
			Message: fmt.Sprintf("cannot read credentials Secret %q: %s", key.Name, apierrors.ReasonForError(err)), Err: err}
	}
	return s, nil
}

func (c *Cache) build(p *v1alpha1.Provider, secret *corev1.Secret) (provider.Driver, error) {
	reg, err := registry.Lookup(p.Spec.Type)
	if err != nil {
		return nil, err
	}
	gate := c.Gate(p, reg.RequestsPerMinute)
	hc, err := provider.NewHTTPClient(provider.ClientOptions{
		Type: string(p.Spec.Type), CABundle: p.Spec.CABundle, Gate: gate,
		MaxWait: c.opts.MaxRateWait, Timeout: c.opts.RequestTimeout, Observe: metrics.ObserveRequest,
	})
	if err != nil {
		return nil, err
	}
	creds := make(map[string][]byte, len(secret.Data))
	for k, v := range secret.Data {
		creds[k] = v
	}
	return reg.New(provider.Config{
		Name: p.Namespace + "/" + p.Name, Type: p.Spec.Type,
		Endpoint: p.Spec.Endpoint, AuthURL: p.Spec.AuthURL,
		Region: p.Spec.Region, Location: p.Spec.Location, Project: p.Spec.Project,
		Credentials: creds, HTTPClient: hc, UserAgent: c.opts.UserAgent,
	})
}

// Gate returns p's request budget, creating it or updating its limits from
// spec.rateLimit (defaulting to defaultPerMinute).
func (c *Cache) Gate(p *v1alpha1.Provider, defaultPerMinute int) *provider.Gate {
	perMinute, burst := defaultPerMinute, DefaultBurst
	if rl := p.Spec.RateLimit; rl != nil {
		if rl.RequestsPerMinute > 0 {
			perMinute = int(rl.RequestsPerMinute)
		}
		if rl.Burst > 0 {
			burst = int(rl.Burst)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	g := c.gates[p.UID]
	if g == nil {
		g = provider.NewGate(perMinute, burst)
		c.gates[p.UID] = g
	} else {
		g.SetLimit(perMinute, burst)
	}
	return g
}
