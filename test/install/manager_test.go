package install

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodeaction/nodeaction-operator/api/v1alpha1"
	"github.com/nodeaction/nodeaction-operator/internal/fakecloud"
)

// The manager binary, built as the Dockerfile builds it and started with the
// Deployment's own arguments, runs the controllers with nothing but the
// RBAC dist/install.yaml gives its ServiceAccount (it connects as that
// ServiceAccount): it elects itself leader, reads a Provider's Secret,
// drives NodeActions to Succeeded, records events, deletes after TTL, and
// serves probes and authenticated metrics. The apiserver's audit log then
// shows that it was refused nothing and never listed or watched Secrets.
func TestManagerRunsWithInstalledRBAC(t *testing.T) {
	installed(t)
	bin := dockerBuiltManager(t)
	ctx := context.Background()

	cloud := fakecloud.New(fakecloud.Options{ActionDuration: 300 * time.Millisecond})
	server := httptest.NewServer(cloud.Handler())
	defer server.Close()
	for _, id := range []string{"2001", "2002", "2003", "2004", "2005"} {
		cloud.AddVM(fakecloud.VM{ID: id})
	}

	start := time.Now()
	mgr := startManagerBinary(t, bin, managerArgs(t, readObjects(t, filepath.Join(repoRoot, "dist", "install.yaml"))))

	// Leader election: the Lease in the manager's namespace names a holder.
	lease := &coordinationv1.Lease{}
	leaseKey := client.ObjectKey{Namespace: systemNamespace, Name: leaderElectionID}
	if err := pollUntil(30*time.Second, func() error {
		if err := k8s.Get(ctx, leaseKey, lease); err != nil {
			return err
		}
		if ptr.Deref(lease.Spec.HolderIdentity, "") == "" {
			return fmt.Errorf("lease %s has no holder", leaseKey)
		}
		return nil
	}); err != nil {
		t.Fatalf("the manager did not become leader: %v\nmanager log:\n%s", err, mgr.log())
	}

	ns := newNamespace(t, "manager-run", nil)
	creds := fakecloud.DefaultCredentials()
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "do-credentials"}, StringData: map[string]string{"token": creds.DigitalOceanToken}}
	provider := &v1alpha1.Provider{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "do"}, Spec: v1alpha1.ProviderSpec{
		Type: v1alpha1.ProviderDigitalOcean, Endpoint: server.URL + "/digitalocean",
		CredentialsSecretRef: v1alpha1.SecretReference{Name: secret.Name},
		PollInterval:         &metav1.Duration{Duration: 200 * time.Millisecond},
	}}
	reboot := &v1alpha1.NodeAction{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "reboot"}, Spec: v1alpha1.NodeActionSpec{
		ProviderRef: v1alpha1.ProviderReference{Name: "do"}, NodeID: "2001", Action: "reboot"}}
	ephemeral := &v1alpha1.NodeAction{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "power-cycle-ttl"}, Spec: v1alpha1.NodeActionSpec{
		ProviderRef: v1alpha1.ProviderReference{Name: "do"}, NodeID: "2002", Action: "power_cycle", TTLSecondsAfterFinished: ptr.To[int32](0)}}
	for _, o := range []client.Object{secret, provider, reboot, ephemeral} {
		if err := k8s.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}

	if err := pollUntil(30*time.Second, func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(provider), provider); err != nil {
			return err
		}
		if c := findCondition(provider.Status.Conditions, v1alpha1.ConditionReady); c == nil || c.Status != metav1.ConditionTrue {
			return fmt.Errorf("Provider not Ready: %+v", provider.Status.Conditions)
		}
		return nil
	}); err != nil {
		t.Fatalf("%v\nmanager log:\n%s", err, mgr.log())
	}
	if err := pollUntil(30*time.Second, func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(reboot), reboot); err != nil {
			return err
		}
		if reboot.Status.Phase != v1alpha1.PhaseSucceeded {
			return fmt.Errorf("NodeAction reboot is %q: %+v", reboot.Status.Phase, reboot.Status.Conditions)
		}
		return nil
	}); err != nil {
		t.Fatalf("%v\nmanager log:\n%s", err, mgr.log())
	}
	if err := pollUntil(30*time.Second, func() error {
		err := k8s.Get(ctx, client.ObjectKeyFromObject(ephemeral), ephemeral)
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("NodeAction power-cycle-ttl still exists (phase %q, error %v)", ephemeral.Status.Phase, err)
	}); err != nil {
		t.Fatalf("ttlSecondsAfterFinished=0 did not delete the NodeAction: %v\nmanager log:\n%s", err, mgr.log())
	}
	if n := cloud.ActionCalls("2002"); n != 1 {
		t.Errorf("fakecloud saw %d action calls for the TTL NodeAction, want 1", n)
	}

	runSetsWithInstalledRBAC(t, ns, cloud, mgr)

	// Events (events.k8s.io) about the NodeAction, written by the manager.
	if err := pollUntil(10*time.Second, func() error {
		events := &eventsv1.EventList{}
		if err := k8s.List(ctx, events, client.InNamespace(ns)); err != nil {
			return err
		}
		for _, e := range events.Items {
			if e.Regarding.Name == "reboot" && e.Regarding.Kind == "NodeAction" {
				return nil
			}
		}
		return fmt.Errorf("no event about NodeAction reboot among %d events", len(events.Items))
	}); err != nil {
		t.Error(err)
	}

	checkMetricsAuth(t, mgr.metricsAddr)

	mgr.stop(t)
	// Leaving, the leader released the Lease (LeaderElectionReleaseOnCancel).
	if err := k8s.Get(ctx, leaseKey, lease); err != nil {
		t.Fatal(err)
	}
	if h := ptr.Deref(lease.Spec.HolderIdentity, ""); h != "" {
		t.Errorf("the stopped manager did not release the Lease: holder %q", h)
	}

	var refused, secretReads []string
	for _, e := range managerAuditEvents(t, start) {
		req := fmt.Sprintf("%s %s (ns %q, name %q, subresource %q): %d", e.Verb, e.ObjectRef.Resource, e.ObjectRef.Namespace, e.ObjectRef.Name, e.ObjectRef.Subresource, e.ResponseStatus.Code)
		if e.ResponseStatus.Code == http.StatusForbidden {
			refused = append(refused, req)
		}
		if e.ObjectRef.Resource == "secrets" {
			secretReads = append(secretReads, req)
			if e.Verb != "get" || e.ObjectRef.Namespace != ns || e.ObjectRef.Name != secret.Name {
				t.Errorf("the manager touched a Secret other than by GET of the Provider's credentials: %s", req)
			}
		}
	}
	if len(refused) > 0 {
		t.Errorf("the apiserver refused the manager %d requests: its RBAC lacks something:\n%s", len(refused), strings.Join(refused, "\n"))
	}
	if len(secretReads) == 0 {
		t.Errorf("the audit log shows no Secret read by the manager; the test does not see what it should")
	}
}

// runSetsWithInstalledRBAC: the manager, as its ServiceAccount, rolls a
// destructive NodeActionSet (so the policy nodeaction-permissions lets it
// create rebuild members), records and releases a member deleted by hand,
// and maps a Node selected by label to its VM.
func runSetsWithInstalledRBAC(t *testing.T, ns string, cloud *fakecloud.Cloud, mgr *managerProcess) {
	t.Helper()
	ctx := context.Background()
	rebuild := &v1alpha1.NodeActionSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "rebuild-pair"}, Spec: v1alpha1.NodeActionSetSpec{
		ProviderRef: v1alpha1.ProviderReference{Name: "do"}, Action: "rebuild", Confirm: "rebuild-pair",
		Parameters: &v1alpha1.ActionParameters{Image: "ubuntu-24-04-x64"}, NodeIDs: []string{"2003", "2004"}}}
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "install-worker-1", Labels: map[string]string{"pool": "install-workers"},
		Annotations: map[string]string{v1alpha1.AnnotationVM: "do/2005"}}}
	byLabel := &v1alpha1.NodeActionSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "by-label"}, Spec: v1alpha1.NodeActionSetSpec{
		ProviderRef: v1alpha1.ProviderReference{Name: "do"}, Action: "reboot",
		NodeSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"pool": "install-workers"}}}}
	for _, o := range []client.Object{rebuild, node, byLabel} {
		if err := k8s.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { _ = k8s.Delete(ctx, node) })
	if err := pollUntil(60*time.Second, func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(rebuild), rebuild); err != nil {
			return err
		}
		if c := findCondition(rebuild.Status.Conditions, v1alpha1.ConditionReady); c == nil || c.Status != metav1.ConditionTrue {
			return fmt.Errorf("NodeActionSet rebuild-pair not Ready: %+v", rebuild.Status)
		}
		return nil
	}); err != nil {
		t.Fatalf("%v\nmanager log:\n%s", err, mgr.log())
	}
	for _, id := range []string{"2003", "2004"} {
		if n := cloud.AcceptedActions(id); n != 1 {
			t.Errorf("VM %s: %d rebuilds accepted, want 1", id, n)
		}
	}
	member := &v1alpha1.NodeAction{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "rebuild-pair.2003"}}
	if err := k8s.Delete(ctx, member); err != nil {
		t.Fatal(err)
	}
	if err := pollUntil(30*time.Second, func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(member), member); !apierrors.IsNotFound(err) {
			return fmt.Errorf("member rebuild-pair.2003 is still there (finalizers %v, error %v)", member.Finalizers, err)
		}
		return nil
	}); err != nil {
		t.Fatalf("%v\nmanager log:\n%s", err, mgr.log())
	}
	if err := pollUntil(30*time.Second, func() error {
		return k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "by-label.2005"}, &v1alpha1.NodeAction{})
	}); err != nil {
		t.Fatalf("no member for the Node selected by label: %v\nmanager log:\n%s", err, mgr.log())
	}
}

// checkMetricsAuth: /metrics answers 401 without a token, 403 to a
// ServiceAccount not bound to nodeaction-metrics-reader, and the metrics to
// one that is.
func checkMetricsAuth(t *testing.T, addr string) {
	t.Helper()
	ctx := context.Background()
	ns := newNamespace(t, "monitoring", nil)
	token := func(name string) string {
		sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
		if err := k8s.Create(ctx, sa); err != nil {
			t.Fatal(err)
		}
		tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](600)}}
		if err := k8s.SubResource("token").Create(ctx, sa, tr); err != nil {
			t.Fatalf("TokenRequest for %s: %v", name, err)
		}
		return tr.Status.Token
	}
	scraper, stranger := token("prometheus"), token("stranger")
	if err := k8s.Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "prometheus-nodeaction-metrics"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "nodeaction-metrics-reader"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: "prometheus"}},
	}); err != nil {
		t.Fatal(err)
	}
	httpc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	get := func(token string) (int, string, error) {
		req, _ := http.NewRequest(http.MethodGet, "https://"+addr+"/metrics", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := httpc.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), nil
	}
	var body string
	if err := pollUntil(20*time.Second, func() error {
		code, b, err := get(scraper)
		if err != nil {
			return err
		}
		if code != http.StatusOK {
			return fmt.Errorf("GET /metrics with the bound ServiceAccount's token: %d %s", code, b)
		}
		body = b
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(body, "nodeaction_actions_total") && !strings.Contains(body, "controller_runtime_reconcile_total") {
		t.Errorf("/metrics does not look like the manager's metrics:\n%.500s", body)
	}
	if code, b, err := get(""); err != nil || code != http.StatusUnauthorized {
		t.Errorf("GET /metrics without a token: %d %v %.200s, want 401", code, err, b)
	}
	if code, b, err := get(stranger); err != nil || code != http.StatusForbidden {
		t.Errorf("GET /metrics as a ServiceAccount without nodeaction-metrics-reader: %d %v %.200s, want 403", code, err, b)
	}
}

type managerProcess struct {
	cmd                    *exec.Cmd
	out                    *syncBuffer
	done                   chan struct{}
	metricsAddr, probeAddr string
	waitErr                error
}

func (m *managerProcess) log() string { return m.out.String() }

// stop sends SIGTERM, as the kubelet does, and expects a clean exit.
func (m *managerProcess) stop(t *testing.T) {
	t.Helper()
	if err := m.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-m.done:
	case <-time.After(20 * time.Second):
		_ = m.cmd.Process.Kill()
		<-m.done
		t.Fatalf("the manager did not exit within 20s of SIGTERM\nmanager log:\n%s", m.log())
	}
	if m.waitErr != nil {
		t.Errorf("the manager exited with %v after SIGTERM\nmanager log:\n%s", m.waitErr, m.log())
	}
}

// managerArgs returns the arguments of the manager Deployment among objs.
func managerArgs(t *testing.T, objs []*unstructured.Unstructured) []string {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == "Deployment" && o.GetName() == deploymentName {
			dep := &appsv1.Deployment{}
			fromUnstructured(t, o, dep)
			return dep.Spec.Template.Spec.Containers[0].Args
		}
	}
	t.Fatal("no manager Deployment")
	return nil
}

// startManagerBinary runs the manager with these (the Deployment's)
// arguments, as the manager's ServiceAccount (a kubeconfig impersonating
// it), and waits until /readyz answers.
func startManagerBinary(t *testing.T, bin string, deploymentArgs []string) *managerProcess {
	t.Helper()
	args := append([]string{}, deploymentArgs...)
	m := &managerProcess{out: &syncBuffer{}, done: make(chan struct{}), metricsAddr: freeAddr(t), probeAddr: freeAddr(t)}
	// Out of a pod the manager cannot read its namespace from the
	// ServiceAccount mount, and the ports must not clash on a shared host:
	// later flags win.
	args = append(args, "--leader-election-namespace="+systemNamespace,
		"--metrics-bind-address="+m.metricsAddr, "--health-probe-bind-address="+m.probeAddr)

	m.cmd = exec.Command(bin, args...)
	m.cmd.Env = append(os.Environ(), "KUBECONFIG="+serviceAccountKubeconfig(t))
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
	if err := pollUntil(30*time.Second, func() error {
		select {
		case <-m.done:
			return fmt.Errorf("the manager exited: %v", m.waitErr)
		default:
		}
		for _, path := range []string{"/readyz", "/healthz"} {
			resp, err := httpc.Get("http://" + m.probeAddr + path)
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("%s: %s", path, resp.Status)
			}
		}
		return nil
	}); err != nil {
		t.Fatalf("the manager's probes did not pass: %v\nmanager log:\n%s", err, m.log())
	}
	return m
}

// serviceAccountKubeconfig writes a kubeconfig that acts as the manager's
// ServiceAccount (the admin impersonating it), so only its RBAC applies.
func serviceAccountKubeconfig(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.Load(data)
	if err != nil {
		t.Fatal(err)
	}
	for _, ai := range cfg.AuthInfos {
		ai.Impersonate = managerUser
		ai.ImpersonateGroups = []string{"system:serviceaccounts", "system:serviceaccounts:" + systemNamespace, "system:authenticated"}
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
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

func findCondition(conds []metav1.Condition, typ string) *metav1.Condition {
	for i := range conds {
		if conds[i].Type == typ {
			return &conds[i]
		}
	}
	return nil
}

// auditEvent is the part of an audit.k8s.io/v1 Event the tests read.
type auditEvent struct {
	AuditID          string                     `json:"auditID"`
	Stage            string                     `json:"stage"`
	Verb             string                     `json:"verb"`
	User             struct{ Username string }  `json:"user"`
	ImpersonatedUser *struct{ Username string } `json:"impersonatedUser"`
	RequestReceived  time.Time                  `json:"requestReceivedTimestamp"`
	ObjectRef        struct {
		Resource, Namespace, Name, Subresource, APIGroup string
	} `json:"objectRef"`
	ResponseStatus struct{ Code int } `json:"responseStatus"`
}

// managerAuditEvents returns the completed requests the manager's
// ServiceAccount made since start. It first makes a marker request and waits until the
// audit log holds it, so that everything before it has been written.
func managerAuditEvents(t *testing.T, start time.Time) []auditEvent {
	t.Helper()
	marker := fmt.Sprintf("audit-marker-%d", time.Now().UnixNano())
	_ = k8s.Get(context.Background(), client.ObjectKey{Name: marker}, &corev1.Namespace{})
	var events []auditEvent
	if err := pollUntil(10*time.Second, func() error {
		events = events[:0]
		seen := false
		f, err := os.Open(auditLog)
		if err != nil {
			return err
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<24)
		for sc.Scan() {
			var e auditEvent
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				return fmt.Errorf("audit log line: %v", err)
			}
			if e.ObjectRef.Name == marker {
				seen = true
			}
			if e.Stage == "ResponseComplete" && e.ImpersonatedUser != nil && e.ImpersonatedUser.Username == managerUser && !e.RequestReceived.Before(start) {
				events = append(events, e)
			}
		}
		if !seen {
			return fmt.Errorf("the marker request is not in the audit log yet")
		}
		return sc.Err()
	}); err != nil {
		t.Fatal(err)
	}
	return events
}
