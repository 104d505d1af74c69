package install

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodeaction/nodeaction-operator/api/v1alpha1"
	"github.com/nodeaction/nodeaction-operator/internal/fakecloud"
)

// docOverlay writes the kustomize overlay that docs/install.md shows under
// "One namespace" (its "# file: NAME" yaml blocks) into a directory, with
// the remote base replaced by this checkout's config/default.
func docOverlay(t *testing.T) string {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join(repoRoot, "docs", "install.md"))
	if err != nil {
		t.Fatal(err)
	}
	section := string(doc)
	if i := strings.Index(section, "\n## One namespace"); i >= 0 {
		section = section[i+1:]
		if j := strings.Index(section, "\n## "); j >= 0 {
			section = section[:j]
		}
	} else {
		t.Fatal(`docs/install.md has no "## One namespace" section`)
	}
	dir := t.TempDir()
	base, err := filepath.Rel(dir, filepath.Join(repoRoot, "config", "default"))
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```yaml\n# file: ([a-z_.]+)\n(.*?)```").FindAllStringSubmatch(section, -1)
	if len(blocks) != 2 {
		t.Fatalf("want 2 `# file:` yaml blocks in the One namespace section of docs/install.md, found %d", len(blocks))
	}
	remote := regexp.MustCompile(`(?m)^- https://github.com/nodeaction/nodeaction-operator//config/default\S*$`)
	for _, b := range blocks {
		content := b[2]
		if b[1] == "kustomization.yaml" {
			if !remote.MatchString(content) {
				t.Fatal("the overlay in docs/install.md does not use config/default from GitHub as its base")
			}
			content = remote.ReplaceAllString(content, "- "+base)
		}
		if err := os.WriteFile(filepath.Join(dir, b[1]), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// The one-namespace install of docs/install.md: the manager, given only a
// RoleBinding in team-a (no ClusterRoleBinding) and --watch-namespace, runs
// NodeActions there without being refused anything, and sends no request
// about any other namespace.
func TestManagerInOneNamespace(t *testing.T) {
	installed(t)
	ctx := context.Background()
	out := kustomizeBuild(t, docOverlay(t))
	objs, err := decodeObjects(out)
	if err != nil {
		t.Fatal(err)
	}
	var roleBinding bool
	for _, o := range objs {
		if o.GetKind() == "ClusterRoleBinding" && o.GetName() == "nodeaction-manager-rolebinding" {
			t.Fatal("the overlay still binds the manager role cluster-wide")
		}
		roleBinding = roleBinding || (o.GetKind() == "RoleBinding" && o.GetNamespace() == "team-a" && o.GetName() == "nodeaction-manager-rolebinding")
	}
	args := managerArgs(t, objs)
	if !roleBinding || !slices.Contains(args, "--watch-namespace=team-a") {
		t.Fatalf("the overlay lacks the RoleBinding in team-a or --watch-namespace=team-a (args %v)", args)
	}

	// Install the overlay over the full install: drop the live
	// ClusterRoleBinding, apply the overlay; put the full install back after.
	newNamespace(t, "team-a", nil)
	other := newNamespace(t, "team-c", nil)
	t.Cleanup(func() {
		if o, e, err := runKubectl("apply", "--server-side", "--field-manager=install-test", "-f", filepath.Join(repoRoot, "dist", "install.yaml")); err != nil {
			t.Errorf("restoring the full install: %v\n%s%s", err, o, e)
		}
		if err := pollUntil(10*time.Second, func() error { return canListNodeActions("", true) }); err != nil {
			t.Errorf("restoring the full install: %v", err)
		}
	})
	crb := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "nodeaction-manager-rolebinding"}}
	if err := k8s.Delete(ctx, crb); err != nil {
		t.Fatal(err)
	}
	manifest := filepath.Join(t.TempDir(), "namespaced.yaml")
	if err := os.WriteFile(manifest, out, 0o644); err != nil {
		t.Fatal(err)
	}
	if o, e, err := runKubectl("apply", "--server-side", "--field-manager=install-test", "-f", manifest); err != nil {
		t.Fatalf("applying the one-namespace overlay: %v\n%s%s", err, o, e)
	}
	// Wait until the apiserver's authorizer no longer lets the manager list
	// NodeActions cluster-wide, and lets it in team-a.
	if err := pollUntil(10*time.Second, func() error {
		for ns, want := range map[string]bool{"": false, "team-a": true, other: false} {
			if err := canListNodeActions(ns, want); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	cloud := fakecloud.New(fakecloud.Options{ActionDuration: 300 * time.Millisecond})
	server := httptest.NewServer(cloud.Handler())
	defer server.Close()
	cloud.AddVM(fakecloud.VM{ID: "3001"})
	cloud.AddVM(fakecloud.VM{ID: "3002"})
	creds := fakecloud.DefaultCredentials()
	for _, ns := range []string{"team-a", other} {
		for _, o := range []client.Object{
			&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "do-credentials"}, StringData: map[string]string{"token": creds.DigitalOceanToken}},
			&v1alpha1.Provider{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "do"}, Spec: v1alpha1.ProviderSpec{
				Type: v1alpha1.ProviderDigitalOcean, Endpoint: server.URL + "/digitalocean",
				CredentialsSecretRef: v1alpha1.SecretReference{Name: "do-credentials"}, PollInterval: &metav1.Duration{Duration: 200 * time.Millisecond}}},
		} {
			if err := k8s.Create(ctx, o); err != nil {
				t.Fatal(err)
			}
		}
	}
	outside := &v1alpha1.NodeAction{ObjectMeta: metav1.ObjectMeta{Namespace: other, Name: "reboot"}, Spec: v1alpha1.NodeActionSpec{
		ProviderRef: v1alpha1.ProviderReference{Name: "do"}, NodeID: "3002", Action: "reboot"}}
	if err := k8s.Create(ctx, outside); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	mgr := startManagerBinary(t, dockerBuiltManager(t), args)
	inside := &v1alpha1.NodeAction{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "reboot"}, Spec: v1alpha1.NodeActionSpec{
		ProviderRef: v1alpha1.ProviderReference{Name: "do"}, NodeID: "3001", Action: "reboot"}}
	if err := k8s.Create(ctx, inside); err != nil {
		t.Fatal(err)
	}
	if err := pollUntil(30*time.Second, func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(inside), inside); err != nil {
			return err
		}
		if inside.Status.Phase != v1alpha1.PhaseSucceeded {
			return fmt.Errorf("NodeAction team-a/reboot is %q: %+v", inside.Status.Phase, inside.Status.Conditions)
		}
		return nil
	}); err != nil {
		t.Fatalf("%v\nmanager log:\n%s", err, mgr.log())
	}
	mgr.stop(t)

	if err := k8s.Get(ctx, client.ObjectKeyFromObject(outside), outside); err != nil {
		t.Fatal(err)
	}
	if outside.Status.Phase != "" || cloud.ActionCalls("3002") != 0 {
		t.Errorf("the manager watching team-a ran a NodeAction in %s: phase %q, %d calls", other, outside.Status.Phase, cloud.ActionCalls("3002"))
	}
	events := managerAuditEvents(t, start)
	if len(events) == 0 {
		t.Fatal("no audited requests from the manager")
	}
	for _, e := range events {
		req := fmt.Sprintf("%s %s (ns %q, name %q): %d", e.Verb, e.ObjectRef.Resource, e.ObjectRef.Namespace, e.ObjectRef.Name, e.ResponseStatus.Code)
		if e.ResponseStatus.Code == 403 {
			t.Errorf("refused: %s", req)
		}
		if e.ObjectRef.Resource != "" && e.ObjectRef.Namespace != "team-a" && e.ObjectRef.Namespace != systemNamespace &&
			// Reviews are not reads: the manager asks whether it may watch Nodes.
			!(e.ObjectRef.Namespace == "" && slices.Contains([]string{"tokenreviews", "subjectaccessreviews", "selfsubjectaccessreviews"}, e.ObjectRef.Resource)) {
			t.Errorf("a manager watching team-a made a request outside it: %s", req)
		}
	}
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(crb), crb); !apierrors.IsNotFound(err) {
		t.Errorf("the ClusterRoleBinding came back during the test: %v", err)
	}
}

// canListNodeActions asks the apiserver whether the manager may list
// NodeActions in ns ("" for all namespaces), and returns an error unless
// the answer is want.
func canListNodeActions(ns string, want bool) error {
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User: managerUser, Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + systemNamespace},
		ResourceAttributes: &authorizationv1.ResourceAttributes{Group: v1alpha1.GroupVersion.Group, Resource: "nodeactions", Verb: "list", Namespace: ns},
	}}
	if err := k8s.Create(context.Background(), sar); err != nil {
		return err
	}
	if sar.Status.Allowed != want {
		return fmt.Errorf("the manager may list NodeActions in %q: %v, want %v", ns, sar.Status.Allowed, want)
	}
	return nil
}
