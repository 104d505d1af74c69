package fakecloud

import (
	"crypto/subtle"
	"net/http"
	"strings"
	"time"
)

// Credentials are what each skin accepts.
type Credentials struct {
	// DigitalOceanToken is the Bearer token for /digitalocean.
	DigitalOceanToken string `json:"digitalOceanToken"`
	// OpenScalerToken is the Bearer token for /openscaler.
	OpenScalerToken string `json:"openScalerToken"`
	// CloudsForUser and CloudsForPassword are the Basic credentials for /cloudsfor.
	CloudsForUser     string `json:"cloudsForUser"`
	CloudsForPassword string `json:"cloudsForPassword"`
	// E2EAPIKey (query apikey) and E2EToken (Bearer) for /e2e.
	E2EAPIKey string `json:"e2eAPIKey"`
	E2EToken  string `json:"e2eToken"`
	// E2EProjects are the project ids the E2E account has; the first is the default.
	E2EProjects []string `json:"e2eProjects"`
	// Keystone user (password auth) and application credential for /identity.
	KeystoneUser          string `json:"keystoneUser"`
	KeystonePassword      string `json:"keystonePassword"`
	KeystoneProject       string `json:"keystoneProject"`
	KeystoneAppCredID     string `json:"keystoneAppCredID"`
	KeystoneAppCredSecret string `json:"keystoneAppCredSecret"`
	// KeystoneStaticToken is a token that is always valid (token auth).
	KeystoneStaticToken string `json:"keystoneStaticToken"`
}

// DefaultCredentials are the demo credentials config/samples use.
func DefaultCredentials() Credentials {
	return Credentials{
		DigitalOceanToken:     "do-demo-token",
		OpenScalerToken:       "openscaler-demo-token",
		CloudsForUser:         "demo@example.com",
		CloudsForPassword:     "cloudsfor-demo-password",
		E2EAPIKey:             "e2edemoapikey",
		E2EToken:              "e2e-demo-token",
		E2EProjects:           []string{"1001", "1002"},
		KeystoneUser:          "demo",
		KeystonePassword:      "senlin-demo-password",
		KeystoneProject:       "demo",
		KeystoneAppCredID:     "demo-app-cred",
		KeystoneAppCredSecret: "senlin-demo-app-secret",
		KeystoneStaticToken:   "senlin-demo-static-token",
	}
}

// SetCredentials replaces what the skins accept (a token rotated or revoked).
func (c *Cloud) SetCredentials(creds Credentials) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.creds = creds
}

// bearer returns the Bearer token of a request, or "".
func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "Bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

// same compares secrets in constant time; an empty expectation never matches.
func same(got, want string) bool {
	return want != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// RateBudget is a request budget per credential and window, as DigitalOcean
// publishes it (250 requests a minute).
type RateBudget struct {
	Limit  int           `json:"limit"`
	Window time.Duration `json:"window"`
}

// DefaultRateBudget is DigitalOcean's per-minute budget.
func DefaultRateBudget() RateBudget { return RateBudget{Limit: 250, Window: time.Minute} }

// SetRateBudget changes the budget for new windows.
func (c *Cloud) SetRateBudget(b RateBudget) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.budget = b
	c.limits = map[string]*rateWindow{}
}

type rateWindow struct {
	start time.Time
	used  int
}

// takeLocked spends one request of key's budget. It returns the limit, what
// remains, when the window resets, and whether the request is allowed.
func (c *Cloud) takeLocked(key string) (limit, remaining int, reset time.Time, ok bool) {
	now := c.now()
	w := c.limits[key]
	if w == nil || now.Sub(w.start) >= c.budget.Window {
		w = &rateWindow{start: now}
		c.limits[key] = w
	}
	reset = w.start.Add(c.budget.Window)
	if w.used >= c.budget.Limit {
		return c.budget.Limit, 0, reset, false
	}
	w.used++
	return c.budget.Limit, c.budget.Limit - w.used, reset, true
}
