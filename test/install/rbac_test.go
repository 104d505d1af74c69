package install

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	authorizationv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// wildcards lists the rules of a Role or ClusterRole that grant `*` verbs,
// resources, API groups, resource names or URLs.
func wildcards(t *testing.T, o *unstructured.Unstructured) []string {
	t.Helper()
	if o.GetKind() != "Role" && o.GetKind() != "ClusterRole" {
		return nil
	}
	var role rbacv1.ClusterRole // a Role's rules have the same shape
	fromUnstructured(t, o, &role)
	var found []string
	for i, r := range role.Rules {
		for field, values := range map[string][]string{
			"verbs": r.Verbs, "resources": r.Resources, "apiGroups": r.APIGroups, "resourceNames": r.ResourceNames, "nonResourceURLs": r.NonResourceURLs,
		} {
			for _, v := range values {
				if strings.Contains(v, "*") {
					found = append(found, fmt.Sprintf("%s %s rule %d: %s %q", o.GetKind(), o.GetName(), i, field, v))
				}
			}
		}
	}
	if role.AggregationRule != nil {
		found = append(found, fmt.Sprintf("%s %s has an aggregationRule (it would take on other roles' rules)", o.GetKind(), o.GetName()))
	}
	return found
}

// No Role or ClusterRole anywhere in config/ (generated or written by hand)
// or in dist/install.yaml grants a wildcard.
func TestNoWildcardRBAC(t *testing.T) {
	var files []string
	roles := 0
	err := filepath.WalkDir(filepath.Join(repoRoot, "config"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && (strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) {
			files = append(files, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, filepath.Join(repoRoot, "dist", "install.yaml"))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		objs, err := decodeObjects(data)
		if err != nil {
			continue // kustomize configurations and other non-objects
		}
		for _, o := range objs {
			if o.GetKind() == "Role" || o.GetKind() == "ClusterRole" {
				roles++
			}
			for _, w := range wildcards(t, o) {
				t.Errorf("%s: %s", strings.TrimPrefix(f, repoRoot+"/"), w)
			}
		}
	}
	if roles < 8 {
		t.Fatalf("found only %d Roles/ClusterRoles under config/ and in dist/install.yaml: the walk is missing files", roles)
	}

	// The check itself catches each kind of wildcard.
	for _, rule := range []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"*"}},
		{APIGroups: []string{""}, Resources: []string{"*"}, Verbs: []string{"get"}},
		{APIGroups: []string{"*"}, Resources: []string{"secrets"}, Verbs: []string{"get"}},
		{APIGroups: []string{"compute.nodeaction.dev"}, Resources: []string{"nodeactions/*"}, Verbs: []string{"get"}},
		{NonResourceURLs: []string{"/metrics*"}, Verbs: []string{"get"}},
	} {
		u := &unstructured.Unstructured{}
		u.SetKind("ClusterRole")
		u.SetName("bad")
		u.Object["rules"] = []any{mustToUnstructured(t, &rule)}
		if len(wildcards(t, u)) == 0 {
			t.Errorf("the wildcard check misses %+v", rule)
		}
	}
}

func mustToUnstructured(t *testing.T, v any) map[string]any {
	t.Helper()
	m, err := runtimeToUnstructured(v)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// The manager's ServiceAccount may do what the controllers need and
// nothing more. (TestManagerRunsWithInstalledRBAC shows "what they need" is
// enough by running the manager with it.)
func TestManagerServiceAccountPermissions(t *testing.T) {
	installed(t)
	const (
		group = "compute.nodeaction.dev"
		team  = "team-a" // any namespace with NodeActions
	)
	type access struct {
		group, resource, subresource, verb, namespace, name, url string
	}
	allowed := []access{
		{group: group, resource: "providers", verb: "get", namespace: team},
		{group: group, resource: "providers", verb: "list"},
		{group: group, resource: "providers", verb: "watch"},
		{group: group, resource: "providers", subresource: "status", verb: "update", namespace: team},
		{group: group, resource: "providers", subresource: "status", verb: "patch", namespace: team},
		{group: group, resource: "nodeactions", verb: "get", namespace: team},
		{group: group, resource: "nodeactions", verb: "list"},
		{group: group, resource: "nodeactions", verb: "watch"},
		{group: group, resource: "nodeactions", verb: "delete", namespace: team},
		{group: group, resource: "nodeactions", subresource: "status", verb: "update", namespace: team},
		{group: group, resource: "nodeactions", subresource: "status", verb: "patch", namespace: team},
		// NodeActionSets: the manager creates their members and gives them
		// new runIDs. The policy nodeaction-permissions checks it, as anyone,
		// for `use` and the destructive verbs; nodeaction-set-permissions
		// checked the set's creator for the same.
		{group: group, resource: "nodeactions", verb: "create", namespace: team},
		{group: group, resource: "nodeactions", verb: "update", namespace: team},
		{group: group, resource: "nodeactions", verb: "patch", namespace: team},
		{group: group, resource: "nodeactions", verb: "reinstall", namespace: team},
		{group: group, resource: "nodeactions", verb: "rebuild", namespace: team},
		{group: group, resource: "nodeactions", verb: "restore", namespace: team},
		{group: group, resource: "nodeactions", verb: "recreate", namespace: team},
		{group: group, resource: "providers", verb: "use", namespace: team, name: "do"},
		{group: group, resource: "nodeactionsets", verb: "get", namespace: team},
		{group: group, resource: "nodeactionsets", verb: "list"},
		{group: group, resource: "nodeactionsets", verb: "watch"},
		{group: group, resource: "nodeactionsets", subresource: "status", verb: "patch", namespace: team},
		{group: group, resource: "nodeactionsets", subresource: "finalizers", verb: "update", namespace: team},
		{resource: "secrets", verb: "get", namespace: team, name: "do-credentials"},
		{group: "events.k8s.io", resource: "events", verb: "create", namespace: team},
		{group: "events.k8s.io", resource: "events", verb: "patch", namespace: team},
		{group: "coordination.k8s.io", resource: "leases", verb: "get", namespace: systemNamespace, name: leaderElectionID},
		{group: "coordination.k8s.io", resource: "leases", verb: "create", namespace: systemNamespace},
		{group: "coordination.k8s.io", resource: "leases", verb: "update", namespace: systemNamespace, name: leaderElectionID},
		{resource: "events", verb: "create", namespace: systemNamespace}, // leader election's events
		{group: "authentication.k8s.io", resource: "tokenreviews", verb: "create"},
		{group: "authorization.k8s.io", resource: "subjectaccessreviews", verb: "create"},
		// spec.node: find, cordon and watch Nodes; drain them by eviction.
		// NodeActionSets read the Nodes they select by label to find the VM
		// under each.
		{resource: "nodes", verb: "get", name: "node-1"},
		{resource: "nodes", verb: "list"},
		{resource: "nodes", verb: "watch"},
		{resource: "nodes", verb: "patch", name: "node-1"},
		{resource: "pods", verb: "list"},
		{resource: "pods", subresource: "eviction", verb: "create", namespace: team, name: "web-1"},
		{group: "apps", resource: "daemonsets", verb: "get", namespace: team, name: "agent"},
	}
	denied := []access{
		// Secrets: one GET at a time, never a list or watch (so never cached), never a write.
		{resource: "secrets", verb: "list", namespace: team},
		{resource: "secrets", verb: "list"},
		{resource: "secrets", verb: "watch", namespace: team},
		{resource: "secrets", verb: "create", namespace: team},
		{resource: "secrets", verb: "update", namespace: team, name: "do-credentials"},
		{resource: "secrets", verb: "delete", namespace: team, name: "do-credentials"},
		// NodeActions: never in bulk.
		{group: group, resource: "nodeactions", verb: "deletecollection", namespace: team},
		// NodeActionSets: people create them and own their spec.
		{group: group, resource: "nodeactionsets", verb: "create", namespace: team},
		{group: group, resource: "nodeactionsets", verb: "update", namespace: team},
		{group: group, resource: "nodeactionsets", verb: "patch", namespace: team},
		{group: group, resource: "nodeactionsets", verb: "delete", namespace: team},
		// Providers: read, and write status only.
		{group: group, resource: "providers", verb: "create", namespace: team},
		{group: group, resource: "providers", verb: "update", namespace: team},
		{group: group, resource: "providers", verb: "patch", namespace: team},
		{group: group, resource: "providers", verb: "delete", namespace: team},
		// Leader election is confined to the manager's namespace.
		{group: "coordination.k8s.io", resource: "leases", verb: "get", namespace: team},
		{group: "coordination.k8s.io", resource: "leases", verb: "create", namespace: team},
		{group: "coordination.k8s.io", resource: "leases", verb: "list", namespace: systemNamespace},
		{group: "coordination.k8s.io", resource: "leases", verb: "delete", namespace: systemNamespace, name: leaderElectionID},
		{resource: "events", verb: "create", namespace: team},
		{resource: "configmaps", verb: "get", namespace: systemNamespace},
		// Pods are evicted, never deleted or written; Nodes never created or deleted.
		{resource: "pods", verb: "delete", namespace: team, name: "web-1"},
		{resource: "pods", verb: "update", namespace: team, name: "web-1"},
		{resource: "pods", verb: "create", namespace: team},
		{resource: "nodes", verb: "delete", name: "node-1"},
		{resource: "nodes", verb: "create"},
		{resource: "nodes", verb: "update", name: "node-1"},
		// Nothing else.
		{resource: "configmaps", verb: "list"},
		{resource: "serviceaccounts", subresource: "token", verb: "create", namespace: systemNamespace, name: managerSA},
		{group: "apps", resource: "deployments", verb: "update", namespace: systemNamespace, name: deploymentName},
		{group: "rbac.authorization.k8s.io", resource: "clusterroles", verb: "escalate"},
		{group: "rbac.authorization.k8s.io", resource: "clusterrolebindings", verb: "create"},
		{group: "apiextensions.k8s.io", resource: "customresourcedefinitions", verb: "update", name: "nodeactions.compute.nodeaction.dev"},
		{group: "admissionregistration.k8s.io", resource: "validatingadmissionpolicybindings", verb: "delete", name: policyName},
		{url: "/metrics", verb: "get"},
	}
	check := func(a access) (bool, string) {
		sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User:   managerUser,
			Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + systemNamespace, "system:authenticated"},
		}}
		if a.url != "" {
			sar.Spec.NonResourceAttributes = &authorizationv1.NonResourceAttributes{Path: a.url, Verb: a.verb}
		} else {
			sar.Spec.ResourceAttributes = &authorizationv1.ResourceAttributes{Group: a.group, Resource: a.resource, Subresource: a.subresource,
				Verb: a.verb, Namespace: a.namespace, Name: a.name}
		}
		if err := k8s.Create(context.Background(), sar); err != nil {
			t.Fatal(err)
		}
		return sar.Status.Allowed, sar.Status.Reason
	}
	for _, a := range allowed {
		if ok, reason := check(a); !ok {
			t.Errorf("the manager may not %+v, which the controllers need (%s)", a, reason)
		}
	}
	for _, a := range denied {
		if ok, reason := check(a); ok {
			t.Errorf("the manager may %+v, which it does not need (%s)", a, reason)
		}
	}
}

// The user roles: viewer reads; operator runs non-destructive actions;
// admin adds the destructive verbs and Provider management; none reads
// Secrets; each aggregates into the built-in role of its level.
func TestUserRoles(t *testing.T) {
	roles := map[string]*rbacv1.ClusterRole{}
	for _, name := range []string{"nodeaction-viewer", "nodeaction-operator", "nodeaction-admin"} {
		r := &rbacv1.ClusterRole{}
		fromUnstructured(t, installObject(t, "ClusterRole", name), r)
		roles[name] = r
		for _, rule := range r.Rules {
			if slices.Contains(rule.Resources, "secrets") {
				t.Errorf("%s grants access to Secrets", name)
			}
		}
	}
	grants := func(role, resource, verb string) bool {
		for _, rule := range roles[role].Rules {
			if slices.Contains(rule.Resources, resource) && slices.Contains(rule.Verbs, verb) && len(rule.ResourceNames) == 0 {
				return true
			}
		}
		return false
	}
	destructive := []string{"reinstall", "rebuild", "restore", "recreate"}
	for _, v := range append([]string{"create", "update", "patch", "delete", "use"}, destructive...) {
		if grants("nodeaction-viewer", "nodeactions", v) || grants("nodeaction-viewer", "providers", v) {
			t.Errorf("nodeaction-viewer grants %s", v)
		}
	}
	for _, v := range []string{"get", "list", "watch"} {
		for _, role := range []string{"nodeaction-viewer", "nodeaction-operator", "nodeaction-admin"} {
			if !grants(role, "nodeactions", v) || !grants(role, "providers", v) || !grants(role, "nodeactionsets", v) {
				t.Errorf("%s does not grant %s on nodeactions, nodeactionsets and providers", role, v)
			}
		}
	}
	for _, v := range []string{"create", "update", "patch", "delete"} {
		if grants("nodeaction-viewer", "nodeactionsets", v) {
			t.Errorf("nodeaction-viewer grants %s on nodeactionsets", v)
		}
	}
	for _, v := range []string{"create", "delete"} {
		for _, resource := range []string{"nodeactions", "nodeactionsets"} {
			if !grants("nodeaction-operator", resource, v) || !grants("nodeaction-admin", resource, v) {
				t.Errorf("nodeaction-operator and nodeaction-admin must both grant %s on %s", v, resource)
			}
		}
	}
	if !grants("nodeaction-operator", "providers", "use") || !grants("nodeaction-admin", "providers", "use") {
		t.Error("nodeaction-operator and nodeaction-admin must both grant use on providers")
	}
	for _, v := range destructive {
		if grants("nodeaction-operator", "nodeactions", v) {
			t.Errorf("nodeaction-operator grants the destructive verb %s", v)
		}
		if !grants("nodeaction-admin", "nodeactions", v) {
			t.Errorf("nodeaction-admin lacks the destructive verb %s", v)
		}
	}
	for _, v := range []string{"create", "update", "patch", "delete"} {
		if grants("nodeaction-operator", "providers", v) {
			t.Errorf("nodeaction-operator grants %s on providers", v)
		}
		if !grants("nodeaction-admin", "providers", v) {
			t.Errorf("nodeaction-admin lacks %s on providers", v)
		}
	}
	for role, label := range map[string]string{
		"nodeaction-viewer":   "rbac.authorization.k8s.io/aggregate-to-view",
		"nodeaction-operator": "rbac.authorization.k8s.io/aggregate-to-edit",
		"nodeaction-admin":    "rbac.authorization.k8s.io/aggregate-to-admin",
	} {
		if roles[role].Labels[label] != "true" {
			t.Errorf("%s lacks the label %s=true", role, label)
		}
	}
}
