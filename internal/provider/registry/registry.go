// Package registry builds the driver for a Provider's type. The map below is
// the one place that lists every driver, as external-dns lists its providers.
package registry

import (
	"fmt"
	"slices"

	"github.com/nodeaction/nodeaction-operator/api/v1alpha1"
	"github.com/nodeaction/nodeaction-operator/internal/provider"
	"github.com/nodeaction/nodeaction-operator/internal/provider/cloudsfor"
	"github.com/nodeaction/nodeaction-operator/internal/provider/digitalocean"
	"github.com/nodeaction/nodeaction-operator/internal/provider/e2e"
	"github.com/nodeaction/nodeaction-operator/internal/provider/openscaler"
	"github.com/nodeaction/nodeaction-operator/internal/provider/senlin"
)

// Entry is one provider type.
type Entry struct {
	// New builds a driver.
	New func(provider.Config) (provider.Driver, error)
	// RequestsPerMinute is the default client-side budget, under what the
	// provider publishes (or a conservative guess where it publishes none).
	RequestsPerMinute int
	// DefaultEndpoint is used when spec.endpoint is empty ("" where the
	// endpoint is discovered, as Senlin's is from the Keystone catalog).
	DefaultEndpoint string
}

var drivers = map[v1alpha1.ProviderType]Entry{
	v1alpha1.ProviderCloudsFor:    {New: cloudsfor.New, RequestsPerMinute: cloudsfor.RequestsPerMinute},
	v1alpha1.ProviderDigitalOcean: {New: digitalocean.New, RequestsPerMinute: digitalocean.RequestsPerMinute, DefaultEndpoint: digitalocean.DefaultEndpoint},
	v1alpha1.ProviderE2E:          {New: e2e.New, RequestsPerMinute: e2e.RequestsPerMinute, DefaultEndpoint: e2e.DefaultEndpoint},
	v1alpha1.ProviderOpenScaler:   {New: openscaler.New, RequestsPerMinute: openscaler.RequestsPerMinute, DefaultEndpoint: openscaler.DefaultEndpoint},
	v1alpha1.ProviderSenlin:       {New: senlin.New, RequestsPerMinute: senlin.RequestsPerMinute},
}

// Lookup returns the entry for a provider type.
func Lookup(t v1alpha1.ProviderType) (Entry, error) {
	e, ok := drivers[t]
	if !ok {
		return Entry{}, provider.NewTerminal(provider.InvalidConfig, fmt.Sprintf("no driver for provider type %q", t))
	}
	return e, nil
}

// New builds the driver for cfg.Type.
func New(cfg provider.Config) (provider.Driver, error) {
	e, err := Lookup(cfg.Type)
	if err != nil {
		return nil, err
	}
	return e.New(cfg)
}

// Types lists the registered provider types, sorted.
func Types() []v1alpha1.ProviderType {
	out := make([]v1alpha1.ProviderType, 0, len(drivers))
	for t := range drivers {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}
