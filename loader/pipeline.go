package loader

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"
)

// errDrainTimeout ends lookups still running DrainTimeout after the caller's
// context ended.
var errDrainTimeout = errors.New("drain timeout: lookups in flight abandoned")

// pipeline connects reader -> workers -> collector -> committer with
// bounded channels. There is no barrier anywhere: a slow lookup holds one
// worker, never a block of IDs.
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

	ids := make(chan string, l.cfg.Concurrency)
	rows := make(chan Row, l.cfg.Concurrency)
	batches := make(chan []Row, 1)

	var readErr, commitErr error
	var wg, workers sync.WaitGroup
	wg.Go(func() {
		defer close(ids)
		readErr = l.read(readCtx, sel, ids, c)
	})
	for range l.cfg.Concurrency {
		workers.Go(func() { l.work(ctx, work, ids, rows, c) })
	}
	wg.Go(func() {
		workers.Wait()
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

// read sends pending IDs to ids until the source is exhausted, Limit is
// reached or ctx ends (not an error: the run was interrupted). The next page
// is fetched while the current one is sent, so the workers never wait for a
// page query.
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

// work resolves IDs one at a time until ids is closed, work ends, or stop
// ends: then only the lookup in hand is finished.
func (l *Loader) work(stop, work context.Context, ids <-chan string, rows chan<- Row, c *counters) {
	for {
		if stop.Err() != nil {
			return
		}
		var id string
		select {
		case v, ok := <-ids:
			if !ok {
				return
			}
			id = v
		case <-work.Done():
			return
		case <-stop.Done():
			return
		}
		out := l.res.Resolve(work, id)
		r, ok := rowFor(work, id, out, l.cfg.Now())
		if !ok {
			c.abandoned.Add(1)
			continue
		}
		c.done.Add(1)
		if out.Hit {
			c.hits.Add(1)
		}
		select {
		case rows <- r:
		case <-work.Done():
			c.abandoned.Add(1)
			return
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
