package controllers

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/nodeaction/nodeaction-operator/api/v1alpha1"
	"github.com/nodeaction/nodeaction-operator/internal/drivercache"
	"github.com/nodeaction/nodeaction-operator/internal/fakecloud"
	"github.com/nodeaction/nodeaction-operator/internal/fakecloud/demo"
	"github.com/nodeaction/nodeaction-operator/internal/shard"
)

// The suite runs against a real kube-apiserver and etcd (envtest, binaries
// built by hack/build-controlplane.sh) and a fakecloud on loopback.
var (
	testScheme = runtime.NewScheme()
	restConfig *rest.Config
	k8s        client.Client // talks to the apiserver directly, no cache
	cloud      *fakecloud.Cloud
	cloudURL   string
	nsCounter  atomic.Int64
)

// Timing used by every test manager: short, so tests are quick.
const (
	testRequestTimeout = 2 * time.Second
	// testRecordsLag: fakecloud's records settle within its worlds'
	// delays (at most 3.5s), not the minutes a real provider may take.
	testRecordsLag   = 5 * time.Second
	testPollInterval = "100ms"
)

func TestMain(m *testing.M) {
	utilruntime.Must(clientgoscheme.AddToScheme(testScheme))
	utilruntime.Must(v1alpha1.AddToScheme(testScheme))
	if os.Getenv("TEST_VERBOSE") != "" {
		logf.SetLogger(zap.New(zap.UseDevMode(true), zap.WriteTo(os.Stderr)))
	} else {
		logf.SetLogger(zap.New(zap.WriteTo(ioDiscard{})))
	}
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		assets, _ := filepath.Abs(filepath.Join("..", "bin", "k8s"))
		if _, err := os.Stat(filepath.Join(assets, "kube-apiserver")); err != nil {
			fmt.Fprintln(os.Stderr, "kube-apiserver not found: run `make controlplane` (or `make test`) first")
			os.Exit(1)
		}
		os.Setenv("KUBEBUILDER_ASSETS", assets)
	}
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	var err error
	if restConfig, err = env.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "starting envtest:", err)
		os.Exit(1)
	}
	if k8s, err = client.New(restConfig, client.Options{Scheme: testScheme}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cloud = fakecloud.New(fakecloud.DefaultTestWorld().Apply(suiteCloudOptions()))
	server := httptest.NewServer(cloud.Handler())
	cloudURL = server.URL

	code := m.Run()
	server.Close()
	_ = env.Stop()
	os.Exit(code)
}

// suiteCloudOptions are the options of every cloud the suite serves.
// Tests run in parallel against one cloud with the same demo tokens: the
// per-token budget is out of the way here, and rate limits are tested with
// injected 429s.
func suiteCloudOptions() fakecloud.Options {
	return fakecloud.Options{ActionDuration: 300 * time.Millisecond,
		RateBudget: fakecloud.RateBudget{Limit: 1_000_000, Window: time.Minute}}
}

type ioDiscard struct{}

func (ioDiscard) Write(p []byte) (int, error) { return len(p), nil }

// startManager runs the controllers in-process, watching every namespace,
// until the returned stop is called (or the test ends). Parallel tests use
// startManagerIn so that their managers leave each other's objects alone.
func startManager(t *testing.T) (stop func()) {
	t.Helper()
	return startManagerIn(t, "")
}

// startManagerIn runs the controllers in-process, watching only namespace
// ns ("" for all).
func startManagerIn(t *testing.T, ns string) (stop func()) {
	t.Helper()
	return startManagerWith(t, ns).stop
}

// running is an in-process manager and what its controllers keep.
type running struct {
	stop       func()
	drivers    *drivercache.Cache
	nodeAction *NodeActionReconciler
}

// startManagerWith runs the controllers like startManagerIn and hands back
// their state, for tests that look into it.
func startManagerWith(t *testing.T, ns string) running {
	t.Helper()
	return startShardManager(t, ns, nil)
}

// startShardManager runs the controllers like main.go with --shard (sh:
// its cache holds the shard's NodeActions, its Providers are probed, its
// provider calls carry the shard in their User-Agent); nil sh runs them
// as startManagerWith does.
func startShardManager(t *testing.T, ns string, sh *shard.Shard) running {
	t.Helper()
	cacheOpts := cache.Options{DefaultTransform: cache.TransformStripManagedFields()}
	if ns != "" {
		cacheOpts.DefaultNamespaces = map[string]cache.Config{ns: {}}
	}
	userAgent := "nodeaction-operator"
	if sh != nil {
		cacheOpts.ByObject = sh.CacheByObject()
		userAgent = sh.UserAgent(userAgent)
	}
	mgr, err := ctrl.NewManager(restConfig, ctrl.Options{
		Scheme:                 testScheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache:                  cacheOpts,
	})
	if err != nil {
		t.Fatal(err)
	}
	drivers := drivercache.New(mgr.GetAPIReader(), drivercache.Options{RequestTimeout: testRequestTimeout, MaxRateWait: 200 * time.Millisecond,
		UserAgent: userAgent, RecordsLag: testRecordsLag})
	opts := controller.Options{SkipNameValidation: ptr.To(true), MaxConcurrentReconciles: 4}
	if err := (&ProviderReconciler{Client: mgr.GetClient(), Drivers: drivers, Recorder: mgr.GetEventRecorder("nodeaction-operator"),
		Shard: sh}).SetupWithManager(mgr, opts); err != nil {
		t.Fatal(err)
	}
	nar := &NodeActionReconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Drivers: drivers,
		Recorder: mgr.GetEventRecorder("nodeaction-operator"), Kube: kubernetes.NewForConfigOrDie(restConfig), Nodes: true, Shard: sh}
	if sh != nil {
		if nar.OtherShards, err = NewOtherShardsCache(mgr, *sh, cacheOpts.DefaultNamespaces); err != nil {
			t.Fatal(err)
		}
	}
	if err := nar.SetupWithManager(mgr, opts); err != nil {
		t.Fatal(err)
	}
	if err := (&NodeActionSetReconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Recorder: mgr.GetEventRecorder("nodeaction-operator")}).SetupWithManager(mgr, opts); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := mgr.Start(ctx); err != nil {
			t.Errorf("manager: %v", err)
		}
	}()
	var stopped atomic.Bool
	stop := func() {
		if stopped.CompareAndSwap(false, true) {
			cancel()
			<-done
		}
	}
	t.Cleanup(stop)
	return running{stop: stop, drivers: drivers, nodeAction: nar}
}

// newNamespace creates a namespace for one test.
func newNamespace(t *testing.T) string {
	t.Helper()
	// Any character a namespace name cannot hold becomes a dash.
	name := fmt.Sprintf("t%d-%s", nsCounter.Add(1), strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, strings.ToLower(t.Name())))
	if len(name) > 50 {
		name = name[:50]
	}
	name = strings.TrimRight(name, "-")
	if err := k8s.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
		t.Fatal(err)
	}
	return name
}

// providerFor returns a Provider of a type pointed at the suite's fakecloud
// with the demo credentials, and the Secret it needs.
func providerFor(t *testing.T, ns, name string, typ v1alpha1.ProviderType) (*v1alpha1.Provider, *corev1.Secret) {
	t.Helper()
	return providerAt(t, ns, name, typ, cloudURL)
}

// providerAt is providerFor for the fakecloud served at base.
func providerAt(t *testing.T, ns, name string, typ v1alpha1.ProviderType, base string) (*v1alpha1.Provider, *corev1.Secret) {
	t.Helper()
	p, secret := demo.Provider(ns, name, typ, base)
	p.Spec.PollInterval = &metav1.Duration{Duration: mustDuration(testPollInterval)}
	return p, secret
}

func mustDuration(s string) time.Duration {
	d, err := time.ParseDuration(s)
	if err != nil {
		panic(err)
	}
	return d
}

// createProvider creates a Provider on the suite's fakecloud and its Secret.
func createProvider(t *testing.T, ns, name string, typ v1alpha1.ProviderType) *v1alpha1.Provider {
	t.Helper()
	return createProviderAt(t, ns, name, typ, cloudURL)
}

// createProviderAt creates a Provider on the fakecloud at base and its Secret.
func createProviderAt(t *testing.T, ns, name string, typ v1alpha1.ProviderType, base string) *v1alpha1.Provider {
	t.Helper()
	p, s := providerAt(t, ns, name, typ, base)
	create(t, s)
	create(t, p)
	return p
}

func create(t *testing.T, o client.Object) {
	t.Helper()
	if err := k8s.Create(context.Background(), o); err != nil {
		t.Fatalf("create %T %s: %v", o, o.GetName(), err)
	}
}

// nodeAction builds a NodeAction.
func nodeAction(ns, name, providerName, nodeID, action string) *v1alpha1.NodeAction {
	return &v1alpha1.NodeAction{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1alpha1.NodeActionSpec{
			ProviderRef: v1alpha1.ProviderReference{Name: providerName},
			NodeID:      nodeID, Action: action,
		},
	}
}

// waitFor polls the object until cond holds, failing the test after timeout
// with the object's last status.
func waitFor[T client.Object](t *testing.T, obj T, timeout time.Duration, what string, cond func(T) bool) T {
	t.Helper()
	key := client.ObjectKeyFromObject(obj)
	deadline := time.Now().Add(timeout)
	for {
		err := k8s.Get(context.Background(), key, obj)
		if err == nil && cond(obj) {
			return obj
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s on %s: last error %v, object status %s", timeout, what, key, err, statusOf(obj))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func statusOf(o client.Object) string {
	switch v := o.(type) {
	case *v1alpha1.NodeAction:
		return fmt.Sprintf("%+v", v.Status)
	case *v1alpha1.Provider:
		return fmt.Sprintf("%+v", v.Status)
	}
	return ""
}

func condition(conds []metav1.Condition, typ string) *metav1.Condition {
	return apimeta.FindStatusCondition(conds, typ)
}

// finished waits for a NodeAction to reach Succeeded or Failed.
func finished(t *testing.T, na *v1alpha1.NodeAction, timeout time.Duration) *v1alpha1.NodeAction {
	t.Helper()
	return waitFor(t, na, timeout, "the action to finish", func(n *v1alpha1.NodeAction) bool { return n.Status.Phase.Finished() })
}

// expectReady asserts Ready=True with one of the reasons.
func expectReady(t *testing.T, na *v1alpha1.NodeAction, reasons ...string) {
	t.Helper()
	c := condition(na.Status.Conditions, v1alpha1.ConditionReady)
	if na.Status.Phase != v1alpha1.PhaseSucceeded || c == nil || c.Status != metav1.ConditionTrue {
		t.Fatalf("want Succeeded with Ready=True, got phase %s, Ready %+v (message %q)", na.Status.Phase, c, na.Status.Message)
	}
	if len(reasons) > 0 && !contains(reasons, c.Reason) {
		t.Fatalf("Ready reason %q, want one of %v", c.Reason, reasons)
	}
	if s := condition(na.Status.Conditions, v1alpha1.ConditionStalled); s != nil {
		t.Errorf("a succeeded action has a Stalled condition: %+v", s)
	}
	if r := condition(na.Status.Conditions, v1alpha1.ConditionReconciling); r != nil {
		t.Errorf("a succeeded action has a Reconciling condition: %+v", r)
	}
	if na.Status.ObservedGeneration != na.Generation {
		t.Errorf("observedGeneration %d, generation %d", na.Status.ObservedGeneration, na.Generation)
	}
}

// expectStalled asserts Failed with Stalled=True and the reason, and that
// the message contains each of parts.
func expectStalled(t *testing.T, na *v1alpha1.NodeAction, reason string, parts ...string) {
	t.Helper()
	s := condition(na.Status.Conditions, v1alpha1.ConditionStalled)
	r := condition(na.Status.Conditions, v1alpha1.ConditionReady)
	if na.Status.Phase != v1alpha1.PhaseFailed || s == nil || s.Status != metav1.ConditionTrue || r == nil || r.Status != metav1.ConditionFalse {
		t.Fatalf("want Failed with Stalled=True and Ready=False, got phase %s, Stalled %+v, Ready %+v", na.Status.Phase, s, r)
	}
	if s.Reason != reason {
		t.Fatalf("Stalled reason %q, want %q (message %q)", s.Reason, reason, s.Message)
	}
	for _, p := range parts {
		if !strings.Contains(s.Message, p) {
			t.Errorf("Stalled message %q does not contain %q", s.Message, p)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// waitForList lists objects in a namespace until cond holds.
func waitForList(t *testing.T, list client.ObjectList, ns string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := k8s.List(context.Background(), list, client.InNamespace(ns))
		if err == nil && cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %T in %s (last error %v)", list, ns, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
