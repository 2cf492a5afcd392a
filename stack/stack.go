// Package stack builds snowgate's resolver stack in one place: the provider
// client, the optional Redis shared state (provider budget and L2 cache)
// and the cache in front of them, sized by one concurrency setting.
// `snowgate serve`, `snowgate backfill`, the demo and the bench all build it
// here, so they cannot drift apart.
//
// It sits above cache/ and locapi/ and beside cluster/, which imports no
// snowgate package: its Budget and Records meet locapi.Budget and cache.L2
// only here.
package stack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/snowgate/snowgate/cache"
	"github.com/snowgate/snowgate/cluster"
	"github.com/snowgate/snowgate/locapi"
)

// DefaultConcurrency is Config.Concurrency's default.
const DefaultConcurrency = 64

// Config describes the stack. Zero values are the documented defaults.
type Config struct {
	// Provider configures the provider client. Leave its Concurrency,
	// Budget and BudgetShare zero: New sets them from the fields below.
	// Logger defaults to Config.Logger.
	Provider locapi.Config
	// Cache configures the resolver. Leave its Concurrency and L2 zero:
	// New sets them.
	Cache cache.Config
	// Concurrency is the one concurrency setting of the stack: the
	// provider requests in flight at most, and the lookups one batch
	// (ResolveMany) or one stream (ResolveEach, the backfill) waits on at
	// once. More lookups waited on than requests allowed would only queue
	// at the client; fewer would leave the provider's limit unused.
	// Default DefaultConcurrency.
	Concurrency int
	// RedisURL, when set, shares the provider budget and an L2 cache with
	// every process using the same Redis and RedisPrefix. Redis need not be
	// up: until it is, the process works alone with RedisShare of the rate.
	RedisURL string
	// Redis configures the Redis client (key prefix, timeouts); its Logger
	// defaults to Config.Logger.
	Redis      cluster.Config
	RedisShare float64 // locapi.Config.BudgetShare; default locapi.DefaultBudgetShare
	// Logger receives the client's retries and Redis's state. Default:
	// discard.
	Logger *slog.Logger
}

// Parts are what New built. Close them once the last user is done.
type Parts struct {
	Resolver *cache.Resolver
	Client   *locapi.Client
	Shared   *cluster.Client // nil without RedisURL
}

// RedisURLError is New's error for a RedisURL the Redis client refused;
// the password is never part of it.
type RedisURLError struct{ Err error }

func (e *RedisURLError) Error() string { return "redis url: " + e.Err.Error() }
func (e *RedisURLError) Unwrap() error { return e.Err }

// New builds the stack. reg receives every part's metrics; nil registers
// none.
func New(cfg Config, reg prometheus.Registerer) (*Parts, error) {
	switch {
	case cfg.Provider.Concurrency != 0 || cfg.Cache.Concurrency != 0:
		return nil, errors.New("stack: set Config.Concurrency, not the provider's or the cache's")
	case cfg.Concurrency < 0:
		return nil, fmt.Errorf("stack: Concurrency %d is negative", cfg.Concurrency)
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	lc, cc := cfg.Provider, cfg.Cache
	lc.Concurrency, cc.Concurrency = cfg.Concurrency, cfg.Concurrency
	if lc.Logger == nil {
		lc.Logger = cfg.Logger
	}
	p := &Parts{}
	if cfg.RedisURL != "" {
		shared, err := connect(cfg, reg)
		if err != nil {
			return nil, err
		}
		p.Shared = shared
		lc.Budget, lc.BudgetShare = shared.Budget(ProviderName(lc.URL)), cfg.RedisShare
		cc.L2 = shared.Records()
	}
	var err error
	if p.Client, err = locapi.New(lc, reg); err != nil {
		return nil, errors.Join(fmt.Errorf("provider client: %w", err), p.Close())
	}
	if p.Resolver, err = cache.New(p.Client, cc, reg); err != nil {
		return nil, errors.Join(fmt.Errorf("resolver: %w", err), p.Close())
	}
	return p, nil
}

// connect makes the Redis client and says once whether Redis answers.
func connect(cfg Config, reg prometheus.Registerer) (*cluster.Client, error) {
	rc := cfg.Redis
	if rc.Logger == nil {
		rc.Logger = cfg.Logger
	}
	if rc.Prefix == "" {
		rc.Prefix = cluster.DefaultPrefix
	}
	c, err := cluster.New(cfg.RedisURL, rc, reg)
	if err != nil {
		return nil, &RedisURLError{Err: err}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := c.Ping(ctx); err == nil {
		cfg.Logger.Info("redis reachable: provider budget, cache and async batches shared", "prefix", rc.Prefix)
	}
	return c, nil
}

// Close closes the resolver, then the client, then Redis: each one's
// lookups end before what they use goes. It may be called on a partly
// built stack, and more than once. Only the resolver and Redis have an
// error to give, and today only Redis's can be other than nil: without
// RedisURL, Close returns nil.
func (p *Parts) Close() error {
	var errs []error
	if p.Resolver != nil {
		errs = append(errs, p.Resolver.Close())
	}
	if p.Client != nil {
		p.Client.Close()
	}
	if p.Shared != nil {
		errs = append(errs, p.Shared.Close())
	}
	return errors.Join(errs...)
}

// ProviderName keys the shared budget: the provider's host, so processes
// pointed at the same provider share one budget whatever their templates.
func ProviderName(template string) string {
	if u, err := url.Parse(strings.ReplaceAll(template, "{id}", "x")); err == nil && u.Host != "" {
		return strings.ToLower(u.Host)
	}
	return template
}
