//go:build !slim

package main

import (
	"context"
	"database/sql"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestBackfillPreflight runs `snowgate backfill` against a wrong source: it
// must be a usage error (exit 2), on one line, naming the flag, what it
// looked for and what is there, and it must create nothing: no database
// file, or no new table in one that existed.
func TestBackfillPreflight(t *testing.T) {
	dir := t.TempDir()
	noID := filepath.Join(dir, "no-id.csv")
	if err := os.WriteFile(noID, []byte("ENTITY,NAME\na,b\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		setup []string // statements creating the database first; nil: no file
		args  []string
		want  []string
	}{
		{name: "no database file", want: []string{"--source-table", "source table MAIN.MASTER_TABLE not found", "does not exist"}},
		{name: "source table missing", setup: []string{`CREATE TABLE OTHER (ID VARCHAR)`}, args: []string{"--source-table", "ids"},
			want: []string{"--source-table", "source table MAIN.IDS not found; tables in the database: OTHER"}},
		{name: "id column missing", setup: []string{`CREATE TABLE MASTER_TABLE (X VARCHAR, Y VARCHAR)`},
			want: []string{"--id-column", "column ID not in MASTER_TABLE; its columns: X, Y"}},
		{name: "source file missing", args: []string{"--source-file", filepath.Join(dir, "missing.csv")},
			want: []string{"--source-file", "missing.csv\" not found"}},
		{name: "source file without the id column", args: []string{"--source-file", noID},
			want: []string{"--id-column", "column ID not in source file", "its columns: ENTITY, NAME"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "new.duckdb")
			if tt.setup != nil {
				execDuckDB(t, path, tt.setup...)
			}
			before := duckDBTables(t, path)
			args := append([]string{"backfill", "--warehouse", "duckdb:" + path, "--progress", "none",
				"--upstream-url", "http://127.0.0.1:1/{id}"}, tt.args...)
			err := run(context.Background(), args, io.Discard, slog.New(slog.DiscardHandler))
			if !errors.Is(err, errUsage) {
				t.Fatalf("got %v; want a usage error (exit 2)", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q spans several lines; want one", err)
			}
			if after := duckDBTables(t, path); !slices.Equal(after, before) {
				t.Errorf("tables after the run: %q; want %q, as before it", after, before)
			}
		})
	}
}

func execDuckDB(t *testing.T, path string, stmts ...string) {
	t.Helper()
	db, err := sql.Open("duckdb", path)
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

// noFile is what duckDBTables lists for a file that does not exist, unlike
// a file without tables.
const noFile = "(no database file)"

// duckDBTables lists the tables in the file at path, or noFile: it is not
// created to look.
func duckDBTables(t *testing.T, path string) []string {
	t.Helper()
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return []string{noFile}
	}
	db, err := sql.Open("duckdb", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.QueryContext(t.Context(), `SELECT table_schema || '.' || table_name FROM information_schema.tables ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	names := []string{}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		names = append(names, n)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return names
}
