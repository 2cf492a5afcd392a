package snowflake

import (
	"context"
	"testing"
)

// BenchmarkCommit measures a commit of 16,384 rows through the real driver
// to the stand-in: validation, transposition, the driver's bind rendering
// and JSON, one HTTP round trip per statement on 127.0.0.1. It bounds the
// client's share of a commit; Snowflake's own time is not in it.
func BenchmarkCommit(b *testing.B) {
	for _, bc := range []struct {
		name      string
		threshold int
	}{{"inline", inlineThreshold}, {"stage", snowflakeDefaultThreshold}} {
		b.Run(bc.name, func(b *testing.B) {
			s := newStandin(b, bc.threshold)
			w, err := Open(context.Background(), s.dsn(), Config{})
			if err != nil {
				b.Fatal(err)
			}
			defer w.Close()
			rows := testRows(DefaultInsertRows)
			for b.Loop() {
				if err := w.Commit(context.Background(), rows); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(rows)*b.N)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}
