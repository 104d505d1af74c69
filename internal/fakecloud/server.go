package fakecloud

import (
	"bytes"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Request is one logged request.
type Request struct {
	Time   time.Time `json:"time"`
	Skin   string    `json:"skin"`
	Method string    `json:"method"`
	// Path is the escaped request path, as it arrived.
	Path string `json:"path"`
	// Query is the raw query string.
	Query string `json:"query,omitempty"`
	// Status answered; 0 when the connection was dropped.
	Status int `json:"status"`
	// ActionCall is true for calls that ask for an action.
	ActionCall bool `json:"actionCall,omitempty"`
	// Accepted is true when such a call started an action.
	Accepted bool `json:"accepted,omitempty"`
	// Handled is true when the API handled the request (accepted or
	// refused it). A proxy error before forwarding, an injected fault that
	// drops or rejects the request first, and a client that left while the
	// request waited leave it false.
	Handled bool `json:"handled,omitempty"`
	// VMID the call was about, when it named one.
	VMID string `json:"vmID,omitempty"`
	// UserAgent the client sent (it tells which operator shard called).
	UserAgent string `json:"userAgent,omitempty"`
	// Proxy is "before-forwarding" when a proxy error answered and the API
	// never saw the request, "after-forwarding" when the API handled it
	// and the proxy lost the answer.
	Proxy string `json:"proxy,omitempty"`
	// AnswerHeld is true when the adversary held the answer back after the
	// API handled the request.
	AnswerHeld bool `json:"answerHeld,omitempty"`
	// Draw names what the adversary's choices for this request derive
	// from: the seed, the skin, method and path, and the path's count.
	Draw string `json:"draw,omitempty"`
	// Choices lists every choice the cloud made answering the request
	// (latency, proxy errors, delays, durations, list order, faults).
	Choices []string `json:"choices,omitempty"`
}

// Log returns a copy of the request log, oldest first.
func (c *Cloud) Log() []Request {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Request(nil), c.log...)
}

// ResetLog empties the request log.
func (c *Cloud) ResetLog() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.log = nil
}

// CountRequests counts logged requests that keep accepts.
func (c *Cloud) CountRequests(keep func(Request) bool) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, r := range c.log {
		if keep == nil || keep(r) {
			n++
		}
	}
	return n
}

// ActionCalls counts calls that asked for an action on a VM (accepted or not).
func (c *Cloud) ActionCalls(vmID string) int {
	return c.CountRequests(func(r Request) bool { return r.ActionCall && r.VMID == vmID })
}

// HandledActionCalls counts action calls on a VM that the API handled
// (accepted or refused): not those a proxy error, an injected fault or a
// client gone while they waited kept from it.
func (c *Cloud) HandledActionCalls(vmID string) int {
	return c.CountRequests(func(r Request) bool { return r.ActionCall && r.VMID == vmID && r.Handled })
}

// LostAnswers counts action calls on a VM whose answer the adversary
// replaced with a proxy error or held back: after one, a provider without
// action history may honestly be unable to tell what happened.
func (c *Cloud) LostAnswers(vmID string) int {
	return c.CountRequests(func(r Request) bool {
		return r.ActionCall && r.VMID == vmID && (r.Proxy != "" || r.AnswerHeld)
	})
}

// AcceptedActions counts actions the cloud started on a VM.
func (c *Cloud) AcceptedActions(vmID string) int {
	return c.CountRequests(func(r Request) bool { return r.ActionCall && r.Accepted && r.VMID == vmID })
}

// reply is a skin's answer to a request.
type reply struct {
	status int
	header http.Header
	body   []byte
	// accepted is true when the call started (or ran) an action.
	accepted bool
}

// jsonReply marshals body as the answer.
func jsonReply(status int, body any) reply {
	h := http.Header{}
	if body == nil {
		return reply{status: status, header: h}
	}
	b, err := json.Marshal(body)
	if err != nil {
		panic(err) // fakecloud's own wire types always marshal
	}
	h.Set("Content-Type", "application/json; charset=utf-8")
	return reply{status: status, header: h, body: b}
}

// call describes a routed request for serve.
type call struct {
	skin   string
	action bool
	vmID   string
}

// serve answers a routed request: it applies injected faults and the
// adversary's choices, runs handle (which takes c.mu itself) and logs the
// exchange with every choice made.
func (c *Cloud) serve(w http.ResponseWriter, r *http.Request, k call, handle func(d *draw) reply) {
	entry := Request{Time: c.now().UTC(), Skin: k.skin, Method: r.Method, Path: r.URL.EscapedPath(),
		Query: r.URL.RawQuery, ActionCall: k.action, VMID: k.vmID, UserAgent: r.UserAgent()}
	c.mu.Lock()
	f := c.matchFaultLocked(k.skin, r, k.action)
	d := c.newDrawLocked(k.skin, r, k.action)
	c.mu.Unlock()
	entry.Draw = d.key
	// The entry is logged before the client can see any answer, so a test
	// that reacts to the answer (or to a dropped connection) finds it.
	record := func(status int) {
		entry.Status, entry.Choices = status, d.choices
		c.mu.Lock()
		c.log = append(c.log, entry)
		c.mu.Unlock()
	}

	// An injected fault decides this request's fate; the adversary only
	// makes the choices inside the API (delays, order, ...).
	var plan requestPlan
	if f != nil {
		d.note("injected fault %s", f.Mode)
	} else {
		plan = d.planRequest(k.action)
	}
	latency := plan.latency
	if f != nil {
		latency = f.Latency
	}
	if f != nil && f.Mode == ForwardLate {
		// A proxy holds the request whether or not the client still waits.
		time.Sleep(latency)
	} else if latency > 0 {
		select {
		case <-time.After(latency):
		case <-r.Context().Done():
			record(0)
			return
		}
	}
	if f != nil {
		switch f.Mode {
		case Reject:
			record(faultStatus(f))
			c.writeFault(w, f)
			return
		case DropBeforeAccept:
			record(0)
			dropConnection(w)
			return
		}
	}
	if plan.proxy == proxyBeforeForwarding {
		entry.Proxy = string(plan.proxy)
		record(plan.proxyStatus)
		writeReply(w, proxyReply(plan.proxyStatus))
		return
	}

	rep := handle(d)
	entry.Accepted, entry.Handled = rep.accepted, true
	if f != nil {
		switch f.Mode {
		case AcceptThenFail:
			record(faultStatus(f))
			c.writeFault(w, f)
			return
		case AcceptThenDrop:
			record(0)
			dropConnection(w)
			return
		case AcceptThenHold:
			record(rep.status)
			f.held <- struct{}{}
			select {
			case <-f.release:
			case <-r.Context().Done():
				return
			}
			writeReply(w, rep)
			return
		}
	}
	switch {
	case plan.proxy == proxyAfterForwarding:
		entry.Proxy = string(plan.proxy)
		record(plan.proxyStatus)
		writeReply(w, proxyReply(plan.proxyStatus))
	case plan.answerDelay > 0:
		entry.AnswerHeld = true
		record(rep.status)
		select {
		case <-time.After(plan.answerDelay):
			writeReply(w, rep)
		case <-r.Context().Done():
		}
	default:
		record(rep.status)
		writeReply(w, rep)
	}
}

func writeReply(w http.ResponseWriter, rep reply) {
	for k, vs := range rep.header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	w.WriteHeader(rep.status)
	_, _ = w.Write(rep.body)
}

func faultStatus(f *Fault) int {
	if f.Status == 0 {
		return http.StatusInternalServerError
	}
	return f.Status
}

func (c *Cloud) writeFault(w http.ResponseWriter, f *Fault) {
	status := faultStatus(f)
	if f.RetryAfter > 0 {
		w.Header().Set("Retry-After", itoa(f.RetryAfter))
	}
	body := f.Body
	if body == "" {
		body = `{"message":"` + strings.ToLower(http.StatusText(status)) + `"}`
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

// dropConnection closes the connection without an answer.
func dropConnection(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	_ = conn.Close()
}

// Handler serves every skin, each under its own prefix:
//
//	/digitalocean  DigitalOcean API v2       (endpoint http://host/digitalocean)
//	/senlin        OpenStack Senlin v1       (endpoint http://host/senlin)
//	/identity      Keystone v3 for Senlin    (auth URL http://host/identity/v3)
//	/e2e           E2E Networks MyAccount    (endpoint http://host/e2e)
//	/cloudsfor     CloudsFor                 (endpoint http://host/cloudsfor)
//	/openscaler    OpenScaler                (endpoint http://host/openscaler)
//	/fakecloud     control API (VMs, faults, log) for demos and tests
func (c *Cloud) Handler() http.Handler {
	skins := c.skins()
	control := c.controlHandler()
	// Routing is by hand on the escaped path: http.ServeMux would clean
	// "/../" away and hide what a client really sent.
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		segs := splitPath(r.URL.EscapedPath())
		if len(segs) == 0 {
			http.NotFound(w, r)
			return
		}
		if segs[0] == "fakecloud" {
			control.ServeHTTP(w, r)
			return
		}
		h, ok := skins[segs[0]]
		if !ok {
			http.NotFound(w, r)
			return
		}
		h(w, r, segs[1:])
	})
}

// skinHandler serves one API; segs is the unescaped path after its prefix.
type skinHandler func(w http.ResponseWriter, r *http.Request, segs []string)

// splitPath splits an escaped path into unescaped segments. An empty
// trailing segment (a trailing slash) is dropped; an undecodable segment is
// kept as it came.
func splitPath(escaped string) []string {
	parts := strings.Split(strings.Trim(escaped, "/"), "/")
	out := make([]string, 0, len(parts))
	for _, p := range parts {
		if p == "" {
			continue
		}
		if u, err := url.PathUnescape(p); err == nil {
			p = u
		}
		out = append(out, p)
	}
	return out
}

// skins lists the API skins by path prefix. Each skin registers itself here.
func (c *Cloud) skins() map[string]skinHandler {
	return map[string]skinHandler{
		"digitalocean": c.serveDigitalOcean,
		"openscaler":   c.serveOpenScaler,
		"e2e":          c.serveE2E,
		"senlin":       c.serveSenlin,
		"identity":     c.serveKeystone,
		"cloudsfor":    c.serveCloudsFor,
	}
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// readBody reads a request body (bounded); a body that cannot be read is
// treated as empty. The body stays readable for the adversary's draw.
func readBody(r *http.Request) []byte {
	b, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	r.Body = io.NopCloser(bytes.NewReader(b))
	return b
}

// isJSON tells whether a request says its body is JSON.
func isJSON(r *http.Request) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && mt == "application/json"
}
