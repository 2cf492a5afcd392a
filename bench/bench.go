// Package bench measures snowgate on one machine, the way a user sizes a
// deployment: a SIMULATED provider (latency, jitter, rate limit, burst,
// faults) on 127.0.0.1, the gateway driven by a client that speaks the
// Snowflake external-function protocol as Snowflake does, the same rows
// through the gateway's four protocols at once (Snowflake, BigQuery, REST,
// Redshift) on one cache, the loader backfilling a DuckDB table, and,
// against the same simulator settings, the original workflow's strategy as
// a baseline. Every answered row and every stored row is checked against
// the simulator. Each figure is reported beside its bound.
package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/snowgate/snowgate/sim"
)

// Report is the outcome of one Run. Its JSON is the --json output.
type Report struct {
	Started  time.Time       `json:"started"`
	Seconds  float64         `json:"seconds"`
	Machine  Machine         `json:"machine"`
	Config   Config          `json:"config"`
	Gateway  *GatewayReport  `json:"gateway,omitempty"`
	Mixed    *MixedReport    `json:"mixed,omitempty"`
	Backfill *BackfillReport `json:"backfill,omitempty"`
}

// ProviderReport is what the provider saw during a phase.
type ProviderReport struct {
	Requests  int `json:"requests"` // every request, 429s included
	Admitted  int `json:"admitted"` // passed the provider's token bucket
	Throttled int `json:"throttled"`
	Faults    int `json:"faults"` // transient 5xx the simulator drew
	// RatePerSecond is admitted requests per second over the phase; Limit
	// is the provider's rate (0: unlimited) and Burst its bucket.
	RatePerSecond float64 `json:"rate_per_sec"`
	Limit         float64 `json:"limit"`
	Burst         int     `json:"burst"`
	// BusiestSecond is the most admitted requests in any sliding one-second
	// window; its bound is Limit + Burst.
	BusiestSecond int `json:"busiest_second"`
	BusiestBound  int `json:"busiest_bound"`
	// CallsPerID is requests per distinct ID; CallsPerIDExpected is what
	// the fault rates alone cost (retries), with no 429.
	CallsPerID         float64 `json:"calls_per_id"`
	CallsPerIDExpected float64 `json:"calls_per_id_expected"`
	// RateTo99 is the request rate until 99% of the phase's requests were
	// made, and TailSeconds how long the last 1% took: retries with
	// backoff of a few failing IDs stretch a run's end while the provider
	// idles. To 250ms.
	RateTo99    float64 `json:"rate_to_99"`
	TailSeconds float64 `json:"tail_s"`
	// PerSecond is the phase second by second; Per250ms the same in
	// quarter seconds, for the chart of a phase shorter than a few seconds.
	PerSecond []Second `json:"per_second"`
	Per250ms  []Second `json:"per_250ms"`
}

// runner is one Run's shared state.
type runner struct {
	cfg Config
	log *slog.Logger
	db  string // the DuckDB file
}

// Run runs the phases cfg selects and returns their report. An error means
// the bench could not run; wrong answers are in the report (see Err).
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(cfg.Dir, "snowgate-bench-")
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	if !cfg.Keep {
		// A leftover temporary directory does not make the figures wrong:
		// it is worth a warning, not a failed bench.
		defer func() {
			if err := os.RemoveAll(dir); err != nil {
				cfg.Logger.Warn("bench: temporary directory left behind", "dir", dir, "err", err.Error())
			}
		}()
	}
	r := &runner{cfg: cfg, log: cfg.Logger, db: filepath.Join(dir, "bench.duckdb")}
	rep := &Report{Started: time.Now(), Config: cfg, Machine: machine()}
	rep.Config.LoaderCommand = slices.Clone(cfg.LoaderCommand)
	if cfg.Rows > 0 {
		if rep.Gateway, err = r.gatewayPhase(ctx); err != nil {
			return nil, err
		}
		if rep.Mixed, err = r.mixedPhase(ctx); err != nil {
			return nil, err
		}
	}
	if cfg.BackfillRows > 0 {
		if rep.Backfill, err = r.backfillPhase(ctx); err != nil {
			return nil, err
		}
	}
	rep.Machine.LoadEnd = loadAvg()
	rep.Seconds = time.Since(rep.Started).Seconds()
	return rep, ctx.Err()
}

// Err reports rows snowgate got wrong: a value that disagrees with the
// simulator, a batch never answered, an ID stored twice or not at all.
// Rows that failed and said so (an error value, the failures table) are
// counted in the report but are not wrong.
func (r *Report) Err() error {
	var errs []error
	if g := r.Gateway; g != nil {
		for _, p := range []struct {
			name string
			pr   PassReport
		}{{"cold", g.Cold}, {"hot", g.Hot}} {
			if p.pr.Wrong+p.pr.Missing > 0 {
				errs = append(errs, fmt.Errorf("gateway %s pass: %d rows wrong, %d never answered; e.g. %v",
					p.name, p.pr.Wrong, p.pr.Missing, p.pr.Examples))
			}
		}
	}
	if m := r.Mixed; m != nil {
		errs = append(errs, m.err())
	}
	if b := r.Backfill; b != nil && b.Check.Wrong > 0 {
		errs = append(errs, fmt.Errorf("backfill: %d IDs wrong in the tables; e.g. %v", b.Check.Wrong, b.Check.Examples))
	}
	return errors.Join(errs...)
}

// providerReport summarizes the provider over [start, end] of a phase
// whose work was distinct IDs.
func (r *runner) providerReport(p *provider, start, end time.Time, distinct int) ProviderReport {
	st := p.Stats()
	pc := r.cfg.Provider
	rep := ProviderReport{
		Requests: st.Total, Admitted: st.Admitted, Throttled: st.Limited, Faults: st.Faults,
		Limit: pc.Rate, Burst: pc.Bucket(), BusiestSecond: p.MaxInWindow(time.Second),
		Per250ms: p.window(start, end),
	}
	rep.PerSecond = perSecond(rep.Per250ms)
	if s := end.Sub(start).Seconds(); s > 0 {
		rep.RatePerSecond = float64(st.Admitted) / s
	}
	if pc.Rate > 0 {
		rep.BusiestBound = int(pc.Rate) + rep.Burst
	}
	if distinct > 0 {
		rep.CallsPerID = float64(st.Total) / float64(distinct)
	}
	rep.CallsPerIDExpected = expectedCalls(pc)
	rep.RateTo99, rep.TailSeconds = requestsTo99(rep.Per250ms, bucket.Seconds(), end.Sub(start).Seconds())
	return rep
}

// requestsTo99 is the request rate until the end of the bucket (width
// seconds long) in which 99% of the requests had been made, and the time
// after it.
func requestsTo99(secs []Second, width, total float64) (rate, tail float64) {
	all := 0
	for _, s := range secs {
		all += s.Requests
	}
	sum := 0
	for i, s := range secs {
		sum += s.Requests
		if float64(sum) >= 0.99*float64(all) && sum > 0 {
			t := math.Min(float64(i+1)*width, total)
			return float64(sum) / t, math.Max(0, total-t)
		}
	}
	return 0, 0
}

// expectedCalls is the provider requests one distinct ID costs snowgate on
// average with no 429: a transient fault costs a retry, and an ID the
// provider always fails costs every attempt.
func expectedCalls(pc sim.Config) float64 {
	transient := pc.ErrorRate + pc.HangRate + pc.TruncateRate
	if transient >= 1 {
		return 0
	}
	const attempts = 8 // locapi's default MaxAttempts
	return (1-pc.PermanentFailRatio)/(1-transient) + pc.PermanentFailRatio*attempts
}
