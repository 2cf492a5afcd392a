package sim

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
)

// fakeClock makes the bucket and the admission times follow *now.
func fakeClock(s *Server, now *time.Duration) {
	s.led.clock = func() int64 { return int64(*now) }
}

func TestTokenBucket(t *testing.T) {
	type step struct {
		at         time.Duration
		requests   int
		admitted   int
		retryAfter string // of the first 429, "" if none
	}
	tests := []struct {
		name  string
		cfg   Config
		steps []step
	}{
		{"burst then refill", Config{Rate: 100, Burst: 5}, []step{
			{0, 6, 5, "1"},
			{10 * time.Millisecond, 2, 1, "1"},
			{15 * time.Millisecond, 1, 0, "1"},
			{time.Second, 7, 5, "1"},
		}},
		{"default burst is rate/10", Config{Rate: 200}, []step{{0, 25, 20, "1"}}},
		{"default burst at least one", Config{Rate: 5}, []step{{0, 2, 1, "1"}, {200 * time.Millisecond, 1, 1, ""}}},
		{"retry-after rounds up to whole seconds", Config{Rate: 0.25}, []step{{0, 2, 1, "4"}, {3 * time.Second, 1, 0, "1"}, {4 * time.Second, 1, 1, ""}}},
		{"unlimited", Config{}, []step{{0, 1000, 1000, ""}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustNew(t, tt.cfg)
			var now time.Duration
			fakeClock(s, &now)
			for _, st := range tt.steps {
				now = st.at
				admitted, retryAfter := 0, ""
				for i := range st.requests {
					w := serve(s, "GET", EntityURL("", fmt.Sprint("id", i)), nil)
					switch w.Code {
					case http.StatusOK:
						admitted++
					case http.StatusTooManyRequests:
						if retryAfter == "" {
							retryAfter = w.Header().Get("Retry-After")
						}
					default:
						t.Fatalf("status: got %d; want 200 or 429", w.Code)
					}
				}
				if admitted != st.admitted || retryAfter != st.retryAfter {
					t.Errorf("at %v: got %d admitted, Retry-After %q; want %d, %q",
						st.at, admitted, retryAfter, st.admitted, st.retryAfter)
				}
			}
		})
	}
}

func TestMaxInWindowFunc(t *testing.T) {
	ms := func(v ...int64) []int64 {
		for i := range v {
			v[i] *= int64(time.Millisecond)
		}
		return v
	}
	tests := []struct {
		name   string
		stamps []int64
		d      time.Duration
		want   int
	}{
		{"empty", nil, time.Second, 0},
		{"one", ms(5), time.Second, 1},
		{"all inside", ms(0, 100, 999), time.Second, 3},
		{"window is half-open", ms(0, 1000), time.Second, 1},
		{"densest later", ms(0, 1500, 1600, 1700, 2400, 2600), time.Second, 4},
		{"equal stamps", ms(7, 7, 7, 2000), time.Millisecond, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := maxInWindow(tt.stamps, tt.d); got != tt.want {
				t.Errorf("maxInWindow: got %d; want %d", got, tt.want)
			}
		})
	}
}

func TestCountersWithFakeClock(t *testing.T) {
	s := mustNew(t, Config{Rate: 1000, Burst: 3})
	var now time.Duration
	fakeClock(s, &now)
	for _, at := range []time.Duration{100, 500, 1200, 1200, 1200, 1200, 3000} {
		now = at * time.Millisecond
		serve(s, "GET", EntityURL("", "WH-1"), nil)
	}
	if got, want := s.PerSecond(), []int{2, 3, 0, 1}; !slices.Equal(got, want) {
		t.Errorf("PerSecond: got %v; want %v", got, want)
	}
	checks := []struct {
		name      string
		got, want int
	}{
		{"Total", s.Total(), 7},
		{"Admitted", s.Admitted(), 6},
		{"Status(429)", s.Status(429), 1},
		{"Status(200)", s.Status(200), 6},
		{"Requests", s.Requests("WH-1"), 7},
		{"Requests of another id", s.Requests("WH-2"), 0},
		{"MaxInWindow(1s)", s.MaxInWindow(time.Second), 4},
		{"MaxInWindow(1ms)", s.MaxInWindow(time.Millisecond), 3},
		{"Status out of range", s.Status(1000), 0},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %d; want %d", c.name, c.got, c.want)
		}
	}
	s.Reset()
	if s.Total() != 0 || s.Admitted() != 0 || s.Requests("WH-1") != 0 || len(s.PerSecond()) != 0 || s.MaxInWindow(time.Hour) != 0 {
		t.Errorf("after Reset: %+v; want all zero", s.Stats())
	}
}

func TestTimestampsStayBounded(t *testing.T) {
	s := mustNew(t, Config{MaxTimestamps: 10})
	for i := range 25 {
		serve(s, "GET", EntityURL("", strconv.Itoa(i)), nil)
	}
	if n := len(s.led.stamps); n > 10 || n < 5 {
		t.Errorf("stamps kept: got %d; want between 5 and 10", n)
	}
	if got := s.Admitted(); got != 25 {
		t.Errorf("Admitted: got %d; want 25", got)
	}
}

// TestRateLimitUnderLoad hammers a real server and checks that the bucket
// holds: no window exceeds burst + rate*d, and every 429 says when to
// come back.
func TestRateLimitUnderLoad(t *testing.T) {
	const rate, burst = 200.0, 10
	rs := mustStart(t, Config{Rate: rate, Burst: burst})
	deadline := time.Now().Add(600 * time.Millisecond)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			for i := 0; time.Now().Before(deadline); i++ {
				req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, rs.EntityURL(fmt.Sprintf("g%d-%d", g, i)), nil)
				if err != nil {
					errs <- err
					return
				}
				resp, err := rs.Client().Do(req)
				if err != nil {
					errs <- err
					return
				}
				drain(resp)
				if resp.StatusCode == 429 {
					if n, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || n < 1 {
						errs <- fmt.Errorf("Retry-After %q: want whole seconds >= 1", resp.Header.Get("Retry-After"))
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, d := range []time.Duration{50 * time.Millisecond, 200 * time.Millisecond, 500 * time.Millisecond} {
		limit := burst + int(rate*d.Seconds()) + 1
		if got := rs.MaxInWindow(d); got > limit || got < limit/2 {
			t.Errorf("MaxInWindow(%v): got %d; want at most %d and near it", d, got, limit)
		}
	}
	st := rs.Stats()
	if st.Limited == 0 || st.Admitted+st.Limited != st.Total {
		t.Errorf("stats %+v: want some 429s and Admitted+Limited == Total", st)
	}
}
