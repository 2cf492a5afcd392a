package locapi

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

// TestLimiterNeedsTimeInOrder shows why bucket exists: a rate.Limiter told
// a time before its last one counts the span between them twice. Three
// requests of a client at 100/s with a burst of 1 all go at once.
func TestLimiterNeedsTimeInOrder(t *testing.T) {
	t0 := time.Now()
	lim := rate.NewLimiter(100, 1)
	lim.ReserveN(t0, 1) // empty, as newBucket starts
	now, stale := t0.Add(time.Second), t0.Add(500*time.Millisecond)
	due := []time.Time{}
	for _, at := range []time.Time{now, stale, now} {
		due = append(due, at.Add(lim.ReserveN(at, 1).DelayFrom(at)))
	}
	atOnce := 0
	for _, d := range due {
		if !d.After(now) {
			atOnce++
		}
	}
	// Told the times in order, the limiter would send the first at once and
	// the others 10 and 20 ms later.
	if atOnce != 3 {
		t.Fatalf("rate.Limiter sent %d of 3 requests at once with a stale time in between; want 3, as x/time/rate v0.16.0 does (if it now keeps time in order, bucket's lock may no longer be needed)", atOnce)
	}
}

// TestBucketNeverOverAdmits hammers one bucket from many goroutines: however
// they are scheduled, it admits no more than its burst plus its rate over the
// time the test ran.
func TestBucketNeverOverAdmits(t *testing.T) {
	const r, burst, callers = 1000.0, 5, 32
	start := time.Now()
	b := newBucket(r, burst)
	var admitted atomic.Int64
	var wg sync.WaitGroup
	stop := start.Add(300 * time.Millisecond)
	for range callers {
		wg.Go(func() {
			for time.Now().Before(stop) {
				if ok, wait := b.take(); ok {
					admitted.Add(1)
				} else {
					time.Sleep(wait)
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	bound := int64(burst + r*elapsed.Seconds())
	t.Logf("admitted %d in %v (bound %d)", admitted.Load(), elapsed, bound)
	if got := admitted.Load(); got > bound {
		t.Fatalf("admitted %d in %v; want at most %d (burst %d + %g/s)", got, elapsed, bound, burst, r)
	}
	if admitted.Load() == 0 {
		t.Fatal("admitted nothing")
	}
}
