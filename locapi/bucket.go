package locapi

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// bucket is a token bucket that is only ever told the time in order.
//
// rate.Limiter takes a time before its last one as no time passed, and then
// makes it its last one, so the next call counts the span between the two
// again. A goroutine that read the clock and then stalled (a GC pause, a
// starved CPU) before it reached the limiter would have the limiter hand out
// that span's tokens twice: a burst over the provider's bucket, answered
// with 429s. Reading the clock under the bucket's own lock makes the time
// every call passes go forward only.
type bucket struct {
	mu  sync.Mutex // held while reading the clock and calling lim, as one step
	lim *rate.Limiter
}

// newBucket starts with its burst spent, so requests are paced from the
// first one and the provider's full bucket stays as slack for jitter.
func newBucket(r float64, burst int) *bucket {
	b := &bucket{lim: rate.NewLimiter(rate.Limit(r), burst)}
	b.lim.ReserveN(time.Now(), burst)
	return b
}

// reserve books the next token and returns when it booked it and how long
// until the token is due.
func (b *bucket) reserve() (at time.Time, delay time.Duration, r *rate.Reservation) {
	b.mu.Lock()
	defer b.mu.Unlock()
	at = time.Now()
	r = b.lim.ReserveN(at, 1)
	return at, r.DelayFrom(at), r
}

// cancel gives a reserved token back, as far as later reservations allow.
func (b *bucket) cancel(r *rate.Reservation) {
	b.mu.Lock()
	defer b.mu.Unlock()
	r.CancelAt(time.Now())
}

// take takes a token if one is there now; else it says how long until one
// will be.
func (b *bucket) take() (ok bool, wait time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	if b.lim.AllowN(now, 1) {
		return true, 0
	}
	missing := 1 - b.lim.TokensAt(now)
	return false, time.Duration(missing / float64(b.lim.Limit()) * float64(time.Second))
}

func (b *bucket) setLimit(r float64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.lim.SetLimitAt(time.Now(), rate.Limit(r))
}

func (b *bucket) setBurst(n int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.lim.SetBurstAt(time.Now(), n)
}

func (b *bucket) burst() int { return b.lim.Burst() }

func (b *bucket) tokens() float64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.lim.TokensAt(time.Now())
}
