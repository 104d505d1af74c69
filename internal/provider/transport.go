package provider

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ClientOptions builds the HTTP client every driver of one Provider uses.
type ClientOptions struct {
	// Type labels metrics.
	Type string
	// CABundle is PEM, trusted in addition to the system roots.
	CABundle []byte
	// Gate is the Provider's request budget.
	Gate *Gate
	// MaxWait is how long a request may wait for the budget before it is
	// handed back as RateLimited (so reconcile workers never block long).
	MaxWait time.Duration
	// Timeout bounds one request.
	Timeout time.Duration
	// Observe, when set, is told of every response (metrics).
	Observe func(providerType, method string, code int, d time.Duration)
	// Secrets are the Provider's credential values: a provider that echoes
	// one in an answer (an error message quoting the token) has it
	// replaced before any driver reads the answer, so it never reaches a
	// condition, an event or a log.
	Secrets [][]byte
}

// NewHTTPClient returns a client with TLS verification on, the gate in
// front and transport errors classified as Retryable (nothing was sent) or
// Ambiguous (the request went out and no answer came back).
func NewHTTPClient(opts ClientOptions) (*http.Client, error) {
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12}
	if len(opts.CABundle) > 0 {
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(opts.CABundle) {
			return nil, NewTerminal(InvalidConfig, "spec.caBundle holds no PEM certificate")
		}
		tlsConfig.RootCAs = pool
	}
	base := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tlsConfig,
		TLSHandshakeTimeout:   10 * time.Second,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   32,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
		ForceAttemptHTTP2:     true,
	}
	timeout := opts.Timeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	maxWait := opts.MaxWait
	if maxWait == 0 {
		maxWait = 2 * time.Second
	}
	return &http.Client{
		// The timeout is applied in transport, not as http.Client.Timeout:
		// the client replaces a timed-out request's error with one that
		// hides whether the request was sent.
		Transport: &transport{
			base: base, gate: opts.Gate, maxWait: maxWait, timeout: timeout,
			typ: opts.Type, observe: opts.Observe, secrets: opts.Secrets,
		},
		// Redirects could carry credentials to another host; providers do not use them.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}, nil
}

type transport struct {
	base    http.RoundTripper
	gate    *Gate
	maxWait time.Duration
	timeout time.Duration
	typ     string
	observe func(providerType, method string, code int, d time.Duration)
	secrets [][]byte
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	var l letGo
	if t.gate != nil {
		var h hold
		var err error
		if ticket, ok := req.Context().Value(ticketKey{}).(*Ticket); ok && ticket != nil {
			l, h, err = ticket.admit(req.Context(), time.Now())
		} else {
			l, h, err = t.gate.admit(req.Context(), time.Now(), t.maxWait)
		}
		if err != nil {
			return nil, &Error{Kind: Retryable, Class: Unavailable, NotSent: true, Message: "request cancelled while waiting for the rate limit", Err: err}
		}
		if h.wait > 0 {
			return nil, &Error{Kind: Retryable, Class: RateLimited, RetryAfter: h.wait, NotSent: true, WindowSpent: h.byWindow,
				Message: fmt.Sprintf("client-side rate limit: next request slot in %s", h.wait.Round(10*time.Millisecond))}
		}
	}
	var answer http.Header // what the gate learns of the provider's window
	if t.gate != nil {
		defer func() { t.gate.answered(l, answer, time.Now()) }()
	}

	var mu sync.Mutex
	var wrote bool
	trace := &httptrace.ClientTrace{WroteRequest: func(info httptrace.WroteRequestInfo) {
		mu.Lock()
		wrote = info.Err == nil
		mu.Unlock()
	}}
	start := time.Now()
	ctx, cancel := context.WithTimeout(req.Context(), t.timeout)
	resp, err := t.base.RoundTrip(req.WithContext(httptrace.WithClientTrace(ctx, trace)))
	if err != nil {
		cancel()
		mu.Lock()
		sent := wrote
		mu.Unlock()
		if t.observe != nil {
			t.observe(t.typ, req.Method, 0, time.Since(start))
		}
		return nil, TransportError(err, sent)
	}
	if t.observe != nil {
		t.observe(t.typ, req.Method, resp.StatusCode, time.Since(start))
	}
	answer = resp.Header
	if resp.StatusCode == http.StatusTooManyRequests && t.gate != nil {
		t.gate.Block(time.Now().Add(RetryAfter(resp.Header, time.Now())))
	}
	// The timeout covers reading the body too; it ends when the body is closed.
	resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: cancel}
	resp.Body = &scrubbedBody{ReadCloser: resp.Body, secrets: t.secretsOf(req)}
	return resp, nil
}

// minSecret is the shortest credential value scrubbed from answers: a
// shorter one would blank ordinary words.
const minSecret = 6

// secretsOf is what an answer to req must not carry: the Provider's
// credential values, and the credentials req itself sent (a Keystone
// token, a Basic or Bearer value).
func (t *transport) secretsOf(req *http.Request) [][]byte {
	out := make([][]byte, 0, len(t.secrets)+3)
	add := func(v string) {
		if len(v) >= minSecret {
			out = append(out, []byte(v))
		}
	}
	for _, s := range t.secrets {
		add(strings.TrimSpace(string(s)))
	}
	if a := req.Header.Get("Authorization"); a != "" {
		add(a)
		if _, cred, ok := strings.Cut(a, " "); ok {
			add(strings.TrimSpace(cred))
		}
	}
	add(req.Header.Get("X-Auth-Token"))
	return out
}

// scrubbedBody is an answer with every secret replaced by "<redacted>".
// It is read whole at the first Read (answers are small JSON documents).
type scrubbedBody struct {
	io.ReadCloser
	secrets [][]byte
	r       io.Reader
}

func (b *scrubbedBody) Read(p []byte) (int, error) {
	if b.r == nil {
		if len(b.secrets) == 0 {
			b.r = b.ReadCloser
		} else {
			all, err := io.ReadAll(b.ReadCloser)
			for _, s := range b.secrets {
				all = bytes.ReplaceAll(all, s, []byte("<redacted>"))
			}
			if err != nil {
				b.r = io.MultiReader(bytes.NewReader(all), errReader{err})
			} else {
				b.r = bytes.NewReader(all)
			}
		}
	}
	return b.r.Read(p)
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c *cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}

// WithHeaders returns a copy of c whose requests carry the headers set adds
// (credentials, user agent). The copy shares c's transport: TLS, rate limit
// and error classification.
func WithHeaders(c *http.Client, set func(http.Header)) *http.Client {
	hc := *c
	hc.Transport = &headerTransport{base: c.Transport, set: set}
	return &hc
}

type headerTransport struct {
	base http.RoundTripper
	set  func(http.Header)
}

func (t *headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	t.set(r.Header)
	return t.base.RoundTrip(r)
}

// TransportError classifies an error from sending a request: nothing sent is
// Retryable; sent without an answer is Ambiguous.
func TransportError(err error, sent bool) *Error {
	var pe *Error
	if errors.As(err, &pe) {
		return pe
	}
	msg := Redact(err.Error())
	if !sent {
		return &Error{Kind: Retryable, Class: Unavailable, NotSent: true, Message: "request not sent: " + msg, Err: err}
	}
	return &Error{Kind: Ambiguous, Class: Unavailable, Message: "request sent but no answer: " + msg, Err: err}
}

// RetryAfter reads how long a provider asked us to wait: Retry-After
// (seconds or an HTTP date), else RateLimit-Reset (unix time, DigitalOcean),
// else one second.
func RetryAfter(h http.Header, now time.Time) time.Duration {
	if v := h.Get("Retry-After"); v != "" {
		if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && s >= 0 {
			return time.Duration(s) * time.Second
		}
		if t, err := http.ParseTime(v); err == nil {
			return max(t.Sub(now), 0)
		}
	}
	if v := h.Get("Ratelimit-Reset"); v != "" {
		if s, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
			if d := time.Unix(s, 0).Sub(now); d > 0 {
				return d
			}
		}
	}
	return time.Second
}

// CheckEndpoint refuses anything but https, except plain http to a
// loopback address (local testing, fakecloud).
func CheckEndpoint(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return NewTerminal(InvalidConfig, fmt.Sprintf("endpoint %q is not a URL", Redact(raw)))
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if isLoopback(u.Hostname()) {
			return nil
		}
		return NewTerminal(InvalidConfig,
			fmt.Sprintf("endpoint %s uses plain http; only https is allowed except to a loopback address", Redact(raw)))
	default:
		return NewTerminal(InvalidConfig, fmt.Sprintf("endpoint %q must be an https URL", Redact(raw)))
	}
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
