package install

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apiserver/pkg/admission/plugin/policy/validating"
	"k8s.io/apiserver/pkg/cel/openapi/resolver"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"

	"github.com/nodeaction/nodeaction-operator/api/v1alpha1"
)

// Users of the policy test, each bound in its namespace.
const (
	operatorUser = "olivia"  // ClusterRole nodeaction-operator
	adminUser    = "adam"    // ClusterRole nodeaction-admin
	viewerUser   = "vera"    // ClusterRole nodeaction-viewer
	limitedUser  = "lindsey" // may create NodeActions and NodeActionSets, and use only Provider p2
)

func bindClusterRole(t *testing.T, ns, user, role string) {
	t.Helper()
	rb := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: user + "-" + role},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}},
	}
	if err := k8s.Create(context.Background(), rb); err != nil {
		t.Fatal(err)
	}
}

// policyNamespace sets up a namespace with Providers p1 and p2 and the four
// users, and waits until the policy is in force there: a new policy takes a
// moment to reach the apiserver's admission chain.
func policyNamespace(t *testing.T, name string) string {
	t.Helper()
	installed(t)
	ctx := context.Background()
	ns := newNamespace(t, name, nil)
	for _, p := range []string{"p1", "p2"} {
		if err := k8s.Create(ctx, &v1alpha1.Provider{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: p}, Spec: v1alpha1.ProviderSpec{
			Type: v1alpha1.ProviderDigitalOcean, CredentialsSecretRef: v1alpha1.SecretReference{Name: p + "-credentials"}}}); err != nil {
			t.Fatal(err)
		}
	}
	bindClusterRole(t, ns, operatorUser, "nodeaction-operator")
	bindClusterRole(t, ns, adminUser, "nodeaction-admin")
	bindClusterRole(t, ns, viewerUser, "nodeaction-viewer")
	limited := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "p2-only"},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{v1alpha1.GroupVersion.Group}, Resources: []string{"nodeactions", "nodeactionsets"}, Verbs: []string{"get", "list", "watch", "create", "update", "patch"}},
			{APIGroups: []string{v1alpha1.GroupVersion.Group}, Resources: []string{"providers"}, Verbs: []string{"use"}, ResourceNames: []string{"p2"}},
		},
	}
	if err := k8s.Create(ctx, limited); err != nil {
		t.Fatal(err)
	}
	if err := k8s.Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: limitedUser},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: limited.Name},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: limitedUser}},
	}); err != nil {
		t.Fatal(err)
	}

	// In force when a dry-run reinstall by the operator user is refused by
	// the policy (and a dry-run reboot is let through, so RBAC is in place).
	as := impersonate(t, operatorUser)
	if err := pollUntil(30*time.Second, func() error {
		if err := as.Create(ctx, nodeAction(ns, "probe-reboot", "p1", "reboot"), client.DryRunAll); err != nil {
			return fmt.Errorf("dry-run reboot as %s: %w", operatorUser, err)
		}
		err := as.Create(ctx, nodeAction(ns, "probe-reinstall", "p1", "reinstall"), client.DryRunAll)
		if err == nil || !strings.Contains(err.Error(), policyName) {
			return fmt.Errorf("the policy is not in force yet: dry-run reinstall as %s: %v", operatorUser, err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return ns
}

// nodeAction builds a NodeAction with what its action needs to pass the
// CRD's own validation (parameters, confirm for destructive actions).
func nodeAction(ns, name, provider, action string, recoverOp ...string) *v1alpha1.NodeAction {
	na := &v1alpha1.NodeAction{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       v1alpha1.NodeActionSpec{ProviderRef: v1alpha1.ProviderReference{Name: provider}, NodeID: "4242", Action: action},
	}
	switch action {
	case "reinstall":
		na.Spec.Confirm = "4242"
	case "rebuild":
		na.Spec.Parameters = &v1alpha1.ActionParameters{Image: "ubuntu-24-04-x64"}
		na.Spec.Confirm = "4242"
	case "restore":
		na.Spec.Parameters = &v1alpha1.ActionParameters{Image: "12345"}
		na.Spec.Confirm = "4242"
	case "recover":
		na.Spec.Parameters = &v1alpha1.ActionParameters{Recover: &v1alpha1.RecoverParameters{Operation: recoverOp[0]}}
		if !strings.EqualFold(recoverOp[0], "REBOOT") {
			na.Spec.Confirm = "4242"
		}
	}
	return na
}

// Creating a NodeAction needs `use` on its Provider and, for a destructive
// action, the verb named after it; the refusal says which permission is
// missing.
func TestAdmissionPolicyOnCreate(t *testing.T) {
	ns := policyNamespace(t, "policy-create")
	ctx := context.Background()
	cases := []struct {
		name, user, provider, action string
		recoverOp                    string
		refused                      []string // parts of the refusal; nil = allowed
	}{
		{"operator runs a reboot", operatorUser, "p1", "reboot", "", nil},
		{"operator runs a recover REBOOT", operatorUser, "p1", "recover", "reboot", nil},
		{"operator refused reinstall", operatorUser, "p1", "reinstall", "", []string{operatorUser, "destructive action reinstall", `verb "reinstall"`, "nodeactions.compute.nodeaction.dev", "nodeaction-admin"}},
		{"operator refused rebuild", operatorUser, "p1", "rebuild", "", []string{`verb "rebuild"`}},
		{"operator refused restore", operatorUser, "p1", "restore", "", []string{`verb "restore"`}},
		{"operator refused recover REBUILD", operatorUser, "p1", "recover", "REBUILD", []string{"recover REBUILD", `verb "rebuild"`}},
		{"operator refused recover recreate in lower case", operatorUser, "p1", "recover", "recreate", []string{"recover RECREATE", `verb "recreate"`}},
		{"admin runs a reinstall", adminUser, "p1", "reinstall", "", nil},
		{"admin runs a rebuild", adminUser, "p2", "rebuild", "", nil},
		{"admin runs a restore", adminUser, "p1", "restore", "", nil},
		{"admin runs a recover RECREATE", adminUser, "p1", "recover", "RECREATE", nil},
		{"limited user runs on its Provider", limitedUser, "p2", "power_off", "", nil},
		{"limited user refused another Provider", limitedUser, "p1", "power_off", "", []string{limitedUser, "may not use Provider p1", `verb "use"`, "providers.compute.nodeaction.dev"}},
		{"limited user refused a Provider that does not exist", limitedUser, "p3", "reboot", "", []string{"may not use Provider p3"}},
		{"viewer refused by RBAC", viewerUser, "p1", "reboot", "", []string{"forbidden", `cannot create resource "nodeactions"`}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			na := nodeAction(ns, fmt.Sprintf("case-%d", i), tc.provider, tc.action, tc.recoverOp)
			err := impersonate(t, tc.user).Create(ctx, na)
			if tc.refused == nil {
				if err != nil {
					t.Fatalf("%s creating %s on %s was refused: %v", tc.user, tc.action, tc.provider, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("%s created %s on %s; want it refused", tc.user, tc.action, tc.provider)
			}
			t.Logf("refused: %v", err)
			if !apierrors.IsForbidden(err) {
				t.Errorf("refusal %v is not Forbidden (reason %s)", err, apierrors.ReasonForError(err))
			}
			for _, part := range tc.refused {
				if !strings.Contains(err.Error(), part) {
					t.Errorf("refusal %q does not say %q", err.Error(), part)
				}
			}
		})
	}
}

// An update that runs the action again (spec.runID, or the retry
// annotation) needs the same permissions as a create; other updates do not.
func TestAdmissionPolicyOnUpdate(t *testing.T) {
	ns := policyNamespace(t, "policy-update")
	ctx := context.Background()
	admin, operator, limited := impersonate(t, adminUser), impersonate(t, operatorUser), impersonate(t, limitedUser)

	reinstall := nodeAction(ns, "reinstall", "p1", "reinstall")
	if err := admin.Create(ctx, reinstall); err != nil {
		t.Fatal(err)
	}
	reboot := nodeAction(ns, "reboot", "p1", "reboot")
	if err := admin.Create(ctx, reboot); err != nil {
		t.Fatal(err)
	}
	update := func(c client.Client, na *v1alpha1.NodeAction, change func(*v1alpha1.NodeAction)) error {
		cur := &v1alpha1.NodeAction{}
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(na), cur); err != nil {
			t.Fatal(err)
		}
		change(cur)
		return c.Update(ctx, cur)
	}
	setRunID := func(id string) func(*v1alpha1.NodeAction) {
		return func(n *v1alpha1.NodeAction) { n.Spec.RunID = id }
	}
	retry := func(n *v1alpha1.NodeAction) {
		n.Annotations = map[string]string{v1alpha1.AnnotationRetrySubmission: "attempt-1"}
	}

	for _, tc := range []struct {
		name    string
		c       client.Client
		na      *v1alpha1.NodeAction
		change  func(*v1alpha1.NodeAction)
		refused string
	}{
		{"operator refused a new run of a reinstall", operator, reinstall, setRunID("again"), `verb "reinstall"`},
		{"operator refused a retry of a reinstall", operator, reinstall, retry, `verb "reinstall"`},
		{"operator may label a reinstall", operator, reinstall, func(n *v1alpha1.NodeAction) { n.Labels = map[string]string{"team": "sre"} }, ""},
		{"operator may change the TTL of a reinstall", operator, reinstall, func(n *v1alpha1.NodeAction) { n.Spec.TTLSecondsAfterFinished = ptr.To[int32](60) }, ""},
		{"admin runs a reinstall again", admin, reinstall, setRunID("again"), ""},
		{"operator runs a reboot again", operator, reboot, setRunID("again"), ""},
		{"limited user refused a new run on Provider p1", limited, reboot, setRunID("third"), "may not use Provider p1"},
		{"limited user may label a NodeAction on p1", limited, reboot, func(n *v1alpha1.NodeAction) { n.Labels = map[string]string{"seen": "yes"} }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := update(tc.c, tc.na, tc.change)
			switch {
			case tc.refused == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.refused != "" && err == nil:
				t.Fatalf("allowed; want it refused naming %s", tc.refused)
			case tc.refused != "" && !strings.Contains(err.Error(), tc.refused):
				t.Fatalf("refusal %q does not say %s", err.Error(), tc.refused)
			}
		})
	}
}

// Making a Provider use a Secret needs `get` on that Secret, so managing
// Providers (nodeaction-admin) does not let anyone route a Secret they
// cannot read to an endpoint of their choosing.
func TestProviderCredentialsPolicy(t *testing.T) {
	ns := policyNamespace(t, "policy-provider")
	ctx := context.Background()
	readable := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "read-do-credentials"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get"}, ResourceNames: []string{"do-credentials"}}},
	}
	if err := k8s.Create(ctx, readable); err != nil {
		t.Fatal(err)
	}
	if err := k8s.Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: adminUser + "-read-do-credentials"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: readable.Name},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: adminUser}},
	}); err != nil {
		t.Fatal(err)
	}
	admin := impersonate(t, adminUser)
	provider := func(name, secret string) *v1alpha1.Provider {
		return &v1alpha1.Provider{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: v1alpha1.ProviderSpec{
			Type: v1alpha1.ProviderDigitalOcean, Endpoint: "https://api.example.net", CredentialsSecretRef: v1alpha1.SecretReference{Name: secret}}}
	}
	const refusal = "may not read Secret billing-token"
	if err := pollUntil(30*time.Second, func() error {
		err := admin.Create(ctx, provider("probe", "billing-token"), client.DryRunAll)
		if err == nil || !strings.Contains(err.Error(), "nodeaction-provider-credentials") {
			return fmt.Errorf("the policy is not in force yet: %v", err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	err := admin.Create(ctx, provider("stolen", "billing-token"))
	if err == nil || !apierrors.IsForbidden(err) || !containsAll(err.Error(), adminUser, refusal, `verb "get" on secrets named billing-token`) {
		t.Fatalf("a Provider on a Secret its creator cannot read: %v; want Forbidden naming the Secret and the verb", err)
	}
	p := provider("do", "do-credentials")
	if err := admin.Create(ctx, p); err != nil {
		t.Fatalf("a Provider on a Secret its creator may read was refused: %v", err)
	}
	p.Spec.CredentialsSecretRef.Name = "billing-token"
	if err := admin.Update(ctx, p); err == nil || !strings.Contains(err.Error(), refusal) {
		t.Fatalf("repointing a Provider at an unreadable Secret: %v; want it refused", err)
	}
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(p), p); err != nil {
		t.Fatal(err)
	}
	p.Labels = map[string]string{"team": "sre"}
	if err := impersonate(t, operatorUser).Update(ctx, p); err == nil || !strings.Contains(err.Error(), "cannot update resource") {
		t.Fatalf("an operator updating a Provider: %v; want RBAC to refuse it", err)
	}
	if err := admin.Update(ctx, p); err != nil {
		t.Fatalf("a label change on a Provider was refused: %v", err)
	}
}

// The policy's CEL type-checks against the NodeAction schema the apiserver
// serves, as kube-controller-manager's policy status controller would report
// (envtest runs no controller manager, so the test runs the same checker).
// A misspelt field must be caught, or the check proves nothing.
func TestAdmissionPolicyTypeChecks(t *testing.T) {
	installed(t)
	ctx := context.Background()
	dc, err := discovery.NewDiscoveryClientForConfig(restConfig)
	if err != nil {
		t.Fatal(err)
	}
	mapper, err := apiutil.NewDynamicRESTMapper(restConfig, mustHTTPClient(t))
	if err != nil {
		t.Fatal(err)
	}
	checker := &validating.TypeChecker{SchemaResolver: &resolver.ClientDiscoveryResolver{Discovery: dc}, RestMapper: mapper}
	for _, name := range []string{policyName, setPolicyName, "nodeaction-provider-credentials"} {
		vap := &admissionregistrationv1.ValidatingAdmissionPolicy{}
		if err := k8s.Get(ctx, client.ObjectKey{Name: name}, vap); err != nil {
			t.Fatal(err)
		}
		// The checker skips a type whose schema it cannot resolve (the
		// apiserver publishes a new CRD's OpenAPI shortly after it is
		// established), so first wait until it catches a misspelt field.
		broken := vap.DeepCopy()
		broken.Spec.Variables[len(broken.Spec.Variables)-1].Expression = "object.spec.misspelt"
		if err := pollUntil(30*time.Second, func() error {
			if len(typeCheck(checker, broken)) == 0 {
				if r, ok := checker.RestMapper.(meta.ResettableRESTMapper); ok {
					r.Reset()
				}
				return fmt.Errorf("the type checker does not catch a misspelt field in %s: it does not see the schema", name)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if w := typeCheck(checker, vap); len(w) > 0 {
			t.Errorf("the CEL of policy %s does not type-check against the schema: %+v", name, w)
		}
		b := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{}
		if err := k8s.Get(ctx, client.ObjectKey{Name: name}, b); err != nil {
			t.Fatal(err)
		}
		if b.Spec.PolicyName != name || len(b.Spec.ValidationActions) != 1 || b.Spec.ValidationActions[0] != admissionregistrationv1.Deny ||
			b.Spec.MatchResources != nil || b.Spec.ParamRef != nil {
			t.Errorf("binding %s %+v: want Deny for policy %s in every namespace", name, b.Spec, name)
		}
	}
}

// typeCheck checks the validations and, since the checker only reports
// errors in the expressions that use them, each variable too (as a
// validation comparing it with itself).
func typeCheck(c *validating.TypeChecker, vap *admissionregistrationv1.ValidatingAdmissionPolicy) []admissionregistrationv1.ExpressionWarning {
	p := vap.DeepCopy()
	for _, v := range vap.Spec.Variables {
		p.Spec.Validations = append(p.Spec.Validations, admissionregistrationv1.Validation{
			Expression: fmt.Sprintf("(%s) == (%s)", v.Expression, v.Expression),
		})
	}
	return c.Check(p)
}

func mustHTTPClient(t *testing.T) *http.Client {
	t.Helper()
	c, err := rest.HTTPClientFor(restConfig)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
