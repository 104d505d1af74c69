package drivercache_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/nodeaction/nodeaction-operator/api/v1alpha1"
	"github.com/nodeaction/nodeaction-operator/internal/drivercache"
	"github.com/nodeaction/nodeaction-operator/internal/provider"
)

// account answers DigitalOcean's GET /v2/account and remembers the bearer
// tokens it was sent, so a test can see which credentials a driver uses.
type account struct {
	mu     sync.Mutex
	tokens []string
}

func (a *account) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	a.tokens = append(a.tokens, strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
	a.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"account":{"uuid":"u","email":"sre@example.com","status":"active"}}`))
}

func (a *account) last() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.tokens) == 0 {
		return ""
	}
	return a.tokens[len(a.tokens)-1]
}

type fixture struct {
	client client.Client
	cache  *drivercache.Cache
	prov   *v1alpha1.Provider
	api    *account
}

func newFixture(t *testing.T, maxAge time.Duration, withSecret bool) *fixture {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	api := &account{}
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)

	prov := &v1alpha1.Provider{
		ObjectMeta: metav1.ObjectMeta{Namespace: "fleet", Name: "do", UID: types.UID("uid-1"), Generation: 1},
		Spec: v1alpha1.ProviderSpec{
			Type: v1alpha1.ProviderDigitalOcean, Endpoint: srv.URL,
			CredentialsSecretRef: v1alpha1.SecretReference{Name: "do-token"},
		},
	}
	b := fake.NewClientBuilder().WithScheme(scheme)
	if withSecret {
		b = b.WithObjects(&corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: "fleet", Name: "do-token"},
			Data:       map[string][]byte{"token": []byte("token-one")},
		})
	}
	c := b.Build()
	return &fixture{client: c, cache: drivercache.New(c, drivercache.Options{MaxAge: maxAge}), prov: prov, api: api}
}

// probe builds (or reuses) the driver and sends one request with it; it
// returns the driver and the token the provider saw.
func (f *fixture) probe(t *testing.T) (provider.Driver, string) {
	t.Helper()
	d, err := f.cache.Driver(context.Background(), f.prov)
	if err != nil {
		t.Fatalf("Driver: %v", err)
	}
	if err := d.Probe(context.Background()); err != nil {
		t.Fatalf("Probe: %v", err)
	}
	return d, f.api.last()
}

func (f *fixture) rotate(t *testing.T, token string) {
	t.Helper()
	s := &corev1.Secret{}
	if err := f.client.Get(context.Background(), types.NamespacedName{Namespace: "fleet", Name: "do-token"}, s); err != nil {
		t.Fatal(err)
	}
	s.Data["token"] = []byte(token)
	if err := f.client.Update(context.Background(), s); err != nil {
		t.Fatal(err)
	}
}

func TestMissingSecretIsATerminalErrorNamingIt(t *testing.T) {
	f := newFixture(t, time.Hour, false)
	_, err := f.cache.Driver(context.Background(), f.prov)
	pe := provider.AsError(err)
	if pe == nil || pe.Kind != provider.Terminal || pe.Class != provider.SecretNotFound {
		t.Fatalf("want terminal %s, got %#v", provider.SecretNotFound, err)
	}
	if !strings.Contains(pe.Message, `"do-token"`) || !strings.Contains(pe.Message, `"fleet"`) {
		t.Errorf("the message should name the Secret and its namespace: %q", pe.Message)
	}
}

func TestDriverIsKeptWhileSpecAndSecretAreUnchanged(t *testing.T) {
	f := newFixture(t, time.Hour, true)
	d1, tok := f.probe(t)
	if tok != "token-one" {
		t.Fatalf("provider saw token %q, want token-one", tok)
	}
	d2, _ := f.probe(t)
	if d1 != d2 {
		t.Error("a second use with the same generation rebuilt the driver")
	}
}

func TestRotatedSecretIsUsedAfterMaxAge(t *testing.T) {
	f := newFixture(t, 500*time.Millisecond, true)
	d1, _ := f.probe(t)

	// Within MaxAge the Secret is not read again.
	f.rotate(t, "token-two")
	if d, tok := f.probe(t); d != d1 || tok != "token-one" {
		t.Fatalf("within MaxAge: same driver %v, token %q; want the old driver and token-one", d == d1, tok)
	}
	time.Sleep(550 * time.Millisecond)
	d2, tok := f.probe(t)
	if tok != "token-two" {
		t.Fatalf("after MaxAge the provider saw %q, want the rotated token-two", tok)
	}
	if d2 == d1 {
		t.Error("the driver was not rebuilt for the rotated Secret")
	}

	// Past MaxAge again but nothing changed: the driver (and any token it
	// holds, such as a Keystone token) is kept.
	time.Sleep(550 * time.Millisecond)
	if d3, _ := f.probe(t); d3 != d2 {
		t.Error("an unchanged Secret rebuilt the driver after MaxAge")
	}
}

func TestCredentialsChangedAndInvalidate(t *testing.T) {
	f := newFixture(t, time.Hour, true)
	ctx := context.Background()
	if f.cache.CredentialsChanged(ctx, f.prov) {
		t.Fatal("CredentialsChanged before any driver was built")
	}
	d1, _ := f.probe(t)
	if f.cache.CredentialsChanged(ctx, f.prov) {
		t.Fatal("CredentialsChanged with the Secret untouched")
	}
	f.rotate(t, "token-two")
	if !f.cache.CredentialsChanged(ctx, f.prov) {
		t.Fatal("CredentialsChanged missed a Secret update")
	}
	f.cache.Invalidate(f.prov)
	d2, tok := f.probe(t)
	if d2 == d1 || tok != "token-two" {
		t.Fatalf("after Invalidate: rebuilt %v, token %q; want a new driver with token-two", d2 != d1, tok)
	}
}

func TestSpecChangeRebuildsButKeepsTheRequestBudget(t *testing.T) {
	f := newFixture(t, time.Hour, true)
	d1, _ := f.probe(t)
	g1 := f.cache.Gate(f.prov, 250)

	f.prov.Generation = 2
	f.prov.Spec.RateLimit = &v1alpha1.RateLimit{RequestsPerMinute: 60}
	d2, _ := f.probe(t)
	if d2 == d1 {
		t.Error("a new generation reused the old driver")
	}
	if g2 := f.cache.Gate(f.prov, 250); g2 != g1 {
		t.Error("a rebuilt driver got a new request budget; it must outlive rebuilds")
	}

	// A deleted and re-created Provider (new UID) starts afresh.
	f.cache.Forget(types.NamespacedName{Namespace: "fleet", Name: "do"}, f.prov.UID)
	f.prov.UID = "uid-2"
	if g3 := f.cache.Gate(f.prov, 250); g3 == g1 {
		t.Error("a forgotten Provider kept its request budget")
	}
}
