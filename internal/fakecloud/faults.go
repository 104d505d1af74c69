package fakecloud

import (
	"net/http"
	"strings"
	"time"
)

// FaultMode says what a fault does to the request it catches.
type FaultMode string

const (
	// Reject answers with Status (and RetryAfter) without acting.
	Reject FaultMode = "reject"
	// AcceptThenFail acts, then answers with Status as if it had failed
	// (the ambiguous 5xx/408 after the request was sent).
	AcceptThenFail FaultMode = "accept-then-fail"
	// AcceptThenDrop acts, then closes the connection without answering.
	AcceptThenDrop FaultMode = "accept-then-drop"
	// AcceptThenHold acts, then keeps the answer back until Release is
	// called or the client goes away; then it answers normally.
	AcceptThenHold FaultMode = "accept-then-hold"
	// Delay only adds Latency before the request is handled.
	Delay FaultMode = "delay"
	// DropBeforeAccept closes the connection without acting.
	DropBeforeAccept FaultMode = "drop-before-accept"
	// ForwardLate holds the request for Latency whether or not the client
	// is still there, then acts and answers: a proxy that forwarded the
	// request late, after the client gave up on it.
	ForwardLate FaultMode = "forward-late"
)

// Fault changes how matching requests are answered.
type Fault struct {
	// Skin limits the fault to one API ("digitalocean", "senlin", "e2e",
	// "cloudsfor", "openscaler", "keystone"); empty matches all.
	Skin string `json:"skin,omitempty"`
	// Method limits the fault to one HTTP method; empty matches all.
	Method string `json:"method,omitempty"`
	// PathContains limits the fault to paths containing this text.
	PathContains string `json:"pathContains,omitempty"`
	// ActionOnly limits the fault to calls that start an action.
	ActionOnly bool `json:"actionOnly,omitempty"`
	// Times is how many requests the fault catches; 0 means all.
	Times int `json:"times,omitempty"`

	Mode FaultMode `json:"mode"`
	// Status is the HTTP status Reject and AcceptThenFail answer with.
	Status int `json:"status,omitempty"`
	// RetryAfter, in seconds, is sent with Reject.
	RetryAfter int `json:"retryAfter,omitempty"`
	// Body is the answer body for Reject and AcceptThenFail (JSON).
	Body string `json:"body,omitempty"`
	// Latency is added before handling (every mode).
	Latency time.Duration `json:"latency,omitempty"`

	hits    int
	release chan struct{}
	held    chan struct{}
}

// InjectFault adds a fault; the newest matching fault wins. It returns the
// fault so a test can Release a held answer or wait for Held.
func (c *Cloud) InjectFault(f Fault) *Fault {
	c.mu.Lock()
	defer c.mu.Unlock()
	nf := f
	nf.release = make(chan struct{})
	nf.held = make(chan struct{}, 1024)
	c.faults = append(c.faults, &nf)
	return &nf
}

// ClearFaults removes every fault and releases held answers.
func (c *Cloud) ClearFaults() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, f := range c.faults {
		f.Release()
	}
	c.faults = nil
}

// Release lets every held answer of this fault go.
func (f *Fault) Release() {
	select {
	case <-f.release:
	default:
		close(f.release)
	}
}

// Held delivers one value each time this fault holds an answer.
func (f *Fault) Held() <-chan struct{} { return f.held }

// Hits is how many requests the fault caught so far.
func (f *Fault) Hits() int { return f.hits }

// matchFaultLocked finds the fault for a request and counts the hit.
func (c *Cloud) matchFaultLocked(skin string, r *http.Request, action bool) *Fault {
	for i := len(c.faults) - 1; i >= 0; i-- {
		f := c.faults[i]
		if f.Skin != "" && f.Skin != skin {
			continue
		}
		if f.Method != "" && !strings.EqualFold(f.Method, r.Method) {
			continue
		}
		if f.PathContains != "" && !strings.Contains(r.URL.Path, f.PathContains) {
			continue
		}
		if f.ActionOnly && !action {
			continue
		}
		if f.Times > 0 && f.hits >= f.Times {
			continue
		}
		f.hits++
		return f
	}
	return nil
}
