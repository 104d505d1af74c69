package chart

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/nodeaction/nodeaction-operator/api/v1alpha1"
)

var scheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(v1alpha1.AddToScheme(s))
	utilruntime.Must(apiextensionsv1.AddToScheme(s))
	return s
}()

// cluster is one envtest control plane, with an audit log, for one
// rendering of the chart.
type cluster struct {
	cfg        *rest.Config
	k8s        client.Client
	kubeconfig string // cluster admin, for kubectl
	auditLog   string
}

func startCluster(t *testing.T) *cluster {
	t.Helper()
	dir := t.TempDir()
	c := &cluster{auditLog: filepath.Join(dir, "audit.log")}
	policy := filepath.Join(dir, "audit-policy.yaml")
	if err := os.WriteFile(policy, []byte("apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n- level: Metadata\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := &envtest.Environment{}
	env.ControlPlane.GetAPIServer().Configure().
		Set("audit-policy-file", policy).Set("audit-log-path", c.auditLog).Set("audit-log-mode", "blocking-strict")
	var err error
	if c.cfg, err = env.Start(); err != nil {
		t.Fatalf("starting envtest: %v", err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	if c.k8s, err = client.New(c.cfg, client.Options{Scheme: scheme}); err != nil {
		t.Fatal(err)
	}
	admin, err := env.AddUser(envtest.User{Name: "installer", Groups: []string{"system:masters"}}, c.cfg)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := admin.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	c.kubeconfig = filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(c.kubeconfig, kc, 0o600); err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *cluster) kubectl(t *testing.T, args ...string) string {
	t.Helper()
	var o, e bytes.Buffer
	cmd := exec.Command(filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kubectl"), append([]string{"--kubeconfig", c.kubeconfig}, args...)...)
	cmd.Stdout, cmd.Stderr = &o, &e
	if err := cmd.Run(); err != nil {
		t.Fatalf("kubectl %s: %v\n%s%s", strings.Join(args, " "), err, o.String(), e.String())
	}
	return o.String() + e.String()
}

// applyServerSide applies a manifest as `kubectl apply --server-side` does
// with `helm template` output, and fails on any warning.
func (c *cluster) applyServerSide(t *testing.T, manifest string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "manifest.yaml")
	if err := os.WriteFile(path, []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	out := c.kubectl(t, "apply", "--server-side", "--field-manager=chart-test", "-f", path)
	if strings.Contains(out, "Warning") {
		t.Errorf("applying the rendering drew warnings:\n%s", out)
	}
}

func (c *cluster) impersonate(t *testing.T, user string, groups ...string) client.Client {
	t.Helper()
	cfg := rest.CopyConfig(c.cfg)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: append([]string{"system:authenticated"}, groups...)}
	k, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// serviceAccountKubeconfig acts as the ServiceAccount (the admin
// impersonating it), so only its RBAC applies.
func (c *cluster) serviceAccountKubeconfig(t *testing.T, namespace, name string) string {
	t.Helper()
	cfg, err := clientcmd.LoadFromFile(c.kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	for _, ai := range cfg.AuthInfos {
		ai.Impersonate = "system:serviceaccount:" + namespace + ":" + name
		ai.ImpersonateGroups = []string{"system:serviceaccounts", "system:serviceaccounts:" + namespace, "system:authenticated"}
	}
	path := filepath.Join(t.TempDir(), "sa.kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// refusedRequests returns the requests the user made since start that the
// apiserver answered 403. A marker request first makes sure the audit log
// holds everything before it.
func (c *cluster) refusedRequests(t *testing.T, user string, start time.Time) (refused []string, total int) {
	t.Helper()
	marker := fmt.Sprintf("audit-marker-%d", time.Now().UnixNano())
	_ = c.k8s.Get(context.Background(), client.ObjectKey{Name: marker}, &corev1.Namespace{})
	type event struct {
		Stage            string                     `json:"stage"`
		Verb             string                     `json:"verb"`
		ImpersonatedUser *struct{ Username string } `json:"impersonatedUser"`
		RequestReceived  time.Time                  `json:"requestReceivedTimestamp"`
		ObjectRef        struct {
			Resource, Namespace, Name, Subresource string
		} `json:"objectRef"`
		ResponseStatus struct{ Code int } `json:"responseStatus"`
	}
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		refused, total = nil, 0
		f, err := os.Open(c.auditLog)
		if err != nil {
			return false, err
		}
		defer f.Close()
		seen := false
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<24)
		for sc.Scan() {
			var e event
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				return false, err
			}
			seen = seen || e.ObjectRef.Name == marker
			if e.Stage != "ResponseComplete" || e.ImpersonatedUser == nil || e.ImpersonatedUser.Username != user || e.RequestReceived.Before(start) {
				continue
			}
			total++
			if e.ResponseStatus.Code == http.StatusForbidden {
				refused = append(refused, fmt.Sprintf("%s %s/%s (ns %q, name %q)", e.Verb, e.ObjectRef.Resource, e.ObjectRef.Subresource, e.ObjectRef.Namespace, e.ObjectRef.Name))
			}
		}
		return seen, sc.Err()
	})
	if err != nil {
		t.Fatalf("reading the audit log: %v", err)
	}
	return refused, total
}

type managerProcess struct {
	cmd     *exec.Cmd
	out     *syncBuffer
	done    chan struct{}
	waitErr error
}

func (m *managerProcess) log() string { return m.out.String() }

// startManager runs the manager binary with the rendered Deployment's
// arguments as the ServiceAccount, and waits for its probes.
func (c *cluster) startManager(t *testing.T, args []string, namespace, serviceAccount string) *managerProcess {
	t.Helper()
	probeAddr := freeAddr(t)
	// Outside a pod the manager cannot read its namespace, and ports must
	// not clash on a shared host: later flags win.
	args = append(append([]string{}, args...), "--leader-election-namespace="+namespace,
		"--metrics-bind-address="+freeAddr(t), "--health-probe-bind-address="+probeAddr)
	m := &managerProcess{out: &syncBuffer{}, done: make(chan struct{})}
	m.cmd = exec.Command(manager(t), args...)
	m.cmd.Env = append(os.Environ(), "KUBECONFIG="+c.serviceAccountKubeconfig(t, namespace, serviceAccount))
	m.cmd.Stdout, m.cmd.Stderr = m.out, m.out
	if err := m.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { m.waitErr = m.cmd.Wait(); close(m.done) }()
	t.Cleanup(func() {
		select {
		case <-m.done:
		default:
			_ = m.cmd.Process.Kill()
			<-m.done
		}
	})
	httpc := &http.Client{Timeout: 2 * time.Second}
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 60*time.Second, true, func(context.Context) (bool, error) {
		select {
		case <-m.done:
			return false, fmt.Errorf("the manager exited: %v", m.waitErr)
		default:
		}
		resp, err := httpc.Get("http://" + probeAddr + "/readyz")
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
	if err != nil {
		t.Fatalf("the manager's readiness probe did not pass: %v\nmanager log:\n%s", err, m.log())
	}
	return m
}

func (m *managerProcess) stop(t *testing.T) {
	t.Helper()
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.done:
	case <-time.After(20 * time.Second):
		t.Fatalf("the manager did not exit within 20s of SIGTERM\nmanager log:\n%s", m.log())
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
