package cache

import (
	"context"
	"sync"
)

// startWorkers is the package's one worker pool, behind Each (so
// ResolveEach) and ResolveMany's fetchAll: n goroutines, counted in wg, each
// taking the next item with take and handling it with do in the worker
// itself, until take has none left or ctx ends. An item taken is always
// handled. What to wait for is the caller's: Each waits on wg; fetchAll
// waits on its answers only and passes the resolver's flights as wg, so
// that Close waits for workers still in a lookup.
func startWorkers[T any](ctx context.Context, n int, wg *sync.WaitGroup, take func() (T, bool), do func(T)) {
	worker := func() {
		defer wg.Done()
		for ctx.Err() == nil { // an item already taken is still handled
			v, ok := take()
			if !ok {
				return
			}
			do(v)
		}
	}
	wg.Add(n)
	for range n {
		go worker() // one closure shared by all n, not one per goroutine
	}
}

// Each is snowgate's one fan-out of single IDs: it calls resolve for every
// ID received from ids, at most n at once (n < 1 means 1), and hands each
// answer to fn. There is no barrier: a slow lookup holds one of the n
// slots, never a block of IDs, and the next ID starts as soon as any slot
// is free.
//
// It returns once ids is closed and every ID taken from it is answered, or
// once ctx ends: then no new ID is taken and the ones in hand are answered
// with what resolve returns, which must be soon after ctx ends (Resolve
// does). IDs still in ids are the caller's. fn is called from up to n
// goroutines at once, exactly once per ID taken, and never after Each
// returns.
func Each(ctx context.Context, n int, ids <-chan string, resolve func(ctx context.Context, id string) Outcome,
	fn func(id string, o Outcome)) {
	take := func() (string, bool) {
		select {
		case id, ok := <-ids:
			return id, ok
		case <-ctx.Done():
			return "", false
		}
	}
	var wg sync.WaitGroup
	startWorkers(ctx, max(n, 1), &wg, take, func(id string) { fn(id, resolve(ctx, id)) })
	wg.Wait()
}

// ResolveEach is Each over this resolver, with Config.Concurrency IDs
// resolved at once: the streaming twin of ResolveMany, for a caller with
// more IDs than it wants to hold (the backfill). A hit is answered in the
// worker that took it, with no goroutine of its own; a miss starts or
// joins the one lookup of its ID, which runs on the resolver's context, so
// ctx ending only stops this call's wait and the lookup still fills the
// cache.
//
// Unlike fetchAll's, these workers do not run a lookup they start inline:
// fn is called in the worker and never after ResolveEach returns, so a
// worker must be free to answer its ID with ctx's error as soon as ctx
// ends, which a worker inside a provider call is not.
func (r *Resolver) ResolveEach(ctx context.Context, ids <-chan string, fn func(id string, o Outcome)) {
	Each(ctx, r.cfg.Concurrency, ids, r.Resolve, fn)
}
