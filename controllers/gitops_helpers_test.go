package controllers

// Helpers for gitops_test.go: read objects the way GitOps tools do
// (unstructured, from the apiserver), judge them with kstatus, Argo CD's
// Lua health checks and Flux's CEL health checks, run kubectl, and scrape
// the manager's metrics.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"k8s.io/client-go/kubernetes"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fluxcd/cli-utils/pkg/kstatus/status"
	"github.com/google/cel-go/cel"
	celtypes "github.com/google/cel-go/common/types"
	"github.com/google/cel-go/ext"
	lua "github.com/yuin/gopher-lua"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/nodeaction/nodeaction-operator/api/v1alpha1"
	"github.com/nodeaction/nodeaction-operator/internal/drivercache"
)

var (
	gitopsNodeActionGVR = v1alpha1.GroupVersion.WithResource("nodeactions")
	gitopsNodeActionGVK = v1alpha1.GroupVersion.WithKind("NodeAction")
	gitopsProviderGVK   = v1alpha1.GroupVersion.WithKind("Provider")
)

// gitopsGet reads an object from the apiserver as unstructured, as kstatus,
// Argo CD and Flux see it.
func gitopsGet(t *testing.T, gvk schema.GroupVersionKind, key client.ObjectKey) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(gvk)
	if err := k8s.Get(context.Background(), key, u); err != nil {
		t.Fatalf("get %s %s: %v", gvk.Kind, key, err)
	}
	return u
}

// gitopsPhase is status.phase, or "" before the operator wrote any status.
func gitopsPhase(u *unstructured.Unstructured) string {
	p, _, _ := unstructured.NestedString(u.Object, "status", "phase")
	return p
}

// gitopsCondition returns the condition of that type from an unstructured object.
func gitopsCondition(u *unstructured.Unstructured, typ string) (st, reason, msg string, found bool) {
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		m, ok := c.(map[string]any)
		if !ok || m["type"] != typ {
			continue
		}
		st, _ = m["status"].(string)
		reason, _ = m["reason"].(string)
		msg, _ = m["message"].(string)
		return st, reason, msg, true
	}
	return "", "", "", false
}

func gitopsGenerationObserved(u *unstructured.Unstructured) bool {
	og, found, _ := unstructured.NestedInt64(u.Object, "status", "observedGeneration")
	return found && og == u.GetGeneration()
}

// gitopsRunID is spec.runID or status.runID ("" when unset).
func gitopsRunID(u *unstructured.Unstructured, where string) string {
	id, _, _ := unstructured.NestedString(u.Object, where, "runID")
	return id
}

// gitopsDescribe is a short line about one version of an object, for failures.
func gitopsDescribe(u *unstructured.Unstructured) string {
	_, reason, msg, _ := gitopsCondition(u, v1alpha1.ConditionReady)
	og, _, _ := unstructured.NestedInt64(u.Object, "status", "observedGeneration")
	return fmt.Sprintf("rv %s generation %d observedGeneration %d runID %q/%q phase %q Ready reason %q message %q",
		u.GetResourceVersion(), u.GetGeneration(), og, gitopsRunID(u, "spec"), gitopsRunID(u, "status"), gitopsPhase(u), reason, msg)
}

// gitopsHistory records every version of one NodeAction the apiserver
// publishes, from a watch opened before the object exists: each status
// write the reconciler makes is one version.
type gitopsHistory struct {
	mu       sync.Mutex
	versions []*unstructured.Unstructured
	notify   chan struct{}
}

func gitopsRecord(t *testing.T, ns, name string) *gitopsHistory {
	t.Helper()
	return gitopsRecordResource(t, gitopsNodeActionGVR, ns, name)
}

// gitopsRecordResource records every version of one object of a resource.
func gitopsRecordResource(t *testing.T, gvr schema.GroupVersionResource, ns, name string) *gitopsHistory {
	t.Helper()
	dyn, err := dynamic.NewForConfig(restConfig)
	if err != nil {
		t.Fatal(err)
	}
	h := &gitopsHistory{notify: make(chan struct{}, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	opts := metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", name).String()}
	w, err := dyn.Resource(gvr).Namespace(ns).Watch(ctx, opts)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			for ev := range w.ResultChan() {
				u, ok := ev.Object.(*unstructured.Unstructured)
				if !ok || (ev.Type != watch.Added && ev.Type != watch.Modified) {
					continue
				}
				h.mu.Lock()
				h.versions = append(h.versions, u.DeepCopy())
				opts.ResourceVersion = u.GetResourceVersion()
				h.mu.Unlock()
				select {
				case h.notify <- struct{}{}:
				default:
				}
			}
			if ctx.Err() != nil {
				return
			}
			// The server ended the watch: go on from the last version seen.
			if w, err = dyn.Resource(gvr).Namespace(ns).Watch(ctx, opts); err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		w.Stop()
		<-done
	})
	return h
}

func (h *gitopsHistory) all() []*unstructured.Unstructured {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]*unstructured.Unstructured(nil), h.versions...)
}

// waitFor waits until some recorded version satisfies cond, and returns it.
func (h *gitopsHistory) waitFor(t *testing.T, timeout time.Duration, what string, cond func(*unstructured.Unstructured) bool) *unstructured.Unstructured {
	t.Helper()
	deadline := time.After(timeout)
	for {
		for _, u := range h.all() {
			if cond(u) {
				return u
			}
		}
		select {
		case <-h.notify:
		case <-deadline:
			var seen []string
			for _, u := range h.all() {
				seen = append(seen, gitopsDescribe(u))
			}
			t.Fatalf("timed out after %s waiting for %s; versions seen:\n  %s", timeout, what, strings.Join(seen, "\n  "))
		}
	}
}

func gitopsPhaseIs(phase v1alpha1.Phase) func(*unstructured.Unstructured) bool {
	return func(u *unstructured.Unstructured) bool { return gitopsPhase(u) == string(phase) }
}

// gitopsKstatus computes the kstatus of an object, as Flux's wait and the
// cli-utils status poller do.
func gitopsKstatus(t *testing.T, u *unstructured.Unstructured) *status.Result {
	t.Helper()
	res, err := status.Compute(u)
	if err != nil {
		t.Fatalf("kstatus on %s: %v", gitopsDescribe(u), err)
	}
	return res
}

// Argo CD health checks.

var gitopsArgoStatuses = map[string]bool{"Healthy": true, "Progressing": true, "Degraded": true, "Suspended": true, "Missing": true, "Unknown": true}

func gitopsReadFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", path))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// gitopsArgoHealth runs an Argo CD health script the way Argo CD runs a
// script from argocd-cm (util/lua in argo-cd): a gopher-lua state without
// the standard libraries except package, base and table, a one-second
// limit, the object as the global `obj`, and a table returned with status
// and message.
func gitopsArgoHealth(t *testing.T, script string, u *unstructured.Unstructured) (healthStatus, message string) {
	t.Helper()
	l := gitopsArgoSandbox(t)
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("obj", gitopsLuaValue(l, u.Object))
	if err := l.DoString(script); err != nil {
		t.Fatalf("health script failed on %s: %v", gitopsDescribe(u), err)
	}
	ret, ok := l.Get(-1).(*lua.LTable)
	if !ok {
		t.Fatalf("health script returned %s, want a table", l.Get(-1).Type())
	}
	st, ok := ret.RawGetString("status").(lua.LString)
	if !ok || !gitopsArgoStatuses[string(st)] {
		t.Fatalf("health script returned status %v, not an Argo CD health status", ret.RawGetString("status"))
	}
	msg, _ := ret.RawGetString("message").(lua.LString)
	return string(st), string(msg)
}

// gitopsArgoSandbox is a Lua state with what Argo CD opens for argocd-cm
// scripts (useOpenLibs off): package, base and table.
func gitopsArgoSandbox(t *testing.T) *lua.LState {
	t.Helper()
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	for _, lib := range []struct {
		name string
		fn   lua.LGFunction
	}{{lua.LoadLibName, lua.OpenPackage}, {lua.BaseLibName, lua.OpenBase}, {lua.TabLibName, lua.OpenTable}} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(lib.fn), NRet: 0, Protect: true}, lua.LString(lib.name)); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

// gitopsLuaValue converts a decoded JSON value to Lua as Argo CD's
// decodeValue does.
func gitopsLuaValue(l *lua.LState, v any) lua.LValue {
	switch x := v.(type) {
	case bool:
		return lua.LBool(x)
	case float64:
		return lua.LNumber(x)
	case int64:
		return lua.LNumber(x)
	case int:
		return lua.LNumber(x)
	case int32:
		return lua.LNumber(x)
	case string:
		return lua.LString(x)
	case []any:
		arr := l.CreateTable(len(x), 0)
		for _, item := range x {
			arr.Append(gitopsLuaValue(l, item))
		}
		return arr
	case map[string]any:
		tbl := l.CreateTable(0, len(x))
		for k, item := range x {
			tbl.RawSetH(lua.LString(k), gitopsLuaValue(l, item))
		}
		return tbl
	}
	return lua.LNil
}

// Flux health check expressions (Kustomization/HelmRelease
// spec.healthCheckExprs), evaluated as fluxcd/pkg runtime/cel does.

type gitopsFluxExprs struct{ inProgress, failed, current string }

// gitopsFluxEval returns "InProgress", "Failed" or "Current", or an error
// when an expression cannot be evaluated (Flux reports the object Unknown
// and keeps waiting).
func gitopsFluxEval(t *testing.T, e gitopsFluxExprs, u *unstructured.Unstructured) (string, error) {
	t.Helper()
	env, err := cel.NewEnv(cel.HomogeneousAggregateLiterals(), cel.EagerlyValidateDeclarations(true),
		cel.DefaultUTCTimeZone(true), cel.CrossTypeNumericComparisons(true), cel.OptionalTypes(),
		ext.Strings(), ext.Sets(), ext.Encoders())
	if err != nil {
		t.Fatal(err)
	}
	if og, found, _ := unstructured.NestedInt64(u.Object, "status", "observedGeneration"); found && og != u.GetGeneration() {
		return "InProgress", nil
	}
	for _, step := range []struct{ expr, result string }{{e.inProgress, "InProgress"}, {e.failed, "Failed"}, {e.current, "Current"}} {
		if step.expr == "" {
			continue
		}
		ast, iss := env.Parse(step.expr)
		if iss != nil && iss.Err() != nil {
			t.Fatalf("Flux expression %q does not parse: %v", step.expr, iss.Err())
		}
		prg, err := env.Program(ast, cel.EvalOptions(cel.OptOptimize), cel.InterruptCheckFrequency(100))
		if err != nil {
			t.Fatal(err)
		}
		val, _, err := prg.Eval(u.UnstructuredContent())
		if err != nil {
			return "", fmt.Errorf("failed to evaluate the CEL expression '%s': %w", step.expr, err)
		}
		b, ok := val.(celtypes.Bool)
		if !ok {
			return "", fmt.Errorf("CEL expression %q is not boolean", step.expr)
		}
		if b {
			return step.result, nil
		}
	}
	return "InProgress", nil
}

// kubectl against the envtest apiserver.

// gitopsKubeconfig writes the envtest admin credentials to a kubeconfig.
func gitopsKubeconfig(t *testing.T) string {
	t.Helper()
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["envtest"] = &clientcmdapi.Cluster{Server: restConfig.Host, CertificateAuthorityData: restConfig.CAData}
	cfg.AuthInfos["envtest-admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: restConfig.CertData, ClientKeyData: restConfig.KeyData, Token: restConfig.BearerToken}
	cfg.Contexts["envtest"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "envtest-admin"}
	cfg.CurrentContext = "envtest"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

type gitopsKubectlResult struct {
	output string
	code   int
	took   time.Duration
}

// gitopsKubectl runs bin/k8s/kubectl (from KUBEBUILDER_ASSETS) and returns
// its combined output and exit code.
func gitopsKubectl(t *testing.T, kubeconfig string, args ...string) gitopsKubectlResult {
	t.Helper()
	return gitopsKubectlStart(t, kubeconfig, args...)()
}

// gitopsKubectlStart starts kubectl and returns a function, to call from
// the test goroutine, that waits for it to exit.
func gitopsKubectlStart(t *testing.T, kubeconfig string, args ...string) func() gitopsKubectlResult {
	t.Helper()
	bin := filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kubectl")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("kubectl not found at %s: run `make controlplane`", bin)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	dir := filepath.Dir(kubeconfig)
	cmd := exec.CommandContext(ctx, bin, append([]string{"--kubeconfig", kubeconfig, "--cache-dir", filepath.Join(dir, "cache")}, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+dir)
	out := &gitopsBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	start := time.Now()
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("kubectl %v: %v", args, err)
	}
	return func() gitopsKubectlResult {
		t.Helper()
		defer cancel()
		err := cmd.Wait()
		res := gitopsKubectlResult{output: out.String(), took: time.Since(start)}
		var exit *exec.ExitError
		switch {
		case err == nil:
		case errors.As(err, &exit):
			res.code = exit.ExitCode()
		default:
			t.Fatalf("kubectl %v: %v", args, err)
		}
		t.Logf("kubectl %s -> exit %d after %s: %s", strings.Join(args, " "), res.code, res.took.Round(time.Millisecond), strings.TrimSpace(res.output))
		return res
	}
}

type gitopsBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (g *gitopsBuffer) Write(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.b.Write(p)
}

func (g *gitopsBuffer) String() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.b.String()
}

// Metrics.

// gitopsStartManagerWithMetrics runs the controllers as startManagerIn
// does, watching namespace ns, with the metrics endpoint served over plain
// HTTP on a free loopback port, and returns the endpoint's URL. The metrics
// themselves are controller-runtime's global registry, shared by every
// manager in the test process.
func gitopsStartManagerWithMetrics(t *testing.T, ns string) string {
	t.Helper()
	for attempt := 0; attempt < 5; attempt++ {
		url, err := gitopsTryManagerWithMetrics(t, ns, gitopsFreeAddr(t))
		if err == nil {
			return url
		}
		t.Logf("manager with metrics did not start (%v); trying another port", err)
	}
	t.Fatal("could not start a manager with a metrics endpoint")
	return ""
}

func gitopsTryManagerWithMetrics(t *testing.T, ns, addr string) (string, error) {
	t.Helper()
	mgr, err := ctrl.NewManager(restConfig, ctrl.Options{
		Scheme:                 testScheme,
		Metrics:                metricsserver.Options{BindAddress: addr},
		HealthProbeBindAddress: "0",
		Cache: cache.Options{DefaultTransform: cache.TransformStripManagedFields(),
			DefaultNamespaces: map[string]cache.Config{ns: {}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	drivers := drivercache.New(mgr.GetAPIReader(), drivercache.Options{RequestTimeout: testRequestTimeout, MaxRateWait: 200 * time.Millisecond, RecordsLag: testRecordsLag})
	opts := controller.Options{SkipNameValidation: ptr.To(true), MaxConcurrentReconciles: 4}
	if err := (&ProviderReconciler{Client: mgr.GetClient(), Drivers: drivers, Recorder: mgr.GetEventRecorder("nodeaction-operator")}).SetupWithManager(mgr, opts); err != nil {
		t.Fatal(err)
	}
	if err := (&NodeActionReconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Drivers: drivers,
		Recorder: mgr.GetEventRecorder("nodeaction-operator"), Kube: kubernetes.NewForConfigOrDie(restConfig), Nodes: true}).SetupWithManager(mgr, opts); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	url := "http://" + addr + "/metrics"
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case err := <-done:
			cancel()
			return "", fmt.Errorf("manager stopped: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
		if resp, err := http.Get(url); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			cancel()
			<-done
			return "", fmt.Errorf("metrics endpoint %s did not come up", url)
		}
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	})
	return url, nil
}

func gitopsFreeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

// gitopsSample is one scraped series.
type gitopsSample struct {
	name   string
	labels map[string]string
	value  float64
}

// gitopsScrape is one GET of /metrics: TYPE lines and samples.
type gitopsScrape struct {
	types   map[string]string
	samples []gitopsSample
}

var gitopsSampleLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$`)
var gitopsLabelPair = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)

func gitopsScrapeMetrics(t *testing.T, url string) *gitopsScrape {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	// The text format, whatever the server's default negotiation.
	req.Header.Set("Accept", "text/plain; version=0.0.4")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %s %s", url, resp.Status, b)
	}
	s := &gitopsScrape{types: map[string]string{}}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "# TYPE ") {
			f := strings.Fields(line)
			if len(f) == 4 {
				s.types[f[2]] = f[3]
			}
			continue
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		m := gitopsSampleLine.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("cannot parse metrics line %q", line)
		}
		v, err := strconv.ParseFloat(m[3], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		labels := map[string]string{}
		for _, p := range gitopsLabelPair.FindAllStringSubmatch(m[2], -1) {
			labels[p[1]] = strings.NewReplacer(`\\`, `\`, `\"`, `"`, `\n`, "\n").Replace(p[2])
		}
		s.samples = append(s.samples, gitopsSample{name: m[1], labels: labels, value: v})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return s
}

// value returns the value of the series with exactly these labels (other
// labels absent), and whether it exists.
func (s *gitopsScrape) value(name string, labels map[string]string) (float64, bool) {
	for _, smp := range s.samples {
		if smp.name != name || len(smp.labels) != len(labels) {
			continue
		}
		match := true
		for k, v := range labels {
			if smp.labels[k] != v {
				match = false
				break
			}
		}
		if match {
			return smp.value, true
		}
	}
	return 0, false
}

// get is value, 0 when the series does not exist (a counter not yet created).
func (s *gitopsScrape) get(name string, labels map[string]string) float64 {
	v, _ := s.value(name, labels)
	return v
}

// series lists the label sets of a metric, for failure messages.
func (s *gitopsScrape) series(name string) string {
	var out []string
	for _, smp := range s.samples {
		if smp.name == name {
			var kv []string
			for k, v := range smp.labels {
				kv = append(kv, fmt.Sprintf("%s=%q", k, v))
			}
			sort.Strings(kv)
			out = append(out, fmt.Sprintf("{%s} %g", strings.Join(kv, ","), smp.value))
		}
	}
	return strings.Join(out, "\n  ")
}

func gitopsLabels(kv ...string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

func gitopsWith(base map[string]string, kv ...string) map[string]string {
	m := map[string]string{}
	for k, v := range base {
		m[k] = v
	}
	for k, v := range gitopsLabels(kv...) {
		m[k] = v
	}
	return m
}
