package loader_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/snowgate/snowgate/cache"
	. "github.com/snowgate/snowgate/loader"
	"github.com/snowgate/snowgate/loader/duckdb"
	"github.com/snowgate/snowgate/locapi"
)

// fakeResolver answers by the ID's prefix: "nf" not found, "nl" no
// location, "bad" a failure, "inv" an invalid ID; anything else is found
// with the label "L-<id>". It counts calls per ID.
type fakeResolver struct {
	mu    sync.Mutex
	calls map[string]int // guarded by mu
	// block, when set, is received from before each answer, so a test can
	// hold lookups in flight.
	block chan struct{}
	// started, when set, gets a value as each lookup starts.
	started chan string
}

func newFakeResolver() *fakeResolver { return &fakeResolver{calls: map[string]int{}} }

func (f *fakeResolver) Resolve(ctx context.Context, id string) cache.Outcome {
	f.mu.Lock()
	f.calls[id]++
	f.mu.Unlock()
	if f.started != nil {
		f.started <- id
	}
	if f.block != nil {
		select {
		case <-f.block:
		case <-ctx.Done():
			return cache.Outcome{Err: ctx.Err()}
		}
	}
	return fakeAnswer(id)
}

func fakeAnswer(id string) cache.Outcome {
	label := "L-" + id
	switch {
	case strings.HasPrefix(id, "nf"):
		return cache.Outcome{Entry: &cache.Entry{Status: locapi.NotFound}}
	case strings.HasPrefix(id, "nl"):
		return cache.Outcome{Entry: &cache.Entry{Status: locapi.NoLocation, Record: &locapi.Record{ID: id, Label: &label}}}
	case strings.HasPrefix(id, "bad"):
		return cache.Outcome{Err: errors.New("provider: 503 after 4 attempts")}
	case strings.HasPrefix(id, "inv"), id == "":
		return cache.Outcome{Err: fmt.Errorf("resolve %q: %w", id, locapi.ErrInvalidID)}
	}
	return cache.Outcome{Entry: &cache.Entry{Status: locapi.Found, Record: FakeRecord(id)}}
}

func (f *fakeResolver) callCounts() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]int, len(f.calls))
	for k, v := range f.calls {
		out[k] = v
	}
	return out
}

// testDB is a DuckDB file in the test's temp dir, set up and checked
// through short-lived handles (exec).
type testDB struct {
	path string
}

func newTestDB(t testing.TB) *testDB {
	t.Helper()
	path := filepath.Join(t.TempDir(), "test.duckdb")
	return &testDB{path: path}
}

// exec runs statements on a short-lived connection: DuckDB allows one
// process to open a file only through one database handle, so the helper
// must be closed before the warehouse opens it.
func (d *testDB) exec(t testing.TB, stmts ...string) {
	t.Helper()
	db, err := sql.Open("duckdb", d.path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, s := range stmts {
		if _, err := db.ExecContext(t.Context(), s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// query returns the first column of every row as strings ("NULL" for nil).
func queryStrings(t testing.TB, db *sql.DB, q string, args ...any) []string {
	t.Helper()
	rows, err := db.QueryContext(t.Context(), q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v any
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		if v == nil {
			out = append(out, "NULL")
		} else {
			out = append(out, fmt.Sprint(v))
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func mustTables(t testing.TB) Tables {
	t.Helper()
	tb, err := NewTables("", "", "")
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

// testWarehouse is a DuckDB warehouse with its handle at hand, for
// checking the tables while it is open.
type testWarehouse struct {
	*duckdb.Warehouse
	db *sql.DB
}

func openTest(t testing.TB, path string, tables Tables) testWarehouse {
	t.Helper()
	d, err := duckdb.Open(context.Background(), path, tables)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	if err := d.Setup(context.Background()); err != nil {
		t.Fatal(err)
	}
	return testWarehouse{Warehouse: d, db: d.DB()}
}
