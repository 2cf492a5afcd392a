package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/snowgate/snowgate/gateway"
)

const serveSynopsis = `Serve the Snowflake external function: POST {"data":[[row, id], ...]} to --path
and get {"data":[[row, location], ...]}, resolved through the cache and the
rate-limited provider. Also /healthz, /readyz and /metrics.
The shared secret for --auth-header is read from SNOWGATE_AUTH_SECRET only, and
the provider token from SNOWGATE_UPSTREAM_TOKEN only. Several replicas (and
backfills) given the same --redis-url share one provider budget (give each the
provider's whole --rate), one cache, and the async batches.`

// serveFlags are serve's settings, as its flags fill them.
type serveFlags struct {
	listen string
	cfg    gateway.Config
	rf     *resolverFlags
}

// newServeFlags declares serve's flags.
func newServeFlags(stdout io.Writer) (*flag.FlagSet, *serveFlags) {
	fs := newFlagSet("serve", serveSynopsis, stdout)
	sf := &serveFlags{}
	cfg := &sf.cfg
	fs.StringVar(&sf.listen, "listen", ":8080", "address to listen on, host:port")
	fs.StringVar(&cfg.Path, "path", "/resolve_location", "URL path of the resolve_location function")
	fs.StringVar(&cfg.OnRowError, "on-row-error", gateway.RowErrorNull,
		"a row the provider failed: null, error ({\"error\": reason}) or fail (the batch answers 503 and Snowflake retries it)")
	fs.StringVar(&cfg.NotFound, "not-found", gateway.NotFoundNull,
		"a not-found or no-location row: null, or object ({\"found\": false, ...})")
	fs.Int64Var(&cfg.MaxBody, "max-body", 10<<20, "largest request body in bytes, after decompression (413 above)")
	fs.IntVar(&cfg.MaxResponse, "max-response", 10_000_000,
		"largest answer in bytes (10 MB for Snowflake, 6000000 behind AWS Lambda); above it the error names the MAX_BATCH_ROWS to set")
	fs.DurationVar(&cfg.BatchTimeout, "batch-timeout", 25*time.Second,
		"time a POST waits for its batch; then 202 with --async, else unresolved rows follow --on-row-error")
	fs.BoolVar(&cfg.Async, "async", false, "answer 202 to batches not done within --batch-timeout; Snowflake polls with GET")
	fs.DurationVar(&cfg.AsyncTimeout, "async-timeout", 10*time.Minute, "time an asynchronous batch may take in all")
	fs.DurationVar(&cfg.ResultTTL, "result-ttl", 15*time.Minute, "how long finished answers are kept by batch id for retries and polls")
	fs.IntVar(&cfg.MaxInflightRows, "max-inflight-rows", 131_072, "rows being worked on at most; a batch above it gets 429 at once")
	fs.StringVar(&cfg.AuthHeader, "auth-header", "",
		"header that must carry $SNOWGATE_AUTH_SECRET (e.g. sf-custom-snowgate-secret); empty = no check")
	fs.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", 30*time.Second, "time to finish running batches after SIGTERM")
	sf.rf = addResolverFlags(fs)
	return fs, sf
}

// runServe serves until ctx is cancelled (SIGTERM), then drains and returns.
func runServe(ctx context.Context, args []string, stdout io.Writer, logger *slog.Logger) error {
	fs, sf := newServeFlags(stdout)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, rf := sf.cfg, sf.rf
	cfg.AuthSecret = os.Getenv("SNOWGATE_AUTH_SECRET")
	switch {
	case cfg.AuthHeader != "" && cfg.AuthSecret == "":
		return errors.New("serve: --auth-header needs SNOWGATE_AUTH_SECRET to be set")
	case cfg.AuthHeader == "" && cfg.AuthSecret != "":
		return errors.New("serve: SNOWGATE_AUTH_SECRET is set but --auth-header is not: name the header that carries it")
	}

	reg := prometheus.NewRegistry()
	if err := registerProcessMetrics(reg); err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	p, err := rf.assemble(reg, logger)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	defer p.close()
	if p.shared != nil {
		cfg.Shared = p.shared.Jobs()
	}
	cfg.Logger = logger
	cfg.Metrics = promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
	gw, err := gateway.New(p.res, cfg, reg)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	ln, err := net.Listen("tcp", sf.listen)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	fmt.Fprintf(stdout, "snowgate serve: listening on %s, function at %s\n", ln.Addr(), cfg.Path)
	logger.Info("serving", "addr", ln.Addr().String(), "path", cfg.Path, "async", cfg.Async,
		"auth", cfg.AuthHeader != "", "on_row_error", cfg.OnRowError, "redis", p.shared != nil)
	return gw.Serve(ctx, ln)
}

// registerProcessMetrics adds the Go runtime and process collectors that the
// default registry would have had.
func registerProcessMetrics(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("registering process metrics: %w", err)
		}
	}
	return nil
}
