package loader_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/snowgate/snowgate/cache"
	. "github.com/snowgate/snowgate/loader"
	"github.com/snowgate/snowgate/loader/duckdb"
	"github.com/snowgate/snowgate/locapi"
)

// mixedSource is a source with every kind of ID, duplicates and a NULL.
const mixedSource = `CREATE TABLE MASTER_TABLE AS
SELECT ID FROM (VALUES ('a1'), ('a2'), ('a3'), ('nf1'), ('nl1'), ('bad1'), ('inv1'), (''), ('a1'), ('nf1'), (NULL), ('a4'), ('a5')) v(ID)`

func runLoader(t *testing.T, ctx context.Context, wh Warehouse, res Resolver, cfg Config) Summary {
	t.Helper()
	l, err := New(wh, res, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	sum, err := l.Run(ctx)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return sum
}

func TestRunResolvesEachIDOnceAndRecordsEveryOutcome(t *testing.T) {
	tdb := newTestDB(t)
	tdb.exec(t, mixedSource)
	d := openTest(t, tdb.path, mustTables(t))
	res := newFakeResolver()
	var progress []Progress
	cfg := Config{Concurrency: 3, PageSize: 2, CommitRows: 2, OnProgress: func(p Progress) { progress = append(progress, p) }}

	sum := runLoader(t, context.Background(), d, res, cfg)

	want := Summary{Pending: 10, Read: 10, Committed: 10, Found: 5, NotFound: 1, NoLocation: 1, Failed: 3}
	got := sum
	got.Duration = 0
	if got != want {
		t.Errorf("summary = %+v; want %+v", got, want)
	}
	for id, n := range res.callCounts() {
		if n != 1 {
			t.Errorf("resolver calls for %q = %d; want 1", id, n)
		}
	}
	if ids := slices.Sorted(maps.Keys(res.callCounts())); len(ids) != 10 {
		t.Errorf("resolved %q; want the 10 distinct non-null IDs", ids)
	}
	checks := []struct{ q, want string }{
		{`SELECT string_agg("ID" || '=' || "LABEL", ',' ORDER BY "ID") FROM STANDARDIZED_LOCATIONS`, "a1=L-a1,a2=L-a2,a3=L-a3,a4=L-a4,a5=L-a5"},
		{`SELECT string_agg("ID" || '=' || "OUTCOME" || '/' || coalesce("LABEL", '-'), ',' ORDER BY "ID") FROM STANDARDIZED_LOCATIONS_MISSES`, "nf1=not_found/-,nl1=no_location/L-nl1"},
		{`SELECT string_agg('[' || "ID" || ']', ',' ORDER BY "ID") FROM STANDARDIZED_LOCATIONS_FAILURES`, "[],[bad1],[inv1]"},
		{`SELECT "REASON" FROM STANDARDIZED_LOCATIONS_FAILURES WHERE "ID" = 'inv1'`, `resolve "inv1": invalid id`},
	}
	for _, c := range checks {
		if got := queryStrings(t, d.db, c.q); len(got) != 1 || got[0] != c.want {
			t.Errorf("%s = %q; want %q", c.q, got, c.want)
		}
	}
	if len(progress) == 0 || progress[len(progress)-1].Done != 10 || progress[len(progress)-1].Committed != 10 {
		t.Errorf("last progress = %+v; want Done 10, Committed 10", progress)
	}

	t.Run("second run calls nothing", func(t *testing.T) {
		again := newFakeResolver()
		sum := runLoader(t, context.Background(), d, again, cfg)
		if sum.Pending != 0 || sum.Read != 0 || len(again.callCounts()) != 0 {
			t.Fatalf("second run: summary %+v, calls %v; want nothing pending and no calls", sum, again.callCounts())
		}
	})
	t.Run("retry failed replays only failures", func(t *testing.T) {
		again := newFakeResolver()
		c := cfg
		c.RetryFailed = true
		sum := runLoader(t, context.Background(), d, again, c)
		if got := slices.Sorted(maps.Keys(again.callCounts())); !slices.Equal(got, []string{"", "bad1", "inv1"}) || sum.Failed != 3 {
			t.Fatalf("retry-failed resolved %q (failed %d); want [\"\" bad1 inv1] (failed 3)", got, sum.Failed)
		}
		attempts := queryStrings(t, d.db, `SELECT DISTINCT "ATTEMPTS" FROM STANDARDIZED_LOCATIONS_FAILURES`)
		if !slices.Equal(attempts, []string{"2"}) {
			t.Fatalf("attempts = %q; want [2]", attempts)
		}
	})
}

func TestRunSelectionOptions(t *testing.T) {
	tests := []struct {
		name      string
		cfg       Config
		wantCalls int
		wantSum   Summary
	}{
		{"limit", Config{Limit: 4, PageSize: 3}, 4, Summary{Pending: 4, Read: 4, Committed: 4}},
		{"dry run counts and calls nothing", Config{DryRun: true}, 0, Summary{Pending: 10, DryRun: true}},
		{"dry run with limit", Config{DryRun: true, Limit: 3}, 0, Summary{Pending: 3, DryRun: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tdb := newTestDB(t)
			tdb.exec(t, mixedSource)
			d := openTest(t, tdb.path, mustTables(t))
			res := newFakeResolver()
			sum := runLoader(t, context.Background(), d, res, tt.cfg)
			if n := len(res.callCounts()); n != tt.wantCalls {
				t.Errorf("resolver calls = %d; want %d", n, tt.wantCalls)
			}
			got := Summary{Pending: sum.Pending, Read: sum.Read, Committed: sum.Committed, DryRun: sum.DryRun}
			if got != tt.wantSum {
				t.Errorf("summary = %+v; want %+v", got, tt.wantSum)
			}
			stored := queryStrings(t, d.db, `SELECT (SELECT count(*) FROM STANDARDIZED_LOCATIONS) + (SELECT count(*) FROM STANDARDIZED_LOCATIONS_MISSES) + (SELECT count(*) FROM STANDARDIZED_LOCATIONS_FAILURES)`)
			if want := fmt.Sprint(tt.wantSum.Committed); stored[0] != want {
				t.Errorf("rows stored = %s; want %s", stored[0], want)
			}
		})
	}
}

func TestRunEmptySourceIsANoOp(t *testing.T) {
	tdb := newTestDB(t)
	tdb.exec(t, `CREATE TABLE MASTER_TABLE (ID BIGINT)`)
	d := openTest(t, tdb.path, mustTables(t))
	res := newFakeResolver()
	sum := runLoader(t, context.Background(), d, res, Config{})
	if sum.Pending != 0 || sum.Read != 0 || sum.Committed != 0 || len(res.callCounts()) != 0 {
		t.Fatalf("summary %+v, calls %v; want all zero", sum, res.callCounts())
	}
}

// TestRunInterruptFinishesInFlight cancels while every worker holds a lookup:
// those are committed, nothing else starts, and a second run does the rest
// without repeating any ID.
func TestRunInterruptFinishesInFlight(t *testing.T) {
	tdb := newTestDB(t)
	tdb.exec(t, `CREATE TABLE MASTER_TABLE AS SELECT 'a' || lpad(CAST(i AS VARCHAR), 3, '0') AS ID FROM range(50) r(i)`)
	d := openTest(t, tdb.path, mustTables(t))
	res := newFakeResolver()
	res.block = make(chan struct{})
	res.started = make(chan string, 100)
	ctx, cancel := context.WithCancel(context.Background())
	const workers = 4
	done := make(chan Summary)
	go func() { done <- runLoader(t, ctx, d, res, Config{Concurrency: workers, PageSize: 7}) }()
	for range workers {
		<-res.started
	}
	cancel()
	close(res.block)
	sum := <-done

	if !sum.Interrupted || sum.Committed != workers || sum.Read != sum.Committed+sum.Abandoned {
		t.Fatalf("summary = %+v; want Interrupted, Committed %d, Read = Committed + Abandoned", sum, workers)
	}
	res.block, res.started = nil, nil
	sum2 := runLoader(t, context.Background(), d, res, Config{Concurrency: workers})
	if sum2.Committed != 50-workers {
		t.Fatalf("resumed run committed %d; want %d", sum2.Committed, 50-workers)
	}
	calls := res.callCounts()
	for id, n := range calls {
		if n != 1 {
			t.Errorf("calls for %s = %d; want 1", id, n)
		}
	}
	if len(calls) != 50 {
		t.Errorf("IDs resolved = %d; want 50", len(calls))
	}
}

func TestRunDrainTimeoutAbandonsWithoutRecordingFailures(t *testing.T) {
	tdb := newTestDB(t)
	tdb.exec(t, `CREATE TABLE MASTER_TABLE AS SELECT 'a' || CAST(i AS VARCHAR) AS ID FROM range(20) r(i)`)
	d := openTest(t, tdb.path, mustTables(t))
	res := newFakeResolver()
	res.block = make(chan struct{}) // never released
	res.started = make(chan string, 100)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan Summary)
	go func() {
		done <- runLoader(t, ctx, d, res, Config{Concurrency: 3, DrainTimeout: 20 * time.Millisecond})
	}()
	for range 3 {
		<-res.started
	}
	cancel()
	sum := <-done
	if !sum.Interrupted || sum.Committed != 0 || sum.Abandoned != sum.Read || sum.Read < 3 {
		t.Fatalf("summary = %+v; want Interrupted, nothing committed, all read abandoned", sum)
	}
	if n := queryStrings(t, d.db, `SELECT count(*) FROM STANDARDIZED_LOCATIONS_FAILURES`); n[0] != "0" {
		t.Fatalf("failures recorded = %s; want 0 (cut-short lookups stay pending)", n[0])
	}
}

// failingWarehouse wraps a Warehouse and fails chosen calls.
type failingWarehouse struct {
	Warehouse
	pendingCalls, failPendingAt int
	failCommit                  bool
}

func (f *failingWarehouse) Pending(ctx context.Context, after string, limit int, sel Selection) ([]string, error) {
	f.pendingCalls++
	if f.pendingCalls == f.failPendingAt {
		return nil, errors.New("pending ids: connection lost")
	}
	return f.Warehouse.Pending(ctx, after, limit, sel)
}

func (f *failingWarehouse) Commit(ctx context.Context, rows []Row) error {
	if f.failCommit {
		return errors.New("commit 1 rows: disk full")
	}
	return f.Warehouse.Commit(ctx, rows)
}

func TestRunWarehouseErrors(t *testing.T) {
	tests := []struct {
		name          string
		wh            func(Warehouse) *failingWarehouse
		wantErr       string
		wantCommitted int64
	}{
		{"commit fails", func(w Warehouse) *failingWarehouse { return &failingWarehouse{Warehouse: w, failCommit: true} }, "disk full", 0},
		{"second page fails after the first is committed", func(w Warehouse) *failingWarehouse {
			return &failingWarehouse{Warehouse: w, failPendingAt: 2}
		}, "connection lost", 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tdb := newTestDB(t)
			tdb.exec(t, `CREATE TABLE MASTER_TABLE AS SELECT 'a' || CAST(i AS VARCHAR) AS ID FROM range(30) r(i)`)
			d := openTest(t, tdb.path, mustTables(t))
			l, err := New(tt.wh(d), newFakeResolver(), Config{Concurrency: 2, PageSize: 5, CommitRows: 1}, nil)
			if err != nil {
				t.Fatal(err)
			}
			sum, err := l.Run(context.Background())
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Run error = %v; want one mentioning %q", err, tt.wantErr)
			}
			if sum.Committed != tt.wantCommitted || sum.Read != sum.Committed+sum.Abandoned {
				t.Fatalf("summary = %+v; want Committed %d and Read = Committed + Abandoned", sum, tt.wantCommitted)
			}
		})
	}
}

func TestRunRecordsBadResolverAnswersAsFailures(t *testing.T) {
	answers := map[string]cache.Outcome{
		"nil":     {},
		"norec":   {Entry: &cache.Entry{Status: locapi.Found}},
		"unknown": {Entry: &cache.Entry{Status: 42}},
	}
	tdb := newTestDB(t)
	tdb.exec(t, `CREATE TABLE MASTER_TABLE AS SELECT * FROM (VALUES ('nil'), ('norec'), ('unknown')) v(ID)`)
	d := openTest(t, tdb.path, mustTables(t))
	res := ResolverFunc(func(ctx context.Context, id string) cache.Outcome { return answers[id] })
	sum := runLoader(t, context.Background(), d, res, Config{})
	if sum.Failed != 3 {
		t.Fatalf("failed = %d; want 3", sum.Failed)
	}
	got := queryStrings(t, d.db, `SELECT "ID" || ': ' || "REASON" FROM STANDARDIZED_LOCATIONS_FAILURES ORDER BY 1`)
	want := []string{
		"nil: resolver returned neither an answer nor an error",
		"norec: resolver answered found without a record",
		"unknown: resolver answered unknown status 42",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("failures = %q; want %q", got, want)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	d := &duckdb.Warehouse{}
	res := newFakeResolver()
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"negative concurrency", Config{Concurrency: -1}, "negative"},
		{"page size one", Config{PageSize: 1}, "page size"},
		{"retry and refresh", Config{RetryFailed: true, RefreshOlderThan: time.Hour}, "cannot be combined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(d, res, tt.cfg, nil); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New error = %v; want one mentioning %q", err, tt.want)
			}
		})
	}
	if _, err := New(nil, res, Config{}, nil); err == nil {
		t.Fatal("New with nil warehouse: got nil error; want one")
	}
}

// TestRunVia runs the whole loader through a gateway.
func TestRunVia(t *testing.T) {
	srv := NewFakeGateway(t)
	v, err := NewVia(srv.URL, ViaConfig{BatchSize: 50, InFlight: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	tdb := newTestDB(t)
	tdb.exec(t, `CREATE TABLE MASTER_TABLE AS SELECT (['a', 'nf', 'nl', 'err'])[1 + i % 4] || CAST(i AS VARCHAR) AS ID FROM range(400) r(i)`)
	d := openTest(t, tdb.path, mustTables(t))
	sum := runLoader(t, context.Background(), d, v, Config{Concurrency: 150})
	if sum.Found != 100 || sum.NotFound != 100 || sum.NoLocation != 100 || sum.Failed != 100 {
		t.Fatalf("summary = %+v; want 100 of each outcome", sum)
	}
	got := queryStrings(t, d.db, `SELECT "LABEL" FROM STANDARDIZED_LOCATIONS WHERE "ID" = 'a0'`)
	if len(got) != 1 || got[0] != "L-a0" {
		t.Fatalf("label of a0 = %q; want L-a0", got)
	}
}
