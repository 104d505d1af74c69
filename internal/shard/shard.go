// Package shard splits NodeActions and Providers between managers the way
// Flux shards its controllers: a manager started with --shard=NAME serves
// the objects labelled compute.nodeaction.dev/shard=NAME, and the manager
// started without --shard serves the objects without that label.
// docs/sharding.md says how to run it and why it is built this way.
package shard

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodeaction/nodeaction-operator/api/v1alpha1"
)

// Label is the label whose value names an object's shard.
const Label = v1alpha1.LabelShard

// Shard is the part of the objects one manager serves. The zero value is
// the unsharded manager's part: every object without the label.
type Shard struct {
	name     string
	selector labels.Selector
}

// Parse checks a --shard value. The empty name is the manager without
// --shard. A name must be a valid label value (it is one) and a DNS label
// (it also names the shard's leader election Lease and, in config/, its
// Deployment), so: at most 63 lowercase letters, digits and '-', starting
// and ending with a letter or digit.
func Parse(name string) (Shard, error) {
	if name == "" {
		return Shard{selector: selectorFor("")}, nil
	}
	var problems []string
	problems = append(problems, validation.IsValidLabelValue(name)...)
	if len(problems) == 0 {
		problems = append(problems, validation.IsDNS1123Label(name)...)
	}
	if len(problems) > 0 {
		return Shard{}, fmt.Errorf("--shard=%q is not a usable shard name: %s (a shard name is the value of the %s label and part of the leader election Lease's name: "+
			"lowercase letters, digits and '-', at most 63, starting and ending with a letter or digit)", name, strings.Join(problems, "; "), Label)
	}
	return Shard{name: name, selector: selectorFor(name)}, nil
}

// Name is the shard's name, "" for the unsharded manager.
func (s Shard) Name() string { return s.name }

// String names the shard in logs.
func (s Shard) String() string {
	if s.name == "" {
		return "(unsharded: objects without the " + Label + " label)"
	}
	return s.name
}

// Selector selects the shard's objects: Label=NAME, or !Label for the
// unsharded manager, so that every object has exactly one owner among the
// managers that run.
func (s Shard) Selector() labels.Selector {
	if s.selector != nil {
		return s.selector
	}
	return selectorFor(s.name)
}

func selectorFor(name string) labels.Selector {
	op, values := selection.DoesNotExist, []string(nil)
	if name != "" {
		op, values = selection.Equals, []string{name}
	}
	req, err := labels.NewRequirement(Label, op, values)
	if err != nil {
		// Label is a constant valid key and Parse checked the name.
		panic(err)
	}
	return labels.NewSelector().Add(*req)
}

// Others selects the objects every other shard owns: Label!=NAME (which
// includes unlabelled objects), or Label for the unsharded manager.
func (s Shard) Others() labels.Selector {
	op, values := selection.Exists, []string(nil)
	if s.name != "" {
		op, values = selection.NotEquals, []string{s.name}
	}
	req, err := labels.NewRequirement(Label, op, values)
	if err != nil {
		panic(err) // Label is a constant valid key and Parse checked the name
	}
	return labels.NewSelector().Add(*req)
}

// Owns reports whether an object with these labels is the shard's.
func (s Shard) Owns(objLabels map[string]string) bool {
	return s.Selector().Matches(labels.Set(objLabels))
}

// LeaderElectionID is the Lease name of the shard's managers: the given id
// for the unsharded manager, the id and the shard's name otherwise, so the
// replicas of one shard elect one leader and shards do not wait on each other.
func (s Shard) LeaderElectionID(id string) string {
	if s.name == "" {
		return id
	}
	return id + "-" + s.name
}

// UserAgent adds the shard to the User-Agent sent to providers, so a
// provider's logs tell which shard made a call.
func (s Shard) UserAgent(ua string) string {
	if s.name == "" {
		return ua
	}
	return ua + " (shard " + s.name + ")"
}

// CacheByObject is the manager cache's per-kind configuration for the
// shard: only NodeActions and NodeActionSets are filtered (a set's members
// carry its shard label). Providers stay visible to every
// shard, because a NodeAction may name any Provider of its namespace
// whatever the Provider's shard; the Provider controller acts only on its
// shard's Providers (Owns). Secrets are never cached (they are read
// directly) and Nodes are cluster state every shard needs.
func (s Shard) CacheByObject() map[client.Object]cache.ByObject {
	return map[client.Object]cache.ByObject{
		&v1alpha1.NodeAction{}:    {Label: s.Selector()},
		&v1alpha1.NodeActionSet{}: {Label: s.Selector()},
	}
}
