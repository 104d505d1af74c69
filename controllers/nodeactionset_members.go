package controllers

import (
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/nodeaction/nodeaction-operator/api/v1alpha1"
)

// A member is an ordinary NodeAction the set controller creates, one per
// VM and set for the set's whole life: a new run gives it a new spec.runID.
// Its name is fixed by the set and the VM, so however often the controller
// (or a second manager) tries, the API server holds at most one.

// cleanVMLabel is a VM id used as is in a member's name: already a DNS
// label, and without "--", which only hashed names carry.
var cleanVMLabel = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)

const maxLabel = 63

// memberName is "<set>.<VM>": set names are DNS labels (no dots), so the
// dot tells where the set's name ends. The VM part is the id when it is a
// DNS label already; otherwise it is the id made one (lowercase, other
// characters as '-', cut to fit) followed by "--" and a hash of the exact
// id, so ids that differ only in case or punctuation never share a name.
func memberName(set, nodeID string) string {
	return set + "." + vmLabel(nodeID)
}

func vmLabel(nodeID string) string {
	if len(nodeID) <= maxLabel && cleanVMLabel.MatchString(nodeID) && !strings.Contains(nodeID, "--") {
		return nodeID
	}
	sum := sha256.Sum256([]byte(nodeID))
	hash := hex.EncodeToString(sum[:5])
	b := []byte(strings.ToLower(nodeID))
	for i, c := range b {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			b[i] = '-'
		}
	}
	prefix := strings.Trim(string(b), "-")
	if keep := maxLabel - len(hash) - 2; len(prefix) > keep {
		prefix = strings.TrimRight(prefix[:keep], "-")
	}
	if prefix == "" {
		return "vm--" + hash
	}
	return prefix + "--" + hash
}

// destructive tells whether the set's action needs confirm (the same
// actions as a NodeAction's CEL rule).
func destructive(spec *v1alpha1.NodeActionSetSpec) bool {
	switch spec.Action {
	case "reinstall", "rebuild", "restore":
		return true
	case "recover":
		p := spec.Parameters
		return p != nil && p.Recover != nil && !strings.EqualFold(p.Recover.Operation, "REBOOT")
	}
	return false
}

// memberFor builds the member of set for one VM in run: the set's action
// template, the VM, confirm for destructive actions (a NodeAction's confirm
// is its nodeID; the set's creator confirmed with the set's name), the
// run, a label naming the set, the set as controlling owner, and the
// finalizer that lets the set record the member's deletion.
func memberFor(set *v1alpha1.NodeActionSet, t setTarget, run string) *v1alpha1.NodeAction {
	spec := set.Spec
	na := &v1alpha1.NodeAction{
		ObjectMeta: metav1.ObjectMeta{
			Namespace:  set.Namespace,
			Name:       memberName(set.Name, t.nodeID),
			Labels:     map[string]string{v1alpha1.LabelNodeActionSet: set.Name},
			Finalizers: []string{v1alpha1.FinalizerNodeActionSet},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: v1alpha1.GroupVersion.String(), Kind: "NodeActionSet", Name: set.Name, UID: set.UID,
				Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true),
			}},
		},
		Spec: v1alpha1.NodeActionSpec{
			ProviderRef:           spec.ProviderRef,
			NodeID:                t.nodeID,
			Action:                spec.Action,
			Parameters:            spec.Parameters.DeepCopy(),
			Escalation:            spec.Escalation.DeepCopy(),
			ActiveDeadlineSeconds: copyPtr(spec.ActiveDeadlineSeconds),
			BackoffLimit:          copyPtr(spec.BackoffLimit),
			Node:                  spec.Node.DeepCopy(),
			RunID:                 run,
		},
	}
	if t.node != "" {
		if na.Spec.Node == nil {
			na.Spec.Node = &v1alpha1.NodeSpec{}
		}
		na.Spec.Node.Name = t.node
	}
	if destructive(&spec) {
		na.Spec.Confirm = t.nodeID
	}
	// A member belongs to its set's shard (docs/sharding.md): the manager
	// that rolls the set out is the one that sees and runs its members.
	if v, ok := set.Labels[v1alpha1.LabelShard]; ok {
		na.Labels[v1alpha1.LabelShard] = v
	}
	return na
}

func copyPtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

// controlledBy tells whether set is na's controlling owner.
func controlledBy(na *v1alpha1.NodeAction, set *v1alpha1.NodeActionSet) bool {
	ref := metav1.GetControllerOfNoCopy(na)
	return ref != nil && ref.UID == set.UID
}

// finishedRun tells whether na's current run (its spec.runID) has ended.
func finishedRun(na *v1alpha1.NodeAction) bool {
	return na.Status.Phase.Finished() && na.Status.RunID == na.Spec.RunID
}

func hasFinalizer(na *v1alpha1.NodeAction) bool {
	for _, f := range na.Finalizers {
		if f == v1alpha1.FinalizerNodeActionSet {
			return true
		}
	}
	return false
}
