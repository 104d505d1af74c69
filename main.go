// Command manager runs nodeaction-operator: the Provider, NodeAction and
// NodeActionSet controllers.
package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"os"
	"runtime/debug"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/nodeaction/nodeaction-operator/api/v1alpha1"
	"github.com/nodeaction/nodeaction-operator/controllers"
	"github.com/nodeaction/nodeaction-operator/internal/drivercache"
	"github.com/nodeaction/nodeaction-operator/internal/shard"
)

var scheme = runtime.NewScheme()

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(v1alpha1.AddToScheme(scheme))
}

func main() {
	var (
		metricsAddr, probeAddr, watchNamespace     string
		shardName                                  string
		pprofAddr                                  string
		leaderElectionID, leaderElectionNamespace  string
		secureMetrics, enableLeaderElection        bool
		concurrency                                int
		requestTimeout, probeInterval, credsMaxAge time.Duration
		recordsLag                                 time.Duration
		leaseDuration, renewDeadline, retryPeriod  time.Duration
	)
	flag.StringVar(&metricsAddr, "metrics-bind-address", ":8443",
		"Address the metrics endpoint binds to (:8443 for HTTPS, :8080 for HTTP with --metrics-secure=false, 0 to disable).")
	flag.BoolVar(&secureMetrics, "metrics-secure", true,
		"Serve metrics over HTTPS, allowing only authenticated and authorized clients (TokenReview and SubjectAccessReview).")
	flag.StringVar(&pprofAddr, "pprof-bind-address", "0", "Address to serve Go's /debug/pprof on (0 to disable; never expose it outside the pod).")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "Address the /healthz and /readyz probes bind to.")
	flag.BoolVar(&enableLeaderElection, "leader-elect", false,
		"Elect a leader, so that of several replicas only one reconciles (a Lease in the leader election namespace).")
	flag.StringVar(&leaderElectionID, "leader-election-id", "nodeaction-operator.compute.nodeaction.dev", "Name of the leader election Lease.")
	flag.StringVar(&leaderElectionNamespace, "leader-election-namespace", "",
		"Namespace of the leader election Lease (default: the namespace the manager runs in).")
	flag.DurationVar(&leaseDuration, "leader-elect-lease-duration", 15*time.Second,
		"How long a non-leader waits before taking over a lease the leader stopped renewing.")
	flag.DurationVar(&renewDeadline, "leader-elect-renew-deadline", 10*time.Second, "How long the leader keeps trying to renew before it gives up leading.")
	flag.DurationVar(&retryPeriod, "leader-elect-retry-period", 2*time.Second, "How often leader election is attempted.")
	flag.StringVar(&watchNamespace, "watch-namespace", "",
		"Only watch this namespace (default: all namespaces).")
	flag.StringVar(&shardName, "shard", "",
		"Serve only the NodeActions and Providers labelled "+shard.Label+"=NAME, with the leader election id <leader-election-id>-NAME "+
			"(default: the objects without that label). docs/sharding.md.")
	flag.IntVar(&concurrency, "max-concurrent-reconciles", 16, "NodeActions (and NodeActionSets) reconciled in parallel. Workers mostly wait on the API server, so more than the cores is right.")
	flag.DurationVar(&requestTimeout, "provider-request-timeout", 30*time.Second,
		"Timeout of one provider API request. A submission whose answer is lost is looked up only after this.")
	flag.DurationVar(&recordsLag, "provider-records-lag", 0,
		"How late a provider's records (action lists, a node's state) may show an action it accepted; a lost answer counts as not accepted only after it. "+
			"0: each driver's own figure for its provider (up to 2m). Lower it only for a simulator or a provider known to show actions at once.")
	flag.DurationVar(&probeInterval, "provider-probe-interval", 10*time.Minute, "How often Provider credentials are checked again.")
	flag.DurationVar(&credsMaxAge, "credentials-max-age", 5*time.Minute,
		"How long credentials read from a Secret are used before the Secret is read again.")
	opts := zap.Options{Development: false}
	opts.BindFlags(flag.CommandLine)
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "Usage: %s [flags]\n\nRuns the nodeaction-operator controllers (Provider, NodeAction, NodeActionSet).\n\nFlags:\n", os.Args[0])
		flag.PrintDefaults()
	}
	flag.Parse()
	setGCPercent()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&opts)))
	log := ctrl.Log.WithName("setup")
	sh, err := shard.Parse(shardName)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}

	// HTTP/2 is off on the metrics server (CVE-2023-44487, CVE-2023-39325), as kubebuilder does.
	disableHTTP2 := func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} }
	metricsOpts := metricsserver.Options{BindAddress: metricsAddr, SecureServing: secureMetrics, TLSOpts: []func(*tls.Config){disableHTTP2}}
	if secureMetrics {
		metricsOpts.FilterProvider = filters.WithAuthenticationAndAuthorization
	}

	cacheOpts := cache.Options{
		// The controllers never read managedFields: dropping them keeps the
		// cache small with many NodeActions.
		DefaultTransform: cache.TransformStripManagedFields(),
		// Only this shard's NodeActions (--shard).
		ByObject: sh.CacheByObject(),
	}
	if watchNamespace != "" {
		cacheOpts.DefaultNamespaces = map[string]cache.Config{watchNamespace: {}}
	}

	mgr, err := ctrl.NewManager(ctrl.GetConfigOrDie(), ctrl.Options{
		Scheme:                        scheme,
		Metrics:                       metricsOpts,
		HealthProbeBindAddress:        probeAddr,
		PprofBindAddress:              pprofAddr,
		LeaderElection:                enableLeaderElection,
		LeaderElectionID:              sh.LeaderElectionID(leaderElectionID),
		LeaderElectionNamespace:       leaderElectionNamespace,
		LeaderElectionReleaseOnCancel: true,
		LeaseDuration:                 &leaseDuration,
		RenewDeadline:                 &renewDeadline,
		RetryPeriod:                   &retryPeriod,
		Cache:                         cacheOpts,
	})
	if err != nil {
		log.Error(err, "unable to create manager")
		os.Exit(1)
	}

	drivers := drivercache.New(mgr.GetAPIReader(), drivercache.Options{
		MaxAge: credsMaxAge, RequestTimeout: requestTimeout, UserAgent: sh.UserAgent("nodeaction-operator"),
		RecordsLag: recordsLag,
	})
	if err := (&controllers.ProviderReconciler{
		Client: mgr.GetClient(), Drivers: drivers, Recorder: mgr.GetEventRecorder("nodeaction-operator"), ProbeInterval: probeInterval,
		Shard: &sh,
	}).SetupWithManager(mgr, controller.Options{}); err != nil {
		log.Error(err, "unable to set up the Provider controller")
		os.Exit(1)
	}
	kube, err := kubernetes.NewForConfig(mgr.GetConfig())
	if err != nil {
		log.Error(err, "unable to create a Kubernetes client")
		os.Exit(1)
	}
	direct, err := client.New(mgr.GetConfig(), client.Options{Scheme: scheme})
	if err != nil {
		log.Error(err, "unable to create a Kubernetes client")
		os.Exit(1)
	}
	nodes, err := controllers.MayWatchNodes(context.Background(), direct)
	if err != nil {
		log.Error(err, "unable to ask whether the manager may watch Nodes")
		os.Exit(1)
	}
	if !nodes {
		log.Info("the manager may not list, watch and patch Nodes: NodeActions with spec.node will wait (Stalled) until it may")
	}
	otherShards, err := controllers.NewOtherShardsCache(mgr, sh, cacheOpts.DefaultNamespaces)
	if err != nil {
		log.Error(err, "unable to set up the cache of other shards' NodeActions")
		os.Exit(1)
	}
	if err := (&controllers.NodeActionReconciler{
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Drivers: drivers, Recorder: mgr.GetEventRecorder("nodeaction-operator"),
		Kube: kube, Nodes: nodes, Shard: &sh, OtherShards: otherShards,
	}).SetupWithManager(mgr, controller.Options{MaxConcurrentReconciles: concurrency}); err != nil {
		log.Error(err, "unable to set up the NodeAction controller")
		os.Exit(1)
	}
	if err := (&controllers.NodeActionSetReconciler{
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Recorder: mgr.GetEventRecorder("nodeaction-operator"),
	}).SetupWithManager(mgr, controller.Options{MaxConcurrentReconciles: concurrency}); err != nil {
		log.Error(err, "unable to set up the NodeActionSet controller")
		os.Exit(1)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		log.Error(err, "unable to set up health check")
		os.Exit(1)
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		log.Error(err, "unable to set up ready check")
		os.Exit(1)
	}

	log.Info("starting manager", "watchNamespace", watchNamespace, "shard", sh.String(),
		"leaderElection", enableLeaderElection, "leaderElectionID", sh.LeaderElectionID(leaderElectionID))
	if err := mgr.Start(ctrl.SetupSignalHandler()); err != nil {
		log.Error(err, "problem running manager")
		os.Exit(1)
	}
}

// setGCPercent collects garbage once the heap grew by half since the last
// collection, not by all of it (Go's default, GOGC=100), unless GOGC is
// set. With many NodeActions the cache is most of the heap, and the
// default lets the process grow to twice it. The extra collections cost
// CPU: beside an API server on 2 cores, 4% of the throughput, for 137–229
// MiB less RSS with 100,000 NodeActions (docs/benchmarks.md, "Where each
// action's CPU goes as the count grows").
func setGCPercent() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(50)
	}
}
