package duckfn_test

import (
	"context"
	"database/sql"
	"reflect"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/duckdb/duckdb-go/v2/mapping"

	"github.com/snowgate/snowgate/cache"
	"github.com/snowgate/snowgate/duckfn"
	"github.com/snowgate/snowgate/locapi"
)

// slowChunks answers every ID not found after a pause per chunk, and
// counts the chunks it answered.
type slowChunks struct{ done atomic.Int64 }

func (s *slowChunks) ResolveMany(ctx context.Context, ids []string) ([]cache.Outcome, cache.Stats) {
	time.Sleep(20 * time.Millisecond)
	out := make([]cache.Outcome, len(ids))
	e := &cache.Entry{Status: locapi.NotFound}
	for i := range out {
		out[i].Entry = e
	}
	s.done.Add(1)
	return out, cache.Stats{IDs: len(ids)}
}

// Why snowgate sql shows no ETA: DuckDB's own estimate of a running
// statement (duckdb_query_progress, what its shell's progress bar draws)
// does not follow the chunks of a statement like the enrichment one: it
// says no rows are done, or all of them once its scan has taken the
// table's one row group (81,920 rows, 40 chunks), however few chunks the
// function has answered. There is nothing to base an ETA on. duckdb-go
// does not expose that call, so this test reaches the C connection inside
// duckdb-go's Conn (a test may; the product does not), checks that the
// reading reaches the statement (it knows the rows to process), and that
// no mid-statement reading is a part of them. If that fails, DuckDB now
// reports progress and an ETA can be shown.
func TestDuckDBReportsNoProgressMidStatement(t *testing.T) {
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := t.Context()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	res := &slowChunks{}
	if err := duckfn.Register(ctx, conn, res, duckfn.Options{}); err != nil {
		t.Fatal(err)
	}
	c := cConnection(t, conn)
	const chunks = 40
	for _, q := range []string{
		"SET enable_progress_bar = true", "SET enable_progress_bar_print = false", "SET progress_bar_time = 0",
		"CREATE TABLE ids AS SELECT 'Q' || i AS id FROM range(40 * 2048) t(i)",
	} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	done := make(chan error, 1)
	go func() {
		_, err := conn.ExecContext(ctx, "CREATE TABLE enriched AS SELECT id, resolve_location(id) AS loc FROM ids")
		done <- err
	}()
	// A reading counts when the chunks answered before and after it are
	// between 5 and chunks-5: the statement was surely midway.
	readings, zero, whole, partial := 0, 0, 0, 0.0
	var seen uint64
	for {
		before := res.done.Load()
		pct, rows, total := progress(c)
		after := res.done.Load()
		if after >= chunks-5 {
			break
		}
		if before >= 5 {
			readings++
			seen = max(seen, total)
			switch {
			case rows == 0:
				zero++
			case rows >= chunks*2048:
				whole++
			default:
				partial = pct
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	t.Logf("%d readings between chunks 5 and %d of %d (%d rows): %d said no rows done, %d all of them",
		readings, chunks-5, chunks, seen, zero, whole)
	if readings == 0 {
		t.Fatal("no reading in mid-statement")
	}
	// The reading reaches the running statement: DuckDB knows its size.
	if want := uint64(chunks * 2048); seen < want {
		t.Fatalf("DuckDB reported %d rows to process; want at least %d: the reading does not reach the statement", seen, want)
	}
	if partial > 0 {
		t.Errorf("DuckDB reported %.1f%% in mid-statement: it can tell now, so snowgate sql could show an ETA", partial)
	}
}

// cConnection is the DuckDB C connection inside duckdb-go's Conn.
func cConnection(t *testing.T, conn *sql.Conn) mapping.Connection {
	t.Helper()
	var c mapping.Connection
	err := conn.Raw(func(dc any) error {
		v := reflect.ValueOf(dc)
		if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
			t.Fatalf("driver connection is a %T", dc)
		}
		f := v.Elem().FieldByName("conn")
		if !f.IsValid() || f.Type() != reflect.TypeFor[mapping.Connection]() {
			t.Fatalf("%T has no conn field of type mapping.Connection: duckdb-go changed; see whether it exposes query progress now", dc)
		}
		c = *(*mapping.Connection)(unsafe.Pointer(f.UnsafeAddr()))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// progress is duckdb_query_progress of c.
func progress(c mapping.Connection) (pct float64, rows, total uint64) {
	p := mapping.QueryProgress(c)
	pct, r, tot := mapping.QueryProgressTypeMembers(&p)
	return pct, uint64(r), uint64(tot)
}
