package gateway

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/snowgate/snowgate/locapi"
	"github.com/snowgate/snowgate/sim"
)

// bqPath is where the tests serve BigQuery's function: the default of
// snowgate serve --bigquery-path.
const bqPath = "/bigquery/resolve_location"

// goldenBigQuery is the request BigQuery's remote-functions page documents,
// exactly (PROTOCOL.md section 8).
const goldenBigQuery = `{"requestId": "124ab1c",
 "caller": "//bigquery.googleapis.com/projects/myproject/jobs/myproject:US.bquxjob_5b4c112c_17961fafeaf",
 "sessionUser": "test-user@test-company.com",
 "userDefinedContext": {"key1": "value1", "key2": "v2"},
 "calls": [[null, 1, "", "abc"], ["abc", "9007199254740993", null, null]]}`

// bqBody is a request with requestId id ("" leaves it out) whose calls
// have one argument each, given as JSON text.
func bqBody(id string, args ...string) string {
	var sb strings.Builder
	sb.WriteString("{")
	if id != "" {
		js, _ := json.Marshal(id)
		fmt.Fprintf(&sb, `"requestId":%s,`, js)
	}
	sb.WriteString(`"caller":"//bigquery.googleapis.com/projects/p/jobs/p:US.bquxjob_t","calls":[`)
	for i, a := range args {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString("[" + a + "]")
	}
	sb.WriteString("]}")
	return sb.String()
}

// bqQuoted returns each id as a JSON string.
func bqQuoted(ids ...string) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		js, _ := json.Marshal(id)
		out[i] = string(js)
	}
	return out
}

func bqServer(t testing.TB, res Resolver, cfg Config) *Server {
	t.Helper()
	cfg.BigQueryPath = bqPath
	return newServer(t, res, cfg)
}

func bqDo(t testing.TB, h http.Handler, body string, headers map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	return do(t, h, request{path: bqPath, body: body, headers: headers})
}

// bqReplies parses a 200 answer, which must be exactly {"replies": [...]}.
func bqReplies(t testing.TB, w *httptest.ResponseRecorder) []string {
	t.Helper()
	if w.Code != http.StatusOK {
		t.Fatalf("got %d %.300s; want 200", w.Code, w.Body)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(w.Body.Bytes(), &top); err != nil || len(top) != 1 {
		t.Fatalf("answer %.300s: %v; want one key, replies", w.Body, err)
	}
	var replies []json.RawMessage
	if err := json.Unmarshal(top["replies"], &replies); err != nil || replies == nil {
		t.Fatalf("replies %.300s: %v; want an array", top["replies"], err)
	}
	out := make([]string, len(replies))
	for i, r := range replies {
		out[i] = string(r)
	}
	return out
}

// bqErrorOf checks a non-200 answer is BigQuery's {"errorMessage": "..."}:
// JSON, under 1 KB, one non-empty line; it returns the message.
func bqErrorOf(t testing.TB, w *httptest.ResponseRecorder, status int) string {
	t.Helper()
	if w.Code != status {
		t.Fatalf("got %d %.300s; want %d", w.Code, w.Body, status)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q; want application/json", ct)
	}
	if w.Body.Len() > maxBigQueryError {
		t.Fatalf("error body of %d bytes; want at most %d", w.Body.Len(), maxBigQueryError)
	}
	var e struct {
		ErrorMessage *string `json:"errorMessage"`
	}
	dec := json.NewDecoder(bytes.NewReader(w.Body.Bytes()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil || e.ErrorMessage == nil {
		t.Fatalf("error body %q: %v; want {\"errorMessage\": ...}", w.Body, err)
	}
	if m := *e.ErrorMessage; m == "" || strings.ContainsAny(m, "\r\n") {
		t.Fatalf("errorMessage %q; want one non-empty line", m)
	}
	return *e.ErrorMessage
}

// TestBigQueryGoldenRequest: the documented request decodes field by field;
// its four-argument calls are refused naming the call, since
// resolve_location takes one; and each of its arguments, sent as a call of
// its own, is answered by the same rules as Snowflake's (the INT64 beyond
// 2^53 looked up as its exact text).
func TestBigQueryGoldenRequest(t *testing.T) {
	req, err := parseBigQuery([]byte(goldenBigQuery))
	if err != nil {
		t.Fatal(err)
	}
	if req.RequestID != "124ab1c" || req.Caller != "//bigquery.googleapis.com/projects/myproject/jobs/myproject:US.bquxjob_5b4c112c_17961fafeaf" {
		t.Fatalf("got requestId %q caller %q", req.RequestID, req.Caller)
	}
	if got := bigqueryContextValue(req.Context, "key1"); got != "value1" {
		t.Fatalf("userDefinedContext key1: got %q; want value1", got)
	}
	if got := bigqueryContextValue(req.Context, "KEY2"); got != "v2" {
		t.Fatalf("userDefinedContext KEY2: got %q; want v2 (any case, like a header)", got)
	}

	f := newFake("abc", "1", "9007199254740993")
	h := bqServer(t, f, Config{}).Handler()
	if msg := bqErrorOf(t, bqDo(t, h, goldenBigQuery, nil), http.StatusBadRequest); !strings.Contains(msg, "call 0 has 4 arguments, want 1") {
		t.Fatalf("errorMessage %q; want it to name call 0 and its 4 arguments", msg)
	}
	if f.callCount() != 0 {
		t.Fatal("a refused request reached the resolver")
	}

	var golden struct{ Calls [][]json.RawMessage }
	if err := json.Unmarshal([]byte(goldenBigQuery), &golden); err != nil {
		t.Fatal(err)
	}
	var args []string
	for _, call := range golden.Calls {
		for _, a := range call {
			args = append(args, string(a))
		}
	}
	got := bqReplies(t, bqDo(t, h, bqBody("124ab1c", args...), nil))
	found := func(id string) string { return string(f.found[id].JSON) }
	want := []string{"null", found("1"), "null", found("abc"), found("abc"), found("9007199254740993"), "null", "null"}
	if !slices.Equal(got, want) {
		t.Fatalf("replies\n got %v\nwant %v", got, want)
	}
	// The empty ID is the resolver's to refuse, as on Snowflake's path.
	if ids := f.seenIDs(); !slices.Equal(ids, []string{"1", "", "abc", "abc", "9007199254740993"}) {
		t.Fatalf("resolver saw %q; want 1, \"\", abc, abc, 9007199254740993", ids)
	}
}

// TestBigQueryRepliesMatchSnowflake: every reply is the value Snowflake's
// row gets for the same argument, under each --on-row-error and
// --not-found, one reply per call in call order.
func TestBigQueryRepliesMatchSnowflake(t *testing.T) {
	args := []string{`"a"`, `"zz"`, `null`, `"noloc"`, `true`, `{"x":1}`, `42`, `"b"`, `"fail-1"`, `""`, `"a"`,
		`"\u00e9t\u00e9"`, `-7`, `12345678901234567890123`, `"a\ud800"`, `[1]`}
	var sf strings.Builder
	sf.WriteString(`{"data":[`)
	for i, a := range args {
		if i > 0 {
			sf.WriteByte(',')
		}
		fmt.Fprintf(&sf, "[%d,%s]", i, a)
	}
	sf.WriteString("]}")
	for name, cfg := range map[string]Config{"defaults": {}, "error objects": {OnRowError: RowErrorObject},
		"not-found objects": {NotFound: NotFoundObject, OnRowError: RowErrorObject}} {
		t.Run(name, func(t *testing.T) {
			s := bqServer(t, newFake("a", "b", "42", "été"), cfg)
			got := bqReplies(t, bqDo(t, s.Handler(), bqBody("R1", args...), nil))
			w := do(t, s.Handler(), request{body: sf.String()})
			rows, want := rowsOf(t, w.Body.Bytes())
			if len(rows) != len(args) || !slices.Equal(got, want) {
				t.Fatalf("BigQuery replies\n %v\nSnowflake values\n %v", got, want)
			}
		})
	}
}

// TestBigQueryHostileRequests: every malformed or hostile request gets a 4xx
// with a short errorMessage (never a 5xx, which BigQuery would retry) or
// the right per-call null, and the server then still serves.
func TestBigQueryHostileRequests(t *testing.T) {
	f := newFake("a")
	s := bqServer(t, f, Config{MaxBody: 1 << 20})
	a := string(f.found["a"].JSON)
	for _, tt := range bqHostileCases() {
		t.Run(tt.name, func(t *testing.T) {
			tt.req.path = bqPath
			w := do(t, s.Handler(), tt.req)
			if tt.wantStatus != http.StatusOK {
				if tt.wantStatus == http.StatusMethodNotAllowed {
					// gin answers these before the route: not BigQuery's form.
					if w.Code != tt.wantStatus {
						t.Fatalf("got %d; want %d", w.Code, tt.wantStatus)
					}
					return
				}
				bqErrorOf(t, w, tt.wantStatus)
				return
			}
			want := slices.Clone(tt.wantVals)
			for i := range want {
				if want[i] == "A" {
					want[i] = a
				}
			}
			if got := bqReplies(t, w); !slices.Equal(got, want) {
				t.Fatalf("got replies %v; want %v", got, want)
			}
		})
	}
	if got := bqReplies(t, bqDo(t, s.Handler(), bqBody("after", `"a"`), nil)); !slices.Equal(got, []string{a}) {
		t.Fatalf("after hostile requests: got %v; want a's record", got)
	}
}

// bqHostileCase is a request and its answer: a status, and for 200 the
// replies ("A" stands for the record of ID a).
type bqHostileCase struct {
	name       string
	req        request
	wantStatus int
	wantVals   []string
}

func bqHostileCases() []bqHostileCase {
	long := strings.Repeat("x", 100<<10)
	return []bqHostileCase{
		{"empty body", request{}, 400, nil},
		{"invalid JSON", request{body: `{"calls":[["a"]]`}, 400, nil},
		{"trailing data", request{body: `{"calls":[["a"]]}{}`}, 400, nil},
		{"top-level array", request{body: `[["a"]]`}, 400, nil},
		{"top-level null", request{body: `null`}, 400, nil},
		{"top-level string", request{body: `"calls"`}, 400, nil},
		{"no calls", request{body: `{"requestId":"r"}`}, 400, nil},
		{"calls null", request{body: `{"calls":null}`}, 400, nil},
		{"calls object", request{body: `{"calls":{"0":["a"]}}`}, 400, nil},
		{"calls string", request{body: `{"calls":"[[\"a\"]]"}`}, 400, nil},
		{"call not an array", request{body: `{"calls":["a"]}`}, 400, nil},
		{"call null", request{body: `{"calls":[["a"],null]}`}, 400, nil},
		{"call without arguments", request{body: `{"calls":[[]]}`}, 400, nil},
		{"call with two arguments", request{body: `{"calls":[["a","b"]]}`}, 400, nil},
		{"requestId a number", request{body: `{"requestId":5,"calls":[]}`}, 400, nil},
		{"caller an object", request{body: `{"caller":{},"calls":[]}`}, 400, nil},
		{"raw control character", request{body: "{\"calls\":[[\"a\x01b\"]]}"}, 400, nil},
		{"unsupported encoding", request{body: `{"calls":[]}`, headers: map[string]string{"Content-Encoding": "br"}}, 415, nil},
		{"corrupt gzip", request{body: `{"calls":[]}`, headers: map[string]string{"Content-Encoding": "gzip"}}, 400, nil},
		{"body over the limit", request{body: `{"calls":[["` + strings.Repeat("a", 2<<20) + `"]]}`}, 413, nil},
		{"GET", request{method: http.MethodGet}, 405, nil},
		{"PUT", request{method: http.MethodPut, body: `{"calls":[]}`}, 405, nil},
		{"empty calls", request{body: `{"calls":[]}`}, 200, []string{}},
		{"unknown fields ignored", request{body: `{"x":1,"calls":[["a"]],"userDefinedContext":5,"sessionUser":null}`}, 200, []string{"A"}},
		{"100 KB id", request{body: `{"calls":[["` + long + `"]]}`}, 200, []string{"null"}},
		{"escaped control character", request{body: `{"calls":[["a\u0007b"]]}`}, 200, []string{"null"}},
		{"invalid UTF-8", request{body: "{\"calls\":[[\"\xc3\x28\"]]}"}, 200, []string{"null"}},
		{"lone surrogate", request{body: `{"calls":[["\udc00"]]}`}, 200, []string{"null"}},
		{"empty id", request{body: `{"calls":[[""]]}`}, 200, []string{"null"}},
		{"boolean, object and array ids", request{body: `{"calls":[[true],[{"a":1}],[["a"]]]}`}, 200, []string{"null", "null", "null"}},
		{"null id", request{body: `{"calls":[[null]]}`}, 200, []string{"null"}},
		{"whitespace everywhere", request{body: " {\n\"calls\" : [ [ \"a\" ] ,\n[ null ] ] } "}, 200, []string{"A", "null"}},
	}
}

func TestBigQueryErrorBody(t *testing.T) {
	for _, msg := range []string{"short", strings.Repeat("\x01", 4000), strings.Repeat("é\"", 3000), strings.Repeat("a", 1<<20)} {
		body := bigqueryError(msg)
		var e struct{ ErrorMessage string }
		if err := json.Unmarshal(body, &e); err != nil {
			t.Fatalf("bigqueryError(%.20q...) = %.60s: %v", msg, body, err)
		}
		if len(body) > maxBigQueryError || e.ErrorMessage == "" || !strings.HasPrefix(msg, strings.TrimSuffix(e.ErrorMessage, "...")) {
			t.Fatalf("bigqueryError(%.20q...): %d bytes, message %.40q; want at most %d bytes of the message's start",
				msg, len(body), e.ErrorMessage, maxBigQueryError)
		}
	}
	if got := string(bigqueryError(`bad "x"`)); got != `{"errorMessage":"bad \"x\""}` {
		t.Fatalf("got %s", got)
	}
}

// TestBigQueryReplays: a request BigQuery sends again (same requestId and
// calls) is answered from the first one's answer without resolving again;
// the same requestId with other calls, a request without a requestId and a
// one-row request are worked on each time.
func TestBigQueryReplays(t *testing.T) {
	reg := prometheus.NewRegistry()
	f := newFake("a", "b")
	s, err := New(f, Config{BigQueryPath: bqPath}, reg)
	if err != nil {
		t.Fatal(err)
	}
	h := s.Handler()
	fa, fb := string(f.found["a"].JSON), string(f.found["b"].JSON)
	steps := []struct {
		name, body string
		want       []string
		calls      int // resolver calls so far
	}{
		{"first", bqBody("R1", `"a"`, `"b"`), []string{fa, fb}, 1},
		{"re-sent", bqBody("R1", `"a"`, `"b"`), []string{fa, fb}, 1},
		{"re-sent with other whitespace", strings.ReplaceAll(bqBody("R1", `"a"`, `"b"`), ",", " , "), []string{fa, fb}, 1},
		{"same requestId, other calls", bqBody("R1", `"b"`, `"a"`), []string{fb, fa}, 2},
		{"other requestId", bqBody("R2", `"a"`, `"b"`), []string{fa, fb}, 3},
		{"no requestId", bqBody("", `"a"`, `"b"`), []string{fa, fb}, 4},
		{"no requestId again", bqBody("", `"a"`, `"b"`), []string{fa, fb}, 5},
		{"one row", bqBody("R3", `"a"`), []string{fa}, 6},
		{"one row again", bqBody("R3", `"a"`), []string{fa}, 7},
	}
	for _, st := range steps {
		if got := bqReplies(t, bqDo(t, h, st.body, nil)); !slices.Equal(got, st.want) {
			t.Fatalf("%s: got %v; want %v", st.name, got, st.want)
		}
		if got := f.callCount(); got != st.calls {
			t.Fatalf("%s: resolver called %d times; want %d", st.name, got, st.calls)
		}
	}
	m := gathered(t, reg)
	if got := m[`snowgate_gateway_batches_total{outcome="replayed",protocol="bigquery"}`]; got != 2 {
		t.Fatalf("replayed BigQuery batches: %v; want 2", got)
	}
	if got := m[`snowgate_gateway_batches_total{outcome="ok",protocol="bigquery"}`]; got != 7 {
		t.Fatalf("ok BigQuery batches: %v; want 7", got)
	}
}

// TestBigQueryAuth: with --auth-header, the secret is accepted in that
// header or in userDefinedContext under the header's name (any case), and
// never written to a log line.
func TestBigQueryAuth(t *testing.T) {
	const hdr, secret = "sf-custom-snowgate-secret", "s3cret-Value-42"
	withContext := func(ctx string) string {
		return `{"requestId":"A1","userDefinedContext":` + ctx + `,"calls":[["a"]]}`
	}
	tests := []struct {
		name    string
		body    string
		headers map[string]string
		want    int
	}{
		{"nothing", bqBody("A1", `"a"`), nil, 401},
		{"header", bqBody("A1", `"a"`), map[string]string{hdr: secret}, 200},
		{"wrong header", bqBody("A1", `"a"`), map[string]string{hdr: secret + "x"}, 401},
		{"context", withContext(`{"` + hdr + `":"` + secret + `"}`), nil, 200},
		{"context key in other case", withContext(`{"SF-Custom-Snowgate-Secret":"` + secret + `"}`), nil, 200},
		{"context with other keys", withContext(`{"key1":"v","` + hdr + `":"` + secret + `"}`), nil, 200},
		{"wrong context", withContext(`{"` + hdr + `":"` + secret[:5] + `"}`), nil, 401},
		{"secret under another key", withContext(`{"secret":"` + secret + `"}`), nil, 401},
		{"context not strings", withContext(`{"` + hdr + `":42}`), nil, 401},
		{"context an array", withContext(`["` + secret + `"]`), nil, 401},
		{"invalid JSON", `{"calls":`, nil, 400},
		{"calls broken, no secret", `{"calls":[[1,2]]}`, nil, 401},
		{"calls broken, with the header", `{"calls":[[1,2]]}`, map[string]string{hdr: secret}, 400},
	}
	var logs syncBuffer
	s := bqServer(t, newFake("a"), Config{AuthHeader: hdr, AuthSecret: secret, Logger: debugLogger(&logs)})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := bqDo(t, s.Handler(), tt.body, tt.headers)
			if tt.want == http.StatusOK {
				if got := bqReplies(t, w); len(got) != 1 || got[0] == "null" {
					t.Fatalf("got replies %v; want a's record", got)
				}
				return
			}
			msg := bqErrorOf(t, w, tt.want)
			if strings.Contains(msg, secret) {
				t.Fatalf("errorMessage %q shows the secret", msg)
			}
		})
	}
	if out := logs.String(); strings.Contains(out, secret) || strings.Contains(out, secret[:5]) || !strings.Contains(out, `"outcome":"unauthorized"`) {
		t.Fatalf("logs hold the secret, or no unauthorized line:\n%s", out)
	}
}

// TestBigQueryRefusals: the engine's refusals in BigQuery's form, with the
// statuses BigQuery retries: 429 over the in-flight cap, 503 while draining.
func TestBigQueryRefusals(t *testing.T) {
	f := newFake("a", "b")
	f.entered = make(chan []string, 1)
	f.release = make(chan struct{})
	s := bqServer(t, f, Config{MaxInflightRows: 2})
	first := make(chan *httptest.ResponseRecorder, 1)
	go func() { first <- bqDo(t, s.Handler(), bqBody("R1", `"a"`, `"b"`), nil) }()
	<-f.entered
	if msg := bqErrorOf(t, bqDo(t, s.Handler(), bqBody("R2", `"a"`), nil), http.StatusTooManyRequests); !strings.Contains(msg, "overloaded") {
		t.Fatalf("errorMessage %q; want overloaded", msg)
	}
	close(f.release)
	if got := bqReplies(t, <-first); len(got) != 2 || got[0] != string(f.found["a"].JSON) {
		t.Fatalf("first request: got %v", got)
	}
	s.batches.drain()
	if msg := bqErrorOf(t, bqDo(t, s.Handler(), bqBody("R3", `"a"`), nil), http.StatusServiceUnavailable); !strings.Contains(msg, "shutting down") {
		t.Fatalf("errorMessage %q; want shutting down", msg)
	}
}

// TestBigQueryFailAndTooLarge: --on-row-error=fail makes a provider failure
// a 503 (BigQuery retries) and a bad ID a 400 naming the call; an answer over
// --max-response names the max_batching_rows that fits.
func TestBigQueryFailAndTooLarge(t *testing.T) {
	tests := []struct {
		name   string
		cfg    Config
		body   string
		status int
		want   string
	}{
		{"provider failure", Config{OnRowError: RowErrorFail}, bqBody("F1", `"a"`, `"fail-1"`), 503, "call 1: lookup failed; retry the batch"},
		{"bad id", Config{OnRowError: RowErrorFail}, bqBody("F2", `"a"`, `true`), 400, "call 1: invalid id: a boolean is not an id"},
		{"too large", Config{MaxResponse: 200}, bqBody("F3", `"a"`, `"a"`, `"a"`, `"a"`), 400, "in the function's OPTIONS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := bqServer(t, newFake("a"), tt.cfg)
			msg := bqErrorOf(t, bqDo(t, s.Handler(), tt.body, nil), tt.status)
			if !strings.Contains(msg, tt.want) || (tt.name == "too large" && !regexp.MustCompile(`set max_batching_rows = [1-9]`).MatchString(msg)) {
				t.Fatalf("errorMessage %q; want it to contain %q", msg, tt.want)
			}
		})
	}
}

// TestBigQuerySummaryAndMetrics: one summary line per request with
// protocol bigquery, its requestId and caller, and metrics under the
// bigquery label.
func TestBigQuerySummaryAndMetrics(t *testing.T) {
	var logs syncBuffer
	reg := prometheus.NewRegistry()
	s, err := New(newFake("a"), Config{BigQueryPath: bqPath, Logger: slog.New(slog.NewJSONHandler(&logs, nil))}, reg)
	if err != nil {
		t.Fatal(err)
	}
	bqReplies(t, bqDo(t, s.Handler(), bqBody("SUM-1", `"a"`, `"zz"`, `null`, `"fail-x"`), nil))
	bqErrorOf(t, bqDo(t, s.Handler(), `{"requestId":"SUM-2","calls":[[1,2]]}`, nil), http.StatusBadRequest)
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		lines = append(lines, m)
	}
	if len(lines) != 2 {
		t.Fatalf("got %d log lines; want 2:\n%s", len(lines), logs.String())
	}
	checkLine(t, "SUM-1", lines[0], map[string]any{"msg": "batch", "protocol": "bigquery", "request_id": "SUM-1",
		"caller": "//bigquery.googleapis.com/projects/p/jobs/p:US.bquxjob_t", "rows": 4, "found": 1, "not_found": 1,
		"null": 1, "failed": 1, "outcome": outcomePartial, "status": 200})
	checkLine(t, "SUM-2", lines[1], map[string]any{"protocol": "bigquery", "request_id": "SUM-2", "outcome": outcomeRejected, "status": 400})
	m := gathered(t, reg)
	for k, want := range map[string]float64{
		`snowgate_gateway_batches_total{outcome="partial",protocol="bigquery"}`:  1,
		`snowgate_gateway_batches_total{outcome="rejected",protocol="bigquery"}`: 1,
		`snowgate_gateway_rows_total{protocol="bigquery",result="found"}`:        1,
		`snowgate_gateway_rows_total{protocol="bigquery",result="failed"}`:       1,
		`snowgate_gateway_batch_duration_seconds{protocol="bigquery"}_count`:     1,
	} {
		if got := m[k]; got != want {
			t.Errorf("%s = %v; want %v", k, got, want)
		}
	}
}

// TestBigQueryGzip: a gzipped request is read, and a client that accepts
// gzip gets the same replies gzipped.
func TestBigQueryGzip(t *testing.T) {
	ids := make([]string, 50)
	for i := range ids {
		ids[i] = fmt.Sprintf("G%d", i)
	}
	f := newFake(ids...)
	s := bqServer(t, f, Config{})
	body := bqBody("GZ", bqQuoted(ids...)...)
	plain := bqReplies(t, bqDo(t, s.Handler(), body, nil))
	w := do(t, s.Handler(), request{path: bqPath, raw: compress(t, "gzip", []byte(body)),
		headers: map[string]string{"Content-Encoding": "gzip", "Accept-Encoding": "gzip"}})
	if w.Code != http.StatusOK || w.Header().Get("Content-Encoding") != "gzip" {
		t.Fatalf("got %d with Content-Encoding %q; want 200 gzip", w.Code, w.Header().Get("Content-Encoding"))
	}
	zr, err := gzip.NewReader(w.Body)
	if err != nil {
		t.Fatal(err)
	}
	inflated, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	w.Body = bytes.NewBuffer(inflated)
	if got := bqReplies(t, w); !slices.Equal(got, plain) || len(got) != len(ids) {
		t.Fatalf("gzipped replies differ from plain ones")
	}
}

// TestBigQueryScanMatchesDecoder: the hand scanner and encoding/json agree
// on the shapes the scanner takes, and the scanner leaves the rest.
func TestBigQueryScanMatchesDecoder(t *testing.T) {
	for _, raw := range []string{`[]`, `[["a"]]`, `[ [ "a" ] , [null],[0],[123] ]`, `[["9007199254740993"],[9007199254740993]]`} {
		fast, ok := scanBigQueryCalls([]byte(raw))
		if !ok {
			t.Fatalf("scanBigQueryCalls(%s) left it to encoding/json; want it taken", raw)
		}
		slow, err := parseBigQueryCallsSlow([]byte(raw))
		if err != nil || !reflect.DeepEqual(listOf(fast), listOf(slow)) {
			t.Fatalf("scanBigQueryCalls(%s) = %+v; encoding/json %+v, %v", raw, listOf(fast), listOf(slow), err)
		}
	}
	for _, raw := range []string{`[["a\"b"]]`, `[["é"]]`, `[[-1]]`, `[[1.5]]`, `[[01]]`, `[[true]]`, `[["a","b"]]`, `[["a"]`, `[["a"]] x`} {
		if _, ok := scanBigQueryCalls([]byte(raw)); ok {
			t.Fatalf("scanBigQueryCalls(%s) took it; want it left to encoding/json", raw)
		}
	}
}

// FuzzBigQueryRequest checks that no body panics, every refusal is one line
// that fits BigQuery's errorMessage, a decoded batch has one row per call
// numbered by its index, and the scanner agrees with encoding/json on
// everything it takes.
func FuzzBigQueryRequest(f *testing.F) {
	for _, seed := range []string{
		goldenBigQuery, bqBody("r", `"a"`, `null`, `1`), `{"calls":[]}`, `{}`, `[]`, `null`, ``,
		`{"calls":null}`, `{"calls":[5]}`, `{"calls":[[]]}`, `{"calls":[["a","b"]]}`, `{"requestId":1,"calls":[]}`,
		`{"calls":[["a"]]} x`, `{"calls":[[true],[{}],[[]],[-2.5e3]]}`, "{\"calls\":[[\"a\xffb\"]]}",
		`{"calls":[["\ud800"]]}`, ` { "calls" : [ [ "a" ] , [ 0 ] ] } `, `{"calls":[[007]]}`,
		`{"userDefinedContext":{"k":"v"},"calls":[["9007199254740993"]]}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		oneLine := func(err error) {
			if strings.ContainsAny(err.Error(), "\r\n") || len(bigqueryError(err.Error())) > maxBigQueryError {
				t.Fatalf("error %q: want one line that fits errorMessage", err)
			}
		}
		req, err := parseBigQuery(body)
		if err != nil {
			oneLine(err)
			return
		}
		b, err := parseBigQueryCalls(req.Calls)
		if err != nil {
			oneLine(err)
			return
		}
		for i, a := range listOf(b) {
			if a.row != int64(i) || (a.kind == idBad) != (a.err != nil) || (a.kind != idText && a.id != "") {
				t.Fatalf("call %d decoded as %+v", i, a)
			}
		}
		if fast, ok := scanBigQueryCalls(req.Calls); ok {
			slow, err := parseBigQueryCallsSlow(req.Calls)
			if err != nil || !reflect.DeepEqual(listOf(fast), listOf(slow)) {
				t.Fatalf("scanner got %+v; encoding/json %+v, %v", listOf(fast), listOf(slow), err)
			}
		}
	})
}

// TestBigQuerySQLScript holds sql/bigquery/remote_function.sql to the
// gateway: the endpoint is the default --bigquery-path, the key of
// user_defined_context is the --auth-header the deploy command sets, the
// function returns JSON, and Cloud Run lets only invokers in.
func TestBigQuerySQLScript(t *testing.T) {
	raw, err := os.ReadFile("../sql/bigquery/remote_function.sql")
	if err != nil {
		t.Fatal(err)
	}
	text := string(raw)
	for _, want := range []string{"CLOUD_RESOURCE", "roles/run.invoker", "--no-allow-unauthenticated", "REMOTE WITH CONNECTION"} {
		if !strings.Contains(text, want) {
			t.Errorf("the script never says %s", want)
		}
	}
	fn := regexp.MustCompile(`(?is)CREATE (?:OR REPLACE )?FUNCTION\s+\S*resolve_location` + "`?" + `\s*\(\s*id\s+STRING\s*\)\s*RETURNS\s+JSON\s+REMOTE WITH CONNECTION\s+\S+\s+OPTIONS\s*\((.*?)\);`)
	m := fn.FindStringSubmatch(text)
	if m == nil {
		t.Fatal("no CREATE FUNCTION ... resolve_location(id STRING) RETURNS JSON REMOTE WITH CONNECTION ... OPTIONS (...)")
	}
	opts := m[1]
	if ep := regexp.MustCompile(`endpoint\s*=\s*'[^']*?(/[^'/]+/[^'/]+)'`).FindStringSubmatch(opts); ep == nil || ep[1] != bqPath {
		t.Errorf("endpoint option %v; want a URL ending in %s, the default --bigquery-path", ep, bqPath)
	}
	if !regexp.MustCompile(`max_batching_rows\s*=\s*[1-9][0-9]*`).MatchString(opts) {
		t.Error("no max_batching_rows option")
	}
	key := regexp.MustCompile(`user_defined_context\s*=\s*\[\s*\(\s*"([^"]+)"`).FindStringSubmatch(opts)
	hdr := regexp.MustCompile(`SNOWGATE_AUTH_HEADER=([A-Za-z0-9-]+)`).FindStringSubmatch(text)
	if key == nil || hdr == nil || !strings.EqualFold(key[1], hdr[1]) {
		t.Errorf("user_defined_context key %v, deploy command's SNOWGATE_AUTH_HEADER %v; want the same name", key, hdr)
	}
}

// sendBigQuery posts one BigQuery request over HTTP.
func sendBigQuery(ctx context.Context, url string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// checkBQReplies compares a BigQuery answer with the simulator's truth.
func (st *stack) checkBQReplies(t testing.TB, code int, body []byte, ids []string) {
	t.Helper()
	got := bqReplies(t, &httptest.ResponseRecorder{Code: code, Body: bytes.NewBuffer(body)})
	if len(got) != len(ids) {
		t.Fatalf("got %d replies; want %d", len(got), len(ids))
	}
	for i, id := range ids {
		if want := st.expected(t, id); got[i] != want {
			t.Fatalf("reply %d (%s): got %s; want %s", i, id, got[i], want)
		}
	}
}

// TestBigQueryEndToEnd: BigQuery-shaped traffic against the simulator
// through the real client and cache: 1,000-call requests from 4 clients
// with 30% repeated IDs, one-row requests as under CASE, and every request
// sent twice as BigQuery may: every reply right, one provider call per
// distinct ID, no 429.
func TestBigQueryEndToEnd(t *testing.T) {
	st := startStack(t,
		sim.Config{Rate: 2000, Burst: 1000, Latency: time.Millisecond, NotFoundRatio: 0.05, NoLocationRatio: 0.05},
		locapi.Config{Rate: 2000, Concurrency: 32},
		Config{BigQueryPath: bqPath, BatchTimeout: 10 * time.Minute})
	url := strings.TrimSuffix(st.url, defaultPath) + bqPath
	rng := rand.New(rand.NewPCG(3, 4))
	ids := make([]string, 6000)
	distinct := 0
	for i := range ids {
		if i > 0 && rng.Float64() < 0.3 {
			ids[i] = ids[rng.IntN(i)]
			continue
		}
		ids[i] = fmt.Sprintf("BQ-%06d", distinct)
		distinct++
	}
	reqs := bqEndToEndRequests(ids)
	answers, err := bqSendEachTwice(url, reqs, bqBodiesOf(t, reqs))
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range reqs {
		for _, got := range answers[i] {
			st.checkBQReplies(t, http.StatusOK, got, r.rows)
		}
	}
	if got := st.sim.Total(); got != distinct {
		t.Fatalf("provider calls %d; want %d (one per distinct ID)", got, distinct)
	}
	if got := st.sim.Status(429); got != 0 {
		t.Fatalf("provider 429s: %d; want 0", got)
	}
}

// bqRequest is one BigQuery request of a test: its requestId and IDs.
type bqRequest struct {
	id   string
	rows []string
}

// bqEndToEndRequests cuts ids into requests of 1,000 calls, then adds 20
// one-row requests, as under CASE.
func bqEndToEndRequests(ids []string) []bqRequest {
	var reqs []bqRequest
	for lo := 0; lo < len(ids); lo += 1000 {
		reqs = append(reqs, bqRequest{fmt.Sprintf("bq-%d", lo), ids[lo:min(lo+1000, len(ids))]})
	}
	for i := range 20 {
		reqs = append(reqs, bqRequest{fmt.Sprintf("case-%d", i), []string{ids[i*97]}})
	}
	return reqs
}

func bqBodiesOf(t testing.TB, reqs []bqRequest) [][]byte {
	t.Helper()
	bodies := make([][]byte, len(reqs))
	for i, r := range reqs {
		bodies[i] = bigqueryBody(t, r.id, r.rows)
	}
	return bodies
}

// bqSendEachTwice posts every request twice (BigQuery may send one again
// after its success) from 4 clients, and returns both answers of each; any
// status but 200 is an error.
func bqSendEachTwice(url string, reqs []bqRequest, bodies [][]byte) ([][2][]byte, error) {
	answers := make([][2][]byte, len(reqs))
	var wg sync.WaitGroup
	errs := make(chan error, len(reqs))
	for c := range 4 {
		wg.Go(func() {
			for i := c; i < len(reqs); i += 4 {
				for try := range 2 {
					code, got, err := sendBigQuery(context.Background(), url, bodies[i])
					if err == nil && code != http.StatusOK {
						err = fmt.Errorf("request %s: %d %.200s", reqs[i].id, code, got)
					}
					if err != nil {
						errs <- err
						return
					}
					answers[i][try] = got
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return answers, <-errs // nil when none
}

// TestBigQueryAndSnowflakeOneServer: the same IDs through Snowflake's path
// and BigQuery's on one server share its one cache and provider budget:
// provider calls equal the distinct IDs across both, and both answer right.
func TestBigQueryAndSnowflakeOneServer(t *testing.T) {
	st := startStack(t, sim.Config{Rate: 1000, Burst: 500, NotFoundRatio: 0.1, NoLocationRatio: 0.05},
		locapi.Config{Rate: 1000, Concurrency: 16}, Config{BigQueryPath: bqPath})
	bqURL := strings.TrimSuffix(st.url, defaultPath) + bqPath
	ids := make([]string, 600)
	for i := range ids {
		ids[i] = fmt.Sprintf("BOTH-%04d", i)
	}
	ctx := context.Background()
	// Snowflake first with the first half, then BigQuery with all, then
	// Snowflake with all, at the same time as BigQuery's second half again.
	code, body, err := send(ctx, http.MethodPost, st.url, "sf-1", []byte(batchBody(ids[:300])))
	if err != nil || code != http.StatusOK {
		t.Fatalf("Snowflake batch: %d %v %.200s", code, err, body)
	}
	st.checkAnswer(t, body, ids[:300])
	code, body, err = sendBigQuery(ctx, bqURL, bigqueryBody(t, "bq-1", ids))
	if err != nil {
		t.Fatal(err)
	}
	st.checkBQReplies(t, code, body, ids)
	var wg sync.WaitGroup
	var sfCode, bqCode int
	var sfBody, bqAnswer []byte
	var sfErr, bqErr error
	sfReq, bqReq := []byte(batchBody(ids)), bigqueryBody(t, "bq-2", ids[300:])
	wg.Go(func() { sfCode, sfBody, sfErr = send(ctx, http.MethodPost, st.url, "sf-2", sfReq) })
	wg.Go(func() { bqCode, bqAnswer, bqErr = sendBigQuery(ctx, bqURL, bqReq) })
	wg.Wait()
	if sfErr != nil || bqErr != nil || sfCode != http.StatusOK {
		t.Fatalf("second round: Snowflake %d %v, BigQuery %v", sfCode, sfErr, bqErr)
	}
	st.checkAnswer(t, sfBody, ids)
	st.checkBQReplies(t, bqCode, bqAnswer, ids[300:])
	if got := st.sim.Total(); got != len(ids) {
		t.Fatalf("provider calls %d; want %d (one per distinct ID across both protocols)", got, len(ids))
	}
	if got := st.sim.Status(429); got != 0 {
		t.Fatalf("provider 429s: %d; want 0", got)
	}
}

// busyStore is a JobStore where another replica always holds the batch,
// or (kept set) has kept its answer; it records the keys it is asked for.
type busyStore struct {
	kept []byte
	mu   sync.Mutex // guards keys
	keys []string
}

func (b *busyStore) Claim(_ context.Context, key string, _ time.Duration) ([]byte, bool, error) {
	b.mu.Lock()
	b.keys = append(b.keys, key)
	b.mu.Unlock()
	return b.kept, b.kept == nil, nil
}

func (b *busyStore) Peek(context.Context, string, time.Duration) (int, []byte, bool, error) {
	return 0, nil, true, nil
}
func (b *busyStore) Renew(context.Context, string, time.Duration) error { return nil }
func (b *busyStore) Release(context.Context, string, int, []byte, bool, time.Duration) (bool, error) {
	return false, nil
}
func (b *busyStore) Generation() uint64 { return 1 }

// TestBigQuerySharedStore: with a JobStore, a request another replica
// works on past --batch-timeout answers 503 (BigQuery retries; never 202,
// even with --async), one another replica answered gets that answer, and
// every replica asks the store under the same key for the same request.
func TestBigQuerySharedStore(t *testing.T) {
	body := bqBody("SH-1", `"a"`, `"b"`)
	for _, async := range []bool{false, true} {
		st := &busyStore{}
		s := bqServer(t, newFake("a", "b"), Config{Shared: st, Async: async, BatchTimeout: 50 * time.Millisecond})
		if msg := bqErrorOf(t, bqDo(t, s.Handler(), body, nil), http.StatusServiceUnavailable); !strings.Contains(msg, "another replica") {
			t.Fatalf("async %v: errorMessage %q; want another replica", async, msg)
		}
	}
	kept := &busyStore{kept: []byte(`{"replies":["x",null]}`)}
	f := newFake("a", "b")
	if got := bqReplies(t, bqDo(t, bqServer(t, f, Config{Shared: kept}).Handler(), body, nil)); !slices.Equal(got, []string{`"x"`, "null"}) || f.callCount() != 0 {
		t.Fatalf("got %v after %d resolver calls; want the kept answer and none", got, f.callCount())
	}
	// Two servers: two digest seeds, one key.
	bqDo(t, bqServer(t, newFake(), Config{Shared: kept}).Handler(), body, nil)
	if len(kept.keys) != 2 || kept.keys[0] != kept.keys[1] || !strings.HasPrefix(kept.keys[0], bqPath+" SH-1:") {
		t.Fatalf("store keys %q; want the same %s SH-1:<digest> from both servers", kept.keys, bqPath)
	}
}

// TestBigQueryClientGone: a request whose caller leaves (BigQuery timed it
// out) goes on, and the re-sent request gets its answer without resolving
// again.
func TestBigQueryClientGone(t *testing.T) {
	f := newFake("a", "b")
	f.entered = make(chan []string, 1)
	f.release = make(chan struct{})
	h := bqServer(t, f, Config{}).Handler()
	body := bqBody("GONE-1", `"a"`, `"b"`)
	ctx, cancel := context.WithCancel(context.Background())
	w := httptest.NewRecorder()
	served := make(chan struct{})
	go func() {
		defer close(served)
		h.ServeHTTP(w, request{path: bqPath, body: body}.build(ctx))
	}()
	<-f.entered
	cancel()
	<-served
	if w.Code != http.StatusServiceUnavailable {
		t.Fatalf("left request: got %d; want 503 (which nobody reads)", w.Code)
	}
	close(f.release)
	if got := bqReplies(t, bqDo(t, h, body, nil)); len(got) != 2 || got[1] != string(f.found["b"].JSON) {
		t.Fatalf("re-sent request: got %v", got)
	}
	if n := f.callCount(); n != 1 {
		t.Fatalf("resolver called %d times; want 1", n)
	}
}
