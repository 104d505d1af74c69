// Package install tests what a cluster gets from dist/install.yaml (and
// config/): that it applies to a real kube-apiserver, that the manager's
// RBAC is enough for the controllers and no wider, that the admission policy
// enforces per-action permissions, and that the manager's pod passes the
// restricted Pod Security profile. The control plane is envtest's, built
// from Go modules into bin/k8s (hack/build-controlplane.sh); nothing here
// needs a network.
package install

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/nodeaction/nodeaction-operator/api/v1alpha1"
)

// What config/default names things (namespace, namePrefix).
const (
	systemNamespace  = "nodeaction-system"
	managerSA        = "nodeaction-controller-manager"
	managerUser      = "system:serviceaccount:" + systemNamespace + ":" + managerSA
	deploymentName   = "nodeaction-controller-manager"
	metricsService   = "nodeaction-controller-manager-metrics-service"
	policyName       = "nodeaction-permissions"
	setPolicyName    = "nodeaction-set-permissions"
	leaderElectionID = "nodeaction-operator.compute.nodeaction.dev"
)

var (
	repoRoot   string
	scheme     = runtime.NewScheme()
	env        *envtest.Environment
	restConfig *rest.Config
	k8s        client.Client // cluster admin, no cache
	kubeconfig string        // cluster admin, for kubectl
	workDir    string        // temporary files of the whole run
	auditLog   string        // the apiserver's audit log (JSON lines)
)

func TestMain(m *testing.M) {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(v1alpha1.AddToScheme(scheme))
	utilruntime.Must(apiextensionsv1.AddToScheme(scheme))
	if os.Getenv("TEST_VERBOSE") != "" {
		logf.SetLogger(zap.New(zap.UseDevMode(true), zap.WriteTo(os.Stderr)))
	} else {
		logf.SetLogger(zap.New(zap.WriteTo(io.Discard)))
	}
	var err error
	if repoRoot, err = filepath.Abs(filepath.Join("..", "..")); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		assets := filepath.Join(repoRoot, "bin", "k8s")
		if _, err := os.Stat(filepath.Join(assets, "kube-apiserver")); err != nil {
			fmt.Fprintln(os.Stderr, "kube-apiserver not found: run `make controlplane` (or `make test`) first")
			os.Exit(1)
		}
		os.Setenv("KUBEBUILDER_ASSETS", assets)
	}
	if workDir, err = os.MkdirTemp("", "install-test-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// Every request is audited, so tests can see what the manager asked for
	// and whether it was ever refused.
	auditPolicy := filepath.Join(workDir, "audit-policy.yaml")
	auditLog = filepath.Join(workDir, "audit.log")
	if err := os.WriteFile(auditPolicy, []byte("apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n- level: Metadata\n"), 0o600); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// No CRDs here: dist/install.yaml brings them.
	env = &envtest.Environment{}
	env.ControlPlane.GetAPIServer().Configure().
		Set("audit-policy-file", auditPolicy).
		Set("audit-log-path", auditLog).
		Set("audit-log-mode", "blocking-strict")
	code := func() int {
		defer os.RemoveAll(workDir)
		if restConfig, err = env.Start(); err != nil {
			fmt.Fprintln(os.Stderr, "starting envtest:", err)
			return 1
		}
		defer func() { _ = env.Stop() }()
		if k8s, err = client.New(restConfig, client.Options{Scheme: scheme}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		admin, err := env.AddUser(envtest.User{Name: "installer", Groups: []string{"system:masters"}}, restConfig)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		kc, err := admin.KubeConfig()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		kubeconfig = filepath.Join(workDir, "kubeconfig")
		if err := os.WriteFile(kubeconfig, kc, 0o600); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return m.Run()
	}()
	os.Exit(code)
}

// runKubectl runs kubectl (from KUBEBUILDER_ASSETS, next to kube-apiserver)
// as a cluster admin.
func runKubectl(args ...string) (stdout, stderr string, err error) {
	var o, e bytes.Buffer
	cmd := exec.Command(filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kubectl"), append([]string{"--kubeconfig", kubeconfig}, args...)...)
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

var (
	installOnce sync.Once
	installErr  error
	installOut  string
	installWarn string // kubectl's stderr: the apiserver's warnings
)

// installed applies dist/install.yaml once, as a user would
// (kubectl apply --server-side), and waits for its CRDs to be served.
func installed(t *testing.T) {
	t.Helper()
	installOnce.Do(func() {
		installOut, installWarn, installErr = runKubectl("apply", "--server-side", "--field-manager=install-test", "-f", filepath.Join(repoRoot, "dist", "install.yaml"))
		if installErr != nil {
			installErr = fmt.Errorf("kubectl apply --server-side -f dist/install.yaml: %v\n%s%s", installErr, installOut, installWarn)
			return
		}
		installErr = pollUntil(30*time.Second, func() error {
			for _, kind := range []client.ObjectList{&v1alpha1.ProviderList{}, &v1alpha1.NodeActionList{}} {
				if err := k8s.List(context.Background(), kind); err != nil {
					return fmt.Errorf("the CRDs are not served yet: %w", err)
				}
			}
			return nil
		})
	})
	if installErr != nil {
		t.Fatal(installErr)
	}
}

// pollUntil calls f until it returns nil or the timeout passes, returning
// its last error.
func pollUntil(timeout time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %s: %w", timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// readObjects decodes every object of a multi-document YAML file.
func readObjects(t *testing.T, path string) []*unstructured.Unstructured {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := decodeObjects(data)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return objs
}

func decodeObjects(data []byte) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var out []*unstructured.Unstructured
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, err
		}
		if len(u.Object) > 0 {
			out = append(out, u)
		}
	}
}

// installObject returns the one object of dist/install.yaml with this kind and name.
func installObject(t *testing.T, kind, name string) *unstructured.Unstructured {
	t.Helper()
	for _, o := range readObjects(t, filepath.Join(repoRoot, "dist", "install.yaml")) {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	t.Fatalf("dist/install.yaml has no %s %s", kind, name)
	return nil
}

// newNamespace creates a namespace with these labels for one test.
func newNamespace(t *testing.T, name string, labels map[string]string) string {
	t.Helper()
	ns := &unstructured.Unstructured{}
	ns.SetAPIVersion("v1")
	ns.SetKind("Namespace")
	ns.SetName(name)
	ns.SetLabels(labels)
	if err := k8s.Create(context.Background(), ns); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	return name
}

// impersonate returns a client acting as this user (and groups).
func impersonate(t *testing.T, user string, groups ...string) client.Client {
	t.Helper()
	cfg := rest.CopyConfig(restConfig)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: append([]string{"system:authenticated"}, groups...)}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func containsAll(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}
