package loader_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/snowgate/snowgate/cache"
	. "github.com/snowgate/snowgate/loader"
)

// BenchmarkRunWarehouseBound runs the pipeline over 100k source rows (10%
// duplicates) with an instant resolver: the warehouse's ceiling.
func BenchmarkRunWarehouseBound(b *testing.B) {
	const n = 100_000
	for b.Loop() {
		b.StopTimer()
		tdb := newTestDB(b)
		tdb.exec(b, fmt.Sprintf(`CREATE TABLE MASTER_TABLE AS SELECT 'id' || lpad(CAST(hash(i) %% 100000000 AS VARCHAR), 9, '0') AS ID FROM range(%d) r(i)
UNION ALL SELECT 'id' || lpad(CAST(hash(i) %% 100000000 AS VARCHAR), 9, '0') FROM range(%d) r(i)`, n*9/10, n/10))
		d := openTest(b, tdb.path, mustTables(b))
		l, err := New(d, ResolverFunc(func(ctx context.Context, id string) cache.Outcome { return fakeAnswer(id) }), Config{Concurrency: 16}, nil)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		sum, err := l.Run(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(sum.Rate(), "ids/s")
	}
}
