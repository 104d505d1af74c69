package kubenode

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodeaction/nodeaction-operator/api/v1alpha1"
)

func node(pid string, annotation string) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "worker-3"}, Spec: corev1.NodeSpec{ProviderID: pid}}
	if annotation != "" {
		n.Annotations = map[string]string{v1alpha1.AnnotationVM: annotation}
	}
	return n
}

func TestParseProviderID(t *testing.T) {
	for pid, want := range map[string][2]string{
		"digitalocean://3164494":          {"digitalocean", "3164494"},
		"openstack:///6b2c-uuid":          {"openstack", "6b2c-uuid"},
		"openstack://RegionOne/6b2c-uuid": {"openstack", "6b2c-uuid"},
		"aws:///us-east-1a/i-0abc":        {"", ""},
		"digitalocean://":                 {"", ""},
		"openstack://RegionOne/":          {"", ""},
		"openstack://a/b/c":               {"", ""},
		"kind://docker/kind/kind-worker":  {"", ""},
		"":                                {"", ""},
		"digitalocean://3164494/extra":    {"", ""},
	} {
		scheme, id, ok := ParseProviderID(pid)
		if scheme != want[0] || id != want[1] || ok != (want[0] != "") {
			t.Errorf("%q: got %q %q %v, want %q %q", pid, scheme, id, ok, want[0], want[1])
		}
	}
}

func TestIsAndMismatch(t *testing.T) {
	do := VM{Provider: "do", Type: v1alpha1.ProviderDigitalOcean, NodeID: "3164494"}
	senlin := VM{Provider: "senlin", Type: v1alpha1.ProviderSenlin, NodeID: "5e00-node", ServerID: "6b2c-server"}
	e2e := VM{Provider: "e2e", Type: v1alpha1.ProviderE2E, NodeID: "102340"}
	for _, tc := range []struct {
		name     string
		node     *corev1.Node
		vm       VM
		is       bool
		mismatch bool
	}{
		{"droplet by providerID", node("digitalocean://3164494", ""), do, true, false},
		{"another droplet", node("digitalocean://3164495", ""), do, false, true},
		{"senlin by its server id", node("openstack:///6b2c-server", ""), senlin, true, false},
		{"senlin: the node id is not the server id", node("openstack:///5e00-node", ""), senlin, false, true},
		{"senlin server unknown: no verdict", node("openstack:///6b2c-server", ""), VM{Provider: "senlin", Type: v1alpha1.ProviderSenlin, NodeID: "5e00-node"}, false, false},
		{"e2e by annotation", node("", "e2e/102340"), e2e, true, false},
		{"e2e annotated for another node", node("", "e2e/102341"), e2e, false, true},
		{"annotation for another Provider: not this VM, no verdict", node("", "other/102340"), e2e, false, false},
		{"annotation wins over providerID", node("digitalocean://1", "do/3164494"), do, true, false},
		{"annotation for another Provider, providerID of another droplet", node("digitalocean://555", "do-old/555"), do, false, true},
		{"annotation for another Provider, providerID of this droplet: no verdict", node("digitalocean://3164494", "do-old/3164494"), do, false, false},
		{"no id at all", node("", ""), e2e, false, false},
		{"a scheme of another type says nothing", node("digitalocean://102340", ""), e2e, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Is(tc.node, tc.vm); got != tc.is {
				t.Errorf("Is = %v, want %v", got, tc.is)
			}
			if got := Mismatch(tc.node, tc.vm); (got != "") != tc.mismatch {
				t.Errorf("Mismatch = %q, want a mismatch: %v", got, tc.mismatch)
			}
		})
	}
}

func TestNodeIDOf(t *testing.T) {
	if id, ok := NodeIDOf(node("digitalocean://3164494", ""), "do", v1alpha1.ProviderDigitalOcean); !ok || id != "3164494" {
		t.Errorf("droplet: %q %v", id, ok)
	}
	if id, ok := NodeIDOf(node("", "e2e/102340"), "e2e", v1alpha1.ProviderE2E); !ok || id != "102340" {
		t.Errorf("annotated: %q %v", id, ok)
	}
	if _, ok := NodeIDOf(node("", "other/102340"), "e2e", v1alpha1.ProviderE2E); ok {
		t.Error("an annotation for another Provider was taken")
	}
	if _, ok := NodeIDOf(node("openstack:///6b2c", ""), "senlin", v1alpha1.ProviderSenlin); ok {
		t.Error("a Senlin node id was made up from a server id")
	}
}
