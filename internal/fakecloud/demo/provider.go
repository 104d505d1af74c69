package demo

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodeaction/nodeaction-operator/api/v1alpha1"
	"github.com/nodeaction/nodeaction-operator/internal/fakecloud"
)

// Provider returns a Provider of the given type that reaches its skin of
// the fakecloud served at base (no trailing slash), and the Secret with
// fakecloud's default credentials it names ("<name>-credentials").
func Provider(ns, name string, typ v1alpha1.ProviderType, base string) (*v1alpha1.Provider, *corev1.Secret) {
	creds := fakecloud.DefaultCredentials()
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + "-credentials"}, StringData: map[string]string{}}
	spec := v1alpha1.ProviderSpec{Type: typ, CredentialsSecretRef: v1alpha1.SecretReference{Name: secret.Name}}
	switch typ {
	case v1alpha1.ProviderDigitalOcean:
		spec.Endpoint = base + "/digitalocean"
		secret.StringData["token"] = creds.DigitalOceanToken
	case v1alpha1.ProviderOpenScaler:
		spec.Endpoint = base + "/openscaler"
		secret.StringData["token"] = creds.OpenScalerToken
	case v1alpha1.ProviderCloudsFor:
		spec.Endpoint = base + "/cloudsfor"
		secret.StringData["username"] = creds.CloudsForUser
		secret.StringData["password"] = creds.CloudsForPassword
	case v1alpha1.ProviderE2E:
		spec.Endpoint = base + "/e2e"
		spec.Location = "Delhi"
		secret.StringData["apiKey"] = creds.E2EAPIKey
		secret.StringData["token"] = creds.E2EToken
	case v1alpha1.ProviderSenlin:
		spec.AuthURL = base + "/identity/v3"
		spec.Region = "RegionOne"
		secret.StringData["username"] = creds.KeystoneUser
		secret.StringData["password"] = creds.KeystonePassword
		secret.StringData["projectName"] = creds.KeystoneProject
		secret.StringData["userDomainName"] = "Default"
		secret.StringData["projectDomainName"] = "Default"
	}
	return &v1alpha1.Provider{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: spec}, secret
}
