package cache

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/snowgate/snowgate/locapi"
)

// checkOutcome fails unless o is the fake provider's answer for id.
func checkOutcome(t *testing.T, id string, o Outcome) {
	t.Helper()
	want, wantErr := answerFor(id)
	switch {
	case wantErr != nil:
		if o.Err == nil {
			t.Errorf("%q: got entry %+v; want error", id, o.Entry)
		}
	case o.Err != nil:
		t.Errorf("%q: got error %v; want %v", id, o.Err, want.Status)
	case o.Status != want.Status:
		t.Errorf("%q: got status %v; want %v", id, o.Status, want.Status)
	case want.Record != nil && (o.Record == nil || o.Record.ID != id):
		t.Errorf("%q: got record %+v; want ID %q", id, o.Record, id)
	case want.Status == locapi.Found && len(o.JSON) == 0:
		t.Errorf("%q: found entry without JSON", id)
	}
}

// Acceptance 3: 10,000 lookups of 3,000 distinct IDs from 32 goroutines,
// half of them through Resolve and half through ResolveMany, make exactly
// one provider call per distinct ID.
func TestCoalescingExactlyOneCallPerID(t *testing.T) {
	const distinct, lookups, workers = 3000, 10000, 32
	up := &fakeProvider{delay: 5 * time.Millisecond}
	reg := prometheus.NewRegistry()
	r := newTestResolver(t, up, Config{}, reg)

	rng := rand.New(rand.NewPCG(1, 2))
	ids := make([]string, 0, lookups)
	for i := range distinct {
		ids = append(ids, fmt.Sprintf("id-%04d", i))
	}
	for len(ids) < lookups {
		ids = append(ids, ids[rng.IntN(distinct)])
	}
	rng.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })

	start := make(chan struct{})
	var wg sync.WaitGroup
	per := (lookups + workers - 1) / workers
	for w := range workers {
		part := ids[min(w*per, lookups):min((w+1)*per, lookups)]
		wg.Go(func() {
			<-start
			if w%2 == 0 {
				for _, id := range part {
					checkOutcome(t, id, r.Resolve(t.Context(), id))
				}
				return
			}
			for len(part) > 0 {
				batch := part[:min(37, len(part))]
				part = part[len(batch):]
				out, _ := r.ResolveMany(t.Context(), batch)
				for i, id := range batch {
					checkOutcome(t, id, out[i])
				}
			}
		})
	}
	close(start)
	wg.Wait()

	if got := up.total.Load(); got != distinct {
		t.Errorf("provider calls: got %d; want %d", got, distinct)
	}
	for id, n := range up.calls {
		if n != 1 {
			t.Errorf("provider calls for %q: got %d; want 1", id, n)
		}
	}
	if got := r.m.miss.Load(); got != distinct {
		t.Errorf("miss counter: got %v; want %d", got, distinct)
	}
	hits, joins := r.hits(), r.m.coalesced.Load()
	t.Logf("hits %v, coalesced %v, fetched %d", hits, joins, distinct)
}

// A caller giving up gets its ctx's error; the lookup goes on, uncancelled,
// for the caller that joined it, which gets the answer of the one call.
func TestCancelledCallerDoesNotCancelOthers(t *testing.T) {
	g := newGate()
	r := newTestResolver(t, g, Config{}, nil)
	joined := make(chan string, 8)
	r.waiting = func(id string) { joined <- id }

	ctxA, cancelA := context.WithCancel(t.Context())
	defer cancelA()
	resA := make(chan Outcome, 1)
	go func() { resA <- r.Resolve(ctxA, "x") }()
	<-g.started
	<-joined // A started the flight
	resB := make(chan Outcome, 1)
	go func() { resB <- r.Resolve(context.Background(), "x") }()
	<-joined // B joined it

	cancelA()
	if a := <-resA; !errors.Is(a.Err, context.Canceled) {
		t.Fatalf("cancelled caller: got %+v; want context.Canceled", a)
	}
	close(g.release)
	if err := <-g.ctxErr; err != nil {
		t.Errorf("lookup ctx when released: got %v; want nil", err)
	}
	b := <-resB
	checkOutcome(t, "x", b)
	if b.Hit {
		t.Errorf("joined caller: got Hit true; want false")
	}
	if got := g.callsFor("x"); got != 1 {
		t.Errorf("provider calls: got %d; want 1", got)
	}
}

// A ResolveMany whose ctx ends gets its hits and ctx's error for the rest;
// the lookup it started finishes anyway and fills the cache.
func TestResolveManyCancelledKeepsHitsAndFlight(t *testing.T) {
	g := newGate()
	r := newTestResolver(t, g, Config{}, nil)
	warm := make(chan Outcome, 1)
	go func() { warm <- r.Resolve(t.Context(), "a") }()
	<-g.started
	g.release <- struct{}{} // let only a's lookup through
	if err := <-g.ctxErr; err != nil {
		t.Errorf("the lookup's ctx ended (%v); want it detached from every caller", err)
	}
	checkOutcome(t, "a", <-warm)

	ctx, cancel := context.WithCancel(t.Context())
	r.waiting = func(string) { cancel() }
	out, st := r.ResolveMany(ctx, []string{"a", "x", "a"})
	if !out[0].Hit || !out[2].Hit {
		t.Errorf("cached ID: got %+v, %+v; want hits", out[0], out[2])
	}
	if !errors.Is(out[1].Err, context.Canceled) {
		t.Errorf("uncached ID: got %+v; want context.Canceled", out[1])
	}
	want := Stats{IDs: 3, Distinct: 2, Hits: 1, Abandoned: 1, Failed: 1}
	if st != want {
		t.Errorf("stats: got %+v; want %+v", st, want)
	}
	r.waiting = nil

	<-g.started // x's lookup runs although its only caller left
	close(g.release)
	if err := <-g.ctxErr; err != nil {
		t.Errorf("lookup ctx when released: got %v; want nil", err)
	}
	checkOutcome(t, "x", r.Resolve(t.Context(), "x"))
	if got := g.callsFor("x"); got != 1 {
		t.Errorf("provider calls for x: got %d; want 1", got)
	}
}

// Two concurrent batches sharing a missed ID: one fetches, one coalesces.
func TestResolveManyStatsCoalesced(t *testing.T) {
	g := newGate()
	r := newTestResolver(t, g, Config{}, nil)
	joined := make(chan string, 8)
	r.waiting = func(id string) { joined <- id }

	type res struct {
		out []Outcome
		st  Stats
	}
	first, second := make(chan res, 1), make(chan res, 1)
	go func() { o, s := r.ResolveMany(t.Context(), []string{"x", "x"}); first <- res{o, s} }()
	<-g.started
	<-joined
	go func() { o, s := r.ResolveMany(t.Context(), []string{"x"}); second <- res{o, s} }()
	<-joined
	close(g.release)
	if err := <-g.ctxErr; err != nil {
		t.Errorf("the lookup's ctx ended (%v); want it detached from every caller", err)
	}

	f, s := <-first, <-second
	if want := (Stats{IDs: 2, Distinct: 1, Fetched: 1}); f.st != want {
		t.Errorf("first batch: got %+v; want %+v", f.st, want)
	}
	if want := (Stats{IDs: 1, Distinct: 1, Coalesced: 1}); s.st != want {
		t.Errorf("second batch: got %+v; want %+v", s.st, want)
	}
	for _, o := range append(f.out, s.out...) {
		checkOutcome(t, "x", o)
		if o.Entry != f.out[0].Entry {
			t.Errorf("entries: got %p; want the shared %p", o.Entry, f.out[0].Entry)
		}
	}
}

func TestResolveManyOrderAndStats(t *testing.T) {
	tests := []struct {
		name     string
		warm     []string
		ids      []string
		wantHit  []bool
		want     Stats
		wantCall map[string]int
	}{
		{name: "empty", ids: nil, want: Stats{}},
		{name: "all hits with repeats", warm: []string{"a", "nf-b"}, ids: []string{"a", "nf-b", "a"},
			wantHit: []bool{true, true, true}, want: Stats{IDs: 3, Distinct: 2, Hits: 2}},
		{name: "mixed", warm: []string{"a"}, ids: []string{"x", "a", "x", "nl-y", "a", "nf-z"},
			wantHit:  []bool{false, true, false, false, true, false},
			want:     Stats{IDs: 6, Distinct: 4, Hits: 1, Fetched: 3},
			wantCall: map[string]int{"x": 1, "a": 1, "nl-y": 1, "nf-z": 1}},
		{name: "failures", ids: []string{"err-1", "ok", "err-1", "", "\x00"},
			wantHit:  []bool{false, false, false, false, false},
			want:     Stats{IDs: 5, Distinct: 4, Fetched: 2, Invalid: 2, Failed: 3},
			wantCall: map[string]int{"err-1": 1, "ok": 1, "": 1, "\x00": 1}},
		{name: "unicode and long IDs", ids: []string{"Zürich/ü", "a/b?c#d", "../../admin", string(make([]byte, 300))},
			wantHit: []bool{false, false, false, false}, want: Stats{IDs: 4, Distinct: 4, Fetched: 3, Invalid: 1, Failed: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := &fakeProvider{}
			r := newTestResolver(t, up, Config{}, nil)
			r.ResolveMany(t.Context(), tt.warm)
			out, st := r.ResolveMany(t.Context(), tt.ids)
			if len(out) != len(tt.ids) {
				t.Fatalf("outcomes: got %d; want %d", len(out), len(tt.ids))
			}
			for i, id := range tt.ids {
				checkOutcome(t, id, out[i])
				if out[i].Hit != tt.wantHit[i] {
					t.Errorf("out[%d] (%q) Hit: got %v; want %v", i, id, out[i].Hit, tt.wantHit[i])
				}
			}
			if st != tt.want {
				t.Errorf("stats: got %+v; want %+v", st, tt.want)
			}
			for id, n := range tt.wantCall {
				if got := up.callsFor(id); got != n {
					t.Errorf("provider calls for %q: got %d; want %d", id, got, n)
				}
			}
		})
	}
}

func TestExpiry(t *testing.T) {
	const ttl, negTTL = 10 * time.Minute, time.Minute
	tests := []struct {
		id   string
		ttl  time.Duration
		many bool // look up again through ResolveMany instead of Resolve
	}{
		{id: "found", ttl: ttl},
		{id: "found-batch", ttl: ttl, many: true},
		{id: "nf-gone", ttl: negTTL},
		{id: "nl-nowhere", ttl: negTTL},
		{id: "nl-nowhere-batch", ttl: negTTL, many: true},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			clock := newFakeClock()
			up := &fakeProvider{}
			r := newTestResolver(t, up, Config{TTL: ttl, NegativeTTL: negTTL, Now: clock.Now}, nil)
			resolve := func() Outcome {
				if tt.many {
					out, _ := r.ResolveMany(t.Context(), []string{tt.id})
					return out[0]
				}
				return r.Resolve(t.Context(), tt.id)
			}
			steps := []struct {
				advance   time.Duration
				wantHit   bool
				wantCalls int
			}{
				{0, false, 1},
				{tt.ttl - time.Nanosecond, true, 1},
				{time.Nanosecond, false, 2}, // expired exactly at its TTL
				{time.Nanosecond, true, 2},
			}
			for i, s := range steps {
				clock.Advance(s.advance)
				o := resolve()
				checkOutcome(t, tt.id, o)
				if o.Hit != s.wantHit {
					t.Errorf("step %d: Hit got %v; want %v", i, o.Hit, s.wantHit)
				}
				if got := up.callsFor(tt.id); got != s.wantCalls {
					t.Errorf("step %d: provider calls got %d; want %d", i, got, s.wantCalls)
				}
			}
		})
	}
}

func TestFailuresAreNotCached(t *testing.T) {
	tests := []struct {
		name    string
		id      string
		answer  func(ctx context.Context, id string) (locapi.Result, error)
		wantErr error
	}{
		{name: "provider error", id: "err-1", wantErr: errProvider},
		{name: "invalid id", id: "", wantErr: locapi.ErrInvalidID},
		{name: "control character", id: "a\nb", wantErr: locapi.ErrInvalidID},
		{name: "found without record", id: "a", answer: func(context.Context, string) (locapi.Result, error) {
			return locapi.Result{Status: locapi.Found}, nil
		}},
		{name: "unknown status", id: "a", answer: func(context.Context, string) (locapi.Result, error) {
			return locapi.Result{Status: 42}, nil
		}},
		{name: "panicking provider", id: "a", answer: func(context.Context, string) (locapi.Result, error) {
			panic("boom")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := &fakeProvider{answer: tt.answer}
			r := newTestResolver(t, up, Config{}, nil)
			for call := 1; call <= 2; call++ {
				o := r.Resolve(t.Context(), tt.id)
				if o.Err == nil || o.Entry != nil {
					t.Fatalf("call %d: got %+v; want an error only", call, o)
				}
				if tt.wantErr != nil && !errors.Is(o.Err, tt.wantErr) {
					t.Errorf("call %d: got %v; want %v", call, o.Err, tt.wantErr)
				}
				if got := up.callsFor(tt.id); got != call {
					t.Errorf("call %d: provider calls got %d; want %d", call, got, call)
				}
			}
			if got := r.Len(); got != 0 {
				t.Errorf("entries: got %d; want 0", got)
			}
		})
	}
}

// A failure is not cached, and after it the same ID succeeds.
func TestFailureThenSuccess(t *testing.T) {
	var fail = true
	up := &fakeProvider{answer: func(_ context.Context, id string) (locapi.Result, error) {
		if fail {
			return locapi.Result{}, errProvider
		}
		return answerFor(id)
	}}
	r := newTestResolver(t, up, Config{}, nil)
	if o := r.Resolve(t.Context(), "a"); !errors.Is(o.Err, errProvider) {
		t.Fatalf("first call: got %+v; want %v", o, errProvider)
	}
	fail = false
	out, st := r.ResolveMany(t.Context(), []string{"a"})
	checkOutcome(t, "a", out[0])
	if want := (Stats{IDs: 1, Distinct: 1, Fetched: 1}); st != want {
		t.Errorf("stats: got %+v; want %+v", st, want)
	}
}

// TestResolveManyBoundsLookups resolves a cold batch through ResolveMany's
// workers: every ID answered by one lookup, and no more lookups at once
// than Concurrency.
func TestResolveManyBoundsLookups(t *testing.T) {
	const conc, n = 3, 60
	var running, most atomic.Int64
	up := &fakeProvider{}
	up.answer = func(ctx context.Context, id string) (locapi.Result, error) {
		cur := running.Add(1)
		defer running.Add(-1)
		for m := most.Load(); cur > m && !most.CompareAndSwap(m, cur); m = most.Load() {
		}
		runtime.Gosched() // let the other workers start theirs
		res, err := answerFor(id)
		res.Requests = 1
		return res, err
	}
	r := newTestResolver(t, up, Config{Concurrency: conc}, nil)
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("b%d", i)
	}
	out, st := r.ResolveMany(t.Context(), ids)
	for i, id := range ids {
		checkOutcome(t, id, out[i])
		if c := up.callsFor(id); c != 1 {
			t.Errorf("lookups of %q = %d; want 1", id, c)
		}
	}
	if st.Fetched != n || st.Requests != n {
		t.Errorf("stats: fetched %d, requests %d; want %d each", st.Fetched, st.Requests, n)
	}
	if m := most.Load(); m < 1 || m > conc {
		t.Errorf("lookups at once = %d; want 1 to %d", m, conc)
	}
}
