package cache

import (
	"context"
	"fmt"
	"hash/maphash"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/snowgate/snowgate/locapi"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/singleflight"
)

// The resolver coalesces and fans out with code of its own (call, begin,
// run, await with inline, fetchAll's worker pool) although golang.org/x/sync
// is a dependency. BenchmarkCoalesce weighs that choice: the same cold batch
// resolved by ResolveMany and by rebuilds of it on x/sync that share every
// other step with it (the cache pass and dedupe, load with its re-check on
// the detached context, the cache fill, metrics, the Stats tally), so the
// figures differ only by the coalescing and the fan-out.

const (
	coalesceBatch       = 4096 // Snowflake's batch of one short VARCHAR argument
	coalesceConcurrency = 64   // serve's --upstream-concurrency default
)

// batchResolver is what a round drives: a batch, and the single-ID path the
// held lookups are started from.
type batchResolver interface {
	resolveMany(ctx context.Context, ids []string) ([]Outcome, Stats)
	resolve(ctx context.Context, id string) Outcome
}

// handRolled is the resolver as it is.
type handRolled struct{ *Resolver }

func (h handRolled) resolveMany(ctx context.Context, ids []string) ([]Outcome, Stats) {
	return h.ResolveMany(ctx, ids)
}

func (h handRolled) resolve(ctx context.Context, id string) Outcome { return h.Resolve(ctx, id) }

// sfResolver rebuilds Resolve and ResolveMany on singleflight.Group. By
// default every miss gets a goroutine from an errgroup limited to
// Concurrency and waits on DoChan, whose leader looks up in a goroutine of
// singleflight's. With pool, Concurrency workers take misses in turn like
// fetchAll's and call Do, whose leader looks up in the worker itself (the
// closest x/sync gets to inline); it serves no held case, since Do has no
// point between joining and waiting where the test hook could run.
type sfResolver struct {
	*Resolver
	group singleflight.Group
	pool  bool
}

func (s *sfResolver) resolve(ctx context.Context, id string) Outcome {
	h := maphash.String(s.seed, id)
	if e, ok := s.shardFor(h).get(id, h, s.clock()); ok {
		return Outcome{Entry: e, Hit: true}
	}
	o, src, requests := s.await(ctx, id, h, s.cfg.L2 != nil, false)
	var st Stats
	st.tally(src, requests, o.Err != nil)
	s.m.add(st)
	return o
}

func (s *sfResolver) resolveMany(ctx context.Context, ids []string) ([]Outcome, Stats) {
	out := make([]Outcome, len(ids))
	st := Stats{IDs: len(ids)}
	if len(ids) == 0 {
		return out, st
	}
	misses, dups := s.fromCache(ids, out, &st)
	if len(misses) > 0 && s.cfg.L2 != nil {
		misses = s.fromL2(ctx, ids, misses, out, &st)
	}
	if len(misses) > 0 {
		srcs := make([]source, len(misses))
		reqs := make([]int, len(misses))
		s.fanOut(len(misses), func(k int) {
			m := misses[k]
			out[m.at], srcs[k], reqs[k] = s.await(ctx, ids[m.at], m.h, false, s.pool)
		})
		for k, m := range misses {
			st.tally(srcs[k], reqs[k], out[m.at].Err != nil)
		}
	}
	for _, d := range dups {
		out[d.at] = out[d.of]
	}
	s.m.add(st)
	return out, st
}

// fanOut runs one(k) for every k below n, at most Concurrency at once. It
// waits for all of them, which ResolveMany does not when ctx ends: no round
// here ends its ctx.
func (s *sfResolver) fanOut(n int, one func(k int)) {
	if s.pool {
		var next atomic.Int64
		var wg sync.WaitGroup
		for range min(s.cfg.Concurrency, n) {
			wg.Go(func() {
				for k := int(next.Add(1) - 1); k < n; k = int(next.Add(1) - 1) {
					one(k)
				}
			})
		}
		wg.Wait()
		return
	}
	var g errgroup.Group
	g.SetLimit(s.cfg.Concurrency)
	for k := range n {
		g.Go(func() error {
			one(k)
			return nil
		})
	}
	_ = g.Wait() // every one returns nil
}

// await is Resolver.await on singleflight: Do with inline, else DoChan.
func (s *sfResolver) await(ctx context.Context, id string, h uint64, askL2, inline bool) (Outcome, source, int) {
	if err := ctx.Err(); err != nil {
		s.m.abandoned.Add(1)
		return Outcome{Err: err}, abandoned, 0
	}
	// Only the leader's function runs, and it writes leader before Do
	// returns or DoChan sends, so reading leader afterwards is safe.
	leader := false
	fn := func() (any, error) {
		leader = true
		return s.load(id, h, askL2)
	}
	var res singleflight.Result
	if inline {
		res.Val, res.Err, _ = s.group.Do(id, fn)
	} else {
		ch := s.group.DoChan(id, fn)
		if s.waiting != nil {
			s.waiting(id)
		}
		select {
		case res = <-ch:
		case <-ctx.Done():
			// Whether this caller had joined is singleflight's to know,
			// so unlike begin it cannot count a coalesced caller here.
			return Outcome{Err: ctx.Err()}, abandoned, 0
		}
	}
	if !leader {
		s.m.coalesced.Add(1)
	}
	fl, _ := res.Val.(flight)
	c := call{fl: fl, err: res.Err}
	return c.outcome(leader)
}

// benchProvider is an in-memory Lookuper: a prebuilt record per ID, an
// optional fixed latency, a call counter, and gates that hold chosen IDs'
// lookups until the resolver's waiting hook has seen the ID twice: once
// from the caller that started the lookup, once from the batch joining it.
type benchProvider struct {
	recs    map[string]*locapi.Record
	delay   time.Duration
	gates   map[string]*benchGate // read-only once built
	calls   atomic.Int64
	held    atomic.Int64  // lookups that reached their gate
	allHeld chan struct{} // closed when every gated lookup has
}

type benchGate struct {
	seen atomic.Int32
	open chan struct{}
}

func newBenchProvider(recs map[string]*locapi.Record, delay time.Duration, hold []string) *benchProvider {
	p := &benchProvider{recs: recs, delay: delay, gates: make(map[string]*benchGate, len(hold)), allHeld: make(chan struct{})}
	for _, id := range hold {
		p.gates[id] = &benchGate{open: make(chan struct{})}
	}
	return p
}

// Lookup sleeps through its latency without watching ctx: it is short,
// and a round closes its resolver only once every lookup has ended.
func (p *benchProvider) Lookup(ctx context.Context, id string) (locapi.Result, error) {
	p.calls.Add(1)
	if g := p.gates[id]; g != nil {
		if p.held.Add(1) == int64(len(p.gates)) {
			close(p.allHeld)
		}
		select {
		case <-g.open:
		case <-ctx.Done():
			return locapi.Result{}, ctx.Err()
		}
	}
	if p.delay > 0 {
		time.Sleep(p.delay)
	}
	rec := p.recs[id]
	if rec == nil {
		return locapi.Result{Status: locapi.NotFound, Requests: 1}, nil
	}
	return locapi.Result{Status: locapi.Found, Record: rec, Requests: 1}, nil
}

// seen is the resolver's waiting hook.
func (p *benchProvider) seen(id string) {
	if g := p.gates[id]; g != nil && g.seen.Add(1) == 2 {
		close(g.open)
	}
}

// coalesceFixture is the batch every round resolves: distinct IDs of
// typical length with their records, and every other one to hold.
type coalesceFixture struct {
	ids  []string
	recs map[string]*locapi.Record
	hold []string
}

func newCoalesceFixture() *coalesceFixture {
	fx := &coalesceFixture{recs: make(map[string]*locapi.Record, coalesceBatch)}
	for i := range coalesceBatch {
		id := fmt.Sprintf("WH-%07d", i*7919)
		fx.ids = append(fx.ids, id)
		fx.recs[id] = record(id)
		if i%2 == 0 {
			fx.hold = append(fx.hold, id)
		}
	}
	return fx
}

// coalesceCase is one shape of cold batch. With held, half its IDs are in
// flight when it starts, from single-ID callers through the same
// implementation, and each held lookup ends once the batch has joined it.
type coalesceCase struct {
	name  string
	delay time.Duration
	held  bool
	want  Stats // the batch's
}

var coalesceCases = []coalesceCase{
	{"batch=cold/lat=0", 0, false,
		Stats{IDs: coalesceBatch, Distinct: coalesceBatch, Fetched: coalesceBatch, Requests: coalesceBatch}},
	{"batch=cold/lat=100us", 100 * time.Microsecond, false,
		Stats{IDs: coalesceBatch, Distinct: coalesceBatch, Fetched: coalesceBatch, Requests: coalesceBatch}},
	{"batch=half-in-flight/lat=0", 0, true,
		Stats{IDs: coalesceBatch, Distinct: coalesceBatch, Fetched: coalesceBatch / 2,
			Coalesced: coalesceBatch / 2, Requests: coalesceBatch / 2}},
}

var coalescers = []struct {
	name  string
	build func(*Resolver) batchResolver
	held  bool // can serve a held case
}{
	{"hand-rolled", func(r *Resolver) batchResolver { return handRolled{r} }, true},
	{"singleflight-errgroup", func(r *Resolver) batchResolver { return &sfResolver{Resolver: r} }, true},
	{"singleflight-do-pool", func(r *Resolver) batchResolver { return &sfResolver{Resolver: r, pool: true} }, false},
}

// coalesceRound is one batch over a fresh, empty resolver.
type coalesceRound struct {
	p       *benchProvider
	r       *Resolver
	impl    batchResolver
	held    sync.WaitGroup
	heldBad atomic.Int64 // held callers that did not get their record
}

// startRound builds the round and, for a held case, returns once every held
// lookup waits at its gate.
func startRound(tb testing.TB, fx *coalesceFixture, c coalesceCase, build func(*Resolver) batchResolver) *coalesceRound {
	tb.Helper()
	var hold []string
	if c.held {
		hold = fx.hold
	}
	p := newBenchProvider(fx.recs, c.delay, hold)
	r, err := New(p, Config{Concurrency: coalesceConcurrency}, nil)
	if err != nil {
		tb.Fatal(err)
	}
	rd := &coalesceRound{p: p, r: r, impl: build(r)}
	if len(hold) == 0 {
		return rd
	}
	r.waiting = p.seen
	ctx := tb.Context()
	for _, id := range hold {
		rd.held.Go(func() {
			if o := rd.impl.resolve(ctx, id); o.Err != nil || o.Entry == nil || o.Record != fx.recs[id] {
				rd.heldBad.Add(1)
			}
		})
	}
	<-p.allHeld
	return rd
}

// finish waits for the held callers, closes the resolver and checks the
// round: every ID answered with its record, the batch's Stats as the case
// wants. It returns the Lookuper's calls.
func (rd *coalesceRound) finish(tb testing.TB, fx *coalesceFixture, c coalesceCase, out []Outcome, st Stats) int64 {
	tb.Helper()
	rd.held.Wait()
	rd.r.Close()
	if st != c.want {
		tb.Fatalf("stats: got %+v; want %+v", st, c.want)
	}
	for i, id := range fx.ids {
		if o := out[i]; o.Err != nil || o.Entry == nil || o.Status != locapi.Found || o.Record != fx.recs[id] {
			tb.Fatalf("%q: got %+v; want its record", id, o)
		}
	}
	if n := rd.heldBad.Load(); n > 0 {
		tb.Fatalf("held callers without their record: got %d; want 0", n)
	}
	return rd.p.calls.Load()
}

// BenchmarkCoalesce: run with -cpu 1,2 -benchmem, interleaving the
// implementations over repeated runs, and compare with benchstat -col /impl.
// ns/op and ns/id are the batch's (a held case's setup is not timed).
func BenchmarkCoalesce(b *testing.B) {
	fx := newCoalesceFixture()
	for _, c := range coalesceCases {
		for _, impl := range coalescers {
			if c.held && !impl.held {
				continue
			}
			b.Run(c.name+"/impl="+impl.name, func(b *testing.B) {
				b.ReportAllocs()
				b.StopTimer()
				var lookups int64
				for range b.N {
					rd := startRound(b, fx, c, impl.build)
					b.StartTimer()
					out, st := rd.impl.resolveMany(b.Context(), fx.ids)
					b.StopTimer()
					lookups += rd.finish(b, fx, c, out, st)
				}
				if want := int64(b.N) * coalesceBatch; lookups != want {
					b.Fatalf("lookups: got %d; want %d, one per distinct ID", lookups, want)
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*coalesceBatch), "ns/id")
				b.ReportMetric(float64(lookups)/float64(b.N), "lookups/op")
			})
		}
	}
}

// The rebuilds must do what the resolver does on every round the benchmark
// times, or its figures compare unlike things.
func TestCoalesceAlternativesAgree(t *testing.T) {
	fx := newCoalesceFixture()
	for _, c := range coalesceCases {
		for _, impl := range coalescers {
			if c.held && !impl.held {
				continue
			}
			t.Run(c.name+"/impl="+impl.name, func(t *testing.T) {
				before := runtime.NumGoroutine()
				rd := startRound(t, fx, c, impl.build)
				out, st := rd.impl.resolveMany(t.Context(), fx.ids)
				if got := rd.finish(t, fx, c, out, st); got != coalesceBatch {
					t.Errorf("lookups: got %d; want %d, one per distinct ID", got, coalesceBatch)
				}
				waitGoroutines(t, before)
			})
		}
	}
}
