package cache

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/snowgate/snowgate/locapi"
)

func TestNewConfig(t *testing.T) {
	up := &fakeProvider{}
	tests := []struct {
		name       string
		up         Lookuper
		cfg        Config
		wantErr    string
		wantShards int
		wantSize   int
	}{
		{name: "defaults", up: up, wantShards: DefaultShards, wantSize: DefaultSize},
		{name: "one shard", up: up, cfg: Config{Shards: 1, Size: 5}, wantShards: 1, wantSize: 5},
		{name: "shards lowered to size", up: up, cfg: Config{Size: 10}, wantShards: 8, wantSize: 10},
		{name: "size one", up: up, cfg: Config{Size: 1, Shards: 64}, wantShards: 1, wantSize: 1},
		{name: "nil lookuper", wantErr: "nil Lookuper"},
		{name: "negative size", up: up, cfg: Config{Size: -1}, wantErr: "Size -1 is negative"},
		{name: "negative ttl", up: up, cfg: Config{TTL: -time.Second}, wantErr: "TTL -1s is negative"},
		{name: "negative negative ttl", up: up, cfg: Config{NegativeTTL: -time.Second}, wantErr: "NegativeTTL -1s is negative"},
		{name: "negative concurrency", up: up, cfg: Config{Concurrency: -2}, wantErr: "Concurrency -2 is negative"},
		{name: "shards not a power of two", up: up, cfg: Config{Shards: 12}, wantErr: "Shards 12 is not a power of two"},
		{name: "negative shards", up: up, cfg: Config{Shards: -4}, wantErr: "Shards -4 is not a power of two"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := New(tt.up, tt.cfg, nil)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("New: got error %v; want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			defer r.Close()
			if got := len(r.shards); got != tt.wantShards {
				t.Errorf("shards: got %d; want %d", got, tt.wantShards)
			}
			size := 0
			for i := range r.shards {
				size += r.shards[i].cap
			}
			if size != tt.wantSize {
				t.Errorf("total capacity: got %d; want %d", size, tt.wantSize)
			}
		})
	}
}

// Two resolvers can share a process with separate registries; one registry
// refuses a second resolver's metrics with an error, not a panic.
func TestNewMetricsRegistration(t *testing.T) {
	reg := prometheus.NewRegistry()
	r1 := newTestResolver(t, &fakeProvider{}, Config{}, reg)
	r2 := newTestResolver(t, &fakeProvider{}, Config{}, prometheus.NewRegistry())
	if r1 == nil || r2 == nil {
		t.Fatal("New returned nil")
	}
	if _, err := New(&fakeProvider{}, Config{}, reg); err == nil {
		t.Fatal("second resolver on one registry: got nil error; want already registered")
	}
}

func TestEvictionAtSize(t *testing.T) {
	up := &fakeProvider{}
	reg := prometheus.NewRegistry()
	r := newTestResolver(t, up, Config{Size: 3, Shards: 1}, reg)
	for _, id := range []string{"a", "b", "c", "a", "d"} { // a is touched again, so b is the oldest when d comes
		checkOutcome(t, id, r.Resolve(t.Context(), id))
	}
	if got := r.Len(); got != 3 {
		t.Errorf("entries: got %d; want 3", got)
	}
	tests := []struct {
		id        string
		wantHit   bool
		wantCalls int
	}{
		{"a", true, 1}, {"d", true, 1}, {"c", true, 1}, {"b", false, 2},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			o := r.Resolve(t.Context(), tt.id)
			if o.Hit != tt.wantHit {
				t.Errorf("Hit: got %v; want %v", o.Hit, tt.wantHit)
			}
			if got := up.callsFor(tt.id); got != tt.wantCalls {
				t.Errorf("provider calls: got %d; want %d", got, tt.wantCalls)
			}
		})
	}
	// b's return evicted a, the oldest after the hits above.
	want := `
# HELP snowgate_cache_entries Entries in the cache, expired ones included until looked up or evicted.
# TYPE snowgate_cache_entries gauge
snowgate_cache_entries 3
# HELP snowgate_cache_evictions_total Entries evicted to stay within the cache size.
# TYPE snowgate_cache_evictions_total counter
snowgate_cache_evictions_total 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "snowgate_cache_entries", "snowgate_cache_evictions_total"); err != nil {
		t.Error(err)
	}
}

func TestShardedSizeBound(t *testing.T) {
	const size, n = 64, 1000
	r := newTestResolver(t, &fakeProvider{}, Config{Size: size, Shards: 16}, nil)
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("id-%d", i)
	}
	out, st := r.ResolveMany(t.Context(), ids)
	for i, id := range ids {
		checkOutcome(t, id, out[i])
	}
	if st.Fetched != n {
		t.Errorf("fetched: got %d; want %d", st.Fetched, n)
	}
	got := r.Len()
	if got > size || got < size/2 {
		t.Errorf("entries: got %d; want between %d and %d", got, size/2, size)
	}
	if ev := int(testutil.ToFloat64(r.m.evictions)); ev != n-got {
		t.Errorf("evictions: got %d; want %d", ev, n-got)
	}
}

func TestMetrics(t *testing.T) {
	g := newGate()
	reg := prometheus.NewRegistry()
	r := newTestResolver(t, g, Config{}, reg)
	joined := make(chan string, 8)
	r.waiting = func(id string) { joined <- id }

	done := make(chan struct{})
	go func() {
		r.ResolveMany(t.Context(), []string{"a", "err-1", "a"})
		close(done)
	}()
	<-g.started
	<-g.started
	<-joined
	<-joined
	joiner := make(chan Outcome, 1)
	go func() { joiner <- r.Resolve(t.Context(), "a") }()
	<-joined
	close(g.release)
	<-done
	checkOutcome(t, "a", <-joiner)
	r.waiting = nil
	r.ResolveMany(t.Context(), []string{"a", "a"})
	r.Resolve(t.Context(), "a")

	want := `
# HELP snowgate_cache_failures_total Distinct IDs that ended in an error (invalid ID, provider failure, caller gave up); never cached.
# TYPE snowgate_cache_failures_total counter
snowgate_cache_failures_total 1
# HELP snowgate_cache_requests_total Distinct IDs asked of the resolver (per call), by how they were answered: hit (from the cache or the shared L2), miss (a lookup asked the provider; invalid IDs included, rejected without a request), coalesced (joined a lookup already in flight), abandoned (the caller gave up or the resolver closed before any lookup).
# TYPE snowgate_cache_requests_total counter
snowgate_cache_requests_total{result="abandoned"} 0
snowgate_cache_requests_total{result="coalesced"} 1
snowgate_cache_requests_total{result="hit"} 2
snowgate_cache_requests_total{result="miss"} 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "snowgate_cache_requests_total", "snowgate_cache_failures_total"); err != nil {
		t.Error(err)
	}
}

// snowgate_cache_requests_total counts every distinct ID asked exactly
// once, also when its caller gives up while the lookup goes on, when a
// joined lookup finds the ID cached, and after Close; Stats partition each
// call's distinct IDs and carry the Lookuper's request counts.
func TestMetricsAddUp(t *testing.T) {
	g := newGate()
	gated := g.answer
	g.answer = func(ctx context.Context, id string) (locapi.Result, error) {
		res, err := gated(ctx, id)
		if !errors.Is(err, locapi.ErrInvalidID) {
			res.Requests = 2 // as a client that retried once would report
		}
		return res, err
	}
	reg := prometheus.NewRegistry()
	r := newTestResolver(t, g, Config{Concurrency: 1}, reg)
	check := func(step string, got, want Stats) {
		t.Helper()
		if got != want {
			t.Errorf("%s: got %+v; want %+v", step, got, want)
		}
	}

	// x's lookup runs in the one worker when the caller gives up: x goes on
	// (a miss), y and z were never taken (abandoned).
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan Stats, 1)
	go func() { _, st := r.ResolveMany(ctx, []string{"x", "y", "z"}); done <- st }()
	<-g.started
	cancel()
	check("given up", <-done, Stats{IDs: 3, Distinct: 3, Abandoned: 3, Failed: 3})
	close(g.release)
	if err := <-g.ctxErr; err != nil {
		t.Errorf("the lookup's ctx ended (%v); want it detached from every caller", err)
	}
	// Let x's lookup finish and leave the flights, so the calls below do
	// not join it (seen under load: "mixed" found x still in flight).
	r.flights.Wait()

	// w is stored after a caller has begun its lookup and another has
	// joined it: the leader's re-check hits, the joiner is coalesced.
	var awaits atomic.Int32
	begun, joined, release := make(chan struct{}), make(chan struct{}), make(chan struct{})
	r.waiting = func(string) {
		if awaits.Add(1) == 1 {
			close(begun)
			<-release // the leader, before its lookup runs
			return
		}
		close(joined)
	}
	leader, joiner := make(chan Outcome, 1), make(chan Outcome, 1)
	go func() { leader <- r.Resolve(t.Context(), "w") }()
	<-begun
	go func() { joiner <- r.Resolve(t.Context(), "w") }()
	<-joined
	e, err := newEntry(locapi.Result{Status: locapi.Found, Record: record("w")})
	if err != nil {
		t.Fatal(err)
	}
	r.store("w", maphash.String(r.seed, "w"), e, time.Hour, r.clock())
	close(release)
	for _, o := range []Outcome{<-leader, <-joiner} {
		if o.Entry != e || !o.Hit {
			t.Errorf("w: got %+v; want the stored entry, as a hit", o)
		}
	}
	r.waiting = nil

	_, st := r.ResolveMany(t.Context(), []string{"ok", "", "ok", "x"})
	check("mixed", st, Stats{IDs: 4, Distinct: 3, Hits: 1, Fetched: 1, Invalid: 1, Requests: 2, Failed: 1})
	r.Close()
	_, st = r.ResolveMany(t.Context(), []string{"x", "new"})
	check("closed", st, Stats{IDs: 2, Distinct: 2, Hits: 1, Abandoned: 1, Failed: 1})
	r.Resolve(t.Context(), "new2")

	// Asked: 3 + 2 (w twice) + 3 + 2 + 1 = 11.
	want := `
# HELP snowgate_cache_requests_total Distinct IDs asked of the resolver (per call), by how they were answered: hit (from the cache or the shared L2), miss (a lookup asked the provider; invalid IDs included, rejected without a request), coalesced (joined a lookup already in flight), abandoned (the caller gave up or the resolver closed before any lookup).
# TYPE snowgate_cache_requests_total counter
snowgate_cache_requests_total{result="abandoned"} 4
snowgate_cache_requests_total{result="coalesced"} 1
snowgate_cache_requests_total{result="hit"} 3
snowgate_cache_requests_total{result="miss"} 3
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "snowgate_cache_requests_total"); err != nil {
		t.Error(err)
	}
}

// Close cancels the lookups in flight, their callers get ErrClosed, later
// misses fail at once while hits are still answered, and no goroutine is
// left.
func TestCloseCancelsFlights(t *testing.T) {
	before := runtime.NumGoroutine()
	g := newGate()
	r, err := New(g, Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	warm := make(chan Outcome, 1)
	go func() { warm <- r.Resolve(t.Context(), "hot") }()
	<-g.started
	g.release <- struct{}{}
	if err := <-g.ctxErr; err != nil {
		t.Errorf("the lookup's ctx ended (%v); want it detached from every caller", err)
	}
	<-warm

	ids := []string{"a", "b", "c"}
	res := make(chan []Outcome, 1)
	go func() { out, _ := r.ResolveMany(context.Background(), ids); res <- out }()
	for range ids {
		<-g.started
	}
	if err := r.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for range ids {
		if err := <-g.ctxErr; !errors.Is(err, context.Canceled) {
			t.Errorf("lookup ctx after Close: got %v; want context.Canceled", err)
		}
	}
	for i, o := range <-res {
		if !errors.Is(o.Err, ErrClosed) {
			t.Errorf("%q: got %+v; want ErrClosed", ids[i], o)
		}
	}
	if o := r.Resolve(t.Context(), "new"); !errors.Is(o.Err, ErrClosed) {
		t.Errorf("miss after Close: got %+v; want ErrClosed", o)
	}
	if o := r.Resolve(t.Context(), "hot"); !o.Hit || o.Err != nil {
		t.Errorf("hit after Close: got %+v; want a hit", o)
	}
	if got := g.callsFor("new"); got != 0 {
		t.Errorf("provider calls after Close: got %d; want 0", got)
	}
	if err := r.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	waitGoroutines(t, before)
}

func TestNewEntryJSON(t *testing.T) {
	rec := record("w1")
	e, err := newEntry(locapi.Result{Status: locapi.Found, Record: rec})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":"w1","label":"label of w1","geo_label":null,"street_address":null,"city_label":"Kraków",` +
		`"postal_code":null,"country_label":null,"latitude":50.06,"longitude":19.94}`
	if string(e.JSON) != want {
		t.Errorf("JSON: got %s; want %s", e.JSON, want)
	}
	nan := math.NaN()
	if _, err := newEntry(locapi.Result{Status: locapi.Found, Record: &locapi.Record{ID: "x", Latitude: &nan}}); err == nil {
		t.Error("NaN latitude: got nil error; want an encoding error")
	}
}

// A hit on an entry in the back half of its shard moves it to the front, so
// it outlives the entries added before it.
func TestHitPromotesFromBackHalf(t *testing.T) {
	up := &fakeProvider{}
	r := newTestResolver(t, up, Config{Size: 8, Shards: 1}, nil)
	resolve := func(ids ...string) {
		t.Helper()
		for _, id := range ids {
			checkOutcome(t, id, r.Resolve(t.Context(), id))
		}
	}
	resolve("a", "b", "c", "d", "e", "f", "g", "h")
	resolve("a")                               // the oldest: moved to the front
	resolve("i", "j", "k", "l", "m", "n", "o") // evict b..h
	tests := []struct {
		id      string
		wantHit bool
	}{{"a", true}, {"o", true}, {"i", true}, {"h", false}, {"b", false}}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			calls := up.callsFor(tt.id)
			if o := r.Resolve(t.Context(), tt.id); o.Hit != tt.wantHit {
				t.Errorf("Hit: got %v; want %v (provider calls before: %d)", o.Hit, tt.wantHit, calls)
			}
		})
	}
}

// Neighbouring shards' locks must not share a cache line.
func TestShardSize(t *testing.T) {
	if got := unsafe.Sizeof(shard{}); got != 128 {
		t.Errorf("sizeof shard: got %d; want 128", got)
	}
}

// A shard is keyed by the ID's hash: an ID whose hash another ID has is a
// miss, never the other's answer, and stores replace each other; IDs of
// every length up to the longest allowed are told apart exactly.
func TestShardSameHash(t *testing.T) {
	r := newTestResolver(t, &fakeProvider{}, Config{Size: 8, Shards: 1}, nil)
	s := &r.shards[0]
	long := strings.Repeat("x", idShort)
	ids := []string{"", "a", "b", long, long + "y", long + "z", strings.Repeat("q", 4096)}
	const h = 7 // every ID under one hash
	for i, id := range ids {
		e := &Entry{}
		s.add(id, h, item{e: e, expires: 100})
		if got, ok := s.get(id, h, 0); !ok || got != e {
			t.Fatalf("%q: got %p, %v; want its own entry %p", id, got, ok, e)
		}
		for j, other := range ids {
			if j != i {
				if got, ok := s.get(other, h, 0); ok {
					t.Fatalf("after storing %q, %q under the same hash: got %p; want a miss", id, other, got)
				}
			}
		}
		if n := s.len(); n != 1 {
			t.Fatalf("%d entries under one hash; want 1", n)
		}
	}
	// The shard keeps its own copy of an ID: a caller may pass a string
	// that views a buffer it reuses.
	for _, want := range []string{"abc", long + "abc"} {
		b := []byte(want)
		s.add(unsafe.String(&b[0], len(b)), h, item{e: &Entry{}, expires: 100})
		b[0] = '!'
		if _, ok := s.get(want, h, 0); !ok {
			t.Fatalf("%q not found once the caller's bytes changed", want)
		}
	}
}

// A batch far bigger than a shard's run of lookups under one lock, mixing
// hits, misses and repeats of both across shards: every hit answered from
// the cache, every miss fetched once, every repeat its first's answer.
func TestResolveManyByShard(t *testing.T) {
	up := &fakeProvider{}
	r := newTestResolver(t, up, Config{Size: 10_000, Shards: 4}, nil)
	var warm, ids []string
	for i := range 2000 {
		id := fmt.Sprintf("WH-%05d", i)
		if i%3 != 0 {
			warm = append(warm, id)
		}
		ids = append(ids, id)
	}
	if _, st := r.ResolveMany(t.Context(), warm); st.Fetched != len(warm) {
		t.Fatalf("warm-up fetched %d; want %d", st.Fetched, len(warm))
	}
	batch := append(slices.Clone(ids), ids[:500]...) // each of the first 500 twice
	// The hot path alone: a hit it missed would still be answered below
	// (the lookup checks the cache again), only slower.
	hot := make([]Outcome, len(batch))
	var hst Stats
	misses, dups := r.fromCache(batch, hot, &hst)
	if want := len(ids) - len(warm); len(misses) != want || hst.Hits != len(warm) {
		t.Fatalf("fromCache: %d misses, %d hits; want %d, %d", len(misses), hst.Hits, want, len(warm))
	}
	for _, m := range misses {
		if m.at%3 != 0 || hot[m.at].Entry != nil {
			t.Fatalf("fromCache: miss at %d", m.at)
		}
	}
	for _, d := range dups {
		if d.at != d.of+2000 || d.of%3 != 0 {
			t.Fatalf("fromCache: repeat %+v", d)
		}
	}
	if want := (500 + 2) / 3; len(dups) != want {
		t.Fatalf("fromCache: %d repeats of misses; want %d", len(dups), want)
	}
	out, st := r.ResolveMany(t.Context(), batch)
	if want := len(ids) - len(warm); st.Hits != len(warm) || st.Fetched != want || st.Distinct != len(ids) {
		t.Fatalf("hits %d, fetched %d, distinct %d; want %d, %d, %d", st.Hits, st.Fetched, st.Distinct, len(warm), want, len(ids))
	}
	for i, id := range batch {
		checkOutcome(t, id, out[i])
		if wantHit := i%2000%3 != 0; i < 2000 && out[i].Hit != wantHit {
			t.Fatalf("%s: Hit %v; want %v", id, out[i].Hit, wantHit)
		}
		if n := up.callsFor(id); n != 1 {
			t.Fatalf("%s: %d provider calls; want 1", id, n)
		}
	}
}
