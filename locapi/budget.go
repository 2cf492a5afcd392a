package locapi

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Budget is the provider's request budget shared with other processes
// (several gateway replicas and a backfill): one schedule of request slots
// for all of them, and one 429 back-off. Package cluster keeps one in
// Redis. Any method may fail when the budget cannot be reached; the client
// then paces itself at Config.BudgetShare of the rate until it can.
type Budget interface {
	// Reserve books the next request slot at rate requests/s, with burst
	// requests allowed at once after an idle time, and returns how long to
	// wait before sending. It books nothing, and returns ok false, when the
	// wait would exceed maxWait.
	Reserve(ctx context.Context, rate float64, burst int, maxWait time.Duration) (wait time.Duration, ok bool, err error)
	// Lower records a 429 back-off: the shared rate drops to rate (unless
	// it is lower already) and climbs back linearly to ceiling over
	// recovery.
	Lower(ctx context.Context, rate, ceiling float64, recovery time.Duration) error
	// Lowered returns the shared rate in effect while a back-off lasts; ok
	// is false when there is none.
	Lowered(ctx context.Context) (rate float64, ok bool, err error)
}

// DefaultBudgetShare is Config.BudgetShare's default: room for four
// processes sharing one provider.
const DefaultBudgetShare = 0.25

const (
	// syncEvery is how often a client reads the shared back-off.
	syncEvery = 250 * time.Millisecond
	// shareHold keeps a client at its share for a while after the budget
	// is back, until the others (which notice within their own retry
	// interval, half a second by default) are back on it too: until then
	// they are not in the shared schedule, and a client using it alone at
	// the full rate would overshoot.
	shareHold = 2 * time.Second
	// maxBudgetWait bounds a slot booked without a deadline.
	maxBudgetWait = time.Hour
	// maxLate is how late after its slot a request may still be sent. A
	// request whose goroutine woke later (a starved CPU, a GC pause, a
	// throttled container) books a new slot instead: sent, it would bunch
	// with the requests of the next slots, from every process, and the
	// provider's bucket holds only so much. Requests less late are bunched
	// by at most this much, and this process's gate spreads what bunches
	// here over its share of the burst.
	maxLate = 50 * time.Millisecond
	// maxRebook bounds the new slots one request books, so a process that
	// is always late still makes progress.
	maxRebook = 3
	// sharedHeadroom paces the shared schedule 1% further under the rate
	// than a lone client (2% in all). Several processes' sends jitter more
	// than one's, and the provider's bucket refills by the difference
	// between its rate and ours: twice the margin, twice as fast back from
	// a bunch of late sends.
	sharedHeadroom = 0.99
)

// sharedBurst is the burst of the shared schedule: a quarter of the
// provider's, at least 1. It only saves a few milliseconds after an idle
// time, while what it leaves of the provider's burst absorbs the jitter of
// every process's sends.
func sharedBurst(providerBurst int) int { return max(1, providerBurst/4) }

// shared is the client's side of a Budget: booking a slot after the local
// limiter, following the shared back-off, and falling back to a share of
// the rate while the budget cannot be reached.
type shared struct {
	b        Budget
	share    float64
	burst    int
	adapt    *adaptive
	log      *slog.Logger
	fallback prometheus.Gauge
	hold     time.Duration // shareHold; shorter in tests
	nextSync atomic.Int64  // UnixNano of the next read of the shared back-off
	// scaled is set while the limiters run at the share: the budget is
	// down, or back for less than shareHold.
	scaled atomic.Bool

	mu     sync.Mutex // guards the fields below
	down   bool       // the budget is taken as unreachable
	downAt time.Time  // since when
	upAt   time.Time  // when it answered again
}

func newShared(b Budget, share float64, burst int, adapt *adaptive, log *slog.Logger, fallback prometheus.Gauge) *shared {
	return &shared{b: b, share: share, burst: burst, adapt: adapt, log: log, fallback: fallback, hold: shareHold}
}

// take books this request's slot in the shared schedule and waits for it,
// booking again if it woke too late for it. An unreachable budget is not the
// request's failure: it goes on under the local limiter, now at the share.
func (s *shared) take(ctx context.Context) error {
	for booked := 0; ; booked++ {
		maxWait := maxBudgetWait
		if dl, ok := ctx.Deadline(); ok {
			maxWait = time.Until(dl)
		}
		asked := time.Now()
		wait, ok, err := s.b.Reserve(ctx, s.adapt.current()*sharedHeadroom, s.burst, maxWait)
		now := time.Now()
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("waiting for the shared budget: %w", context.Cause(ctx))
			}
			s.unreachable(asked, now, err)
			return nil
		}
		s.reached(asked, now)
		if !ok {
			return fmt.Errorf("a shared rate-limit slot in %v would pass the deadline: %w",
				wait.Round(time.Millisecond), context.DeadlineExceeded)
		}
		due := now.Add(wait)
		if err := sleep(ctx, "a shared rate-limit slot", wait); err != nil {
			return err
		}
		if time.Since(due) <= maxLate || booked == maxRebook {
			return nil
		}
	}
}

// unreachable moves the limiters to the share, once per outage, for a
// request asked at asked that failed. A failure of a request asked before
// the budget was found reachable again is from the outage just over (a
// goroutine that stalled on its way back with it), not a new one.
func (s *shared) unreachable(asked, now time.Time, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down || asked.Before(s.upAt) {
		return
	}
	s.down, s.downAt = true, now
	s.scaled.Store(true)
	s.adapt.setScale(s.share)
	s.fallback.Set(1)
	s.log.Warn("shared provider budget unreachable: pacing this process at its local share of the rate",
		"share", s.share, "rate", s.adapt.rate(), "err", err.Error())
}

// reached notes a budget that answered a request asked at asked, and
// leaves the share once it has answered for the hold. An answer to a
// request asked before the budget was found unreachable proves nothing.
func (s *shared) reached(asked, now time.Time) {
	if !s.scaled.Load() {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.down && asked.Before(s.downAt):
	case s.down:
		s.down, s.upAt = false, now
		s.log.Info("shared provider budget reachable again; leaving the local share shortly", "after", s.hold.String())
	case now.Sub(s.upAt) >= s.hold:
		s.scaled.Store(false)
		s.adapt.setScale(1)
		s.fallback.Set(0)
	}
}

// sync adopts the shared back-off every syncEvery, in one caller at a time.
func (s *shared) sync(ctx context.Context, now time.Time) {
	next := s.nextSync.Load()
	if now.UnixNano() < next || !s.nextSync.CompareAndSwap(next, now.Add(syncEvery).UnixNano()) {
		return
	}
	r, ok, err := s.b.Lowered(ctx)
	if err != nil || !ok {
		return // an unreachable budget shows in take
	}
	if r, cut := s.adapt.adopt(now, r); cut {
		s.log.Info("another process was throttled; lowering request rate", "rate", r)
	}
}

// lower publishes a cut this client made.
func (s *shared) lower(ctx context.Context, r float64) {
	if err := s.b.Lower(ctx, r, s.adapt.ceiling, s.adapt.recovery(r)); err != nil {
		s.log.Debug("could not share a rate cut", "rate", r, "err", err.Error())
	}
}
