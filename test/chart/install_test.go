package chart

import (
	"context"
	"fmt"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodeaction/nodeaction-operator/api/v1alpha1"
	"github.com/nodeaction/nodeaction-operator/internal/fakecloud"
)

// everySwitch are values that flip every switch of the chart and set
// every value away from its default.
var everySwitch = map[string]any{
	"image":             map[string]any{"repository": "registry.example.com/platform/nodeaction-operator", "tag": "v0.1.0", "pullPolicy": "Always"},
	"replicaCount":      2,
	"resources":         map[string]any{"requests": map[string]any{"cpu": "50m", "memory": "128Mi"}, "limits": map[string]any{"memory": "512Mi"}},
	"manager":           map[string]any{"extraArgs": []any{"--max-concurrent-reconciles=4"}},
	"imagePullSecrets":  []any{map[string]any{"name": "registry"}},
	"nodeSelector":      map[string]any{"kubernetes.io/os": "linux"},
	"tolerations":       []any{map[string]any{"key": "infra", "operator": "Exists", "effect": "NoSchedule"}},
	"affinity":          map[string]any{"nodeAffinity": map[string]any{"preferredDuringSchedulingIgnoredDuringExecution": []any{map[string]any{"weight": 1, "preference": map[string]any{"matchExpressions": []any{map[string]any{"key": "role", "operator": "In", "values": []any{"infra"}}}}}}}},
	"priorityClassName": "system-cluster-critical",
	"crds":              map[string]any{"keep": false},
	"admissionPolicies": map[string]any{"enabled": false},
	"userRoles":         map[string]any{"enabled": false},
	"serviceMonitor":    map[string]any{"enabled": true, "labels": map[string]any{"release": "prometheus"}},
	"prometheusRule":    map[string]any{"enabled": true, "labels": map[string]any{"release": "prometheus"}},
}

// Each rendering, on its own control plane: applied server-side, the
// manager run with the rendered ServiceAccount's permissions, and the
// admission policies checked on or off.
func TestChartInstalls(t *testing.T) {
	for _, tc := range []struct {
		name, namespace string
		values          map[string]any
		check           func(t *testing.T, c *cluster, ns string, objs []*unstructured.Unstructured)
	}{
		{"defaults", "nodeaction-system", nil, checkDefaults},
		{"every switch flipped", "ops", everySwitch, checkEverySwitch},
		{"CRDs installed separately", "ops", map[string]any{"crds": map[string]any{"install": false}}, checkNoCRDs},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs := mustRender(t, tc.namespace, tc.values)
			c := startCluster(t)
			manifest, err := renderChart(tc.namespace, tc.values)
			if err != nil {
				t.Fatal(err)
			}
			prepare(t, c, tc.namespace, objs)
			c.applyServerSide(t, manifest)
			for _, o := range objs {
				got := &unstructured.Unstructured{}
				got.SetGroupVersionKind(o.GroupVersionKind())
				if err := c.k8s.Get(context.Background(), client.ObjectKeyFromObject(o), got); err != nil {
					t.Errorf("%s %s was not created: %v", o.GetKind(), o.GetName(), err)
				}
			}
			tc.check(t, c, tc.namespace, objs)
			runManager(t, c, tc.namespace, objs)
		})
	}
}

// prepare makes what a user makes before `helm install`: the namespace
// (--create-namespace), the Prometheus Operator's CRDs when the rendering
// has its objects, and the CRDs when the chart does not install them.
func prepare(t *testing.T, c *cluster, ns string, objs []*unstructured.Unstructured) {
	t.Helper()
	if err := c.k8s.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{
		"pod-security.kubernetes.io/enforce": "restricted"}}}); err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"ServiceMonitor", "PrometheusRule"} {
		if count(objs, kind) > 0 {
			c.applyServerSide(t, prometheusOperatorCRD(kind))
		}
	}
	if count(objs, "CustomResourceDefinition") == 0 {
		c.kubectl(t, "apply", "--server-side", "-f", repoRoot+"/config/crd/bases")
	}
	if err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		return count(objs, "CustomResourceDefinition") > 0 || c.k8s.List(ctx, &v1alpha1.NodeActionList{}) == nil, nil
	}); err != nil {
		t.Fatalf("the CRDs applied from config/crd are not served: %v", err)
	}
}

// prometheusOperatorCRD is a stand-in for the Prometheus Operator's CRD of
// kind: same group, version and names, any content.
func prometheusOperatorCRD(kind string) string {
	plural := strings.ToLower(kind) + "s"
	return fmt.Sprintf(`apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: %[1]s.monitoring.coreos.com
spec:
  group: monitoring.coreos.com
  names: {kind: %[2]s, listKind: %[2]sList, plural: %[1]s, singular: %[3]s}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
`, plural, kind, strings.ToLower(kind))
}

func count(objs []*unstructured.Unstructured, kind string) int {
	n := 0
	for _, o := range objs {
		if o.GetKind() == kind {
			n++
		}
	}
	return n
}

func find(t *testing.T, objs []*unstructured.Unstructured, kind string, into any) {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == kind {
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, into); err != nil {
				t.Fatal(err)
			}
			return
		}
	}
	t.Fatalf("the rendering has no %s", kind)
}

// The default rendering: the objects of dist/install.yaml but the
// Namespace; the policies refuse a destructive action to a
// nodeaction-operator and let a nodeaction-admin run it.
func checkDefaults(t *testing.T, c *cluster, ns string, objs []*unstructured.Unstructured) {
	fromConfig := configObjects(t)
	for kind, n := range map[string]int{"CustomResourceDefinition": count(fromConfig, "CustomResourceDefinition"),
		"ValidatingAdmissionPolicy": count(fromConfig, "ValidatingAdmissionPolicy"), "ValidatingAdmissionPolicyBinding": count(fromConfig, "ValidatingAdmissionPolicyBinding"),
		"Deployment": 1, "Service": 1, "ServiceAccount": 1, "Namespace": 0, "ServiceMonitor": 0, "PrometheusRule": 0} {
		if got := count(objs, kind); got != n {
			t.Errorf("the default rendering has %d %s, want %d", got, kind, n)
		}
	}
	if len(objs) != len(fromConfig)-1 {
		t.Errorf("the default rendering has %d objects; config/default has %d and a Namespace", len(objs), len(fromConfig)-1)
	}
	for _, role := range []string{"nodeaction-viewer", "nodeaction-operator", "nodeaction-admin"} {
		if err := c.k8s.Get(context.Background(), client.ObjectKey{Name: role}, &rbacv1.ClusterRole{}); err != nil {
			t.Errorf("ClusterRole %s: %v", role, err)
		}
	}
	team := teamNamespace(t, c)
	bind(t, c, team, "olivia", "nodeaction-operator")
	bind(t, c, team, "adam", "nodeaction-admin")
	var err error
	if err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		err = c.impersonate(t, "olivia").Create(ctx, rebuild(team, "by-olivia"), client.DryRunAll)
		return err != nil && strings.Contains(err.Error(), "nodeaction-permissions"), nil
	}); err != nil {
		t.Fatalf("the admission policy did not refuse a rebuild to a nodeaction-operator: %v", err)
	}
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), `user olivia may not run the destructive action rebuild`) {
		t.Errorf("refusal %v: want Forbidden naming the user and the action", err)
	}
	if err := c.impersonate(t, "adam").Create(context.Background(), rebuild(team, "by-adam"), client.DryRunAll); err != nil {
		t.Errorf("a nodeaction-admin was refused a rebuild: %v", err)
	}
}

// Every switch flipped: no policies and no user roles (a user with a plain
// Role runs a rebuild), the ServiceMonitor and PrometheusRule with their
// extra labels, and the Deployment as the values say.
func checkEverySwitch(t *testing.T, c *cluster, ns string, objs []*unstructured.Unstructured) {
	for kind, n := range map[string]int{"ValidatingAdmissionPolicy": 0, "ValidatingAdmissionPolicyBinding": 0, "ServiceMonitor": 1, "PrometheusRule": 1,
		"CustomResourceDefinition": count(configObjects(t), "CustomResourceDefinition")} {
		if got := count(objs, kind); got != n {
			t.Errorf("the rendering has %d %s, want %d", got, kind, n)
		}
	}
	for _, o := range objs {
		if o.GetKind() == "ClusterRole" && slices.Contains([]string{"nodeaction-viewer", "nodeaction-operator", "nodeaction-admin"}, o.GetName()) {
			t.Errorf("userRoles.enabled=false still renders %s", o.GetName())
		}
		if o.GetKind() == "CustomResourceDefinition" && o.GetAnnotations()["helm.sh/resource-policy"] != "" {
			t.Errorf("crds.keep=false still keeps %s", o.GetName())
		}
		if (o.GetKind() == "ServiceMonitor" || o.GetKind() == "PrometheusRule") && (o.GetLabels()["release"] != "prometheus" || o.GetNamespace() != ns) {
			t.Errorf("%s labels %v namespace %q: want release=prometheus in %s", o.GetKind(), o.GetLabels(), o.GetNamespace(), ns)
		}
	}
	dep := &appsv1.Deployment{}
	find(t, objs, "Deployment", dep)
	// Helm merges maps with the defaults: the default CPU limit stays.
	pod := dep.Spec.Template.Spec
	ctr := pod.Containers[0]
	if *dep.Spec.Replicas != 2 || ctr.Image != "registry.example.com/platform/nodeaction-operator:v0.1.0" || ctr.ImagePullPolicy != corev1.PullAlways ||
		ctr.Resources.Requests.Memory().String() != "128Mi" || ctr.Resources.Limits.Memory().String() != "512Mi" || ctr.Resources.Limits.Cpu().String() != "500m" ||
		!slices.Contains(ctr.Args, "--max-concurrent-reconciles=4") || !slices.Contains(ctr.Args, "--leader-elect") ||
		pod.NodeSelector["kubernetes.io/os"] != "linux" || len(pod.Tolerations) != 1 || len(pod.ImagePullSecrets) != 1 ||
		pod.Affinity == nil || pod.PriorityClassName != "system-cluster-critical" || dep.Namespace != ns {
		t.Errorf("Deployment does not follow the values: replicas %d, image %s (%s), resources %+v, args %v, nodeSelector %v, tolerations %v, pull secrets %v, affinity %v, priority class %q, namespace %s",
			*dep.Spec.Replicas, ctr.Image, ctr.ImagePullPolicy, ctr.Resources, ctr.Args, pod.NodeSelector, pod.Tolerations, pod.ImagePullSecrets, pod.Affinity, pod.PriorityClassName, dep.Namespace)
	}
	team := teamNamespace(t, c)
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: team, Name: "run-nodeactions"}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{v1alpha1.GroupVersion.Group}, Resources: []string{"nodeactions"}, Verbs: []string{"create"}}}}
	if err := c.k8s.Create(context.Background(), role); err != nil {
		t.Fatal(err)
	}
	bindRole(t, c, team, "olivia", "Role", role.Name)
	if err := c.impersonate(t, "olivia").Create(context.Background(), rebuild(team, "unchecked"), client.DryRunAll); err != nil {
		t.Errorf("with admissionPolicies.enabled=false a rebuild by a user allowed to create NodeActions was refused: %v", err)
	}
}

func checkNoCRDs(t *testing.T, c *cluster, ns string, objs []*unstructured.Unstructured) {
	if n := count(objs, "CustomResourceDefinition"); n != 0 {
		t.Errorf("crds.install=false renders %d CRDs", n)
	}
}

func teamNamespace(t *testing.T, c *cluster) string {
	t.Helper()
	if err := c.k8s.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team"}}); err != nil {
		t.Fatal(err)
	}
	if err := c.k8s.Create(context.Background(), &v1alpha1.Provider{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "do"}, Spec: v1alpha1.ProviderSpec{
		Type: v1alpha1.ProviderDigitalOcean, CredentialsSecretRef: v1alpha1.SecretReference{Name: "do-credentials"}}}); err != nil {
		t.Fatal(err)
	}
	return "team"
}

func bind(t *testing.T, c *cluster, ns, user, clusterRole string) {
	t.Helper()
	bindRole(t, c, ns, user, "ClusterRole", clusterRole)
}

func bindRole(t *testing.T, c *cluster, ns, user, kind, role string) {
	t.Helper()
	if err := c.k8s.Create(context.Background(), &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: user + "-" + role},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: kind, Name: role},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}},
	}); err != nil {
		t.Fatal(err)
	}
}

func rebuild(ns, name string) *v1alpha1.NodeAction {
	return &v1alpha1.NodeAction{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: v1alpha1.NodeActionSpec{
		ProviderRef: v1alpha1.ProviderReference{Name: "do"}, NodeID: "4242", Action: "rebuild", Confirm: "4242",
		Parameters: &v1alpha1.ActionParameters{Image: "ubuntu-24-04-x64"}}}
}

// runManager runs the manager binary with the rendered Deployment's
// arguments as the rendered ServiceAccount: it drives a NodeAction to
// Succeeded against fakecloud, and the apiserver refused it nothing.
func runManager(t *testing.T, c *cluster, ns string, objs []*unstructured.Unstructured) {
	t.Helper()
	ctx := context.Background()
	dep := &appsv1.Deployment{}
	find(t, objs, "Deployment", dep)
	sa := dep.Spec.Template.Spec.ServiceAccountName
	if count(objs, "ServiceAccount") != 1 || sa == "" {
		t.Fatalf("the rendering has %d ServiceAccounts; the Deployment runs as %q", count(objs, "ServiceAccount"), sa)
	}
	cloud := fakecloud.New(fakecloud.Options{ActionDuration: 300 * time.Millisecond})
	server := httptest.NewServer(cloud.Handler())
	defer server.Close()
	cloud.AddVM(fakecloud.VM{ID: "2001"})

	start := time.Now()
	mgr := c.startManager(t, dep.Spec.Template.Spec.Containers[0].Args, ns, sa)
	work := "chart-run"
	creds := fakecloud.DefaultCredentials()
	na := &v1alpha1.NodeAction{ObjectMeta: metav1.ObjectMeta{Namespace: work, Name: "reboot"}, Spec: v1alpha1.NodeActionSpec{
		ProviderRef: v1alpha1.ProviderReference{Name: "do"}, NodeID: "2001", Action: "reboot"}}
	for _, o := range []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: work}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: work, Name: "do-credentials"}, StringData: map[string]string{"token": creds.DigitalOceanToken}},
		&v1alpha1.Provider{ObjectMeta: metav1.ObjectMeta{Namespace: work, Name: "do"}, Spec: v1alpha1.ProviderSpec{
			Type: v1alpha1.ProviderDigitalOcean, Endpoint: server.URL + "/digitalocean",
			CredentialsSecretRef: v1alpha1.SecretReference{Name: "do-credentials"}, PollInterval: &metav1.Duration{Duration: 200 * time.Millisecond}}},
		na,
	} {
		if err := c.k8s.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	if err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		err := c.k8s.Get(ctx, client.ObjectKeyFromObject(na), na)
		return err == nil && na.Status.Phase == v1alpha1.PhaseSucceeded, nil
	}); err != nil {
		t.Fatalf("the NodeAction did not succeed (phase %q, %+v): %v\nmanager log:\n%s", na.Status.Phase, na.Status.Conditions, err, mgr.log())
	}
	if n := cloud.ActionCalls("2001"); n != 1 {
		t.Errorf("%d provider calls, want 1", n)
	}
	mgr.stop(t)
	refused, total := c.refusedRequests(t, fmt.Sprintf("system:serviceaccount:%s:%s", ns, sa), start)
	if total == 0 {
		t.Fatal("the audit log shows no request of the manager's ServiceAccount: the check sees nothing")
	}
	if len(refused) > 0 {
		t.Errorf("the apiserver refused the manager %d of %d requests: the chart's RBAC lacks something:\n%s", len(refused), total, strings.Join(refused, "\n"))
	}
}

// configObjects is what kustomize makes of config/default.
func configObjects(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	objs, err := decodeObjects(kustomizeBuild(t, "config/default"))
	if err != nil {
		t.Fatal(err)
	}
	return objs
}
