package fakecloud

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"time"
)

// Adversary varies, per request and reproducibly from Seed, what the seed
// documents leave open: list order, how long a new action takes to show in
// lists and in the VM's state, how long it runs, latency, proxy errors
// (502/503/504 with an HTML body, before or after the request reached the
// API) and duplicate-looking earlier actions. docs/fakecloud.md lists each
// choice and its odds.
//
// Choices are not drawn from one shared random source, which concurrent
// requests would perturb. Each request draws from its own source, seeded
// with a hash of Seed, the skin, the method, the escaped path, a digest of
// an action call's body and how many requests with that skin, method and path came
// before it. A path names one VM (or one list), so the same seed and the
// same requests on a VM get the same choices whatever other VMs or tests
// do meanwhile. List order is
// chosen once per list (seed and path), so that paging through a list
// stays consistent.
type Adversary struct {
	Seed uint64
	// MaxLatency bounds the latency added before a request is handled
	// (default 250ms).
	MaxLatency time.Duration
	// MaxStateDelay bounds how long a new action's VM keeps looking idle
	// (default 2s; for E2E, at least the workflow delay).
	MaxStateDelay time.Duration
	// MaxListDelay bounds how long a new action stays out of lists
	// (default 2s).
	MaxListDelay time.Duration
	// MaxAnswerDelay bounds how long the answer to an action call that was
	// handled is held back (default 3s, longer than the operator's
	// request timeout in tests).
	MaxAnswerDelay time.Duration
}

// Odds of the adversary's rarer choices: one request (or action) in N.
const (
	proxyOddsAction    = 8  // an action call meets a proxy error
	proxyOddsRead      = 20 // a read meets a proxy error
	answerDelayOdds    = 10 // an action call's answer is held back
	duplicateOdds      = 3  // an accepted action gets an earlier look-alike
	listDelayOdds      = 2  // a new action is kept out of lists for a while
	duplicateMinBefore = 2 * time.Second
	duplicateMaxBefore = 20 * time.Second
)

func (a Adversary) withDefaults() Adversary {
	if a.MaxLatency <= 0 {
		a.MaxLatency = 250 * time.Millisecond
	}
	if a.MaxStateDelay <= 0 {
		a.MaxStateDelay = 2 * time.Second
	}
	if a.MaxListDelay <= 0 {
		a.MaxListDelay = 2 * time.Second
	}
	if a.MaxAnswerDelay <= 0 {
		a.MaxAnswerDelay = 3 * time.Second
	}
	return a
}

// Settle is the longest a new action may stay out of lists and out of its
// VM's state in this world, plus a margin: a client that looks for a lost
// submission sooner may not see it yet.
func (a Adversary) Settle(e2eDelay time.Duration) time.Duration {
	a = a.withDefaults()
	return max(a.MaxListDelay, a.MaxStateDelay, e2eDelay) + 500*time.Millisecond
}

// source returns a random source that depends only on the seed and key.
func (a *Adversary) source(key string) *rand.Rand {
	sum := sha256.Sum256(fmt.Appendf(nil, "%d\x00%s", a.Seed, key))
	return rand.New(rand.NewPCG(binary.LittleEndian.Uint64(sum[:8]), binary.LittleEndian.Uint64(sum[8:16])))
}

// draw is one request's share of the cloud's choices, and the record of
// every choice made while answering it (the request log shows them).
type draw struct {
	// key is what the choices derive from (adversarial mode only).
	key string
	// rng is nil outside adversarial mode: the faithful choices apply.
	rng     *rand.Rand
	adv     *Adversary
	choices []string
}

// newDrawLocked starts the draw for a request and counts it on its path.
// Only an action call's body counts (other bodies may carry credentials).
func (c *Cloud) newDrawLocked(skin string, r *http.Request, action bool) *draw {
	if c.adversary == nil {
		return &draw{}
	}
	path := skin + " " + r.Method + " " + r.URL.EscapedPath()
	c.drawCounts[path]++
	key := fmt.Sprintf("%s #%d", path, c.drawCounts[path])
	if body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20)); action && len(body) > 0 {
		key += fmt.Sprintf(" body %x", sha256.Sum256(body))[:len(" body ")+12]
	}
	return &draw{key: fmt.Sprintf("seed %d: %s", c.adversary.Seed, key), rng: c.adversary.source(key), adv: c.adversary}
}

func (d *draw) adversarial() bool { return d != nil && d.rng != nil }

// note records a choice.
func (d *draw) note(format string, args ...any) {
	if d != nil {
		d.choices = append(d.choices, fmt.Sprintf(format, args...))
	}
}

// upTo returns a duration in [0, max].
func (d *draw) upTo(max time.Duration) time.Duration {
	if max <= 0 {
		return 0
	}
	return time.Duration(d.rng.Int64N(int64(max) + 1))
}

// oneIn is true about once in n draws.
func (d *draw) oneIn(n int) bool { return d.rng.IntN(n) == 0 }

// proxyMode says whether, and where, a proxy in front of the API failed.
type proxyMode string

const (
	// proxyBeforeForwarding: the proxy answered an error and the API never
	// saw the request. Nothing happened.
	proxyBeforeForwarding proxyMode = "before-forwarding"
	// proxyAfterForwarding: the API handled the request (an action call was
	// accepted) and the proxy lost the answer.
	proxyAfterForwarding proxyMode = "after-forwarding"
)

// requestPlan is what the adversary does around the API's own answer.
type requestPlan struct {
	latency     time.Duration
	proxy       proxyMode
	proxyStatus int
	answerDelay time.Duration
}

// planRequest chooses latency, proxy errors and a held-back answer.
func (d *draw) planRequest(action bool) requestPlan {
	var p requestPlan
	if !d.adversarial() {
		return p
	}
	if p.latency = d.upTo(d.adv.MaxLatency); p.latency > 0 {
		d.note("latency %s", p.latency.Round(time.Microsecond))
	}
	odds := proxyOddsRead
	if action {
		odds = proxyOddsAction
	}
	if d.oneIn(odds) {
		p.proxyStatus = []int{http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout}[d.rng.IntN(3)]
		p.proxy = proxyBeforeForwarding
		if d.rng.IntN(2) == 0 {
			p.proxy = proxyAfterForwarding
		}
		d.note("proxy %d %s", p.proxyStatus, p.proxy)
		return p
	}
	if action && d.oneIn(answerDelayOdds) {
		// From a sixth of the bound: 500ms to 3s by default.
		p.answerDelay = d.adv.MaxAnswerDelay/6 + d.upTo(d.adv.MaxAnswerDelay*5/6)
		d.note("answer held back %s after the action was handled", p.answerDelay.Round(time.Millisecond))
	}
	return p
}
