// Package metrics declares the operator's Prometheus metrics, served on the
// manager's metrics endpoint.
package metrics

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

var (
	// ActionsTotal counts finished NodeActions.
	ActionsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "nodeaction_actions_total",
		Help: "NodeActions that finished, by provider type, action and result (the Ready reason, or the Stalled reason on failure).",
	}, []string{"provider_type", "action", "result"})

	// ActionDuration observes how long actions took, from submission to the end.
	ActionDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "nodeaction_action_duration_seconds",
		Help:    "Time from submission to the provider reporting the end, by provider type, action and phase.",
		Buckets: []float64{1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 3600},
	}, []string{"provider_type", "action", "phase"})

	// ProviderRequests counts HTTP requests made to providers.
	ProviderRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "nodeaction_provider_requests_total",
		Help: "HTTP requests made to provider APIs, by provider type, method and status code (0: no answer).",
	}, []string{"provider_type", "method", "code"})

	// ProviderRequestDuration observes provider request latency.
	ProviderRequestDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "nodeaction_provider_request_duration_seconds",
		Help:    "Latency of HTTP requests to provider APIs, by provider type and method.",
		Buckets: prometheus.ExponentialBuckets(0.01, 2.5, 10),
	}, []string{"provider_type", "method"})

	// RateLimitWait counts time NodeActions were held back by rate limits.
	RateLimitWait = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "nodeaction_rate_limit_wait_seconds_total",
		Help: "Seconds NodeActions were told to wait by a rate limit (client-side budget or the provider's 429), by provider.",
	}, []string{"namespace", "provider"})

	// InFlight is the number of NodeActions under way: draining their
	// Node, submitted, running, or waiting for their Node to come back.
	InFlight = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "nodeaction_inflight_actions",
		Help: "NodeActions under way now (draining, submitting, running, waiting for their Node), by namespace and provider.",
	}, []string{"namespace", "provider"})
)

// NodeActionSet metrics, one series per set (deleted with the set).
var (
	// SetMembers counts a NodeActionSet's VMs in each state of its run.
	SetMembers = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "nodeactionset_members",
		Help: "VMs of a NodeActionSet's current run by state: pending (not started), running (in flight), succeeded, failed, removed.",
	}, []string{"namespace", "nodeactionset", "state"})

	// SetStarts counts members a NodeActionSet started.
	SetStarts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "nodeactionset_member_starts_total",
		Help: "Members a NodeActionSet started (created, or given the run's runID).",
	}, []string{"namespace", "nodeactionset"})

	// SetHalted is 1 while a NodeActionSet's failure budget is exceeded.
	SetHalted = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "nodeactionset_halted",
		Help: "1 while a NodeActionSet starts no new members because more than spec.maxFailures failed, else 0.",
	}, []string{"namespace", "nodeactionset"})
)

// Collectors are every metric the operator exports (the tests that check
// the docs, alerts and dashboard against them read this list).
var Collectors = []prometheus.Collector{ActionsTotal, ActionDuration, ProviderRequests, ProviderRequestDuration, RateLimitWait, InFlight,
	SetMembers, SetStarts, SetHalted}

func init() {
	crmetrics.Registry.MustRegister(Collectors...)
}

// ForgetSet drops a deleted NodeActionSet's series.
func ForgetSet(namespace, name string) {
	labels := prometheus.Labels{"namespace": namespace, "nodeactionset": name}
	SetMembers.DeletePartialMatch(labels)
	SetStarts.DeletePartialMatch(labels)
	SetHalted.DeletePartialMatch(labels)
}

// ObserveRequest records one provider HTTP request; it fits
// provider.ClientOptions.Observe.
func ObserveRequest(providerType, method string, code int, d time.Duration) {
	ProviderRequests.WithLabelValues(providerType, method, strconv.Itoa(code)).Inc()
	ProviderRequestDuration.WithLabelValues(providerType, method).Observe(d.Seconds())
}
