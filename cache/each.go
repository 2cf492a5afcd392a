package cache

import (
	"context"
	"sync"
)

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
	var wg sync.WaitGroup
	for range max(n, 1) {
		wg.Go(func() {
			for ctx.Err() == nil { // an ID already received is still answered
				var id string
				select {
				case v, ok := <-ids:
					if !ok {
						return
					}
					id = v
				case <-ctx.Done():
					return
				}
				fn(id, resolve(ctx, id))
			}
		})
	}
	wg.Wait()
}

// ResolveEach is Each over this resolver, with Config.Concurrency IDs
// resolved at once: the streaming twin of ResolveMany, for a caller with
// more IDs than it wants to hold (the backfill). A hit is answered in the
// worker that took it, with no goroutine of its own; a miss starts or
// joins the one lookup of its ID, which runs on the resolver's context, so
// ctx ending only stops this call's wait and the lookup still fills the
// cache.
func (r *Resolver) ResolveEach(ctx context.Context, ids <-chan string, fn func(id string, o Outcome)) {
	Each(ctx, r.cfg.Concurrency, ids, r.Resolve, fn)
}
