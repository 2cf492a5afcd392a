package locapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/semaphore"
)

// Config configures a Client. Zero values mean the documented defaults.
type Config struct {
	// URL is the request template; it must contain {id} once, in the path,
	// and use http or https. Required. Example:
	// https://host/api/v2/entities/{id}?select=id,label,location
	URL string
	// Token is sent as "Authorization: Bearer <Token>" when not empty. It
	// never appears in an error or a log line.
	Token string
	// Rate is the request rate (requests/s) of the one limiter every Lookup
	// shares. <= 0 means unlimited (and no adaptive slow-down on 429).
	Rate float64
	// Burst is the provider's burst, default 1. The client spends at most
	// half of it at once (at least 1), so a burst after idle time or a stall
	// fits in the provider's bucket with room left for network jitter.
	Burst int
	// Concurrency caps requests in flight. Default 64.
	Concurrency int
	// Timeout bounds one attempt, body included. Default 10s.
	Timeout time.Duration
	// MaxAttempts bounds the attempts of one Lookup. Default 8.
	MaxAttempts int
	// MaxRetryTime bounds one Lookup, waits included. Default 2m.
	MaxRetryTime time.Duration
	// BaseBackoff and MaxBackoff shape the full-jitter exponential backoff
	// between attempts. Defaults 50ms and 5s.
	BaseBackoff time.Duration
	MaxBackoff  time.Duration
	// MaxIDLen is the longest ID accepted, in bytes. Default DefaultMaxIDLen.
	MaxIDLen int
	// MinRate is the floor the adaptive rate never goes below. Default
	// Rate/20.
	MinRate float64
	// Transport sends the requests. Default: an *http.Transport whose
	// keep-alive pool is sized to Concurrency, closed by Client.Close.
	Transport http.RoundTripper
	// Logger receives retries and rate changes. Default: discard.
	Logger *slog.Logger
	// Budget, when set, is a budget shared with the other processes that
	// call the same provider: every request also books a slot in it, after
	// the local limiter, and a 429 back-off made by any of them applies to
	// all. Give each process the provider's whole Rate: the local limiter
	// then only stops one process from taking more than the provider
	// allows. Needs Rate > 0. Default: none, this process alone.
	Budget Budget
	// BudgetShare is the share of Rate (and of the burst) this process
	// keeps to while Budget cannot be reached: 1/(processes sharing it)
	// keeps them all within the provider's rate. In (0, 1]; default
	// DefaultBudgetShare.
	BudgetShare float64
}

// withDefaults validates c and fills in the defaults.
func (c Config) withDefaults() (Config, error) {
	switch {
	case c.URL == "":
		return c, errors.New("no URL")
	case c.Burst < 0, c.Concurrency < 0, c.MaxAttempts < 0, c.MaxIDLen < 0:
		return c, errors.New("burst, concurrency, max attempts and max id length must not be negative")
	case c.Timeout < 0, c.MaxRetryTime < 0, c.BaseBackoff < 0, c.MaxBackoff < 0:
		return c, errors.New("durations must not be negative")
	case math.IsNaN(c.Rate) || math.IsInf(c.Rate, 0) || math.IsNaN(c.MinRate) || c.MinRate < 0:
		return c, errors.New("rate and min rate must be finite, min rate not negative")
	case c.Rate > 0 && c.MinRate > c.Rate:
		return c, fmt.Errorf("min rate %g is above rate %g", c.MinRate, c.Rate)
	case c.Budget != nil && !(c.Rate > 0):
		return c, errors.New("a shared budget needs a rate: set Rate to the provider's")
	case math.IsNaN(c.BudgetShare) || c.BudgetShare < 0 || c.BudgetShare > 1:
		return c, fmt.Errorf("budget share %g is not in (0, 1]", c.BudgetShare)
	}
	for i := 0; i < len(c.Token); i++ {
		if b := c.Token[i]; b < 0x20 || b == 0x7f {
			// The token itself must not be echoed, not even in this error.
			return c, errors.New("token contains a control character")
		}
	}
	c.Burst = orDefault(c.Burst, 1)
	c.Concurrency = orDefault(c.Concurrency, 64)
	c.Timeout = orDefault(c.Timeout, 10*time.Second)
	c.MaxAttempts = orDefault(c.MaxAttempts, 8)
	c.MaxRetryTime = orDefault(c.MaxRetryTime, 2*time.Minute)
	c.BaseBackoff = orDefault(c.BaseBackoff, 50*time.Millisecond)
	c.MaxBackoff = orDefault(c.MaxBackoff, 5*time.Second)
	c.MaxIDLen = orDefault(c.MaxIDLen, DefaultMaxIDLen)
	if c.MinRate == 0 {
		c.MinRate = c.Rate / 20
	}
	if c.BudgetShare == 0 {
		c.BudgetShare = DefaultBudgetShare
	}
	if c.MaxBackoff < c.BaseBackoff {
		c.MaxBackoff = c.BaseBackoff
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// orDefault returns def when v is the zero value.
func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// ErrClosed is returned by Lookup once Close has been called.
var ErrClosed = errors.New("locapi: client closed")

// Client looks IDs up at the provider. It is safe for concurrent use, and
// one Client should serve a whole process: its limiter is the provider's
// budget.
type Client struct {
	cfg       Config
	tmpl      urlTemplate
	http      *http.Client
	header    http.Header     // every request's, read-only
	owned     *http.Transport // the default transport, closed by Close; nil if given
	sem       *semaphore.Weighted
	lim       *bucket   // paces requests in FIFO order; nil: unlimited
	gate      *bucket   // re-checks the pace at the moment of sending
	adapt     *adaptive // nil: unlimited
	budget    *shared   // nil: no shared budget
	m         *metrics
	log       *slog.Logger
	n         counters
	closing   context.Context // done when Close starts: cancels lookups in flight
	cancelAll context.CancelFunc

	mu     sync.Mutex // guards closed, so no Lookup joins wg once Close waits on it
	closed bool
	wg     sync.WaitGroup
}

// New returns a Client for cfg, registering its metrics with reg (nil: not
// registered).
func New(cfg Config, reg prometheus.Registerer) (*Client, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("locapi: config: %w", err)
	}
	tmpl, err := parseTemplate(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("locapi: config: %w", err)
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("locapi: %w", err)
	}
	c := &Client{cfg: cfg, tmpl: tmpl, header: requestHeader(cfg.Token),
		sem: semaphore.NewWeighted(int64(cfg.Concurrency)), m: m, log: cfg.Logger}
	rt := cfg.Transport
	if rt == nil {
		c.owned = newTransport(cfg)
		rt = c.owned
	}
	c.http = &http.Client{
		Transport: rt,
		// A redirect is not an entity, and following one could carry the
		// bearer token to another path.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	if cfg.Rate > 0 {
		ceiling, burst, now := cfg.Rate*headroom, max(1, cfg.Burst/2), time.Now()
		gb := gateBurst(ceiling, burst)
		if cfg.Budget != nil {
			// This process sends only a share of the provider's traffic, so
			// its gate would sit full: bound what it lets through at once
			// to its share, and leave the provider's burst to the sum of
			// every process's jitter.
			gb = max(2, int(float64(gb)*cfg.BudgetShare))
		}
		c.lim, c.gate = newBucket(ceiling, burst), newBucket(ceiling, gb)
		c.adapt = newAdaptive([]*bucket{c.lim, c.gate}, ceiling, cfg.MinRate, now, m.rateLimit.Set)
		m.rateLimit.Set(ceiling)
		if cfg.Budget != nil {
			c.budget = newShared(cfg.Budget, cfg.BudgetShare, sharedBurst(cfg.Burst), c.adapt, cfg.Logger, m.budgetFallback)
		}
	}
	c.closing, c.cancelAll = context.WithCancel(context.Background())
	return c, nil
}

// gateBurst lets the gate keep a few milliseconds of tokens. With a burst
// of one, every wake-up that comes late (timers on a busy machine fire a
// millisecond or more past due, longer than the gap between two requests at
// a few hundred per second) would throw a token away, and the client would
// run well below its rate. Two tokens at least, for the same reason at low
// rates: a late send must not push every later one back.
func gateBurst(rate float64, burst int) int {
	return max(burst, 2, int(rate*gateSlack.Seconds()))
}

// gateSlack is how much time's worth of tokens the gate may hold: small
// against any provider's own burst, large against timer lateness.
const gateSlack = 10 * time.Millisecond

func newTransport(cfg Config) *http.Transport {
	d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           d.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          cfg.Concurrency,
		MaxIdleConnsPerHost:   cfg.Concurrency,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: cfg.Timeout,
		ExpectContinueTimeout: time.Second,
	}
}

// Rate is the limiter's current rate in requests/s: 1% under Config.Rate
// (headroom against jitter), lowered after 429s (this process's or, with a
// Budget, any sharing process's), then recovering, and at BudgetShare of
// that while the Budget cannot be reached; 0 means unlimited.
func (c *Client) Rate() float64 {
	if c.adapt == nil {
		return 0
	}
	return c.adapt.rate()
}

// Close cancels the lookups in flight, waits for them to return and closes
// the default transport's idle connections; no goroutine of the Client is
// left. Lookup returns ErrClosed afterwards. Close is idempotent.
func (c *Client) Close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.cancelAll()
	c.wg.Wait()
	if c.owned != nil {
		c.owned.CloseIdleConnections()
	}
}

// enter registers a Lookup with Close, or reports that the client is closed.
func (c *Client) enter() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.wg.Add(1)
	return true
}

// ClientStats are cumulative counts since New, for progress bars and
// benchmarks.
type ClientStats struct {
	Lookups      int64 // Lookup calls with a valid ID
	Invalid      int64 // IDs rejected before any request
	Found        int64 // lookups answered Found
	NotFound     int64 // lookups answered NotFound
	NoLocation   int64 // lookups answered NoLocation
	Failures     int64 // lookups that ended in an error, after a valid ID
	Requests     int64 // requests sent (attempts)
	Retries      int64 // requests that repeated a failed attempt
	Throttled    int64 // requests answered 429
	ServerErrors int64 // requests answered 5xx
	NetErrors    int64 // requests with no usable answer: timeouts, connection errors, bodies cut short
	Malformed    int64 // 200 answers whose body did not decode or was for another ID
}

// counters backs ClientStats; each field counts independently.
type counters struct {
	lookups, invalid, found, notFound, noLocation, failures          atomic.Int64
	requests, retries, throttled, serverErrors, netErrors, malformed atomic.Int64
}

// Stats returns the counts so far.
func (c *Client) Stats() ClientStats {
	n := &c.n
	return ClientStats{
		Lookups: n.lookups.Load(), Invalid: n.invalid.Load(), Found: n.found.Load(),
		NotFound: n.notFound.Load(), NoLocation: n.noLocation.Load(), Failures: n.failures.Load(),
		Requests: n.requests.Load(), Retries: n.retries.Load(), Throttled: n.throttled.Load(),
		ServerErrors: n.serverErrors.Load(), NetErrors: n.netErrors.Load(), Malformed: n.malformed.Load(),
	}
}
