package kubenode

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/nodeaction/nodeaction-operator/api/v1alpha1"
)

// A pod deleted long ago on a Node whose kubelet is gone never finishes
// terminating: the drain of a NotReady Node counts it as gone; on a Ready
// Node it waits for it, as kubectl drain does.
func TestTerminatingPodsOnANotReadyNode(t *testing.T) {
	long := metav1.NewTime(time.Now().Add(-2 * TerminatingGrace))
	recent := metav1.NewTime(time.Now().Add(-time.Second))
	pod := func(name string, deleted metav1.Time) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: name, DeletionTimestamp: &deleted, Finalizers: []string{"example.com/hold"},
				OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web", UID: "1", Controller: ptrTrue()}}},
			Spec: corev1.PodSpec{NodeName: "worker-1"},
		}
	}
	for _, tc := range []struct {
		notReady bool
		want     int
	}{{notReady: false, want: 2}, {notReady: true, want: 1}} {
		client := fake.NewClientset(pod("long-gone", long), pod("just-deleted", recent))
		r, err := Drainer{Client: client, NodeNotReady: tc.notReady}.Evict(context.Background(), "worker-1", v1alpha1.DrainSpec{})
		if err != nil {
			t.Fatal(err)
		}
		if r.Left != tc.want {
			t.Errorf("NodeNotReady=%v: %d pods left (%s), want %d", tc.notReady, r.Left, r, tc.want)
		}
	}
}

func ptrTrue() *bool { b := true; return &b }
