package main

import (
	"context"
	"flag"
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

// simFlags are sim's settings, as its flags fill them.
type simFlags struct {
	listen       string
	requireToken bool
	cfg          sim.Config
}

// newSimFlags declares sim's flags.
func newSimFlags(stdout io.Writer) (*flag.FlagSet, *simFlags) {
	fs := newFlagSet("sim", simSynopsis, stdout)
	f := &simFlags{}
	cfg := &f.cfg
	fs.StringVar(&f.listen, "listen", "127.0.0.1:9090", "address to listen on, host:port")
	fs.BoolVar(&f.requireToken, "require-token", false,
		"require Authorization: Bearer $SNOWGATE_UPSTREAM_TOKEN (the token itself is never a flag)")
	numVar(fs, &cfg.Seed, "seed", 1, anyInt64(), "seed of the per-request fault and jitter draws")
	numVar(fs, &cfg.Latency, "latency", 20*time.Millisecond, delay, "latency added to every admitted request (0 = none)")
	numVar(fs, &cfg.Jitter, "jitter", 10*time.Millisecond, delay, "latency varies uniformly by +/- this much (0 = none)")
	numVar(fs, &cfg.Rate, "rate", 100, atLeast(0.0).zeroMeans("unlimited"),
		"server-side limit in requests/s (0 = unlimited); excess answers 429")
	numVar(fs, &cfg.Burst, "burst", 0, between(0, maxBurst), "token bucket size (0 = max(1, rate/10))")
	numVar(fs, &cfg.NotFoundRatio, "not-found-ratio", 0.05, fraction, "fraction of IDs that answer 404")
	numVar(fs, &cfg.NoLocationRatio, "no-location-ratio", 0.05, fraction, "fraction of IDs found without a location")
	numVar(fs, &cfg.PermanentFailRatio, "permanent-fail-ratio", 0, fraction, "fraction of IDs that always answer 500")
	numVar(fs, &cfg.ErrorRate, "error-rate", 0.01, fraction, "fraction of requests answering 500/502/503")
	numVar(fs, &cfg.HangRate, "hang-rate", 0, fraction, "fraction of requests that never answer")
	numVar(fs, &cfg.SlowRate, "slow-rate", 0, fraction, "fraction of requests delayed by --slow-delay")
	// sim reads a slow delay of 0 as its 2s default, so 0 is refused.
	numVar(fs, &cfg.SlowDelay, "slow-delay", 2*time.Second, between(time.Millisecond, time.Hour), "extra delay of a slow request")
	numVar(fs, &cfg.TruncateRate, "truncate-rate", 0, fraction, "fraction of 200 answers whose JSON body is cut in half")
	return fs, f
}

// The simulated provider's spans, for sim and bench.
var (
	fraction = between(0.0, 1)
	delay    = between(0, time.Hour).zeroMeans("none")
)

// providerFractions are the simulated provider's flags that share one draw:
// each group must sum to 1 at most, in the order sim adds them.
var providerFractions = [][]string{
	{"not-found-ratio", "no-location-ratio", "permanent-fail-ratio"},
	{"error-rate", "hang-rate", "slow-rate", "truncate-rate"},
}

// parseSim reads sim's settings and checks them, touching nothing.
func parseSim(args []string, stdout io.Writer) (*simFlags, error) {
	fs, f := newSimFlags(stdout)
	if err := parseFlags(fs, args); err != nil {
		return nil, err
	}
	for _, group := range providerFractions {
		if err := fractionsFit(fs, group...); err != nil {
			return nil, err
		}
	}
	if f.requireToken {
		f.cfg.Token = os.Getenv("SNOWGATE_UPSTREAM_TOKEN")
		if f.cfg.Token == "" {
			return nil, usagef("sim: --require-token needs SNOWGATE_UPSTREAM_TOKEN to be set")
		}
	}
	return f, nil
}

// runSim serves the simulator until ctx is cancelled, then shuts it down.
func runSim(ctx context.Context, args []string, stdout io.Writer, logger *slog.Logger) error {
	f, err := parseSim(args, stdout)
	if err != nil {
		return err
	}
	cfg := f.cfg
	cfg.Logger = logger
	rs, err := sim.Listen(f.listen, cfg)
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
