package provider

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestTimeoutAfterSendingIsAmbiguous(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	c, err := NewHTTPClient(ClientOptions{Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Send(context.Background(), c, http.MethodPost, srv.URL+"/x?apikey=SECRET", nil, map[string]string{"type": "reboot"})
	pe := AsError(err)
	if pe.Kind != Ambiguous {
		t.Fatalf("a POST that timed out after sending is %s (%v), want Ambiguous", pe.Kind, err)
	}
	if strings.Contains(pe.Message, "SECRET") {
		t.Fatalf("message %q shows the query string", pe.Message)
	}
}

func TestRefusedIsRetryable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	c, _ := NewHTTPClient(ClientOptions{Timeout: time.Second})
	_, err := Send(context.Background(), c, http.MethodPost, url+"/x", nil, map[string]string{})
	if pe := AsError(err); pe.Kind != Retryable {
		t.Fatalf("connection refused is %s (%v), want Retryable", pe.Kind, err)
	}
}

func TestGateRefusesWithoutSendingAndPollsStepBack(t *testing.T) {
	hits := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits++ }))
	defer srv.Close()
	gate := NewGate(60, 1) // one a second, burst 1
	c, _ := NewHTTPClient(ClientOptions{Gate: gate, MaxWait: time.Millisecond, Timeout: time.Second})
	if _, err := Send(context.Background(), c, http.MethodGet, srv.URL, nil, nil); err != nil {
		t.Fatal(err)
	}
	// The bucket is empty: a poll does not wait at all.
	_, err := Send(LowPriority(context.Background()), c, http.MethodGet, srv.URL, nil, nil)
	pe := AsError(err)
	if pe.Kind != Retryable || pe.Class != "RateLimited" || pe.RetryAfter <= 0 || pe.RetryAfter > time.Second {
		t.Fatalf("poll on an empty budget: %+v", pe)
	}
	// A submission waits up to 2.5 token intervals, so it gets the next token.
	start := time.Now()
	if _, err := Send(context.Background(), c, http.MethodPost, srv.URL, nil, map[string]string{}); err != nil {
		t.Fatalf("submission should wait for the next token: %v", err)
	}
	if waited := time.Since(start); waited < 500*time.Millisecond {
		t.Errorf("submission waited %s, want about a second", waited)
	}
	if hits != 2 {
		t.Errorf("%d requests reached the server, want 2", hits)
	}
}

func TestProvider429BlocksTheGate(t *testing.T) {
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		w.Header().Set("Retry-After", "30")
		w.WriteHeader(http.StatusTooManyRequests)
	}))
	defer srv.Close()
	c, _ := NewHTTPClient(ClientOptions{Gate: NewGate(6000, 100), Timeout: time.Second})
	r, err := Send(context.Background(), c, http.MethodPost, srv.URL, nil, map[string]string{})
	if err != nil || r.StatusCode != 429 {
		t.Fatalf("first call: %v %v", r, err)
	}
	_, err = Send(context.Background(), c, http.MethodGet, srv.URL, nil, nil)
	pe := AsError(err)
	if pe.Class != "RateLimited" || pe.RetryAfter < 29*time.Second {
		t.Fatalf("after a 429 with Retry-After 30 the next request should be held back ~30s, got %+v", pe)
	}
	if calls != 1 {
		t.Fatalf("%d calls reached the provider, want 1", calls)
	}
}

// The provider's own count (ratelimit-remaining, ratelimit-reset) holds
// requests back before its window is spent: no 429 is drawn.
func TestSpentBudgetBlocksTheGateBeforeA429(t *testing.T) {
	calls := 0
	reset := time.Now().Add(30 * time.Second)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		w.Header().Set("Ratelimit-Limit", "250")
		w.Header().Set("Ratelimit-Remaining", strconv.Itoa(max(3-calls, 0)))
		w.Header().Set("Ratelimit-Reset", strconv.FormatInt(reset.Unix(), 10))
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	c, _ := NewHTTPClient(ClientOptions{Gate: NewGate(6000, 100), MaxWait: time.Millisecond, Timeout: time.Second})
	// Remaining 2 after the first answer: the window is as good as spent.
	if _, err := Send(context.Background(), c, http.MethodGet, srv.URL, nil, nil); err != nil {
		t.Fatal(err)
	}
	_, err := Send(context.Background(), c, http.MethodGet, srv.URL, nil, nil)
	if pe := AsError(err); pe == nil || pe.Class != "RateLimited" || !pe.NotSent || pe.RetryAfter < 28*time.Second {
		t.Fatalf("with 2 requests left until the reset, the next request should wait for it, got %+v", pe)
	}
	if calls != 1 {
		t.Fatalf("%d calls reached the provider, want 1", calls)
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	for _, tc := range []struct {
		h    http.Header
		want time.Duration
	}{
		{http.Header{"Retry-After": {"7"}}, 7 * time.Second},
		{http.Header{"Retry-After": {now.Add(9 * time.Second).UTC().Format(http.TimeFormat)}}, 9 * time.Second},
		{http.Header{"Ratelimit-Reset": {"1700000042"}}, 42 * time.Second},
		{http.Header{}, time.Second},
	} {
		if got := RetryAfter(tc.h, now); got != tc.want {
			t.Errorf("RetryAfter(%v) = %s, want %s", tc.h, got, tc.want)
		}
	}
}

func TestCheckEndpoint(t *testing.T) {
	for _, ok := range []string{"https://api.digitalocean.com", "http://127.0.0.1:8080/x", "http://localhost:1", "http://[::1]:80"} {
		if err := CheckEndpoint(ok); err != nil {
			t.Errorf("%s refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"http://api.example.com", "ftp://x", "not a url", "http://10.0.0.1"} {
		err := CheckEndpoint(bad)
		var pe *Error
		if !errors.As(err, &pe) || pe.Kind != Terminal {
			t.Errorf("%s accepted (%v)", bad, err)
		}
	}
}

func TestRedact(t *testing.T) {
	got := Redact(`Put "https://x/api/v1/nodes/1/actions/?apikey=k3y&location=Delhi": EOF`)
	if strings.Contains(got, "k3y") || !strings.Contains(got, "?<redacted>") {
		t.Fatalf("Redact: %s", got)
	}
}

// A poll whose first request got a token may wait for the rest of its
// requests (a read-back): were it refused half-way every time, it would
// never end while submissions keep the budget busy.
func TestPollThatStartedMayFinish(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	gate := NewGate(120, 1) // one every 500ms, burst 1
	c, _ := NewHTTPClient(ClientOptions{Gate: gate, MaxWait: time.Millisecond, Timeout: time.Second})
	poll := LowPriority(context.Background())
	if _, err := Send(poll, c, http.MethodGet, srv.URL, nil, nil); err != nil {
		t.Fatalf("the poll's first request, on a free token: %v", err)
	}
	if _, err := Send(poll, c, http.MethodGet, srv.URL, nil, nil); err != nil {
		t.Fatalf("the same poll's read-back should wait for its token: %v", err)
	}
	// A new poll still steps back on an empty budget.
	if _, err := Send(LowPriority(context.Background()), c, http.MethodGet, srv.URL, nil, nil); !IsNotSent(err) {
		t.Fatalf("a new poll on an empty budget: %v, want refused without sending", err)
	}
}

// A submission's requests use its reserved slot: the first waits for the
// slot's time, and a second one (Senlin authenticates first) goes without
// waiting, charged to the budget.
func TestTicketedSubmission(t *testing.T) {
	hits := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits++ }))
	defer srv.Close()
	gate := NewGate(60, 1) // one a second, burst 1
	c, _ := NewHTTPClient(ClientOptions{Gate: gate, MaxWait: time.Millisecond, Timeout: time.Second})
	now := time.Now()
	first := gate.Reserve(now)
	second := gate.Reserve(now)
	if d := second.At.Sub(first.At); d < 900*time.Millisecond {
		t.Fatalf("two slots %s apart, want a token interval", d)
	}
	ctx := WithTicket(context.Background(), second)
	start := time.Now()
	for range 2 {
		if _, err := Send(ctx, c, http.MethodPost, srv.URL, nil, map[string]string{}); err != nil {
			t.Fatal(err)
		}
	}
	if waited := time.Since(start); waited < 800*time.Millisecond || waited > 1500*time.Millisecond {
		t.Errorf("the ticketed requests took %s, want the wait for their slot only (about 1s)", waited)
	}
	if hits != 2 {
		t.Errorf("%d requests reached the server, want 2", hits)
	}
	// The budget was charged: an ordinary request now waits (or is refused).
	if _, err := Send(LowPriority(context.Background()), c, http.MethodGet, srv.URL, nil, nil); !IsNotSent(err) {
		t.Errorf("a poll right after: %v, want refused, the budget spent", err)
	}
}

// windowServer counts requests in fixed windows the way DigitalOcean's
// answers describe them (ratelimit-limit, -remaining, -reset in whole
// seconds; a window starts with its first request), answers slowly so that
// many requests are in flight at once, and 429s whatever is over the limit.
type windowServer struct {
	limit  int
	window time.Duration
	delay  time.Duration
	// reverse answers a window's later requests sooner: answers come back
	// out of order, the later figures first.
	reverse bool

	mu        sync.Mutex
	start     time.Time
	used      int
	ok, over  int
	perWindow []int // requests each window took
}

func (s *windowServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	now := time.Now()
	if s.start.IsZero() || now.Sub(s.start) >= s.window {
		s.start, s.used = now, 0
		s.perWindow = append(s.perWindow, 0)
	}
	reset := s.start.Add(s.window)
	allowed := s.used < s.limit
	if allowed {
		s.used++
		s.ok++
		s.perWindow[len(s.perWindow)-1]++
	} else {
		s.over++
	}
	remaining := s.limit - s.used
	s.mu.Unlock()
	delay := s.delay
	if s.reverse {
		delay = max(s.delay-time.Duration(s.limit-remaining)*s.delay/time.Duration(s.limit), 0)
	}
	time.Sleep(delay)
	w.Header().Set("Ratelimit-Limit", strconv.Itoa(s.limit))
	w.Header().Set("Ratelimit-Remaining", strconv.Itoa(remaining))
	w.Header().Set("Ratelimit-Reset", strconv.FormatInt(reset.Unix(), 10))
	if !allowed {
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusTooManyRequests)
	}
}

// sendAll has senders each send `each` requests, coming back when the gate
// says (RetryAfter), and returns how many failed or were not answered 200.
func sendAll(c *http.Client, url string, senders, each int) int32 {
	var wg sync.WaitGroup
	var failed atomic.Int32
	for range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for sent := 0; sent < each; {
				r, err := Send(context.Background(), c, http.MethodGet, url, nil, nil)
				if pe := AsError(err); err != nil && pe.NotSent && pe.Class == RateLimited {
					time.Sleep(pe.RetryAfter)
					continue
				}
				if err != nil || r.StatusCode != http.StatusOK {
					failed.Add(1)
				}
				sent++
			}
		}()
	}
	wg.Wait()
	return failed.Load()
}

// Many requests in flight at once never overrun the window the provider
// reports: the gate counts what it lets go against the provider's last
// figure, not only the figure itself (which lags by the requests in
// flight). Before any answer, the configured burst is the bound.
func TestGateNeverOverrunsTheProvidersWindow(t *testing.T) {
	ws := &windowServer{limit: 20, window: 2 * time.Second, delay: 60 * time.Millisecond}
	srv := httptest.NewServer(ws)
	defer srv.Close()
	c, _ := NewHTTPClient(ClientOptions{Gate: NewGate(6000, 5), MaxWait: 50 * time.Millisecond, Timeout: 5 * time.Second})
	const senders, each = 20, 3
	failed := sendAll(c, srv.URL, senders, each)
	if ws.over != 0 || failed != 0 {
		t.Fatalf("%d requests answered 429 (%d failed) of %d sent; the gate must never overrun the reported window", ws.over, failed, ws.ok+ws.over)
	}
	if ws.ok != senders*each {
		t.Fatalf("%d requests went through, want %d", ws.ok, senders*each)
	}
}

// Answers that come back out of order (a window's later figures first)
// still let the gate spend the window: each answer bounds what is left
// from below, and the gate keeps the best bound. Keeping the worst one
// made every window look spent early, and the waiting grew each window.
func TestGateSpendsTheWindowWhenAnswersComeOutOfOrder(t *testing.T) {
	ws := &windowServer{limit: 60, window: 2 * time.Second, delay: 150 * time.Millisecond, reverse: true}
	srv := httptest.NewServer(ws)
	defer srv.Close()
	c, _ := NewHTTPClient(ClientOptions{Gate: NewGate(60000, 30), MaxWait: 50 * time.Millisecond, Timeout: 5 * time.Second})
	sendAll(c, srv.URL, 20, 10)
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if ws.over != 0 {
		t.Fatalf("%d requests answered 429", ws.over)
	}
	// Every window but the last had requests waiting all along: each must
	// have been spent to the gate's margin (and a request or two the
	// answers still in flight leave in doubt).
	for i, n := range ws.perWindow[:len(ws.perWindow)-1] {
		if n < ws.limit-budgetLow-2 {
			t.Errorf("window %d took %d requests of %d with more waiting: %v", i+1, n, ws.limit, ws.perWindow)
		}
	}
}

// Callers pass the time their reconcile started, so the times the gate
// sees come out of order. The pace must hold all the same:
// golang.org/x/time/rate credits the time between an earlier and a later
// call again each time they come out of order.
func TestGatePaceHoldsWithTimesOutOfOrder(t *testing.T) {
	gate := NewGate(60, 1) // one a second
	base := time.Now()
	var last time.Time
	const n = 100
	for i := range n {
		now := base.Add(time.Duration(i) * 10 * time.Millisecond)
		if i%2 == 1 {
			now = now.Add(-500 * time.Millisecond) // a reconcile that started a little earlier
		}
		last = gate.Reserve(now).At
	}
	if min := base.Add((n - 2) * time.Second); last.Before(min) {
		t.Fatalf("%d slots reserved within %s of the first, want one a second (the last at %s or later)", n, last.Sub(base), min.Sub(base))
	}
}

// After a window the gate found spent, one request goes first and the
// rest wait for its answer: where the window slides (DigitalOcean's reset
// is when its oldest request expires), one slot frees there, not a whole
// window, and a crowd let go at the reset would draw 429s.
func TestGateProbesAfterASpentWindow(t *testing.T) {
	g := NewGate(60000, 100)
	now := time.Unix(1_800_000_000, 0)
	h := func(remaining int, reset time.Time) http.Header {
		return http.Header{"Ratelimit-Remaining": {strconv.Itoa(remaining)}, "Ratelimit-Reset": {strconv.FormatInt(reset.Unix(), 10)}}
	}
	l, hd := g.take(now)
	if hd.wait != 0 {
		t.Fatal("the first request should go")
	}
	g.answered(l, h(budgetLow, now.Add(10*time.Second)), now)
	if _, hd := g.take(now.Add(time.Second)); hd.wait <= 0 || !hd.byWindow {
		t.Fatalf("a spent window should hold the next request for itself, got %+v", hd)
	}
	end := now.Add(11 * time.Second) // the reset, rounded up
	probe, hd := g.take(end)
	if hd.wait != 0 {
		t.Fatalf("the first request after the reset should go, held %+v", hd)
	}
	if _, hd := g.take(end.Add(10 * time.Millisecond)); hd.wait <= 0 {
		t.Fatal("a second request should wait for the first one's answer")
	}
	g.answered(probe, h(249, end.Add(60*time.Second)), end.Add(50*time.Millisecond))
	if _, hd := g.take(end.Add(60 * time.Millisecond)); hd.wait != 0 {
		t.Fatalf("after the answer shows a new window, requests go: held %+v", hd)
	}
}

// A ticketed request never leaves after its NotAfter (the last moment the
// submission's recorded window lets it): the hold is handed back.
func TestTicketNeverLeavesAfterNotAfter(t *testing.T) {
	hits := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits++ }))
	defer srv.Close()
	gate := NewGate(6000, 10)
	c, _ := NewHTTPClient(ClientOptions{Gate: gate, Timeout: time.Second})
	ticket := gate.Reserve(time.Now())
	ticket.NotAfter = time.Now().Add(-time.Millisecond)
	ctx, cancel := context.WithTimeout(WithTicket(context.Background(), ticket), 10*time.Second)
	defer cancel()
	_, err := Send(ctx, c, http.MethodPost, srv.URL, nil, map[string]string{})
	if !IsNotSent(err) || hits != 0 {
		t.Fatalf("%v, %d requests reached the server; want not sent", err, hits)
	}
}

// A provider that quotes the credentials it was sent, or the Provider's
// secret values, in an answer never hands them to a driver: they could end
// in a condition, an event or a log.
func TestAnswersNeverCarryCredentials(t *testing.T) {
	const password, token = "hunter2-very-secret", "osc_live_SECRET123"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"message": "token `+strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")+
			` is expired; header was `+r.Header.Get("Authorization")+`; your password `+password+` is wrong; user admin"}`)
	}))
	defer srv.Close()
	hc, err := NewHTTPClient(ClientOptions{Timeout: 5 * time.Second, Secrets: [][]byte{[]byte(password), []byte("abc")}})
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, srv.URL, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{token, password} {
		if strings.Contains(string(body), secret) {
			t.Errorf("answer %q carries %q", body, secret)
		}
	}
	// What is no secret stays: the user name, and values too short to scrub.
	if !strings.Contains(string(body), "user admin") || !strings.Contains(string(body), "<redacted> is expired") {
		t.Errorf("answer %q: want the secrets replaced and the rest kept", body)
	}
}
