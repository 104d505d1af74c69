// Command localcluster runs a local Kubernetes control plane (etcd and
// kube-apiserver, the binaries hack/build-controlplane.sh builds into
// bin/k8s) through controller-runtime's envtest, the same way the test
// suite starts it, and writes an admin kubeconfig. It stays up until it is
// sent SIGINT or SIGTERM, then stops both processes. hack/demo.sh uses it.
//
//	go run ./hack/localcluster --dir .demo/cluster
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
)

func main() {
	// A FlagSet of its own: controller-runtime registers --kubeconfig on the global one.
	flags := flag.NewFlagSet(os.Args[0], flag.ExitOnError)
	var (
		dir        = flags.String("dir", "", "Directory for the control plane's state: etcd data, apiserver certificates, logs and the kubeconfig (required).")
		kubeconfig = flags.String("kubeconfig", "", "Where to write the admin kubeconfig (default DIR/kubeconfig).")
		assets     = flags.String("assets", "", "Directory holding etcd, kube-apiserver and kubectl (default $KUBEBUILDER_ASSETS, else bin/k8s).")
		startWait  = flags.Duration("start-timeout", 60*time.Second, "How long etcd and kube-apiserver may each take to start.")
	)
	flags.Usage = func() {
		fmt.Fprintf(flags.Output(), `Usage: %s --dir DIR [flags]

Starts etcd and kube-apiserver on free loopback ports (envtest), writes an
admin kubeconfig, prints "ready <kubeconfig>" and stays up until SIGINT or
SIGTERM.

Flags:
`, os.Args[0])
		flags.PrintDefaults()
	}
	_ = flags.Parse(os.Args[1:])
	if *dir == "" || flags.NArg() > 0 {
		flags.Usage()
		os.Exit(2)
	}
	logf.SetLogger(zap.New(zap.WriteTo(os.Stderr)))
	logger := log.New(os.Stderr, "localcluster ", log.LstdFlags)

	abs, err := filepath.Abs(*dir)
	if err != nil {
		logger.Fatal(err)
	}
	if *kubeconfig == "" {
		*kubeconfig = filepath.Join(abs, "kubeconfig")
	}
	if *assets == "" {
		*assets = os.Getenv("KUBEBUILDER_ASSETS")
	}
	if *assets == "" {
		*assets = "bin/k8s"
	}
	if *assets, err = filepath.Abs(*assets); err != nil {
		logger.Fatal(err)
	}
	for _, bin := range []string{"etcd", "kube-apiserver"} {
		if _, err := os.Stat(filepath.Join(*assets, bin)); err != nil {
			logger.Fatalf("%s not found in %s: run `make controlplane` first", bin, *assets)
		}
	}

	etcdLog, apiLog := openLog(logger, abs, "etcd.log"), openLog(logger, abs, "kube-apiserver.log")
	env := &envtest.Environment{
		BinaryAssetsDirectory:    *assets,
		ControlPlaneStartTimeout: *startWait,
		ControlPlaneStopTimeout:  20 * time.Second,
	}
	env.ControlPlane.Etcd = &envtest.Etcd{DataDir: mkdir(logger, abs, "etcd"), Out: etcdLog, Err: etcdLog}
	api := env.ControlPlane.GetAPIServer()
	api.CertDir = mkdir(logger, abs, "apiserver")
	api.Out, api.Err = apiLog, apiLog

	start := time.Now()
	if _, err := env.Start(); err != nil {
		logger.Fatalf("starting etcd and kube-apiserver: %v (logs in %s)", err, abs)
	}
	stop := func() {
		if err := env.Stop(); err != nil {
			logger.Printf("stopping: %v", err)
		}
	}
	admin, err := env.AddUser(envtest.User{Name: "demo-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		stop()
		logger.Fatalf("creating the admin user: %v", err)
	}
	cfg, err := admin.KubeConfig()
	if err == nil {
		err = os.WriteFile(*kubeconfig, cfg, 0o600)
	}
	if err != nil {
		stop()
		logger.Fatalf("writing %s: %v", *kubeconfig, err)
	}
	logger.Printf("kube-apiserver %s is up after %s", env.Config.Host, time.Since(start).Round(100*time.Millisecond))
	fmt.Printf("ready %s\n", *kubeconfig)

	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	<-ctx.Done()
	logger.Print("stopping kube-apiserver and etcd")
	stop()
}

func mkdir(logger *log.Logger, parent, name string) string {
	d := filepath.Join(parent, name)
	if err := os.MkdirAll(d, 0o700); err != nil {
		logger.Fatal(err)
	}
	return d
}

func openLog(logger *log.Logger, dir, name string) *os.File {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		logger.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		logger.Fatal(err)
	}
	return f
}
