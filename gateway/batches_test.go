package gateway

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestBatchesWithoutProtocol drives the engine the way any adapter does,
// with no HTTP in sight: begin, join, refuse a reused key, finish, await,
// poll, and the 202 path.
func TestBatchesWithoutProtocol(t *testing.T) {
	ctx := t.Context()
	newEngine := func(t *testing.T, cfg Config) *batches {
		t.Helper()
		cfg, err := cfg.withDefaults()
		if err != nil {
			t.Fatal(err)
		}
		met, err := newMetrics(nil)
		if err != nil {
			t.Fatal(err)
		}
		return newBatches(cfg, met)
	}
	t.Run("begin, join, finish, await, poll", func(t *testing.T) {
		e := newEngine(t, Config{})
		j, started, err := e.Begin(ctx, jobSpec{key: "k", rows: 2, digest: 7, async: true}, e.log)
		if !started || err != nil {
			t.Fatalf("first Begin: started %v err %v; want a new job", started, err)
		}
		again, started, err := e.Begin(ctx, jobSpec{key: "k", rows: 2, digest: 7, async: true}, e.log)
		if again != j || started || err != nil {
			t.Fatalf("same key and rows: started %v err %v; want the running job", started, err)
		}
		if _, _, err := e.Begin(ctx, jobSpec{key: "k", rows: 2, digest: 8, async: true}, e.log); !errors.Is(err, errReused) {
			t.Fatalf("same key, other rows: got %v; want errReused", err)
		}
		if _, st := e.Poll(ctx, "k"); st != awaitPending {
			t.Fatalf("poll while running: got %v; want pending", st)
		}
		e.Finish(j, answer{status: 200, body: []byte("x")})
		a, st := e.Await(ctx, again)
		if st != awaitDone || a.status != 200 || string(a.body) != "x" {
			t.Fatalf("await: got %v %d %q; want done 200 \"x\"", st, a.status, a.body)
		}
		if a, st := e.Poll(ctx, "k"); st != awaitDone || string(a.body) != "x" {
			t.Fatalf("poll after finish: got %v %q; want done \"x\"", st, a.body)
		}
		if _, st := e.Poll(ctx, "other"); st != awaitUnknown {
			t.Fatalf("poll of an unknown key: got %v; want unknown", st)
		}
		if e.jobs.rowsInFlight != 0 {
			t.Fatalf("rows in flight after finish: %d; want 0", e.jobs.rowsInFlight)
		}
	})
	t.Run("async: pending at the batch timeout, then done", func(t *testing.T) {
		e := newEngine(t, Config{Async: true, BatchTimeout: time.Millisecond})
		j, _, err := e.Begin(ctx, jobSpec{key: "k", rows: 1, digest: 1, async: true}, e.log)
		if err != nil {
			t.Fatal(err)
		}
		if _, st := e.Await(ctx, j); st != awaitPending || !e.IsAsync(j) {
			t.Fatalf("await of a running job: got %v (async %v); want pending, async", st, e.IsAsync(j))
		}
		e.Finish(j, answer{status: 200, body: []byte("y")})
		if a, st := e.Poll(ctx, "k"); st != awaitDone || string(a.body) != "y" {
			t.Fatalf("poll after finish: got %v %q; want done \"y\"", st, a.body)
		}
	})
	t.Run("gone, overloaded, draining", func(t *testing.T) {
		e := newEngine(t, Config{MaxInflightRows: 3})
		j, _, _ := e.Begin(ctx, jobSpec{key: "", rows: 3, digest: 0, async: true}, e.log)
		gone, cancel := context.WithCancel(ctx)
		cancel()
		if _, st := e.Await(gone, j); st != awaitGone {
			t.Fatalf("await with an ended context: got %v; want gone", st)
		}
		if _, _, err := e.Begin(ctx, jobSpec{key: "", rows: 1, digest: 0, async: true}, e.log); !errors.Is(err, errOverloaded) {
			t.Fatalf("over the row cap: got %v; want errOverloaded", err)
		}
		e.drain()
		if _, _, err := e.Begin(ctx, jobSpec{key: "b", rows: 1, digest: 1, async: true}, e.log); !errors.Is(err, errDraining) {
			t.Fatalf("draining: got %v; want errDraining", err)
		}
		e.Finish(j, answer{status: 200})
		if err := e.waitIdle(ctx); err != nil {
			t.Fatalf("waitIdle after the last job: %v", err)
		}
	})
}
