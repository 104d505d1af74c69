package fakecloud

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"time"
)

// Keystone v3, enough of it for a Senlin client (PROVIDERS.md, senlin):
// version discovery, POST /v3/auth/tokens with the password,
// application_credential and token methods, and GET /v3/auth/tokens to
// validate a token. The catalog lists Senlin as service type "clustering".
//
// Tokens are self-contained, like Keystone's Fernet tokens: a payload and an
// HMAC keyed by the cloud's Keystone credentials, so changing the
// credentials (SetCredentials) revokes every token issued before.

// KeystoneRegion is the region of every endpoint in the catalog.
const KeystoneRegion = "RegionOne"

// keystoneTokenTTL is how long an issued token lives.
const keystoneTokenTTL = time.Hour

// keystoneInternalSenlin is the catalog's internal clustering endpoint: it
// answers nothing, so a client that picks it instead of the public one fails.
const keystoneInternalSenlin = "http://senlin.internal.invalid:8777"

// KeystoneProjectID is the id Keystone gives the project named name.
func KeystoneProjectID(name string) string { return keystoneID("project", name) }

// KeystoneUserID is the id Keystone gives the user named name.
func KeystoneUserID(name string) string { return keystoneID("user", name) }

func keystoneID(kind, name string) string {
	sum := sha256.Sum256([]byte(kind + "/" + name))
	return hex.EncodeToString(sum[:16])
}

type ksRef struct {
	ID       string  `json:"id,omitempty"`
	Name     string  `json:"name,omitempty"`
	Domain   *ksRef  `json:"domain,omitempty"`
	Password *string `json:"password,omitempty"`
	Secret   *string `json:"secret,omitempty"`
}

type ksAuthRequest struct {
	Auth *struct {
		Identity struct {
			Methods  []string `json:"methods"`
			Password *struct {
				User ksRef `json:"user"`
			} `json:"password"`
			Token *struct {
				ID string `json:"id"`
			} `json:"token"`
			ApplicationCredential *ksRef `json:"application_credential"`
		} `json:"identity"`
		Scope json.RawMessage `json:"scope"`
	} `json:"auth"`
}

type ksEndpoint struct {
	ID        string `json:"id"`
	Interface string `json:"interface"`
	Region    string `json:"region"`
	RegionID  string `json:"region_id"`
	URL       string `json:"url"`
}

type ksService struct {
	ID        string       `json:"id"`
	Type      string       `json:"type"`
	Name      string       `json:"name"`
	Endpoints []ksEndpoint `json:"endpoints"`
}

type ksDomain struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

type ksNamed struct {
	ID     string   `json:"id"`
	Name   string   `json:"name"`
	Domain ksDomain `json:"domain"`
}

type ksToken struct {
	Methods   []string    `json:"methods"`
	User      ksNamed     `json:"user"`
	AuditIDs  []string    `json:"audit_ids"`
	ExpiresAt string      `json:"expires_at"`
	IssuedAt  string      `json:"issued_at"`
	Project   *ksNamed    `json:"project,omitempty"`
	IsDomain  bool        `json:"is_domain"`
	Roles     []ksDomain  `json:"roles,omitempty"`
	Catalog   []ksService `json:"catalog,omitempty"`
}

// ksClaims is what a token carries.
type ksClaims struct {
	User    string   `json:"u"`
	Project string   `json:"p,omitempty"`
	Methods []string `json:"m"`
	Issued  int64    `json:"i"`
	Expires int64    `json:"e"`
}

var ksDefaultDomain = ksDomain{ID: "default", Name: "Default"}

func ksErr(status int, title, msg string) reply {
	rep := jsonReply(status, map[string]any{"error": map[string]any{"code": status, "title": title, "message": msg}})
	rep.header.Set("Vary", "X-Auth-Token")
	return rep
}

func ksUnauthorized(r *http.Request) reply {
	rep := ksErr(http.StatusUnauthorized, "Unauthorized", "The request you have made requires authentication.")
	rep.header.Set("WWW-Authenticate", `Keystone uri="`+requestBase(r)+`/identity"`)
	return rep
}

func requestBase(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// serveKeystone routes /identity/...
func (c *Cloud) serveKeystone(w http.ResponseWriter, r *http.Request, segs []string) {
	k := call{skin: "keystone"}
	var handle func() reply
	route := r.Method + " " + strings.Join(segs, "/")
	switch route {
	case "GET ":
		handle = func() reply { return ksVersions(r) }
	case "GET v3":
		handle = func() reply {
			return jsonReply(http.StatusOK, map[string]any{"version": ksVersion(r)})
		}
	case "POST v3/auth/tokens":
		body := readBody(r)
		handle = func() reply { return c.ksIssue(r, body) }
	case "GET v3/auth/tokens":
		handle = func() reply { return c.ksValidate(r) }
	default:
		handle = func() reply {
			return ksErr(http.StatusNotFound, "Not Found", "The resource could not be found.")
		}
	}
	c.serve(w, r, k, func(*draw) reply { return handle() })
}

func ksVersion(r *http.Request) map[string]any {
	return map[string]any{
		"id": "v3.14", "status": "stable", "updated": "2020-04-07T00:00:00Z",
		"links":       []map[string]string{{"rel": "self", "href": requestBase(r) + "/identity/v3/"}},
		"media-types": []map[string]string{{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}},
	}
}

// ksVersions is Keystone's root document: 300 Multiple Choices.
func ksVersions(r *http.Request) reply {
	return jsonReply(http.StatusMultipleChoices, map[string]any{"versions": map[string]any{"values": []any{ksVersion(r)}}})
}

// ksIssue answers POST /v3/auth/tokens.
func (c *Cloud) ksIssue(r *http.Request, body []byte) reply {
	var req ksAuthRequest
	if err := json.Unmarshal(body, &req); err != nil || req.Auth == nil {
		return ksErr(http.StatusBadRequest, "Bad Request", "Expecting to find auth in request body. The server could not comply with the request since it is either malformed or otherwise incorrect. The client is assumed to be in error.")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	cr := c.creds
	id := req.Auth.Identity
	if len(id.Methods) == 0 {
		return ksErr(http.StatusBadRequest, "Bad Request", "Expecting to find methods in identity.")
	}
	var claims ksClaims
	switch id.Methods[0] {
	case "password":
		if id.Password == nil {
			return ksErr(http.StatusBadRequest, "Bad Request", "Expecting to find password in identity.")
		}
		u := id.Password.User
		byName := u.Name != "" && u.Domain != nil && ksIsDefaultDomain(*u.Domain)
		byID := u.ID != "" && u.ID == KeystoneUserID(cr.KeystoneUser)
		if !(byID || (byName && u.Name == cr.KeystoneUser)) || u.Password == nil || !same(*u.Password, cr.KeystonePassword) {
			return ksUnauthorized(r)
		}
		claims = ksClaims{User: KeystoneUserID(cr.KeystoneUser), Methods: []string{"password"}}
	case "application_credential":
		ac := id.ApplicationCredential
		if ac == nil || ac.Secret == nil || !same(ac.ID, cr.KeystoneAppCredID) || !same(*ac.Secret, cr.KeystoneAppCredSecret) {
			return ksUnauthorized(r)
		}
		if len(req.Auth.Scope) > 0 && string(req.Auth.Scope) != "null" {
			return ksErr(http.StatusUnauthorized, "Unauthorized", "Application credentials cannot request a scope.")
		}
		// An application credential is bound to its project.
		claims = ksClaims{User: KeystoneUserID(cr.KeystoneUser), Project: KeystoneProjectID(cr.KeystoneProject),
			Methods: []string{"application_credential"}}
	case "token":
		if id.Token == nil {
			return ksErr(http.StatusBadRequest, "Bad Request", "Expecting to find token in identity.")
		}
		from, ok := c.ksCheckLocked(id.Token.ID)
		if !ok {
			return ksUnauthorized(r)
		}
		claims = ksClaims{User: from.User, Project: from.Project, Methods: []string{"token"}}
	default:
		return ksUnauthorized(r)
	}
	if claims.Methods[0] != "application_credential" && len(req.Auth.Scope) > 0 && string(req.Auth.Scope) != "null" {
		project, rep, ok := ksScope(r, req.Auth.Scope, cr)
		if !ok {
			return rep
		}
		claims.Project = project
	}
	now := c.now().UTC()
	claims.Issued, claims.Expires = now.Unix(), now.Add(keystoneTokenTTL).Unix()
	token := c.ksSignLocked(claims)
	rep := jsonReply(http.StatusCreated, map[string]any{"token": c.ksTokenBody(r, claims)})
	rep.header.Set("X-Subject-Token", token)
	rep.header.Set("Vary", "X-Auth-Token")
	return rep
}

// ksScope reads a project scope; only the cloud's one project exists.
func ksScope(r *http.Request, raw json.RawMessage, cr Credentials) (string, reply, bool) {
	var scope struct {
		Project *ksRef `json:"project"`
	}
	if err := json.Unmarshal(raw, &scope); err != nil || scope.Project == nil {
		return "", ksErr(http.StatusBadRequest, "Bad Request", "Only a project scope is supported here."), false
	}
	p := *scope.Project
	switch {
	case p.ID != "":
		if p.ID != KeystoneProjectID(cr.KeystoneProject) {
			return "", ksUnauthorized(r), false
		}
	case p.Name != "":
		if p.Domain == nil || (p.Domain.ID == "" && p.Domain.Name == "") {
			return "", ksErr(http.StatusBadRequest, "Bad Request", "Expecting to find domain in project. The server could not comply with the request since it is either malformed or otherwise incorrect. The client is assumed to be in error."), false
		}
		if !ksIsDefaultDomain(*p.Domain) || p.Name != cr.KeystoneProject {
			return "", ksUnauthorized(r), false
		}
	default:
		return "", ksErr(http.StatusBadRequest, "Bad Request", "Expecting to find id or name in project."), false
	}
	return KeystoneProjectID(cr.KeystoneProject), reply{}, true
}

func ksIsDefaultDomain(d ksRef) bool {
	return d.ID == ksDefaultDomain.ID || (d.ID == "" && d.Name == ksDefaultDomain.Name)
}

// ksValidate answers GET /v3/auth/tokens: X-Auth-Token must be valid, and
// X-Subject-Token is the token described.
func (c *Cloud) ksValidate(r *http.Request) reply {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.ksCheckLocked(r.Header.Get("X-Auth-Token")); !ok {
		return ksUnauthorized(r)
	}
	subject := r.Header.Get("X-Subject-Token")
	claims, ok := c.ksCheckLocked(subject)
	if !ok {
		return ksErr(http.StatusNotFound, "Not Found", "Could not find token: "+ksShort(subject)+".")
	}
	rep := jsonReply(http.StatusOK, map[string]any{"token": c.ksTokenBody(r, claims)})
	rep.header.Set("X-Subject-Token", subject)
	return rep
}

func ksShort(token string) string {
	if len(token) > 8 {
		return token[:8] + "..."
	}
	return token
}

func (c *Cloud) ksTokenBody(r *http.Request, cl ksClaims) ksToken {
	cr := c.creds
	t := ksToken{
		Methods:   cl.Methods,
		User:      ksNamed{ID: cl.User, Name: cr.KeystoneUser, Domain: ksDefaultDomain},
		AuditIDs:  []string{keystoneID("audit", cl.User+time.Unix(cl.Issued, 0).String())[:22]},
		IssuedAt:  time.Unix(cl.Issued, 0).UTC().Format("2006-01-02T15:04:05.000000Z"),
		ExpiresAt: time.Unix(cl.Expires, 0).UTC().Format("2006-01-02T15:04:05.000000Z"),
	}
	if cl.Project == "" {
		return t // unscoped: no project, no roles, no catalog
	}
	t.Project = &ksNamed{ID: cl.Project, Name: cr.KeystoneProject, Domain: ksDefaultDomain}
	t.Roles = []ksDomain{{ID: keystoneID("role", "member"), Name: "member"}, {ID: keystoneID("role", "reader"), Name: "reader"}}
	base := requestBase(r)
	ep := func(svc, iface, url string) ksEndpoint {
		return ksEndpoint{ID: keystoneID("endpoint", svc+iface), Interface: iface, Region: KeystoneRegion, RegionID: KeystoneRegion, URL: url}
	}
	t.Catalog = []ksService{
		{ID: keystoneID("service", "keystone"), Type: "identity", Name: "keystone", Endpoints: []ksEndpoint{
			ep("keystone", "public", base+"/identity"),
		}},
		{ID: keystoneID("service", "senlin"), Type: "clustering", Name: "senlin", Endpoints: []ksEndpoint{
			ep("senlin", "internal", keystoneInternalSenlin),
			ep("senlin", "public", base+"/senlin"),
		}},
	}
	return t
}

// --- tokens ---

func (c *Cloud) ksKeyLocked() []byte {
	cr := c.creds
	sum := sha256.Sum256([]byte(strings.Join([]string{"fakecloud-keystone", cr.KeystoneUser, cr.KeystonePassword,
		cr.KeystoneProject, cr.KeystoneAppCredID, cr.KeystoneAppCredSecret, cr.KeystoneStaticToken}, "\x00")))
	return sum[:]
}

func (c *Cloud) ksSignLocked(cl ksClaims) string {
	payload, _ := json.Marshal(cl)
	p := base64.RawURLEncoding.EncodeToString(payload)
	mac := hmac.New(sha256.New, c.ksKeyLocked())
	mac.Write([]byte(p))
	return "gAAAAA" + p + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// ksCheckLocked validates a token: the static token, or one Keystone issued
// that has not expired and whose signing credentials are still current.
func (c *Cloud) ksCheckLocked(token string) (ksClaims, bool) {
	cr := c.creds
	if token == "" {
		return ksClaims{}, false
	}
	if same(token, cr.KeystoneStaticToken) {
		now := c.now().UTC()
		return ksClaims{User: KeystoneUserID(cr.KeystoneUser), Project: KeystoneProjectID(cr.KeystoneProject),
			Methods: []string{"token"}, Issued: now.Unix(), Expires: now.Add(keystoneTokenTTL).Unix()}, true
	}
	rest, ok := strings.CutPrefix(token, "gAAAAA")
	if !ok {
		return ksClaims{}, false
	}
	p, sig, ok := strings.Cut(rest, ".")
	if !ok {
		return ksClaims{}, false
	}
	mac := hmac.New(sha256.New, c.ksKeyLocked())
	mac.Write([]byte(p))
	want := base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
	if !hmac.Equal([]byte(sig), []byte(want)) {
		return ksClaims{}, false
	}
	payload, err := base64.RawURLEncoding.DecodeString(p)
	if err != nil {
		return ksClaims{}, false
	}
	var cl ksClaims
	if json.Unmarshal(payload, &cl) != nil || c.now().Unix() >= cl.Expires {
		return ksClaims{}, false
	}
	return cl, true
}

// ksProjectTokenLocked reports whether token is valid and scoped to a
// project, as Senlin requires.
func (c *Cloud) ksProjectTokenLocked(token string) bool {
	cl, ok := c.ksCheckLocked(token)
	return ok && cl.Project != ""
}
