package senlin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nodeaction/nodeaction-operator/api/v1alpha1"
	"github.com/nodeaction/nodeaction-operator/internal/fakecloud"
	"github.com/nodeaction/nodeaction-operator/internal/provider"
	"github.com/nodeaction/nodeaction-operator/internal/provider/drivertest"
	"github.com/nodeaction/nodeaction-operator/internal/provider/senlin"
)

func ptr[T any](v T) *T { return &v }

func nodeID(n int) string { return fmt.Sprintf("5e%06x-0c1d-4e2f-8a3b-%012x", n, n) }

func passwordCreds(creds fakecloud.Credentials) map[string][]byte {
	return map[string][]byte{
		"username":    []byte(creds.KeystoneUser),
		"password":    []byte(creds.KeystonePassword),
		"projectName": []byte(creds.KeystoneProject),
	}
}

func configure(base string, creds fakecloud.Credentials) provider.Config {
	return provider.Config{AuthURL: base + "/identity/v3", Region: fakecloud.KeystoneRegion, Credentials: passwordCreds(creds)}
}

func recoverParams(op, typ string) v1alpha1.ActionParameters {
	return v1alpha1.ActionParameters{Recover: &v1alpha1.RecoverParameters{Operation: op, RebootType: typ}}
}

func TestConformance(t *testing.T) {
	reboot := provider.Request{Action: "recover", Parameters: recoverParams("REBOOT", "SOFT")}
	drivertest.Run(t, drivertest.Harness{
		Type:      v1alpha1.ProviderSenlin,
		New:       senlin.New,
		Configure: configure,
		BadCredentials: func(good map[string][]byte) map[string][]byte {
			bad := map[string][]byte{}
			for k, v := range good {
				bad[k] = v
			}
			bad["password"] = []byte("not-the-password")
			return bad
		},
		NodeID: nodeID,
		Actions: map[string]drivertest.ActionCase{
			"check": {Check: func(t *testing.T, vm fakecloud.VM) {
				if vm.Boots != 0 || vm.Reinstalls != 0 {
					t.Errorf("check changed the VM: boots %d reinstalls %d", vm.Boots, vm.Reinstalls)
				}
			}},
			"recover": {Parameters: recoverParams("REBUILD", ""), Check: func(t *testing.T, vm fakecloud.VM) {
				if vm.Reinstalls != 1 {
					t.Errorf("reinstalls = %d, want 1", vm.Reinstalls)
				}
			}},
		},
		Portable: map[string]string{"reboot": "recover", "power_cycle": "recover"},

		MissingParameter: provider.Request{Action: "recover"},
		// The project's policy forbids actions on a locked node.
		Rejected:        reboot,
		RejectedPrepare: func(vm *fakecloud.VM) { vm.Locked = true },
		RejectedMessage: "You are not authorized to complete this operation.",
		FailingAction:   reboot,
		LookupAction:    reboot,
		SweepAction:     "recover",
	})
}

// env is a fakecloud with a recorder in front, and a driver.
type env struct {
	cloud  *fakecloud.Cloud
	server *httptest.Server
	base   string

	mu   sync.Mutex
	seen []seenRequest
}

type seenRequest struct {
	method, path, version string
	body                  []byte
}

func newEnv(t *testing.T, opts fakecloud.Options) *env {
	t.Helper()
	e := &env{cloud: fakecloud.New(opts)}
	h := e.cloud.Handler()
	e.server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		e.mu.Lock()
		e.seen = append(e.seen, seenRequest{r.Method, r.URL.Path, r.Header.Get("OpenStack-API-Version"), body})
		e.mu.Unlock()
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(e.server.Close)
	e.base = e.server.URL
	return e
}

func (e *env) driver(t *testing.T, cfg provider.Config) *senlin.Driver {
	t.Helper()
	client, err := provider.NewHTTPClient(provider.ClientOptions{Gate: provider.NewGate(100000, 1000), Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Type, cfg.HTTPClient = v1alpha1.ProviderSenlin, client
	d, err := senlin.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return d.(*senlin.Driver)
}

// posts returns the action requests Senlin received.
func (e *env) posts() []seenRequest {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []seenRequest
	for _, s := range e.seen {
		if s.method == http.MethodPost && strings.HasPrefix(s.path, "/senlin/") {
			out = append(out, s)
		}
	}
	return out
}

func (e *env) count(skin, method, pathPart string) int {
	return e.cloud.CountRequests(func(r fakecloud.Request) bool {
		return r.Skin == skin && r.Method == method && strings.Contains(r.Path, pathPart)
	})
}

func expectError(t *testing.T, err error, kind provider.Kind, reason provider.Class) *provider.Error {
	t.Helper()
	pe := provider.AsError(err)
	if pe == nil || pe.Kind != kind || pe.Class != reason {
		t.Fatalf("got %v, want a %s %s error", err, kind, reason)
	}
	return pe
}

func runToEnd(t *testing.T, d provider.Driver, req provider.Request) provider.ActionStatus {
	t.Helper()
	sub, err := d.Submit(context.Background(), req)
	if err != nil {
		t.Fatalf("Submit: %v", err)
	}
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		st, err := d.Status(context.Background(), sub)
		if err != nil {
			t.Fatalf("Status: %v", err)
		}
		if st.State != provider.StateInProgress {
			return st
		}
	}
	t.Fatal("action did not end")
	return provider.ActionStatus{}
}

func TestAuthMethods(t *testing.T) {
	creds := fakecloud.DefaultCredentials()
	cases := map[string]struct {
		creds        map[string][]byte
		issue, check int // Keystone POSTs and GETs of /v3/auth/tokens
	}{
		"password with project id": {creds: map[string][]byte{
			"username": []byte(creds.KeystoneUser), "password": []byte(creds.KeystonePassword + "\n"),
			"userDomainName": []byte("Default"), "projectID": []byte(fakecloud.KeystoneProjectID(creds.KeystoneProject)),
		}, issue: 1},
		"application credential": {creds: map[string][]byte{
			"applicationCredentialID": []byte(creds.KeystoneAppCredID), "applicationCredentialSecret": []byte(creds.KeystoneAppCredSecret),
		}, issue: 1},
		"token, validated": {creds: map[string][]byte{"token": []byte(creds.KeystoneStaticToken)}, check: 1},
		"token, rescoped": {creds: map[string][]byte{
			"token": []byte(creds.KeystoneStaticToken), "projectName": []byte(creds.KeystoneProject),
		}, issue: 1},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, fakecloud.Options{ActionDuration: 10 * time.Millisecond})
			e.cloud.AddVM(fakecloud.VM{ID: nodeID(1)})
			d := e.driver(t, provider.Config{AuthURL: e.base + "/identity/v3", Credentials: tc.creds})
			if err := d.Probe(context.Background()); err != nil {
				t.Fatalf("Probe: %v", err)
			}
			st := runToEnd(t, d, provider.Request{NodeID: nodeID(1), Action: "check"})
			if st.State != provider.StateSucceeded {
				t.Fatalf("check ended %s: %s", st.State, st.Message)
			}
			if n := e.count("keystone", http.MethodPost, "/auth/tokens"); n != tc.issue {
				t.Errorf("%d token requests, want %d", n, tc.issue)
			}
			if n := e.count("keystone", http.MethodGet, "/auth/tokens"); n != tc.check {
				t.Errorf("%d token validations, want %d", n, tc.check)
			}
		})
	}
}

func TestBadApplicationCredential(t *testing.T) {
	e := newEnv(t, fakecloud.Options{})
	d := e.driver(t, provider.Config{AuthURL: e.base + "/identity/v3", Credentials: map[string][]byte{
		"applicationCredentialID": []byte("demo-app-cred"), "applicationCredentialSecret": []byte("wrong"),
	}})
	pe := expectError(t, d.Probe(context.Background()), provider.Terminal, provider.AuthFailed)
	if strings.Contains(pe.Error(), "wrong") {
		t.Errorf("error shows the secret: %v", pe)
	}
}

func TestCredentialsErrors(t *testing.T) {
	cases := map[string]struct {
		creds map[string]string
		names []string // what the message must name
	}{
		"empty":                {map[string]string{}, []string{`"token"`, `"username"`, `"applicationCredentialID"`}},
		"no password":          {map[string]string{"username": "u", "projectName": "p"}, []string{`"password"`}},
		"no username":          {map[string]string{"password": "pw", "projectName": "p"}, []string{`"username"`}},
		"no project":           {map[string]string{"username": "u", "password": "pw"}, []string{`"projectName"`, `"projectID"`}},
		"two projects":         {map[string]string{"username": "u", "password": "pw", "projectName": "p", "projectID": "id"}, []string{`"projectName"`, `"projectID"`}},
		"token and password":   {map[string]string{"token": "t", "username": "u", "password": "pw"}, []string{`"token"`, `"username"/"password"`}},
		"app cred, no secret":  {map[string]string{"applicationCredentialID": "id"}, []string{`"applicationCredentialSecret"`}},
		"app cred and project": {map[string]string{"applicationCredentialID": "id", "applicationCredentialSecret": "s", "projectName": "p"}, []string{`"projectName"`}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			creds := map[string][]byte{}
			for k, v := range tc.creds {
				creds[k] = []byte(v)
			}
			_, err := senlin.New(provider.Config{AuthURL: "https://keystone.example.com/v3", Credentials: creds, HTTPClient: http.DefaultClient})
			pe := expectError(t, err, provider.Terminal, provider.CredentialsError)
			for _, n := range tc.names {
				if !strings.Contains(pe.Message, n) {
					t.Errorf("message %q does not name %s", pe.Message, n)
				}
			}
			for _, secret := range []string{"pw", `"s"`} {
				if strings.Contains(pe.Message, secret) {
					t.Errorf("message %q shows a secret", pe.Message)
				}
			}
		})
	}
}

func TestNewMakesNoRequest(t *testing.T) {
	// Nothing listens there: building must still work, and the first call
	// reports the unreachable Keystone as retryable.
	client, _ := provider.NewHTTPClient(provider.ClientOptions{Timeout: time.Second})
	d, err := senlin.New(provider.Config{AuthURL: "http://127.0.0.1:1/v3",
		Credentials: passwordCreds(fakecloud.DefaultCredentials()), HTTPClient: client})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	expectError(t, d.Probe(context.Background()), provider.Retryable, provider.Unavailable)
}

func TestCatalogEndpoint(t *testing.T) {
	e := newEnv(t, fakecloud.Options{})
	d := e.driver(t, configure(e.base, fakecloud.DefaultCredentials()))
	if got := d.Endpoint(); got != "" {
		t.Errorf("Endpoint before authenticating = %q, want empty", got)
	}
	if err := d.Probe(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The public endpoint, not the catalog's internal one.
	if got, want := d.Endpoint(), e.base+"/senlin"; got != want {
		t.Errorf("Endpoint() = %q, want %q", got, want)
	}

	other := e.driver(t, provider.Config{AuthURL: e.base + "/identity/v3", Region: "RegionTwo", Credentials: passwordCreds(fakecloud.DefaultCredentials())})
	pe := expectError(t, other.Probe(context.Background()), provider.Terminal, provider.InvalidConfig)
	if !strings.Contains(pe.Message, `"RegionTwo"`) {
		t.Errorf("message %q does not name the region", pe.Message)
	}
}

func TestVersionlessAuthURL(t *testing.T) {
	e := newEnv(t, fakecloud.Options{})
	d := e.driver(t, provider.Config{AuthURL: e.base + "/identity", Credentials: passwordCreds(fakecloud.DefaultCredentials())})
	if err := d.Probe(context.Background()); err != nil {
		t.Fatalf("Probe through version discovery: %v", err)
	}
}

func TestEndpointOverride(t *testing.T) {
	e := newEnv(t, fakecloud.Options{})
	e.cloud.AddVM(fakecloud.VM{ID: nodeID(1)})
	override := e.base + "/senlin/v1/"
	// The region has no endpoint: the override means the catalog is not consulted.
	d := e.driver(t, provider.Config{AuthURL: e.base + "/identity/v3", Endpoint: override, Region: "Nowhere",
		Credentials: passwordCreds(fakecloud.DefaultCredentials())})
	if got, want := d.Endpoint(), e.base+"/senlin"; got != want {
		t.Errorf("Endpoint() = %q, want %q", got, want)
	}
	if _, err := d.Submit(context.Background(), provider.Request{NodeID: nodeID(1), Action: "check"}); err != nil {
		t.Fatalf("Submit: %v", err)
	}
	if got, want := d.Endpoint(), e.base+"/senlin"; got != want {
		t.Errorf("Endpoint() after Submit = %q, want %q", got, want)
	}
}

func TestTokenWithoutKeystone(t *testing.T) {
	e := newEnv(t, fakecloud.Options{})
	e.cloud.AddVM(fakecloud.VM{ID: nodeID(1)})
	creds := map[string][]byte{"token": []byte(fakecloud.DefaultCredentials().KeystoneStaticToken)}
	d := e.driver(t, provider.Config{Endpoint: e.base + "/senlin", Credentials: creds})
	if _, err := d.Submit(context.Background(), provider.Request{NodeID: nodeID(1), Action: "check"}); err != nil {
		t.Fatalf("Submit: %v", err)
	}
	if n := e.cloud.CountRequests(func(r fakecloud.Request) bool { return r.Skin == "keystone" }); n != 0 {
		t.Errorf("%d Keystone requests, want none", n)
	}

	_, err := senlin.New(provider.Config{Credentials: passwordCreds(fakecloud.DefaultCredentials()), HTTPClient: http.DefaultClient})
	expectError(t, err, provider.Terminal, provider.InvalidConfig)
}

func TestRequestBodies(t *testing.T) {
	cases := []struct {
		name       string
		req        provider.Request
		body       string
		version    string
		reinstalls int
		boots      int
	}{
		{"check", provider.Request{Action: "check"}, `{"check":{}}`, "clustering 1.0", 0, 0},
		{"reboot defaults to HARD, said out loud", provider.Request{Action: "recover", Parameters: recoverParams("reboot", "")},
			`{"recover":{"operation":"REBOOT","operation_params":{"type":"HARD"}}}`, "clustering 1.0", 0, 1},
		{"reboot soft", provider.Request{Action: "recover", Parameters: recoverParams("REBOOT", "soft")},
			`{"recover":{"operation":"REBOOT","operation_params":{"type":"SOFT"}}}`, "clustering 1.0", 0, 1},
		{"rebuild", provider.Request{Action: "recover", Parameters: recoverParams("Rebuild", "")},
			`{"recover":{"operation":"REBUILD"}}`, "clustering 1.0", 1, 1},
		{"recreate with its options", provider.Request{Action: "recover", Parameters: v1alpha1.ActionParameters{Recover: &v1alpha1.RecoverParameters{
			Operation: "RECREATE", DeleteTimeout: ptr(int32(90)), ForceRecreate: ptr(true)}}},
			`{"recover":{"delete_timeout":90,"force_recreate":true,"operation":"RECREATE"}}`, "clustering 1.0", 1, 1},
		{"check needs 1.6", provider.Request{Action: "recover", Parameters: v1alpha1.ActionParameters{Recover: &v1alpha1.RecoverParameters{
			Operation: "RECREATE", Check: ptr(false)}}},
			`{"recover":{"check":false,"operation":"RECREATE"}}`, "clustering 1.6", 1, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, fakecloud.Options{ActionDuration: 5 * time.Millisecond})
			e.cloud.AddVM(fakecloud.VM{ID: nodeID(1)})
			d := e.driver(t, configure(e.base, fakecloud.DefaultCredentials()))
			tc.req.NodeID = nodeID(1)
			if st := runToEnd(t, d, tc.req); st.State != provider.StateSucceeded || st.Class != provider.Completed {
				t.Fatalf("ended %s/%s: %s", st.State, st.Class, st.Message)
			}
			posts := e.posts()
			if len(posts) != 1 {
				t.Fatalf("%d POSTs to Senlin, want 1", len(posts))
			}
			var got, want any
			_ = json.Unmarshal(posts[0].body, &got)
			_ = json.Unmarshal([]byte(tc.body), &want)
			if g, w := fmt.Sprint(got), fmt.Sprint(want); g != w {
				t.Errorf("body %s, want %s", posts[0].body, tc.body)
			}
			if posts[0].version != tc.version {
				t.Errorf("OpenStack-API-Version %q, want %q", posts[0].version, tc.version)
			}
			vm, _ := e.cloud.VM(nodeID(1))
			if vm.Reinstalls != tc.reinstalls || vm.Boots != tc.boots {
				t.Errorf("reinstalls %d boots %d, want %d and %d", vm.Reinstalls, vm.Boots, tc.reinstalls, tc.boots)
			}
		})
	}
}

func TestRecoverWithCheckLeavesHealthyNode(t *testing.T) {
	e := newEnv(t, fakecloud.Options{ActionDuration: 5 * time.Millisecond})
	e.cloud.AddVM(fakecloud.VM{ID: nodeID(1)})
	d := e.driver(t, configure(e.base, fakecloud.DefaultCredentials()))
	req := provider.Request{NodeID: nodeID(1), Action: "recover", Parameters: v1alpha1.ActionParameters{Recover: &v1alpha1.RecoverParameters{
		Operation: "RECREATE", Check: ptr(true)}}}
	st := runToEnd(t, d, req)
	if st.State != provider.StateSucceeded || !strings.Contains(st.Message, "already ACTIVE") {
		t.Fatalf("got %s: %s", st.State, st.Message)
	}
	if vm, _ := e.cloud.VM(nodeID(1)); vm.Reinstalls != 0 {
		t.Errorf("a healthy node was recreated")
	}
}

func TestValidate(t *testing.T) {
	d, err := senlin.New(provider.Config{AuthURL: "https://keystone.example.com/v3",
		Credentials: passwordCreds(fakecloud.DefaultCredentials()), HTTPClient: http.DefaultClient})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{nodeID(1), "web-1", "5e000001", "node_a.b~c"} {
		if err := d.Validate(provider.Request{NodeID: id, Action: "check"}); err != nil {
			t.Errorf("node %q: %v", id, err)
		}
	}
	for _, id := range []string{"", "a/b", "..", ".hidden", "a b", "%2F", "a?b=c", strings.Repeat("a", 256)} {
		_, err := d.Submit(context.Background(), provider.Request{NodeID: id, Action: "check"})
		expectError(t, err, provider.Terminal, provider.InvalidNodeID)
	}
	bad := map[string]*v1alpha1.RecoverParameters{
		"spec.parameters.recover.operation":     {Operation: "RESET"},
		"spec.parameters.recover.rebootType":    {Operation: "REBOOT", RebootType: "GENTLE"},
		"applies only to operation REBOOT":      {Operation: "REBUILD", RebootType: "SOFT"},
		"spec.parameters.recover.deleteTimeout": {Operation: "RECREATE", DeleteTimeout: ptr(int32(-1))},
	}
	for want, r := range bad {
		err := d.Validate(provider.Request{NodeID: nodeID(1), Action: "recover", Parameters: v1alpha1.ActionParameters{Recover: r}})
		if pe := expectError(t, err, provider.Terminal, provider.InvalidParameters); !strings.Contains(pe.Message, want) {
			t.Errorf("message %q does not say %q", pe.Message, want)
		}
	}
	expectError(t, d.Validate(provider.Request{NodeID: nodeID(1), Action: "reboot"}), provider.Terminal, provider.UnsupportedAction)
}

func TestRepeatable(t *testing.T) {
	caps := newTestDriverCaps(t)
	for req, want := range map[*provider.Request]bool{
		{Action: "check"}: true,
		{Action: "recover", Parameters: recoverParams("reboot", "SOFT")}: true,
		{Action: "recover", Parameters: recoverParams("REBUILD", "")}:    false,
		{Action: "recover", Parameters: recoverParams("RECREATE", "")}:   false,
	} {
		if got := caps.Repeatable(*req); got != want {
			t.Errorf("Repeatable(%s) = %v", caps.Describe(*req), got)
		}
	}
}

// A recover that checks first may find the node ACTIVE and leave it as it
// is: no new boot is to be expected, so a Node on it proves nothing.
func TestRecoverWithCheckMayNotRestartTheGuest(t *testing.T) {
	caps := newTestDriverCaps(t)
	checked := recoverParams("REBOOT", "SOFT")
	checked.Recover.Check = ptr(true)
	for req, want := range map[*provider.Request]bool{
		{Action: "recover", Parameters: recoverParams("REBOOT", "SOFT")}: true,
		{Action: "recover", Parameters: checked}:                         false,
		{Action: "check"}:                                                false,
	} {
		if got := caps.RestartsGuest(*req); got != want {
			t.Errorf("RestartsGuest(%s) = %v, want %v", caps.Describe(*req), got, want)
		}
	}
}

func newTestDriverCaps(t *testing.T) provider.Capabilities {
	t.Helper()
	d, err := senlin.New(provider.Config{AuthURL: "http://127.0.0.1:1/identity/v3", Credentials: map[string][]byte{"token": []byte("t")}, HTTPClient: &http.Client{}})
	if err != nil {
		t.Fatal(err)
	}
	return d.Capabilities()
}

// clock is a fake time the cloud runs on, so action states are set by the test.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *clock) Add(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.now = c.now.Add(d) }

func TestBusyNode(t *testing.T) {
	clk := &clock{now: time.Now()}
	e := newEnv(t, fakecloud.Options{ActionDuration: time.Minute, Now: clk.Now})
	e.cloud.AddVM(fakecloud.VM{ID: nodeID(1)})
	d := e.driver(t, configure(e.base, fakecloud.DefaultCredentials()))
	ctx := context.Background()
	first := provider.Request{NodeID: nodeID(1), Action: "recover", Parameters: recoverParams("REBOOT", "SOFT")}
	sub, err := d.Submit(ctx, first)
	if err != nil {
		t.Fatal(err)
	}
	// READY: another action conflicts with it.
	_, err = d.Submit(ctx, provider.Request{NodeID: nodeID(1), Action: "check"})
	if pe := expectError(t, err, provider.Retryable, provider.Busy); !strings.Contains(pe.Message, "conflicts with the following action(s): "+sub.ActionID) {
		t.Errorf("message %q", pe.Message)
	}
	// RUNNING: the node is locked.
	clk.Add(30 * time.Second)
	st, err := d.Status(ctx, sub)
	if err != nil || st.State != provider.StateInProgress || !strings.Contains(st.Message, "RUNNING") {
		t.Fatalf("Status: %+v, %v", st, err)
	}
	_, err = d.Submit(ctx, first)
	if pe := expectError(t, err, provider.Retryable, provider.Busy); !strings.Contains(pe.Message, "already locked") {
		t.Errorf("message %q", pe.Message)
	}
	if n := e.cloud.AcceptedActions(nodeID(1)); n != 1 {
		t.Errorf("%d actions accepted, want 1", n)
	}
	clk.Add(time.Minute)
	if st, err := d.Status(ctx, sub); err != nil || st.State != provider.StateSucceeded {
		t.Fatalf("Status: %+v, %v", st, err)
	}
}

func TestExpiredTokenIsRenewed(t *testing.T) {
	clk := &clock{now: time.Now()}
	e := newEnv(t, fakecloud.Options{ActionDuration: time.Second, Now: clk.Now})
	e.cloud.AddVM(fakecloud.VM{ID: nodeID(1)})
	d := e.driver(t, configure(e.base, fakecloud.DefaultCredentials()))
	ctx := context.Background()
	req := provider.Request{NodeID: nodeID(1), Action: "check"}
	if _, err := d.Submit(ctx, req); err != nil {
		t.Fatal(err)
	}
	clk.Add(2 * time.Hour) // the token has expired; the action has ended
	if _, err := d.Submit(ctx, req); err != nil {
		t.Fatalf("Submit with an expired token: %v", err)
	}
	if n := e.count("keystone", http.MethodPost, "/auth/tokens"); n != 2 {
		t.Errorf("%d token requests, want 2", n)
	}
	refused := e.cloud.CountRequests(func(r fakecloud.Request) bool { return r.ActionCall && r.Status == http.StatusUnauthorized })
	if n := e.cloud.AcceptedActions(nodeID(1)); n != 2 || refused != 1 {
		t.Errorf("%d actions accepted and %d refused, want 2 and 1 (the expired token's call did nothing)", n, refused)
	}

	// Once the password changes, renewal fails for good.
	creds := fakecloud.DefaultCredentials()
	creds.KeystonePassword = "rotated"
	e.cloud.SetCredentials(creds)
	clk.Add(time.Minute)
	_, err := d.Submit(ctx, req)
	expectError(t, err, provider.Terminal, provider.AuthFailed)
}

func TestKeystoneFailureIsNotAmbiguous(t *testing.T) {
	e := newEnv(t, fakecloud.Options{})
	e.cloud.AddVM(fakecloud.VM{ID: nodeID(1)})
	d := e.driver(t, configure(e.base, fakecloud.DefaultCredentials()))
	for _, mode := range []fakecloud.FaultMode{fakecloud.AcceptThenFail, fakecloud.AcceptThenDrop} {
		e.cloud.InjectFault(fakecloud.Fault{Skin: "keystone", Mode: mode, Status: http.StatusBadGateway, Times: 1})
		_, err := d.Submit(context.Background(), provider.Request{NodeID: nodeID(1), Action: "check"})
		expectError(t, err, provider.Retryable, provider.Unavailable)
	}
	if n := e.cloud.ActionCalls(nodeID(1)); n != 0 {
		t.Errorf("%d action calls, want 0", n)
	}
}

func TestNodeByNameAndShortID(t *testing.T) {
	e := newEnv(t, fakecloud.Options{ActionDuration: time.Minute})
	e.cloud.AddVM(fakecloud.VM{ID: nodeID(1), Name: "web-1"})
	e.cloud.AddVM(fakecloud.VM{ID: nodeID(2), Name: "twin"})
	e.cloud.AddVM(fakecloud.VM{ID: nodeID(3), Name: "twin"})
	d := e.driver(t, configure(e.base, fakecloud.DefaultCredentials()))
	ctx := context.Background()
	since := time.Now()

	byName := provider.Request{NodeID: "web-1", Action: "recover", Parameters: recoverParams("REBOOT", "HARD")}
	sub, err := d.Submit(ctx, byName)
	if err != nil {
		t.Fatal(err)
	}
	w := provider.Window{From: since.Add(-5 * time.Second), To: since.Add(time.Minute)}
	found, err := d.Lookup(ctx, byName, w)
	if err != nil || len(found.Candidates) != 1 || found.Candidates[0].ActionID != sub.ActionID {
		t.Fatalf("Lookup by name: %+v, %v; want action %s", found, err, sub.ActionID)
	}
	// By short id, a different reboot type is not the same request.
	byShortID := provider.Request{NodeID: nodeID(1)[:8], Action: "recover", Parameters: recoverParams("REBOOT", "SOFT")}
	if found, err := d.Lookup(ctx, byShortID, w); err != nil || len(found.Candidates) != 0 || !found.Complete {
		t.Errorf("Lookup of another reboot type: %+v, %v; want nothing", found, err)
	}

	_, err = d.Submit(ctx, provider.Request{NodeID: "twin", Action: "check"})
	if pe := expectError(t, err, provider.Terminal, provider.Rejected); !strings.Contains(pe.Message, "Multiple results found") {
		t.Errorf("message %q", pe.Message)
	}
}

func TestLookupPages(t *testing.T) {
	clk := &clock{now: time.Now()}
	e := newEnv(t, fakecloud.Options{ActionDuration: time.Millisecond, Now: clk.Now})
	e.cloud.AddVM(fakecloud.VM{ID: nodeID(1)})
	d := e.driver(t, configure(e.base, fakecloud.DefaultCredentials()))
	ctx := context.Background()
	since := clk.Now()
	want, err := d.Submit(ctx, provider.Request{NodeID: nodeID(1), Action: "recover", Parameters: recoverParams("REBUILD", "")})
	if err != nil {
		t.Fatal(err)
	}
	// Many newer recovers of another kind push it off the first page.
	for range 60 {
		clk.Add(time.Second)
		if _, err := d.Submit(ctx, provider.Request{NodeID: nodeID(1), Action: "recover", Parameters: recoverParams("REBOOT", "")}); err != nil {
			t.Fatal(err)
		}
	}
	clk.Add(time.Second)
	w := provider.Window{From: since, To: clk.Now()}
	found, err := d.Lookup(ctx, provider.Request{NodeID: nodeID(1), Action: "recover", Parameters: recoverParams("rebuild", "")}, w)
	if err != nil || len(found.Candidates) != 1 || found.Candidates[0].ActionID != want.ActionID {
		t.Fatalf("Lookup: %+v, %v; want %s", found, err, want.ActionID)
	}
	// No check was ever submitted.
	if found, err := d.Lookup(ctx, provider.Request{NodeID: nodeID(1), Action: "check"}, w); err != nil || len(found.Candidates) != 0 {
		t.Errorf("Lookup of a check: %+v, %v", found, err)
	}
}

func TestCancelledAction(t *testing.T) {
	e := newEnv(t, fakecloud.Options{ActionDuration: time.Minute})
	e.cloud.AddVM(fakecloud.VM{ID: nodeID(1)})
	d := e.driver(t, configure(e.base, fakecloud.DefaultCredentials()))
	ctx := context.Background()
	sub, err := d.Submit(ctx, provider.Request{NodeID: nodeID(1), Action: "check"})
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPatch, e.base+"/senlin/v1/actions/"+sub.ActionID, strings.NewReader(`{"action":{"status":"CANCELLED"}}`))
	req.Header.Set("X-Auth-Token", fakecloud.DefaultCredentials().KeystoneStaticToken)
	req.Header.Set("OpenStack-API-Version", "clustering 1.12")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("cancel answered %d", resp.StatusCode)
	}
	st, err := d.Status(ctx, sub)
	if err != nil || st.State != provider.StateFailed || st.Class != provider.ActionFailed ||
		!strings.Contains(st.Message, "CANCELLED: Action execution cancelled") {
		t.Fatalf("Status: %+v, %v", st, err)
	}
}

func TestUnknownAction(t *testing.T) {
	e := newEnv(t, fakecloud.Options{})
	d := e.driver(t, configure(e.base, fakecloud.DefaultCredentials()))
	_, err := d.Status(context.Background(), provider.Submission{ActionID: "0f000000-0000-4000-8000-000000000000"})
	expectError(t, err, provider.Terminal, provider.ActionFailed)
}

// A lost recover is found whatever shape the list gives its operation (the
// documents do not give it): [{"name": op}] as Senlin before 7.0 kept it,
// and one it cannot read makes the lookup incomplete, never "not sent".
func TestLookupReadsOrDoubtsTheRecoverOperation(t *testing.T) {
	const node = "0d4c7f1a-1111-2222-3333-444455556666"
	const act = "aaaaaaaa-1111-2222-3333-444455556666"
	now := time.Now().UTC()
	for _, tc := range []struct {
		name, operation string
		found, complete bool
	}{
		{"a string", `"RECREATE"`, true, true},
		{"Senlin before 7.0", `[{"name": "RECREATE"}]`, true, true},
		{"another operation", `"REBOOT"`, false, true},
		{"unreadable", `{"op": "RECREATE"}`, false, false},
		{"missing", `null`, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				switch {
				case strings.HasPrefix(r.URL.Path, "/v1/nodes/"):
					_, _ = w.Write([]byte(`{"node": {"id": "` + node + `"}}`))
				case r.URL.Path == "/v1/actions" && r.URL.Query().Get("marker") == "":
					_, _ = w.Write([]byte(`{"actions": [{"id": "` + act + `", "action": "NODE_RECOVER", "target": "` + node +
						`", "status": "RUNNING", "inputs": {"operation": ` + tc.operation + `}, "created_at": "` + now.Format("2006-01-02T15:04:05Z") + `"}]}`))
				default:
					_, _ = w.Write([]byte(`{"actions": []}`))
				}
			}))
			defer srv.Close()
			d := drivertest.DriverAt(t, senlin.New, provider.Config{Endpoint: srv.URL, Credentials: map[string][]byte{"token": []byte("t")}})
			req := provider.Request{NodeID: node, Action: "recover", Parameters: recoverParams("RECREATE", "")}
			found, err := d.Lookup(context.Background(), req, provider.Window{From: now.Add(-time.Minute), To: now.Add(time.Minute)})
			if err != nil {
				t.Fatal(err)
			}
			if got := len(found.Candidates) == 1 && found.Candidates[0].ActionID == act; got != tc.found || found.Complete != tc.complete {
				t.Fatalf("Lookup = %+v; want found %v, complete %v", found, tc.found, tc.complete)
			}
		})
	}
}
