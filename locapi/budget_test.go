package locapi

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// fakeBudget is a hand-written Budget that records its calls. Package
// cluster's tests run the real one, in Redis, with several clients.
type fakeBudget struct {
	mu       sync.Mutex    // guards everything below
	fail     error         // every method fails with it when set
	wait     time.Duration // what Reserve answers
	lowered  float64       // what Lowered answers; 0: no back-off
	reserves []reserveCall
	lowers   []lowerCall
}

type reserveCall struct {
	rate    float64
	burst   int
	maxWait time.Duration
}

type lowerCall struct {
	rate, ceiling float64
	recovery      time.Duration
}

func (f *fakeBudget) Reserve(_ context.Context, rate float64, burst int, maxWait time.Duration) (time.Duration, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reserves = append(f.reserves, reserveCall{rate, burst, maxWait})
	if f.fail != nil {
		return 0, false, f.fail
	}
	return f.wait, f.wait <= maxWait, nil
}

func (f *fakeBudget) Lower(_ context.Context, rate, ceiling float64, recovery time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lowers = append(f.lowers, lowerCall{rate, ceiling, recovery})
	return f.fail
}

func (f *fakeBudget) Lowered(context.Context) (float64, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lowered, f.lowered > 0, f.fail
}

func (f *fakeBudget) set(fn func(f *fakeBudget)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func TestBudgetConfig(t *testing.T) {
	const tmpl = "http://h/api/v2/entities/{id}"
	b := &fakeBudget{}
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"budget without a rate", Config{URL: tmpl, Budget: b}, "needs a rate"},
		{"negative share", Config{URL: tmpl, Rate: 10, Budget: b, BudgetShare: -0.5}, "budget share"},
		{"share above one", Config{URL: tmpl, Rate: 10, Budget: b, BudgetShare: 1.5}, "budget share"},
		{"NaN share", Config{URL: tmpl, Rate: 10, Budget: b, BudgetShare: math.NaN()}, "budget share"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(tt.cfg, nil)
			if err == nil {
				c.Close()
				t.Fatalf("New succeeded; want an error containing %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New error %q; want it to contain %q", err, tt.want)
			}
		})
	}
	c := newClient(t, tmpl, Config{Rate: 10, Budget: b})
	if c.cfg.BudgetShare != DefaultBudgetShare {
		t.Errorf("default share: got %g; want %g", c.cfg.BudgetShare, DefaultBudgetShare)
	}
}

func TestBudgetBooksEachRequest(t *testing.T) {
	b := &fakeBudget{wait: 30 * time.Millisecond}
	c := newClient(t, "http://provider.invalid"+entitiesPath+"{id}", Config{Rate: 1000, Burst: 100, Budget: b, Transport: &sendRecorder{}})
	start := time.Now()
	if _, err := c.Lookup(context.Background(), "a"); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 30*time.Millisecond {
		t.Errorf("Lookup took %v; want it to wait the 30ms its slot was away", d)
	}
	if len(b.reserves) != 1 {
		t.Fatalf("Reserve calls: got %d; want 1", len(b.reserves))
	}
	r := b.reserves[0]
	if want := 1000 * headroom * sharedHeadroom; math.Abs(r.rate-want) > 1e-9 || r.burst != 25 {
		t.Errorf("Reserve(rate %g, burst %d); want rate %g, burst 25 (a quarter of the provider's)", r.rate, r.burst, want)
	}
	if r.maxWait <= 0 || r.maxWait > 2*time.Minute {
		t.Errorf("Reserve maxWait %v; want what is left of MaxRetryTime", r.maxWait)
	}
}

func TestBudgetSlotPastDeadline(t *testing.T) {
	b := &fakeBudget{wait: time.Hour}
	c := newClient(t, "http://provider.invalid"+entitiesPath+"{id}", Config{Rate: 1000, Budget: b, Transport: &sendRecorder{}})
	// Long enough that "at once" holds on a starved machine; the slot is
	// an hour away.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	_, err := c.Lookup(ctx, "a")
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "would pass the deadline") {
		t.Fatalf("got %v; want a shared slot that would pass the deadline", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("failed after %v; want at once", d)
	}
}

// TestBudgetFallback: while the budget cannot be reached the client paces
// itself at its share of the rate and burst, says so once, and goes back to
// the full rate a while after the budget answers again.
func TestBudgetFallback(t *testing.T) {
	var logs bytes.Buffer
	reg := prometheus.NewRegistry()
	b := &fakeBudget{fail: errors.New("redis unavailable")}
	c, err := New(Config{URL: "http://provider.invalid" + entitiesPath + "{id}", Rate: 1000, Burst: 100,
		Budget: b, BudgetShare: 0.25, Transport: &sendRecorder{}, Logger: slog.New(slog.NewTextHandler(&logs, nil))}, reg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.budget.hold = time.Hour
	lookups := func(n int) {
		t.Helper()
		for i := range n {
			if _, err := c.Lookup(context.Background(), "id"+string(rune('a'+i))); err != nil {
				t.Fatalf("Lookup with the budget down: %v", err)
			}
		}
	}
	steps := []struct {
		name      string
		change    func(*fakeBudget)
		hold      time.Duration
		rate      float64
		fallback  float64
		gateBurst int
		downLines int
		backLines int
	}{
		// The gate holds a quarter of its lone burst (50) with a budget,
		// and a quarter of that at the share.
		{"budget down", nil, time.Hour, 990 * 0.25, 1, 3, 1, 0},
		{"back, share held", func(f *fakeBudget) { f.fail = nil }, time.Hour, 990 * 0.25, 1, 3, 1, 1},
		{"back for longer than the hold", nil, 0, 990, 0, 12, 1, 1},
	}
	for _, s := range steps {
		if s.change != nil {
			b.set(s.change)
		}
		c.budget.hold = s.hold
		lookups(5)
		if got := c.Rate(); math.Abs(got-s.rate) > 1e-9 {
			t.Errorf("%s: Rate() = %g; want %g", s.name, got, s.rate)
		}
		if got := testutil.ToFloat64(c.m.budgetFallback); got != s.fallback {
			t.Errorf("%s: snowgate_upstream_budget_fallback = %g; want %g", s.name, got, s.fallback)
		}
		if got := c.gate.burst(); got != s.gateBurst {
			t.Errorf("%s: gate burst %d; want %d", s.name, got, s.gateBurst)
		}
		if n := strings.Count(logs.String(), "budget unreachable"); n != s.downLines {
			t.Errorf("%s: %d 'unreachable' lines; want %d", s.name, n, s.downLines)
		}
		if n := strings.Count(logs.String(), "reachable again"); n != s.backLines {
			t.Errorf("%s: %d 'reachable again' lines; want %d", s.name, n, s.backLines)
		}
	}
}

// TestBudgetSharedBackoff: a cut another process made is adopted, and a
// cut this client makes is published with its way back to the ceiling.
func TestBudgetSharedBackoff(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if n == 2 {
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		okHandler(w, r, n)
	})
	b := &fakeBudget{lowered: 500}
	c := newClient(t, f.url(), Config{Rate: 1000, Budget: b})
	if _, err := c.Lookup(context.Background(), "a"); err != nil {
		t.Fatal(err)
	}
	if got := c.Rate(); got != 500 {
		t.Fatalf("after reading the shared back-off: Rate() = %g; want 500", got)
	}
	if _, err := c.Lookup(context.Background(), "b"); err != nil { // a 429, then an answer
		t.Fatal(err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.lowers) != 1 {
		t.Fatalf("Lower calls: got %d; want 1", len(b.lowers))
	}
	l := b.lowers[0]
	wantRecovery := time.Duration((990 - l.rate) / (growShare * 990) * float64(time.Second))
	// 400, plus what recovery adds if the second lookup comes 100-250 ms
	// after the first (later, it reads the shared 500 again): up to 404.
	if l.rate < 399 || l.rate > 405 || l.ceiling != 990 || l.recovery != wantRecovery {
		t.Errorf("Lower(%g, %g, %v); want about 400 (500 cut by %g), ceiling 990, recovery %v", l.rate, l.ceiling, l.recovery, cutFactor, wantRecovery)
	}
}

// TestBudgetStaleFailureAfterRecovery: a request asked during an outage
// whose failure arrives after the budget was seen back (its goroutine
// stalled on the way) is not a second outage; a request asked later that
// fails is.
func TestBudgetStaleFailureAfterRecovery(t *testing.T) {
	var logs bytes.Buffer
	c, err := New(Config{URL: "http://provider.invalid" + entitiesPath + "{id}", Rate: 1000, Burst: 100,
		Budget: &fakeBudget{}, BudgetShare: 0.25, Transport: &sendRecorder{}, Logger: slog.New(slog.NewTextHandler(&logs, nil))}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, t0, down := c.budget, time.Now(), errors.New("redis unavailable")
	lines := func() int { return strings.Count(logs.String(), "budget unreachable") }
	s.unreachable(t0, t0, down)
	s.reached(t0.Add(time.Second), t0.Add(time.Second))
	s.unreachable(t0.Add(500*time.Millisecond), t0.Add(1100*time.Millisecond), down)
	if n := lines(); n != 1 || s.down {
		t.Fatalf("after a stale failure: %d 'unreachable' lines, down %v; want 1, false", n, s.down)
	}
	s.unreachable(t0.Add(2*time.Second), t0.Add(2*time.Second), down)
	if n := lines(); n != 2 || !s.down {
		t.Fatalf("after a new failure: %d 'unreachable' lines, down %v; want 2, true", n, s.down)
	}
}
