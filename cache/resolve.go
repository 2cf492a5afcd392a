package cache

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"sync/atomic"

	"github.com/snowgate/snowgate/locapi"
)

// Resolve answers one ID: from the cache, or by starting or joining the one
// provider lookup for it. The lookup runs on the resolver's own context, so
// ctx ending only stops this caller's wait. Errors from the Lookuper are
// returned as it gave them (never cached); a lookup cut short by Close fails
// with ErrClosed.
func (r *Resolver) Resolve(ctx context.Context, id string) Outcome {
	h := maphash.String(r.seed, id)
	if e, ok := r.shardFor(h).get(id, h, r.clock()); ok {
		return Outcome{Entry: e, Hit: true}
	}
	o, src, requests := r.await(ctx, id, h, r.cfg.L2 != nil, false)
	var st Stats
	st.tally(src, requests, o.Err != nil)
	r.m.add(st)
	return o
}

// ResolveMany answers a batch: one Outcome per input ID, in input order.
// Every distinct ID is looked up in the cache once; with an L2 the misses
// are then looked up there in one call; what is left is fetched (or joined)
// with at most Config.Concurrency lookups waited on at once.
// When ctx ends, the IDs not answered yet get ctx's error.
func (r *Resolver) ResolveMany(ctx context.Context, ids []string) ([]Outcome, Stats) {
	out := make([]Outcome, len(ids))
	st := Stats{IDs: len(ids)}
	if len(ids) == 0 {
		return out, st
	}
	misses, dups := r.fromCache(ids, out, &st)
	if len(misses) > 0 && r.cfg.L2 != nil {
		misses = r.fromL2(ctx, ids, misses, out, &st)
	}
	if len(misses) > 0 {
		r.fetchAll(ctx, ids, misses, out, &st)
	}
	for _, d := range dups {
		out[d.at] = out[d.of]
	}
	r.m.add(st)
	return out, st
}

// miss is the position of the first occurrence of an ID the cache did not
// answer, with the ID's hash.
type miss struct {
	at int
	h  uint64
}

// dup is a later occurrence (at) of a missed ID first seen at of.
type dup struct{ at, of int }

// fromCache is ResolveMany's hot path: it answers every cached ID in place
// and returns what is left to fetch. It allocates nothing while all IDs hit.
// It looks the IDs up shard by shard (shard.getMany), not in batch order:
// over a working set bigger than the CPU's caches that takes about 30% less
// time (BenchmarkResolveManyHotBig), for about 10% more on a batch whose
// IDs all stay in the CPU's caches anyway (BenchmarkResolveManyHot).
func (r *Resolver) fromCache(ids []string, out []Outcome, st *Stats) (misses []miss, dups []dup) {
	now := r.clock()
	t := r.table(len(ids))
	defer r.release(t)
	t.group(len(r.shards))
	for i, id := range ids {
		h := maphash.String(r.seed, id)
		if first, seen := t.insert(ids, h, i); seen {
			t.dups = append(t.dups, dup{at: i, of: first})
			continue
		}
		t.add(i, h, h>>r.shardShift)
	}
	st.Distinct += len(t.distinct)
	t.place(uint64(r.shardShift))
	for k := range r.shards {
		r.shards[k].getMany(ids, t.shard(k), now, out)
	}
	for _, d := range t.distinct {
		if out[d.at].Entry != nil {
			st.Hits++
			continue
		}
		misses = append(misses, miss{at: d.at, h: d.h})
	}
	for _, d := range t.dups {
		if out[d.of].Entry != nil {
			out[d.at] = out[d.of]
			continue
		}
		dups = append(dups, d)
	}
	return misses, dups
}

// fetchAll resolves the misses through startWorkers, with at most
// Concurrency workers, each running one lookup at a time: a lookup no one
// else started runs in the worker itself, one already in flight is joined.
// It returns when every miss is answered or ctx ends; then the unanswered
// ones get ctx's error, and the workers finish the lookups they run (they
// fill the cache for the next caller) without taking new ones. Running the
// lookup inline is safe here because the answers are published per miss
// (settle), so no one waits for a worker.
func (r *Resolver) fetchAll(ctx context.Context, ids []string, misses []miss, out []Outcome, st *Stats) {
	answers := make([]missAnswer, len(misses))
	left := atomic.Int64{}
	left.Store(int64(len(misses)))
	all := make(chan struct{})
	var next atomic.Int64
	take := func() (int, bool) {
		k := int(next.Add(1) - 1)
		return k, k < len(misses) && answers[k].state.CompareAndSwap(missWaiting, missTaken)
	}
	lookup := func(k int) {
		m := misses[k]
		a := &answers[k]
		a.o, a.src, a.requests = r.await(ctx, ids[m.at], m.h, false, true) // L2 already asked
		a.state.Store(missAnswered)
		if left.Add(-1) == 0 {
			close(all)
		}
	}
	r.mu.RLock()
	if !r.closed { // Close waits for the workers too
		startWorkers(ctx, min(r.cfg.Concurrency, len(misses)), &r.flights, take, lookup)
	}
	r.mu.RUnlock()
	select {
	case <-all:
	case <-ctx.Done():
	case <-r.life.Done():
	}
	r.settle(ctx, misses, answers, out, st)
}

// missAnswer is what fetchAll's worker found for one miss. Its state moves
// from missWaiting to missTaken (a worker has it), then to missAnswered
// once the rest is written; or to missDropped when fetchAll stops waiting
// first. Once ResolveMany has returned, a worker still writes answers but
// nothing reads them.
type missAnswer struct {
	state    atomic.Uint32
	o        Outcome
	src      source
	requests int
}

const (
	missWaiting uint32 = iota
	missTaken
	missAnswered
	missDropped
)

// settle puts each miss's answer, or ctx's error (ErrClosed if ctx is
// alive), into out and st. A miss no worker took is dropped, so none will,
// and counted abandoned here; every other one is counted by the lookup it
// started or joined.
func (r *Resolver) settle(ctx context.Context, misses []miss, answers []missAnswer, out []Outcome, st *Stats) {
	var untaken uint64
	for k, m := range misses {
		a := &answers[k]
		if a.state.CompareAndSwap(missWaiting, missDropped) {
			untaken++
		}
		o, src, requests := Outcome{Err: ctx.Err()}, abandoned, 0
		if a.state.Load() == missAnswered {
			o, src, requests = a.o, a.src, a.requests
		} else if o.Err == nil {
			o.Err = ErrClosed
		}
		out[m.at] = o
		st.tally(src, requests, o.Err != nil)
	}
	r.m.abandoned.Add(untaken)
}

// source is how a missed ID ended up answered, for Stats.
type source uint8

const (
	abandoned source = iota // no answer: the caller gave up or the resolver closed
	cached                  // this caller's flight found it cached after all
	sharedHit               // this caller's flight found it in the L2
	fetched                 // this caller's flight asked the provider
	rejected                // this caller's flight: the Lookuper found the ID invalid
	joined                  // joined a lookup another caller started
)

// tally counts one distinct ID's source, and the provider requests of the
// lookup it ran itself (0 for any other source).
func (st *Stats) tally(src source, requests int, failed bool) {
	switch src {
	case abandoned:
		st.Abandoned++
	case cached:
		st.Hits++
	case sharedHit:
		st.Hits++
		st.L2Hits++
	case fetched:
		st.Fetched++
	case rejected:
		st.Invalid++
	case joined:
		st.Coalesced++
	}
	st.Requests += requests
	if failed {
		st.Failed++
	}
}

// flight is what one shared lookup hands every caller waiting on it.
type flight struct {
	e        *Entry
	fetched  bool // the Lookuper was asked (false: found in the cache)
	invalid  bool // ... and found the ID invalid
	shared   bool // found in the L2
	requests int  // provider requests the Lookuper reported
}

// call is one lookup in flight, shared by every caller of its ID.
//
// Why not golang.org/x/sync/singleflight, a dependency already and what this
// code first used: BenchmarkCoalesce (coalesce_bench_test.go) resolves one
// cold batch of 4,096 IDs, with a concurrency of 64, through ResolveMany and
// through rebuilds on x/sync sharing every other step. Medians of 12 runs
// each, interleaved, -cpu 1 and 2, on a heavily loaded machine (times ±20-80%):
//   - DoChan with an errgroup limited by SetLimit: 53.5k allocations a batch
//     against 20.7k (+158%), 3.95 MiB against 3.06 MiB, 7.5-9.0 µs an ID
//     against 2.8-3.4 µs with no provider latency, +43-48% with 100 µs, and
//     +50-117% with half the batch joining lookups already in flight.
//   - Do in a pool like fetchAll's, its leader inline as here: time within
//     the noise, 29.1k allocations (+40%), 2.92 MiB (-5%).
//
// Neither rebuild beats this code, and both lose what it has for free:
// singleflight tells a caller it joined only with the answer, so coalesced
// could not be counted where it is decided (see metrics), and Do leaves the
// test hook waiting no place between joining and waiting.
type call struct {
	done chan struct{} // closed once fl and err are set
	fl   flight
	err  error
}

// begin returns the lookup of id in flight, or registers a new one that
// the caller (the leader) must run.
func (r *Resolver) begin(id string) (c *call, leader bool) {
	r.callsMu.Lock()
	defer r.callsMu.Unlock()
	if c, ok := r.calls[id]; ok {
		r.m.coalesced.Add(1)
		return c, false
	}
	c = &call{done: make(chan struct{})}
	r.calls[id] = c
	return c, true
}

// run is the leader's part: load id, then hand the answer to every caller.
// An answer is stored in the cache before the call leaves the registry, so
// a later caller finds one or the other.
func (r *Resolver) run(c *call, id string, h uint64, askL2 bool) {
	c.fl, c.err = r.load(id, h, askL2)
	r.callsMu.Lock()
	delete(r.calls, id)
	r.callsMu.Unlock()
	close(c.done)
}

// outcome is what a caller of a finished call gets, with the provider
// requests it is answerable for: the leader's, none for a joiner.
func (c *call) outcome(leader bool) (Outcome, source, int) {
	src, requests := joined, 0
	if leader {
		requests = c.fl.requests
		switch {
		case c.fl.shared:
			src = sharedHit
		case c.fl.invalid:
			src = rejected
		case c.fl.fetched:
			src = fetched
		case c.err != nil:
			src = abandoned // the resolver closed before the lookup ran
		default:
			src = cached
		}
	}
	if c.err != nil {
		return Outcome{Err: c.err}, src, requests
	}
	return Outcome{Entry: c.fl.e, Hit: !c.fl.fetched}, src, requests
}

// await starts or joins the shared lookup of id and waits for it or ctx.
// A lookup it starts runs on the resolver's context: in a goroutine of its
// own, or with inline in this one, which saves a goroutine and a hand-off
// per ID for ResolveMany's workers (they have nothing else to do) but is
// waited for even if ctx ends meanwhile. askL2 makes a lookup this caller
// starts look in the L2 first.
func (r *Resolver) await(ctx context.Context, id string, h uint64, askL2, inline bool) (Outcome, source, int) {
	if err := ctx.Err(); err != nil {
		r.m.abandoned.Add(1)
		return Outcome{Err: err}, abandoned, 0
	}
	c, leader := r.begin(id)
	if r.waiting != nil {
		r.waiting(id)
	}
	switch {
	case leader && inline:
		r.run(c, id, h, askL2)
		return c.outcome(true)
	case leader:
		go r.run(c, id, h, askL2)
	}
	select {
	case <-c.done:
		return c.outcome(leader)
	case <-ctx.Done():
		return Outcome{Err: ctx.Err()}, abandoned, 0
	}
}

// load is the body of one shared lookup, run by its leader on the
// resolver's context. It counts what it did in the metrics: the shard and
// the L2 count their own hits.
func (r *Resolver) load(id string, h uint64, askL2 bool) (fl flight, err error) {
	r.mu.RLock()
	if r.closed {
		r.mu.RUnlock()
		r.m.abandoned.Add(1)
		return fl, ErrClosed
	}
	r.flights.Add(1)
	r.mu.RUnlock()
	defer r.flights.Done()
	defer func() {
		// A panic in a Lookuper would kill the leader's goroutine and leave
		// every joined caller waiting: make it this ID's error.
		if p := recover(); p != nil {
			err = fmt.Errorf("cache: lookup panicked: %v", p)
		}
	}()
	// The caller's miss and this flight are not atomic: a flight that just
	// ended may have stored id in between.
	s := r.shardFor(h)
	if e, ok := s.get(id, h, r.clock()); ok {
		return flight{e: e}, nil
	}
	if askL2 {
		if e, ok := r.lookupL2(id, h); ok {
			return flight{e: e, shared: true}, nil
		}
	}
	fl.fetched = true
	r.m.miss.Add(1)
	res, err := r.up.Lookup(r.life, id)
	fl.requests = res.Requests
	if err != nil {
		fl.invalid = errors.Is(err, locapi.ErrInvalidID)
		if r.life.Err() != nil {
			return fl, fmt.Errorf("%w: %w", ErrClosed, err)
		}
		return fl, err
	}
	e, err := makeEntry(res, r.cfg.Encode)
	if err != nil {
		return fl, err
	}
	ttl := r.ttlFor(e.Status)
	r.store(id, h, e, ttl, r.clock())
	if r.cfg.L2 != nil {
		r.storeL2(id, e, ttl)
	}
	fl.e = e
	return fl, nil
}

// marshalRecord is Config.Encode's default.
func marshalRecord(r *locapi.Record) ([]byte, error) { return json.Marshal(r) }

// newEntry is makeEntry with the default encoding.
func newEntry(res locapi.Result) (*Entry, error) { return makeEntry(res, marshalRecord) }

// makeEntry turns a provider answer into the entry every caller shares,
// encoding a found record once with encode.
func makeEntry(res locapi.Result, encode func(*locapi.Record) ([]byte, error)) (*Entry, error) {
	switch res.Status {
	case locapi.Found:
		if res.Record == nil {
			return nil, fmt.Errorf("cache: provider answered %v without a record", res.Status)
		}
		b, err := encode(res.Record)
		if err != nil {
			return nil, fmt.Errorf("cache: encode record: %w", err)
		}
		return &Entry{Status: res.Status, Record: res.Record, JSON: b}, nil
	case locapi.NotFound, locapi.NoLocation:
		return &Entry{Status: res.Status, Record: res.Record}, nil
	}
	return nil, fmt.Errorf("cache: provider answered unknown status %d", res.Status)
}
