package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ProviderType names a cloud API the operator can call.
// +kubebuilder:validation:Enum=digitalocean;senlin;e2e;cloudsfor;openscaler
type ProviderType string

const (
	ProviderDigitalOcean ProviderType = "digitalocean"
	ProviderSenlin       ProviderType = "senlin"
	ProviderE2E          ProviderType = "e2e"
	ProviderCloudsFor    ProviderType = "cloudsfor"
	ProviderOpenScaler   ProviderType = "openscaler"
)

// SecretReference names a Secret in the Provider's own namespace.
type SecretReference struct {
	// name of the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// RateLimit is a client-side request budget shared by every call the operator
// makes to one Provider (submissions and polls alike).
type RateLimit struct {
	// requestsPerMinute the operator allows itself against this Provider.
	// Defaults per type stay under the provider's published budget
	// (digitalocean: 243, others: 120). Where the provider reports its own
	// count (DigitalOcean), requests are also held to that.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100000
	// +optional
	RequestsPerMinute int32 `json:"requestsPerMinute,omitempty"`
	// burst is how many requests may go out at once before the rate applies.
	// Defaults to 10.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10000
	// +optional
	Burst int32 `json:"burst,omitempty"`
}

// ProviderSpec says which API to call and with what credentials.
// +kubebuilder:validation:XValidation:rule="self.type != 'senlin' || has(self.authURL)",message="spec.authURL (the Keystone identity URL, e.g. https://keystone.example.com/v3) is required for type senlin",fieldPath=".authURL"
// +kubebuilder:validation:XValidation:rule="self.type != 'e2e' || has(self.location)",message="spec.location (the E2E Networks region, e.g. Delhi) is required for type e2e",fieldPath=".location"
// +kubebuilder:validation:XValidation:rule="self.type != 'cloudsfor' || has(self.endpoint)",message="spec.endpoint (the CloudsFor API base URL, e.g. https://cloudsfor.com) is required for type cloudsfor: it has no single public endpoint",fieldPath=".endpoint"
// +kubebuilder:validation:XValidation:rule="!has(self.authURL) || self.type == 'senlin'",message="spec.authURL is only used by type senlin",fieldPath=".authURL"
// +kubebuilder:validation:XValidation:rule="!has(self.location) || self.type == 'e2e'",message="spec.location is only used by type e2e",fieldPath=".location"
type ProviderSpec struct {
	// type of the provider API: digitalocean, senlin, e2e, cloudsfor or
	// openscaler. It cannot be changed: a NodeAction whose outcome is
	// unknown is looked up on its Provider, and asking another cloud could
	// only answer "not sent" and send the action again.
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec.type cannot be changed: create a new Provider for another cloud API and point NodeActions at it"
	Type ProviderType `json:"type"`

	// endpoint is the API base URL. Defaults: digitalocean
	// https://api.digitalocean.com, e2e https://api.e2enetworks.com/myaccount,
	// openscaler https://api.alpha.openscaler.net; senlin uses the Keystone
	// catalog (service type clustering) unless this is set. Plain http is only
	// allowed to a loopback address.
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="self.startsWith('https://') || self.startsWith('http://')",message="spec.endpoint must be an http(s) URL"
	// +optional
	Endpoint string `json:"endpoint,omitempty"`

	// authURL is the Keystone identity endpoint (senlin only), e.g.
	// https://keystone.example.com/v3.
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="self.startsWith('https://') || self.startsWith('http://')",message="spec.authURL must be an http(s) URL"
	// +optional
	AuthURL string `json:"authURL,omitempty"`

	// credentialsSecretRef names a Secret in this namespace holding the
	// credentials. Keys by type: digitalocean and openscaler `token`;
	// cloudsfor `username` and `password`; e2e `apiKey` and `token`; senlin
	// either `token`, or `username`, `password`, `userDomainName` and
	// `projectName` (or `projectID`) with `projectDomainName`, or
	// `applicationCredentialID` and `applicationCredentialSecret`.
	CredentialsSecretRef SecretReference `json:"credentialsSecretRef"`

	// region selects the Keystone catalog region (senlin).
	// +kubebuilder:validation:MaxLength=255
	// +optional
	Region string `json:"region,omitempty"`

	// location is the E2E Networks region sent as the `location` query
	// parameter (e2e only), e.g. Delhi or Mumbai.
	// +kubebuilder:validation:MaxLength=255
	// +optional
	Location string `json:"location,omitempty"`

	// project scopes requests: the E2E `project_id` query parameter (the
	// account's default project when empty).
	// +kubebuilder:validation:MaxLength=255
	// +optional
	Project string `json:"project,omitempty"`

	// rateLimit is the client-side request budget for this Provider.
	// +optional
	RateLimit *RateLimit `json:"rateLimit,omitempty"`

	// pollInterval is the first interval between status polls of a running
	// action; later polls back off towards 30s. Once actions of the same
	// kind have succeeded, the first poll comes shortly before they
	// usually end and the next ones every pollInterval. While two or more
	// actions on the Provider run, their polls share one read of the
	// provider's list (account actions, project actions, nodes or VMs),
	// at most one every 5s, or every pollInterval while an action's state
	// is brief. Defaults to 2s; at least 100ms.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern="^([0-9]+(\\.[0-9]+)?(ms|s|m))+$"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('100ms')",message="spec.pollInterval must be at least 100ms"
	// +optional
	PollInterval *metav1.Duration `json:"pollInterval,omitempty"`

	// caBundle is a PEM bundle of certificate authorities to trust for this
	// endpoint, in addition to the system roots. TLS verification is always on.
	// +optional
	CABundle []byte `json:"caBundle,omitempty"`
}

// ProviderStatus is the observed state of a Provider.
type ProviderStatus struct {
	// observedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// endpoint is the API base URL in use (for senlin, the one found in the
	// Keystone catalog).
	// +optional
	Endpoint string `json:"endpoint,omitempty"`

	// supportedActions lists the action names NodeActions may use with this
	// Provider: the provider's own names and the portable ones it maps.
	// +optional
	SupportedActions []string `json:"supportedActions,omitempty"`

	// lastProbeTime is when the credentials were last checked.
	// +optional
	LastProbeTime *metav1.Time `json:"lastProbeTime,omitempty"`

	// conditions: Ready is True after an authenticated probe succeeded.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// Provider is a cloud API account the operator can act on: its type, its
// endpoint and the Secret that holds its credentials.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=nodeaction-operator,shortName=nap
// +kubebuilder:printcolumn:name="Type",type=string,JSONPath=`.spec.type`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Endpoint",type=string,JSONPath=`.status.endpoint`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Provider struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   ProviderSpec   `json:"spec,omitempty"`
	Status ProviderStatus `json:"status,omitempty"`
}

// GetConditions returns the status conditions.
func (p *Provider) GetConditions() []metav1.Condition { return p.Status.Conditions }

// +kubebuilder:object:root=true

// ProviderList contains a list of Provider.
type ProviderList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Provider `json:"items"`
}

func init() {
	SchemeBuilder.Register(&Provider{}, &ProviderList{})
}
