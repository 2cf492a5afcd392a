package gateway

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/snowgate/snowgate/cache"
)

func TestRepeatedPostReturnsStoredAnswer(t *testing.T) {
	f := newFake("a", "b")
	s := newServer(t, f, Config{})
	req := request{body: `{"data":[[0,"a"],[1,"b"]]}`, headers: map[string]string{hdrBatchID: "q1:1:1:0:0"}}
	first := do(t, s.Handler(), req)
	second := do(t, s.Handler(), req)
	if first.Code != 200 || second.Code != 200 || first.Body.String() != second.Body.String() {
		t.Fatalf("got %d %q then %d %q; want the same 200 twice", first.Code, first.Body, second.Code, second.Body)
	}
	if got := f.callCount(); got != 1 {
		t.Fatalf("resolver called %d times; want 1", got)
	}
	// Another batch id is other work.
	req.headers[hdrBatchID] = "q1:1:1:0:1"
	do(t, s.Handler(), req)
	if got := f.callCount(); got != 2 {
		t.Fatalf("resolver called %d times after a new batch id; want 2", got)
	}
}

// TestKeptAnswerGzipped: a batch first sent accepting gzip is kept
// gzipped. Its replays are the same bytes with a Content-Length, a replay
// without gzip gets the JSON, the byte cap counts the compressed size, and
// the buffer the JSON was built in, reused by the next batch, leaves the
// kept answer alone. A batch first sent without gzip is kept as JSON and
// gzipped when a replay asks.
func TestKeptAnswerGzipped(t *testing.T) {
	ids := make([]string, 200)
	for i := range ids {
		ids[i] = fmt.Sprintf("id%03d", i)
	}
	reversed := slices.Clone(ids)
	slices.Reverse(reversed)
	f := newFake(ids...)
	plain := do(t, newServer(t, f, Config{}).Handler(), request{body: batchBody(ids)}).Body.Bytes()
	if len(plain) < gzipMinBytes {
		t.Fatalf("answer of %d bytes; the test needs one of at least %d", len(plain), gzipMinBytes)
	}
	s := newServer(t, f, Config{MaxResultBytes: int64(len(plain)) - 1})
	post := func(body, batchID, accept string) *httptest.ResponseRecorder {
		return do(t, s.Handler(), request{body: body, headers: map[string]string{hdrBatchID: batchID, "Accept-Encoding": accept}})
	}
	first := post(batchBody(ids), "q:1", "gzip")
	if got := gunzipped(t, first); !bytes.Equal(got, plain) {
		t.Fatalf("first answer decodes to %.80s; want %.80s", got, plain)
	}
	if cl := first.Header().Get("Content-Length"); cl != strconv.Itoa(first.Body.Len()) {
		t.Fatalf("Content-Length %q; want %d", cl, first.Body.Len())
	}
	post(batchBody(reversed), "q:2", "gzip") // may reuse the first one's buffer
	calls := f.callCount()
	again := post(batchBody(ids), "q:1", "gzip")
	if !bytes.Equal(again.Body.Bytes(), first.Body.Bytes()) || f.callCount() != calls {
		t.Fatalf("replay: %d bytes, %d more resolver calls; want the first answer's %d bytes and none",
			again.Body.Len(), f.callCount()-calls, first.Body.Len())
	}
	bare := post(batchBody(ids), "q:1", "")
	if ce := bare.Header().Get("Content-Encoding"); ce != "" || !bytes.Equal(bare.Body.Bytes(), plain) {
		t.Fatalf("replay without gzip: Content-Encoding %q, body %.80s; want none and %.80s", ce, bare.Body, plain)
	}

	post(batchBody(ids), "q:3", "")
	if got := gunzipped(t, post(batchBody(ids), "q:3", "gzip")); !bytes.Equal(got, plain) {
		t.Fatalf("batch kept as JSON, replayed with gzip: decodes to %.80s; want %.80s", got, plain)
	}
}

// gunzipped checks that w is a gzipped 200 and returns its body decoded.
func gunzipped(t *testing.T, w *httptest.ResponseRecorder) []byte {
	t.Helper()
	if w.Code != http.StatusOK || w.Header().Get("Content-Encoding") != "gzip" {
		t.Fatalf("got %d, Content-Encoding %q; want 200 gzip", w.Code, w.Header().Get("Content-Encoding"))
	}
	zr, err := gzip.NewReader(bytes.NewReader(w.Body.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return body
}

func TestReusedBatchIDWithOtherRows(t *testing.T) {
	f := newFake("a", "b", "c")
	s := newServer(t, f, Config{})
	id := map[string]string{hdrBatchID: "q3:1:1:0:0"}
	first := do(t, s.Handler(), request{body: `{"data":[[0,"a"],[1,"b"]]}`, headers: id})
	tests := []struct {
		name, body string
		code       int
	}{
		{"same rows, other bytes (a retry)", "{\n\"data\": [ [0, \"a\"],\n [1, \"b\"] ]\n}", http.StatusOK},
		{"other IDs", `{"data":[[0,"a"],[1,"c"]]}`, http.StatusConflict},
		{"other row numbers", `{"data":[[0,"a"],[2,"b"]]}`, http.StatusConflict},
		{"fewer rows", `{"data":[[0,"a"]]}`, http.StatusConflict},
		{"a null instead of an ID", `{"data":[[0,"a"],[1,null]]}`, http.StatusConflict},
		{"malformed", `{"data":[[0,"a"],[1]]}`, http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := do(t, s.Handler(), request{body: tt.body, headers: id})
			if w.Code != tt.code {
				t.Fatalf("got %d %q; want %d", w.Code, w.Body, tt.code)
			}
			if tt.code == http.StatusOK && w.Body.String() != first.Body.String() {
				t.Errorf("got %q; want the stored answer %q", w.Body, first.Body)
			}
			if tt.code == http.StatusConflict && !strings.Contains(w.Body.String(), "already used for a batch with other rows") {
				t.Errorf("got %q; want a reason naming the reused batch id", w.Body)
			}
		})
	}
	if got := f.callCount(); got != 1 {
		t.Fatalf("resolver called %d times; want 1", got)
	}
}

func TestFailedBatchRunsAgainOnRetry(t *testing.T) {
	f := newFake()
	s := newServer(t, f, Config{OnRowError: RowErrorFail})
	req := request{body: `{"data":[[0,"fail-x"]]}`, headers: map[string]string{hdrBatchID: "q2:1:1:0:0"}}
	for i := 1; i <= 2; i++ {
		if w := do(t, s.Handler(), req); w.Code != http.StatusServiceUnavailable {
			t.Fatalf("attempt %d: got %d; want 503", i, w.Code)
		}
		if got := f.callCount(); got != i {
			t.Fatalf("attempt %d: resolver called %d times; want %d (a failure is not kept)", i, got, i)
		}
	}
}

func TestAsyncBatch(t *testing.T) {
	f := newFake("a", "b")
	f.entered = make(chan []string, 1)
	f.release = make(chan struct{})
	reg := prometheus.NewRegistry()
	s, err := New(f, Config{Async: true, BatchTimeout: 20 * time.Millisecond}, reg)
	if err != nil {
		t.Fatal(err)
	}
	const key = "q3:1:1:0:0"
	post := request{body: `{"data":[[0,"a"],[1,"b"],[2,"c"]]}`, headers: map[string]string{hdrBatchID: key}}
	poll := request{method: http.MethodGet, headers: map[string]string{hdrBatchID: key}}
	steps := []struct {
		name string
		req  request
		want int
	}{
		{"POST answers 202 after the batch timeout", post, 202},
		{"GET while running", poll, 202},
		{"duplicate POST joins", post, 202},
	}
	for _, st := range steps {
		if w := do(t, s.Handler(), st.req); w.Code != st.want {
			t.Fatalf("%s: got %d %q; want %d", st.name, w.Code, w.Body, st.want)
		}
	}
	<-f.entered
	if got := testutil.ToFloat64(s.met.asyncJobs); got != 1 {
		t.Fatalf("async jobs gauge %v; want 1", got)
	}
	close(f.release)
	<-s.batches.jobs.get(jobKey(defaultPath, key), time.Now()).done
	for _, req := range []request{poll, post} {
		w := do(t, s.Handler(), req)
		if _, vals := rowsOf(t, w.Body.Bytes()); w.Code != 200 || len(vals) != 3 || vals[0] != string(f.found["a"].JSON) || vals[2] != "null" {
			t.Fatalf("%s after the work: got %d %s; want 200 with 3 rows", req.method, w.Code, w.Body)
		}
	}
	if got := f.callCount(); got != 1 {
		t.Fatalf("resolver called %d times; want 1", got)
	}
	if got := testutil.ToFloat64(s.met.asyncJobs); got != 0 {
		t.Fatalf("async jobs gauge %v; want 0", got)
	}
}

// TestAsyncFailureIsPolled: an asynchronous batch that fails answers its
// poll with the failure (503: Snowflake retries), not with 404.
func TestAsyncFailureIsPolled(t *testing.T) {
	f := newFake()
	f.release = make(chan struct{})
	s := newServer(t, f, Config{Async: true, BatchTimeout: 10 * time.Millisecond, OnRowError: RowErrorFail})
	const key = "q4:1:1:0:0"
	post := request{body: `{"data":[[0,"fail-1"]]}`, headers: map[string]string{hdrBatchID: key}}
	if w := do(t, s.Handler(), post); w.Code != 202 {
		t.Fatalf("POST: got %d; want 202", w.Code)
	}
	close(f.release)
	<-s.batches.jobs.get(jobKey(defaultPath, key), time.Now()).done
	w := do(t, s.Handler(), request{method: http.MethodGet, headers: map[string]string{hdrBatchID: key}})
	if w.Code != 503 || !strings.Contains(w.Body.String(), "lookup failed") {
		t.Fatalf("poll: got %d %q; want 503 lookup failed", w.Code, w.Body)
	}
	// Snowflake's retry of the batch runs it again (answering 503 or, if
	// slower than the batch timeout, 202).
	if w := do(t, s.Handler(), post); w.Code != 503 && w.Code != 202 {
		t.Fatalf("retry: got %d; want 503 or 202", w.Code)
	}
	<-s.batches.jobs.get(jobKey(defaultPath, key), time.Now()).done
	if got := f.callCount(); got != 2 {
		t.Fatalf("resolver called %d times; want 2 (the retry ran again)", got)
	}
}

func TestJobTable(t *testing.T) {
	t0 := time.Unix(1000, 0)
	finish := func(tb *jobTable, j *job, status int, body string, at time.Time) {
		j.status, j.body = status, []byte(body)
		tb.finish(j, at)
	}
	t.Run("kept for the TTL, then swept", func(t *testing.T) {
		tb := newJobTable(time.Minute, 100, 10, 1<<20, nil)
		j, _, _ := tb.start(jobSpec{key: "k", rows: 1, digest: 0}, t0, claimNone)
		finish(tb, j, 200, "x", t0)
		if got := tb.get("k", t0.Add(59*time.Second)); got != j {
			t.Fatalf("before the TTL: got %v; want the job", got)
		}
		if got := tb.get("k", t0.Add(61*time.Second)); got != nil {
			t.Fatalf("after the TTL: got a job; want none")
		}
		tb.sweep(t0.Add(61 * time.Second))
		if len(tb.byKey) != 0 || tb.keptBytes != 0 {
			t.Fatalf("after the sweep: %d keys, %d bytes; want none", len(tb.byKey), tb.keptBytes)
		}
	})
	t.Run("count and byte caps evict the oldest", func(t *testing.T) {
		tb := newJobTable(time.Hour, 100, 2, 9, nil)
		for i, body := range []string{"aaaa", "bbbb", "cccc", "dddddd"} {
			j, _, _ := tb.start(jobSpec{key: fmt.Sprint(i), rows: 1, digest: 0}, t0, claimNone)
			finish(tb, j, 200, body, t0)
		}
		var kept []string
		for _, k := range []string{"0", "1", "2", "3"} {
			if tb.get(k, t0) != nil {
				kept = append(kept, k)
			}
		}
		if !slices.Equal(kept, []string{"3"}) || tb.keptBytes != 6 {
			t.Fatalf("kept %v (%d bytes); want [3] (6 bytes)", kept, tb.keptBytes)
		}
	})
	t.Run("a failure is kept for polls, and a retry starts over", func(t *testing.T) {
		tb := newJobTable(time.Hour, 100, 10, 1<<20, nil)
		j, _, _ := tb.start(jobSpec{key: "k", rows: 1, digest: 0}, t0, claimNone)
		finish(tb, j, 503, "no", t0)
		if got := tb.get("k", t0); got != j || !got.failed() {
			t.Fatal("a 503 was not kept for a poll")
		}
		again, started, err := tb.start(jobSpec{key: "k", rows: 1, digest: 0}, t0, claimNone)
		if !started || err != nil || again == j || tb.get("k", t0) != again {
			t.Fatalf("retry of a failed batch: started %v err %v; want a new job under the key", started, err)
		}
	})
	t.Run("admission", func(t *testing.T) {
		tb := newJobTable(time.Hour, 10, 10, 1<<20, nil)
		big, ok, err := tb.start(jobSpec{key: "", rows: 50, digest: 0}, t0, claimNone)
		if !ok || err != nil {
			t.Fatalf("a batch over the cap with nothing running: %v; want admitted", err)
		}
		if _, _, err := tb.start(jobSpec{key: "", rows: 1, digest: 0}, t0, claimNone); !errors.Is(err, errOverloaded) {
			t.Fatalf("got %v; want errOverloaded", err)
		}
		finish(tb, big, 200, "", t0)
		a, _, _ := tb.start(jobSpec{key: "a", rows: 6, digest: 0}, t0, claimNone)
		if _, _, err := tb.start(jobSpec{key: "b", rows: 5, digest: 0}, t0, claimNone); !errors.Is(err, errOverloaded) {
			t.Fatalf("6+5 rows with cap 10: got %v; want errOverloaded", err)
		}
		if again, started, err := tb.start(jobSpec{key: "a", rows: 6, digest: 0}, t0, claimNone); again != a || started || err != nil {
			t.Fatalf("known key: got started %v err %v; want the running job", started, err)
		}
		tb.drain()
		if _, _, err := tb.start(jobSpec{key: "c", rows: 1, digest: 0}, t0, claimNone); !errors.Is(err, errDraining) {
			t.Fatalf("while draining: got %v; want errDraining", err)
		}
		select {
		case <-tb.idle:
			t.Fatal("idle while a job runs")
		default:
		}
		finish(tb, a, 200, "", t0)
		if err := tb.waitIdle(context.Background()); err != nil || tb.rowsInFlight != 0 {
			t.Fatalf("waitIdle: %v, %d rows in flight; want idle with 0", err, tb.rowsInFlight)
		}
	})
}

// countingResolver records the most rows it ever held at once.
type countingResolver struct {
	inner        Resolver
	mu           sync.Mutex // guards cur and max
	cur, max     int
	release      chan struct{}
	releaseAfter int64 // close release after this many 429s
	rejected     atomic.Int64
	releaseOnce  sync.Once
}

func (c *countingResolver) ResolveMany(ctx context.Context, ids []string) ([]cache.Outcome, cache.Stats) {
	c.mu.Lock()
	c.cur += len(ids)
	c.max = max(c.max, c.cur)
	c.mu.Unlock()
	<-c.release
	defer func() {
		c.mu.Lock()
		c.cur -= len(ids)
		c.mu.Unlock()
	}()
	return c.inner.ResolveMany(ctx, ids)
}

func (c *countingResolver) saw429() {
	if c.rejected.Add(1) >= c.releaseAfter {
		c.releaseOnce.Do(func() { close(c.release) })
	}
}

// TestOverload: 8x more parallel batches than the cap admits get only 200s
// and 429s, the rows held never pass the cap, and every batch succeeds once
// retried.
func TestOverload(t *testing.T) {
	const batchRows, admitted, clients = 100, 2, 16
	ids := make([]string, batchRows)
	for i := range ids {
		ids[i] = fmt.Sprintf("id-%d", i)
	}
	cr := &countingResolver{inner: newFake(ids...), release: make(chan struct{}), releaseAfter: clients - admitted}
	s := newServer(t, cr, Config{MaxInflightRows: admitted * batchRows})
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for c := range clients {
		wg.Go(func() {
			req := request{body: batchBody(ids), headers: map[string]string{hdrBatchID: fmt.Sprintf("q:%d", c)}}
			for attempt := 0; ; attempt++ {
				w := do(t, s.Handler(), req)
				switch w.Code {
				case http.StatusOK:
					if _, vals := rowsOf(t, w.Body.Bytes()); len(vals) != batchRows || vals[0] == "null" {
						errs <- fmt.Errorf("client %d: wrong answer %.100s", c, w.Body)
					}
					return
				case http.StatusTooManyRequests:
					cr.saw429()
					time.Sleep(time.Duration(attempt+1) * 100 * time.Microsecond) // a client's backoff
				default:
					errs <- fmt.Errorf("client %d: got %d %q; want only 200 or 429", c, w.Code, w.Body)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if cr.max > admitted*batchRows {
		t.Fatalf("resolver held %d rows at once; want at most %d", cr.max, admitted*batchRows)
	}
	if cr.rejected.Load() < clients-admitted {
		t.Fatalf("got %d 429s; want at least %d", cr.rejected.Load(), clients-admitted)
	}
	if s.batches.jobs.rowsInFlight != 0 {
		t.Fatalf("rows in flight after the test: %d; want 0", s.batches.jobs.rowsInFlight)
	}
}

// signalHandler is a slog handler that reports when a message is logged.
type signalHandler struct {
	slog.Handler
	msg string
	ch  chan struct{}
}

// Enabled is true for every level: the wrapped handler may discard
// everything, yet Handle must still see the record it waits for.
func (h signalHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h signalHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == h.msg {
		close(h.ch)
	}
	return h.Handler.Handle(ctx, r)
}

func (h signalHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return signalHandler{h.Handler.WithAttrs(as), h.msg, h.ch}
}

// TestDrainDuringParallelBatches: a shutdown during 16 batches answers all
// 16 with 200, reports not-ready and refuses new batches while draining,
// and Serve returns nil.
func TestDrainDuringParallelBatches(t *testing.T) {
	const n = 16
	ids := []string{"a", "b", "c"}
	f := newFake(ids...)
	f.entered = make(chan []string, n)
	f.release = make(chan struct{})
	draining := make(chan struct{})
	logger := slog.New(signalHandler{slog.DiscardHandler, "draining", draining})
	s := newServer(t, f, Config{Logger: logger, ShutdownTimeout: 20 * time.Second})
	ln, err := new(net.ListenConfig).Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, ln) }()
	base := "http://" + ln.Addr().String()

	type answer struct {
		code int
		body string
	}
	answers := make(chan answer, n)
	for i := range n {
		go func() {
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, base+defaultPath, strings.NewReader(batchBody(ids)))
			if err != nil {
				answers <- answer{0, err.Error()}
				return
			}
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				answers <- answer{0, err.Error()}
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			answers <- answer{resp.StatusCode, fmt.Sprintf("client %d: %s", i, b)}
		}()
	}
	for range n {
		<-f.entered
	}
	cancel()
	<-draining
	for _, c := range []struct {
		method, path, body string
		want               int
	}{
		{http.MethodGet, "/readyz", "", 503},
		{http.MethodGet, "/healthz", "", 200},
		{http.MethodPost, defaultPath, batchBody(ids), 503},
	} {
		req, err := http.NewRequestWithContext(t.Context(), c.method, base+c.path, strings.NewReader(c.body))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s while draining: %v", c.method, c.path, err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Fatalf("%s %s while draining: got %d; want %d", c.method, c.path, resp.StatusCode, c.want)
		}
	}
	close(f.release)
	for range n {
		a := <-answers
		if a.code != 200 || !strings.Contains(a.body, `"city_label":"Warsaw"`) {
			t.Errorf("got %d %.120s; want 200 with records", a.code, a.body)
		}
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve returned %v; want nil", err)
	}
}

// TestAuth: a missing or wrong secret gets 401, health stays open, and no
// log line or metric ever holds the secret.
func TestAuth(t *testing.T) {
	const header, secret = "sf-custom-shared-secret", "s3cr3t-VALUE-7f1d"
	var logs syncBuffer
	reg := prometheus.NewRegistry()
	s, err := New(newFake("a"), Config{AuthHeader: header, AuthSecret: secret, Logger: debugLogger(&logs)}, reg)
	if err != nil {
		t.Fatal(err)
	}
	body := `{"data":[[0,"a"]]}`
	tests := []struct {
		name string
		req  request
		want int
	}{
		{"missing", request{body: body}, 401},
		{"wrong", request{body: body, headers: map[string]string{header: "s3cr3t-VALUE-7f1e"}}, 401},
		{"prefix", request{body: body, headers: map[string]string{header: secret[:5]}}, 401},
		{"longer", request{body: body, headers: map[string]string{header: secret + "x"}}, 401},
		{"poll without", request{method: http.MethodGet, headers: map[string]string{hdrBatchID: "k"}}, 401},
		{"right", request{body: body, headers: map[string]string{
			header: secret, "sf-custom-api-token": "tok-91c2", "sf-custom-volume-measure": "liters",
			hdrQueryID: "qid-1", hdrBatchID: "qid-1:1",
		}}, 200},
		{"healthz open", request{method: http.MethodGet, path: "/healthz"}, 200},
		{"readyz open", request{method: http.MethodGet, path: "/readyz"}, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if w := do(t, s.Handler(), tt.req); w.Code != tt.want {
				t.Fatalf("got %d %q; want %d", w.Code, w.Body, tt.want)
			}
		})
	}
	metrics := do(t, promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), request{method: http.MethodGet, path: "/metrics"})
	out := logs.String() + metrics.Body.String()
	for _, leak := range []string{secret, "tok-91c2"} {
		if strings.Contains(out, leak) {
			t.Fatalf("logs or metrics contain %q:\n%s", leak, out)
		}
	}
	// The debug line was written, so the absence above means something.
	for _, want := range []string{`"volume-measure":"liters"`, `"query_id":"qid-1"`, `"batch_id":"qid-1:1"`, `"outcome":"unauthorized"`} {
		if !strings.Contains(out, want) {
			t.Fatalf("logs lack %s:\n%s", want, out)
		}
	}
}

func TestSummaryLine(t *testing.T) {
	var logs syncBuffer
	s := newServer(t, newFake("a"), Config{Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	do(t, s.Handler(), request{body: `{"data":[[0,"a"],[1,"a"],[2,"zz"]]}`, headers: map[string]string{hdrQueryID: "Q", hdrBatchID: "Q:0"}})
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("got %d log lines; want one summary line:\n%s", len(lines), logs.String())
	}
	for _, want := range []string{`"msg":"batch"`, `"query_id":"Q"`, `"batch_id":"Q:0"`, `"rows":3`, `"distinct":2`,
		`"hits":2`, `"provider_calls":0`, `"outcome":"ok"`, `"duration_ms":`} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("summary %s lacks %s", lines[0], want)
		}
	}
}
