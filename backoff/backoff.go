// Package backoff is the one retry wait of snowgate: full-jitter exponential
// backoff, the Retry-After header in both of its forms, and a sleep that
// ends with its context. The provider client (locapi) and the
// external-function client (extfunc) both wait through it, so a retry waits
// the same way wherever it happens.
package backoff

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Policy is full-jitter exponential backoff: after the n-th failed attempt
// the wait is uniform in [0, min(Max, Base*2^(n-1))]. Drawing from the whole
// range, not its upper half, spreads the retries of many clients that
// failed together, so they do not come back together (the "full jitter" of
// AWS's "Exponential Backoff And Jitter" article). A zero Policy never waits.
type Policy struct {
	Base time.Duration // ceiling of the wait after the first failure
	Max  time.Duration // the ceiling never grows past this
}

// Ceiling is the longest wait after the n-th failed attempt (n >= 1).
func (p Policy) Ceiling(n int) time.Duration {
	if p.Base <= 0 || p.Max <= 0 {
		return 0
	}
	ceil := p.Base
	for i := 1; i < n && ceil < p.Max; i++ {
		if ceil > p.Max/2 {
			ceil = p.Max // doubling would pass Max, or overflow
			break
		}
		ceil *= 2
	}
	return min(ceil, p.Max)
}

// Delay draws the wait after the n-th failed attempt (n >= 1).
func (p Policy) Delay(n int) time.Duration {
	ceil := p.Ceiling(n)
	switch {
	case ceil <= 0:
		return 0
	case ceil == math.MaxInt64:
		return rand.N(ceil)
	}
	return rand.N(ceil + 1)
}

// RetryAfter reads a Retry-After header value (RFC 9110 section 10.2.3):
// delay-seconds, or an HTTP-date, which is read against now and gives 0 when
// it is already past. ok is false for an empty or unreadable value, and for
// a number of seconds too large to be meant (past 2^32).
func RetryAfter(v string, now time.Time) (d time.Duration, ok bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if n, err := strconv.ParseUint(v, 10, 32); err == nil {
		return time.Duration(n) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return max(0, t.Sub(now)), true
}

// Sleep waits d, or until ctx ends, whichever comes first. It does not wait
// at all when ctx has already ended or when ctx's deadline comes before d
// has passed: waking up only to fail at the deadline would postpone the
// failure, not avoid it. Its error is context.Cause(ctx), or, for a wait
// that would pass the deadline, an error that wraps
// context.DeadlineExceeded and says so.
func Sleep(ctx context.Context, d time.Duration) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	if d <= 0 {
		return nil
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
		return fmt.Errorf("a wait of %v would pass the deadline: %w", d.Round(time.Millisecond), context.DeadlineExceeded)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}
