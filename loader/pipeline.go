package loader

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/snowgate/snowgate/cache"
)

// errDrainTimeout ends lookups still running DrainTimeout after the caller's
// context ended.
var errDrainTimeout = errors.New("drain timeout: lookups in flight abandoned")

// pipeline connects reader -> resolver -> collector -> committer with
// bounded channels. The fan-out is the resolver's (ResolveEach), with no
// barrier anywhere: a slow lookup holds one slot, never a block of IDs.
//
// Three contexts: ctx (the caller's) stops the reader; work, detached from
// ctx, keeps lookups in flight running after ctx ends until DrainTimeout or
// a failed commit cancels it; commits run detached so that what was
// resolved is still written after an interrupt.
func (l *Loader) pipeline(ctx context.Context, sel Selection, c *counters) error {
	work, abort := context.WithCancelCause(context.WithoutCancel(ctx))
	defer abort(nil)
	stopDrain := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(l.cfg.DrainTimeout, func() { abort(errDrainTimeout) })
		context.AfterFunc(work, func() { t.Stop() })
	})
	defer stopDrain()
	readCtx, stopReading := context.WithCancel(ctx)
	defer stopReading()
	context.AfterFunc(work, stopReading)

	// Unbuffered: an ID leaves the reader only when a slot of the resolver
	// takes it, so once ctx ends no read ID waits in a queue to be started.
	ids := make(chan string)
	rows := make(chan Row, l.cfg.Concurrency)
	batches := make(chan []Row, 1)

	var readErr, commitErr error
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(ids)
		readErr = l.read(readCtx, sel, ids, c)
	})
	wg.Go(func() {
		l.resolveEach(work, ids, func(id string, out cache.Outcome) { l.deliver(work, id, out, rows, c) })
		for range ids { // read but never started: still pending
			c.abandoned.Add(1)
		}
		close(rows)
	})
	wg.Go(func() {
		defer close(batches)
		l.collect(rows, batches)
	})
	wg.Go(func() {
		commitErr = l.commitAll(context.WithoutCancel(ctx), batches, c)
		if commitErr != nil {
			abort(commitErr)
		}
	})
	wg.Wait()
	if commitErr != nil {
		return commitErr
	}
	return readErr
}

// resolveEach hands ids to the resolver's own fan-out, or, for a Resolver
// of single IDs, to cache.Each with Config.Concurrency at once.
func (l *Loader) resolveEach(work context.Context, ids <-chan string, fn func(string, cache.Outcome)) {
	if s, ok := l.res.(Streamer); ok {
		s.ResolveEach(work, ids, fn)
		return
	}
	cache.Each(work, l.cfg.Concurrency, ids, l.res.Resolve, fn)
}

// deliver turns one answer into a row for the collector; an answer cut
// short by work ending leaves its ID pending.
func (l *Loader) deliver(work context.Context, id string, out cache.Outcome, rows chan<- Row, c *counters) {
	r, ok := rowFor(work, id, out, l.cfg.Now())
	if !ok {
		c.abandoned.Add(1)
		return
	}
	c.done.Add(1)
	if out.Hit {
		c.hits.Add(1)
	}
	select {
	case rows <- r:
	case <-work.Done():
		c.abandoned.Add(1)
	}
}

// read sends pending IDs to ids until the source is exhausted, Limit is
// reached or ctx ends (not an error: the run was interrupted). The next page
// is fetched while the current one is sent, so the resolver never waits for
// a page query.
func (l *Loader) read(ctx context.Context, sel Selection, ids chan<- string, c *counters) error {
	ctx, stop := context.WithCancel(ctx)
	pages := make(chan []string, 1)
	var pageErr error
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(pages)
		pageErr = l.page(ctx, sel, pages)
	})
	defer func() { stop(); wg.Wait() }() // a pager blocked on pages ends with ctx
	for page := range pages {
		for _, id := range page {
			if l.cfg.Limit > 0 && c.read.Load() >= l.cfg.Limit {
				return nil
			}
			if ctx.Err() != nil { // a select with both ready may pick either
				return nil
			}
			select {
			case ids <- id:
			case <-ctx.Done():
				return nil
			}
			c.read.Add(1)
		}
	}
	wg.Wait() // pages is closed: pageErr is set
	return pageErr
}

// page sends pages of pending IDs, each strictly above the previous one,
// until an empty page.
func (l *Loader) page(ctx context.Context, sel Selection, pages chan<- []string) error {
	after, started := "", false
	for {
		page, err := l.wh.Pending(ctx, after, l.cfg.PageSize, sel)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
		if started {
			// Pending from "" includes the empty ID, so after the first
			// page anything at or below the bound was already sent.
			page = slices.DeleteFunc(page, func(id string) bool { return id <= after })
		}
		if len(page) == 0 {
			return nil
		}
		after, started = page[len(page)-1], true
		select {
		case pages <- page:
		case <-ctx.Done():
			return nil
		}
	}
}

// collect groups rows into batches of CommitRows, or fewer when
// CommitInterval passes. It keeps accepting rows while the committer is busy
// with the previous batch, so workers do not wait on the database.
func (l *Loader) collect(rows <-chan Row, batches chan<- []Row) {
	t := time.NewTicker(l.cfg.CommitInterval)
	defer t.Stop()
	buf := make([]Row, 0, l.cfg.CommitRows)
	for {
		select {
		case r, ok := <-rows:
			if !ok {
				if len(buf) > 0 {
					batches <- buf
				}
				return
			}
			buf = append(buf, r)
			if len(buf) < l.cfg.CommitRows {
				continue
			}
		case <-t.C:
			if len(buf) == 0 {
				continue
			}
		}
		batches <- buf
		buf = make([]Row, 0, l.cfg.CommitRows)
	}
}

// commitAll commits batches in order. After a failed commit it keeps
// draining, so nothing upstream blocks, and counts the rest as abandoned.
func (l *Loader) commitAll(ctx context.Context, batches <-chan []Row, c *counters) error {
	var failed error
	for b := range batches {
		if failed != nil {
			c.abandoned.Add(int64(len(b)))
			continue
		}
		if err := l.wh.Commit(ctx, b); err != nil {
			failed = err
			c.abandoned.Add(int64(len(b)))
			continue
		}
		c.committed.Add(int64(len(b)))
		for _, r := range b {
			c.byOutcome[outcomeIndex(r.Outcome)].Add(1)
		}
	}
	return failed
}
