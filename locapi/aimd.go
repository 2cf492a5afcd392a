package locapi

import (
	"sync"
	"time"
)

const (
	// headroom paces the limiter a hair under the configured rate. Two
	// token buckets never tick in step (network jitter bunches requests), so
	// a client exactly at the provider's rate would keep the provider's
	// bucket empty and draw an occasional 429; 1% lets the provider's bucket
	// refill and absorb the jitter.
	headroom = 0.99
	// cutFactor is the multiplicative decrease applied on a 429.
	cutFactor = 0.8
	// keepShare bounds a decrease from below: never under this share of the
	// answers the provider actually gave in the last second. While the
	// client overshoots, that count is the provider's true rate, so cuts
	// converge on it instead of overshooting downwards.
	keepShare = 0.9
	// growShare is the additive recovery, as a share of the ceiling per
	// second without a 429.
	growShare = 0.02
	// growEvery bounds how often recovery touches the limiter, so the hot
	// path does not take the limiter's lock for each request.
	growEvery = 100 * time.Millisecond
	// slotLen and slots make the one-second window of answers.
	slotLen = 100 * time.Millisecond
	slots   = 10
	// adoptSlack ignores a shared rate within 0.1% of ours: that is the
	// same rate read at another moment of its recovery, not a cut.
	adoptSlack = 0.001
)

// adaptive lowers the limiter's rate when the provider throttles (AIMD) and
// lets it climb back to the ceiling, so a rate configured above what the
// provider allows converges instead of hammering it.
//
// One overshoot must cost one decrease: the requests already paced or in
// flight when the first 429 arrives answer 429 too. A 429 therefore only
// cuts if its request reserved its token after the last cut, i.e. was paced
// at the lowered rate. That also lets a badly overshooting client cut again
// as soon as the lowered rate proves too high, rather than after a fixed
// pause, which matters because every 429 parks its caller for the
// provider's Retry-After.
type adaptive struct {
	lims           []*bucket // all set to the same rate
	bursts         []int     // each limiter's burst at full scale
	ceiling, floor float64
	onChange       func(limit float64)
	born           time.Time

	mu       sync.Mutex // guards everything below, which changes together
	cur      float64
	scale    float64 // the limiters run at cur*scale: 1, or a share while a shared budget is unreachable
	lastCut  time.Time
	lastGrow time.Time
	answers  [slots]int   // non-429 answers per slot
	epochs   [slots]int64 // slot number each answers[i] counts
}

func newAdaptive(lims []*bucket, ceiling, floor float64, now time.Time, onChange func(float64)) *adaptive {
	a := &adaptive{lims: lims, ceiling: ceiling, floor: min(floor, ceiling), onChange: onChange, cur: ceiling, scale: 1, born: now}
	for _, l := range lims {
		a.bursts = append(a.bursts, l.burst())
	}
	return a
}

// answered records an answer other than 429 (one the provider's limiter let
// through).
func (a *adaptive) answered(now time.Time) {
	slot := now.UnixNano() / int64(slotLen)
	i := slot % slots
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.epochs[i] != slot {
		a.epochs[i], a.answers[i] = slot, 0
	}
	a.answers[i]++
}

// answeredRate is the answers per second over the last second; ok is false
// until the client has seen a whole second. a.mu must be held.
func (a *adaptive) answeredRate(now time.Time) (float64, bool) {
	if now.Sub(a.born) < time.Second {
		return 0, false
	}
	slot := now.UnixNano() / int64(slotLen)
	n := 0
	for i := range a.answers {
		if slot-a.epochs[i] < slots {
			n += a.answers[i]
		}
	}
	window := (slots-1)*slotLen + time.Duration(now.UnixNano()%int64(slotLen))
	return float64(n) / window.Seconds(), true
}

// throttled records a 429 at now for a request whose token was reserved at
// reserved, and reports the new rate if it cut.
func (a *adaptive) throttled(reserved, now time.Time) (float64, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if reserved.Before(a.lastCut) {
		return a.cur, false
	}
	next := max(a.floor, a.cur*cutFactor)
	if r, ok := a.answeredRate(now); ok {
		next = max(next, keepShare*r)
	}
	if next >= a.cur {
		return a.cur, false
	}
	a.lastCut, a.lastGrow = now, now
	a.set(next)
	return a.cur, true
}

// recover regains growShare of the ceiling per second since the last change.
func (a *adaptive) recover(now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cur >= a.ceiling {
		return
	}
	elapsed := now.Sub(a.lastGrow)
	if elapsed < growEvery {
		return
	}
	a.lastGrow = now
	a.set(min(a.ceiling, a.cur+growShare*a.ceiling*elapsed.Seconds()))
}

// set makes limit the rate; a.mu must be held.
func (a *adaptive) set(limit float64) {
	a.cur = limit
	for _, l := range a.lims {
		l.setLimit(limit * a.scale)
	}
	if a.onChange != nil {
		a.onChange(limit * a.scale)
	}
}

// adopt takes over a rate another process cut the shared budget to, if it
// is lower than ours. It counts as a cut made now: requests paced before
// were paced at the old rate, and their 429s must not cut again.
func (a *adaptive) adopt(now time.Time, shared float64) (float64, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	next := max(a.floor, min(shared, a.ceiling))
	if next >= a.cur*(1-adoptSlack) {
		return a.cur, false
	}
	a.lastCut, a.lastGrow = now, now
	a.set(next)
	return a.cur, true
}

// setScale runs the limiters at share s of the rate, their bursts scaled
// alike, so several processes falling back to their shares together stay
// within the provider's rate and burst.
func (a *adaptive) setScale(s float64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if s == a.scale {
		return
	}
	a.scale = s
	for i, l := range a.lims {
		b := a.bursts[i]
		// The limiters clamp their tokens to a lowered burst on next use.
		l.setBurst(max(min(2, b), int(float64(b)*s)))
	}
	a.set(a.cur)
}

// rate is the rate the limiters run at now.
func (a *adaptive) rate() float64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cur * a.scale
}

// current is the adaptive rate before any share is applied.
func (a *adaptive) current() float64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cur
}

// recovery is how long recovering from limit back to the ceiling takes.
func (a *adaptive) recovery(limit float64) time.Duration {
	if limit >= a.ceiling {
		return 0
	}
	return time.Duration((a.ceiling - limit) / (growShare * a.ceiling) * float64(time.Second))
}
