package gateway

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"
)

// batches is the batch engine under every wire protocol: it knows jobs,
// not envelopes. It owns the job table (idempotency by key and row digest,
// the in-flight row cap, the drain, kept answers for ResultTTL), the
// asynchronous wait (Config.Async) and, with Config.Shared, the claims that
// let several replicas share one batch.
//
// An adapter (snowflake.go is one) supplies, per request: the batch's key
// (its protocol's batch id scoped to its route, "" when it has none, which
// makes the batch synchronous and never replayed), the number of rows, a
// digest of the rows (0 when the key is ""), the work (run on Context(j),
// ending with Finish), and the encoding: of the answer, of the engine's
// errors from Begin (errDraining, errReused, errOverloaded, errPending,
// errElsewhere, errGone) and of Await's and Poll's statuses.
//
//	j, started, err := e.Begin(ctx, jobSpec{key, rows, digest, async}, log)
//	if started { go func() { ctx, cancel := e.Context(j); ...; e.Finish(j, a) }() }
//	a, st := e.Await(ctx, j)
//	... write a ...
//	e.Release(j)
type batches struct {
	cfg  Config // the settings above, with their defaults
	jobs *jobTable
	met  *metrics
	log  *slog.Logger

	// ctx is the parent of every batch's work: detached from requests (a
	// retry may join the work after the first client left) and cancelled
	// only when a drain runs out of time.
	ctx    context.Context
	cancel context.CancelFunc
	// storeFailing is set while Config.Shared is unreachable, so the
	// outage is logged once.
	storeFailing atomic.Bool
}

// answer is how a batch ends: a status and its body, JSON for 200 (gzipped
// if gzipped is set) and one line of text otherwise.
type answer struct {
	status  int
	body    []byte
	gzipped bool
	// free takes body back once the job is dropped and nothing holds it
	// (jobTable.giveBack), for reuse; nil leaves it to the garbage collector.
	free func([]byte)
}

// awaitStatus is what Await and Poll found.
type awaitStatus uint8

const (
	awaitDone    awaitStatus = iota // the answer is there
	awaitPending                    // still running: the caller polls later
	awaitUnknown                    // Poll: no such batch, or its answer expired
	awaitGone                       // the caller's context ended first
)

var (
	// errPending: with Async, another replica works on the batch and did
	// not finish it within BatchTimeout; a poll will find its answer.
	errPending = errors.New("batch still running on another replica; poll")
	// errElsewhere: the same without Async; the caller retries.
	errElsewhere = errors.New("batch still running on another replica; retry")
	// errGone: the caller's context ended while the engine asked the
	// shared store.
	errGone = errors.New("client went away")
)

func newBatches(cfg Config, met *metrics) *batches {
	e := &batches{cfg: cfg, met: met, log: cfg.Logger}
	e.jobs = newJobTable(cfg.ResultTTL, cfg.MaxInflightRows, cfg.MaxResults, cfg.MaxResultBytes,
		func(rows, async, kept int) {
			met.inflight.Set(float64(rows))
			met.asyncJobs.Set(float64(async))
			met.kept.Set(float64(kept))
		})
	e.ctx, e.cancel = context.WithCancel(context.Background())
	return e
}

// Known reports whether key names a job that a new request joins rather
// than starts: running, or finished with 200 and kept.
func (e *batches) Known(key string) bool {
	j := e.jobs.get(key, time.Now())
	return j != nil && !j.failed()
}

// jobSpec is what Begin needs to know of a batch.
type jobSpec struct {
	key    string // the protocol's batch id scoped to its route; "" for none
	rows   int    // admitted against the in-flight cap
	digest uint64 // of the rows; 0 when key is ""
	// async lets the batch answer pending with Config.Async (Snowflake's
	// 202 and polls); a protocol without polls leaves it false.
	async bool
}

// Begin returns the job for a batch: the one known under its key (started
// is false; errReused if its rows differ), an answer another replica kept
// (a finished job, started false), or a new job admitted against the
// in-flight cap (started is true: the caller runs it and calls Finish).
// The job is held: its answer stays as it is until the caller calls
// Release, after sending it. A caller that hands the body on instead never
// releases it, and leaves it to the garbage collector.
func (e *batches) Begin(ctx context.Context, spec jobSpec, log *slog.Logger) (j *job, started bool, err error) {
	key, digest := spec.key, spec.digest
	if old := e.jobs.hold(key, time.Now()); old != nil {
		switch {
		case old.failed(): // a retry starts it again
			e.jobs.release(old)
		case !old.sameRows(digest):
			e.jobs.release(old)
			return nil, false, errReused
		default:
			return old, false, nil
		}
	}
	st := claimNone
	if e.cfg.Shared != nil && key != "" {
		var kept *answer
		if st, kept, err = e.settle(ctx, key, spec.async, log); err != nil {
			return nil, false, err
		}
		if kept != nil {
			j = &job{key: key, answer: *kept, done: make(chan struct{})}
			close(j.done)
			return j, false, nil
		}
	}
	j, started, err = e.jobs.start(spec, time.Now(), st)
	if err != nil && st == claimHeld {
		e.dropClaim(key)
	}
	if started && st != claimNone {
		// Renewed even when the store was down at the start: the renewal
		// makes the claim once the store is back, so polls there find it.
		j.stopRenew = e.renewClaim(key)
	}
	return j, started, err
}

// Context is the context a started job's work runs on: BatchTimeout, or
// AsyncTimeout for a batch that may answer 202.
func (e *batches) Context(j *job) (context.Context, context.CancelFunc) {
	timeout := e.cfg.BatchTimeout
	if e.asyncJob(j) {
		timeout = e.cfg.AsyncTimeout
	}
	return context.WithTimeout(e.ctx, timeout)
}

// Finish publishes a started job's answer to its waiters, keeps it for
// ResultTTL and hands it to the shared store when one wants it.
func (e *batches) Finish(j *job, a answer) {
	if j.stopRenew != nil {
		j.stopRenew()
	}
	j.answer = a
	e.jobs.finish(j, time.Now())
	if j.shared != claimNone {
		e.release(j)
	}
}

// Await waits for j's answer. With Async a batch not done within
// BatchTimeout is awaitPending and keeps going; when ctx ends first it is
// awaitGone, and the job goes on and keeps its answer for the retry.
func (e *batches) Await(ctx context.Context, j *job) (answer, awaitStatus) {
	var timeout <-chan time.Time
	if e.asyncJob(j) {
		t := time.NewTimer(e.cfg.BatchTimeout)
		defer t.Stop()
		timeout = t.C
	}
	if e.cfg.Shared != nil {
		e.jobs.wait(j, 1)
		defer e.jobs.wait(j, -1)
	}
	select {
	case <-j.done:
		return j.answer, awaitDone
	case <-timeout:
		if !e.jobs.markAsync(j) { // it finished just now
			return j.answer, awaitDone
		}
		return answer{}, awaitPending
	case <-ctx.Done():
		return answer{}, awaitGone
	}
}

// Poll answers a poll for key without waiting: done, pending, or unknown
// (here, and with a shared store to every replica). The job it answers
// from, if any, is held until the caller calls Release(j).
func (e *batches) Poll(ctx context.Context, key string) (answer, awaitStatus, *job) {
	j := e.jobs.hold(key, time.Now())
	switch {
	case j == nil && e.cfg.Shared != nil:
		a, st := e.pollShared(ctx, key)
		return a, st, nil
	case j == nil:
		return answer{}, awaitUnknown, nil
	}
	select {
	case <-j.done:
		return j.answer, awaitDone, j
	default:
		return answer{}, awaitPending, j
	}
}

// Release gives back the hold Begin or Poll took on j (nil: none), once
// its answer is sent or given up.
func (e *batches) Release(j *job) { e.jobs.release(j) }

// IsAsync reports whether an Await has answered pending for j so far.
func (e *batches) IsAsync(j *job) bool { return e.jobs.isAsync(j) }

// asyncJob reports whether j may answer pending: Async is on, the batch
// has a key to poll by and its protocol polls.
func (e *batches) asyncJob(j *job) bool {
	return e.cfg.Async && j.key != "" && j.mayAsync
}

// drain refuses new jobs from now on (Begin answers errDraining).
func (e *batches) drain() { e.jobs.drain() }

func (e *batches) draining() bool { return e.jobs.isDraining() }

// waitIdle waits, after drain, until no job runs or ctx ends.
func (e *batches) waitIdle(ctx context.Context) error { return e.jobs.waitIdle(ctx) }

// maintain forgets expired answers until ctx ends, and with a shared store
// keeps again the answers it may have lost.
func (e *batches) maintain(ctx context.Context) {
	every := min(max(e.cfg.ResultTTL/10, time.Second), time.Minute)
	t := time.NewTicker(every)
	defer t.Stop()
	var republish <-chan time.Time
	if e.cfg.Shared != nil {
		rt := time.NewTicker(republishEvery)
		defer rt.Stop()
		republish = rt.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			e.jobs.sweep(now)
		case <-republish:
			e.republish(ctx)
		}
	}
}
