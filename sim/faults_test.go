package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"
)

// outcome is what one request saw, reduced to what faults change.
type outcome struct {
	code      int
	truncated bool
}

// runSequence requests each of ids attempts times, in the order given.
func runSequence(t *testing.T, s *Server, ids []string, attempts int) map[string][]outcome {
	t.Helper()
	out := map[string][]outcome{}
	for range attempts {
		for _, id := range ids {
			w := serve(s, "GET", EntityURL("", id), nil)
			o := outcome{code: w.Code}
			if w.Code == 200 {
				_, want := s.Expected(id)
				body := w.Body.Bytes()
				o.truncated = !bytes.Equal(body, want)
				if o.truncated && (json.Valid(body) || !bytes.HasPrefix(want, body) || len(body) == 0) {
					t.Fatalf("%q: a changed 200 body must be a non-empty, invalid prefix of %s; got %s", id, want, body)
				}
				if cl := w.Header().Get("Content-Length"); cl != strconv.Itoa(len(body)) {
					t.Fatalf("%q: Content-Length %s; body has %d bytes", id, cl, len(body))
				}
			}
			out[id] = append(out[id], o)
		}
	}
	return out
}

func TestFaultsBySeed(t *testing.T) {
	cfg := Config{Seed: 7, ErrorRate: 0.1, TruncateRate: 0.1}
	ids := make([]string, 1000)
	for i := range ids {
		ids[i] = fmt.Sprint("WH", i)
	}
	reversed := make([]string, len(ids))
	for i, id := range ids {
		reversed[len(ids)-1-i] = id
	}
	a := runSequence(t, mustNew(t, cfg), ids, 3)
	same := runSequence(t, mustNew(t, cfg), reversed, 3)
	cfg.Seed = 8
	other := runSequence(t, mustNew(t, cfg), ids, 3)

	t.Run("same seed, any order: same faults", func(t *testing.T) {
		for _, id := range ids {
			if fmt.Sprint(a[id]) != fmt.Sprint(same[id]) {
				t.Fatalf("%q: got %v; want %v", id, same[id], a[id])
			}
		}
	})
	t.Run("other seed: other faults", func(t *testing.T) {
		diff := 0
		for _, id := range ids {
			if fmt.Sprint(a[id]) != fmt.Sprint(other[id]) {
				diff++
			}
		}
		if diff < 100 {
			t.Errorf("IDs whose faults changed with the seed: got %d; want at least 100", diff)
		}
	})
	t.Run("rates", func(t *testing.T) {
		codes := map[int]int{}
		truncated := 0
		for _, os := range a {
			for _, o := range os {
				codes[o.code]++
				if o.truncated {
					truncated++
				}
			}
		}
		n := float64(3 * len(ids))
		errs := codes[500] + codes[502] + codes[503]
		if r := float64(errs) / n; math.Abs(r-0.1) > 0.02 {
			t.Errorf("5xx share: got %.3f; want 0.10 ± 0.02", r)
		}
		if r := float64(truncated) / n; math.Abs(r-0.1) > 0.02 {
			t.Errorf("truncated share: got %.3f; want 0.10 ± 0.02", r)
		}
		for _, c := range []int{500, 502, 503} {
			if codes[c] == 0 {
				t.Errorf("status %d never drawn; codes %v", c, codes)
			}
		}
		if codes[200]+errs != int(n) {
			t.Errorf("codes %v: want only 200 and 5xx", codes)
		}
	})
}

func TestDelayDraws(t *testing.T) {
	const latency, jitter = 20 * time.Millisecond, 10 * time.Millisecond
	tests := []struct {
		name     string
		cfg      Config
		min, max time.Duration // of the delay without SlowDelay
		slow     float64
	}{
		{"latency only", Config{Latency: latency}, latency, latency, 0},
		{"jitter", Config{Latency: latency, Jitter: jitter}, latency - jitter, latency + jitter, 0},
		{"jitter never negative", Config{Latency: time.Millisecond, Jitter: jitter}, 0, time.Millisecond + jitter, 0},
		{"slow adds SlowDelay", Config{Latency: latency, SlowRate: 0.5, SlowDelay: time.Second}, latency, latency, 0.5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustNew(t, tt.cfg)
			var sum time.Duration
			slow, seenMin, seenMax := 0, time.Hour, time.Duration(0)
			const n = 4000
			for i := range n {
				f := s.draw(hashID(strconv.Itoa(i%100)), uint32(i/100))
				if f.kind == slowFault {
					slow++
					f.delay -= tt.cfg.SlowDelay
				}
				sum += f.delay
				seenMin, seenMax = min(seenMin, f.delay), max(seenMax, f.delay)
			}
			if seenMin < tt.min || seenMax > tt.max {
				t.Errorf("delays in [%v, %v]; want within [%v, %v]", seenMin, seenMax, tt.min, tt.max)
			}
			if mean := sum / n; tt.cfg.Latency > tt.cfg.Jitter && (mean < latency-time.Millisecond || mean > latency+time.Millisecond) {
				t.Errorf("mean delay: got %v; want %v ± 1ms", mean, latency)
			}
			if r := float64(slow) / n; math.Abs(r-tt.slow) > 0.03 {
				t.Errorf("slow share: got %.3f; want %.2f", r, tt.slow)
			}
		})
	}
}

func TestSlowAndLatencyAreReal(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		min  time.Duration
		slow int
	}{
		{"latency", Config{Latency: 30 * time.Millisecond}, 30 * time.Millisecond, 0},
		{"slow", Config{SlowRate: 1, SlowDelay: 40 * time.Millisecond}, 40 * time.Millisecond, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustNew(t, tt.cfg)
			start := time.Now()
			w := serve(s, "GET", EntityURL("", "WH-1"), nil)
			if el := time.Since(start); el < tt.min || w.Code != 200 {
				t.Errorf("got %d after %v; want 200 after at least %v", w.Code, el, tt.min)
			}
			if got := s.Stats().Slow; got != tt.slow {
				t.Errorf("Stats().Slow: got %d; want %d", got, tt.slow)
			}
		})
	}
}

// meanWaits serves rounds of 256 requests at a time, the load of a cold
// gateway batch, half of them to each of two servers and the halves swapped
// every round, so that both see the same load at the same moments. It
// returns each server's mean time per request after the first round (which
// teaches the simulator its timers' lateness) and the shortest one.
func meanWaits(t *testing.T, servers [2]*Server) (mean, least [2]time.Duration) {
	const callers, rounds = 256, 24
	var mu sync.Mutex // guards sum and least
	var sum [2]time.Duration
	least = [2]time.Duration{time.Hour, time.Hour}
	var wg sync.WaitGroup
	for c := range callers {
		wg.Go(func() {
			for i := range rounds {
				k := (c + i) % 2
				start := time.Now()
				w := serve(servers[k], "GET", EntityURL("", fmt.Sprintf("WH-%d-%d", c, i)), nil)
				el := time.Since(start)
				if w.Code != 200 {
					t.Errorf("status %d", w.Code)
				}
				mu.Lock()
				least[k] = min(least[k], el)
				if i > 0 {
					sum[k] += el
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	n := time.Duration(callers / 2 * (rounds - 1))
	return [2]time.Duration{sum[0] / n, sum[1] / n}, least
}

// TestLatencyMeanIsAccurate: timers fire late (an idle machine's
// uncorrected 20 ms wait averages 20.5-21 ms; a busy one's far more), and
// the simulator sets them early by the lateness it measured. Served under
// the same load, the corrected mean must be the lower, and no wait may be
// early by more than the half of the latency the correction is capped at.
// How near 20 ms the mean comes is logged: on a busy machine the
// scheduling delay after the timer is most of it.
func TestLatencyMeanIsAccurate(t *testing.T) {
	const latency = 20 * time.Millisecond
	corrected, raw := mustNew(t, Config{Latency: latency}), mustNew(t, Config{Latency: latency})
	raw.uncorrected = true
	mean, least := meanWaits(t, [2]*Server{corrected, raw})
	t.Logf("latency %v: mean wait %v corrected, %v uncorrected; shortest %v and %v; lateness learned %v",
		latency, mean[0], mean[1], least[0], least[1], time.Duration(corrected.late.Load()))
	if mean[0] >= mean[1] {
		t.Errorf("corrected mean %v is not below the uncorrected %v measured under the same load", mean[0], mean[1])
	}
	if least[0] < latency/2 || least[1] < latency {
		t.Errorf("shortest waits %v corrected, %v uncorrected; want at least %v and %v", least[0], least[1], latency/2, latency)
	}
}

// startWaiting serves one request in the background on a simulator whose
// every request waits, and returns once the handler is waiting.
func startWaiting(t *testing.T, cfg Config) (rs *Running, cancel context.CancelFunc, result <-chan error, done <-chan struct{}) {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	waiting, handled := make(chan struct{}, 1), make(chan struct{}, 1)
	s.onWait = func() { waiting <- struct{}{} }
	s.onDone = func() { handled <- struct{}{} }
	rs = mustServe(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	res := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, "GET", rs.EntityURL("WH-1"), nil)
		resp, err := rs.Client().Do(req)
		if err == nil {
			drain(resp)
			err = fmt.Errorf("got status %d", resp.StatusCode)
		}
		res <- err
	}()
	select {
	case <-waiting:
	case <-time.After(30 * time.Second): // a hang guard
		t.Fatal("the handler never started waiting")
	}
	return rs, cancel, res, handled
}

// within is a hang guard: ch must be closed or sent on within 30 s.
func within(t *testing.T, what string, ch <-chan struct{}) {
	t.Helper()
	const limit = 30 * time.Second
	select {
	case <-ch:
	case <-time.After(limit):
		t.Fatalf("%s: not within %v", what, limit)
	}
}

func TestHangReleasedOnClientCancel(t *testing.T) {
	rs, cancel, result, handled := startWaiting(t, Config{HangRate: 1})
	defer rs.Close()
	cancel()
	within(t, "handler returns after the client cancels", handled)
	if err := <-result; !errors.Is(err, context.Canceled) {
		t.Errorf("client error: got %v; want context.Canceled", err)
	}
	if got := rs.InFlight(); got != 0 {
		t.Errorf("InFlight: got %d; want 0", got)
	}
	if got := rs.Status(0); got != 1 {
		t.Errorf("Status(0) (no answer): got %d; want 1", got)
	}
}

func TestCloseReleasesWaits(t *testing.T) {
	tests := []struct {
		name       string
		cfg        Config
		wantStatus int // 0: the connection is aborted
	}{
		{"hang is aborted", Config{HangRate: 1}, 0},
		{"latency is cut short", Config{Latency: time.Hour}, 200},
		{"slow answer is cut short", Config{SlowRate: 1, SlowDelay: time.Hour}, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs, cancel, result, handled := startWaiting(t, tt.cfg)
			defer cancel()
			start := time.Now()
			if err := rs.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
			// Waits not released would hold Close for its whole timeout.
			if el := time.Since(start); el >= closeTimeout {
				t.Errorf("Close took %v; want it to release waits at once, not wait out its %v", el, closeTimeout)
			}
			within(t, "handler returns", handled)
			err := <-result
			if tt.wantStatus == 0 && (err == nil || err.Error() == "got status 200") {
				t.Errorf("client: got %v; want a connection error", err)
			}
			if tt.wantStatus != 0 && (err == nil || err.Error() != fmt.Sprintf("got status %d", tt.wantStatus)) {
				t.Errorf("client: got %v; want status %d", err, tt.wantStatus)
			}
		})
	}
}

func TestHangWithoutConnectionAnswers503OnClose(t *testing.T) {
	s := mustNew(t, Config{HangRate: 1})
	s.Close()
	w := serve(s, "GET", EntityURL("", "WH-1"), nil)
	if w.Code != http.StatusServiceUnavailable {
		t.Errorf("status: got %d; want 503", w.Code)
	}
}
