package sim

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"
)

// Config describes the simulated provider. The zero value is a fast,
// unlimited, fault-free provider in which every ID is found. Its JSON form
// (durations in ns, no Token or Logger) records a benchmark's provider.
type Config struct {
	// Seed keys the per-request fault and jitter draws. Records never depend
	// on it: the same ID always gives the same record.
	Seed int64 `json:"seed"`

	// Latency is added to every admitted request (429s answer at once);
	// Jitter spreads it uniformly over [Latency-Jitter, Latency+Jitter],
	// never below zero. Both default to 0. Go timers wake up late (up to a
	// millisecond when idle, more under load); the simulator corrects for
	// the lateness it measures, so the mean wait is the one drawn and a
	// single wait may end that much earlier.
	Latency time.Duration `json:"latency_ns"`
	Jitter  time.Duration `json:"jitter_ns"`

	// Rate is the server-side token bucket in requests per second; 0 means
	// unlimited. Burst is the bucket size; 0 means max(1, Rate/10). An empty
	// bucket answers 429 with Retry-After in whole seconds, at least 1.
	Rate  float64 `json:"rate"`
	Burst int     `json:"burst"`

	// Fractions of IDs, chosen by a hash of the ID so an ID's answer never
	// changes: NotFound answers 404, NoLocation answers 200 with a null or
	// absent location, PermanentFail always answers 500. Their sum must not
	// exceed 1; the rest are found. All default to 0.
	NotFoundRatio      float64 `json:"not_found_ratio"`
	NoLocationRatio    float64 `json:"no_location_ratio"`
	PermanentFailRatio float64 `json:"permanent_fail_ratio"`

	// Fractions of admitted requests that fail transiently: ErrorRate
	// answers 500, 502 or 503; HangRate never answers until the client gives
	// up or the simulator closes; SlowRate waits SlowDelay before answering;
	// TruncateRate cuts a 200 body in the middle of the JSON. Their sum must
	// not exceed 1. The draw for the n-th admitted request of an ID depends
	// only on (Seed, ID, n), so a run is reproducible under any concurrency.
	ErrorRate    float64 `json:"error_rate"`
	HangRate     float64 `json:"hang_rate"`
	SlowRate     float64 `json:"slow_rate"`
	TruncateRate float64 `json:"truncate_rate"`
	// SlowDelay defaults to 2s.
	SlowDelay time.Duration `json:"slow_delay_ns"`

	// Token, when set, is required as "Authorization: Bearer <Token>";
	// anything else answers 401.
	Token string `json:"-"`

	// RecordPaths keeps the raw request URI of the last MaxPaths requests
	// (default 100,000) for Paths.
	RecordPaths bool `json:"record_paths,omitempty"`
	MaxPaths    int  `json:"max_paths,omitempty"`

	// MaxTimestamps bounds the admission times kept for MaxInWindow
	// (default 4,000,000, 32 MB); older ones are dropped in halves.
	MaxTimestamps int `json:"max_timestamps,omitempty"`

	// Logger receives the startup warning and server errors; nil discards.
	Logger *slog.Logger `json:"-"`
}

const (
	defaultSlowDelay     = 2 * time.Second
	defaultMaxPaths      = 100_000
	defaultMaxTimestamps = 4_000_000
)

// Bucket is the size of the server-side token bucket: Burst, or
// max(1, Rate/10) when Burst is 0 and there is a Rate.
func (c Config) Bucket() int {
	if c.Burst == 0 && c.Rate > 0 {
		return max(1, int(c.Rate/10))
	}
	return c.Burst
}

// withDefaults validates c and fills its zero-value defaults.
func (c Config) withDefaults() (Config, error) {
	if err := c.validate(); err != nil {
		return c, fmt.Errorf("sim config: %w", err)
	}
	c.Burst = c.Bucket()
	if c.SlowDelay == 0 {
		c.SlowDelay = defaultSlowDelay
	}
	if c.MaxPaths == 0 {
		c.MaxPaths = defaultMaxPaths
	}
	if c.MaxTimestamps == 0 {
		c.MaxTimestamps = defaultMaxTimestamps
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

func (c Config) validate() error {
	var errs []error
	for _, f := range []struct {
		name string
		v    float64
	}{
		{"NotFoundRatio", c.NotFoundRatio}, {"NoLocationRatio", c.NoLocationRatio},
		{"PermanentFailRatio", c.PermanentFailRatio}, {"ErrorRate", c.ErrorRate},
		{"HangRate", c.HangRate}, {"SlowRate", c.SlowRate}, {"TruncateRate", c.TruncateRate},
	} {
		if !(f.v >= 0 && f.v <= 1) { // also rejects NaN
			errs = append(errs, fmt.Errorf("%s %v is not a fraction in [0, 1]", f.name, f.v))
		}
	}
	if s := c.NotFoundRatio + c.NoLocationRatio + c.PermanentFailRatio; s > 1 {
		errs = append(errs, fmt.Errorf("NotFoundRatio+NoLocationRatio+PermanentFailRatio = %v exceeds 1", s))
	}
	if s := c.ErrorRate + c.HangRate + c.SlowRate + c.TruncateRate; s > 1 {
		errs = append(errs, fmt.Errorf("ErrorRate+HangRate+SlowRate+TruncateRate = %v exceeds 1", s))
	}
	if !(c.Rate >= 0) || math.IsInf(c.Rate, 0) {
		errs = append(errs, fmt.Errorf("Rate %v must be a finite number >= 0", c.Rate)) //nolint:staticcheck // ST1005: names the field, Rate, as the other messages do
	}
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"Latency", int64(c.Latency)}, {"Jitter", int64(c.Jitter)}, {"SlowDelay", int64(c.SlowDelay)},
		{"Burst", int64(c.Burst)}, {"MaxPaths", int64(c.MaxPaths)}, {"MaxTimestamps", int64(c.MaxTimestamps)},
	} {
		if f.v < 0 {
			errs = append(errs, fmt.Errorf("%s %d must be >= 0", f.name, f.v))
		}
	}
	return errors.Join(errs...)
}
