package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/snowgate/snowgate/sim"
)

const simSynopsis = `Serve a SIMULATED location provider (not a real API) for demos and tests:
GET /api/v2/entities/{id}?select=id,label,location with deterministic records,
latency, a server-side token bucket (429 + Retry-After) and seeded faults.`

// simShutdownTimeout bounds how long answers in progress may take to drain.
const simShutdownTimeout = 10 * time.Second

// runSim serves the simulator until ctx is cancelled, then shuts it down.
func runSim(ctx context.Context, args []string, stdout io.Writer, logger *slog.Logger) error {
	fs := newFlagSet("sim", simSynopsis, stdout)
	listen := fs.String("listen", "127.0.0.1:9090", "address to listen on, host:port")
	requireToken := fs.Bool("require-token", false,
		"require Authorization: Bearer $SNOWGATE_UPSTREAM_TOKEN (the token itself is never a flag)")
	var cfg sim.Config
	fs.Int64Var(&cfg.Seed, "seed", 1, "seed of the per-request fault and jitter draws")
	fs.DurationVar(&cfg.Latency, "latency", 20*time.Millisecond, "latency added to every admitted request")
	fs.DurationVar(&cfg.Jitter, "jitter", 10*time.Millisecond, "latency varies uniformly by +/- this much")
	fs.Float64Var(&cfg.Rate, "rate", 100, "server-side limit in requests/s (0 = unlimited); excess answers 429")
	fs.IntVar(&cfg.Burst, "burst", 0, "token bucket size (0 = max(1, rate/10))")
	fs.Float64Var(&cfg.NotFoundRatio, "not-found-ratio", 0.05, "fraction of IDs that answer 404")
	fs.Float64Var(&cfg.NoLocationRatio, "no-location-ratio", 0.05, "fraction of IDs found without a location")
	fs.Float64Var(&cfg.PermanentFailRatio, "permanent-fail-ratio", 0, "fraction of IDs that always answer 500")
	fs.Float64Var(&cfg.ErrorRate, "error-rate", 0.01, "fraction of requests answering 500/502/503")
	fs.Float64Var(&cfg.HangRate, "hang-rate", 0, "fraction of requests that never answer")
	fs.Float64Var(&cfg.SlowRate, "slow-rate", 0, "fraction of requests delayed by --slow-delay")
	fs.DurationVar(&cfg.SlowDelay, "slow-delay", 2*time.Second, "extra delay of a slow request")
	fs.Float64Var(&cfg.TruncateRate, "truncate-rate", 0, "fraction of 200 answers whose JSON body is cut in half")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *requireToken {
		cfg.Token = os.Getenv("SNOWGATE_UPSTREAM_TOKEN")
		if cfg.Token == "" {
			return errors.New("sim: --require-token needs SNOWGATE_UPSTREAM_TOKEN to be set")
		}
	}
	cfg.Logger = logger
	rs, err := sim.Listen(*listen, cfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "snowgate sim: SIMULATED location provider (not a real API) listening on %s\n", rs.URL)
	select {
	case <-ctx.Done():
	case <-rs.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), simShutdownTimeout)
	defer cancel()
	err = rs.Shutdown(sctx)
	st := rs.Stats()
	fmt.Fprintf(stdout, "snowgate sim: stopped after %d requests (%d admitted, %d answered 429)\n",
		st.Total, st.Admitted, st.Limited)
	return err
}
