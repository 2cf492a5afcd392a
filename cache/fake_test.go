package cache

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/snowgate/snowgate/locapi"
)

// fakeProvider is a hand-written Lookuper that counts calls per ID. By
// default the answer depends on the ID's prefix: "nf-" not found, "nl-" no
// location, "err-" a failure, anything else a found record; answer
// overrides that.
type fakeProvider struct {
	delay  time.Duration
	answer func(ctx context.Context, id string) (locapi.Result, error)

	total atomic.Int64
	mu    sync.Mutex // guards calls
	calls map[string]int
}

var errProvider = errors.New("provider failed")

func (f *fakeProvider) Lookup(ctx context.Context, id string) (locapi.Result, error) {
	f.total.Add(1)
	f.mu.Lock()
	if f.calls == nil {
		f.calls = map[string]int{}
	}
	f.calls[id]++
	f.mu.Unlock()
	if f.delay > 0 {
		t := time.NewTimer(f.delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return locapi.Result{}, ctx.Err()
		}
	}
	if f.answer != nil {
		return f.answer(ctx, id)
	}
	return answerFor(id)
}

func (f *fakeProvider) callsFor(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[id]
}

func answerFor(id string) (locapi.Result, error) {
	if err := locapi.ValidateID(id, 0); err != nil {
		return locapi.Result{}, err
	}
	switch {
	case strings.HasPrefix(id, "nf-"):
		return locapi.Result{Status: locapi.NotFound}, nil
	case strings.HasPrefix(id, "nl-"):
		label := "label of " + id
		return locapi.Result{Status: locapi.NoLocation, Record: &locapi.Record{ID: id, Label: &label}}, nil
	case strings.HasPrefix(id, "err-"):
		return locapi.Result{}, fmt.Errorf("lookup %s: %w", id, errProvider)
	}
	return locapi.Result{Status: locapi.Found, Record: record(id)}, nil
}

func record(id string) *locapi.Record {
	label, city := "label of "+id, "Kraków"
	lat, lon := 50.06, 19.94
	return &locapi.Record{ID: id, Label: &label, CityLabel: &city, Latitude: &lat, Longitude: &lon}
}

// fakeClock is a settable Config.Now.
type fakeClock struct {
	mu  sync.Mutex // guards now
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// newTestResolver builds a resolver that is closed when the test ends, after
// which no goroutine started since this call may still be running.
func newTestResolver(t *testing.T, up Lookuper, cfg Config, reg prometheus.Registerer) *Resolver {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() { waitGoroutines(t, before) })
	r, err := New(up, cfg, reg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// waitGoroutines waits, without sleeping, until at most want goroutines
// run. A goroutine that has finished its work still needs a moment to be
// scheduled out, hence a bounded loop rather than one reading.
func waitGoroutines(t *testing.T, want int) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		got := runtime.NumGoroutine()
		if got <= want {
			return
		}
		select {
		case <-deadline:
			buf := make([]byte, 1<<16)
			t.Fatalf("goroutines: got %d; want at most %d\n%s", got, want, buf[:runtime.Stack(buf, true)])
		default:
			runtime.Gosched()
		}
	}
}

// gate is a Lookuper whose lookups block until released (or their ctx
// ends), announcing each start.
type gate struct {
	fakeProvider
	started chan string
	release chan struct{}
	ctxErr  chan error // the lookup's ctx.Err() when it was released
}

func newGate() *gate {
	g := &gate{started: make(chan string, 64), release: make(chan struct{}), ctxErr: make(chan error, 64)}
	g.answer = func(ctx context.Context, id string) (locapi.Result, error) {
		g.started <- id
		select {
		case <-g.release:
			g.ctxErr <- ctx.Err()
			return answerFor(id)
		case <-ctx.Done():
			g.ctxErr <- ctx.Err()
			return locapi.Result{}, ctx.Err()
		}
	}
	return g
}
