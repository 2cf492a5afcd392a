package duckdb

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/snowgate/snowgate/cache"
	"github.com/snowgate/snowgate/loader"
	"github.com/snowgate/snowgate/locapi"
)

// testDB is a DuckDB file in the test's temp dir.
type testDB struct{ path string }

func newTestDB(t testing.TB) *testDB {
	t.Helper()
	return &testDB{path: filepath.Join(t.TempDir(), "test.duckdb")}
}

// exec runs statements on a short-lived connection: DuckDB lets one process
// open a file through one database handle only, so the helper must be
// closed before the warehouse opens it.
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

// queryStrings returns the first column of every row as strings ("NULL" for
// nil).
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

func mustTables(t testing.TB) loader.Tables {
	t.Helper()
	tb, err := loader.NewTables("", "", "")
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

func openTest(t testing.TB, path string, tables loader.Tables) *Warehouse {
	t.Helper()
	d, err := Open(context.Background(), path, tables)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	if err := d.Setup(context.Background()); err != nil {
		t.Fatal(err)
	}
	return d
}

var testNow = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func fakeRecord(id string) *locapi.Record {
	label, city := "L-"+id, "City"
	lat, lon := float64(len(id)), -1.5
	return &locapi.Record{ID: id, Label: &label, CityLabel: &city, Latitude: &lat, Longitude: &lon}
}

func foundRow(id string) loader.Row {
	return loader.Row{ID: id, Outcome: loader.OutcomeFound, Record: fakeRecord(id), ResolvedAt: testNow}
}

// foundResolver finds every ID, for runs where only the warehouse matters.
var foundResolver = loader.ResolverFunc(func(ctx context.Context, id string) cache.Outcome {
	return cache.Outcome{Entry: &cache.Entry{Status: locapi.Found, Record: fakeRecord(id)}}
})
