package bench

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/snowgate/snowgate/sim"
)

// Config describes one benchmark run. Zero values are the documented
// defaults; Rows and BackfillRows choose the phases, and at least one must
// be positive.
type Config struct {
	// Rows is how many rows the Snowflake-like driver sends through the
	// gateway; 0 skips the gateway phase. RepeatRatio of them repeat an ID
	// seen earlier in the same run (default 0: all distinct).
	Rows        int     `json:"rows"`
	RepeatRatio float64 `json:"repeat_ratio"`
	// BatchSize is rows per batch (default 4,096, what Snowflake sends for
	// one short VARCHAR); Parallel is batches in flight (default 16).
	BatchSize int `json:"batch_size"`
	Parallel  int `json:"parallel"`
	// HotMin is the least time the hot pass runs, repeating the batches if
	// needed, so that its rate is not a few batches' noise. Default 3s.
	HotMin time.Duration `json:"hot_min_ns"`
	// AsyncAfter is the gateway's BatchTimeout: a batch still running after
	// it answers 202 and is polled. Default 5s.
	AsyncAfter time.Duration `json:"async_after_ns"`

	// BackfillRows is how many distinct IDs MASTER_TABLE holds for the
	// backfill phase; 0 skips it.
	BackfillRows int `json:"backfill_rows"`
	// LoaderCommand, when set, runs the backfill as a child process:
	// LoaderCommand followed by backfill flags (for snowgate: the path of
	// the binary and "backfill"). Its peak RSS is then the child's own
	// maxrss. Empty runs the loader in this process and reports this
	// process's VmHWM, which includes the simulator and the bench.
	LoaderCommand []string `json:"loader_command,omitempty"`

	// NoBaseline skips the original workflow's strategy.
	NoBaseline bool `json:"no_baseline"`
	// BaselineBlock is IDs per block (default 10,000), BaselineConns the
	// connections of each block's fresh pool (default 100), BaselineTimeout
	// the timeout of one of its requests (default 30s).
	BaselineBlock   int           `json:"baseline_block"`
	BaselineConns   int           `json:"baseline_conns"`
	BaselineTimeout time.Duration `json:"baseline_timeout_ns"`

	// Provider is the simulated provider; the bench sets its Logger and
	// sends no token.
	Provider sim.Config `json:"provider"`

	// Rate and Burst are what snowgate is told about the provider; 0 means
	// the provider's own (Provider.Rate, and its burst). Concurrency is
	// snowgate's cap on provider requests in flight, default 64.
	Rate        float64 `json:"rate"`
	Burst       int     `json:"burst"`
	Concurrency int     `json:"concurrency"`

	// Dir is where the temporary DuckDB file is made; default os.TempDir.
	// Keep leaves it there.
	Dir  string `json:"-"`
	Keep bool   `json:"-"`
	// Logger receives phase and progress lines; nil discards.
	Logger *slog.Logger `json:"-"`
}

// Defaults for the zero values of Config.
const (
	DefaultBatchSize       = 4096
	DefaultParallel        = 16
	DefaultHotMin          = 3 * time.Second
	DefaultAsyncAfter      = 5 * time.Second
	DefaultBaselineBlock   = 10_000
	DefaultBaselineConns   = 100
	DefaultBaselineTimeout = 30 * time.Second
	DefaultConcurrency     = 64
)

// Quick is the preset CI runs: both phases and the baseline, small enough to
// finish well under two minutes on two shared cores.
func Quick() Config {
	return Config{
		Rows: 20_000, RepeatRatio: 0.3, BatchSize: 1024, Parallel: 8, HotMin: 2 * time.Second,
		BackfillRows: 10_000, Concurrency: 64,
		Provider: sim.Config{
			Seed: 1, Latency: 20 * time.Millisecond, Jitter: 10 * time.Millisecond, Rate: 2000,
			NotFoundRatio: 0.05, NoLocationRatio: 0.05, PermanentFailRatio: 0.001,
			ErrorRate: 0.01, TruncateRate: 0.002,
		},
	}
}

// Validate reports settings Run would refuse.
func (c Config) Validate() error {
	_, err := c.withDefaults()
	return err
}

func (c Config) withDefaults() (Config, error) {
	if err := c.validate(); err != nil {
		return c, fmt.Errorf("config: %w", err)
	}
	setDefault(&c.BatchSize, DefaultBatchSize)
	setDefault(&c.Parallel, DefaultParallel)
	setDefault(&c.HotMin, DefaultHotMin)
	setDefault(&c.AsyncAfter, DefaultAsyncAfter)
	setDefault(&c.BaselineBlock, DefaultBaselineBlock)
	setDefault(&c.BaselineConns, DefaultBaselineConns)
	setDefault(&c.BaselineTimeout, DefaultBaselineTimeout)
	setDefault(&c.Concurrency, DefaultConcurrency)
	setDefault(&c.Rate, c.Provider.Rate)
	setDefault(&c.Burst, c.Provider.Bucket())
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	// sim.New only validates and allocates; nothing is served.
	s, err := sim.New(c.Provider)
	if err != nil {
		return c, fmt.Errorf("config: provider: %w", err)
	}
	_ = s.Close() // never fails: it only ends the waits, and nothing waits yet
	return c, nil
}

func (c Config) validate() error {
	var errs []error
	if c.Rows < 0 || c.BackfillRows < 0 || c.Rows == 0 && c.BackfillRows == 0 {
		errs = append(errs, errors.New("want rows >= 0 and backfill rows >= 0, at least one positive"))
	}
	if !(c.RepeatRatio >= 0 && c.RepeatRatio < 1) {
		errs = append(errs, fmt.Errorf("repeat ratio %v: want a fraction in [0, 1)", c.RepeatRatio))
	}
	for _, v := range []struct {
		name string
		v    int64
	}{
		{"batch size", int64(c.BatchSize)}, {"parallel", int64(c.Parallel)}, {"hot min", int64(c.HotMin)},
		{"async after", int64(c.AsyncAfter)}, {"baseline block", int64(c.BaselineBlock)},
		{"baseline conns", int64(c.BaselineConns)}, {"baseline timeout", int64(c.BaselineTimeout)},
		{"burst", int64(c.Burst)}, {"concurrency", int64(c.Concurrency)},
	} {
		if v.v < 0 {
			errs = append(errs, fmt.Errorf("%s %d is negative", v.name, v.v))
		}
	}
	if !(c.Rate >= 0) || math.IsInf(c.Rate, 0) {
		errs = append(errs, fmt.Errorf("rate %v: want a finite number >= 0", c.Rate))
	}
	return errors.Join(errs...)
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}
