// Command fakecloud serves internal/fakecloud on its own: an in-memory cloud
// of VMs that speaks the five provider APIs nodeaction-operator drives, for
// people trying the operator (`make demo`) without a cloud account.
//
//	go run ./hack/fakecloud --addr 127.0.0.1:18080
//
// Point a Provider's endpoint at http://ADDR/<skin> (digitalocean, e2e,
// cloudsfor, openscaler; senlin through authURL http://ADDR/identity/v3) and
// use the demo credentials config/samples carries. The control API under
// /fakecloud lists VMs, actions and requests and injects faults.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodeaction/nodeaction-operator/internal/fakecloud"
	"github.com/nodeaction/nodeaction-operator/internal/fakecloud/demo"
	"github.com/nodeaction/nodeaction-operator/internal/fakekubelet"
)

func main() {
	var (
		addr           = flag.String("addr", demo.Addr, "Address to listen on. The samples in config/samples expect "+demo.Addr+".")
		actionDuration = flag.Duration("action-duration", 3*time.Second, "How long an action runs before it completes (OpenScaler answers at once unless a shutdown takes longer than 5s).")
		rateLimit      = flag.Int("rate-limit", fakecloud.DefaultRateBudget().Limit, "Requests allowed per credential and --rate-window on the skins that publish a budget (DigitalOcean, E2E); more get 429 with Retry-After.")
		rateWindow     = flag.Duration("rate-window", fakecloud.DefaultRateBudget().Window, "The window of --rate-limit.")
		demoVMs        = flag.Bool("demo-vms", true, "Add the demo VMs the samples use (see internal/fakecloud/demo). With --demo-vms=false the cloud starts empty; add VMs with POST /fakecloud/vms.")
		e2eDelay       = flag.Duration("e2e-workflow-delay", fakecloud.DefaultE2EWorkflowDelay, "How long an E2E node keeps its old state after the API accepted an action, before the workflow shows (the seed: \"done\" at once, the workflow asynchronously).")
		adversarial    = flag.Bool("adversarial", false, "Vary, per request and reproducibly from --seed, what the provider documents leave open: list order, how soon a new action shows in lists and in the VM's state, action durations, latency, proxy 502/503/504 errors with an HTML body (before or after the request reached the API), held-back answers, and duplicate-looking earlier actions. Every choice is in GET /fakecloud/log. See docs/fakecloud.md.")
		seed           = flag.Uint64("seed", 1, "The seed of --adversarial: the same seed and the same requests give the same choices.")
		credsFile      = flag.String("credentials", "", "JSON file of the credentials to accept (the fields of fakecloud.Credentials). Default: the demo credentials in config/samples.")
		quiet          = flag.Bool("quiet", false, "Do not log requests.")
		kubeconfig     = flag.String("kubeconfig", "", "Also play the kubelets of the Kubernetes Nodes on fakecloud's VMs in the cluster this kubeconfig names (a Node is a VM's by its compute.nodeaction.dev/vm annotation or a digitalocean:// providerID): a VM that boots again gives its Node a new bootID and takes it NotReady for --node-boot-delay; pods being deleted on those Nodes are let go. For the demo, whose API server runs no kubelet.")
		nodeBootDelay  = flag.Duration("node-boot-delay", 3*time.Second, "With --kubeconfig: how long a Node stays NotReady after its VM booted again.")
	)
	flag.Usage = func() {
		out := flag.CommandLine.Output()
		fmt.Fprintf(out, `Usage: %s [flags]

fakecloud is an in-memory cloud of VMs speaking the DigitalOcean, OpenStack
Senlin (with Keystone), E2E Networks, CloudsFor and OpenScaler VM-action APIs.

Endpoints, under http://ADDR:
  /digitalocean      DigitalOcean API v2            Provider spec.endpoint
  /senlin            OpenStack Senlin v1            (found in the Keystone catalog)
  /identity/v3       Keystone v3                    Provider spec.authURL (senlin)
  /e2e               E2E Networks MyAccount         Provider spec.endpoint (any spec.location)
  /cloudsfor         CloudsFor                      Provider spec.endpoint
  /openscaler        OpenScaler                     Provider spec.endpoint
  /fakecloud         control API:
      GET    /fakecloud/vms               the VMs (power, name, size, boots, ...)
      POST   /fakecloud/vms               add a VM: {"id": "42", "name": "web-9", "power": "off"}
      PATCH  /fakecloud/vms/{id}          {"failNext": "disk error", "failNextAtOnce": "quota", "ignoreShutdown": true,
                                           "actionDuration": "30s", "power": "off"}
      GET    /fakecloud/actions           every action and its state
      GET    /fakecloud/log               the request log, with every choice the cloud made
                                          (delays, order, proxy errors, faults); DELETE empties it
      POST   /fakecloud/faults            inject a fault, e.g. a 429 on one droplet's next action:
             {"skin": "digitalocean", "pathContains": "/droplets/3164494/", "actionOnly": true,
              "times": 1, "mode": "reject", "status": 429, "retryAfter": 5}
      DELETE /fakecloud/faults            remove every fault
      PUT    /fakecloud/ratebudget        {"limit": 250, "window": "1m"}
      PUT    /fakecloud/actionduration    {"duration": "10s"}

Where the provider documents are silent, the cloud picks what is hardest on a
client (lists oldest first, CloudsFor times in whole seconds, E2E workflows
that start after --e2e-workflow-delay); --adversarial --seed N varies those
choices per request. docs/fakecloud.md is the contract per provider.

Each request is logged on one line (method, path, status, time); query
strings, headers and bodies, where credentials travel, are never logged.

Flags:
`, os.Args[0])
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "unexpected arguments: %s\n", strings.Join(flag.Args(), " "))
		flag.Usage()
		os.Exit(2)
	}
	logger := log.New(os.Stderr, "fakecloud ", log.LstdFlags|log.Lmicroseconds)

	opts := fakecloud.Options{ActionDuration: *actionDuration, E2EWorkflowDelay: *e2eDelay}
	if *adversarial {
		opts.Adversary = &fakecloud.Adversary{Seed: *seed}
	}
	if *e2eDelay <= 0 {
		logger.Fatal("--e2e-workflow-delay must be positive")
	}
	if *rateLimit < 1 || *rateWindow <= 0 {
		logger.Fatal("--rate-limit must be at least 1 and --rate-window positive")
	}
	opts.RateBudget = fakecloud.RateBudget{Limit: *rateLimit, Window: *rateWindow}
	if *actionDuration <= 0 {
		logger.Fatal("--action-duration must be positive")
	}
	if *credsFile != "" {
		creds, err := readCredentials(*credsFile)
		if err != nil {
			logger.Fatalf("--credentials: %v", err)
		}
		opts.Credentials = &creds
	}
	cloud := fakecloud.New(opts)
	if *demoVMs {
		demo.Seed(cloud)
	}

	var handler http.Handler = cloud.Handler()
	if !*quiet {
		handler = logRequests(logger, handler)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		logger.Fatalf("cannot listen on %s: %v", *addr, err)
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}

	base := "http://" + ln.Addr().String()
	logger.Printf("serving on %s: %d VMs, actions take %s, E2E workflows show after %s, rate budget %d per %s", base, len(cloud.VMs()), *actionDuration, *e2eDelay, *rateLimit, *rateWindow)
	if *adversarial {
		logger.Printf("adversarial, seed %d: every choice is in %s/fakecloud/log", *seed, base)
	}
	logger.Printf("endpoints: %s/{digitalocean,e2e,cloudsfor,openscaler}, Keystone %s/identity/v3, control API %s/fakecloud/vms", base, base, base)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *kubeconfig != "" {
		k, err := kubelets(*kubeconfig, cloud, *nodeBootDelay)
		if err != nil {
			logger.Fatalf("--kubeconfig: %v", err)
		}
		go k.Run(ctx)
		logger.Printf("playing the kubelets of the Nodes on its VMs (boot delay %s)", *nodeBootDelay)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		logger.Fatalf("serving: %v", err)
	case <-ctx.Done():
	}
	logger.Print("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// Answers held by an accept-then-hold fault would keep Shutdown waiting.
	cloud.ClearFaults()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		logger.Printf("shutdown: %v", err)
	}
}

// kubelets plays the kubelets of the Nodes on cloud's VMs in the cluster
// kubeconfig names.
func kubelets(kubeconfig string, cloud *fakecloud.Cloud, bootDelay time.Duration) (*fakekubelet.Kubelet, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, err
	}
	c, err := client.New(cfg, client.Options{})
	if err != nil {
		return nil, err
	}
	return &fakekubelet.Kubelet{Client: c, BootDelay: bootDelay, Interval: 200 * time.Millisecond,
		VMs: func(context.Context) ([]fakecloud.VM, error) { return cloud.VMs(), nil }}, nil
}

func readCredentials(path string) (fakecloud.Credentials, error) {
	var creds fakecloud.Credentials
	f, err := os.Open(path)
	if err != nil {
		return creds, err
	}
	defer f.Close()
	dec := json.NewDecoder(f)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&creds); err != nil {
		return creds, fmt.Errorf("%s: %v", path, err)
	}
	return creds, nil
}

// logRequests logs one line per request: method, escaped path, status and
// duration. Query strings (E2E's apikey travels there), headers and bodies
// are left out, so no credential reaches the log.
func logRequests(logger *log.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			status := fmt.Sprint(sw.status)
			switch {
			case sw.hijacked:
				status = "dropped"
			case sw.status == 0:
				status = "200"
			}
			logger.Printf("%s %s %s %s", r.Method, r.URL.EscapedPath(), status, time.Since(start).Round(100*time.Microsecond))
		}()
		next.ServeHTTP(sw, r)
	})
}

// statusWriter remembers the status written. It passes Hijack through, so
// fakecloud's dropped-connection faults still work.
type statusWriter struct {
	http.ResponseWriter
	status   int
	hijacked bool
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("hijacking not supported")
	}
	w.hijacked = true
	return h.Hijack()
}
