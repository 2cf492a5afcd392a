package cluster

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// health is a circuit breaker over Redis. While Redis answers, operations
// pass with one atomic load. The first failure marks it down (one log
// line); from then on operations fail at once, except one every retryEvery
// that goes through to find out whether Redis is back (the probe).
type health struct {
	retryEvery time.Duration
	log        *slog.Logger
	m          *metrics

	down atomic.Bool
	// gen counts the times Redis came back, starting at 1: what was
	// written before a comeback may be gone (a restarted Redis without
	// persistence is empty).
	gen atomic.Uint64

	mu      sync.Mutex // guards the fields below, which change together
	since   time.Time  // start of the current outage
	upAt    time.Time  // end of the last outage; zero if none yet
	nextTry time.Time  // when the next probe may go
	probing bool       // a probe is out
}

func newHealth(retryEvery time.Duration, log *slog.Logger, m *metrics) *health {
	h := &health{retryEvery: retryEvery, log: log, m: m}
	h.gen.Store(1)
	m.up.Set(1)
	return h
}

// admit says whether an operation may go to Redis now, and whether it is
// the probe.
func (h *health) admit(now time.Time) (probe, ok bool) {
	if !h.down.Load() {
		return false, true
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.down.Load() {
		return false, true
	}
	if h.probing || now.Before(h.nextTry) {
		return false, false
	}
	h.probing = true
	return true, true
}

// succeeded records an answer from Redis. While down only the probe's
// answer counts: a slow answer to an operation sent before the outage
// proves little.
func (h *health) succeeded(probe bool, now time.Time) {
	if !probe {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.probing = false
	if !h.down.Load() {
		return
	}
	h.upAt = now
	h.gen.Add(1)
	h.down.Store(false)
	h.m.up.Set(1)
	h.log.Info("redis reachable again: provider budget, cache and batches shared again",
		"down_for", now.Sub(h.since).Round(time.Millisecond).String())
}

// failed records a failed operation.
func (h *health) failed(probe bool, now time.Time, op string, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if probe {
		h.probing = false
		h.nextTry = now.Add(h.retryEvery)
		return
	}
	if h.down.Load() {
		return
	}
	h.down.Store(true)
	h.since, h.nextTry = now, now.Add(h.retryEvery)
	h.m.up.Set(0)
	h.m.outages.Inc()
	h.log.Warn("redis unreachable: working alone until it answers again (provider budget at --redis-local-share "+
		"of the rate, in-process cache only, batches kept by the replica running them)",
		"op", op, "err", err.Error(), "retry_every", h.retryEvery.String())
}

// abandoned records an operation whose caller gave up first: no verdict.
func (h *health) abandoned(probe bool) {
	if !probe {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.probing = false
}

// recovering reports whether Redis came back less than grace ago.
func (h *health) recovering(now time.Time, grace time.Duration) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return !h.upAt.IsZero() && now.Sub(h.upAt) < grace
}
