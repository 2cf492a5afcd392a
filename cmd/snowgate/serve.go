package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
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
	fs.StringVar(&cfg.Path, "path", "/resolve_location", "URL path of Snowflake's resolve_location function; empty turns it off")
	fs.StringVar(&cfg.BigQueryPath, "bigquery-path", "/bigquery/resolve_location",
		"URL path of BigQuery's resolve_location remote function; empty turns it off")
	fs.StringVar(&cfg.RESTPrefix, "rest-prefix", "/v1",
		"URL prefix of the REST API ({prefix}/locations/{id}, {prefix}/locations:batchGet, {prefix}/openapi.json); empty turns it off")
	enumVar(fs, &cfg.OnRowError, "on-row-error", gateway.RowErrorNull,
		[]string{gateway.RowErrorNull, gateway.RowErrorObject, gateway.RowErrorFail},
		"a row the provider failed: null, error ({\"error\": reason}) or fail (the batch answers 503 and Snowflake retries it)")
	enumVar(fs, &cfg.NotFound, "not-found", gateway.NotFoundNull, []string{gateway.NotFoundNull, gateway.NotFoundObject},
		"a not-found or no-location row: null, or object ({\"found\": false, ...})")
	// A body or an answer under 1 KiB holds hardly a row; past 1 GiB one
	// batch would hold the memory of many.
	numVar(fs, &cfg.MaxBody, "max-body", 10<<20, between[int64](1<<10, 1<<30),
		"largest request body in bytes, after decompression (413 above)")
	numVar(fs, &cfg.MaxResponse, "max-response", 10_000_000, between(1<<10, 1<<30),
		"largest answer in bytes (10 MB for Snowflake; 5000000, the default under AWS Lambda, where the answer travels escaped in a 6 MB payload); above it the error names the MAX_BATCH_ROWS to set")
	numVar(fs, &cfg.BatchTimeout, "batch-timeout", 25*time.Second, between(time.Millisecond, time.Hour),
		"time a POST waits for its batch; then 202 with --async, else unresolved rows follow --on-row-error")
	fs.BoolVar(&cfg.Async, "async", false, "answer 202 to batches not done within --batch-timeout; Snowflake polls with GET")
	numVar(fs, &cfg.AsyncTimeout, "async-timeout", 10*time.Minute, between(time.Millisecond, 24*time.Hour),
		"time an asynchronous batch may take in all")
	numVar(fs, &cfg.ResultTTL, "result-ttl", 15*time.Minute, between(time.Millisecond, 24*time.Hour),
		"how long finished answers are kept by batch id for retries and polls")
	numVar(fs, &cfg.MaxInflightRows, "max-inflight-rows", 131_072, between(1, 10_000_000),
		"rows being worked on at most; a batch above it gets 429 at once")
	fs.StringVar(&cfg.AuthHeader, "auth-header", "",
		"header that must carry $SNOWGATE_AUTH_SECRET (e.g. sf-custom-snowgate-secret); empty = no check")
	numVar(fs, &cfg.ShutdownTimeout, "shutdown-timeout", 30*time.Second, between(time.Millisecond, time.Hour),
		"time to finish running batches after SIGTERM")
	sf.rf = addResolverFlags(fs)
	return fs, sf
}

// parseServe reads serve's settings and checks them, touching nothing.
func parseServe(args []string, stdout io.Writer) (*serveFlags, error) {
	fs, sf := newServeFlags(stdout)
	lambdaDefaults(fs)
	if err := parseFlags(fs, args); err != nil {
		return nil, err
	}
	if err := checkLambda(sf); err != nil {
		return nil, err
	}
	sf.cfg.NoSnowflake = sf.cfg.Path == ""
	if err := sf.cfg.CheckRoutes(); err != nil {
		// CheckRoutes names the settings; the user knows them as flags.
		flags := strings.NewReplacer("BigQueryPath", "--bigquery-path", "RESTPrefix", "--rest-prefix", "Path", "--path")
		return nil, usagef("serve: %s", flags.Replace(err.Error()))
	}
	sf.cfg.AuthSecret = os.Getenv("SNOWGATE_AUTH_SECRET")
	switch {
	case sf.cfg.AuthHeader != "" && sf.cfg.AuthSecret == "":
		return nil, usagef("serve: --auth-header needs SNOWGATE_AUTH_SECRET to be set")
	case sf.cfg.AuthHeader == "" && sf.cfg.AuthSecret != "":
		return nil, usagef("serve: SNOWGATE_AUTH_SECRET is set but --auth-header is not: name the header that carries it")
	}
	return sf, nil
}

// runServe serves until ctx is cancelled (SIGTERM), then drains and returns.
func runServe(ctx context.Context, args []string, stdout io.Writer, logger *slog.Logger) error {
	sf, err := parseServe(args, stdout)
	if err != nil {
		return err
	}
	cfg, rf := sf.cfg, sf.rf

	reg := prometheus.NewRegistry()
	if err := registerProcessMetrics(reg); err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	p, err := rf.stack(reg, logger)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	// Serve has drained by then: every answer is sent, and Redis's pool
	// closing badly changes none of them.
	defer func() { _ = p.Close() }()
	if p.Shared != nil {
		cfg.Shared = p.Shared.Jobs()
	}
	cfg.Logger = logger
	cfg.Metrics = promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
	gw, err := gateway.New(p.Resolver, cfg, reg)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	if inLambda() {
		return serveLambda(ctx, gw, cfg, p.Shared != nil, logger)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", sf.listen)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	fmt.Fprintf(stdout, "snowgate serve: listening on %s, %s\n", ln.Addr(), routesLine(cfg))
	logger.Info("serving", "addr", ln.Addr().String(), "path", cfg.Path, "bigquery_path", cfg.BigQueryPath,
		"rest_prefix", cfg.RESTPrefix, "async", cfg.Async,
		"auth", cfg.AuthHeader != "", "on_row_error", cfg.OnRowError, "redis", p.Shared != nil)
	return gw.Serve(ctx, ln)
}

// routesLine says where each protocol is served.
func routesLine(cfg gateway.Config) string {
	var parts []string
	if !cfg.NoSnowflake {
		parts = append(parts, "Snowflake at "+cfg.Path)
	}
	if cfg.BigQueryPath != "" {
		parts = append(parts, "BigQuery at "+cfg.BigQueryPath)
	}
	if cfg.RESTPrefix != "" {
		parts = append(parts, "REST under "+cfg.RESTPrefix+"/")
	}
	return strings.Join(parts, ", ")
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
