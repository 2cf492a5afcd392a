package gateway

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
)

// bigqueryBody is a BigQuery request for ids with requestId id ("" for
// none), the other envelope fields as BigQuery fills them.
func bigqueryBody(tb testing.TB, requestID string, ids []string) []byte {
	tb.Helper()
	calls := make([][]string, len(ids))
	for i, id := range ids {
		calls[i] = []string{id}
	}
	js, err := json.Marshal(map[string]any{
		"requestId":          requestID,
		"caller":             "//bigquery.googleapis.com/projects/bench/jobs/bench:US.bquxjob_1",
		"sessionUser":        "bench@example.com",
		"userDefinedContext": map[string]string{},
		"calls":              calls,
	})
	if err != nil {
		tb.Fatal(err)
	}
	return js
}

// bqHotIDs are hotBatch's IDs in its order, read back through the Snowflake
// decoder so both benchmarks resolve the same rows.
func bqHotIDs(tb testing.TB) ([]string, hotResolver) {
	body, res := hotBatch(tb)
	b, _, err := parseBatch(body, 1)
	if err != nil {
		tb.Fatal(err)
	}
	return b.ids, res
}

// benchBigQuery is benchHandler's loop for BigQuery. When body's requestId
// is "R00000000", every request gets one of its own (patched into a copy
// of body), as BigQuery's do, so each is worked on, not replayed.
func benchBigQuery(b *testing.B, h http.Handler, body []byte, rows int, headers map[string]string) {
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	at := bytes.Index(body, []byte("R00000000"))
	req := bytes.Clone(body)
	w := &countingWriter{h: http.Header{}}
	n := 0
	for b.Loop() {
		n++
		if at >= 0 {
			strconv.AppendInt(req[:at+1], int64(n%90_000_000+10_000_000), 10) // 8 digits after R: same length
		}
		r := httptest.NewRequestWithContext(b.Context(), http.MethodPost, bqPath, bytes.NewReader(req))
		for k, v := range headers {
			r.Header.Set(k, v)
		}
		clear(w.h)
		w.code, w.n = 0, 0
		h.ServeHTTP(w, r)
		if w.code != http.StatusOK || w.n == 0 {
			b.Fatalf("got %d with %d bytes; want 200 with an answer", w.code, w.n)
		}
	}
	b.ReportMetric(float64(b.N)*float64(rows)/b.Elapsed().Seconds(), "rows/s")
}

// bqBenchKept bounds the answers the "kept" cases' servers keep (the
// default is 256 MiB), so that 200 requests of 1.4 MB answers reach the
// steady state of a server that has run for a while, each new answer
// pushing out the oldest; "kept-default" shows the default while its kept
// set fills, every answer on fresh memory.
const bqBenchKept = 32 << 20

// BenchmarkServeHotBigQuery is BenchmarkServeHot for BigQuery: the same
// 4,096 cached rows through the gin engine in process. "gateway" and
// "gateway-gzip" are BenchmarkServeHot's shape: no requestId, as its
// batches have no batch id, so no answer is kept. "kept" and "kept-gzip"
// give every request a requestId of its own, as BigQuery does, so every
// answer is kept for re-sends. "one-row" is the request BigQuery sends
// under CASE, IF and MERGE ... WHEN (never kept). Compare ns/op with
// BenchmarkServeHot's in the same run.
func BenchmarkServeHotBigQuery(b *testing.B) {
	ids, res := bqHotIDs(b)
	plain, kept := bigqueryBody(b, "", ids), bigqueryBody(b, "R00000000", ids)
	// A server per case: answers one case keeps must not weigh on the next.
	server := func(keep int64) http.Handler {
		return newServer(b, res, Config{BigQueryPath: bqPath, MaxResultBytes: keep}).Handler()
	}
	gz := map[string]string{"Accept-Encoding": "gzip"}
	b.Run("gateway", func(b *testing.B) { benchBigQuery(b, server(bqBenchKept), plain, len(ids), nil) })
	b.Run("gateway-gzip", func(b *testing.B) { benchBigQuery(b, server(bqBenchKept), plain, len(ids), gz) })
	b.Run("kept", func(b *testing.B) { benchBigQuery(b, server(bqBenchKept), kept, len(ids), nil) })
	b.Run("kept-gzip", func(b *testing.B) { benchBigQuery(b, server(bqBenchKept), kept, len(ids), gz) })
	b.Run("kept-default", func(b *testing.B) { benchBigQuery(b, server(0), kept, len(ids), nil) })
	b.Run("one-row", func(b *testing.B) {
		benchBigQuery(b, server(bqBenchKept), bigqueryBody(b, "R00000000", ids[:1]), 1, nil)
	})
}
