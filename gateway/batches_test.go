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
		if _, st, _ := e.Poll(ctx, "k"); st != awaitPending {
			t.Fatalf("poll while running: got %v; want pending", st)
		}
		e.Finish(j, answer{status: 200, body: []byte("x")})
		a, st := e.Await(ctx, again)
		if st != awaitDone || a.status != 200 || string(a.body) != "x" {
			t.Fatalf("await: got %v %d %q; want done 200 \"x\"", st, a.status, a.body)
		}
		if a, st, _ := e.Poll(ctx, "k"); st != awaitDone || string(a.body) != "x" {
			t.Fatalf("poll after finish: got %v %q; want done \"x\"", st, a.body)
		}
		if _, st, _ := e.Poll(ctx, "other"); st != awaitUnknown {
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
		if a, st, _ := e.Poll(ctx, "k"); st != awaitDone || string(a.body) != "y" {
			t.Fatalf("poll after finish: got %v %q; want done \"y\"", st, a.body)
		}
	})
	t.Run("a pooled body goes back only when dropped and not held", func(t *testing.T) {
		e := newEngine(t, Config{MaxResults: 1})
		var freed [][]byte
		free := func(b []byte) { freed = append(freed, b) }
		begin := func(key string) *job {
			t.Helper()
			j, started, err := e.Begin(ctx, jobSpec{key: key, rows: 1, digest: 1}, e.log)
			if !started || err != nil {
				t.Fatalf("Begin %q: started %v err %v", key, started, err)
			}
			return j
		}
		body := func(s string) []byte { return append(make([]byte, 0, 64), s...) }
		j := begin("k1")
		e.Finish(j, answer{status: 200, body: body("one"), free: free})
		_, _, polled := e.Poll(ctx, "k1") // a poll holds it too
		e.Release(j)                      // the POST is done with it
		j2 := begin("k2")
		e.Finish(j2, answer{status: 200, body: body("two"), free: free}) // drops k1 (MaxResults 1)
		if _, st, _ := e.Poll(ctx, "k1"); st != awaitUnknown {
			t.Fatalf("k1 after k2 pushed it out: %v; want unknown", st)
		}
		if string(polled.body) != "one" || len(freed) != 0 {
			t.Fatalf("held by a poll: body %q, %d bodies freed; want \"one\" and none", polled.body, len(freed))
		}
		e.Release(polled)
		if polled.body != nil {
			t.Fatalf("dropped and released: body %q; want it cleared", polled.body)
		}
		if len(freed) != 1 || string(freed[0]) != "one" {
			t.Fatalf("freed %q; want k1's body", freed)
		}
		e.Release(j2)
		if a, st, held := e.Poll(ctx, "k2"); st != awaitDone || string(a.body) != "two" {
			t.Fatalf("k2, kept and released: %v %q; want done \"two\"", st, a.body)
		} else {
			e.Release(held)
		}
		keyless, _, _ := e.Begin(ctx, jobSpec{rows: 1}, e.log)
		e.Finish(keyless, answer{status: 200, body: body("three"), free: free})
		if a, _ := e.Await(ctx, keyless); string(a.body) != "three" {
			t.Fatalf("a batch without a key: %q; want \"three\"", a.body)
		}
		e.Release(keyless)
		if keyless.body != nil || len(freed) != 2 || string(freed[1]) != "three" {
			t.Fatalf("a batch without a key, released: body %q, freed %q; want it freed", keyless.body, freed)
		}
	})
	t.Run("a body the shared store gets is never reused", func(t *testing.T) {
		jt := newJobTable(time.Minute, 10, 1, 1<<20, nil)
		freed := 0
		now := time.Now()
		for _, key := range []string{"a", "b"} {
			j, _, err := jt.start(jobSpec{key: key, rows: 1, digest: 1}, now, claimHeld)
			if err != nil {
				t.Fatal(err)
			}
			j.answer = answer{status: 200, body: []byte(key), free: func([]byte) { freed++ }}
			jt.finish(j, now) // b pushes a out (one kept at most)
			jt.release(j)
		}
		if freed != 0 {
			t.Fatalf("%d bodies freed; want none: the store may still read them", freed)
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
