// Package gateway is the Snowflake external-function remote service: it
// takes batches of rows over HTTP in Snowflake's JSON format, resolves their
// IDs through one Resolver, and answers every row in order. It handles
// compression, idempotent retries and asynchronous polling by batch id (in
// a JobStore shared by several replicas, optionally), an in-flight row cap
// (429 above it), an optional shared secret, and a draining shutdown.
//
// Those batch mechanics are one engine that knows no wire protocol
// (batches.go, with shared.go for the claims between replicas); the
// Snowflake protocol is a thin adapter over it (snowflake.go), and another
// protocol would be another adapter file over the same engine.
package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/klauspost/compress/gzip"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/snowgate/snowgate/cache"
)

// Resolver answers a batch of IDs, one Outcome per input ID in input order.
// *cache.Resolver is one.
type Resolver interface {
	ResolveMany(ctx context.Context, ids []string) ([]cache.Outcome, cache.Stats)
}

// ResolverFunc adapts a function to a Resolver.
type ResolverFunc func(ctx context.Context, ids []string) ([]cache.Outcome, cache.Stats)

// ResolveMany calls f.
func (f ResolverFunc) ResolveMany(ctx context.Context, ids []string) ([]cache.Outcome, cache.Stats) {
	return f(ctx, ids)
}

// Values of Config.OnRowError and Config.NotFound.
const (
	RowErrorNull   = "null"   // a failed row answers null
	RowErrorObject = "error"  // a failed row answers {"error": "<reason>"}
	RowErrorFail   = "fail"   // a provider failure fails the batch with 503 (Snowflake retries); a bad ID with 400
	NotFoundNull   = "null"   // not found and no location answer null
	NotFoundObject = "object" // ... or {"found": false, "id": ..., "status": "not_found"|"no_location"}
)

// Config holds the optional settings of a Server. Zero values mean the
// documented defaults.
type Config struct {
	// Path is where Snowflake's resolve_location is served (POST, and GET
	// for polls). Default "/resolve_location"; NoSnowflake turns it off.
	Path        string
	NoSnowflake bool
	// BigQueryPath is where BigQuery's remote function is served (POST,
	// bigquery.go); "" serves none.
	BigQueryPath string
	// RESTPrefix is where the REST API is served (rest.go): GET
	// {prefix}/locations/{id}, POST {prefix}/locations:batchGet and GET
	// {prefix}/openapi.json; "" serves none.
	RESTPrefix string
	// OnRowError says how a row the resolver could not answer is answered:
	// RowErrorNull (default), RowErrorObject or RowErrorFail. A row whose
	// ID is invalid (wrong type, empty, too long, bad UTF-8, control
	// characters) follows it too, except that with RowErrorFail it makes
	// the batch a 400 naming the row, since retrying cannot help.
	OnRowError string
	// NotFound says how not-found and no-location rows are answered:
	// NotFoundNull (default) or NotFoundObject.
	NotFound string
	// MaxBody caps a request body after decompression. Default 10 MiB.
	MaxBody int64
	// MaxResponse caps the uncompressed answer; above it the batch gets a
	// 400 naming the MAX_BATCH_ROWS that would fit. Default 10,000,000
	// (Snowflake's 10 MB; set 6,000,000 behind AWS Lambda).
	MaxResponse int
	// BatchTimeout is how long a POST waits for its batch. Without Async,
	// rows not resolved by then follow OnRowError. Default 25s (under API
	// Gateway's 29s).
	BatchTimeout time.Duration
	// Async makes a batch not done within BatchTimeout answer 202 and carry
	// on; Snowflake polls with GET and the same batch id. Batches without a
	// batch id header are always synchronous.
	Async bool
	// AsyncTimeout bounds an asynchronous batch; rows unresolved by then
	// follow OnRowError. Default 10m, when Snowflake stops polling.
	AsyncTimeout time.Duration
	// ResultTTL is how long a finished answer is kept by batch id for
	// retries and polls. Default 15m.
	ResultTTL time.Duration
	// MaxResults and MaxResultBytes bound the answers kept; the oldest go
	// first. An answer counts the bytes it is kept in: gzipped when the
	// POST that started the batch accepted gzip and Shared is nil.
	// Defaults 10,000 and 256 MiB.
	MaxResults     int
	MaxResultBytes int64
	// MaxInflightRows caps the rows of batches being worked on; a batch
	// that would pass it gets 429 at once. A batch larger than the cap is
	// admitted only when nothing else runs. Default 131,072 (32 batches of
	// 4,096).
	MaxInflightRows int
	// AuthHeader names a header that must carry AuthSecret on every
	// function request (health endpoints stay open); otherwise 401. Both or
	// neither must be set.
	AuthHeader string
	AuthSecret string
	// ShutdownTimeout bounds the drain in Serve. Default 30s.
	ShutdownTimeout time.Duration
	// Logger gets one JSON-able summary line per batch. Default: discard.
	Logger *slog.Logger
	// Metrics, if set, is served at /metrics (for example promhttp over
	// the registry passed to New).
	Metrics http.Handler
	// Shared, when set, keeps batches by batch id where every replica sees
	// them (package cluster keeps them in Redis): any replica answers any
	// poll, and a batch re-sent to another replica waits for the answer of
	// the replica working on it instead of being worked on again. While
	// the store is unreachable, a batch runs on the replica it reaches (as
	// without a store) and is shared once the store is back; polls for
	// batches unknown here get 202 meanwhile, so a poll is never failed
	// for a batch that may run elsewhere. Default: nil, this replica's own
	// table only.
	Shared JobStore
	// ClaimLease is how long a replica's claim on a batch outlives its last
	// renewal (every third of it while the batch runs): a batch whose
	// replica died is taken over after it. Default 10s, at least 30ms.
	ClaimLease time.Duration
}

const (
	defaultPath        = "/resolve_location"
	defaultMaxBody     = 10 << 20
	defaultMaxResponse = 10_000_000
	defaultBatchTO     = 25 * time.Second
	defaultAsyncTO     = 10 * time.Minute
	defaultResultTTL   = 15 * time.Minute
	defaultMaxResults  = 10_000
	defaultResultBytes = 256 << 20
	defaultMaxInflight = 131_072
	defaultShutdownTO  = 30 * time.Second
	// gzipMinBytes: smaller answers are sent as they are; compressing them
	// costs more than it saves.
	gzipMinBytes = 1024
)

// withDefaults fills zero values and rejects invalid settings.
func (c Config) withDefaults() (Config, error) {
	setDefault(&c.Path, defaultPath)
	setDefault(&c.OnRowError, RowErrorNull)
	setDefault(&c.NotFound, NotFoundNull)
	setDefault(&c.MaxBody, defaultMaxBody)
	setDefault(&c.MaxResponse, defaultMaxResponse)
	setDefault(&c.BatchTimeout, defaultBatchTO)
	setDefault(&c.AsyncTimeout, defaultAsyncTO)
	setDefault(&c.ResultTTL, defaultResultTTL)
	setDefault(&c.MaxResults, defaultMaxResults)
	setDefault(&c.MaxResultBytes, defaultResultBytes)
	setDefault(&c.MaxInflightRows, defaultMaxInflight)
	setDefault(&c.ShutdownTimeout, defaultShutdownTO)
	setDefault(&c.ClaimLease, defaultClaimLease)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case c.OnRowError != RowErrorNull && c.OnRowError != RowErrorObject && c.OnRowError != RowErrorFail:
		return c, fmt.Errorf("on-row-error %q: want null, error or fail", c.OnRowError)
	case c.NotFound != NotFoundNull && c.NotFound != NotFoundObject:
		return c, fmt.Errorf("not-found %q: want null or object", c.NotFound)
	case c.MaxBody < 0, c.MaxResponse < 0, c.BatchTimeout < 0, c.AsyncTimeout < 0, c.ResultTTL < 0,
		c.MaxResults < 0, c.MaxResultBytes < 0, c.MaxInflightRows < 0, c.ShutdownTimeout < 0:
		return c, errors.New("sizes, counts and durations must not be negative")
	case c.ClaimLease < minClaimLease:
		return c, fmt.Errorf("claim lease %v: want at least %v", c.ClaimLease, minClaimLease)
	case (c.AuthHeader == "") != (c.AuthSecret == ""):
		return c, errors.New("auth header and auth secret must be set together")
	}
	return c, c.CheckRoutes()
}

// CheckRoutes reports whether every protocol is served at an absolute path
// of its own, none of them an operational endpoint, and at least one is
// served. New checks it too.
func (c Config) CheckRoutes() error {
	routes := []struct{ name, path string }{{"Path", c.Path}, {"BigQueryPath", c.BigQueryPath}, {"RESTPrefix", c.RESTPrefix}}
	if c.NoSnowflake {
		routes = routes[1:]
	}
	seen := map[string]string{}
	for _, r := range routes {
		switch p := r.path; {
		case p == "":
			continue
		case !strings.HasPrefix(p, "/") || p == "/healthz" || p == "/readyz" || p == "/metrics" || p == "/" ||
			strings.ContainsAny(p, ":*?# "):
			return fmt.Errorf("%s %q: want an absolute URL other than /, /healthz, /readyz and /metrics, without : * ? # or spaces", r.name, p)
		case seen[p] != "":
			return fmt.Errorf("%s %q: already %s", r.name, p, seen[p])
		}
		seen[r.path] = r.name
	}
	// The REST API owns everything under its prefix (and the router
	// refuses a path beside a catch-all).
	if pre := c.RESTPrefix; pre != "" {
		for _, r := range routes {
			if r.path != "" && r.path != pre && strings.HasPrefix(r.path+"/", pre+"/") {
				return fmt.Errorf("%s %q: under RESTPrefix %q, which serves every URL below it", r.name, r.path, pre)
			}
			if r.path != "" && r.path != pre && strings.HasPrefix(pre+"/", r.path+"/") {
				return fmt.Errorf("RESTPrefix %q: under %s %q", pre, r.name, r.path)
			}
		}
	}
	if len(seen) == 0 {
		return errors.New("no protocol served: set Path, BigQueryPath or RESTPrefix")
	}
	return nil
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// Server is the remote service. Build it with New, then Serve it, or mount
// Handler in a test.
type Server struct {
	cfg     Config
	res     Resolver
	log     *slog.Logger
	met     *metrics
	batches *batches // the batch engine; snowflake.go is its adapter
	engine  *gin.Engine
	authSum [32]byte // sha256 of AuthSecret; the secret itself is not kept
	// digestSeed keys batch.digest, which tells a retry from a reused
	// batch id.
	digestSeed maphash.Seed

	bodies   sync.Pool // *bytes.Buffer for request bodies
	answers  sync.Pool // *[]byte: answer buffers no job keeps (see answerBuffer)
	gzipped  sync.Pool // *[]byte: gzipAnswer's buffers no job keeps
	spanPool sync.Pool // *[]span: see spanBuffer
	gzips    sync.Pool // *gzip.Writer
	serving  atomic.Bool
}

// New returns a Server answering through res. reg registers the gateway's
// metrics; nil means none are registered.
func New(res Resolver, cfg Config, reg prometheus.Registerer) (*Server, error) {
	if res == nil {
		return nil, errors.New("gateway: nil resolver")
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	met, err := newMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	s := &Server{cfg: cfg, res: res, log: cfg.Logger, met: met, digestSeed: maphash.MakeSeed()}
	if cfg.AuthSecret != "" {
		s.authSum = sum256(cfg.AuthSecret)
	}
	s.cfg.AuthSecret = "" // nothing below needs it; keep it out of reach of logging
	s.batches = newBatches(s.cfg, met)
	s.bodies.New = func() any { return new(bytes.Buffer) }
	s.gzips.New = func() any { zw, _ := gzip.NewWriterLevel(nil, gzip.BestSpeed); return zw }
	if s.engine, err = s.newEngine(); err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	return s, nil
}

// Handler returns the HTTP handler (the gin engine): the function paths,
// /healthz, /readyz and, if configured, /metrics.
func (s *Server) Handler() http.Handler { return s.engine }

// Serve answers on ln until ctx is done, then drains: /readyz turns 503,
// new batches get 503, running and asynchronous batches finish (polls are
// still answered) for up to ShutdownTimeout, after which the rest are
// cancelled and their rows follow OnRowError. It returns nil after a drain,
// or the listener's error. Serve may be called once.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if !s.serving.CompareAndSwap(false, true) {
		return errors.New("gateway: Serve called twice")
	}
	srv := &http.Server{
		Handler:           s.engine,
		ReadHeaderTimeout: 10 * time.Second,
		// No ReadTimeout: it would also cancel a request waiting longer
		// for its batch. The body read has its own deadline (post).
		IdleTimeout: 2 * time.Minute,
		ErrorLog:    slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	sweepCtx, stopSweep := context.WithCancel(context.Background())
	swept := make(chan struct{})
	go func() {
		defer close(swept)
		s.batches.maintain(sweepCtx)
	}()
	defer func() { stopSweep(); <-swept }()

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		s.batches.drain()
		s.batches.cancel()
		return fmt.Errorf("gateway: serve: %w", err)
	case <-ctx.Done():
	}
	return s.drain(srv, served)
}

// drain implements Serve's shutdown after its context ended.
func (s *Server) drain(srv *http.Server, served <-chan error) error {
	start := time.Now()
	s.batches.drain()
	srv.SetKeepAlivesEnabled(false)
	s.log.Info("draining", "timeout", s.cfg.ShutdownTimeout.String())
	dctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	if err := s.batches.waitIdle(dctx); err != nil {
		s.log.Warn("drain timed out; cancelling the remaining batches")
		s.batches.cancel()
	}
	// Handlers still writing answers get a short grace after a timeout.
	sctx, scancel := context.WithTimeout(context.Background(), max(time.Until(start.Add(s.cfg.ShutdownTimeout)), 2*time.Second))
	defer scancel()
	if err := srv.Shutdown(sctx); err != nil {
		// Shutdown has closed the listeners already, so Close's error (a
		// listener closed twice) says nothing: it only drops the open
		// connections that outlived the grace.
		_ = srv.Close()
	}
	s.batches.cancel()
	err := <-served
	s.log.Info("drained", "duration_ms", time.Since(start).Milliseconds())
	if !errors.Is(err, http.ErrServerClosed) {
		// The listener failed before Shutdown closed it (both were ready
		// at Serve's select): Serve returns the listener's error.
		return fmt.Errorf("gateway: serve: %w", err)
	}
	return nil
}
