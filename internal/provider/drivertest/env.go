package drivertest

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/nodeaction/nodeaction-operator/internal/fakecloud"
	"github.com/nodeaction/nodeaction-operator/internal/provider"
)

// Env is one fakecloud served over HTTP with one driver talking to it: what
// the suite runs on, exported so a driver's own tests do not build their own.
type Env struct {
	Cloud  *fakecloud.Cloud
	Server *httptest.Server
	Config provider.Config
	Driver provider.Driver
}

// EnvOptions changes an Env from the suite's defaults.
type EnvOptions struct {
	// World is how fakecloud behaves where the seeds leave a choice open;
	// nil is fakecloud.DefaultTestWorld.
	World *fakecloud.TestWorld
	// Cloud are fakecloud's options (Now, ActionDuration, ...). The per-token
	// rate budget is lifted unless set: rate limits are tested with an
	// injected 429.
	Cloud fakecloud.Options
	// Wrap, when set, wraps fakecloud's handler (to record requests).
	Wrap func(http.Handler) http.Handler
	// Timeout is the HTTP client's; default 5s.
	Timeout time.Duration
	// Change edits the driver's Config before the driver is built.
	Change func(*provider.Config)
}

// NewEnv serves a fakecloud and builds the harness's driver against it
// with good credentials. The server closes when the test ends; when the
// test fails, the log says which world it was and what the cloud did.
func (h Harness) NewEnv(t testing.TB, opts EnvOptions) *Env {
	t.Helper()
	world := fakecloud.DefaultTestWorld()
	if opts.World != nil {
		world = *opts.World
	}
	if opts.Cloud.RateBudget == (fakecloud.RateBudget{}) {
		opts.Cloud.RateBudget = fakecloud.RateBudget{Limit: 1_000_000, Window: time.Minute}
	}
	cloud := fakecloud.New(world.Apply(opts.Cloud))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s; what the cloud did:\n%s", world, cloud.Story(""))
		}
	})
	var handler http.Handler = cloud.Handler()
	if opts.Wrap != nil {
		handler = opts.Wrap(handler)
	}
	server := httptest.NewServer(handler)
	t.Cleanup(server.Close)
	cfg := h.Configure(server.URL, fakecloud.DefaultCredentials())
	cfg.Type = h.Type
	cfg.Name = "test/" + string(h.Type)
	cfg.UserAgent = "nodeaction-operator-conformance"
	if opts.Timeout == 0 {
		opts.Timeout = 5 * time.Second
	}
	client, err := provider.NewHTTPClient(provider.ClientOptions{
		Type: string(h.Type), Gate: provider.NewGate(100000, 1000), Timeout: opts.Timeout,
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg.HTTPClient = client
	// This cloud's records settle within the world's delays: lookups need
	// not wait the minutes a real provider's may take.
	cfg.RecordsLag = max(world.Settle(), opts.Cloud.E2EWorkflowDelay+500*time.Millisecond)
	if opts.Change != nil {
		opts.Change(&cfg)
	}
	d, err := h.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return &Env{Cloud: cloud, Server: server, Config: cfg, Driver: d}
}

// Clock is a time a test moves by hand, for fakecloud's Options.Now and the
// driver's Config.Now.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock starts a Clock at start.
func NewClock(start time.Time) *Clock { return &Clock{now: start} }

// Now is the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock on by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// DriverAt builds a driver with newDriver from cfg against a hand-written
// server (cfg.Endpoint), with the operator's HTTP client: for answers
// fakecloud does not give.
func DriverAt(t testing.TB, newDriver func(provider.Config) (provider.Driver, error), cfg provider.Config) provider.Driver {
	t.Helper()
	hc, err := provider.NewHTTPClient(provider.ClientOptions{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	cfg.HTTPClient = hc
	d, err := newDriver(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return d
}
