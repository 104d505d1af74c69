package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/nodeaction/nodeaction-operator/api/v1alpha1"
	"github.com/nodeaction/nodeaction-operator/controllers"
	"github.com/nodeaction/nodeaction-operator/internal/drivercache"
	"github.com/nodeaction/nodeaction-operator/internal/fakecloud"
)

// The plugin is tested as people use it: its commands run with a kubeconfig
// against a real kube-apiserver and etcd (envtest, with the CRDs, the
// admission policies and the user roles of config/), where the operator's
// controllers run in-process against fakecloud.
var (
	k8s          client.Client // cluster admin
	cloud        *fakecloud.Cloud
	cloudURL     string
	adminConfig  string // kubeconfig of a cluster admin
	oliviaConfig string // kubeconfig of olivia, bound to nodeaction-operator in namespace "team"
)

const teamNS = "team"

func TestMain(m *testing.M) {
	if os.Getenv("TEST_VERBOSE") != "" {
		logf.SetLogger(zap.New(zap.UseDevMode(true), zap.WriteTo(os.Stderr)))
	} else {
		logf.SetLogger(zap.New(zap.WriteTo(io.Discard)))
	}
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		assets, _ := filepath.Abs(filepath.Join("..", "..", "bin", "k8s"))
		if _, err := os.Stat(filepath.Join(assets, "kube-apiserver")); err != nil {
			fmt.Fprintln(os.Stderr, "kube-apiserver not found: run `make controlplane` (or `make test`) first")
			return 1
		}
		os.Setenv("KUBEBUILDER_ASSETS", assets)
	}
	env := &envtest.Environment{CRDDirectoryPaths: []string{filepath.Join("..", "..", "config", "crd", "bases")}, ErrorIfCRDPathMissing: true}
	cfg, err := env.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting envtest:", err)
		return 1
	}
	defer func() { _ = env.Stop() }()
	fail := func(err error) int { fmt.Fprintln(os.Stderr, err); return 1 }
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return fail(err)
	}
	if k8s, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		return fail(err)
	}
	dir, err := os.MkdirTemp("", "kubectl-nodeaction-test-")
	if err != nil {
		return fail(err)
	}
	defer os.RemoveAll(dir)
	if adminConfig, err = userKubeconfig(env, cfg, dir, envtest.User{Name: "admin", Groups: []string{"system:masters"}}); err != nil {
		return fail(err)
	}
	if oliviaConfig, err = userKubeconfig(env, cfg, dir, envtest.User{Name: "olivia"}); err != nil {
		return fail(err)
	}
	if err := installPoliciesAndRoles(); err != nil {
		return fail(err)
	}

	cloud = fakecloud.New(fakecloud.Options{ActionDuration: 300 * time.Millisecond})
	server := httptest.NewServer(cloud.Handler())
	defer server.Close()
	cloudURL = server.URL
	stop, err := startManager(cfg)
	if err != nil {
		return fail(err)
	}
	defer stop()
	if err := setUpTeam(); err != nil {
		return fail(err)
	}
	return m.Run()
}

func userKubeconfig(env *envtest.Environment, cfg *rest.Config, dir string, u envtest.User) (string, error) {
	user, err := env.AddUser(u, cfg)
	if err != nil {
		return "", err
	}
	kc, err := user.KubeConfig()
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, u.Name+".kubeconfig")
	return path, os.WriteFile(path, kc, 0o600)
}

// installPoliciesAndRoles creates the admission policies and the user
// roles that dist/install.yaml installs.
func installPoliciesAndRoles() error {
	data, err := os.ReadFile(filepath.Join("..", "..", "dist", "install.yaml"))
	if err != nil {
		return err
	}
	decoder := serializer.NewCodecFactory(scheme).UniversalDeserializer()
	var created []string
	for _, doc := range strings.Split(string(data), "\n---\n") {
		obj, _, err := decoder.Decode([]byte(doc), nil, nil)
		if err != nil {
			continue // the CRDs and the Namespace: not in this scheme, not needed
		}
		switch o := obj.(type) {
		case *admissionregistrationv1.ValidatingAdmissionPolicy, *admissionregistrationv1.ValidatingAdmissionPolicyBinding:
		case *rbacv1.ClusterRole:
			if !strings.HasPrefix(o.Name, "nodeaction-") || o.Labels["rbac.authorization.k8s.io/aggregate-to-view"] == "" && o.Labels["rbac.authorization.k8s.io/aggregate-to-edit"] == "" && o.Labels["rbac.authorization.k8s.io/aggregate-to-admin"] == "" {
				continue
			}
		default:
			continue
		}
		o := obj.(client.Object)
		if err := k8s.Create(context.Background(), o); err != nil {
			return fmt.Errorf("creating %T from dist/install.yaml: %w", obj, err)
		}
		created = append(created, o.GetName())
	}
	for _, name := range []string{"nodeaction-permissions", "nodeaction-operator", "nodeaction-admin"} {
		if !slices.Contains(created, name) {
			return fmt.Errorf("dist/install.yaml has no %s (found %v)", name, created)
		}
	}
	return nil
}

// startManager runs the operator's controllers in-process, as the manager
// binary does, with test timings.
func startManager(cfg *rest.Config) (stop func(), err error) {
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0"})
	if err != nil {
		return nil, err
	}
	drivers := drivercache.New(mgr.GetAPIReader(), drivercache.Options{RequestTimeout: 2 * time.Second, MaxRateWait: 200 * time.Millisecond})
	opts := controller.Options{MaxConcurrentReconciles: 4}
	recorder := mgr.GetEventRecorder("nodeaction-operator")
	if err := (&controllers.ProviderReconciler{Client: mgr.GetClient(), Drivers: drivers, Recorder: recorder}).SetupWithManager(mgr, opts); err != nil {
		return nil, err
	}
	if err := (&controllers.NodeActionReconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Drivers: drivers, Recorder: recorder}).SetupWithManager(mgr, opts); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	return func() { cancel(); <-done }, nil
}

// setUpTeam makes namespace "team" with a DigitalOcean and an E2E Provider
// on fakecloud, and binds olivia to nodeaction-operator there.
func setUpTeam() error {
	ctx := context.Background()
	creds := fakecloud.DefaultCredentials()
	poll := &metav1.Duration{Duration: 100 * time.Millisecond}
	for _, o := range []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: teamNS}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: teamNS, Name: "do-credentials"}, StringData: map[string]string{"token": creds.DigitalOceanToken}},
		&v1alpha1.Provider{ObjectMeta: metav1.ObjectMeta{Namespace: teamNS, Name: "do"}, Spec: v1alpha1.ProviderSpec{
			Type: v1alpha1.ProviderDigitalOcean, Endpoint: cloudURL + "/digitalocean",
			CredentialsSecretRef: v1alpha1.SecretReference{Name: "do-credentials"}, PollInterval: poll}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: teamNS, Name: "e2e-credentials"}, StringData: map[string]string{"apiKey": creds.E2EAPIKey, "token": creds.E2EToken}},
		&v1alpha1.Provider{ObjectMeta: metav1.ObjectMeta{Namespace: teamNS, Name: "e2e"}, Spec: v1alpha1.ProviderSpec{
			Type: v1alpha1.ProviderE2E, Endpoint: cloudURL + "/e2e", Location: "Delhi",
			CredentialsSecretRef: v1alpha1.SecretReference{Name: "e2e-credentials"}, PollInterval: poll}},
		&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: teamNS, Name: "olivia-operator"},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "nodeaction-operator"},
			Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: "olivia"}}},
	} {
		if err := k8s.Create(ctx, o); err != nil {
			return fmt.Errorf("creating %T %s: %w", o, o.GetName(), err)
		}
	}
	return nil
}

// result is what one plugin command printed and returned.
type result struct {
	out, errOut string
	err         error
}

// errLine is the line main prints for the command's error.
func (r result) errLine() string {
	if r.err == nil {
		return ""
	}
	return "error: " + oneLine(r.err.Error())
}

// kubectlNodeaction runs the plugin with args as the user of kubeconfig, in
// namespace "team" unless args say otherwise, with stdin.
func kubectlNodeaction(t *testing.T, kubeconfig, stdin string, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := newRootCommand(genericiooptions.IOStreams{In: strings.NewReader(stdin), Out: &out, ErrOut: &errOut})
	cmd.SetArgs(append([]string{"--kubeconfig", kubeconfig, "--namespace", teamNS}, args...))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err := cmd.ExecuteContext(ctx)
	t.Logf("kubectl nodeaction %s\n%s%s%v", strings.Join(args, " "), out.String(), errOut.String(), err)
	return result{out: out.String(), errOut: errOut.String(), err: err}
}

func getNodeAction(t *testing.T, name string) *v1alpha1.NodeAction {
	t.Helper()
	na := &v1alpha1.NodeAction{}
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: teamNS, Name: name}, na); err != nil {
		t.Fatal(err)
	}
	return na
}

// waitForNodeAction polls until cond holds.
func waitForNodeAction(t *testing.T, name, what string, cond func(*v1alpha1.NodeAction) bool) *v1alpha1.NodeAction {
	t.Helper()
	var na *v1alpha1.NodeAction
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		na = getNodeAction(t, name)
		return cond(na), nil
	})
	if err != nil {
		t.Fatalf("waiting for %s of nodeaction %s: %v; status %+v", what, name, err, na.Status)
	}
	return na
}

// createdName reads the generated name from run's output.
func createdName(t *testing.T, out string) string {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(line, "nodeaction.compute.nodeaction.dev/"); ok {
			if name, _, ok := strings.Cut(rest, " created"); ok {
				return name
			}
		}
	}
	t.Fatalf("run printed no created name:\n%s", out)
	return ""
}
