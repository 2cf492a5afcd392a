package gateway

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// hotRedshiftEvent returns the event Redshift would send for hotBatch's
// IDs, and the resolver holding a full record for each.
func hotRedshiftEvent(tb testing.TB) ([]byte, hotResolver) {
	_, res := hotBatch(tb)
	ids := make([]string, 0, len(res))
	for i := range hotRows {
		ids = append(ids, hotID(i))
	}
	for _, id := range ids {
		if res[id] == nil {
			tb.Fatalf("hotBatch has no record for %s", id)
		}
	}
	return redshiftEventFor(ids), res
}

// hotID is hotBatch's i-th ID.
func hotID(i int) string { return fmt.Sprintf("Q%07d", i*7919) }

// BenchmarkServeHotRedshift is BenchmarkServeHot's batch as one Redshift
// invocation: 4,096 records, all cached, through Server.RedshiftWith as
// the Lambda handler calls it (decode, engine, shared row code with every
// value quoted). Its ns/op compares with BenchmarkServeHot/gateway's in the
// same run.
func BenchmarkServeHotRedshift(b *testing.B) {
	event, res := hotRedshiftEvent(b)
	s := newServer(b, res, Config{})
	ctx := context.Background()
	b.ReportAllocs()
	b.SetBytes(int64(len(event)))
	for b.Loop() {
		s.RedshiftWith(ctx, event, func(out []byte) {
			if !bytes.HasPrefix(out, []byte(`{"success":true,"num_records":4096,`)) {
				b.Fatalf("got %.200s; want success with 4096 results", out)
			}
		})
	}
	b.ReportMetric(float64(b.N)*hotRows/b.Elapsed().Seconds(), "rows/s")
}

// TestHotRedshiftEventIsHot keeps the benchmark honest: its event is the
// one the hand scanner takes, and every record answers its record.
func TestHotRedshiftEventIsHot(t *testing.T) {
	event, res := hotRedshiftEvent(t)
	if _, ok := scanRedshift(event); !ok {
		t.Fatal("the hand scanner does not take the benchmark's event")
	}
	s := newServer(t, res, Config{})
	texts := resultTexts(t, decodeAnswer(t, s.Redshift(context.Background(), event)))
	if len(texts) != hotRows {
		t.Fatalf("got %d results; want %d", len(texts), hotRows)
	}
	for i, got := range texts {
		if want := string(res[hotID(i)].JSON); got != want {
			t.Fatalf("record %d: got %.100s; want %.100s", i, got, want)
		}
	}
}

// BenchmarkRedshiftDecode: the hot event through the hand scanner and
// through encoding/json, and Snowflake's scanner on the same batch, for
// the share of decoding in BenchmarkServeHotRedshift.
func BenchmarkRedshiftDecode(b *testing.B) {
	event, _ := hotRedshiftEvent(b)
	body, _ := hotBatch(b)
	b.Run("scan", func(b *testing.B) {
		b.SetBytes(int64(len(event)))
		for b.Loop() {
			if _, ok := scanRedshift(event); !ok {
				b.Fatal("scanner refused the event")
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.SetBytes(int64(len(event)))
		for b.Loop() {
			if _, err := parseRedshift(event); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("snowflake-scan", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			if _, ok := scanFast(body, locationArgs); !ok {
				b.Fatal("scanner refused the batch")
			}
		}
	})
}

// BenchmarkRedshiftOfServeHot alternates rounds of BenchmarkServeHot's
// work (the 4,096-row batch through the gin engine) and of
// BenchmarkServeHotRedshift's (the same rows as one invocation) on one
// server, and reports the ratio of their process CPU per batch
// (cpu-of-serve-hot): on a shared machine wall time per batch moves with
// the neighbours' load, CPU time much less. b.N batches of each are run.
func BenchmarkRedshiftOfServeHot(b *testing.B) {
	body, res := hotBatch(b)
	event, _ := hotRedshiftEvent(b)
	s := newServer(b, res, Config{})
	h, ctx := s.Handler(), context.Background()
	w := &countingWriter{h: http.Header{}}
	snowflake := func() {
		req := httptest.NewRequestWithContext(ctx, http.MethodPost, defaultPath, bytes.NewReader(body))
		clear(w.h)
		w.code, w.n = 0, 0
		h.ServeHTTP(w, req)
		if w.code != http.StatusOK || w.n == 0 {
			b.Fatalf("Snowflake batch: got %d with %d bytes; want 200", w.code, w.n)
		}
	}
	redshift := func() {
		// As the Lambda handler does: the answer read in place, its buffer
		// reused.
		s.RedshiftWith(ctx, event, func(out []byte) {
			if !bytes.HasPrefix(out, []byte(`{"success":true,"num_records":4096,`)) {
				b.Fatalf("Redshift invocation: got %.200s", out)
			}
		})
	}
	var cpu [2]time.Duration
	const round = 10
	for done := 0; done < b.N; done += round {
		n := min(round, b.N-done)
		for k, work := range []func(){snowflake, redshift} {
			start := processCPU()
			for range n {
				work()
			}
			cpu[k] += processCPU() - start
		}
	}
	if cpu[0] > 0 {
		b.ReportMetric(float64(cpu[0].Nanoseconds())/float64(b.N), "serve-hot-cpu-ns/batch")
		b.ReportMetric(float64(cpu[1].Nanoseconds())/float64(b.N), "redshift-cpu-ns/batch")
		b.ReportMetric(float64(cpu[1])/float64(cpu[0]), "cpu-of-serve-hot")
	}
}
