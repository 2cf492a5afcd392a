//go:build unix && !slim

package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/snowgate/snowgate/sim"
)

var (
	sqlBenchIDs = flag.Int("sqlbench.ids", 100_000,
		"distinct IDs of BenchmarkSQLvsBackfill's speed phases (unlimited and rate500)")
	sqlBenchRSSRows = flag.Int("sqlbench.rss-rows", 1_000_000,
		"rows (10% duplicates) of BenchmarkSQLvsBackfill/rss's child processes")
)

// enrichSQL is the statement measured; OR REPLACE lets it run twice.
const enrichSQL = `CREATE OR REPLACE TABLE enriched AS SELECT id, resolve_location(id) AS loc FROM master_table`

// benchLatency and benchConcurrency make the bound C/L = 5,000 IDs/s.
const (
	benchLatency     = 20 * time.Millisecond
	benchConcurrency = 100
)

// BenchmarkSQLvsBackfill compares snowgate sql's enrichment statement with
// the backfill over the same IDs in the same run, each against a fresh
// simulator and cache, so a busy machine slows both alike. It reports
// figures only; what it asserts is correctness: every row right, one
// provider request per distinct ID, none on a re-run.
//
//	go test -run '^$' -bench SQLvsBackfill -benchtime 1x ./cmd/snowgate/
func BenchmarkSQLvsBackfill(b *testing.B) {
	b.Run("unlimited", func(b *testing.B) {
		n := *sqlBenchIDs
		for b.Loop() {
			sqlRate, rerun, _ := benchSQLPhase(b, sim.Config{Latency: benchLatency}, nil)
			bfRate := benchBackfillPhase(b, sim.Config{Latency: benchLatency})
			bound := float64(benchConcurrency) / benchLatency.Seconds()
			b.ReportMetric(float64(n), "ids")
			b.ReportMetric(sqlRate, "sql-ids/s")
			b.ReportMetric(bfRate, "backfill-ids/s")
			b.ReportMetric(sqlRate/bfRate, "sql-of-backfill")
			b.ReportMetric(sqlRate/bound, "sql-of-bound")
			b.ReportMetric(bfRate/bound, "backfill-of-bound")
			b.ReportMetric(float64(rerun), "rerun-calls")
		}
	})
	b.Run("rate500", func(b *testing.B) {
		const rate = 500
		for b.Loop() {
			sqlRate, _, limited := benchSQLPhase(b, sim.Config{Latency: benchLatency, Rate: rate}, []string{"--rate", fmt.Sprint(rate)})
			b.ReportMetric(sqlRate, "sql-ids/s")
			b.ReportMetric(sqlRate/rate, "sql-of-rate")
			b.ReportMetric(float64(limited), "429s")
		}
	})
	b.Run("rss", func(b *testing.B) {
		bin := buildSnowgate(b)
		for b.Loop() {
			sqlRSS := childRSS(b, bin, "sql")
			bfRSS := childRSS(b, bin, "backfill")
			b.ReportMetric(float64(*sqlBenchRSSRows), "rows")
			b.ReportMetric(float64(sqlRSS)/(1<<20), "sql-rss-MB")
			b.ReportMetric(float64(bfRSS)/(1<<20), "backfill-rss-MB")
			b.ReportMetric(float64(sqlRSS)/float64(bfRSS), "rss-ratio")
		}
	})
}

// upstreamArgs are the resolver flags both commands get: the simulator,
// 100 requests in flight, no client rate unless extra sets one, and a
// cache with room for every ID twice over. The re-run must be answered
// from it, and the LRU is sharded: sized to the IDs exactly, the shards
// that got more than their share evict while the first run fills them,
// and a second scan misses every ID of those shards (about 30% of 100,000
// in one run).
func upstreamArgs(s *sim.Running, extra []string) []string {
	return append([]string{"--upstream-url", s.URL + sim.EntitiesPath + "{id}?select=id,label,location",
		"--upstream-concurrency", fmt.Sprint(benchConcurrency), "--rate", "0",
		"--cache-size", fmt.Sprint(2 * max(*sqlBenchIDs, 100_000))}, extra...)
}

func startBenchSim(b *testing.B, cfg sim.Config) *sim.Running {
	b.Helper()
	s, err := sim.Start(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// benchTable is a fresh DuckDB file whose master_table holds rows IDs,
// distinct of them different.
func benchTable(b *testing.B, rows, distinct int) string {
	b.Helper()
	if distinct > 1_000_000 {
		b.Fatalf("%d distinct IDs: makeDemoTable's six-digit IDs allow 1,000,000 at most", distinct)
	}
	path := filepath.Join(b.TempDir(), "bench.duckdb")
	if err := makeDemoTable(context.Background(), path, rows, distinct); err != nil {
		b.Fatal(err)
	}
	return path
}

// benchSQLPhase times enrichSQL in a snowgate sql session, checks every
// row, runs it again and returns the first run's IDs/s, the re-run's
// provider requests and the simulator's 429s.
func benchSQLPhase(b *testing.B, cfg sim.Config, extra []string) (idsPerSec float64, rerunCalls, limited int) {
	b.Helper()
	n := *sqlBenchIDs
	s := startBenchSim(b, cfg)
	path := benchTable(b, n, n)
	args := append([]string{"--warehouse", "duckdb:" + path, "--progress", "off"}, upstreamArgs(s, extra)...)
	f, rf, stmts, err := parseSQL(append(args, enrichSQL), io.Discard)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	sess, err := openSQL(ctx, f, rf, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		if err := sess.close(); err != nil {
			b.Error(err)
		}
	}()
	out := newPrinter(io.Discard, "csv")
	start := time.Now()
	if err := runStatement(ctx, sess.conn, stmts[0], out); err != nil {
		b.Fatal(err)
	}
	el := time.Since(start)
	checkEnriched(b, s, sess.conn, n)
	first, limited := s.Total(), s.Status(429)
	if cfg.Rate == 0 && first != n {
		b.Errorf("first run: %d provider requests; want %d, one per distinct ID", first, n)
	}
	if err := runStatement(ctx, sess.conn, stmts[0], out); err != nil {
		b.Fatal(err)
	}
	checkEnriched(b, s, sess.conn, n)
	if rerunCalls = s.Total() - first; rerunCalls != 0 {
		b.Errorf("re-run: %d provider requests; want 0 (every ID is cached)", rerunCalls)
	}
	return float64(n) / el.Seconds(), rerunCalls, limited
}

// checkEnriched checks every row of enriched against the simulator's
// record for its ID (every ID is found: the simulators have no misses).
func checkEnriched(b *testing.B, s *sim.Running, conn *sql.Conn, n int) {
	b.Helper()
	rows, err := conn.QueryContext(context.Background(), `SELECT id, loc->>'id', loc->>'label' FROM enriched`)
	if err != nil {
		b.Fatal(err)
	}
	defer rows.Close()
	got, wrong := 0, 0
	for rows.Next() {
		var id string
		var locID, label sql.NullString
		if err := rows.Scan(&id, &locID, &label); err != nil {
			b.Fatal(err)
		}
		got++
		_, body := s.Expected(id)
		var ent sim.Entity
		if err := json.Unmarshal(body, &ent); err != nil {
			b.Fatal(err)
		}
		if !locID.Valid || locID.String != id || label.Valid != (ent.Label != nil) || ent.Label != nil && label.String != *ent.Label {
			if wrong++; wrong <= 3 {
				b.Errorf("%s: got id %v, label %v; want the simulator's record %s", id, locID, label, body)
			}
		}
	}
	if err := rows.Err(); err != nil {
		b.Fatal(err)
	}
	if got != n || wrong != 0 {
		b.Fatalf("enriched: %d rows, %d wrong; want %d, all right", got, wrong, n)
	}
}

// benchBackfillPhase times snowgate backfill over the same IDs with the
// same settings and checks it stored every one.
func benchBackfillPhase(b *testing.B, cfg sim.Config) float64 {
	b.Helper()
	n := *sqlBenchIDs
	s := startBenchSim(b, cfg)
	path := benchTable(b, n, n)
	args := append([]string{"--warehouse", "duckdb:" + path, "--progress", "none"}, upstreamArgs(s, nil)...)
	start := time.Now()
	if err := runBackfill(context.Background(), args, io.Discard, slog.New(slog.DiscardHandler)); err != nil {
		b.Fatal(err)
	}
	el := time.Since(start)
	if got := s.Total(); got != n {
		b.Errorf("backfill: %d provider requests; want %d", got, n)
	}
	if got := countRows(b, path, "STANDARDIZED_LOCATIONS"); got != n {
		b.Fatalf("backfill stored %d locations; want %d", got, n)
	}
	return float64(n) / el.Seconds()
}

func countRows(b *testing.B, path, table string) int {
	b.Helper()
	db, err := sql.Open("duckdb", path)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRowContext(context.Background(), "SELECT count(*) FROM "+table).Scan(&n); err != nil {
		b.Fatal(err)
	}
	return n
}

// buildSnowgate builds the binary, so each command's peak RSS is its own
// process's and not this test binary's.
func buildSnowgate(b *testing.B) string {
	b.Helper()
	bin := filepath.Join(b.TempDir(), "snowgate")
	cmd := exec.CommandContext(b.Context(), "go", "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// childRSS runs "snowgate sql" (the enrichment statement) or "snowgate
// backfill" over sqlbench.rss-rows rows against a fresh simulator with no
// latency and no rate, checks its table, and returns its peak RSS in bytes.
func childRSS(b *testing.B, bin, command string) int64 {
	b.Helper()
	rows := *sqlBenchRSSRows
	distinct := rows - rows/10
	s := startBenchSim(b, sim.Config{})
	path := benchTable(b, rows, distinct)
	args := append([]string{command, "--warehouse", "duckdb:" + path}, upstreamArgs(s, nil)...)
	table, want := "STANDARDIZED_LOCATIONS", distinct
	if command == "sql" {
		args = append(args, "--progress", "off", enrichSQL)
		table, want = "enriched", rows
	} else {
		args = append(args, "--progress", "none")
	}
	cmd := exec.CommandContext(b.Context(), bin, args...)
	cmd.Env = childEnv()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		b.Fatalf("snowgate %s: %v\n%s", command, err, stderr.Bytes())
	}
	if got := countRows(b, path, table); got != want {
		b.Fatalf("snowgate %s: %s has %d rows; want %d", command, table, got, want)
	}
	return maxRSS(b, cmd.ProcessState)
}

// childEnv is this process's environment without SNOWGATE_ settings, which
// would change the child's flags.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SNOWGATE_") {
			env = append(env, kv)
		}
	}
	return env
}

// maxRSS is a finished child's peak resident set in bytes: rusage gives
// kilobytes on Linux and the BSDs, bytes on macOS.
func maxRSS(b *testing.B, ps *os.ProcessState) int64 {
	b.Helper()
	ru, ok := ps.SysUsage().(*syscall.Rusage)
	if !ok || ru.Maxrss <= 0 {
		b.Fatalf("no peak RSS for the child (%T)", ps.SysUsage())
	}
	if runtime.GOOS == "darwin" || runtime.GOOS == "ios" {
		return ru.Maxrss
	}
	return ru.Maxrss * 1024
}
