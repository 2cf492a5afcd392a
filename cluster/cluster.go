// Package cluster is the state every replica shares, in Redis: one request
// budget per provider (a GCRA schedule, and the 429 back-off), a second
// cache level behind each process's LRU, and asynchronous batches by batch
// id. It implements the small interfaces its consumers declare
// (locapi.Budget, cache.L2, gateway.JobStore) with plain types, so none of
// them imports Redis and this package imports none of them.
//
// Redis is an optimisation, never a dependency of an answer: every
// operation has a short timeout, and once one fails the Client reports
// ErrUnavailable at once (without waiting on the network) and lets a single
// operation through every Config.RetryEvery to see whether Redis is back.
// Callers then fall back to what one process can do alone.
package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// ErrUnavailable is returned, wrapped, while Redis is taken as down.
var ErrUnavailable = errors.New("redis unavailable")

// Defaults for the zero values of Config.
const (
	DefaultPrefix     = "snowgate:"
	DefaultTimeout    = 100 * time.Millisecond
	DefaultRetryEvery = 500 * time.Millisecond
	DefaultGrace      = 10 * time.Second
)

// Config holds the optional settings of a Client; zero values mean the
// documented defaults.
type Config struct {
	// Prefix starts every key, so deployments sharing one Redis keep apart.
	// Default DefaultPrefix.
	Prefix string
	// Timeout bounds one operation, connecting included; an operation
	// slower than that counts as Redis being down. Default DefaultTimeout.
	Timeout time.Duration
	// RetryEvery is how often, while Redis is down, one operation is let
	// through to see whether it is back. Default DefaultRetryEvery.
	RetryEvery time.Duration
	// Grace is how long after Redis comes back a batch it does not know is
	// reported as possibly running rather than unknown: a restarted Redis
	// has lost everything, and the replicas re-publish their batches only
	// within a claim renewal. Keep it above the gateway's claim lease.
	// Default DefaultGrace.
	Grace time.Duration
	// PoolSize is the number of connections kept to Redis. Default
	// go-redis's, 10 per CPU.
	PoolSize int
	// Logger receives one line when Redis goes down and one when it comes
	// back. Default: discard.
	Logger *slog.Logger
}

func (c Config) withDefaults() (Config, error) {
	if c.Timeout < 0 || c.RetryEvery < 0 || c.Grace < 0 || c.PoolSize < 0 {
		return c, errors.New("durations and pool size must not be negative")
	}
	setDefault(&c.Prefix, DefaultPrefix)
	setDefault(&c.Timeout, DefaultTimeout)
	setDefault(&c.RetryEvery, DefaultRetryEvery)
	setDefault(&c.Grace, DefaultGrace)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// Client is one process's connection to the shared Redis. Budget, Records
// and Jobs views share its connections and its notion of whether Redis is
// up. It is safe for concurrent use.
type Client struct {
	cfg     Config
	rdb     *redis.Client
	h       *health
	m       *metrics
	owner   string // this process in job claims: host name and a random suffix
	scripts scripts
}

// New returns a Client for rawURL (redis://[user:password@]host:port/db or
// rediss:// for TLS), registering its metrics with reg (nil: none). It does
// not connect: a Redis that is down now is only a fallback to run on, and
// Ping tells whether it answers.
func New(rawURL string, cfg Config, reg prometheus.Registerer) (*Client, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("cluster: config: %w", err)
	}
	opt, err := parseURL(rawURL)
	if err != nil {
		return nil, err
	}
	opt.PoolSize = cfg.PoolSize
	// One attempt, bounded by Timeout: the fallbacks are the retry.
	opt.MaxRetries = -1
	opt.DialerRetries = 1
	opt.DialTimeout = cfg.Timeout
	opt.ReadTimeout = cfg.Timeout
	opt.WriteTimeout = cfg.Timeout
	opt.PoolTimeout = cfg.Timeout
	opt.ContextTimeoutEnabled = true
	opt.DisableIdentity = true
	opt.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	owner, err := ownerID()
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	return &Client{
		cfg:     cfg,
		rdb:     redis.NewClient(opt),
		h:       newHealth(cfg.RetryEvery, cfg.Logger, m),
		m:       m,
		owner:   owner,
		scripts: newScripts(),
	}, nil
}

// parseURL reads a Redis URL. Its errors never quote the URL, which may
// carry a password.
func parseURL(rawURL string) (*redis.Options, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "" {
		return nil, errors.New("cluster: redis URL: want redis://[user:password@]host:port[/db], or rediss:// for TLS")
	}
	opt, err := redis.ParseURL(rawURL)
	if err != nil {
		// go-redis names the database or path it rejects, never the user
		// information (a test holds it to that).
		return nil, fmt.Errorf("cluster: redis URL: %w", err)
	}
	return opt, nil
}

func ownerID() (string, error) {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("owner id: %w", err)
	}
	host, _ := os.Hostname() // only a readable hint in the claim
	if host == "" {
		host = "replica"
	}
	return host + "-" + hex.EncodeToString(b[:]), nil
}

// Close closes the connections. Views must not be used afterwards.
func (c *Client) Close() error {
	if err := c.rdb.Close(); err != nil {
		return fmt.Errorf("cluster: close: %w", err)
	}
	return nil
}

// Ping checks that Redis answers (it counts like any operation).
func (c *Client) Ping(ctx context.Context) error {
	return c.do(ctx, "ping", func(ctx context.Context) error { return c.rdb.Ping(ctx).Err() })
}

// do runs one operation under the timeout and the health check. redis.Nil
// (a missing key) is returned as it is: an answer, not a failure.
func (c *Client) do(ctx context.Context, op string, f func(ctx context.Context) error) error {
	probe, ok := c.h.admit(time.Now())
	if !ok {
		return fmt.Errorf("cluster: %s: %w", op, ErrUnavailable)
	}
	octx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	start := time.Now()
	err := f(octx)
	cancel()
	c.m.duration.WithLabelValues(op).Observe(time.Since(start).Seconds())
	switch {
	case err == nil || errors.Is(err, redis.Nil):
		c.h.succeeded(probe, time.Now())
		return err
	case ctx.Err() != nil:
		// The caller gave up: that says nothing about Redis.
		c.h.abandoned(probe)
		return fmt.Errorf("cluster: %s: %w", op, context.Cause(ctx))
	}
	c.m.errors.WithLabelValues(op).Inc()
	c.h.failed(probe, time.Now(), op, err)
	return fmt.Errorf("cluster: %s: %w", op, err)
}
