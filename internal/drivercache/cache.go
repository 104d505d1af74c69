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
	"strings"
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
	// RecordsLag is provider.Config's: how late a provider's records may
	// show an accepted action. Zero: each driver's figure for the real
	// provider.
	RecordsLag time.Duration
}

// Cache builds and keeps drivers. It is safe for concurrent use.
type Cache struct {
	reader client.Reader
	opts   Options

	mu      sync.Mutex
	entries map[types.NamespacedName]*entry
	gates   map[types.NamespacedName]*gateEntry
}

// gateEntry is one Provider's budget. It belongs to one Provider object
// (UID): a Provider deleted and created again starts with a new budget.
type gateEntry struct {
	uid  types.UID
	gate *provider.Gate
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
	return &Cache{reader: reader, opts: opts, entries: map[types.NamespacedName]*entry{}, gates: map[types.NamespacedName]*gateEntry{}}
}

// RequestTimeout bounds one provider request.
func (c *Cache) RequestTimeout() time.Duration { return c.opts.RequestTimeout }

// MaxRateWait is how long a reconcile may wait for a request slot before it
// comes back later instead.
func (c *Cache) MaxRateWait() time.Duration { return c.opts.MaxRateWait }

// Reserve takes p's next request slot for a submission (provider.Ticket).
func (c *Cache) Reserve(p *v1alpha1.Provider, now time.Time) (*provider.Ticket, error) {
	reg, err := registry.Lookup(p.Spec.Type)
	if err != nil {
		return nil, err
	}
	return c.Gate(p, reg.RequestsPerMinute).Reserve(now), nil
}

// Driver returns the driver for p, building it when needed. Errors are
// *provider.Error: CredentialsError when the Secret is missing or lacks a
// key, InvalidConfig when the spec cannot work.
func (c *Cache) Driver(ctx context.Context, p *v1alpha1.Provider) (provider.Driver, error) {
	key := types.NamespacedName{Namespace: p.Namespace, Name: p.Name}
	c.mu.Lock()
	e := c.entries[key]
	fresh := e != nil && e.uid == p.UID && e.generation == p.Generation && time.Since(e.built) < c.opts.MaxAge
	c.mu.Unlock()
	if fresh {
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

// Forget drops everything kept for a deleted Provider: its driver and its
// request budget.
func (c *Cache) Forget(key types.NamespacedName) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.entries, key)
	delete(c.gates, key)
}

func (c *Cache) secret(ctx context.Context, p *v1alpha1.Provider) (*corev1.Secret, error) {
	s := &corev1.Secret{}
	key := types.NamespacedName{Namespace: p.Namespace, Name: p.Spec.CredentialsSecretRef.Name}
	if err := c.reader.Get(ctx, key, s); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, provider.NewTerminal(provider.SecretNotFound,
				fmt.Sprintf("credentials Secret %q not found in namespace %q", key.Name, key.Namespace))
		}
		return nil, &provider.Error{Kind: provider.Retryable, Class: provider.Unavailable,
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
		Secrets: secretValues(secret.Data),
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
		Credentials: creds, HTTPClient: hc, UserAgent: c.opts.UserAgent, RecordsLag: c.opts.RecordsLag,
	})
}

// secretValues are the credential values a provider must never be quoted
// with: those under keys naming a token, password, secret or key (a user
// name or a project id is no secret, and often rightly in answers).
func secretValues(data map[string][]byte) [][]byte {
	var out [][]byte
	for k, v := range data {
		k = strings.ToLower(k)
		if strings.Contains(k, "token") || strings.Contains(k, "password") || strings.Contains(k, "secret") || strings.Contains(k, "key") {
			out = append(out, v)
		}
	}
	return out
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
	key := types.NamespacedName{Namespace: p.Namespace, Name: p.Name}
	c.mu.Lock()
	defer c.mu.Unlock()
	g := c.gates[key]
	if g == nil || g.uid != p.UID {
		g = &gateEntry{uid: p.UID, gate: provider.NewGate(perMinute, burst)}
		c.gates[key] = g
	} else {
		g.gate.SetLimit(perMinute, burst)
	}
	return g.gate
}

// Providers is how many Providers the cache holds something for (tests).
func (c *Cache) Providers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	keys := map[types.NamespacedName]bool{}
	for k := range c.entries {
		keys[k] = true
	}
	for k := range c.gates {
		keys[k] = true
	}
	return len(keys)
}
