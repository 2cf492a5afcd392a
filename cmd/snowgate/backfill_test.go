//go:build !slim

package main

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/snowgate/snowgate/cache"
	"github.com/snowgate/snowgate/gateway"
	"github.com/snowgate/snowgate/loader"
	"github.com/snowgate/snowgate/loader/duckdb"
	"github.com/snowgate/snowgate/locapi"
	"github.com/snowgate/snowgate/sim"
)

func TestBackfillHelpListsEveryFlag(t *testing.T) {
	var out bytes.Buffer
	err := runBackfill(context.Background(), []string{"--help"}, &out, slog.New(slog.DiscardHandler))
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("got %v; want flag.ErrHelp", err)
	}
	for _, name := range []string{"warehouse", "source-table", "id-column", "target-table", "source-file", "limit",
		"dry-run", "refresh-older-than", "retry-failed", "via", "via-auth-header", "progress", "upstream-concurrency"} {
		if !strings.Contains(out.String(), "--"+name+"  ["+envName(name)+"]") {
			t.Errorf("help lacks --%s with %s", name, envName(name))
		}
	}
	if !strings.Contains(out.String(), "--cache-size  [SNOWGATE_CACHE_SIZE] (default 10000)") {
		t.Error("help does not show the backfill's smaller cache default")
	}
}

func TestBackfillRejectsBadInput(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"hostile source table", []string{"--source-table", "MASTER; DROP TABLE X"}, "source table"},
		{"hostile id column", []string{"--id-column", `ID"--`}, "id column"},
		{"hostile target table", []string{"--target-table", "T'"}, "target table"},
		{"unknown warehouse", []string{"--warehouse", "postgres://x"}, "want duckdb:PATH or snowflake"},
		{"source file on snowflake", []string{"--warehouse", "snowflake", "--source-file", "ids.csv"}, "DuckDB only"},
		{"unknown progress", []string{"--progress", "fancy"}, "--progress"},
		{"retry and refresh", []string{"--retry-failed", "--refresh-older-than", "1h"}, "cannot be combined"},
		{"bad via url", []string{"--via", "ftp://x"}, "want http"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := "duckdb:" + filepath.Join(t.TempDir(), "x.duckdb")
			args := append([]string{"--warehouse", db}, tt.args...)
			err := runBackfill(context.Background(), args, io.Discard, slog.New(slog.DiscardHandler))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v; want an error containing %q", err, tt.want)
			}
			if !errors.Is(err, errUsage) {
				t.Errorf("error %v is not a usage error", err)
			}
		})
	}
}

// newBackfillDB makes a DuckDB file whose MASTER_TABLE holds ids.
func newBackfillDB(t *testing.T, ids []string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "bf.duckdb")
	db, err := sql.Open("duckdb", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(t.Context(), `CREATE TABLE MASTER_TABLE (ID VARCHAR)`); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if _, err := db.ExecContext(t.Context(), `INSERT INTO MASTER_TABLE VALUES (?)`, id); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

// storedCounts counts the rows of the three result tables.
func storedCounts(t *testing.T, path string) string {
	t.Helper()
	db, err := sql.Open("duckdb", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var found, misses, failures int
	err = db.QueryRowContext(t.Context(), `SELECT (SELECT count(*) FROM STANDARDIZED_LOCATIONS), (SELECT count(*) FROM STANDARDIZED_LOCATIONS_MISSES),
		(SELECT count(*) FROM STANDARDIZED_LOCATIONS_FAILURES)`).Scan(&found, &misses, &failures)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("found %d, misses %d, failures %d", found, misses, failures)
}

// expectedCounts is what storedCounts must say for ids after a backfill.
func expectedCounts(s *sim.Server, ids []string) string {
	var found, misses, failures int
	for _, id := range ids {
		switch k, _ := s.Expected(id); k {
		case sim.Found:
			found++
		case sim.NotFound, sim.NoLocation:
			misses++
		default:
			failures++
		}
	}
	return fmt.Sprintf("found %d, misses %d, failures %d", found, misses, failures)
}

func testIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("C%05d", i)
	}
	return ids
}

func TestBackfillCommand(t *testing.T) {
	s, err := sim.Start(sim.Config{NotFoundRatio: 0.1, NoLocationRatio: 0.1, PermanentFailRatio: 0.05})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ids := testIDs(300)
	path := newBackfillDB(t, append(ids, ids[:30]...))
	base := []string{"--warehouse", "duckdb:" + path, "--upstream-url", s.URL + sim.EntitiesPath + "{id}?select=id,label,location",
		"--rate", "0", "--upstream-concurrency", "16", "--upstream-timeout", "2s", "--progress", "none"}
	steps := []struct {
		name      string
		extra     []string
		wantOut   string
		wantCalls bool
	}{
		{"dry run", []string{"--dry-run"}, "dry run: 300 IDs would be resolved", false},
		{"limit", []string{"--limit", "100"}, "backfill: 100 of 100 pending IDs committed", true},
		{"the rest", nil, "backfill: 200 of 200 pending IDs committed", true},
		{"complete: nothing to do", nil, "backfill: 0 of 0 pending IDs committed", false},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			before := s.Total()
			var out bytes.Buffer
			if err := runBackfill(context.Background(), append(base, st.extra...), &out, slog.New(slog.DiscardHandler)); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out.String(), st.wantOut) {
				t.Errorf("output %q; want it to contain %q", out.String(), st.wantOut)
			}
			if called := s.Total() > before; called != st.wantCalls {
				t.Errorf("provider called: %v; want %v", called, st.wantCalls)
			}
		})
	}
	if got, want := storedCounts(t, path), expectedCounts(s.Server, ids); got != want {
		t.Fatalf("stored %s; want %s", got, want)
	}
}

func TestBackfillEmptySourceIsANoOp(t *testing.T) {
	path := newBackfillDB(t, nil)
	var out bytes.Buffer
	args := []string{"--warehouse", "duckdb:" + path, "--upstream-url", "http://127.0.0.1:1/{id}", "--progress", "none"}
	if err := runBackfill(context.Background(), args, &out, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	if want := "backfill: 0 of 0 pending IDs committed"; !strings.Contains(out.String(), want) {
		t.Fatalf("output %q; want %q", out.String(), want)
	}
}

// TestBackfillVia resolves through the real gateway over HTTP, with the
// settings the backfill asks for (row errors and misses as objects).
func TestBackfillVia(t *testing.T) {
	s, err := sim.Start(sim.Config{NotFoundRatio: 0.1, NoLocationRatio: 0.1, PermanentFailRatio: 0.05})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	client, err := locapi.New(locapi.Config{URL: s.URL + sim.EntitiesPath + "{id}?select=id,label,location",
		Concurrency: 16, MaxAttempts: 2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	res, err := cache.New(client, cache.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	gw, err := gateway.New(res, gateway.Config{OnRowError: gateway.RowErrorObject, NotFound: gateway.NotFoundObject}, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gw.Handler())
	defer srv.Close()

	ids := testIDs(400)
	path := newBackfillDB(t, ids)
	var out bytes.Buffer
	args := []string{"--warehouse", "duckdb:" + path, "--via", srv.URL + "/resolve_location", "--via-batch-size", "50",
		"--via-in-flight", "3", "--progress", "none"}
	if err := runBackfill(context.Background(), args, &out, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "backfill: 400 of 400 pending IDs committed") {
		t.Errorf("output %q; want 400 committed", out.String())
	}
	if got, want := storedCounts(t, path), expectedCounts(s.Server, ids); got != want {
		t.Fatalf("stored %s; want %s", got, want)
	}
	wh, err := duckdb.Open(context.Background(), path, mustTables(t))
	if err != nil {
		t.Fatal(err)
	}
	defer wh.Close()
	if n, err := wh.CountPending(context.Background(), loader.Selection{}); err != nil || n != 0 {
		t.Fatalf("pending after the run = %d, %v; want 0", n, err)
	}
}

func mustTables(t *testing.T) loader.Tables {
	t.Helper()
	tb, err := loader.NewTables("", "", "")
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

func TestShellQuote(t *testing.T) {
	tests := []struct{ in, want string }{
		{"--rate", "--rate"},
		{"duckdb:/tmp/x.duckdb", "duckdb:/tmp/x.duckdb"},
		{"http://h/{id}?select=id", "'http://h/{id}?select=id'"},
		{"it's", `'it'\''s'`},
		{"", "''"},
	}
	for _, tt := range tests {
		if got := shellQuote(tt.in); got != tt.want {
			t.Errorf("shellQuote(%q) = %s; want %s", tt.in, got, tt.want)
		}
	}
}

func TestBackfillMissingSourceIsClear(t *testing.T) {
	path := filepath.Join(t.TempDir(), "none.duckdb")
	var out bytes.Buffer
	args := []string{"--warehouse", "duckdb:" + path, "--source-table", "NOPE", "--progress", "none"}
	err := runBackfill(context.Background(), args, &out, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), `source table MAIN.NOPE not found`) || strings.Contains(err.Error(), "resume") {
		t.Fatalf("got %v; want an error naming the source and no resume hint", err)
	}
	if out.Len() != 0 {
		t.Errorf("printed %q; want nothing", out.String())
	}
}
