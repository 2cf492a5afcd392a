//go:build !slim

package main

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
)

// TestDemo runs the README's run command, smaller: it must check every
// step itself and end with its report.
func TestDemo(t *testing.T) {
	db := filepath.Join(t.TempDir(), "demo.duckdb")
	var out bytes.Buffer
	err := run(context.Background(), []string{"demo", "--db", db, "--rows", "3000", "--distinct", "2500",
		"--rate", "2000", "--progress", "none"}, &out, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	for _, want := range []string{
		"SIMULATED provider",
		"matches the simulator",
		"4,096 IDs already backfilled (cache hits)                                   200, 4096 rows right, 0 provider calls",
		"the same batch id sent again (a Snowflake retry)                            200, 1000 rows right, 0 provider calls",
		"400 \"",
		"through every protocol (Redshift reaches snowgate only through Lambda",
		"Redshift   Lambda event",
		"the same value in all four; provider requests for P000000 (the simulator's count): 1\n",
		"sample answer row             [0, {\"id\":\"Q000000\"",
		"5 rows: resolve_location in DuckDB agrees with the backfill",
		"query it: snowgate sql --warehouse duckdb:" + db,
		db,
		"demo: every check passed",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out.String())
		}
	}
}
