package duckfn_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/snowgate/snowgate/cache"
	"github.com/snowgate/snowgate/duckfn"
	"github.com/snowgate/snowgate/sim"
)

// concurrent wraps a Resolver and records the most ResolveMany calls, that
// is chunks, that were ever running at once.
type concurrent struct {
	next        duckfn.Resolver
	now, most   atomic.Int64
	calls, rows atomic.Int64
}

func (c *concurrent) ResolveMany(ctx context.Context, ids []string) ([]cache.Outcome, cache.Stats) {
	n := c.now.Add(1)
	defer c.now.Add(-1)
	for m := c.most.Load(); n > m && !c.most.CompareAndSwap(m, n); m = c.most.Load() {
	}
	c.calls.Add(1)
	c.rows.Add(int64(len(ids)))
	return c.next.ResolveMany(ctx, ids)
}

// A query DuckDB runs on several threads calls the function from each of
// them at once; they all draw on the one client, so the provider's limit
// holds and each distinct ID is fetched once.
func TestThreadsShareOneBudget(t *testing.T) {
	const rate = 200
	// Half a second of provider burst: with the simulator in this process,
	// a starved machine can hand it requests the client paced apart all at
	// once. The client keeps its default burst of 1.
	var res *concurrent
	e := newEnvWith(t, sim.Config{Seed: 1, Rate: rate, Burst: rate / 2, Latency: 5 * time.Millisecond}, duckfn.Options{}, rate,
		func(r duckfn.Resolver) duckfn.Resolver { res = &concurrent{next: r}; return res })
	s := e.sim
	// Four row groups of 122,880 rows, so DuckDB's scan has work for four
	// threads; each group has 120 IDs of its own, all of them in every
	// chunk, so the threads' first chunks ask the one limiter for 480
	// distinct IDs (2.4 s at the rate) at once.
	const groups, group, perGroup = 4, 122_880, 120
	const rows, distinct = groups * group, groups * perGroup
	for _, q := range []string{
		`SET threads = 4`,
		fmt.Sprintf(`CREATE TABLE ids AS SELECT 'T' || (i // %d) || '-' || (i %% %d) AS id FROM range(%d) t(i)`, group, perGroup, rows),
	} {
		if _, err := e.db.ExecContext(t.Context(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	s.Reset()
	var n, answered int
	q := `SELECT count(*), count(resolve_location(id)) FROM ids`
	if err := e.db.QueryRowContext(t.Context(), q).Scan(&n, &answered); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d chunks of %d rows, at most %d at once; simulator: %d requests, %d answered 429, max %d in any 1s",
		res.calls.Load(), res.rows.Load(), res.most.Load(), s.Total(), s.Status(429), s.MaxInWindow(time.Second))
	if n != rows || answered != rows {
		t.Errorf("got %d rows, %d answered; want %d and %d (every ID is found)", n, answered, rows, rows)
	}
	if got := res.rows.Load(); got != rows {
		t.Errorf("the function was given %d rows; want %d", got, rows)
	}
	if got := res.most.Load(); got < 2 {
		t.Errorf("at most %d chunk(s) ran at once; want several: DuckDB ran the function on one thread", got)
	}
	if got := s.Total(); got != distinct {
		t.Errorf("provider got %d requests; want %d, one per distinct ID", got, distinct)
	}
	if got := s.Status(429); got != 0 {
		t.Errorf("provider answered %d requests 429; want 0", got)
	}
}
