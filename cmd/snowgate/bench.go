//go:build !slim

package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/snowgate/snowgate/bench"
)

const benchSynopsis = `Measure snowgate on this machine to size a deployment, with no accounts and no
network beyond 127.0.0.1: a SIMULATED provider (latency, jitter, rate limit,
burst, faults), the gateway driven like Snowflake drives it (parallel gzip
batches, retries with the same batch id, polling of 202s), the same rows
through Snowflake, BigQuery, REST and Redshift requests interleaved on one
gateway and one cache (the mixed-protocol phase), a backfill of a
DuckDB table by 'snowgate backfill' run as a child process, and the original
workflow's strategy as a baseline on the same simulator settings. Every
answered and stored row is checked against the simulator; the command exits
non-zero if any was wrong. Each figure is printed beside its bound.
--quick is the small preset CI runs (well under two minutes on two cores);
flags given with it still win. --rows 0 or --backfill-rows 0 skips a phase.`

// benchFlags binds the command line to a bench.Config.
type benchFlags struct {
	cfg       bench.Config
	quick     bool
	baseline  bool
	loader    string
	jsonOut   bool
	plot      string
	keep      bool
	directory string
}

func addBenchFlags(fs *flag.FlagSet) *benchFlags {
	f := &benchFlags{}
	c, p := &f.cfg, &f.cfg.Provider
	fs.BoolVar(&f.quick, "quick", false, "the small preset CI runs; flags given explicitly still win")
	// Sizes past these take hours on any machine this runs on.
	numVar(fs, &c.Rows, "rows", 200_000, between(0, 10_000_000).zeroMeans("skip"), "rows sent through the gateway (0 skips the gateway phase)")
	numVar(fs, &c.RepeatRatio, "repeat-ratio", 0.3, between(0.0, 1).openHi(),
		"fraction of gateway rows repeating an ID sent earlier (distinct ratio = 1 - this)")
	numVar(fs, &c.BatchSize, "batch-size", bench.DefaultBatchSize, between(1, 100_000), "rows per batch, as Snowflake chooses it")
	numVar(fs, &c.Parallel, "parallel", bench.DefaultParallel, between(1, 1024), "batches in flight, as Snowflake's parallel calls")
	numVar(fs, &c.HotMin, "hot-min", bench.DefaultHotMin, between(time.Millisecond, time.Hour),
		"least duration of the hot-cache pass (batches are repeated)")
	numVar(fs, &c.AsyncAfter, "async-after", bench.DefaultAsyncAfter, between(time.Millisecond, time.Hour),
		"the gateway answers 202 (then polled) for batches running longer")
	numVar(fs, &c.BackfillRows, "backfill-rows", 100_000, between(0, 10_000_000).zeroMeans("skip"),
		"distinct IDs in MASTER_TABLE for the backfill (0 skips the phase)")
	enumVar(fs, &f.loader, "loader", "child", []string{"child", "inprocess"},
		"child (run 'snowgate backfill' as a child process: its own peak RSS) or inprocess")
	fs.BoolVar(&f.baseline, "baseline", true, "also run the original workflow's strategy on the same simulator settings")
	numVar(fs, &c.BaselineBlock, "baseline-block", bench.DefaultBaselineBlock, between(1, 1_000_000), "baseline: IDs per block (LIMIT/OFFSET)")
	numVar(fs, &c.BaselineConns, "baseline-conns", bench.DefaultBaselineConns, between(1, 10_000),
		"baseline: connections of each block's fresh pool")
	numVar(fs, &c.BaselineTimeout, "baseline-timeout", bench.DefaultBaselineTimeout, between(time.Millisecond, time.Hour),
		"baseline: timeout of one request")
	numVar(fs, &p.Latency, "latency", 20*time.Millisecond, delay, "provider: mean latency")
	numVar(fs, &p.Jitter, "jitter", 10*time.Millisecond, delay, "provider: latency spread, uniform +/-")
	numVar(fs, &p.Rate, "provider-rate", 2000, atLeast(0.0).zeroMeans("unlimited"), "provider: rate limit, requests/s (0 = unlimited)")
	numVar(fs, &p.Burst, "provider-burst", 0, between(0, maxBurst), "provider: token bucket size (0 = rate/10)")
	numVar(fs, &p.NotFoundRatio, "not-found-ratio", 0.05, fraction, "provider: fraction of IDs answered 404")
	numVar(fs, &p.NoLocationRatio, "no-location-ratio", 0.05, fraction, "provider: fraction of IDs without a location")
	numVar(fs, &p.PermanentFailRatio, "permanent-fail-ratio", 0.001, fraction, "provider: fraction of IDs always answered 500")
	numVar(fs, &p.ErrorRate, "error-rate", 0.01, fraction, "provider: fraction of requests answered 500/502/503")
	numVar(fs, &p.TruncateRate, "truncate-rate", 0.002, fraction, "provider: fraction of answers cut in the middle")
	numVar(fs, &p.HangRate, "hang-rate", 0, fraction, "provider: fraction of requests never answered (client timeouts apply)")
	numVar(fs, &p.SlowRate, "slow-rate", 0, fraction, "provider: fraction of requests delayed by --slow-delay")
	numVar(fs, &p.SlowDelay, "slow-delay", 2*time.Second, between(time.Millisecond, time.Hour), "provider: the delay of a slow request")
	numVar(fs, &p.Seed, "seed", 1, anyInt64(), "provider: seed of the fault and jitter draws")
	// The same limits as backfill's, which bench passes them on to.
	numVar(fs, &c.Rate, "rate", 0, atLeast(0.0).zeroMeans("--provider-rate"), "snowgate: provider requests/s it is told (0 = --provider-rate)")
	numVar(fs, &c.Burst, "burst", 0, between(0, maxBurst), "snowgate: the provider burst it is told (0 = the provider's)")
	numVar(fs, &c.Concurrency, "concurrency", bench.DefaultConcurrency, between(1, maxConcurrency),
		"snowgate: provider requests in flight at most")
	fs.BoolVar(&f.jsonOut, "json", false, "print the report as JSON instead of tables")
	fs.StringVar(&f.plot, "plot", "", "also draw the chart into this SVG file")
	fs.StringVar(&f.directory, "dir", "", "where the temporary DuckDB file is made (default: the system's temporary directory)")
	fs.BoolVar(&f.keep, "keep", false, "keep the temporary directory and its DuckDB file")
	return f
}

// applyQuick replaces every flag not given explicitly with the --quick
// preset: the preset is loaded under the bound fields, then the explicit
// values are set again.
func (f *benchFlags) applyQuick(fs *flag.FlagSet) error {
	explicit := map[string]string{}
	fs.Visit(func(fl *flag.Flag) { explicit[fl.Name] = fl.Value.String() })
	f.cfg = bench.Quick()
	for name, v := range explicit {
		if err := fs.Set(name, v); err != nil {
			return fmt.Errorf("--%s=%s: %w", name, v, err)
		}
	}
	return nil
}

// newBenchFlags declares bench's flags.
func newBenchFlags(stdout io.Writer) (*flag.FlagSet, *benchFlags) {
	fs := newFlagSet("bench", benchSynopsis, stdout)
	return fs, addBenchFlags(fs)
}

// parseBench reads bench's settings and checks them, touching nothing.
func parseBench(args []string, stdout io.Writer) (bench.Config, *benchFlags, error) {
	fs, f := newBenchFlags(stdout)
	if err := parseFlags(fs, args); err != nil {
		return bench.Config{}, nil, err
	}
	for _, group := range providerFractions {
		if err := fractionsFit(fs, group...); err != nil {
			return bench.Config{}, nil, err
		}
	}
	if f.quick {
		if err := f.applyQuick(fs); err != nil {
			return bench.Config{}, nil, usagef("bench: %v", err)
		}
	}
	cfg := f.cfg
	cfg.NoBaseline, cfg.Dir, cfg.Keep = !f.baseline, f.directory, f.keep
	if cfg.Rows == 0 && cfg.BackfillRows == 0 {
		return bench.Config{}, nil, usagef("bench: --rows 0 and --backfill-rows 0: want at least one phase")
	}
	if err := cfg.Validate(); err != nil {
		return bench.Config{}, nil, usagef("bench: %v", err)
	}
	return cfg, f, nil
}

func runBench(ctx context.Context, args []string, stdout io.Writer, logger *slog.Logger) error {
	cfg, f, err := parseBench(args, stdout)
	if err != nil {
		return err
	}
	cfg.Logger = logger
	if f.loader == "child" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("bench: --loader child: %w", err)
		}
		cfg.LoaderCommand = []string{exe, "backfill"}
	}
	rep, err := bench.Run(ctx, cfg)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	if err := f.write(stdout, rep); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	return rep.Err()
}

// write prints the report and draws the chart.
func (f *benchFlags) write(stdout io.Writer, rep *bench.Report) error {
	if f.jsonOut {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else if err := rep.WriteText(stdout); err != nil {
		return err
	}
	if f.plot == "" {
		return nil
	}
	out, err := os.Create(f.plot)
	if err != nil {
		return err
	}
	if err := bench.WritePlot(out, rep); err != nil {
		_ = out.Close() // the plot's error is the one to report
		return err
	}
	return out.Close()
}
