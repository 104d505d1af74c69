package install

import (
	"context"
	"strings"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// warnings collects the apiserver's warnings (Pod Security admission warns
// about a Deployment whose pod template would be refused).
type warnings struct {
	mu   sync.Mutex
	list []string
}

func (w *warnings) HandleWarningHeaderWithContext(_ context.Context, _ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.list = append(w.list, text)
}

func (w *warnings) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	l := w.list
	w.list = nil
	return l
}

// The manager Deployment passes the restricted Pod Security profile, which
// kube-apiserver's PodSecurity admission enforces in a namespace labelled
// pod-security.kubernetes.io/enforce=restricted: the Deployment is accepted
// without a warning, and a Pod made from its template is accepted
// (server-side dry run: envtest has no controllers to make the pod). The
// same with a privilege-escalating container is refused, so the check is
// real.
func TestManagerPassesRestrictedPodSecurity(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t, "restricted", map[string]string{
		"pod-security.kubernetes.io/enforce":         "restricted",
		"pod-security.kubernetes.io/enforce-version": "latest",
		"pod-security.kubernetes.io/warn":            "restricted",
	})
	w := &warnings{}
	cfg := rest.CopyConfig(restConfig)
	cfg.WarningHandlerWithContext = w
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}

	dep := &appsv1.Deployment{}
	fromUnstructured(t, installObject(t, "Deployment", deploymentName), dep)
	dep.Namespace = ns
	if err := c.Create(ctx, dep); err != nil {
		t.Fatalf("the manager Deployment was refused in a restricted namespace: %v", err)
	}
	if ws := w.take(); len(ws) > 0 {
		t.Errorf("creating the Deployment in a restricted namespace drew warnings: %q", ws)
	}
	podFrom := func(tmpl corev1.PodTemplateSpec, name string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: tmpl.Labels, Annotations: tmpl.Annotations}, Spec: tmpl.Spec}
	}
	if err := c.Create(ctx, podFrom(dep.Spec.Template, "manager"), client.DryRunAll); err != nil {
		t.Fatalf("a pod from the manager's template was refused in a restricted namespace: %v", err)
	}

	// The control: one setting off, and the same namespace refuses it.
	bad := dep.Spec.Template.DeepCopy()
	bad.Spec.Containers[0].SecurityContext.AllowPrivilegeEscalation = ptr.To(true)
	err = c.Create(ctx, podFrom(*bad, "escalating"), client.DryRunAll)
	if err == nil || !strings.Contains(err.Error(), "violates PodSecurity") || !strings.Contains(err.Error(), "allowPrivilegeEscalation") {
		t.Fatalf("a privilege-escalating pod was not refused by PodSecurity: %v", err)
	}
	badDep := dep.DeepCopy()
	badDep.ObjectMeta = metav1.ObjectMeta{Namespace: ns, Name: "escalating"}
	badDep.Spec.Template = *bad
	if err := c.Create(ctx, badDep, client.DryRunAll); err != nil {
		t.Fatal(err)
	}
	if ws := strings.Join(w.take(), "\n"); !strings.Contains(ws, "would violate PodSecurity") {
		t.Fatalf("a privilege-escalating Deployment drew no PodSecurity warning (got %q): the warning check proves nothing", ws)
	}
}
