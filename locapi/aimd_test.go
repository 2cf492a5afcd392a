package locapi

import (
	"math"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

func TestAdaptive(t *testing.T) {
	// On a 100ms slot boundary, so the answer window is exactly 0.9s + at%100ms.
	t0 := time.Date(2025, 1, 1, 0, 0, 10, 0, time.UTC)
	const ms = time.Millisecond
	type step struct {
		op      string // "429", "grow" or "answers"
		at      time.Duration
		sent    time.Duration // for "429": when the request was sent
		n       int           // for "answers": how many, all at at
		want    float64
		comment string
	}
	tests := []struct {
		name           string
		ceiling, floor float64
		born           time.Duration // client age at t0
		steps          []step
	}{
		{"one cut per overshoot", 100, 5, 0, []step{
			{op: "429", at: 0, sent: -10 * ms, want: 80},
			{op: "429", at: 100 * ms, sent: -5 * ms, want: 80, comment: "sent before the cut"},
			{op: "429", at: 400 * ms, sent: -1 * ms, want: 80, comment: "sent before the cut"},
			{op: "429", at: 450 * ms, sent: 50 * ms, want: 64, comment: "sent at the lowered rate"},
		}},
		{"additive recovery capped at the ceiling", 100, 5, 0, []step{
			{op: "429", at: 0, want: 80},
			{op: "grow", at: 50 * ms, want: 80, comment: "under growEvery"},
			{op: "grow", at: time.Second, want: 82},
			{op: "grow", at: 6 * time.Second, want: 92},
			{op: "grow", at: 60 * time.Second, want: 100},
		}},
		{"never below the floor", 100, 70, 0, []step{
			{op: "429", at: 0, want: 80}, {op: "429", at: time.Second, sent: time.Second, want: 70},
			{op: "429", at: 2 * time.Second, sent: 2 * time.Second, want: 70},
		}},
		{"floor above ceiling is clamped", 100, 150, 0, []step{{op: "429", want: 100}}},
		// All at t0, a slot boundary: the window is exactly 0.9s.
		{"never below 90% of the answers of the last second", 400, 20, 2 * time.Second, []step{
			{op: "answers", at: -500 * ms, n: 90, want: 400}, // 100/s over the 0.9s window
			{op: "429", at: 0, sent: 0, want: 320},
			{op: "429", at: 0, sent: 0, want: 256},
			{op: "429", at: 0, sent: 0, want: 204.8},
			{op: "429", at: 0, sent: 0, want: 163.84},
			{op: "429", at: 0, sent: 0, want: 131.072},
			{op: "429", at: 0, sent: 0, want: 104.8576},
			{op: "429", at: 0, sent: 0, want: 90},
			{op: "429", at: 0, sent: 0, want: 90},
		}},
		{"answers ignored in the first second", 400, 20, 0, []step{
			{op: "answers", at: -500 * ms, n: 90, want: 400},
			{op: "429", at: 1 * ms, sent: 1 * ms, want: 320},
			{op: "429", at: 2 * ms, sent: 2 * ms, want: 256},
		}},
		{"answers older than a second forgotten", 400, 20, 2 * time.Second, []step{
			{op: "answers", at: -1500 * ms, n: 1000, want: 400},
			{op: "429", at: 1 * ms, sent: 1 * ms, want: 320},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lim := &bucket{lim: rate.NewLimiter(rate.Limit(tt.ceiling), 1)}
			var reported float64
			a := newAdaptive([]*bucket{lim}, tt.ceiling, tt.floor, t0.Add(-tt.born), func(r float64) { reported = r })
			for i, s := range tt.steps {
				at := t0.Add(s.at)
				switch s.op {
				case "429":
					a.throttled(t0.Add(s.sent), at)
				case "grow":
					a.recover(at)
				case "answers":
					for range s.n {
						a.answered(at)
					}
				}
				got := a.rate()
				if math.Abs(got-s.want) > 1e-9 {
					t.Fatalf("step %d (%s %s): rate = %g; want %g", i, s.op, s.comment, got, s.want)
				}
				if float64(lim.lim.Limit()) != got {
					t.Fatalf("step %d: limiter = %g; want %g", i, float64(lim.lim.Limit()), got)
				}
				if reported != 0 && reported != got {
					t.Fatalf("step %d: reported %g; want %g", i, reported, got)
				}
			}
		})
	}
}
