// Package v1alpha1 contains the API of nodeaction-operator: Provider (which
// cloud API to call, with which credentials) and NodeAction (one action on one
// VM, run once, like a Job).
// +kubebuilder:object:generate=true
// +groupName=compute.nodeaction.dev
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is group version used to register these objects.
	GroupVersion = schema.GroupVersion{Group: "compute.nodeaction.dev", Version: "v1alpha1"}

	// SchemeBuilder is used to add go types to the GroupVersionKind scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the types in this group-version to the given scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
