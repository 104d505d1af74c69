package fakecloud

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
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
	// VMID the call was about, when it named one.
	VMID string `json:"vmID,omitempty"`
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

// serve answers a routed request: it applies faults, runs handle (which
// takes c.mu itself) and logs the exchange.
func (c *Cloud) serve(w http.ResponseWriter, r *http.Request, k call, handle func() reply) {
	entry := Request{Time: c.now().UTC(), Skin: k.skin, Method: r.Method, Path: r.URL.EscapedPath(),
		Query: r.URL.RawQuery, ActionCall: k.action, VMID: k.vmID}
	// The entry is logged before the client can see any answer, so a test
	// that reacts to the answer (or to a dropped connection) finds it.
	record := func(status int) {
		entry.Status = status
		c.mu.Lock()
		c.log = append(c.log, entry)
		c.mu.Unlock()
	}

	c.mu.Lock()
	f := c.matchFaultLocked(k.skin, r, k.action)
	c.mu.Unlock()

	if f != nil && f.Mode == ForwardLate {
		time.Sleep(f.Latency)
	} else if f != nil && f.Latency > 0 {
		select {
		case <-time.After(f.Latency):
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

	rep := handle()
	entry.Accepted = rep.accepted
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
	record(rep.status)
	writeReply(w, rep)
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
// treated as empty.
func readBody(r *http.Request) []byte {
	b, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	return b
}

// actionPage is one page of an action list in DigitalOcean's style, which
// CloudsFor's list follows too: newest first, page and per_page (at most
// 200, default 20), links.pages and meta.total.
func actionPage[T any](r *http.Request, all []*Action, render func(*Action) T) map[string]any {
	q := r.URL.Query()
	page, perPage := 1, 20
	if v, err := strconv.Atoi(q.Get("page")); err == nil && v > 0 {
		page = v
	}
	if v, err := strconv.Atoi(q.Get("per_page")); err == nil && v > 0 {
		perPage = min(v, 200)
	}
	from := min((page-1)*perPage, len(all))
	to := min(from+perPage, len(all))
	items := make([]T, 0, to-from)
	for _, a := range all[from:to] {
		items = append(items, render(a))
	}
	base := "http://" + r.Host + r.URL.Path
	link := func(p int) string { return fmt.Sprintf("%s?page=%d&per_page=%d", base, p, perPage) }
	pages := map[string]string{}
	last := max((len(all)+perPage-1)/perPage, 1)
	if page > 1 {
		pages["first"], pages["prev"] = link(1), link(page-1)
	}
	if page < last {
		pages["next"], pages["last"] = link(page+1), link(last)
	}
	return map[string]any{"actions": items, "links": pageLinks{Pages: pages}, "meta": listMeta{Total: len(all)}}
}

type pageLinks struct {
	Pages map[string]string `json:"pages,omitempty"`
}

type listMeta struct {
	Total int `json:"total"`
}
