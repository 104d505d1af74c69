package fakecloud_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nodeaction/nodeaction-operator/internal/fakecloud"
)

// ksClock is a settable clock for token expiry and action timing.
type ksClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *ksClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *ksClock) Add(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.now = c.now.Add(d) }

// ksDo makes one request and decodes a JSON answer.
func ksDo(t *testing.T, method, url string, header map[string]string, body string) (int, http.Header, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(b, &out)
	return resp.StatusCode, resp.Header, out
}

func ksPassword(user, password, project string) string {
	b, _ := json.Marshal(map[string]any{"auth": map[string]any{
		"identity": map[string]any{"methods": []string{"password"}, "password": map[string]any{
			"user": map[string]any{"name": user, "domain": map[string]any{"name": "Default"}, "password": password}}},
		"scope": map[string]any{"project": map[string]any{"name": project, "domain": map[string]any{"id": "default"}}},
	}})
	return string(b)
}

func TestKeystoneTokens(t *testing.T) {
	clk := &ksClock{now: time.Now()}
	cloud := fakecloud.New(fakecloud.Options{Now: clk.Now})
	server := httptest.NewServer(cloud.Handler())
	defer server.Close()
	creds := fakecloud.DefaultCredentials()
	tokens := server.URL + "/identity/v3/auth/tokens"

	code, _, versions := ksDo(t, http.MethodGet, server.URL+"/identity/", nil, "")
	if code != http.StatusMultipleChoices || !strings.Contains(jsonString(versions), server.URL+"/identity/v3/") {
		t.Errorf("version document: %d %v", code, versions)
	}

	code, h, body := ksDo(t, http.MethodPost, tokens, nil, ksPassword(creds.KeystoneUser, creds.KeystonePassword, creds.KeystoneProject))
	token := h.Get("X-Subject-Token")
	if code != http.StatusCreated || token == "" {
		t.Fatalf("password auth: %d %v", code, body)
	}
	tok, _ := body["token"].(map[string]any)
	project, _ := tok["project"].(map[string]any)
	if project["id"] != fakecloud.KeystoneProjectID(creds.KeystoneProject) {
		t.Errorf("project %v", project)
	}
	catalog := jsonString(tok["catalog"])
	for _, want := range []string{`"type":"clustering"`, `"interface":"public","region":"RegionOne","region_id":"RegionOne","url":"` + server.URL + `/senlin"`} {
		if !strings.Contains(catalog, want) {
			t.Errorf("catalog lacks %s: %s", want, catalog)
		}
	}

	senlin := func(token string) int {
		code, _, _ := ksDo(t, http.MethodGet, server.URL+"/senlin/v1/actions", map[string]string{"X-Auth-Token": token}, "")
		return code
	}
	if c := senlin(token); c != http.StatusOK {
		t.Errorf("Senlin with an issued token: %d", c)
	}

	cases := map[string]struct {
		body string
		code int
		msg  string
	}{
		"wrong password": {ksPassword(creds.KeystoneUser, "nope", creds.KeystoneProject), 401, "requires authentication"},
		"other project":  {ksPassword(creds.KeystoneUser, creds.KeystonePassword, "admin"), 401, "requires authentication"},
		"no domain": {`{"auth":{"identity":{"methods":["password"],"password":{"user":{"name":"demo","domain":{"name":"Default"},"password":"senlin-demo-password"}}},"scope":{"project":{"name":"demo"}}}}`,
			400, "Expecting to find domain in project"},
		"application credential": {`{"auth":{"identity":{"methods":["application_credential"],"application_credential":{"id":"demo-app-cred","secret":"senlin-demo-app-secret"}}}}`, 201, ""},
		"application credential with a scope": {`{"auth":{"identity":{"methods":["application_credential"],"application_credential":{"id":"demo-app-cred","secret":"senlin-demo-app-secret"}},"scope":{"project":{"id":"x"}}}}`,
			401, "Application credentials cannot request a scope."},
		"wrong application secret": {`{"auth":{"identity":{"methods":["application_credential"],"application_credential":{"id":"demo-app-cred","secret":"x"}}}}`, 401, ""},
		"token":                    {`{"auth":{"identity":{"methods":["token"],"token":{"id":"` + creds.KeystoneStaticToken + `"}}}}`, 201, ""},
		"unknown token":            {`{"auth":{"identity":{"methods":["token"],"token":{"id":"gAAAAAforged.sig"}}}}`, 401, ""},
		"not JSON":                 {`{`, 400, "Expecting to find auth"},
	}
	for name, tc := range cases {
		code, h, body := ksDo(t, http.MethodPost, tokens, nil, tc.body)
		if code != tc.code || !strings.Contains(jsonString(body), tc.msg) {
			t.Errorf("%s: %d %v, want %d %q", name, code, body, tc.code, tc.msg)
		}
		if code == http.StatusCreated && senlin(h.Get("X-Subject-Token")) != http.StatusOK {
			t.Errorf("%s: Senlin refused the token", name)
		}
	}

	// Validation of a token by itself (gophercloud's token pass-through).
	code, h, _ = ksDo(t, http.MethodGet, tokens, map[string]string{"X-Auth-Token": token, "X-Subject-Token": token}, "")
	if code != http.StatusOK || h.Get("X-Subject-Token") != token {
		t.Errorf("validate: %d", code)
	}

	clk.Add(2 * time.Hour)
	if c := senlin(token); c != http.StatusUnauthorized {
		t.Errorf("Senlin with an expired token: %d", c)
	}
	_, h, _ = ksDo(t, http.MethodPost, tokens, nil, ksPassword(creds.KeystoneUser, creds.KeystonePassword, creds.KeystoneProject))
	token = h.Get("X-Subject-Token")
	creds.KeystonePassword = "rotated"
	cloud.SetCredentials(creds)
	if c := senlin(token); c != http.StatusUnauthorized {
		t.Errorf("Senlin with a token issued before the password changed: %d", c)
	}
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
