package loader

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/snowgate/snowgate/cache"
	"github.com/snowgate/snowgate/locapi"
)

// Resolver answers one ID. *cache.Resolver is one (in process); Via is
// another (through a running gateway).
type Resolver interface {
	Resolve(ctx context.Context, id string) cache.Outcome
}

// Streamer is a Resolver with a fan-out of its own, which the loader uses
// instead of resolving IDs one by one: *cache.Resolver runs Concurrency
// lookups at once, Via sends batches. ResolveEach calls fn once for every
// ID it takes from ids, never after it returns; it returns when ids is
// closed and every ID taken is answered, or soon after ctx ends.
type Streamer interface {
	Resolver
	ResolveEach(ctx context.Context, ids <-chan string, fn func(id string, o cache.Outcome))
}

// ResolverFunc adapts a function to a Resolver.
type ResolverFunc func(ctx context.Context, id string) cache.Outcome

// Resolve calls f.
func (f ResolverFunc) Resolve(ctx context.Context, id string) cache.Outcome { return f(ctx, id) }

// ProviderStats are the provider client's counters, read before and after a
// run to report what the run cost.
type ProviderStats struct {
	Calls     int64 // requests sent to the provider
	Throttled int64 // of which answered 429
}

// Config tunes a Loader. Zero values are the documented defaults.
type Config struct {
	// Concurrency is the number of IDs being resolved at once through a
	// Resolver that is not a Streamer (a Streamer has its own bound), and
	// the rows buffered for the committer. Default 64.
	Concurrency int
	// PageSize is how many IDs one read from the warehouse returns. Default
	// 5,000; at least 2.
	PageSize int
	// CommitRows and CommitInterval: a commit happens when this many rows
	// are waiting or this long after the previous one, whichever is first.
	// Defaults 5,000 and 1s.
	CommitRows     int
	CommitInterval time.Duration
	// Limit stops after this many IDs; 0 means all.
	Limit int64
	// DryRun counts the pending IDs and resolves nothing.
	DryRun bool
	// RefreshOlderThan and RetryFailed select IDs as in Selection.
	RefreshOlderThan time.Duration
	RetryFailed      bool
	// DrainTimeout is how long lookups already started may still run after
	// the caller's context ends, before they are abandoned uncommitted.
	// Default 30s.
	DrainTimeout time.Duration
	// ProgressInterval is how often OnProgress is called. Default 1s when
	// OnProgress is set, 10s for the default log line.
	ProgressInterval time.Duration
	// OnProgress receives a snapshot every ProgressInterval and once at the
	// end. Nil logs a progress line at Info instead.
	OnProgress func(Progress)
	// ProviderStats, when set, reads the provider client's counters.
	ProviderStats func() ProviderStats
	// Now is the clock; default time.Now.
	Now func() time.Time
}

func (c Config) withDefaults() (Config, error) {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.Concurrency, 64)
	def(&c.PageSize, 5000)
	def(&c.CommitRows, 5000)
	switch {
	case c.Concurrency < 0, c.CommitRows < 0, c.Limit < 0, c.RefreshOlderThan < 0:
		return c, errors.New("loader config: negative concurrency, commit rows, limit or refresh age")
	case c.PageSize < 2:
		return c, fmt.Errorf("loader config: page size %d, want at least 2", c.PageSize)
	case c.RetryFailed && c.RefreshOlderThan > 0:
		return c, errors.New("loader config: retry-failed replays only failures; it cannot be combined with refresh-older-than")
	}
	if c.CommitInterval <= 0 {
		c.CommitInterval = time.Second
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = 30 * time.Second
	}
	if c.ProgressInterval <= 0 {
		c.ProgressInterval = 10 * time.Second
		if c.OnProgress != nil {
			c.ProgressInterval = time.Second
		}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c, nil
}

// Loader runs backfills from one warehouse through one resolver.
type Loader struct {
	wh     Warehouse
	res    Resolver
	cfg    Config
	logger *slog.Logger
}

// New checks cfg and returns a Loader. A nil logger discards.
func New(wh Warehouse, res Resolver, cfg Config, logger *slog.Logger) (*Loader, error) {
	if wh == nil || res == nil {
		return nil, errors.New("loader: warehouse and resolver are required")
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Loader{wh: wh, res: res, cfg: cfg, logger: logger}, nil
}

// Progress is a snapshot of a running backfill.
type Progress struct {
	Total      int64 // IDs pending at the start (after Limit)
	Done       int64 // IDs resolved, committed or not
	Committed  int64
	Found      int64 // committed, by outcome
	NotFound   int64
	NoLocation int64
	Failed     int64
	CacheHits  int64
	Provider   ProviderStats // since the start
	Elapsed    time.Duration
}

// Rate is resolved IDs per second so far.
func (p Progress) Rate() float64 {
	if p.Elapsed <= 0 {
		return 0
	}
	return float64(p.Done) / p.Elapsed.Seconds()
}

// Summary is what one Run did.
type Summary struct {
	Pending int64 // IDs pending at the start (after Limit); all a dry run does
	Read    int64 // IDs taken from the warehouse
	// Committed IDs by outcome.
	Found, NotFound, NoLocation, Failed int64
	Committed                           int64
	// Abandoned IDs were read but not committed: the run was interrupted
	// before they were resolved, the drain timeout cut their lookup short,
	// or a commit failed. They are still pending. Read = Committed +
	// Abandoned.
	Abandoned int64
	CacheHits int64
	Provider  ProviderStats
	// ProviderKnown says Provider was read (Config.ProviderStats is set);
	// through a gateway (Via) the provider's requests are not known here.
	ProviderKnown bool
	Duration      time.Duration
	Interrupted   bool // the caller's context ended before the source did
	DryRun        bool
}

// Rate is committed IDs per second.
func (s Summary) Rate() float64 {
	if s.Duration <= 0 {
		return 0
	}
	return float64(s.Committed) / s.Duration.Seconds()
}

// LogAttrs are the summary as log attributes.
func (s Summary) LogAttrs() []slog.Attr {
	attrs := []slog.Attr{
		slog.Int64("pending", s.Pending), slog.Int64("read", s.Read), slog.Int64("committed", s.Committed),
		slog.Int64("found", s.Found), slog.Int64("not_found", s.NotFound), slog.Int64("no_location", s.NoLocation),
		slog.Int64("failed", s.Failed), slog.Int64("abandoned", s.Abandoned), slog.Int64("cache_hits", s.CacheHits),
	}
	if s.ProviderKnown {
		attrs = append(attrs, slog.Int64("provider_calls", s.Provider.Calls), slog.Int64("provider_429s", s.Provider.Throttled))
	}
	return append(attrs, slog.Duration("duration", s.Duration), slog.Float64("ids_per_second", s.Rate()),
		slog.Bool("interrupted", s.Interrupted), slog.Bool("dry_run", s.DryRun))
}

// counters are a run's live totals, shared by its goroutines.
type counters struct {
	read, done, committed, abandoned, hits atomic.Int64
	byOutcome                              [4]atomic.Int64 // found, not found, no location, failed
}

func outcomeIndex(o Outcome) int {
	switch o {
	case OutcomeFound:
		return 0
	case OutcomeNotFound:
		return 1
	case OutcomeNoLocation:
		return 2
	}
	return 3
}

// Run resolves every pending ID and commits the results. When ctx ends it
// stops reading, lets lookups in flight finish (up to DrainTimeout),
// commits them and returns a Summary with Interrupted set and a nil error:
// running again resumes, since committed IDs are no longer pending.
func (l *Loader) Run(ctx context.Context) (Summary, error) {
	start := l.cfg.Now()
	sel := Selection{RefreshOlderThan: l.cfg.RefreshOlderThan, RetryFailed: l.cfg.RetryFailed, Now: start}
	if err := l.wh.Setup(ctx); err != nil {
		return Summary{}, err
	}
	total, err := l.wh.CountPending(ctx, sel)
	if err != nil {
		return Summary{}, err
	}
	if l.cfg.Limit > 0 {
		total = min(total, l.cfg.Limit)
	}
	sum := Summary{Pending: total, DryRun: l.cfg.DryRun}
	if l.cfg.DryRun || total == 0 {
		sum.Duration = l.cfg.Now().Sub(start)
		return sum, nil
	}
	var c counters
	base := l.providerStats()
	stopProgress := l.startProgress(&c, total, start, base)
	err = l.pipeline(ctx, sel, &c)
	stopProgress()

	sum.Read, sum.Committed, sum.Abandoned, sum.CacheHits = c.read.Load(), c.committed.Load(), c.abandoned.Load(), c.hits.Load()
	sum.Found, sum.NotFound = c.byOutcome[0].Load(), c.byOutcome[1].Load()
	sum.NoLocation, sum.Failed = c.byOutcome[2].Load(), c.byOutcome[3].Load()
	sum.Provider, sum.ProviderKnown = l.providerStats().since(base), l.cfg.ProviderStats != nil
	sum.Duration = l.cfg.Now().Sub(start)
	sum.Interrupted = ctx.Err() != nil
	return sum, err
}

func (l *Loader) providerStats() ProviderStats {
	if l.cfg.ProviderStats == nil {
		return ProviderStats{}
	}
	return l.cfg.ProviderStats()
}

func (p ProviderStats) since(base ProviderStats) ProviderStats {
	return ProviderStats{Calls: p.Calls - base.Calls, Throttled: p.Throttled - base.Throttled}
}

// startProgress reports every ProgressInterval until the returned func is
// called, which reports once more and waits for the reporter to end.
func (l *Loader) startProgress(c *counters, total int64, start time.Time, base ProviderStats) func() {
	snap := func() Progress {
		return Progress{
			Total: total, Done: c.done.Load(), Committed: c.committed.Load(),
			Found: c.byOutcome[0].Load(), NotFound: c.byOutcome[1].Load(),
			NoLocation: c.byOutcome[2].Load(), Failed: c.byOutcome[3].Load(),
			CacheHits: c.hits.Load(), Provider: l.providerStats().since(base), Elapsed: l.cfg.Now().Sub(start),
		}
	}
	report := l.cfg.OnProgress
	if report == nil {
		report = func(p Progress) {
			attrs := []any{"done", p.Done, "total", p.Total, "committed", p.Committed, "failed", p.Failed, "cache_hits", p.CacheHits}
			if l.cfg.ProviderStats != nil { // through a gateway the provider's 429s are not known here
				attrs = append(attrs, "provider_429s", p.Provider.Throttled)
			}
			l.logger.Info("backfill progress", append(attrs, "ids_per_second", int64(p.Rate()))...)
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(l.cfg.ProgressInterval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				report(snap())
			case <-stop:
				report(snap())
				return
			}
		}
	})
	return func() { close(stop); wg.Wait() }
}

// rowFor turns the resolver's answer into a row; false means the lookup was
// cut short by the run ending, so the ID stays pending.
func rowFor(ctx context.Context, id string, out cache.Outcome, now time.Time) (Row, bool) {
	r := Row{ID: id, ResolvedAt: now}
	switch {
	case out.Err != nil && ctx.Err() != nil:
		return Row{}, false
	case out.Err != nil:
		r.Outcome, r.Reason = OutcomeFailed, reason(out.Err)
	case out.Entry == nil:
		r.Outcome, r.Reason = OutcomeFailed, "resolver returned neither an answer nor an error"
	case out.Status == locapi.Found && out.Record != nil:
		r.Outcome, r.Record = OutcomeFound, out.Record
	case out.Status == locapi.Found:
		r.Outcome, r.Reason = OutcomeFailed, "resolver answered found without a record"
	case out.Status == locapi.NotFound:
		r.Outcome = OutcomeNotFound
	case out.Status == locapi.NoLocation:
		r.Outcome, r.Record = OutcomeNoLocation, out.Record
	default:
		r.Outcome, r.Reason = OutcomeFailed, fmt.Sprintf("resolver answered unknown status %d", out.Status)
	}
	return r, true
}

// maxReason bounds a failure reason, which may quote a provider's body.
const maxReason = 1000

func reason(err error) string {
	s := err.Error()
	if s == "" {
		s = fmt.Sprintf("%T", err)
	}
	if len(s) > maxReason {
		s = strings.ToValidUTF8(s[:maxReason], "")
	}
	return s
}
