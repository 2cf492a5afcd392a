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
batches, retries with the same batch id, polling of 202s), a backfill of a
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
	fs.IntVar(&c.Rows, "rows", 200_000, "rows sent through the gateway (0 skips the gateway phase)")
	fs.Float64Var(&c.RepeatRatio, "repeat-ratio", 0.3, "fraction of gateway rows repeating an ID sent earlier (distinct ratio = 1 - this)")
	fs.IntVar(&c.BatchSize, "batch-size", bench.DefaultBatchSize, "rows per batch, as Snowflake chooses it")
	fs.IntVar(&c.Parallel, "parallel", bench.DefaultParallel, "batches in flight, as Snowflake's parallel calls")
	fs.DurationVar(&c.HotMin, "hot-min", bench.DefaultHotMin, "least duration of the hot-cache pass (batches are repeated)")
	fs.DurationVar(&c.AsyncAfter, "async-after", bench.DefaultAsyncAfter, "the gateway answers 202 (then polled) for batches running longer")
	fs.IntVar(&c.BackfillRows, "backfill-rows", 100_000, "distinct IDs in MASTER_TABLE for the backfill (0 skips the phase)")
	fs.StringVar(&f.loader, "loader", "child", "child (run 'snowgate backfill' as a child process: its own peak RSS) or inprocess")
	fs.BoolVar(&f.baseline, "baseline", true, "also run the original workflow's strategy on the same simulator settings")
	fs.IntVar(&c.BaselineBlock, "baseline-block", bench.DefaultBaselineBlock, "baseline: IDs per block (LIMIT/OFFSET)")
	fs.IntVar(&c.BaselineConns, "baseline-conns", bench.DefaultBaselineConns, "baseline: connections of each block's fresh pool")
	fs.DurationVar(&c.BaselineTimeout, "baseline-timeout", bench.DefaultBaselineTimeout, "baseline: timeout of one request")
	fs.DurationVar(&p.Latency, "latency", 20*time.Millisecond, "provider: mean latency")
	fs.DurationVar(&p.Jitter, "jitter", 10*time.Millisecond, "provider: latency spread, uniform +/-")
	fs.Float64Var(&p.Rate, "provider-rate", 2000, "provider: rate limit, requests/s (0 = unlimited)")
	fs.IntVar(&p.Burst, "provider-burst", 0, "provider: token bucket size (0 = rate/10)")
	fs.Float64Var(&p.NotFoundRatio, "not-found-ratio", 0.05, "provider: fraction of IDs answered 404")
	fs.Float64Var(&p.NoLocationRatio, "no-location-ratio", 0.05, "provider: fraction of IDs without a location")
	fs.Float64Var(&p.PermanentFailRatio, "permanent-fail-ratio", 0.001, "provider: fraction of IDs always answered 500")
	fs.Float64Var(&p.ErrorRate, "error-rate", 0.01, "provider: fraction of requests answered 500/502/503")
	fs.Float64Var(&p.TruncateRate, "truncate-rate", 0.002, "provider: fraction of answers cut in the middle")
	fs.Float64Var(&p.HangRate, "hang-rate", 0, "provider: fraction of requests never answered (client timeouts apply)")
	fs.Float64Var(&p.SlowRate, "slow-rate", 0, "provider: fraction of requests delayed by --slow-delay")
	fs.DurationVar(&p.SlowDelay, "slow-delay", 2*time.Second, "provider: the delay of a slow request")
	fs.Int64Var(&p.Seed, "seed", 1, "provider: seed of the fault and jitter draws")
	fs.Float64Var(&c.Rate, "rate", 0, "snowgate: provider requests/s it is told (0 = --provider-rate)")
	fs.IntVar(&c.Burst, "burst", 0, "snowgate: the provider burst it is told (0 = the provider's)")
	fs.IntVar(&c.Concurrency, "concurrency", bench.DefaultConcurrency, "snowgate: provider requests in flight at most")
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

func runBench(ctx context.Context, args []string, stdout io.Writer, logger *slog.Logger) error {
	fs := newFlagSet("bench", benchSynopsis, stdout)
	f := addBenchFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if f.quick {
		if err := f.applyQuick(fs); err != nil {
			return fmt.Errorf("%w: bench: %v", errUsage, err)
		}
	}
	cfg := f.cfg
	cfg.NoBaseline, cfg.Dir, cfg.Keep, cfg.Logger = !f.baseline, f.directory, f.keep, logger
	switch f.loader {
	case "child":
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("bench: --loader child: %w", err)
		}
		cfg.LoaderCommand = []string{exe, "backfill"}
	case "inprocess":
	default:
		return fmt.Errorf("%w: bench: --loader %q: want child or inprocess", errUsage, f.loader)
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("%w: bench: %v", errUsage, err)
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
		out.Close()
		return err
	}
	return out.Close()
}
