package sim

import (
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// maxSeconds bounds PerSecond at a week; later requests count in the last
// bucket.
const maxSeconds = 7 * 24 * 3600

// idCount counts the requests for one ID.
type idCount struct {
	requests uint32 // well-formed, authorized requests, 429s included
	admitted uint32 // of which passed the bucket: the fault draw index
}

// ledger is the token bucket and everything recorded at admission. One
// mutex guards it all so that timestamps are appended in the order the
// bucket admitted them, which keeps MaxInWindow exact.
type ledger struct {
	mu     sync.Mutex
	epoch  time.Time
	clock  func() int64 // ns since epoch; replaced in tests
	rate   float64      // tokens per ns; 0 = unlimited
	burst  float64
	tokens float64
	last   int64 // clock reading of the last refill

	// ids is keyed by the 64-bit ID hash rather than the ID, which keeps a
	// million distinct IDs at tens of MB; collisions are negligible.
	ids       map[uint64]idCount
	stamps    []int64 // admission times, ascending, at most maxStamps
	maxStamps int
	perSecond []int
}

func newLedger(cfg Config) *ledger {
	l := &ledger{
		rate:      cfg.Rate / 1e9,
		burst:     float64(cfg.Burst),
		tokens:    float64(cfg.Burst),
		maxStamps: cfg.MaxTimestamps,
		ids:       map[uint64]idCount{},
	}
	l.epoch = time.Now()
	l.clock = func() int64 { return int64(time.Since(l.epoch)) }
	return l
}

// admit counts a request for the ID hashed h and takes a token. It returns
// the ID's admission index (0 for its first admitted request), or ok=false
// and how long until a token is available.
func (l *ledger) admit(h uint64) (index uint32, ok bool, wait time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.clock()
	c := l.ids[h]
	c.requests++
	if l.rate > 0 {
		l.tokens = math.Min(l.burst, l.tokens+float64(now-l.last)*l.rate)
		l.last = now
		// The epsilon absorbs float error: a token due exactly now is here.
		if l.tokens < 1-1e-9 {
			l.ids[h] = c
			return 0, false, time.Duration(math.Ceil((1 - l.tokens) / l.rate))
		}
		l.tokens--
	}
	index = c.admitted
	c.admitted++
	l.ids[h] = c
	if len(l.stamps) >= l.maxStamps {
		l.stamps = append(l.stamps[:0], l.stamps[len(l.stamps)/2:]...)
	}
	l.stamps = append(l.stamps, now)
	sec := min(int(now/int64(time.Second)), maxSeconds-1)
	for len(l.perSecond) <= sec {
		l.perSecond = append(l.perSecond, 0)
	}
	l.perSecond[sec]++
	return index, true, 0
}

// reset forgets every count and restarts the clock; the bucket keeps its
// tokens, re-based on the new clock.
func (l *ledger) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	elapsed := l.clock() - l.last
	l.epoch = time.Now()
	l.last = l.clock() - elapsed
	l.ids = map[uint64]idCount{}
	l.stamps = nil
	l.perSecond = nil
}

// maxInWindow is the largest number of stamps in any half-open window
// [t, t+d). stamps must be ascending.
func maxInWindow(stamps []int64, d time.Duration) int {
	best, lo := 0, 0
	for hi, t := range stamps {
		for t-stamps[lo] >= int64(d) {
			lo++
		}
		best = max(best, hi-lo+1)
	}
	return best
}

// counters are the lock-free tallies.
type counters struct {
	total     atomic.Int64
	status    [600]atomic.Int64 // by status code; 0 = no answer (hang)
	inFlight  atomic.Int64
	slow      atomic.Int64
	truncated atomic.Int64
	faults    atomic.Int64 // transient 5xx
}

func (c *counters) reset() {
	c.total.Store(0)
	for i := range c.status {
		c.status[i].Store(0)
	}
	c.slow.Store(0)
	c.truncated.Store(0)
	c.faults.Store(0)
}

// pathRing keeps the raw request URIs of the most recent requests.
type pathRing struct {
	mu    sync.Mutex
	paths []string // ring of capacity max; next is the oldest once full
	next  int
	max   int
}

func (p *pathRing) add(uri string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.paths) < p.max {
		p.paths = append(p.paths, uri)
		return
	}
	p.paths[p.next] = uri
	p.next = (p.next + 1) % p.max
}

func (p *pathRing) list() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]string, 0, len(p.paths))
	out = append(out, p.paths[p.next:]...)
	return append(out, p.paths[:p.next]...)
}

func (p *pathRing) reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.paths, p.next = nil, 0
}

// Stats is a snapshot of the simulator's counters.
type Stats struct {
	Total     int         // every request
	Admitted  int         // well-formed requests that passed the bucket
	Limited   int         // answered 429
	ByStatus  map[int]int // by status code; 0 = no answer (see Status)
	Faults    int         // transient 500/502/503
	Slow      int         // slow answers
	Truncated int         // truncated bodies
	InFlight  int         // requests being handled now
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	st := Stats{
		Total:     int(s.ctr.total.Load()),
		Admitted:  s.Admitted(),
		Limited:   s.Status(429),
		ByStatus:  map[int]int{},
		Faults:    int(s.ctr.faults.Load()),
		Slow:      int(s.ctr.slow.Load()),
		Truncated: int(s.ctr.truncated.Load()),
		InFlight:  s.InFlight(),
	}
	for code := range s.ctr.status {
		if n := s.ctr.status[code].Load(); n > 0 {
			st.ByStatus[code] = int(n)
		}
	}
	return st
}

// Total is the number of requests received, whatever their answer.
func (s *Server) Total() int { return int(s.ctr.total.Load()) }

// Status is the number of responses with status code. Status(0) counts
// requests that got no answer: hangs, and clients that left during a delay.
func (s *Server) Status(code int) int {
	if code < 0 || code >= len(s.ctr.status) {
		return 0
	}
	return int(s.ctr.status[code].Load())
}

// InFlight is the number of requests being handled now, hangs included. A
// handler leaves it just after its response is sent, so a client may see
// the answer a moment before the count drops.
func (s *Server) InFlight() int { return int(s.ctr.inFlight.Load()) }

// Requests is the number of well-formed, authorized requests for id,
// including those answered 429.
func (s *Server) Requests(id string) int {
	h := hashID(id)
	s.led.mu.Lock()
	defer s.led.mu.Unlock()
	return int(s.led.ids[h].requests)
}

// Admitted is the number of requests that passed the token bucket.
func (s *Server) Admitted() int {
	s.led.mu.Lock()
	defer s.led.mu.Unlock()
	n := 0
	for _, c := range s.led.perSecond {
		n += c
	}
	return n
}

// MaxInWindow is the largest number of admitted requests in any sliding
// window of length d, over the last MaxTimestamps admissions.
func (s *Server) MaxInWindow(d time.Duration) int {
	s.led.mu.Lock()
	defer s.led.mu.Unlock()
	return maxInWindow(s.led.stamps, d)
}

// PerSecond is the number of admitted requests in each whole second since
// the simulator started (or was Reset).
func (s *Server) PerSecond() []int {
	s.led.mu.Lock()
	defer s.led.mu.Unlock()
	return append([]int(nil), s.led.perSecond...)
}

// Paths is the raw request URIs of the most recent requests, oldest first,
// when Config.RecordPaths is set; nil otherwise. Only tests call it (the
// client's tests check how a hostile ID reached the path): the simulator is
// itself a test tool, so this is its API, not dead code.
func (s *Server) Paths() []string {
	if !s.cfg.RecordPaths {
		return nil
	}
	return s.paths.list()
}

// Reset zeroes every counter and restarts the clock of PerSecond and
// MaxInWindow. The token bucket and requests in flight are untouched;
// per-ID fault draws start over.
func (s *Server) Reset() {
	s.led.reset()
	s.ctr.reset()
	s.paths.reset()
}
