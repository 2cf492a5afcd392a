package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/snowgate/snowgate/sim"
)

// tinyConfig runs both phases and both baselines in a few seconds: a fast
// provider with a rate limit (so the baseline meets 429s), faults, misses,
// and batches that go asynchronous at once (so the driver polls).
func tinyConfig() Config {
	return Config{
		Rows: 1200, RepeatRatio: 0.3, BatchSize: 100, Parallel: 4, HotMin: 50 * time.Millisecond,
		AsyncAfter: time.Millisecond, BackfillRows: 800, Concurrency: 16,
		BaselineBlock: 300, BaselineConns: 50,
		Provider: sim.Config{
			Seed: 7, Latency: 2 * time.Millisecond, Jitter: time.Millisecond, Rate: 1000, Burst: 20,
			NotFoundRatio: 0.1, NoLocationRatio: 0.1, ErrorRate: 0.05, TruncateRate: 0.02,
		},
	}
}

func TestRunTiny(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute) // a hang guard: seconds when idle
	defer cancel()
	cfg := tinyConfig()
	cfg.Dir = t.TempDir()
	rep, err := Run(ctx, cfg)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if err := rep.Err(); err != nil {
		t.Fatalf("Err: got %v; want nil", err)
	}
	t.Run("gateway", func(t *testing.T) { checkGatewayReport(t, rep.Gateway, cfg) })
	t.Run("mixed", func(t *testing.T) {
		if rep.Mixed == nil {
			t.Fatal("mixed report: got nil")
		}
		checkMixedReport(t, rep.Mixed, cfg)
	})
	t.Run("backfill", func(t *testing.T) { checkBackfillReport(t, rep.Backfill, cfg) })
	t.Run("output", func(t *testing.T) { checkOutputs(t, rep) })
}

func checkGatewayReport(t *testing.T, g *GatewayReport, cfg Config) {
	if g == nil {
		t.Fatal("gateway report: got nil")
	}
	wantDistinct := cfg.Rows - int(float64(cfg.Rows)*cfg.RepeatRatio)
	if g.Rows != cfg.Rows || g.Distinct != wantDistinct || g.Batches != 12 {
		t.Errorf("rows, distinct, batches: got %d, %d, %d; want %d, %d, 12", g.Rows, g.Distinct, g.Batches, cfg.Rows, wantDistinct)
	}
	if got := g.Cold.Right + g.Cold.Failed; got != int64(cfg.Rows) || g.Cold.Wrong != 0 || g.Cold.Missing != 0 {
		t.Errorf("cold pass: got %d right+failed, %d wrong, %d missing; want %d, 0, 0 (%v)", got, g.Cold.Wrong, g.Cold.Missing, cfg.Rows, g.Cold.Examples)
	}
	if g.Hot.Rows == 0 || g.Hot.Rows%int64(cfg.Rows) != 0 || g.Hot.Wrong+g.Hot.Missing != 0 {
		t.Errorf("hot pass: got %d rows, %d wrong, %d missing; want a multiple of %d, 0, 0", g.Hot.Rows, g.Hot.Wrong, g.Hot.Missing, cfg.Rows)
	}
	if g.HotProviderCalls != 0 {
		t.Errorf("hot pass provider calls: got %d; want 0", g.HotProviderCalls)
	}
	if g.Cold.Async == 0 {
		t.Errorf("cold pass async batches: got 0; want > 0 with AsyncAfter %v", cfg.AsyncAfter)
	}
	if g.Cold.Batches != g.Batches || g.Cold.LatencyP50 <= 0 || g.Cold.LatencyP99 < g.Cold.LatencyP50 {
		t.Errorf("cold latencies: got %d batches, p50 %v, p99 %v; want %d batches, 0 < p50 <= p99", g.Cold.Batches, g.Cold.LatencyP50, g.Cold.LatencyP99, g.Batches)
	}
	if p := g.Provider; p.Requests < g.Distinct || len(p.PerSecond) == 0 || p.BusiestSecond > p.BusiestBound {
		t.Errorf("provider: got %d requests, %d seconds, busiest %d of %d; want >= %d requests, some seconds, busiest within bound",
			p.Requests, len(p.PerSecond), p.BusiestSecond, p.BusiestBound, g.Distinct)
	}
	if g.ProviderCap != 1000 || g.HandlerRowsPerSecond <= 0 || len(g.RowsDone) < 2 {
		t.Errorf("bounds: got cap %v, handler %v rows/s, %d samples; want 1000, > 0, >= 2", g.ProviderCap, g.HandlerRowsPerSecond, len(g.RowsDone))
	}
	b := g.Baseline
	if b == nil {
		t.Fatal("gateway baseline: got nil")
	}
	if b.Rows != int64(cfg.Rows) || b.Good+b.Lost != b.Rows || b.Blocks != 4 || b.Wrong != 0 {
		t.Errorf("baseline: got rows %d, good %d + lost %d, %d blocks, %d wrong; want %d rows, good+lost = rows, 4 blocks, 0 wrong",
			b.Rows, b.Good, b.Lost, b.Blocks, b.Wrong, cfg.Rows)
	}
	if b.Provider.Throttled == 0 || b.LostTo[lost429] != int64(b.Provider.Throttled) {
		t.Errorf("baseline 429s: got %d at the provider, %d lost to 429; want > 0 and equal", b.Provider.Throttled, b.LostTo[lost429])
	}
	if g.Ratio <= 0 {
		t.Errorf("ratio: got %v; want > 0", g.Ratio)
	}
}

func checkBackfillReport(t *testing.T, b *BackfillReport, cfg Config) {
	if b == nil {
		t.Fatal("backfill report: got nil")
	}
	if b.Committed != int64(cfg.BackfillRows) || b.Found+b.NotFound+b.NoLocation+b.Failed != b.Committed {
		t.Errorf("committed: got %d (found %d, not found %d, no location %d, failed %d); want %d in all",
			b.Committed, b.Found, b.NotFound, b.NoLocation, b.Failed, cfg.BackfillRows)
	}
	if c := b.Check; c.Checked != int64(cfg.BackfillRows) || c.Wrong != 0 || c.Right+c.Failed != c.Checked {
		t.Errorf("check: got %+v; want %d checked, 0 wrong", c, cfg.BackfillRows)
	}
	if b.Child || b.RSSSource != "bench process VmHWM" {
		t.Errorf("loader: got child %v, rss source %q; want in process, VmHWM", b.Child, b.RSSSource)
	}
	if b.IDsPerSecond <= 0 || b.Bound != 1000 || b.Provider.Requests < cfg.BackfillRows {
		t.Errorf("rate: got %v IDs/s, bound %v, %d provider requests; want > 0, 1000, >= %d", b.IDsPerSecond, b.Bound, b.Provider.Requests, cfg.BackfillRows)
	}
	if b.Baseline == nil || b.Baseline.Rows != int64(cfg.BackfillRows) || b.Baseline.Wrong != 0 {
		t.Errorf("baseline: got %+v; want %d rows, 0 wrong", b.Baseline, cfg.BackfillRows)
	}
}

func checkOutputs(t *testing.T, rep *Report) {
	var text bytes.Buffer
	if err := rep.WriteText(&text); err != nil {
		t.Fatalf("WriteText: %v", err)
	}
	for _, want := range []string{"SIMULATED", "GATEWAY:", "BACKFILL:", "hot-cache rows/s", "cold batch latency p50 / p99",
		"busiest 1-second window", "provider calls per distinct ID", "backfill IDs/s", "peak RSS of the loader",
		"snowgate / baseline", "MIXED PROTOCOLS:", "cold redshift rows/s", "hot all protocols rows/s", "every checked row was right"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text output: missing %q in\n%s", want, text.String())
		}
	}
	js, err := json.Marshal(rep)
	if err != nil {
		t.Fatalf("json: %v", err)
	}
	var back map[string]any
	if err := json.Unmarshal(js, &back); err != nil {
		t.Fatalf("json round trip: %v", err)
	}
	for _, key := range []string{"gateway", "mixed", "backfill", "machine", "config"} {
		if _, ok := back[key]; !ok {
			t.Errorf("json: missing key %q", key)
		}
	}
	var svg bytes.Buffer
	if err := WritePlot(&svg, rep); err != nil {
		t.Fatalf("WritePlot: %v", err)
	}
	if s := svg.String(); !strings.Contains(s, "<svg") || !strings.Contains(s, "limit 1,000/s") {
		t.Errorf("plot: got %d bytes without <svg or the limit line", svg.Len())
	}
}

func TestConfigRejects(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"no phase", func(c *Config) { c.Rows, c.BackfillRows = 0, 0 }, "at least one positive"},
		{"negative rows", func(c *Config) { c.Rows = -1 }, "at least one positive"},
		{"repeat ratio 1", func(c *Config) { c.RepeatRatio = 1 }, "repeat ratio"},
		{"negative batch size", func(c *Config) { c.BatchSize = -5 }, "batch size"},
		{"negative concurrency", func(c *Config) { c.Concurrency = -1 }, "concurrency"},
		{"NaN rate", func(c *Config) { c.Rate = math.NaN() }, "rate"},
		{"bad provider", func(c *Config) { c.Provider.ErrorRate = 2 }, "provider"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tinyConfig()
			tt.edit(&c)
			_, err := Run(context.Background(), c)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Run: got %v; want an error mentioning %q", err, tt.want)
			}
		})
	}
}

func TestQuickIsValid(t *testing.T) {
	c, err := Quick().withDefaults()
	if err != nil {
		t.Fatalf("Quick: %v", err)
	}
	if c.Rows == 0 || c.BackfillRows == 0 || c.NoBaseline || c.Rate != c.Provider.Rate {
		t.Errorf("Quick: got rows %d, backfill %d, no baseline %v, rate %v; want both phases, the baseline, the provider's rate",
			c.Rows, c.BackfillRows, c.NoBaseline, c.Rate)
	}
}
