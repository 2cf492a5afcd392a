package cache

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/snowgate/snowgate/locapi"
)

// TestResolveEachAnswersEveryIDOnce streams IDs with repeats through
// ResolveEach: every ID sent gets one answer, every distinct ID one lookup,
// and no more lookups run at once than Concurrency.
func TestResolveEachAnswersEveryIDOnce(t *testing.T) {
	const conc = 4
	var running, most atomic.Int64
	up := &fakeProvider{}
	up.answer = func(ctx context.Context, id string) (locapi.Result, error) {
		n := running.Add(1)
		defer running.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		return answerFor(id)
	}
	r := newTestResolver(t, up, Config{Concurrency: conc}, nil)
	var sent []string
	for i := range 300 {
		sent = append(sent, []string{fmt.Sprintf("a%d", i%100), fmt.Sprintf("nf-%d", i%7), "err-x"}[i%3])
	}
	ids := make(chan string)
	go func() {
		defer close(ids)
		for _, id := range sent {
			ids <- id
		}
	}()
	var mu sync.Mutex
	answers := map[string]int{}
	r.ResolveEach(t.Context(), ids, func(id string, o Outcome) {
		checkOutcome(t, id, o)
		mu.Lock()
		answers[id]++
		mu.Unlock()
	})
	want := map[string]int{}
	for _, id := range sent {
		want[id]++
	}
	for id, n := range want {
		if answers[id] != n {
			t.Errorf("answers for %q = %d; want %d", id, answers[id], n)
		}
		if c := up.callsFor(id); c != 1 && id != "err-x" { // a failure is not cached
			t.Errorf("lookups of %q = %d; want 1", id, c)
		}
	}
	if len(answers) != len(want) {
		t.Errorf("distinct IDs answered = %d; want %d", len(answers), len(want))
	}
	if m := most.Load(); m > conc {
		t.Errorf("lookups at once = %d; want at most %d", m, conc)
	}
}

// TestResolveEachHasNoBarrier holds one lookup and checks the other slot
// keeps answering IDs meanwhile.
func TestResolveEachHasNoBarrier(t *testing.T) {
	release := make(chan struct{})
	up := &fakeProvider{}
	up.answer = func(ctx context.Context, id string) (locapi.Result, error) {
		if id == "slow" {
			<-release
		}
		return answerFor(id)
	}
	r := newTestResolver(t, up, Config{Concurrency: 2}, nil)
	ids := make(chan string)
	fast := make(chan string)
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.ResolveEach(t.Context(), ids, func(id string, o Outcome) {
			if id != "slow" {
				fast <- id
			}
		})
	}()
	ids <- "slow"
	for i := range 20 {
		id := fmt.Sprintf("f%d", i)
		ids <- id
		if got := <-fast; got != id {
			t.Fatalf("answered %q; want %q", got, id)
		}
	}
	close(release)
	close(ids)
	<-done
}

// TestResolveEachStopsWithCtx cancels ctx while every slot waits on a
// lookup: the IDs in hand are answered with ctx's error before ResolveEach
// returns, none is taken after, and the lookups still fill the cache.
func TestResolveEachStopsWithCtx(t *testing.T) {
	release := make(chan struct{})
	started := make(chan string, 3)
	up := &fakeProvider{}
	up.answer = func(ctx context.Context, id string) (locapi.Result, error) {
		started <- id
		<-release
		return answerFor(id)
	}
	r := newTestResolver(t, up, Config{Concurrency: 3}, nil)
	ids := make(chan string, 10)
	for i := range 10 {
		ids <- fmt.Sprintf("b%d", i)
	}
	ctx, cancel := context.WithCancel(t.Context())
	var answered atomic.Int64
	var returned atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.ResolveEach(ctx, ids, func(id string, o Outcome) {
			if returned.Load() {
				t.Errorf("fn(%q) called after ResolveEach returned", id)
			}
			if !errors.Is(o.Err, context.Canceled) {
				t.Errorf("%q: err = %v; want %v", id, o.Err, context.Canceled)
			}
			answered.Add(1)
		})
		returned.Store(true)
	}()
	var inHand []string
	for range 3 {
		inHand = append(inHand, <-started)
	}
	cancel()
	<-done
	if n := answered.Load(); n != 3 {
		t.Errorf("answered = %d; want 3 (the IDs in hand)", n)
	}
	if n := len(ids); n != 7 {
		t.Errorf("IDs left in the channel = %d; want 7", n)
	}
	close(release)
	for _, id := range inHand {
		r.Resolve(t.Context(), id) // joins the detached lookup if it has not stored its answer yet
		if o := r.Resolve(t.Context(), id); !o.Hit || up.callsFor(id) != 1 {
			t.Errorf("%q after the cancelled call: hit %v, lookups %d; want a hit from the one lookup", id, o.Hit, up.callsFor(id))
		}
	}
}

// TestStartWorkersHandlesEveryTakenItem runs the one worker pool over a
// counter: every item taken is handled exactly once, and once ctx ends no
// worker takes another.
func TestStartWorkersHandlesEveryTakenItem(t *testing.T) {
	const n, items, stopAt = 4, 1000, 500
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var next, taken, late atomic.Int64
	handled := make([]atomic.Int32, items)
	take := func() (int, bool) {
		k := int(next.Add(1) - 1)
		if k >= items {
			return 0, false
		}
		taken.Add(1)
		if ctx.Err() != nil {
			late.Add(1)
		}
		return k, true
	}
	var wg sync.WaitGroup
	startWorkers(ctx, n, &wg, take, func(k int) {
		handled[k].Add(1)
		if k == stopAt {
			cancel()
		}
	})
	wg.Wait()
	got := 0
	for k := range handled {
		switch c := handled[k].Load(); {
		case c > 1:
			t.Errorf("item %d handled %d times; want at most once", k, c)
		case c == 1:
			got++
		}
	}
	if int64(got) != taken.Load() {
		t.Errorf("handled %d items; want the %d taken", got, taken.Load())
	}
	// Every item up to stopAt was taken before ctx ended. How many the
	// other workers took meanwhile is the scheduler's choice; once ctx has
	// ended, each worker may take at most the one it was already reaching for.
	if got < stopAt+1 {
		t.Errorf("handled %d items; want at least %d", got, stopAt+1)
	}
	if l := late.Load(); l > n {
		t.Errorf("%d items taken after ctx ended; want at most %d (one per worker)", l, n)
	}
}
