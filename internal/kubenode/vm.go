// Package kubenode ties Kubernetes Nodes to the provider VMs under them:
// by the spec.providerID a cloud controller manager sets, or by the
// compute.nodeaction.dev/vm annotation where none does.
package kubenode

import (
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/nodeaction/nodeaction-operator/api/v1alpha1"
)

// VM is a provider VM as a NodeAction names it.
type VM struct {
	// Provider is the name of the Provider object (its namespace is the NodeAction's).
	Provider string
	Type     v1alpha1.ProviderType
	// NodeID is the provider's id of the VM (spec.nodeID).
	NodeID string
	// ServerID is the id a cloud controller manager knows the VM by when it
	// differs from NodeID: the Nova server (physical_id) of a Senlin node.
	// Empty when unknown or the same.
	ServerID string
}

// AnnotationValue is what the compute.nodeaction.dev/vm annotation of a
// Node on vm says.
func AnnotationValue(providerName, nodeID string) string { return providerName + "/" + nodeID }

// ParseProviderID reads a Node's spec.providerID in the schemes the
// operator knows: digitalocean://<droplet id>, openstack:///<server id> and
// openstack://<region>/<server id>. ok is false for any other.
func ParseProviderID(pid string) (scheme, id string, ok bool) {
	scheme, rest, found := strings.Cut(pid, "://")
	if !found || rest == "" {
		return "", "", false
	}
	switch scheme {
	case "digitalocean":
		if strings.Contains(rest, "/") {
			return "", "", false
		}
		return scheme, rest, true
	case "openstack":
		_, server, hasSlash := strings.Cut(rest, "/")
		if !hasSlash || server == "" || strings.Contains(server, "/") {
			return "", "", false
		}
		return scheme, server, true
	}
	return "", "", false
}

// schemeOf is the providerID scheme a provider type's VMs carry, "" for
// types with no known cloud controller manager.
func schemeOf(t v1alpha1.ProviderType) string {
	switch t {
	case v1alpha1.ProviderDigitalOcean:
		return "digitalocean"
	case v1alpha1.ProviderSenlin:
		return "openstack"
	}
	return ""
}

// cloudID is the id vm carries in its Node's providerID, "" when unknown.
func (vm VM) cloudID() string {
	switch vm.Type {
	case v1alpha1.ProviderDigitalOcean:
		return vm.NodeID
	case v1alpha1.ProviderSenlin:
		return vm.ServerID
	}
	return ""
}

// Is tells whether node runs on vm: its annotation names vm, or its
// providerID does.
func Is(node *corev1.Node, vm VM) bool {
	if a, ok := node.Annotations[v1alpha1.AnnotationVM]; ok {
		return a == AnnotationValue(vm.Provider, vm.NodeID)
	}
	scheme, id, ok := ParseProviderID(node.Spec.ProviderID)
	return ok && scheme == schemeOf(vm.Type) && vm.cloudID() != "" && id == vm.cloudID()
}

// Mismatch says why node, named by a NodeAction for vm, is on another VM,
// or "" when nothing shows that: its annotation names another VM of the
// same Provider, or (unless the annotation names vm itself) its
// providerID, in vm's scheme, names another VM. An annotation naming
// another Provider says nothing of this one's VMs, so the providerID is
// still checked.
func Mismatch(node *corev1.Node, vm VM) string {
	if a, ok := node.Annotations[v1alpha1.AnnotationVM]; ok {
		provider, id, _ := strings.Cut(a, "/")
		if provider == vm.Provider {
			if id != vm.NodeID {
				return "its annotation " + v1alpha1.AnnotationVM + " says " + a + ", not " + AnnotationValue(vm.Provider, vm.NodeID)
			}
			return ""
		}
	}
	scheme, id, ok := ParseProviderID(node.Spec.ProviderID)
	if ok && scheme == schemeOf(vm.Type) && vm.cloudID() != "" && id != vm.cloudID() {
		return "its spec.providerID " + node.Spec.ProviderID + " names " + scheme + " VM " + id + ", not " + vm.cloudID()
	}
	return ""
}

// NodeIDOf is the VM under node as a Provider of type t named providerName
// knows it, from the annotation or (for digitalocean) the providerID; ok is
// false when the Node does not say.
func NodeIDOf(node *corev1.Node, providerName string, t v1alpha1.ProviderType) (string, bool) {
	if a, ok := node.Annotations[v1alpha1.AnnotationVM]; ok {
		provider, id, _ := strings.Cut(a, "/")
		return id, provider == providerName && id != ""
	}
	if scheme, id, ok := ParseProviderID(node.Spec.ProviderID); ok && t == v1alpha1.ProviderDigitalOcean && scheme == "digitalocean" {
		return id, true
	}
	return "", false
}
