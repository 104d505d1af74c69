package provider

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// Gate is one Provider's request budget. Submissions and polls share it,
// and it outlives driver rebuilds (new credentials, new spec). Three things
// hold a request back:
//
//   - the client-side rate (a token bucket): requests spread evenly over
//     time at the configured or documented rate;
//   - the provider's own count, where its answers report it (DigitalOcean's
//     ratelimit-remaining and ratelimit-reset): the gate counts every
//     request it lets go against the provider's last figure, so requests in
//     flight, which that figure does not show yet, can never overrun the
//     window and draw a 429;
//   - a provider's Retry-After, after a 429 all the same.
type Gate struct {
	limiter *rate.Limiter

	mu           sync.Mutex
	blockedUntil time.Time
	// windowEnd is when the provider's current window ends (its reported
	// reset, rounded up: the header has whole seconds); windowLeft is how
	// many requests the gate may still let go before it.
	windowEnd  time.Time
	windowLeft int
	// spentEnd is the end of the last window the gate found spent. Past
	// it, one request goes first and the rest wait for its answer: a
	// sliding window (DigitalOcean's reset is when its oldest request
	// expires) frees one slot there, not a whole window.
	spentEnd time.Time
	// inFlight counts requests let go whose answers have not come; sent
	// counts every request let go.
	inFlight int
	sent     int64

	// latest is the latest time the limiter was given (monotonic).
	latest time.Time
}

// letGo is what the gate knew when it let one request go: which of the
// others may reach the provider after it, and so be missing from the
// figure its answer reports.
type letGo struct {
	sentBefore int64
	inFlight   int
}

// budgetLow is how many requests of the provider's window the gate leaves
// unspent, for requests it cannot see (another client on the same token).
const budgetLow = 2

// NewGate returns a gate allowing perMinute requests a minute with the given burst.
func NewGate(perMinute, burst int) *Gate {
	return &Gate{limiter: rate.NewLimiter(rate.Limit(float64(perMinute)/60), burst)}
}

// SetLimit changes the budget in place, keeping the tokens already spent.
func (g *Gate) SetLimit(perMinute, burst int) {
	limit := rate.Limit(float64(perMinute) / 60)
	if g.limiter.Limit() == limit && g.limiter.Burst() == burst {
		return
	}
	now := g.monotonic(time.Now())
	g.limiter.SetLimitAt(now, limit)
	g.limiter.SetBurstAt(now, burst)
}

// monotonic is now, or the latest time the limiter was given if that is
// later. Callers pass the time their reconcile started, so times arrive
// out of order, and golang.org/x/time/rate credits the time between an
// earlier and a later call again each time they do: the pace ran at 300
// a minute for a limit of 243.
func (g *Gate) monotonic(now time.Time) time.Time {
	g.mu.Lock()
	defer g.mu.Unlock()
	if now.Before(g.latest) {
		return g.latest
	}
	g.latest = now
	return now
}

// Block keeps every request away until t (a provider's Retry-After).
func (g *Gate) Block(t time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if t.After(g.blockedUntil) {
		g.blockedUntil = t
	}
}

// heldUntilLocked is when the provider lets the next request through:
// zero when it may go now. byWindow says the provider's reported window
// holds it, not a Retry-After.
func (g *Gate) heldUntilLocked(now time.Time) (held time.Time, byWindow bool) {
	if now.Before(g.blockedUntil) {
		return g.blockedUntil, false
	}
	if now.Before(g.windowEnd) && g.windowLeft <= budgetLow {
		g.spentEnd = g.windowEnd
		return g.windowEnd, true
	}
	if !g.spentEnd.IsZero() && !now.Before(g.spentEnd) && !g.windowEnd.After(g.spentEnd) && g.inFlight > 0 {
		return now.Add(probeWait), true // the first request after a spent window has not been answered yet
	}
	return time.Time{}, false
}

// probeWait is how often requests look again while the first request
// after a spent window waits for its answer.
const probeWait = 100 * time.Millisecond

// take counts one request against the provider's window and lets it go,
// or says how long until the provider will take one.
func (g *Gate) take(now time.Time) (letGo, hold) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if held, byWindow := g.heldUntilLocked(now); !held.IsZero() {
		return letGo{}, hold{wait: held.Sub(now), byWindow: byWindow}
	}
	if now.Before(g.windowEnd) {
		g.windowLeft--
	}
	l := letGo{sentBefore: g.sent, inFlight: g.inFlight}
	g.sent++
	g.inFlight++
	return l, hold{}
}

// hold is how long a request must wait, and whether for the provider's
// reported window (else its Retry-After, or the client-side rate).
type hold struct {
	wait     time.Duration
	byWindow bool
}

// answered is told how every request take let go ended: with the answer's
// headers, or nil when no answer came.
//
// An answer's figure counts the request and whatever reached the provider
// before it; the ones that may have reached it after (in flight when it
// left, or let go since) are taken off. Each answer so gives a figure the
// window cannot be below; the gate keeps the highest. (Keeping the lowest
// would pile up each answer's doubt: a window whose first answers came
// back out of order would look spent early, every window.)
func (g *Gate) answered(l letGo, h http.Header, now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.inFlight = max(g.inFlight-1, 0)
	if h == nil {
		return
	}
	remaining, err := strconv.Atoi(h.Get("Ratelimit-Remaining"))
	if err != nil {
		return
	}
	reset, err := strconv.ParseInt(h.Get("Ratelimit-Reset"), 10, 64)
	if err != nil {
		return
	}
	// Whole seconds: the window may end up to a second after the time given.
	end := time.Unix(reset+1, 0)
	if !end.After(now) || end.Sub(now) > time.Hour {
		return
	}
	left := remaining - l.inFlight - int(g.sent-l.sentBefore-1)
	switch {
	case end.After(g.windowEnd): // a later window (or a sliding one moved on)
		g.windowEnd, g.windowLeft = end, left
	case end.Equal(g.windowEnd):
		g.windowLeft = max(g.windowLeft, left)
	}
}

// admit takes a request slot: it waits up to maxWait for one, and otherwise
// says how long the caller should come back after, without sending.
//
// A step that needs two requests in a row (a lookup, a read-back) must be
// able to wait for the second token, so maxWait is at least 2.5 token
// intervals. Low-priority requests (polls) take only a token that is free
// now: while submissions wait for the budget, polls step back. No request
// waits past its context's deadline: it could not be sent after it.
func (g *Gate) admit(ctx context.Context, now time.Time, maxWait time.Duration) (letGo, hold, error) {
	if held := g.held(now); held > 0 {
		return letGo{}, hold{wait: held}, nil
	}
	if perToken := time.Duration(float64(time.Second) / float64(g.limiter.Limit())); maxWait < perToken*5/2 {
		maxWait = perToken * 5 / 2
	}
	if deadline, ok := ctx.Deadline(); ok {
		maxWait = min(maxWait, deadline.Sub(now))
	}
	lp, _ := ctx.Value(lowPriorityKey{}).(*lowPriority)
	if lp != nil && !lp.admitted.Load() {
		maxWait = 0
	}
	now = g.monotonic(now)
	r := g.limiter.ReserveN(now, 1)
	if !r.OK() {
		return letGo{}, hold{wait: time.Minute}, nil
	}
	delay := r.DelayFrom(now)
	if delay > maxWait {
		r.CancelAt(now)
		return letGo{}, hold{wait: delay}, nil
	}
	if err := sleep(ctx, delay); err != nil {
		r.Cancel()
		return letGo{}, hold{}, err
	}
	// The token is spent either way: a request the provider's window
	// holds back comes back later.
	l, h := g.take(now.Add(delay))
	if h.wait > 0 {
		return letGo{}, h, nil
	}
	if lp != nil {
		lp.admitted.Store(true)
	}
	return l, hold{}, nil
}

// held is how long the provider still keeps requests away.
func (g *Gate) held(now time.Time) time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	if held, _ := g.heldUntilLocked(now); !held.IsZero() {
		return held.Sub(now)
	}
	return 0
}

// Ticket is a request slot taken ahead of time for one submission, so that
// the time its request leaves is known (and recorded) before the intent is
// written, and a submission never waits for the budget after its intent.
type Ticket struct {
	// At is when the slot is the submission's. A submission the provider's
	// window held back at its slot moves At to when the window resets.
	At time.Time
	// NotAfter, when set, is the last moment the submission's request may
	// leave: a hold past it is handed back, never waited out.
	NotAfter time.Time

	gate *Gate
	r    *rate.Reservation
	used atomic.Bool
}

// Reserve takes the next request slot of the budget, now or later (after
// the slots already taken, and after the provider's window or Retry-After
// lets requests through again). The slot is the caller's until it is used
// (WithTicket) or cancelled.
func (g *Gate) Reserve(now time.Time) *Ticket {
	now = g.monotonic(now)
	t := &Ticket{At: now, gate: g}
	if r := g.limiter.ReserveN(now, 1); r.OK() {
		t.r = r
		t.At = now.Add(r.DelayFrom(now))
	}
	if held := g.held(now); held > 0 && now.Add(held).After(t.At) {
		t.At = now.Add(held)
	}
	return t
}

// Cancel gives an unused slot back.
func (t *Ticket) Cancel() {
	if t != nil && t.r != nil && !t.used.Load() {
		t.r.Cancel()
	}
}

type ticketKey struct{}

// ticketHoldWait is the longest the provider's window (or Retry-After) is
// waited out inside a ticketed request; a longer hold is handed back to
// the caller, which keeps the slot and comes back when it ends.
const ticketHoldWait = 2 * time.Second

// WithTicket makes the requests of one submission use its reserved slot:
// the first waits for the slot's time and takes it; any further request of
// the same submission (Senlin authenticates before its POST) is charged to
// the budget without waiting, so the submission never stalls half-sent.
func WithTicket(ctx context.Context, t *Ticket) context.Context {
	return context.WithValue(ctx, ticketKey{}, t)
}

// admit lets a request of a ticketed submission go, or says how long the
// provider holds it back (its window is spent, or a Retry-After came since
// the slot was taken). The slot stays the submission's.
func (t *Ticket) admit(ctx context.Context, now time.Time) (letGo, hold, error) {
	if !t.used.Load() {
		if err := sleep(ctx, t.At.Sub(now)); err != nil {
			return letGo{}, hold{}, err
		}
		now = time.Now()
	}
	for {
		if !t.NotAfter.IsZero() && now.After(t.NotAfter) {
			return letGo{}, hold{wait: time.Second}, nil // too late to leave: the caller takes a new slot
		}
		l, h := t.gate.take(now)
		if h.wait == 0 {
			if !t.used.CompareAndSwap(false, true) {
				t.gate.limiter.ReserveN(t.gate.monotonic(now), 1) // in debt: later requests wait for it
			}
			return l, hold{}, nil
		}
		// A short hold is waited out here, within the attempt's recorded
		// window: handing it back costs the caller a reconcile.
		deadline, ok := ctx.Deadline()
		if h.wait > ticketHoldWait || !ok || now.Add(h.wait+time.Second).After(deadline) ||
			(!t.NotAfter.IsZero() && now.Add(h.wait).After(t.NotAfter)) {
			return letGo{}, h, nil
		}
		if err := sleep(ctx, h.wait); err != nil {
			return letGo{}, hold{}, err
		}
		now = time.Now()
	}
}

// sleep waits d, or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

type lowPriorityKey struct{}

// lowPriority marks a poll; admitted is set once its first request got a
// token, after which the rest of the same poll (a read-back) may wait for
// its tokens: a poll that only ever gets half its requests never ends.
type lowPriority struct{ admitted atomic.Bool }

// LowPriority marks requests made with ctx as ones that may wait (status
// polls, probes): their first request takes only a token that is free now,
// so submissions and lookups get the budget first.
func LowPriority(ctx context.Context) context.Context {
	return context.WithValue(ctx, lowPriorityKey{}, &lowPriority{})
}

// IsLowPriority reports whether ctx was marked by LowPriority.
func IsLowPriority(ctx context.Context) bool {
	_, ok := ctx.Value(lowPriorityKey{}).(*lowPriority)
	return ok
}
