package cluster_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/snowgate/snowgate/cluster"
	"github.com/snowgate/snowgate/cluster/redistest"
)

// newClient returns a Client on srv, closed when the test ends. Unless the
// test sets one, the timeout is long: the default 100 ms would take a
// starved machine's slow round trip for an outage.
func newClient(t *testing.T, srv *redistest.Server, cfg cluster.Config) *cluster.Client {
	t.Helper()
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	c, err := cluster.New(srv.URL, cfg, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// raw is a plain go-redis client, to look at and tamper with the keys.
func raw(t *testing.T, srv *redistest.Server) *redis.Client {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, DisableIdentity: true})
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

func TestNewRejectsBadURLsWithoutEchoingSecrets(t *testing.T) {
	tests := []struct{ name, url, want string }{
		{"not redis", "http://u:s3cret@127.0.0.1:6379", "want redis://"},
		{"no host", "redis://", "want redis://"},
		{"bad database", "redis://u:s3cret@127.0.0.1:6379/db", "invalid database"},
		{"unparsable", "redis://u:s3cret@[::1", "want redis://"},
		{"unknown option", "redis://:s3cret@127.0.0.1:6379/0?bogus=1", "unexpected option"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := cluster.New(tt.url, cluster.Config{}, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "s3cret") {
				t.Fatalf("got %v; want an error containing %q and not the password", err, tt.want)
			}
		})
	}
	if _, err := cluster.New("redis://127.0.0.1:1", cluster.Config{Timeout: -time.Second}, nil); err == nil {
		t.Error("negative timeout: got no error; want one")
	}
}

func TestReserve(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	// One request per 10 s: the waits are booked, never slept, and a stall
	// of up to 2 s between two steps leaves them in range.
	const sec = time.Second
	type step struct {
		maxWait     time.Duration // passed to Reserve
		wantOK      bool
		least, most time.Duration // the wait expected
	}
	tests := []struct {
		name  string
		rate  float64
		burst int
		steps []step
	}{
		{"burst then one per interval", 0.1, 3, []step{
			{time.Hour, true, 0, 0}, {time.Hour, true, 0, 0}, {time.Hour, true, 0, 0},
			{time.Hour, true, 8 * sec, 10 * sec}, {time.Hour, true, 18 * sec, 20 * sec},
		}},
		{"a wait past maxWait books nothing", 0.1, 1, []step{
			{time.Hour, true, 0, 0},
			{time.Second, false, 8 * sec, 10 * sec},
			{time.Second, false, 8 * sec, 10 * sec},
			{time.Hour, true, 8 * sec, 10 * sec},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newClient(t, srv, cluster.Config{Prefix: t.Name() + ":"}).Budget("provider")
			for i, s := range tt.steps {
				wait, ok, err := b.Reserve(ctx, tt.rate, tt.burst, s.maxWait)
				if err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				if ok != s.wantOK || wait < s.least || wait > s.most {
					t.Fatalf("step %d: got wait %v ok %v; want ok %v and a wait in [%v, %v]", i, wait, ok, s.wantOK, s.least, s.most)
				}
			}
		})
	}
	t.Run("bad arguments", func(t *testing.T) {
		b := newClient(t, srv, cluster.Config{}).Budget("p")
		for _, r := range []struct {
			rate  float64
			burst int
		}{{0, 1}, {-1, 1}, {10, 0}} {
			if _, _, err := b.Reserve(ctx, r.rate, r.burst, time.Second); err == nil {
				t.Errorf("Reserve(rate %v, burst %d): got no error; want one", r.rate, r.burst)
			}
		}
	})
}

func TestBudgetIsSharedByProviderAndPrefix(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	a := newClient(t, srv, cluster.Config{})
	b := newClient(t, srv, cluster.Config{})
	other := newClient(t, srv, cluster.Config{Prefix: "other:"})
	if _, ok, err := a.Budget("p").Reserve(ctx, 1, 1, time.Hour); !ok || err != nil {
		t.Fatalf("first reservation: ok %v, %v", ok, err)
	}
	tests := []struct {
		name     string
		budget   *cluster.Budget
		wantWait bool
	}{
		{"same provider, other client", b.Budget("p"), true},
		{"other provider", b.Budget("q"), false},
		{"same provider, other prefix", other.Budget("p"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wait, _, err := tt.budget.Reserve(ctx, 1, 1, 0)
			if err != nil {
				t.Fatal(err)
			}
			if got := wait > 0; got != tt.wantWait {
				t.Fatalf("got wait %v; want a wait: %v", wait, tt.wantWait)
			}
		})
	}
}

func TestLowerAndLowered(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	b := newClient(t, srv, cluster.Config{}).Budget("p")
	if _, ok, err := b.Lowered(ctx); ok || err != nil {
		t.Fatalf("before any cut: got ok %v, %v; want no back-off", ok, err)
	}
	steps := []struct {
		name     string
		rate     float64
		min, max float64 // the rate in effect afterwards
	}{
		{"a cut", 500, 500, 510},
		{"a higher cut changes nothing", 800, 500, 510},
		{"a lower cut lowers", 400, 400, 410},
	}
	// A ten-minute recovery climbs 1/s or less: a stall of seconds between
	// two calls keeps the rate in range.
	for _, s := range steps {
		if err := b.Lower(ctx, s.rate, 1000, 10*time.Minute); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		r, ok, err := b.Lowered(ctx)
		if err != nil || !ok || r < s.min || r > s.max {
			t.Fatalf("%s: got %v, %v, %v; want a rate in [%v, %v]", s.name, r, ok, err, s.min, s.max)
		}
	}
	// The rate climbs back: 600/s over ten minutes is 1/s per second.
	first, _, _ := b.Lowered(ctx)
	if err := raw(t, srv).PExpire(ctx, "snowgate:budget:p:lowered", 5*time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if half, _, _ := b.Lowered(ctx); half < 695 || half > 705 || half <= first {
		t.Fatalf("half way through the recovery: got %v; want 700 (up from %v)", half, first)
	}
	for _, bad := range []struct{ rate, ceiling float64 }{{0, 10}, {20, 10}} {
		if err := b.Lower(ctx, bad.rate, bad.ceiling, time.Second); err == nil {
			t.Errorf("Lower(%v, %v): got no error; want one", bad.rate, bad.ceiling)
		}
	}
}

func TestRecords(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	r := newClient(t, srv, cluster.Config{}).Records()
	other := newClient(t, srv, cluster.Config{Prefix: "other:"}).Records()
	if err := r.Set(ctx, "a", []byte("A"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := r.Set(ctx, "weird id/ with spaces", []byte{0, 1, 2}, time.Minute); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		rec  *cluster.Records
		ids  []string
		want [][]byte
	}{
		{"hits and misses in order", r, []string{"x", "a", "weird id/ with spaces", "a"}, [][]byte{nil, []byte("A"), {0, 1, 2}, []byte("A")}},
		{"another prefix sees nothing", other, []string{"a"}, [][]byte{nil}},
		{"no ids", r, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.rec.GetMany(ctx, tt.ids)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d values; want %d", len(got), len(tt.want))
			}
			for i := range got {
				if !bytes.Equal(got[i], tt.want[i]) || (got[i] == nil) != (tt.want[i] == nil) {
					t.Errorf("value %d: got %q; want %q", i, got[i], tt.want[i])
				}
			}
		})
	}
	if ttl := raw(t, srv).PTTL(ctx, "snowgate:rec:a").Val(); ttl <= 50*time.Second || ttl > time.Minute {
		t.Errorf("TTL of a record: got %v; want about a minute", ttl)
	}
}

func TestJobs(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	const lease, ttl = time.Minute, time.Hour
	a := newClient(t, srv, cluster.Config{}).Jobs()
	b := newClient(t, srv, cluster.Config{}).Jobs()
	rdb := raw(t, srv)

	t.Run("claim, follow, keep, replay", func(t *testing.T) {
		if ans, running, err := a.Claim(ctx, "k1", lease); ans != nil || running || err != nil {
			t.Fatalf("A claims: got %q, %v, %v; want the claim", ans, running, err)
		}
		if ans, running, err := a.Claim(ctx, "k1", lease); ans != nil || running || err != nil {
			t.Fatalf("A claims again: got %q, %v, %v; want its own claim back", ans, running, err)
		}
		if ans, running, err := b.Claim(ctx, "k1", lease); ans != nil || !running || err != nil {
			t.Fatalf("B claims: got %q, %v, %v; want running", ans, running, err)
		}
		if st, _, running, err := b.Peek(ctx, "k1", 0); st != 0 || !running || err != nil {
			t.Fatalf("B peeks: got %d, %v, %v; want running", st, running, err)
		}
		if kept, err := a.Release(ctx, "k1", 200, []byte(`{"data":[]}`), true, ttl); !kept || err != nil {
			t.Fatalf("A releases with keep: got %v, %v; want kept", kept, err)
		}
		if st, ans, running, err := b.Peek(ctx, "k1", 0); st != 200 || string(ans) != `{"data":[]}` || running || err != nil {
			t.Fatalf("B peeks: got %d %q %v %v; want 200 and the answer", st, ans, running, err)
		}
		if ans, _, err := b.Claim(ctx, "k1", lease); string(ans) != `{"data":[]}` || err != nil {
			t.Fatalf("B claims a done batch: got %q, %v; want the kept answer", ans, err)
		}
	})
	t.Run("an answer is kept only when asked or wanted", func(t *testing.T) {
		for _, tt := range []struct {
			key        string
			keep, want bool
		}{{"k2", false, false}, {"k3", false, true}, {"k4", true, false}} {
			if _, _, err := a.Claim(ctx, tt.key, lease); err != nil {
				t.Fatal(err)
			}
			if tt.want {
				if _, _, _, err := b.Peek(ctx, tt.key, time.Minute); err != nil {
					t.Fatal(err)
				}
			}
			kept, err := a.Release(ctx, tt.key, 200, []byte("x"), tt.keep, ttl)
			if err != nil || kept != (tt.keep || tt.want) {
				t.Errorf("%s (keep %v, wanted %v): got kept %v, %v", tt.key, tt.keep, tt.want, kept, err)
			}
			st, _, running, _ := b.Peek(ctx, tt.key, 0)
			if running || (st == 200) != kept {
				t.Errorf("%s after release: got status %d running %v; want kept %v and no claim", tt.key, st, running, kept)
			}
		}
	})
	t.Run("a failed answer is polled but worked on again", func(t *testing.T) {
		if _, _, err := a.Claim(ctx, "k5", lease); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Release(ctx, "k5", 503, []byte("provider down"), true, ttl); err != nil {
			t.Fatal(err)
		}
		if st, ans, _, _ := b.Peek(ctx, "k5", 0); st != 503 || string(ans) != "provider down" {
			t.Fatalf("peek: got %d %q; want the failure", st, ans)
		}
		if ans, running, err := b.Claim(ctx, "k5", lease); ans != nil || running || err != nil {
			t.Fatalf("claim after a failure: got %q, %v, %v; want the claim", ans, running, err)
		}
	})
	t.Run("a lapsed claim is taken over; renew remakes a lost one", func(t *testing.T) {
		if _, _, err := a.Claim(ctx, "k6", lease); err != nil {
			t.Fatal(err)
		}
		if err := rdb.FlushAll(ctx).Err(); err != nil { // the claim lapses, or Redis restarted
			t.Fatal(err)
		}
		if err := a.Renew(ctx, "k6", lease); err != nil {
			t.Fatal(err)
		}
		if _, running, _ := b.Claim(ctx, "k6", lease); !running {
			t.Fatal("after A renewed a lost claim: B got the claim; want running")
		}
		if err := rdb.FlushAll(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		if _, running, _ := b.Claim(ctx, "k6", lease); running {
			t.Fatal("claim after the owner's lapsed: got running; want the claim")
		}
		if err := a.Renew(ctx, "k6", lease); err != nil {
			t.Fatal(err)
		}
		if _, running, _ := a.Claim(ctx, "k6", lease); !running {
			t.Fatal("A renewing B's claim took it over; want B to keep it")
		}
	})
	t.Run("keys are opaque", func(t *testing.T) {
		key := "/resolve_location " + strings.Repeat("{batch}:1:1\x00", 100)
		if _, _, err := a.Claim(ctx, key, lease); err != nil {
			t.Fatal(err)
		}
		if _, running, _ := b.Claim(ctx, key, lease); !running {
			t.Fatal("long key with braces: got the claim twice")
		}
	})
}

// lockedBuffer is a log destination safe for concurrent writes.
type lockedBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// waitUp calls Ping until Redis is taken as up again, for at most d.
func waitUp(t *testing.T, c *cluster.Client, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for c.Ping(context.Background()) != nil {
		if time.Now().After(deadline) {
			t.Fatalf("Redis not taken as up within %v", d)
		}
		time.Sleep(5 * time.Millisecond) // the probe interval is what is waited for
	}
}

func TestOutageAndRecovery(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	var logs lockedBuffer
	reg := prometheus.NewRegistry()
	// A killed Redis refuses connections at once: the outage does not wait
	// on Timeout, which is long so that a slow machine's round trip is not
	// taken for a second outage.
	const timeout = 5 * time.Second
	c, err := cluster.New(srv.URL, cluster.Config{
		Timeout: timeout, RetryEvery: 20 * time.Millisecond, Grace: time.Hour,
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
	}, reg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	jobs, recs := c.Jobs(), c.Records()
	if err := c.Ping(ctx); err != nil || !c.Up() {
		t.Fatalf("ping: %v, up %v", err, c.Up())
	}
	gen := jobs.Generation()

	srv.Stop()
	if _, err := recs.GetMany(ctx, []string{"a"}); err == nil {
		t.Fatal("GetMany with Redis down: got no error")
	}
	start := time.Now()
	for range 100 {
		if _, err := recs.GetMany(ctx, []string{"a"}); !errors.Is(err, cluster.ErrUnavailable) {
			t.Fatalf("while down: got %v; want ErrUnavailable", err)
		}
	}
	// One waiting on Redis would take the timeout; 100 that do not, under
	// a second even when the machine is starved.
	if d := time.Since(start); d > time.Second {
		t.Errorf("100 operations while down took %v; want them to fail at once, not wait up to %v each", d, timeout)
	}
	if c.Up() || metricValue(t, reg, "snowgate_redis_up") != 0 {
		t.Error("while down: Up() or snowgate_redis_up says up")
	}

	srv.Restart()
	waitUp(t, c, 30*time.Second)
	if jobs.Generation() == gen {
		t.Error("generation did not change after an outage")
	}
	// Redis restarted empty: an unknown batch may be one not re-published yet.
	if _, _, running, err := jobs.Peek(ctx, "never-seen", 0); !running || err != nil {
		t.Errorf("unknown batch within the grace: got running %v, %v; want running", running, err)
	}
	out := logs.String()
	if n := strings.Count(out, "redis unreachable"); n != 1 {
		t.Errorf("got %d 'unreachable' lines; want 1:\n%s", n, out)
	}
	if n := strings.Count(out, "redis reachable again"); n != 1 {
		t.Errorf("got %d 'reachable again' lines; want 1:\n%s", n, out)
	}
	if got := metricValue(t, reg, "snowgate_redis_fallbacks_total"); got != 1 {
		t.Errorf("snowgate_redis_fallbacks_total: got %v; want 1", got)
	}
}

func TestSlowRedisCountsAsDown(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	const timeout, pause = time.Second, time.Minute
	c := newClient(t, srv, cluster.Config{Timeout: timeout, RetryEvery: 20 * time.Millisecond})
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	// Writes are held for a minute: Redis is slow. Only the timeout can end
	// the Set before the pause does, and reads (UNPAUSE, Ping) still run.
	rdb := raw(t, srv)
	if err := rdb.Do(ctx, "CLIENT", "PAUSE", pause.Milliseconds(), "WRITE").Err(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err := c.Records().Set(ctx, "a", []byte("A"), time.Minute)
	if el := time.Since(start); err == nil || el < timeout || el > pause/2 {
		t.Fatalf("Set against a paused Redis: got %v after %v; want a timeout after %v", err, el, timeout)
	}
	if c.Up() {
		t.Fatal("after a timeout: Up() is true")
	}
	if err := rdb.Do(ctx, "CLIENT", "UNPAUSE").Err(); err != nil {
		t.Fatal(err)
	}
	waitUp(t, c, 30*time.Second)
}

func TestCallerCancelDoesNotMarkDown(t *testing.T) {
	srv := redistest.Start(t)
	c := newClient(t, srv, cluster.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Ping(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("ping with a cancelled context: got %v; want context.Canceled", err)
	}
	if !c.Up() {
		t.Fatal("a caller's cancellation marked Redis down")
	}
}

// metricValue reads a registered single-series gauge or counter.
func metricValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			m := mf.GetMetric()[0]
			return m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	t.Fatalf("metric %s is not registered", name)
	return 0
}

// BenchmarkReserve is one request's cost in the shared budget: a script
// run in Redis over loopback.
func BenchmarkReserve(b *testing.B) {
	srv := redistest.Start(b)
	c, err := cluster.New(srv.URL, cluster.Config{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	budget, ctx := c.Budget("bench"), context.Background()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, _, err := budget.Reserve(ctx, 1e9, 1, time.Hour); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkGetMany is the shared cache's side of a batch of 4,096 misses
// in the LRU, all hits in Redis: one MGET.
func BenchmarkGetMany(b *testing.B) {
	srv := redistest.Start(b)
	c, err := cluster.New(srv.URL, cluster.Config{Timeout: time.Second}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	recs, ctx := c.Records(), context.Background()
	ids := make([]string, 4096)
	val := bytes.Repeat([]byte("x"), 250) // about a record's size
	for i := range ids {
		ids[i] = "bench-" + strconv.Itoa(i)
		if err := recs.Set(ctx, ids[i], val, time.Hour); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for b.Loop() {
		if _, err := recs.GetMany(ctx, ids); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(ids)), "ns/id")
}
