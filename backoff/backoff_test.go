package backoff

import (
	"context"
	"errors"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestCeiling(t *testing.T) {
	p := Policy{Base: 100 * time.Millisecond, Max: time.Second}
	tests := []struct {
		p    Policy
		n    int
		want time.Duration
	}{
		{p, 1, 100 * time.Millisecond},
		{p, 2, 200 * time.Millisecond},
		{p, 4, 800 * time.Millisecond},
		{p, 5, time.Second},
		{p, 1 << 20, time.Second},
		{p, 0, 100 * time.Millisecond}, // before any failure: the first ceiling
		{Policy{Base: time.Second, Max: 100 * time.Millisecond}, 1, 100 * time.Millisecond},
		{Policy{Base: time.Hour, Max: math.MaxInt64}, 200, math.MaxInt64}, // no overflow
		{Policy{}, 3, 0},
		{Policy{Base: time.Second}, 3, 0},
		{Policy{Base: -time.Second, Max: time.Second}, 3, 0},
	}
	for _, tt := range tests {
		if got := tt.p.Ceiling(tt.n); got != tt.want {
			t.Errorf("%+v.Ceiling(%d) = %v; want %v", tt.p, tt.n, got, tt.want)
		}
	}
}

// TestDelayFullJitter checks every draw lies in [0, ceiling] and that the
// draws cover the whole range, not only its upper half (equal jitter).
func TestDelayFullJitter(t *testing.T) {
	p := Policy{Base: 100 * time.Millisecond, Max: time.Second}
	for _, n := range []int{1, 2, 3, 4, 5, 60} {
		ceil := p.Ceiling(n)
		var low, high bool
		for range 2000 {
			d := p.Delay(n)
			if d < 0 || d > ceil {
				t.Fatalf("Delay(%d) = %v; want within [0, %v]", n, d, ceil)
			}
			low = low || d < ceil/4
			high = high || d > ceil*3/4
		}
		// The chance that 2000 uniform draws miss a quarter is 0.75^2000.
		if !low || !high {
			t.Errorf("Delay(%d): 2000 draws, below a quarter of %v: %v, above three quarters: %v; want both", n, ceil, low, high)
		}
	}
	if d := (Policy{}).Delay(3); d != 0 {
		t.Errorf("zero Policy: Delay(3) = %v; want 0", d)
	}
	if d := (Policy{Base: time.Hour, Max: math.MaxInt64}).Delay(100); d < 0 {
		t.Errorf("Delay at the largest ceiling = %v; want >= 0", d)
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in     string
		want   time.Duration
		wantOK bool
	}{
		{"3", 3 * time.Second, true},
		{" 0 ", 0, true},
		{"120", 2 * time.Minute, true},
		{"Sat, 01 Mar 2025 12:00:07 GMT", 7 * time.Second, true},    // IMF-fixdate
		{"Saturday, 01-Mar-25 12:00:07 GMT", 7 * time.Second, true}, // RFC 850
		{"Sat Mar  1 12:00:07 2025", 7 * time.Second, true},         // asctime
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{"Sat, 01 Mar 2025 11:00:00 GMT", 0, true}, // past: retry now
		{"Thu, 01 Jan 1970 00:00:00 GMT", 0, true},
		{"", 0, false},
		{"   ", 0, false},
		{"-1", 0, false},
		{"1.5", 0, false},
		{"+3", 0, false},
		{"3s", 0, false},
		{"soon", 0, false},
		{"99999999999", 0, false},
		{"Sat, 01 Mar 2025 25:00:00 GMT", 0, false},
		{"2025-03-01T12:00:07Z", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, ok := RetryAfter(tt.in, now)
			if got != tt.want || ok != tt.wantOK {
				t.Fatalf("RetryAfter(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestSleep(t *testing.T) {
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	cause := errors.New("closing")
	withCause, cancelCause := context.WithCancelCause(context.Background())
	cancelCause(cause)
	short, cancelShort := context.WithTimeout(context.Background(), time.Hour)
	defer cancelShort()
	tests := []struct {
		name    string
		ctx     context.Context
		d       time.Duration
		want    error
		wantMsg string
	}{
		{"no wait", context.Background(), 0, nil, ""},
		{"negative wait", context.Background(), -time.Second, nil, ""},
		{"short wait", context.Background(), time.Millisecond, nil, ""},
		{"ended context", canceled, 0, context.Canceled, ""},
		{"ended context, long wait", canceled, time.Hour, context.Canceled, ""},
		{"cause is kept", withCause, time.Hour, cause, ""},
		{"wait past the deadline fails at once", short, 2 * time.Hour, context.DeadlineExceeded, "would pass the deadline"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Sleep(tt.ctx, tt.d)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("Sleep(%v) = %v; want %v", tt.d, err, tt.want)
			}
			if err != nil && !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("Sleep(%v) = %q; want it to say %q", tt.d, err, tt.wantMsg)
			}
		})
	}
}

// TestSleepEndsWithContext cancels a context during an hour's wait: Sleep
// must return its cause rather than wait on.
func TestSleepEndsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Sleep(ctx, time.Hour) }()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Sleep after cancel = %v; want %v", err, context.Canceled)
	}
}
