package cache

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/snowgate/snowgate/cluster"
	"github.com/snowgate/snowgate/cluster/redistest"
	"github.com/snowgate/snowgate/locapi"
)

// The L2 tests run against a real Redis through package cluster, the L2
// snowgate ships; countingL2 only counts the calls that reach it.
type countingL2 struct {
	L2
	gets, sets atomic.Int64
}

func (c *countingL2) GetMany(ctx context.Context, keys []string) ([][]byte, error) {
	c.gets.Add(1)
	return c.L2.GetMany(ctx, keys)
}

func (c *countingL2) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	c.sets.Add(1)
	return c.L2.Set(ctx, key, value, ttl)
}

// sharedResolver is one process's resolver: its own provider and cluster
// client, the Redis of srv.
func sharedResolver(t *testing.T, srv *redistest.Server, cfg Config) (*Resolver, *fakeProvider, *countingL2) {
	t.Helper()
	// Redis' default 100 ms timeout would take a starved machine's slow
	// round trip for an outage, and a miss.
	cl, err := cluster.New(srv.URL, cluster.Config{Timeout: 10 * time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	l2 := &countingL2{L2: cl.Records()}
	cfg.L2 = l2
	up := &fakeProvider{}
	r, err := New(up, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); cl.Close() })
	return r, up, l2
}

func TestL2SharesAnswersNotFailures(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	a, _, _ := sharedResolver(t, srv, Config{})
	b, upB, l2B := sharedResolver(t, srv, Config{})
	ids := []string{"x1", "nf-1", "nl-1", "err-1", "x1"}
	outA, _ := a.ResolveMany(ctx, ids)
	outB, st := b.ResolveMany(ctx, ids)
	if want := (Stats{IDs: 5, Distinct: 4, Hits: 3, L2Hits: 3, Fetched: 1, Failed: 1}); st != want {
		t.Errorf("B's stats: got %+v; want %+v", st, want)
	}
	for i, id := range ids {
		oa, ob := outA[i], outB[i]
		if id == "err-1" {
			if ob.Err == nil || upB.callsFor(id) != 1 {
				t.Errorf("%s: got %v after %d calls; want B's own provider's failure", id, ob.Err, upB.callsFor(id))
			}
			continue
		}
		if ob.Err != nil || ob.Status != oa.Status || string(ob.JSON) != string(oa.JSON) || !ob.Hit {
			t.Errorf("%s: B got %+v; want A's answer %+v, as a hit", id, ob, oa)
		}
		if ob.Status == locapi.NoLocation && (ob.Record == nil || *ob.Record.Label != "label of nl-1") {
			t.Errorf("%s: B lost the record of a no-location answer: %+v", id, ob.Record)
		}
		if n := upB.callsFor(id); n != 0 {
			t.Errorf("%s: B's provider called %d times; want 0", id, n)
		}
	}
	gets := l2B.gets.Load()
	if _, st := b.ResolveMany(ctx, ids[:3]); st.Hits != 3 || st.L2Hits != 0 || l2B.gets.Load() != gets {
		t.Errorf("B again: got %+v and %d more L2 calls; want 3 hits in its own LRU and none", st, l2B.gets.Load()-gets)
	}
	// One ID at a time, as the backfill asks.
	a.Resolve(ctx, "y1")
	if o := b.Resolve(ctx, "y1"); o.Err != nil || !o.Hit || upB.callsFor("y1") != 0 {
		t.Errorf("Resolve y1 on B: got %+v after %d provider calls; want a hit from the L2", o, upB.callsFor("y1"))
	}
}

func TestL2KeepsTheCacheTTLs(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	clockA, clockB := newFakeClock(), newFakeClock()
	a, _, _ := sharedResolver(t, srv, Config{TTL: time.Hour, NegativeTTL: time.Minute, Now: clockA.Now})
	b, upB, _ := sharedResolver(t, srv, Config{TTL: time.Hour, NegativeTTL: time.Minute, Now: clockB.Now})
	a.ResolveMany(ctx, []string{"x1", "nf-1"})
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, DisableIdentity: true})
	defer rdb.Close()
	for _, k := range []struct {
		id       string
		min, max time.Duration
	}{{"x1", time.Hour - 10*time.Second, time.Hour}, {"nf-1", 50 * time.Second, time.Minute}} { // slack for a slow machine
		if ttl := rdb.PTTL(ctx, cluster.DefaultPrefix+"rec:"+k.id).Val(); ttl < k.min || ttl > k.max {
			t.Errorf("TTL of %s in Redis: got %v; want %v", k.id, ttl, k.max)
		}
	}
	// B comes 59 minutes later: the record has one minute left, in B too.
	clockB.Advance(59 * time.Minute)
	if o := b.Resolve(ctx, "x1"); !o.Hit || upB.callsFor("x1") != 0 {
		t.Fatalf("B at +59m: got %+v; want a hit from the L2", o)
	}
	clockB.Advance(2 * time.Minute)
	if o := b.Resolve(ctx, "x1"); o.Err != nil || o.Hit || upB.callsFor("x1") != 1 {
		t.Fatalf("B at +61m: got %+v after %d provider calls; want the record expired everywhere and fetched", o, upB.callsFor("x1"))
	}
}

func TestL2ErrorsAreMisses(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	b, upB, _ := sharedResolver(t, srv, Config{})
	srv.Stop()
	out, st := b.ResolveMany(ctx, []string{"x1", "nf-1"})
	if st.Fetched != 2 || st.Failed != 0 || out[0].Err != nil || out[1].Status != locapi.NotFound {
		t.Fatalf("with Redis down: got %+v, %+v; want both fetched from the provider", st, out)
	}
	if o := b.Resolve(ctx, "x2"); o.Err != nil || upB.callsFor("x2") != 1 {
		t.Fatalf("Resolve with Redis down: got %+v; want it fetched", o)
	}
	if b.m.l2Errors.Load() == 0 || testutil.ToFloat64(b.m.l2StoreErrors) == 0 {
		t.Errorf("L2 errors %d, store errors %v; want both counted", b.m.l2Errors.Load(), testutil.ToFloat64(b.m.l2StoreErrors))
	}
}

func TestL2IgnoresForeignValues(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	b, upB, _ := sharedResolver(t, srv, Config{})
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, DisableIdentity: true})
	defer rdb.Close()
	good, err := encodeL2(mustEntry(t, "x0"), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	otherID, _ := json.Marshal(record("someone-else"))
	tests := []struct {
		name string
		val  []byte
	}{
		{"another version", append([]byte{9}, good[1:]...)},
		{"another ID's record", append(append([]byte(nil), good[:l2HeaderSize]...), otherID...)},
		{"corrupt JSON", append(append([]byte(nil), good[:l2HeaderSize]...), `{"id":`...)},
		{"unknown status", append([]byte{l2Version, 42}, good[2:]...)},
		{"found without a record", good[:l2HeaderSize]},
		{"expired", mustEncode(t, "x0", time.Now().Add(-time.Minute))},
		{"too short", []byte{l2Version}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := "x" + string(rune('a'+i))
			if err := rdb.Set(ctx, cluster.DefaultPrefix+"rec:"+id, tt.val, time.Hour).Err(); err != nil {
				t.Fatal(err)
			}
			o := b.Resolve(ctx, id)
			if o.Err != nil || o.Status != locapi.Found || o.Record.ID != id || upB.callsFor(id) != 1 {
				t.Fatalf("got %+v after %d provider calls; want the provider's answer", o, upB.callsFor(id))
			}
		})
	}
}

func mustEntry(t *testing.T, id string) *Entry {
	t.Helper()
	e, err := newEntry(locapi.Result{Status: locapi.Found, Record: record(id)})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func mustEncode(t *testing.T, id string, expires time.Time) []byte {
	t.Helper()
	b, err := encodeL2(mustEntry(t, id), expires)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
