package duckdb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/snowgate/snowgate/loader"
)

func TestDuckDBPendingPagesDistinctIDs(t *testing.T) {
	tests := []struct {
		name   string
		create string
		want   []string
	}{
		{"varchar with duplicates and null", `CREATE TABLE MASTER_TABLE AS SELECT * FROM (VALUES ('b'), ('a'), ('c'), ('a'), (NULL), ('d'), ('b'), (''), ('e')) v(ID)`,
			[]string{"", "a", "b", "c", "d", "e"}},
		{"integer ids read as text", `CREATE TABLE MASTER_TABLE AS SELECT CAST(i % 7 AS BIGINT) AS ID FROM range(20) r(i)`,
			[]string{"0", "1", "2", "3", "4", "5", "6"}},
		{"empty source", `CREATE TABLE MASTER_TABLE (ID VARCHAR)`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tdb := newTestDB(t)
			tdb.exec(t, tt.create)
			d := openTest(t, tdb.path, mustTables(t))
			got := readAllPending(t, d, 2, loader.Selection{})
			if !slices.Equal(got, tt.want) {
				t.Fatalf("pending = %q; want %q", got, tt.want)
			}
			n, err := d.CountPending(context.Background(), loader.Selection{})
			if err != nil || n != int64(len(tt.want)) {
				t.Fatalf("CountPending = %d, %v; want %d", n, err, len(tt.want))
			}
		})
	}
}

// readAllPending pages like the loader does, including its handling of the
// empty ID on the first page.
func readAllPending(t *testing.T, d loader.Warehouse, limit int, sel loader.Selection) []string {
	t.Helper()
	var out []string
	after, started := "", false
	for range 1000 {
		page, err := d.Pending(context.Background(), after, limit, sel)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) > limit {
			t.Fatalf("page of %d; limit %d", len(page), limit)
		}
		sent := false
		for _, id := range page {
			if started && id <= after {
				continue
			}
			out = append(out, id)
			after, started, sent = id, true, true
		}
		if !sent {
			return out
		}
	}
	t.Fatal("pagination did not end")
	return nil
}

func TestDuckDBCommitMergesIdempotently(t *testing.T) {
	tdb := newTestDB(t)
	tdb.exec(t, `CREATE TABLE MASTER_TABLE AS SELECT * FROM (VALUES ('a'), ('b'), ('c'), ('d')) v(ID)`)
	d := openTest(t, tdb.path, mustTables(t))
	ctx := context.Background()
	failed := func(id string) loader.Row {
		return loader.Row{ID: id, Outcome: loader.OutcomeFailed, Reason: "boom", ResolvedAt: testNow}
	}
	miss := func(id string, o loader.Outcome) loader.Row {
		return loader.Row{ID: id, Outcome: o, ResolvedAt: testNow}
	}
	steps := []struct {
		name                     string
		rows                     []loader.Row
		target, misses, failures []string
	}{
		{"first commit", []loader.Row{foundRow("a"), miss("b", loader.OutcomeNotFound), failed("c")},
			[]string{"a"}, []string{"b:not_found"}, []string{"c:1"}},
		{"same rows again", []loader.Row{foundRow("a"), miss("b", loader.OutcomeNotFound), failed("c")},
			[]string{"a"}, []string{"b:not_found"}, []string{"c:2"}},
		{"duplicates in one batch keep the last", []loader.Row{failed("d"), foundRow("d")},
			[]string{"a", "d"}, []string{"b:not_found"}, []string{"c:2"}},
		{"a failure now found", []loader.Row{foundRow("c")},
			[]string{"a", "c", "d"}, []string{"b:not_found"}, nil},
		{"found becomes a miss", []loader.Row{miss("a", loader.OutcomeNoLocation)},
			[]string{"c", "d"}, []string{"a:no_location", "b:not_found"}, nil},
		{"a miss now found", []loader.Row{foundRow("b")},
			[]string{"b", "c", "d"}, []string{"a:no_location"}, nil},
		{"a failure keeps the last answer", []loader.Row{failed("b")},
			[]string{"b", "c", "d"}, []string{"a:no_location"}, []string{"b:1"}},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			if err := d.Commit(ctx, s.rows); err != nil {
				t.Fatal(err)
			}
			check := func(q string, want []string) {
				t.Helper()
				got := queryStrings(t, d.db, q)
				if !slices.Equal(got, want) {
					t.Errorf("%s = %q; want %q", q, got, want)
				}
			}
			check(`SELECT "ID" FROM STANDARDIZED_LOCATIONS ORDER BY 1`, s.target)
			check(`SELECT "ID" || ':' || "OUTCOME" FROM STANDARDIZED_LOCATIONS_MISSES ORDER BY 1`, s.misses)
			check(`SELECT "ID" || ':' || "ATTEMPTS" FROM STANDARDIZED_LOCATIONS_FAILURES ORDER BY 1`, s.failures)
		})
	}
}

func TestDuckDBCommitStoresRecordFields(t *testing.T) {
	tdb := newTestDB(t)
	tdb.exec(t, `CREATE TABLE MASTER_TABLE (ID VARCHAR)`)
	d := openTest(t, tdb.path, mustTables(t))
	r := foundRow("x1")
	if err := d.Commit(context.Background(), []loader.Row{r}); err != nil {
		t.Fatal(err)
	}
	got := queryStrings(t, d.db, `SELECT concat_ws('|', "ID", "LABEL", coalesce("GEO_LABEL", 'NULL'), "CITY_LABEL",
		coalesce("POSTAL_CODE", 'NULL'), "LATITUDE", "LONGITUDE", strftime("RESOLVED_AT", '%Y-%m-%dT%H:%M:%S')) FROM STANDARDIZED_LOCATIONS`)
	want := []string{"x1|L-x1|NULL|City|NULL|2.0|-1.5|2025-03-01T12:00:00"}
	if !slices.Equal(got, want) {
		t.Fatalf("target row = %q; want %q", got, want)
	}
}

func TestDuckDBCommitRejectsBadRows(t *testing.T) {
	tdb := newTestDB(t)
	tdb.exec(t, `CREATE TABLE MASTER_TABLE (ID VARCHAR)`)
	d := openTest(t, tdb.path, mustTables(t))
	tests := []struct {
		name string
		row  loader.Row
		want string
	}{
		{"found without record", loader.Row{ID: "a", Outcome: loader.OutcomeFound, ResolvedAt: testNow}, "without a record"},
		{"failed without reason", loader.Row{ID: "a", Outcome: loader.OutcomeFailed, ResolvedAt: testNow}, "without a reason"},
		{"unknown outcome", loader.Row{ID: "a", Outcome: "maybe", ResolvedAt: testNow}, "unknown outcome"},
		{"no time", loader.Row{ID: "a", Outcome: loader.OutcomeNotFound}, "resolved-at"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := d.Commit(context.Background(), []loader.Row{tt.row})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Commit error = %v; want one mentioning %q", err, tt.want)
			}
		})
	}
	if n := queryStrings(t, d.db, `SELECT count(*) FROM STANDARDIZED_LOCATIONS`); n[0] != "0" {
		t.Fatalf("target rows = %s; want 0", n[0])
	}
}

func TestDuckDBSelection(t *testing.T) {
	tdb := newTestDB(t)
	tdb.exec(t, `CREATE TABLE MASTER_TABLE AS SELECT * FROM (VALUES ('new'), ('old'), ('fresh'), ('miss_old'), ('miss_fresh'), ('fail')) v(ID)`)
	d := openTest(t, tdb.path, mustTables(t))
	old := testNow.Add(-48 * time.Hour)
	rows := []loader.Row{
		{ID: "old", Outcome: loader.OutcomeFound, Record: fakeRecord("old"), ResolvedAt: old},
		foundRow("fresh"),
		{ID: "miss_old", Outcome: loader.OutcomeNotFound, ResolvedAt: old},
		{ID: "miss_fresh", Outcome: loader.OutcomeNotFound, ResolvedAt: testNow},
		{ID: "fail", Outcome: loader.OutcomeFailed, Reason: "x", ResolvedAt: old},
		{ID: "gone", Outcome: loader.OutcomeFailed, Reason: "not in the source any more", ResolvedAt: old},
	}
	if err := d.Commit(context.Background(), rows); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		sel  loader.Selection
		want []string
	}{
		{"incremental", loader.Selection{Now: testNow}, []string{"new"}},
		{"refresh older than a day", loader.Selection{RefreshOlderThan: 24 * time.Hour, Now: testNow}, []string{"miss_old", "new", "old"}},
		{"retry failed", loader.Selection{RetryFailed: true, Now: testNow}, []string{"fail"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := readAllPending(t, d, 2, tt.sel)
			if !slices.Equal(got, tt.want) {
				t.Fatalf("pending = %q; want %q", got, tt.want)
			}
			n, err := d.CountPending(context.Background(), tt.sel)
			if err != nil || n != int64(len(tt.want)) {
				t.Fatalf("CountPending = %d, %v; want %d", n, err, len(tt.want))
			}
		})
	}
}

func TestDuckDBSourceFiles(t *testing.T) {
	dir := t.TempDir()
	csv := filepath.Join(dir, "ids.csv")
	if err := os.WriteFile(csv, []byte("ID,OTHER\n007,x\nb,y\n007,z\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	parquet := filepath.Join(dir, "it's ids.parquet")
	tdb := newTestDB(t)
	tdb.exec(t, fmt.Sprintf(`COPY (SELECT * FROM (VALUES (3), (1), (3)) v(ID)) TO '%s' (FORMAT parquet)`, strings.ReplaceAll(parquet, "'", "''")))
	tests := []struct {
		name, file string
		want       []string
	}{
		{"csv keeps leading zeros", csv, []string{"007", "b"}},
		{"parquet with a quote in its name", parquet, []string{"1", "3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := mustTables(t)
			tb.SourceFile = tt.file
			d := openTest(t, newTestDB(t).path, tb)
			if got := readAllPending(t, d, 10, loader.Selection{}); !slices.Equal(got, tt.want) {
				t.Fatalf("pending = %q; want %q", got, tt.want)
			}
		})
	}
}

func TestDuckDBClearErrors(t *testing.T) {
	tests := []struct {
		name    string
		setup   string
		tables  func(loader.Tables) loader.Tables
		wantErr string
	}{
		{"missing source table", "", func(tb loader.Tables) loader.Tables { return tb }, `source table MAIN.MASTER_TABLE not found`},
		{"missing id column", `CREATE TABLE MASTER_TABLE (X VARCHAR)`, func(tb loader.Tables) loader.Tables { return tb }, `column ID not in MASTER_TABLE; its columns: X`},
		{"target with other columns", `CREATE TABLE MASTER_TABLE (ID VARCHAR); CREATE TABLE STANDARDIZED_LOCATIONS (ID VARCHAR)`,
			func(tb loader.Tables) loader.Tables { return tb }, `"STANDARDIZED_LOCATIONS" exists without the loader's columns`},
		{"missing source file", "", func(tb loader.Tables) loader.Tables { tb.SourceFile = "/nonexistent/ids.csv"; return tb }, `source file "/nonexistent/ids.csv" not found`},
		{"unknown file type", "", func(tb loader.Tables) loader.Tables { tb.SourceFile = os.Args[0]; return tb }, "want a .csv or .parquet"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tdb := newTestDB(t)
			if tt.setup != "" {
				tdb.exec(t, strings.Split(tt.setup, "; ")...)
			}
			d, err := Open(context.Background(), tdb.path, tt.tables(mustTables(t)))
			if err == nil {
				defer d.Close()
				err = d.Setup(context.Background())
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error = %v; want one mentioning %s", err, tt.wantErr)
			}
		})
	}
	if _, err := Open(context.Background(), "x.duckdb", loader.Tables{}); err == nil {
		t.Fatal("Open with zero Tables: got nil error; want one")
	}
}

func TestOpenSettings(t *testing.T) {
	tests := []struct {
		name, query   string
		setting, want string
	}{
		{"default memory limit", "", "memory_limit", "45.7 MiB"},
		{"default threads", "", "threads", "1"},
		{"override kept", "?threads=2&memory_limit=100MB", "threads", "2"},
		{"other override kept", "?threads=2&memory_limit=100MB", "memory_limit", "95.3 MiB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tdb := newTestDB(t)
			tdb.exec(t, `CREATE TABLE MASTER_TABLE (ID VARCHAR)`)
			d, err := Open(context.Background(), tdb.path+tt.query, mustTables(t))
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			got := queryStrings(t, d.db, "SELECT current_setting('"+tt.setting+"')")
			if got[0] != tt.want {
				t.Fatalf("%s = %s; want %s", tt.setting, got[0], tt.want)
			}
		})
	}
	for _, bad := range []string{"", "?threads=2", "x.duckdb?%zz"} {
		if _, err := Open(context.Background(), bad, mustTables(t)); err == nil {
			t.Errorf("Open(%q): got nil error; want one", bad)
		}
	}
}

// TestDuckDBPreflightCreatesNothing runs a backfill against a wrong source:
// it must fail with a *loader.SourceError naming what it looked for and what is
// there, and leave no database file behind, or one with no new tables.
func TestDuckDBPreflightCreatesNothing(t *testing.T) {
	dir := t.TempDir()
	noID := filepath.Join(dir, "no-id.csv")
	if err := os.WriteFile(noID, []byte("X,Y\n1,2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.csv")
	tests := []struct {
		name     string
		setup    []string // statements run on the file first; none: no file
		source   string
		file     string
		wantKind loader.SourceKind
		wantErr  string
	}{
		{name: "no database file", wantKind: loader.SourceTable,
			wantErr: `source table MAIN.MASTER_TABLE not found: the database file "`},
		{name: "source table missing", setup: []string{`CREATE TABLE OTHER (ID VARCHAR)`, `CREATE SCHEMA raw`, `CREATE TABLE raw.ids (ID VARCHAR)`},
			wantKind: loader.SourceTable, wantErr: `source table MAIN.MASTER_TABLE not found; tables in the database: OTHER, raw.ids`},
		{name: "qualified source missing", setup: []string{`CREATE TABLE MASTER_TABLE (ID VARCHAR)`}, source: "raw.master_table",
			wantKind: loader.SourceTable, wantErr: `source table RAW.MASTER_TABLE not found; tables in the database: MASTER_TABLE`},
		{name: "id column missing", setup: []string{`CREATE TABLE MASTER_TABLE (ENTITY_ID VARCHAR, NAME VARCHAR)`},
			wantKind: loader.SourceColumn, wantErr: `column ID not in MASTER_TABLE; its columns: ENTITY_ID, NAME`},
		{name: "source file missing", file: missing, wantKind: loader.SourceFile,
			wantErr: fmt.Sprintf(`source file %q not found`, missing)},
		{name: "source file without the id column", file: noID, wantKind: loader.SourceColumn,
			wantErr: fmt.Sprintf(`column ID not in source file %q; its columns: X, Y`, noID)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tdb := newTestDB(t)
			if tt.setup != nil {
				tdb.exec(t, tt.setup...)
			}
			before := tableNames(t, tdb.path)
			tb, err := loader.NewTables(tt.source, "", "")
			if err != nil {
				t.Fatal(err)
			}
			tb.SourceFile = tt.file
			err = runOnce(tdb.path, tb)
			var se *loader.SourceError
			if !errors.As(err, &se) || se.Kind != tt.wantKind || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got error %v; want a *loader.SourceError of kind %d containing %q", err, tt.wantKind, tt.wantErr)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q spans several lines; want one", err)
			}
			if after := tableNames(t, tdb.path); !slices.Equal(after, before) {
				t.Errorf("tables after the run: %q; want %q, as before it", after, before)
			}
		})
	}
}

// TestDuckDBPreflightFindsSource is the other side of the preflight: names
// DuckDB resolves are found, whatever their case or qualification, and the
// run goes on to create the result tables.
func TestDuckDBPreflightFindsSource(t *testing.T) {
	tests := []struct{ name, setup, source, idColumn string }{
		{"lower-case table and column", `CREATE TABLE master_table (id VARCHAR)`, "", ""},
		{"schema-qualified", `CREATE SCHEMA raw; CREATE TABLE raw.ids (entity_id BIGINT)`, "raw.ids", "entity_id"},
		{"catalog-qualified", `CREATE TABLE ids (ID VARCHAR)`, "test.main.ids", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tdb := newTestDB(t)
			tdb.exec(t, strings.Split(tt.setup, "; ")...)
			tb, err := loader.NewTables(tt.source, tt.idColumn, "")
			if err != nil {
				t.Fatal(err)
			}
			if err := runOnce(tdb.path, tb); err != nil {
				t.Fatalf("run: %v", err)
			}
			got := tableNames(t, tdb.path)
			for _, want := range []string{"main.STANDARDIZED_LOCATIONS", "main.STANDARDIZED_LOCATIONS_FAILURES", "main.STANDARDIZED_LOCATIONS_MISSES"} {
				if !slices.Contains(got, want) {
					t.Errorf("tables after the run: %q; want %s among them", got, want)
				}
			}
		})
	}
}

// runOnce opens the warehouse at path and runs one backfill on it.
func runOnce(path string, tb loader.Tables) error {
	d, err := Open(context.Background(), path, tb)
	if err != nil {
		return err
	}
	defer d.Close()
	l, err := loader.New(d, foundResolver, loader.Config{OnProgress: func(loader.Progress) {}}, nil)
	if err != nil {
		return err
	}
	_, err = l.Run(context.Background())
	return err
}

// noFile is what tableNames lists for a file that does not exist, unlike a
// file without tables.
const noFile = "(no database file)"

// tableNames lists schema.table of every table in the file at path, or
// noFile (it is not created to look).
func tableNames(t *testing.T, path string) []string {
	t.Helper()
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		if _, err := os.Stat(path + ".wal"); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s.wal exists without its database (stat: %v)", path, err)
		}
		return []string{noFile}
	}
	db, err := sql.Open("duckdb", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	return append([]string{}, queryStrings(t, db, `SELECT table_schema || '.' || table_name FROM information_schema.tables ORDER BY 1`)...)
}
