package controllers

import (
	"strings"
	"testing"
	"time"

	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodeaction/nodeaction-operator/api/v1alpha1"
)

func providerReady(t *testing.T, p *v1alpha1.Provider, status metav1.ConditionStatus, reason string) *v1alpha1.Provider {
	t.Helper()
	return waitFor(t, p, 20*time.Second, "Ready="+string(status)+" "+reason, func(p *v1alpha1.Provider) bool {
		c := condition(p.Status.Conditions, v1alpha1.ConditionReady)
		return c != nil && c.Status == status && c.Reason == reason && p.Status.ObservedGeneration == p.Generation
	})
}

func TestProviderReadyAfterProbe(t *testing.T) {
	ns := newNamespace(t)
	startManagerIn(t, ns)
	p := createProvider(t, ns, "do", v1alpha1.ProviderDigitalOcean)
	p = providerReady(t, p, metav1.ConditionTrue, v1alpha1.ReasonProbeSucceeded)
	if !contains(p.Status.SupportedActions, "reboot") || !contains(p.Status.SupportedActions, "rebuild") {
		t.Errorf("supportedActions %v", p.Status.SupportedActions)
	}
	if p.Status.Endpoint != cloudURL+"/digitalocean" || p.Status.LastProbeTime == nil {
		t.Errorf("status %+v", p.Status)
	}
	if condition(p.Status.Conditions, v1alpha1.ConditionStalled) != nil {
		t.Error("a ready Provider is Stalled")
	}
}

func TestProviderNotReadyWhenTokenRejected(t *testing.T) {
	ns := newNamespace(t)
	startManagerIn(t, ns)
	p, s := providerFor(t, ns, "do", v1alpha1.ProviderDigitalOcean)
	s.StringData["token"] = "revoked-token-value"
	create(t, s)
	create(t, p)
	p = providerReady(t, p, metav1.ConditionFalse, v1alpha1.ReasonAuthFailed)
	c := condition(p.Status.Conditions, v1alpha1.ConditionReady)
	if !strings.Contains(c.Message, "Unable to authenticate you") || !strings.Contains(c.Message, "401") {
		t.Errorf("Ready message %q should carry DigitalOcean's words and the status", c.Message)
	}
	if strings.Contains(c.Message, "revoked-token-value") {
		t.Fatal("the token leaked into the condition")
	}
	if st := condition(p.Status.Conditions, v1alpha1.ConditionStalled); st == nil || st.Status != metav1.ConditionTrue {
		t.Errorf("rejected credentials should be Stalled until fixed, got %+v", st)
	}
	// Events tell the same story without the secret.
	events := &eventsv1.EventList{}
	waitForList(t, events, ns, func() bool { return len(events.Items) > 0 })
	for _, e := range events.Items {
		if strings.Contains(e.Note, "revoked-token-value") {
			t.Fatalf("event %s leaks the token", e.Name)
		}
		if e.Reason != v1alpha1.ReasonAuthFailed || e.Regarding.Name != "do" {
			t.Errorf("unexpected event %s %s on %s", e.Reason, e.Note, e.Regarding.Name)
		}
	}
}

func TestProviderNotReadyWithoutSecret(t *testing.T) {
	ns := newNamespace(t)
	startManagerIn(t, ns)
	p, _ := providerFor(t, ns, "do", v1alpha1.ProviderDigitalOcean)
	create(t, p)
	p = providerReady(t, p, metav1.ConditionFalse, v1alpha1.ReasonSecretNotFound)
	if c := condition(p.Status.Conditions, v1alpha1.ConditionReady); !strings.Contains(c.Message, "do-credentials") {
		t.Errorf("message %q should name the Secret", c.Message)
	}
}

func TestProviderNotReadyWithoutTokenKey(t *testing.T) {
	ns := newNamespace(t)
	startManagerIn(t, ns)
	p, s := providerFor(t, ns, "do", v1alpha1.ProviderDigitalOcean)
	s.StringData = map[string]string{"tokne": "x"}
	create(t, s)
	create(t, p)
	p = providerReady(t, p, metav1.ConditionFalse, v1alpha1.ReasonCredentialsError)
	if c := condition(p.Status.Conditions, v1alpha1.ConditionReady); !strings.Contains(c.Message, `"token"`) {
		t.Errorf("message %q should name the missing key", c.Message)
	}
}

func TestProviderRefusesPlainHTTPToARemoteHost(t *testing.T) {
	ns := newNamespace(t)
	startManagerIn(t, ns)
	p, s := providerFor(t, ns, "do", v1alpha1.ProviderDigitalOcean)
	p.Spec.Endpoint = "http://api.example.com"
	create(t, s)
	create(t, p)
	p = providerReady(t, p, metav1.ConditionFalse, v1alpha1.ReasonInvalidConfig)
	if c := condition(p.Status.Conditions, v1alpha1.ConditionReady); !strings.Contains(c.Message, "plain http") {
		t.Errorf("message %q", c.Message)
	}
}
