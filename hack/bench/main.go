// Command bench measures what nodeaction-operator costs and how it scales,
// against a local kube-apiserver and etcd (envtest, the binaries in bin/k8s),
// fakecloud, and the manager binary (bin/manager) as its own process. It
// prints a table of measured values with their targets; every ratio in it
// comes from the same run on the same machine.
//
//	make bench                       # all rows
//	go run ./hack/bench --help       # sizes and which rows to run
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	eventsv1 "k8s.io/api/events/v1"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/nodeaction/nodeaction-operator/api/v1alpha1"
	"github.com/nodeaction/nodeaction-operator/internal/fakecloud"
	"github.com/nodeaction/nodeaction-operator/internal/fakecloud/demo"
)

var (
	scheme = runtime.NewScheme()
	kube   client.WithWatch
	// apiserverHTTP reaches the kube-apiserver as an admin (its CPU
	// profile, BENCH_CPUPROFILE).
	apiserverHTTP *http.Client
	apiserverURL  string
	// etcdURL serves etcd's metrics (its CPU time).
	etcdURL string
	cloud   *fakecloud.Cloud
	cloudURL,
	kubeconfig string
	workers int
	// managerConcurrency is --max-concurrent-reconciles for the manager.
	managerConcurrency int
)

// row is one line of the result table.
type row struct {
	name, value, target string
	pass                *bool
}

func yes(b bool) *bool { return &b }

// cleanups run before the bench exits, however it exits: etcd,
// kube-apiserver and managers must not outlive it.
var (
	cleanupMu sync.Mutex
	cleanups  []func()
)

func atExit(f func()) {
	cleanupMu.Lock()
	defer cleanupMu.Unlock()
	cleanups = append(cleanups, f)
}

func exit(code int) {
	cleanupMu.Lock()
	fs := cleanups
	cleanups = nil
	cleanupMu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
	os.Exit(code)
}

func main() {
	flags := flag.NewFlagSet("bench", flag.ExitOnError)
	n := flags.Int("n", 1000, "NodeActions in the throughput run (instant provider actions)")
	scale := flags.Int("scale", 10000, "NodeActions in the scale run (memory, restart)")
	fleet := flags.Int("fleet", 1000, "concurrent DigitalOcean actions in the rate-limit run")
	fleetDuration := flags.Duration("fleet-duration", 30*time.Second, "how long each action of the rate-limit run lasts")
	budget := flags.Int("budget", 250, "provider requests per minute fakecloud allows in the rate-limit run")
	setSize := flags.Int("set", 1000, "DigitalOcean VMs of the NodeActionSet in the set run")
	setMaxUnavailable := flags.Int("set-max-unavailable", 50, "the set's maxUnavailable in the set run")
	setDuration := flags.Duration("set-duration", 5*time.Second, "how long each action of the set run lasts")
	sweepN := flags.Int("sweeps", 500, "concurrent actions per provider in the sweeps run (CloudsFor, Senlin, E2E, OpenScaler)")
	only := flags.String("only", "", "comma-separated rows to run: ceiling,throughput,polls,scale,sweeps,fleet,shards,set (default all), and the optional scale100k (100,000 NodeActions) and floorgrowth (the API server's own floor with --scale NodeActions stored, no manager)")
	flags.IntVar(&workers, "workers", 16, "concurrent creates")
	manager := flags.String("manager", "bin/manager", "manager binary")
	concurrency := flags.Int("max-concurrent-reconciles", 0, "passed to the manager (0: its default)")
	out := flags.String("write", "", "also write the table, as Markdown, to this file")
	_ = flags.Parse(os.Args[1:])
	managerConcurrency = *concurrency
	runs := map[string]bool{}
	for _, r := range strings.Split(*only, ",") {
		if r != "" {
			runs[r] = true
		}
	}
	want := func(r string) bool { return len(runs) == 0 || runs[r] }

	logf.SetLogger(zap.New(zap.WriteTo(io.Discard)))
	must(clientgoscheme.AddToScheme(scheme))
	must(v1alpha1.AddToScheme(scheme))
	assets, _ := filepath.Abs("bin/k8s")
	if v := os.Getenv("KUBEBUILDER_ASSETS"); v != "" {
		assets = v
	}
	crdDir := "config/crd/bases"
	if v := os.Getenv("BENCH_CRD_DIR"); v != "" {
		crdDir = v
	}
	env := &envtest.Environment{CRDDirectoryPaths: []string{crdDir}, ErrorIfCRDPathMissing: true, BinaryAssetsDirectory: assets}
	// BENCH_APISERVER_ARGS: extra kube-apiserver flags, "name=value"
	// separated by spaces (e.g. feature-gates=DetectCacheInconsistency=false,
	// to see what the API server's periodic full reads of etcd cost).
	for _, f := range strings.Fields(os.Getenv("BENCH_APISERVER_ARGS")) {
		name, value, _ := strings.Cut(strings.TrimLeft(f, "-"), "=")
		env.ControlPlane.GetAPIServer().Configure().Append(name, value)
	}
	cfg, err := env.Start()
	must(err)
	atExit(func() { _ = env.Stop() })
	atExit(stopManagers)
	// Interrupted (Ctrl-C, timeout): stop etcd, kube-apiserver and managers too.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sig
		exit(130)
	}()
	cfg.QPS, cfg.Burst = -1, 0 // measure the apiserver, not a client-side limiter
	kube, err = client.NewWithWatch(cfg, client.Options{Scheme: scheme})
	must(err)
	apiserverHTTP, err = rest.HTTPClientFor(cfg)
	must(err)
	apiserverURL = cfg.Host
	etcdURL = env.ControlPlane.Etcd.URL.String()
	admin, err := env.AddUser(envtest.User{Name: "bench-admin", Groups: []string{"system:masters"}}, nil)
	must(err)
	kc, err := admin.KubeConfig()
	must(err)
	dir, err := os.MkdirTemp("", "nodeaction-bench-")
	must(err)
	atExit(func() { _ = os.RemoveAll(dir) })
	kubeconfig = filepath.Join(dir, "kubeconfig")
	must(os.WriteFile(kubeconfig, kc, 0o600))

	// The tests' default world, so that numbers stay comparable across runs
	// (DigitalOcean's fleet sweeps read lists newest first until issue 13's
	// driver fixes; the faithful world lists oldest first).
	cloud = fakecloud.New(fakecloud.DefaultTestWorld().Apply(fakecloud.Options{RateBudget: fakecloud.RateBudget{Limit: 1 << 30, Window: time.Minute}}))
	cloud.SetActionDuration(0) // instant unless a VM says otherwise
	srv := httptest.NewServer(cloud.Handler())
	atExit(srv.Close)
	cloudURL = srv.URL

	fmt.Printf("bench: %d cores, apiserver %s, manager %s\n", numCPU(), cfg.Host, *manager)
	var rows []row
	var ceilings ceilingRates
	if want("ceiling") || want("throughput") {
		ceilings = measureCeilings(cfg, *n)
		rows = append(rows,
			row{"ceiling: creates/s of a trivial object (ConfigMap)", fmt.Sprintf("%.0f/s", ceilings.configMap), "-", nil},
			row{"apiserver: creates/s of a trivial custom resource (open schema)", fmt.Sprintf("%.0f/s", ceilings.customResource), "-", nil},
			row{"apiserver: NodeAction status patches/s, no controller running", fmt.Sprintf("%.0f/s", ceilings.statusPatch), "-", nil},
			row{"apiserver: NodeAction creates/s, no controller running", fmt.Sprintf("%.0f/s", ceilings.nodeActionCreate), "-", nil},
			row{"apiserver: NodeAction creates/s and status patches/s with two watches open on the namespace", fmt.Sprintf("%.0f/s, %.0f/s", ceilings.nodeActionCreateWatched, ceilings.statusPatchWatched), "-", nil},
			row{"apiserver: event creates/s, no controller running", fmt.Sprintf("%.0f/s", ceilings.eventCreate), "-", nil})
	}
	baseRate := 0.0 // the throughput row's rate, for the scale rows
	if want("throughput") {
		var r []row
		r, baseRate = throughput(*manager, *n, ceilings)
		rows = append(rows, r...)
	}
	if want("polls") {
		rows = append(rows, polls(*manager, *fleetDuration)...)
	}
	if want("scale") {
		rows = append(rows, scaleRun(*manager, *scale, baseRate, ceilings)...)
	}
	if want("sweeps") {
		rows = append(rows, sweepsRun(*manager, *sweepN, *fleetDuration)...)
	}
	if want("fleet") {
		rows = append(rows, fleetRun(*manager, *fleet, *fleetDuration, *budget)...)
	}
	if want("shards") {
		rows = append(rows, shardRun(*manager, *n)...)
	}
	if want("set") {
		rows = append(rows, setRun(*manager, *setSize, *setMaxUnavailable, *setDuration, *budget)...)
	}
	// Optional, not part of a plain make bench, and last: their
	// NodeActions stay in the API server.
	if runs["floorgrowth"] {
		rows = append(rows, floorGrowth(*scale)...)
	}
	if runs["scale100k"] {
		rows = append(rows, scaleRun(*manager, 100_000, baseRate, ceilings)...)
	}
	table := render(rows)
	fmt.Println()
	fmt.Print(table)
	if *out != "" {
		must(os.WriteFile(*out, []byte(table), 0o644))
	}
	code := 0
	for _, r := range rows {
		if r.pass != nil && !*r.pass {
			code = 1
		}
	}
	exit(code)
}

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		exit(1)
	}
}

func numCPU() int {
	b, _ := exec.Command("nproc").Output()
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}

func render(rows []row) string {
	var b strings.Builder
	b.WriteString("| measure | value | target | result |\n|---|---|---|---|\n")
	for _, r := range rows {
		res := "-"
		if r.pass != nil {
			res = map[bool]string{true: "pass", false: "FAIL"}[*r.pass]
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", r.name, r.value, r.target, res)
	}
	return b.String()
}

// --- helpers ---

var nsSeq atomic.Int64

func namespace(prefix string) string {
	name := fmt.Sprintf("%s-%d", prefix, nsSeq.Add(1))
	must(kube.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}))
	return name
}

// provider creates a DigitalOcean Provider (and Secret) on fakecloud.
func provider(ns string, perMinute int32) {
	creds := fakecloud.DefaultCredentials()
	ctx := context.Background()
	must(kube.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "do"}, StringData: map[string]string{"token": creds.DigitalOceanToken}}))
	p := &v1alpha1.Provider{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "do"}, Spec: v1alpha1.ProviderSpec{
		Type: v1alpha1.ProviderDigitalOcean, Endpoint: cloudURL + "/digitalocean", CredentialsSecretRef: v1alpha1.SecretReference{Name: "do"}}}
	if perMinute > 0 {
		p.Spec.RateLimit = &v1alpha1.RateLimit{RequestsPerMinute: perMinute, Burst: 100}
	}
	must(kube.Create(ctx, p))
}

// parallel runs f(0..n-1) on the create workers and returns how long it took.
func parallel(n int, f func(i int)) time.Duration {
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				f(i)
			}
		}()
	}
	wg.Wait()
	return time.Since(start)
}

func createWithRetry(o client.Object) {
	for attempt := 0; ; attempt++ {
		err := kube.Create(context.Background(), o)
		if err == nil {
			return
		}
		if attempt > 20 {
			must(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// process is the manager binary running.
type process struct {
	cmd         *exec.Cmd
	metricsAddr string
	done        chan struct{}
}

var (
	managersMu sync.Mutex
	managers   []*process
)

// stopManagers kills every manager the bench started.
func stopManagers() {
	managersMu.Lock()
	defer managersMu.Unlock()
	for _, p := range managers {
		_ = p.cmd.Process.Kill()
	}
}

func startManager(bin string, extra ...string) *process {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(err)
	addr := ln.Addr().String()
	_ = ln.Close()
	if managerConcurrency > 0 {
		extra = append(extra, fmt.Sprintf("--max-concurrent-reconciles=%d", managerConcurrency))
	}
	args := append([]string{"--kubeconfig", kubeconfig, "--metrics-bind-address", addr, "--metrics-secure=false",
		"--health-probe-bind-address=0", "--zap-log-level=error"}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = io.Discard, os.Stderr
	// BENCH_MANAGER_GOGC: the manager's GOGC alone (GOGC in the bench's
	// environment would reach the API server and etcd too).
	if v := os.Getenv("BENCH_MANAGER_GOGC"); v != "" {
		cmd.Env = append(os.Environ(), "GOGC="+v)
	}
	must(cmd.Start())
	p := &process{cmd: cmd, metricsAddr: addr, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	managersMu.Lock()
	managers = append(managers, p)
	managersMu.Unlock()
	return p
}

func (p *process) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// rssMiB reads the process's resident memory.
func (p *process) rssMiB() float64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return -1
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if strings.HasPrefix(s.Text(), "VmRSS:") {
			kb, _ := strconv.Atoi(strings.Fields(s.Text())[1])
			return float64(kb) / 1024
		}
	}
	return -1
}

// heap says how much of the RSS is the Go heap in use (the rest: freed
// heap not yet returned, stacks, the runtime).
func (p *process) heap() string {
	inuse, _ := p.metric("go_memstats_heap_inuse_bytes")
	idle, _ := p.metric("go_memstats_heap_idle_bytes")
	released, _ := p.metric("go_memstats_heap_released_bytes")
	return fmt.Sprintf("Go heap in use %.0f MiB, idle not released %.0f MiB", inuse/(1<<20), (idle-released)/(1<<20))
}

// apiserverCount sums the kube-apiserver's own metric over the series
// matching every label fragment.
func apiserverCount(name string, labels ...string) float64 {
	sum, _, err := scrape(apiserverHTTP, apiserverURL, name, labels...)
	must(err)
	return sum
}

// cpuTime is the CPU time each process of a run has used so far: where
// an action's cost goes, and which share grows with the object count.
type cpuTime struct{ apiserver, etcd, manager, bench float64 }

func cpuNow(mgr *process) cpuTime {
	var t cpuTime
	t.apiserver = apiserverCount("process_cpu_seconds_total")
	t.etcd, _, _ = scrape(http.DefaultClient, etcdURL, "process_cpu_seconds_total")
	t.manager, _ = mgr.metric("process_cpu_seconds_total")
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		t.bench = time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
	}
	return t
}

// perAction is the CPU time each process spent per action since t0.
func (t cpuTime) perAction(t0 cpuTime, n int) string {
	ms := func(a, b float64) float64 { return (a - b) * 1000 / float64(n) }
	return fmt.Sprintf("CPU per action: apiserver %.2f ms, etcd %.2f ms, manager %.2f ms, bench (fakecloud, tracker, clients) %.2f ms",
		ms(t.apiserver, t0.apiserver), ms(t.etcd, t0.etcd), ms(t.manager, t0.manager), ms(t.bench, t0.bench))
}

// pprofFlag serves the manager's pprof on BENCH_PPROF's address, when set
// and on: one manager at a time can have it.
func pprofFlag(on bool) []string {
	if a := pprofAddr(); a != "" && on {
		return []string{"--pprof-bind-address=" + a}
	}
	return nil
}

// pprofAddr is where a manager serves pprof (BENCH_PPROF), or "" for none.
func pprofAddr() string { return os.Getenv("BENCH_PPROF") }

// cpuProfileDir is where CPU profiles go (BENCH_CPUPROFILE), or "" for none.
func cpuProfileDir() string { return os.Getenv("BENCH_CPUPROFILE") }

// listening tells whether something accepts connections on addr.
func listening(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
	if err == nil {
		c.Close()
	}
	return err == nil
}

// cpuProfiles writes CPU profiles of the kube-apiserver and (with
// BENCH_PPROF) the manager, taken at once for d, to dir: where the time
// of the run goes. Start it while the run is under way.
func cpuProfiles(dir, prefix, managerPprof string, d time.Duration) {
	q := fmt.Sprintf("/debug/pprof/profile?seconds=%d", int(d.Seconds()))
	var wg sync.WaitGroup
	wg.Go(func() {
		saveProfile(apiserverHTTP, strings.TrimSuffix(apiserverURL, "/")+q, filepath.Join(dir, prefix+"cpu-apiserver.pb.gz"))
	})
	if managerPprof != "" {
		wg.Go(func() {
			saveProfile(http.DefaultClient, "http://"+managerPprof+q, filepath.Join(dir, prefix+"cpu-manager.pb.gz"))
		})
	}
	wg.Wait()
}

// saveHeapProfile writes the manager's heap profile (after a GC) for
// go tool pprof.
func saveHeapProfile(addr, path string) {
	saveProfile(http.DefaultClient, "http://"+addr+"/debug/pprof/heap?gc=1", path)
}

// saveProfile writes what a pprof endpoint answers to path.
func saveProfile(c *http.Client, url, path string) {
	resp, err := c.Get(url)
	if err != nil {
		fmt.Println("profile:", err)
		return
	}
	defer resp.Body.Close()
	f, err := os.Create(path)
	must(err)
	defer f.Close()
	_, err = io.Copy(f, resp.Body)
	must(err)
	fmt.Println("profile:", path)
}

// metric reads one sample from the manager's /metrics (sum over series
// matching all label fragments).
func (p *process) metric(name string, labels ...string) (float64, bool) {
	sum, found, err := scrape(http.DefaultClient, "http://"+p.metricsAddr, name, labels...)
	return sum, found && err == nil
}

// scrape reads base's /metrics and sums metric name over the series
// matching all label fragments.
func scrape(c *http.Client, base, name string, labels ...string) (float64, bool, error) {
	resp, err := c.Get(strings.TrimSuffix(base, "/") + "/metrics")
	if err != nil {
		return 0, false, err
	}
	defer resp.Body.Close()
	sum, found := sumMetric(resp.Body, name, labels...)
	return sum, found, nil
}

// sumMetric sums, in a Prometheus text exposition, the samples of metric
// name in the series matching all label fragments.
func sumMetric(r io.Reader, name string, labels ...string) (float64, bool) {
	sum, found := 0.0, false
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 1<<20), 1<<20)
	for s.Scan() {
		line := s.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(line, l)
		}
		if !ok {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err == nil {
			sum += v
			found = true
		}
	}
	return sum, found
}

// tracker watches NodeActions in a namespace: writes per object and when
// each became Ready.
type tracker struct {
	mu     sync.Mutex
	writes map[string]int
	// trail is each NodeAction's phase/reason after each write, to say
	// what a write more than expected was for.
	trail   map[string][]string
	readyAt map[string]time.Time
	// addedAt and doneAt: when the watch saw each one created, and finished.
	addedAt map[string]time.Time
	doneAt  map[string]time.Time
	done    map[string]bool
	// firstWrite is when the first status write was seen.
	firstWrite time.Time
	w          watch.Interface
	stop       chan struct{}
}

func track(ns string) *tracker {
	t := &tracker{writes: map[string]int{}, trail: map[string][]string{}, readyAt: map[string]time.Time{}, addedAt: map[string]time.Time{}, doneAt: map[string]time.Time{},
		done: map[string]bool{}, stop: make(chan struct{})}
	w, err := kube.Watch(context.Background(), &v1alpha1.NodeActionList{}, client.InNamespace(ns))
	must(err)
	go func() {
		rv := ""
		for {
			for ev := range w.ResultChan() {
				na, ok := ev.Object.(*v1alpha1.NodeAction)
				if !ok {
					continue
				}
				rv = na.ResourceVersion
				t.observe(ev.Type, na)
			}
			// The apiserver ends watches now and then: carry on from the
			// last version seen, so no write is missed.
			select {
			case <-t.stop:
				return
			default:
			}
			for {
				w, err = kube.Watch(context.Background(), &v1alpha1.NodeActionList{}, client.InNamespace(ns),
					&client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: rv}})
				if err == nil {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
	}()
	t.w = w
	return t
}

func (t *tracker) observe(typ watch.EventType, na *v1alpha1.NodeAction) {
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if typ == watch.Modified {
		t.writes[na.Name]++
		reason := ""
		if c := apimeta.FindStatusCondition(na.Status.Conditions, v1alpha1.ConditionReady); c != nil {
			reason = c.Reason
			if na.Status.Phase == v1alpha1.PhasePending {
				// why it went back, and when: the trail says what an extra write was for
				reason += fmt.Sprintf(" (%s, at %s)", c.Message, now.Format("15:04:05.0"))
			}
		}
		t.trail[na.Name] = append(t.trail[na.Name], string(na.Status.Phase)+"/"+reason)
		if t.firstWrite.IsZero() {
			t.firstWrite = now
		}
	}
	if c := apimeta.FindStatusCondition(na.Status.Conditions, v1alpha1.ConditionReady); c != nil && c.Status == metav1.ConditionTrue {
		if _, seen := t.readyAt[na.Name]; !seen {
			t.readyAt[na.Name] = now
		}
	}
	if typ == watch.Added {
		if _, seen := t.addedAt[na.Name]; !seen {
			t.addedAt[na.Name] = now
		}
	}
	if na.Status.Phase.Finished() {
		t.done[na.Name] = true
		if _, seen := t.doneAt[na.Name]; !seen {
			t.doneAt[na.Name] = now
		}
	}
}

// close stops watching.
func (t *tracker) close() {
	close(t.stop)
	t.w.Stop()
}

// finished tells whether n NodeActions have finished.
func (t *tracker) finished(n int) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.done) >= n
}

func (t *tracker) waitDone(n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if t.finished(n) {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return fmt.Errorf("only %d of %d NodeActions finished within %s", len(t.done), n, timeout)
}

func nodeAction(ns, name, vm, action string) *v1alpha1.NodeAction {
	return &v1alpha1.NodeAction{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1alpha1.NodeActionSpec{ProviderRef: v1alpha1.ProviderReference{Name: "do"}, NodeID: vm, Action: action}}
}

// latest is the latest of the times.
func latest(times map[string]time.Time) time.Time {
	var last time.Time
	for _, t := range times {
		if t.After(last) {
			last = t
		}
	}
	return last
}

func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	i := int(float64(len(ds)-1) * p)
	return ds[i]
}

// --- rows ---

type ceilingRates struct {
	configMap, customResource, statusPatch float64
	// nodeActionCreate and eventCreate: the other two writes an action
	// costs the apiserver (the user's create, the operator's events).
	nodeActionCreate, eventCreate float64
	// The same NodeAction writes with two watches open on the namespace.
	nodeActionCreateWatched, statusPatchWatched float64
}

// floor is the most NodeActions a second the apiserver can take when each
// costs one create, patches status patches and events events, each
// NodeAction write sent to the two watches the runs have open (the
// operator's cache, the bench's tracker):
// 1 / (1/creates + patches/patchRate + events/eventRate).
func (c ceilingRates) floor(patches, events float64) float64 {
	return 1 / (1/c.nodeActionCreateWatched + patches/c.statusPatchWatched + events/c.eventCreate)
}

// measureCeilings times, on the same apiserver, creates of a ConfigMap (a
// trivial built-in object, protobuf), creates of a custom resource with an
// open schema (the least any CRD costs: JSON, pruning, managedFields), and
// status patches of NodeActions with no controller running (the write the
// operator makes, with its schema and CEL rules). Each create rate is the
// best of two rounds after a warm-up, so a cold apiserver does not set it.
func measureCeilings(cfg *rest.Config, n int) ceilingRates {
	ns := namespace("ceiling")
	gvk := installTrivialCRD(cfg)
	cm := func(i int) {
		createWithRetry(&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("cm-%d", i)}, Data: map[string]string{"k": "v"}})
	}
	cr := func(i int) {
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(gvk)
		u.SetNamespace(ns)
		u.SetName(fmt.Sprintf("t-%d", i))
		_ = unstructured.SetNestedField(u.Object, "v", "spec", "k")
		createWithRetry(u)
	}
	rate := func(name string, offset int, f func(i int)) float64 {
		d := parallel(n, func(i int) { f(offset + i) })
		r := float64(n) / d.Seconds()
		fmt.Printf("ceiling: %d %s in %s: %.0f/s\n", n, name, d.Round(time.Millisecond), r)
		return r
	}
	parallel(200, func(i int) { cm(1_000_000 + i); cr(1_000_000 + i) }) // warm-up
	var c ceilingRates
	for round := 0; round < 2; round++ {
		c.configMap = max(c.configMap, rate("ConfigMap creates", round*n, cm))
		c.customResource = max(c.customResource, rate("trivial custom resource creates", round*n, cr))
	}
	c.eventCreate = eventCreates(n)
	// NodeAction creates and status patches, first with nobody watching,
	// then with two watches open on the namespace, as during the runs (the
	// operator's cache and the bench's own tracker): the API server sends
	// every write to each.
	c.nodeActionCreate, c.statusPatch = nodeActionWrites(n, false)
	c.nodeActionCreateWatched, c.statusPatchWatched = nodeActionWrites(n, true)
	return c
}

// eventCreates is the apiserver's rate of event creates (the best of two
// rounds of n).
func eventCreates(n int) float64 {
	ns := namespace("ceiling")
	best := 0.0
	for round := 0; round < 2; round++ {
		d := parallel(n, func(i int) {
			now := metav1.NewMicroTime(time.Now())
			createWithRetry(&eventsv1.Event{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("ev-%d-%d", round, i)},
				EventTime: now, ReportingController: "bench", ReportingInstance: "bench", Action: "Submit", Reason: "Submitted",
				Regarding: corev1.ObjectReference{Kind: "NodeAction", Namespace: ns, Name: fmt.Sprintf("w-%d", i)},
				Note:      "reboot accepted by the provider", Type: corev1.EventTypeNormal})
		})
		r := float64(n) / d.Seconds()
		fmt.Printf("ceiling: %d event creates in %s: %.0f/s\n", n, d.Round(time.Millisecond), r)
		best = max(best, r)
	}
	return best
}

// nodeActionWrites is the apiserver's rate of NodeAction creates and of
// the status patches an instant action costs (each the best of two rounds
// of n), with two watches open on the namespace if watched.
func nodeActionWrites(n int, watched bool) (creates, patches float64) {
	ctx := context.Background()
	ns := namespace("ceiling")
	what := "no watch"
	if watched {
		what = "two watches"
		for range 2 {
			defer track(ns).close()
		}
	}
	objs := make([][]*v1alpha1.NodeAction, 2)
	for round := 0; round < 2; round++ {
		objs[round] = make([]*v1alpha1.NodeAction, n)
		d := parallel(n, func(i int) {
			na := nodeAction(ns, fmt.Sprintf("w%d-%d", round, i), strconv.Itoa(i+1), "reboot")
			createWithRetry(na)
			objs[round][i] = na
		})
		r := float64(n) / d.Seconds()
		fmt.Printf("ceiling: %d NodeAction creates (%s) in %s: %.0f/s\n", n, what, d.Round(time.Millisecond), r)
		creates = max(creates, r)
	}
	// The two status patches an instant action costs, as the operator
	// writes them: the intent before the call, then the outcome.
	for round := 0; round < 2; round++ {
		start := time.Now()
		parallel(n, func(i int) { must(statusPatch(ctx, objs[round][i], intentStatus)) })
		parallel(n, func(i int) { must(statusPatch(ctx, objs[round][i], outcomeStatus)) })
		r := float64(2*n) / time.Since(start).Seconds()
		fmt.Printf("ceiling: %d NodeAction status patches, intent then outcome (%s): %.0f/s\n", 2*n, what, r)
		patches = max(patches, r)
	}
	return creates, patches
}

// statusPatch writes what change makes of na's status, as the operator
// writes status: a merge patch with the resourceVersion it read.
func statusPatch(ctx context.Context, na *v1alpha1.NodeAction, change func(*v1alpha1.NodeAction)) error {
	before := na.DeepCopy()
	change(na)
	return kube.Status().Patch(ctx, na, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
}

// intentStatus is the operator's first status write of an action (the
// intent, recorded before the provider call), field for field.
func intentStatus(na *v1alpha1.NodeAction) {
	now := metav1.Now()
	deadline := metav1.NewTime(now.Add(30 * time.Second))
	st := &na.Status
	msg := "submitting reboot to digitalocean (attempt " + string(na.UID)[:8] + "-1)"
	st.ObservedGeneration, st.Phase, st.ProviderAction, st.AttemptID, st.TotalAttempts = na.Generation, v1alpha1.PhaseSubmitting, na.Spec.Action, string(na.UID)[:8]+"-1", 1
	st.StartTime, st.SubmittedAt, st.SubmitDeadline, st.Message = &now, &now, &deadline, msg
	apimeta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse,
		Reason: v1alpha1.ReasonSubmitting, Message: msg, ObservedGeneration: na.Generation})
	apimeta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: v1alpha1.ConditionReconciling, Status: metav1.ConditionTrue,
		Reason: v1alpha1.ReasonSubmitting, Message: msg, ObservedGeneration: na.Generation})
}

// outcomeStatus is the operator's second status write of an instant
// action (accepted and done in one answer).
func outcomeStatus(na *v1alpha1.NodeAction) {
	now := metav1.Now()
	st := &na.Status
	msg := "digitalocean accepted reboot (action 1234567): completed"
	st.Phase, st.Attempts, st.CompletionTime, st.ProviderActionID, st.ProviderStartTime, st.Message = v1alpha1.PhaseSucceeded, 1, &now, "1234567", &now, msg
	apimeta.RemoveStatusCondition(&st.Conditions, v1alpha1.ConditionReconciling)
	apimeta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue,
		Reason: v1alpha1.ReasonCompleted, Message: msg, ObservedGeneration: na.Generation})
	apimeta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: v1alpha1.ConditionSubmitted, Status: metav1.ConditionTrue,
		Reason: v1alpha1.ReasonAccepted, Message: "digitalocean accepted reboot (action 1234567)", ObservedGeneration: na.Generation})
}

// installTrivialCRD installs a namespaced CRD with an open schema.
func installTrivialCRD(cfg *rest.Config) schema.GroupVersionKind {
	gvk := schema.GroupVersionKind{Group: "bench.nodeaction.dev", Version: "v1", Kind: "Trivial"}
	crd := &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "trivials.bench.nodeaction.dev"},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: gvk.Group, Scope: apiextensionsv1.NamespaceScoped,
			Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: "trivials", Singular: "trivial", Kind: gvk.Kind, ListKind: "TrivialList"},
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{Name: "v1", Served: true, Storage: true,
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
					Type: "object", XPreserveUnknownFields: ptrTo(true)}}}},
		},
	}
	_, err := envtest.InstallCRDs(cfg, envtest.CRDInstallOptions{CRDs: []*apiextensionsv1.CustomResourceDefinition{crd}})
	must(err)
	return gvk
}

func ptrTo[T any](v T) *T { return &v }

func throughput(bin string, n int, ceilings ceilingRates) ([]row, float64) {
	ns := namespace("throughput")
	provider(ns, 100_000) // the provider is not what is measured here
	for i := 0; i < n; i++ {
		cloud.AddVM(fakecloud.VM{ID: strconv.Itoa(100000 + i)})
	}
	// BENCH_CPUPROFILE: profiles of this run (the backlog run below, while
	// this manager still runs, then leaves BENCH_PPROF's address alone).
	mgr := startManager(bin, append(pprofFlag(cpuProfileDir() != ""), "--watch-namespace="+ns)...)
	defer mgr.stop()
	time.Sleep(2 * time.Second) // manager up, caches synced
	tr := track(ns)
	defer tr.close()
	before := len(cloud.Log())
	start := time.Now()
	if dir := cpuProfileDir(); dir != "" {
		go cpuProfiles(dir, "", pprofAddr(), 5*time.Second)
	}
	cpu0 := cpuNow(mgr)
	parallel(n, func(i int) {
		createWithRetry(nodeAction(ns, fmt.Sprintf("na-%d", i), strconv.Itoa(100000+i), "reboot"))
	})
	must(tr.waitDone(n, 10*time.Minute))
	fmt.Println("throughput:", cpuNow(mgr).perAction(cpu0, n))
	if os.Getenv("BENCH_DEBUG") != "" {
		resp, err := http.Get("http://" + mgr.metricsAddr + "/metrics")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			for _, l := range strings.Split(string(b), "\n") {
				if strings.Contains(l, "_sum") || strings.Contains(l, "_count") || strings.HasPrefix(l, "rest_client_requests_total") {
					fmt.Println(l)
				}
			}
		}
	}
	tr.mu.Lock()
	var last time.Time
	notReady := 0
	for i := 0; i < n; i++ {
		t, ok := tr.readyAt[fmt.Sprintf("na-%d", i)]
		if !ok {
			notReady++
		}
		if t.After(last) {
			last = t
		}
	}
	elapsed := last.Sub(start)
	rate := float64(n) / elapsed.Seconds()
	totalWrites, maxWrites := 0, 0
	for _, w := range tr.writes {
		totalWrites += w
		maxWrites = max(maxWrites, w)
	}
	tr.mu.Unlock()
	fmt.Printf("throughput: %d NodeActions Ready in %s: %.0f/s (%d not Ready)\n", n, elapsed.Round(time.Millisecond), rate, notReady)

	// Provider calls, and provider completion → Ready latency.
	completed := map[string]time.Time{}
	for _, a := range cloud.Actions() {
		completed[a.VMID] = a.CompletedAt
	}
	posts, others := 0, 0
	for _, r := range cloud.Log()[before:] {
		if r.ActionCall {
			posts++
		} else {
			others++
		}
	}
	var lat []time.Duration
	tr.mu.Lock()
	for i := 0; i < n; i++ {
		if t, ok := tr.readyAt[fmt.Sprintf("na-%d", i)]; ok {
			lat = append(lat, t.Sub(completed[strconv.Itoa(100000+i)]))
		}
	}
	tr.mu.Unlock()
	avgWrites := float64(totalWrites) / float64(n)
	evs := &eventsv1.EventList{}
	must(kube.List(context.Background(), evs, client.InNamespace(ns)))
	eventsPerAction := float64(len(evs.Items)) / float64(n)
	floor := ceilings.floor(avgWrites, eventsPerAction)
	fmt.Printf("throughput: floor for 1 create, %.2f status patches and %.2f events an action, two watches open: %.0f/s (%.0f/s with none)\n",
		avgWrites, eventsPerAction, floor, 1/(1/ceilings.nodeActionCreate+avgWrites/ceilings.statusPatch+eventsPerAction/ceilings.eventCreate))
	p50, p99 := percentile(lat, 0.5), percentile(lat, 0.99)
	backlog := backlogRate(bin, n)
	share := backlog * avgWrites / ceilings.statusPatch
	return []row{
		{fmt.Sprintf("throughput: %d NodeActions/s create → Ready=True, created while the manager runs (instant actions)", n),
			fmt.Sprintf("%.0f/s = %.2f of ceiling", rate, rate/ceilings.configMap), "-", yes(notReady == 0)},
		{fmt.Sprintf("throughput against the apiserver's floor for what an action writes (1 create, %.2f status patches, %.2f events, two watches open: %.0f/s), same run", avgWrites, eventsPerAction, floor),
			fmt.Sprintf("%.2f", rate/floor), "≥ 0.80", yes(rate/floor >= 0.80)},
		{fmt.Sprintf("throughput: %d NodeActions created first, then the manager started", n),
			fmt.Sprintf("%.0f/s = %.2f of ceiling, %.2f of custom resource creates", backlog, backlog/ceilings.configMap, backlog/ceilings.customResource), "-", nil},
		{"share of the apiserver's NodeAction status-patch capacity the backlog run used", fmt.Sprintf("%.2f", share), "-", nil},
		{"API writes per action (status writes seen by a watch)", fmt.Sprintf("%.2f avg, %d max", avgWrites, maxWrites), "≤ 3", yes(maxWrites <= 3)},
		{"provider action calls per action", fmt.Sprintf("%.2f (%d POSTs for %d, %d other requests)", float64(posts)/float64(n), posts, n, others), "exactly 1", yes(posts == n)},
		{"latency: provider completion → Ready=True", fmt.Sprintf("p50 %s, p99 %s", p50.Round(time.Millisecond), p99.Round(time.Millisecond)), "-", nil},
	}, rate
}

// backlogRate creates n NodeActions with no manager watching, then starts
// one and times it from its first status write to the last Ready.
func backlogRate(bin string, n int) float64 {
	ns := namespace("backlog")
	provider(ns, 100_000)
	for i := 0; i < n; i++ {
		cloud.AddVM(fakecloud.VM{ID: strconv.Itoa(150000 + i)})
	}
	parallel(n, func(i int) {
		createWithRetry(nodeAction(ns, fmt.Sprintf("b-%d", i), strconv.Itoa(150000+i), "reboot"))
	})
	tr := track(ns)
	defer tr.close()
	mgr := startManager(bin, append(pprofFlag(cpuProfileDir() == ""), "--watch-namespace="+ns)...)
	defer mgr.stop()
	must(tr.waitDone(n, 10*time.Minute))
	tr.mu.Lock()
	defer tr.mu.Unlock()
	first, last := tr.firstWrite, latest(tr.readyAt)
	rate := float64(n) / last.Sub(first).Seconds()
	fmt.Printf("backlog: %d NodeActions Ready in %s after the first status write: %.0f/s\n", n, last.Sub(first).Round(time.Millisecond), rate)
	return rate
}

// polls counts status requests for actions lasting d at default settings,
// and how long after the provider finished each one its NodeAction was
// Ready: one alone before any of its kind finished (no duration learned),
// then one alone and ten at once (where fleet polling shares sweeps) on
// the same manager, which has learned how long the kind takes.
func polls(bin string, d time.Duration) []row {
	ns := namespace("polls")
	provider(ns, 0)
	mgr := startManager(bin, "--watch-namespace="+ns)
	defer mgr.stop()
	tr := track(ns)
	defer tr.close()
	time.Sleep(2 * time.Second)
	created := 0
	run := func(n int) (float64, time.Duration) {
		ids := make([]string, n)
		names := map[string]string{} // VM id → NodeAction
		for i := range ids {
			ids[i] = strconv.Itoa(200000 + int(nsSeq.Load())*100 + created + i)
			cloud.AddVM(fakecloud.VM{ID: ids[i], ActionDuration: d})
			names[ids[i]] = fmt.Sprintf("poll-%d", created+i)
		}
		before := len(cloud.Log())
		for _, id := range ids {
			createWithRetry(nodeAction(ns, names[id], id, "reboot"))
		}
		created += n
		must(tr.waitDone(created, d+2*time.Minute))
		gets := 0
		var lags []time.Duration
		tr.mu.Lock()
		for _, r := range cloud.Log()[before:] {
			if r.Method == http.MethodGet && strings.Contains(r.Path, "/actions") {
				gets++
			}
			if r.ActionCall && r.Accepted {
				lags = append(lags, tr.readyAt[names[r.VMID]].Sub(r.Time.Add(d)))
			}
		}
		tr.mu.Unlock()
		slices.Sort(lags)
		p99 := time.Duration(0)
		if len(lags) > 0 {
			p99 = lags[(len(lags)*99+99)/100-1]
		}
		return float64(gets) / float64(n), p99
	}
	var rows []row
	for _, c := range []struct {
		n      int
		what   string
		target string
		ok     func(float64) bool
	}{
		{1, "alone, none of its kind finished yet", "-", nil},
		{1, "alone, after one of its kind finished", "≤ 3", func(v float64) bool { return v <= 3 }},
		{10, "ten at once", "-", nil},
	} {
		perAction, p99 := run(c.n)
		fmt.Printf("polls: %d action(s) of %s, %s: %.1f status requests each, Ready %s after the provider finished (p99)\n",
			c.n, d, c.what, perAction, p99.Round(10*time.Millisecond))
		var verdict *bool
		if c.ok != nil {
			verdict = yes(c.ok(perAction))
		}
		rows = append(rows,
			row{fmt.Sprintf("status requests per action, %d action(s) of %s, %s", c.n, d, c.what), fmt.Sprintf("%.1f", perAction), c.target, verdict},
			row{fmt.Sprintf("provider end → Ready (p99), %d action(s) of %s, %s", c.n, d, c.what), p99.Round(10 * time.Millisecond).String(), "-", nil})
	}
	return rows
}

// scaleRun creates n NodeActions on instant actions while the manager runs,
// and measures how fast they finish as they accumulate (against baseRate,
// the throughput row's 1,000 in the same run, when it ran), the manager's
// memory once all are finished, and a restart: resync time and provider
// calls.
func scaleRun(bin string, n int, baseRate float64, ceilings ceilingRates) []row {
	ns := namespace("scale")
	provider(ns, 100_000)
	for i := 0; i < n; i++ {
		cloud.AddVM(fakecloud.VM{ID: strconv.Itoa(300000 + i)})
	}
	mgr := startManager(bin, append(pprofFlag(cpuProfileDir() != ""), "--watch-namespace="+ns)...)
	tr := track(ns)
	time.Sleep(2 * time.Second)
	created := time.Now()
	tenths := make(chan struct{})
	go func() { // the rate and CPU of each tenth of the run: what grows with the count
		defer close(tenths)
		last, lastAt := cpuNow(mgr), time.Now()
		for k := 1; k <= 10; k++ {
			for !tr.finished(k * n / 10) {
				time.Sleep(100 * time.Millisecond)
			}
			now, at := cpuNow(mgr), time.Now()
			checks := apiserverCount("apiserver_storage_consistency_checks_total")
			fmt.Printf("scale: tenth %d (to %d finished): %.0f/s, %s; the API server's cache consistency checks (a full read of etcd each) so far: %.0f\n",
				k, k*n/10, float64(n/10)/at.Sub(lastAt).Seconds(), now.perAction(last, n/10), checks)
			if dir := cpuProfileDir(); dir != "" && k == 9 {
				go cpuProfiles(dir, fmt.Sprintf("scale-%d-", n), pprofAddr(), 5*time.Second)
			}
			last, lastAt = now, at
		}
	}()
	d := parallel(n, func(i int) {
		createWithRetry(nodeAction(ns, fmt.Sprintf("s-%d", i), strconv.Itoa(300000+i), "reboot"))
	})
	fmt.Printf("scale: created %d NodeActions in %s\n", n, d.Round(time.Second))
	must(tr.waitDone(n, 60*time.Minute))
	<-tenths
	tr.mu.Lock()
	last := latest(tr.doneAt)
	tr.mu.Unlock()
	rate := float64(n) / last.Sub(created).Seconds()
	fmt.Printf("scale: all %d finished %s after the first create: %.0f/s\n", n, last.Sub(created).Round(time.Second), rate)
	tr.close()
	one := &v1alpha1.NodeAction{}
	must(kube.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "s-0"}, one))
	whole, _ := json.Marshal(one)
	one.ManagedFields = nil
	bare, _ := json.Marshal(one)
	fmt.Printf("scale: a finished NodeAction is %d bytes of JSON (%d without managedFields)\n", len(whole), len(bare))
	if os.Getenv("BENCH_DEBUG") != "" {
		fmt.Println(string(whole))
	}
	time.Sleep(3 * time.Second)
	rss := mgr.rssMiB()
	fmt.Printf("scale: all %d finished; manager RSS %.0f MiB, %s\n", n, rss, mgr.heap())
	mgr.stop()

	// Restart: every finished NodeAction is seen again; none may reach the provider.
	lists := apiserverCount("apiserver_request_total", `resource="nodeactions"`, `verb="LIST"`)
	before := len(cloud.Log())
	start := time.Now()
	mgr = startManager(bin, append(pprofFlag(true), "--watch-namespace="+ns)...)
	if dir, a := cpuProfileDir(), pprofAddr(); dir != "" && a != "" {
		go func() { // the restart's first 10 s: the initial sync and its reconciles
			for i := 0; i < 50 && !listening(a); i++ {
				time.Sleep(20 * time.Millisecond)
			}
			saveProfile(http.DefaultClient, "http://"+a+"/debug/pprof/profile?seconds=10", filepath.Join(dir, fmt.Sprintf("scale-%d-restart-cpu-manager.pb.gz", n)))
		}()
	}
	defer mgr.stop()
	var resync time.Duration
	for time.Since(start) < 10*time.Minute {
		total, ok := mgr.metric("controller_runtime_reconcile_total", `controller="nodeaction"`)
		depth, _ := mgr.metric("workqueue_depth", `name="nodeaction"`)
		if ok && total >= float64(n) && depth == 0 {
			resync = time.Since(start)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	calls := len(cloud.Log()) - before
	rssAfter := mgr.rssMiB()
	// client-go streams the initial sync (a watch with sendInitialEvents)
	// when the apiserver allows it: then the restart makes no LIST.
	fmt.Printf("scale: the restart's initial sync made %.0f LIST requests of NodeActions (0: streamed as a watch)\n",
		apiserverCount("apiserver_request_total", `resource="nodeactions"`, `verb="LIST"`)-lists)
	fmt.Printf("scale: restart resynced %d in %s with %d provider calls; RSS %.0f MiB, %s\n", n, resync.Round(time.Millisecond), calls, rssAfter, mgr.heap())
	if a := pprofAddr(); a != "" {
		saveHeapProfile(a, fmt.Sprintf("bin/heap-scale-%d.pb.gz", n))
	}
	// Targets: the issue's, for the two sizes it names.
	rssTarget, resyncTarget := 0.0, time.Duration(0)
	switch n {
	case 10_000:
		rssTarget = 150
	case 100_000:
		rssTarget, resyncTarget = 600, 30*time.Second
	}
	rows := []row{
		{fmt.Sprintf("manager RSS with %d NodeActions (finished)", n), fmt.Sprintf("%.0f MiB (%.0f MiB after restart)", rss, rssAfter), "-", nil},
		{"provider calls for finished NodeActions after a restart", strconv.Itoa(calls), "0", yes(calls == 0)},
		{fmt.Sprintf("time to resync %d NodeActions after a restart", n), resync.Round(time.Millisecond).String(), "-", yes(resync > 0)},
	}
	if rssTarget > 0 {
		rows[0].target, rows[0].pass = fmt.Sprintf("≤ %.0f MiB", rssTarget), yes(rss <= rssTarget && rssAfter <= rssTarget)
	}
	if resyncTarget > 0 {
		rows[2].target, rows[2].pass = fmt.Sprintf("≤ %s", resyncTarget), yes(resync > 0 && resync <= resyncTarget)
	}
	r := row{fmt.Sprintf("throughput as %d NodeActions accumulate, create → finished (instant actions)", n), fmt.Sprintf("%.0f/s", rate), "-", nil}
	if baseRate > 0 {
		r.value += fmt.Sprintf(" = %.2f of the 1,000 run's %.0f/s", rate/baseRate, baseRate)
		r.target, r.pass = "≥ 0.90", yes(rate/baseRate >= 0.90)
	}
	rows = append(rows, r)
	if ceilings.statusPatchWatched == 0 {
		return rows
	}
	// Whose is the fall: the apiserver's own floor for what an instant
	// action writes, measured again with the n NodeActions stored (the
	// manager stopped), against the floor measured before any.
	mgr.stop()
	creates, patches := nodeActionWrites(1000, true)
	events := eventCreates(1000)
	floorBefore, floorAfter := ceilings.floor(2, 1), 1/(1/creates+2/patches+1/events)
	fmt.Printf("scale: the apiserver's floor (1 create, 2 status patches, 1 event, two watches) with %d NodeActions stored: %.0f/s, against %.0f/s with none\n", n, floorAfter, floorBefore)
	return append(rows, row{fmt.Sprintf("the apiserver's own floor with %d NodeActions stored (1 create, 2 status patches, 1 event, two watches open)", n),
		fmt.Sprintf("%.0f/s = %.2f of the floor with none stored (%.0f/s)", floorAfter, floorAfter/floorBefore, floorBefore), "-", nil})
}

// fleetRun: many DigitalOcean actions at once against the published budget.
func fleetRun(bin string, n int, d time.Duration, budget int) []row {
	ns := namespace("fleet")
	provider(ns, 0) // default client-side budget
	for i := 0; i < n; i++ {
		cloud.AddVM(fakecloud.VM{ID: strconv.Itoa(400000 + i), ActionDuration: d})
	}
	cloud.SetRateBudget(fakecloud.RateBudget{Limit: budget, Window: time.Minute})
	defer cloud.SetRateBudget(fakecloud.RateBudget{Limit: 1 << 30, Window: time.Minute})
	mgr := startManager(bin, "--watch-namespace="+ns)
	defer mgr.stop()
	tr := track(ns)
	defer tr.close()
	time.Sleep(2 * time.Second)
	before := len(cloud.Log())
	start := time.Now()
	parallel(n, func(i int) {
		createWithRetry(nodeAction(ns, fmt.Sprintf("f-%d", i), strconv.Itoa(400000+i), "reboot"))
	})
	err := tr.waitDone(n, 30*time.Minute)
	elapsed := time.Since(start)
	if err != nil {
		fmt.Println("fleet:", err)
	}
	var requests, posts, tooMany int
	for _, r := range cloud.Log()[before:] {
		if r.Skin != "digitalocean" {
			continue
		}
		requests++
		if r.ActionCall && r.Accepted {
			posts++
		}
		if r.Status == http.StatusTooManyRequests {
			tooMany++
		}
	}
	// The last POST cannot leave before the budget allows n of them, and
	// its action then takes d.
	lower := time.Duration(float64(n)/float64(budget)*float64(time.Minute)) + d
	perAction := float64(requests) / float64(n)
	tr.mu.Lock()
	writes, maxWrites := 0, 0
	trails := map[string]int{}
	for name, w := range tr.writes {
		writes += w
		maxWrites = max(maxWrites, w)
		if w > 3 {
			trails[strings.Join(tr.trail[name], " → ")]++
		}
	}
	tr.mu.Unlock()
	for trail, count := range trails {
		fmt.Printf("fleet: %d actions wrote more than 3 times: %s\n", count, trail)
	}
	fmt.Println("fleet: fakecloud's windows (start, requests):", windows(cloud.Log()[before:], "digitalocean", time.Minute))
	evs := &eventsv1.EventList{}
	must(kube.List(context.Background(), evs, client.InNamespace(ns)))
	avgWrites, eventsPerAction := float64(writes)/float64(n), float64(len(evs.Items))/float64(n)
	fmt.Printf("fleet: %d actions of %s in %s (lower bound %s): %d requests, %d accepted POSTs, %d 429s\n",
		n, d, elapsed.Round(time.Second), lower.Round(time.Second), requests, posts, tooMany)
	return []row{
		{fmt.Sprintf("429s received, %d DigitalOcean actions of %s, budget %d/min", n, d, budget), strconv.Itoa(tooMany), "0", yes(tooMany == 0 && err == nil)},
		{"provider requests per action (POST + shared polling)", fmt.Sprintf("%.3f (%d requests, %d POSTs)", perAction, requests, posts), "≤ 1.05", yes(perAction <= 1.05 && posts == n)},
		{"total time against the lower bound (n/budget, plus one action's duration)", fmt.Sprintf("%s vs %s (%.2fx)", elapsed.Round(time.Second), lower.Round(time.Second), elapsed.Seconds()/lower.Seconds()), "≤ 1.10x", yes(elapsed.Seconds()/lower.Seconds() <= 1.10)},
		{"API status writes per action, same run (intent, answer, end)", fmt.Sprintf("%.2f avg, %d max", avgWrites, maxWrites), "≤ 3", yes(maxWrites <= 3)},
		{"API events per action, same run", fmt.Sprintf("%.2f", eventsPerAction), "-", nil},
	}
}

// sweepsRun: for each provider besides DigitalOcean (whose fleet row is
// fleetRun), n actions of d at once on one Provider, followed through that
// provider's shared list. The Provider's own rate limit is raised so that
// the row measures polling, not the pace of the POSTs. Each provider gets
// an account of its own (a fakecloud holding only these VMs): E2E's and
// OpenScaler's lists are the account's VMs, with no filter, so a sweep
// reads as many pages as the account has VMs (200 a page).
func sweepsRun(bin string, n int, d time.Duration) []row {
	cases := []struct {
		typ    v1alpha1.ProviderType
		action string
		id     func(i int) string
	}{
		{v1alpha1.ProviderCloudsFor, "reboot", func(i int) string { return fmt.Sprintf("%032x", 0xc10d5f0<<20+i) }},
		{v1alpha1.ProviderSenlin, "reboot", func(i int) string { return fmt.Sprintf("5e4f1a00-0000-4000-8000-%012d", i) }},
		{v1alpha1.ProviderE2E, "reboot", func(i int) string { return strconv.Itoa(700000 + i) }},
		// OpenScaler answers a shutdown when the guest is down, or 408
		// after its timeout while the guest goes on: these are followed.
		{v1alpha1.ProviderOpenScaler, "shutdown", func(i int) string { return fmt.Sprintf("sweep-%d", i) }},
	}
	var rows []row
	for _, c := range cases {
		account := fakecloud.New(fakecloud.DefaultTestWorld().Apply(fakecloud.Options{RateBudget: fakecloud.RateBudget{Limit: 1 << 30, Window: time.Minute}}))
		srv := httptest.NewServer(account.Handler())
		ns := namespace("sweeps")
		p, secret := demo.Provider(ns, "p", c.typ, srv.URL)
		p.Spec.RateLimit = &v1alpha1.RateLimit{RequestsPerMinute: 100_000, Burst: 1000}
		must(kube.Create(context.Background(), secret))
		must(kube.Create(context.Background(), p))
		for i := range n {
			account.AddVM(fakecloud.VM{ID: c.id(i), ActionDuration: d})
		}
		mgr := startManager(bin, "--watch-namespace="+ns)
		tr := track(ns)
		time.Sleep(2 * time.Second)
		before := len(account.Log())
		start := time.Now()
		parallel(n, func(i int) {
			na := nodeAction(ns, fmt.Sprintf("s-%d", i), c.id(i), c.action)
			na.Spec.ProviderRef.Name = "p"
			createWithRetry(na)
		})
		err := tr.waitDone(n, d+5*time.Minute)
		elapsed := time.Since(start)
		tr.close()
		mgr.stop()
		srv.Close()
		if err != nil {
			fmt.Printf("sweeps %s: %v\n", c.typ, err)
		}
		requests, posts, lists := 0, 0, 0
		for _, r := range account.Log()[before:] {
			if r.Skin != string(c.typ) {
				continue
			}
			requests++
			switch {
			case r.ActionCall:
				posts++
			case r.Method == http.MethodGet && listPath(r.Path):
				lists++
			}
		}
		perAction := float64(requests) / float64(n)
		fmt.Printf("sweeps %s: %d %s actions of %s in %s: %d requests (%d action calls, %d list pages, %d other)\n",
			c.typ, n, c.action, d, elapsed.Round(time.Second), requests, posts, lists, requests-posts-lists)
		rows = append(rows, row{fmt.Sprintf("provider requests per action, %d %s %s actions of %s at once, an account of these VMs (action call + shared polling)", n, c.typ, c.action, d),
			fmt.Sprintf("%.3f (%d requests, %d action calls, %d list pages)", perAction, requests, posts, lists), "≤ 1.1", yes(perAction <= 1.1 && posts == n && err == nil)})
	}
	return rows
}

// listPath tells a provider's list endpoint (a fleet poller's sweep) from a
// read of one action or VM.
func listPath(path string) bool {
	for _, suffix := range []string{"/api/v1/actions", "/v1/actions", "/api/v1/nodes/", "/v1/vms", "/v2/actions"} {
		if strings.HasSuffix(path, suffix) {
			return true
		}
	}
	return false
}

// windows replays fakecloud's fixed windows over its log: each starts with
// the first request after the last one ended.
func windows(log []fakecloud.Request, skin string, length time.Duration) string {
	var b strings.Builder
	var start time.Time
	n := 0
	for _, r := range log {
		if r.Skin != skin {
			continue
		}
		if start.IsZero() || r.Time.Sub(start) >= length {
			if n > 0 {
				fmt.Fprintf(&b, "%s %d; ", start.Format("15:04:05.0"), n)
			}
			start, n = r.Time, 0
		}
		n++
	}
	fmt.Fprintf(&b, "%s %d", start.Format("15:04:05.0"), n)
	return b.String()
}

// shardRun: the same n instant DigitalOcean actions, created while the
// managers run, served once by one manager and once by two shards (the
// unsharded manager and --shard=b, half of the NodeActions labelled b),
// against the same apiserver. The ratio is two shards' rate over one's.
func shardRun(bin string, n int) []row {
	run := func(shards bool, base int) (float64, int) {
		ns := namespace("shards")
		provider(ns, 100_000) // the provider is not what is measured here
		for i := 0; i < n; i++ {
			cloud.AddVM(fakecloud.VM{ID: strconv.Itoa(base + i)})
		}
		m := startManager(bin, "--watch-namespace="+ns)
		defer m.stop()
		if shards {
			b := startManager(bin, "--watch-namespace="+ns, "--shard=b")
			defer b.stop()
		}
		time.Sleep(2 * time.Second) // managers up, caches synced
		tr := track(ns)
		defer tr.close()
		before := len(cloud.Log())
		start := time.Now()
		parallel(n, func(i int) {
			na := nodeAction(ns, fmt.Sprintf("na-%d", i), strconv.Itoa(base+i), "reboot")
			if shards && i%2 == 1 {
				na.Labels = map[string]string{v1alpha1.LabelShard: "b"}
			}
			createWithRetry(na)
		})
		must(tr.waitDone(n, 10*time.Minute))
		tr.mu.Lock()
		last := latest(tr.readyAt)
		ready := len(tr.readyAt)
		tr.mu.Unlock()
		posts := 0
		for _, r := range cloud.Log()[before:] {
			if r.ActionCall {
				posts++
			}
		}
		rate := float64(ready) / last.Sub(start).Seconds()
		fmt.Printf("shards: %d NodeActions, %s: Ready in %s: %.0f/s, %d action calls\n", n,
			map[bool]string{false: "one manager", true: "two shards"}[shards], last.Sub(start).Round(time.Millisecond), rate, posts)
		return rate, posts
	}
	one, postsOne := run(false, 500000)
	two, postsTwo := run(true, 600000)
	return []row{
		{fmt.Sprintf("sharding: %d instant DigitalOcean actions, create → Ready, one manager", n), fmt.Sprintf("%.0f/s", one), "-", nil},
		{fmt.Sprintf("sharding: the same %d, two shards (unsharded + --shard=b, half each)", n),
			fmt.Sprintf("%.0f/s = %.2fx one manager", two, two/one), "-", nil},
		{"sharding: provider action calls per action (one manager, two shards)",
			fmt.Sprintf("%.2f, %.2f", float64(postsOne)/float64(n), float64(postsTwo)/float64(n)), "exactly 1", yes(postsOne == n && postsTwo == n)},
	}
}

// setRun: one NodeActionSet over n DigitalOcean VMs with maxUnavailable mu,
// against fakecloud's published budget. Concurrency is read from
// fakecloud's own timeline of actions (accepted POST to completion).
func setRun(bin string, n, mu int, d time.Duration, budget int) []row {
	ns := namespace("set")
	provider(ns, 0) // default client-side budget
	ids := make([]string, n)
	for i := range ids {
		ids[i] = strconv.Itoa(500000 + i)
		cloud.AddVM(fakecloud.VM{ID: ids[i], ActionDuration: d})
	}
	inSet := map[string]bool{}
	for _, id := range ids {
		inSet[id] = true
	}
	cloud.SetRateBudget(fakecloud.RateBudget{Limit: budget, Window: time.Minute})
	defer cloud.SetRateBudget(fakecloud.RateBudget{Limit: 1 << 30, Window: time.Minute})
	mgr := startManager(bin, "--watch-namespace="+ns)
	defer mgr.stop()
	tr := track(ns)
	defer tr.close()
	time.Sleep(2 * time.Second)
	before := len(cloud.Log())
	mu32 := intstr.FromInt32(int32(mu))
	set := &v1alpha1.NodeActionSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "fleet"}, Spec: v1alpha1.NodeActionSetSpec{
		ProviderRef: v1alpha1.ProviderReference{Name: "do"}, Action: "reboot", NodeIDs: ids, MaxUnavailable: &mu32}}
	start := time.Now()
	must(kube.Create(context.Background(), set))
	var elapsed time.Duration
	deadline := start.Add(30 * time.Minute)
	for {
		s := &v1alpha1.NodeActionSet{}
		if err := kube.Get(context.Background(), client.ObjectKeyFromObject(set), s); err == nil && s.Status.CompletionTime != nil &&
			s.Status.ObservedGeneration == s.Generation {
			elapsed = time.Since(start)
			set = s
			break
		}
		if time.Now().After(deadline) {
			fmt.Println("set: did not finish within 30 minutes")
			set = s
			elapsed = time.Since(start)
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	var requests, posts, tooMany int
	kinds := map[string]int{} // what the requests were, for the log line
	digits := regexp.MustCompile(`[0-9]+`)
	for _, r := range cloud.Log()[before:] {
		if r.Skin != "digitalocean" {
			continue
		}
		requests++
		kinds[r.Method+" "+digits.ReplaceAllString(r.Path, "N")]++
		if r.ActionCall && r.Accepted {
			posts++
		}
		if r.Status == http.StatusTooManyRequests {
			tooMany++
		}
	}
	fmt.Printf("set: requests by kind: %v\n", kinds)
	peak, _ := cloud.PeakConcurrent(func(vm string) bool { return inSet[vm] })
	// Slot handover, what the set itself adds: the k-th member to finish
	// frees the slot the (maxUnavailable+k)-th member takes, from the watch's
	// view of the one finishing to the next being created. Meaningful while
	// every slot is taken (when the budget, not maxUnavailable, sets the
	// pace, the next member waits for its request slot instead).
	tr.mu.Lock()
	var added, finished []time.Time
	for _, at := range tr.addedAt {
		added = append(added, at)
	}
	for _, at := range tr.doneAt {
		finished = append(finished, at)
	}
	tr.mu.Unlock()
	sort.Slice(added, func(i, j int) bool { return added[i].Before(added[j]) })
	sort.Slice(finished, func(i, j int) bool { return finished[i].Before(finished[j]) })
	var handover []time.Duration
	for k := 0; k+mu < len(added) && k < len(finished); k++ {
		handover = append(handover, max(added[k+mu].Sub(finished[k]), 0))
	}
	p50, p99 := percentile(handover, 0.5), percentile(handover, 0.99)
	// The last POST cannot leave before the budget allows n of them, and
	// its action then takes d.
	byBudget := time.Duration(float64(n)/float64(budget)*float64(time.Minute)) + d
	bySlots := time.Duration((n+mu-1)/mu) * d
	lower := max(byBudget, bySlots)
	ratio := elapsed.Seconds() / lower.Seconds()
	ready := apimeta.FindStatusCondition(set.Status.Conditions, v1alpha1.ConditionReady)
	ok := ready != nil && ready.Status == metav1.ConditionTrue && int(set.Status.Succeeded) == n && posts == n
	fmt.Printf("set: %d VMs, maxUnavailable %d, actions of %s: done in %s (lower bound %s: budget %s, slots %s); %d requests, %d accepted POSTs, %d 429s, peak %d at once\n",
		n, mu, d, elapsed.Round(time.Second), lower.Round(time.Second), byBudget.Round(time.Second), bySlots.Round(time.Second), requests, posts, tooMany, peak)
	return []row{
		{fmt.Sprintf("NodeActionSet of %d DigitalOcean VMs, maxUnavailable %d, actions of %s, budget %d/min: 429s", n, mu, d, budget),
			strconv.Itoa(tooMany), "0", yes(tooMany == 0 && ok)},
		{"NodeActionSet: most actions at once, on fakecloud's timeline", strconv.Itoa(peak), fmt.Sprintf("≤ %d", mu), yes(peak <= mu && peak > 0)},
		{"NodeActionSet: provider calls", fmt.Sprintf("%d accepted POSTs for %d VMs, %d requests in all (%.3f per VM)", posts, n, requests, float64(requests)/float64(n)),
			"1 POST per VM", yes(posts == n)},
		{"NodeActionSet: slot handover, a member seen finished → the next member created", fmt.Sprintf("p50 %s, p99 %s", p50.Round(time.Millisecond), p99.Round(time.Millisecond)), "-", nil},
		{"NodeActionSet: total time against the lower bound (the larger of n/budget plus one action's duration, and ⌈n/maxUnavailable⌉ × duration)",
			fmt.Sprintf("%s vs %s (%.2fx; budget %s, slots %s)", elapsed.Round(time.Second), lower.Round(time.Second), ratio, byBudget.Round(time.Second), bySlots.Round(time.Second)),
			"≤ 1.15x", yes(ratio <= 1.15)},
	}
}
