package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/snowgate/snowgate/locapi"
	"github.com/snowgate/snowgate/sim"
)

// redshiftAnswer is what a Lambda UDF answers, decoded strictly enough to
// tell a missing field from a zero one.
type redshiftAnswer struct {
	Success    *bool             `json:"success"`
	NumRecords *int              `json:"num_records"`
	Results    []json.RawMessage `json:"results"`
	ErrorMsg   *string           `json:"error_msg"`
}

// decodeAnswer parses an answer and checks the invariants every answer
// holds: valid JSON; success true with num_records results and no
// error_msg, or success false with a one-line error_msg and nothing else.
func decodeAnswer(t testing.TB, out []byte) redshiftAnswer {
	t.Helper()
	var a redshiftAnswer
	if err := json.Unmarshal(out, &a); err != nil {
		t.Fatalf("answer is not JSON: %v: %.300s", err, out)
	}
	switch {
	case a.Success == nil:
		t.Fatalf("answer has no success: %.300s", out)
	case *a.Success && (a.NumRecords == nil || a.Results == nil || *a.NumRecords != len(a.Results) || a.ErrorMsg != nil):
		t.Fatalf("success true needs num_records = len(results) and no error_msg: %.300s", out)
	case !*a.Success && (a.ErrorMsg == nil || *a.ErrorMsg == "" || strings.ContainsAny(*a.ErrorMsg, "\r\n") ||
		a.NumRecords != nil || a.Results != nil):
		t.Fatalf("success false needs a one-line error_msg only: %.300s", out)
	}
	return a
}

// resultTexts returns each result as the text Redshift's VARCHAR holds:
// the JSON string's content, or "NULL" for null.
func resultTexts(t testing.TB, a redshiftAnswer) []string {
	t.Helper()
	out := make([]string, len(a.Results))
	for i, r := range a.Results {
		if string(r) == "null" {
			out[i] = "NULL"
			continue
		}
		if err := json.Unmarshal(r, &out[i]); err != nil {
			t.Fatalf("result %d is neither null nor a JSON string: %s", i, r)
		}
	}
	return out
}

// redshiftEventFor builds the event Redshift sends for resolve_location
// over ids; "<null>" stands for a SQL NULL argument.
func redshiftEventFor(ids []string) []byte {
	var sb strings.Builder
	fmt.Fprintf(&sb, `{"request_id":"23FF1F97-F28A-44AA-AB67-266ED976BF40","cluster":"arn:aws:redshift:xxxx","user":"adminuser",`+
		`"database":"db1","external_function":"public.resolve_location","query_id":5678234,"num_records":%d,"arguments":[`, len(ids))
	for i, id := range ids {
		if i > 0 {
			sb.WriteByte(',')
		}
		if id == "<null>" {
			sb.WriteString("[null]")
			continue
		}
		js, _ := json.Marshal(id)
		fmt.Fprintf(&sb, "[%s]", js)
	}
	sb.WriteString("]}")
	return []byte(sb.String())
}

// quoted is v as a JSON string, by encoding/json (not the gateway's
// escaper).
func quoted(t testing.TB, v []byte) string {
	t.Helper()
	js, err := json.Marshal(string(v))
	if err != nil {
		t.Fatal(err)
	}
	return string(js)
}

// TestRedshiftGoldenEvent: the event of Redshift's page exactly. Its
// records carry two arguments, which resolve_location(varchar) never gets:
// a malformed request, failed whole and naming the first bad record.
func TestRedshiftGoldenEvent(t *testing.T) {
	const event = `{"request_id": "23FF1F97-F28A-44AA-AB67-266ED976BF40", "cluster": "arn:aws:redshift:xxxx",
 "user": "adminuser", "database": "db1", "external_function": "public.foo", "query_id": 5678234,
 "num_records": 4, "arguments": [[1, 2], [3, null], null, [4, 6]]}`
	f := newFake()
	s := newServer(t, f, Config{})
	a := decodeAnswer(t, s.Redshift(context.Background(), []byte(event)))
	want := "record 0 has 2 arguments, want 1: resolve_location takes one VARCHAR"
	if *a.Success || *a.ErrorMsg != want {
		t.Fatalf("got success %v, error_msg %q; want false, %q", *a.Success, *a.ErrorMsg, want)
	}
	if f.callCount() != 0 {
		t.Fatalf("resolver called %d times for a malformed event; want 0", f.callCount())
	}
}

// TestRedshiftGoldenOneArg: the same event for a one-argument function:
// exact answer bytes, a null record and a null argument answering null,
// a number argument looked up by its exact text.
func TestRedshiftGoldenOneArg(t *testing.T) {
	const event = `{"request_id": "23FF1F97-F28A-44AA-AB67-266ED976BF40", "cluster": "arn:aws:redshift:xxxx",
 "user": "adminuser", "database": "db1", "external_function": "public.resolve_location", "query_id": 5678234,
 "num_records": 5, "arguments": [["Q1"], [null], null, [9007199254740993], ["missing"]]}`
	f := newFake("Q1", "9007199254740993")
	s := newServer(t, f, Config{})
	got := string(s.Redshift(context.Background(), []byte(event)))
	want := `{"success":true,"num_records":5,"results":[` + quoted(t, foundEntry("Q1").JSON) + `,null,null,` +
		quoted(t, foundEntry("9007199254740993").JSON) + `,null]}`
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	if ids := f.seenIDs(); !reflect.DeepEqual(ids, []string{"Q1", "9007199254740993", "missing"}) {
		t.Fatalf("resolver got %q; want Q1, 9007199254740993, missing", ids)
	}
	// The page's answer shape, read back: one result per record, in order.
	a := decodeAnswer(t, []byte(got))
	if texts := resultTexts(t, a); texts[0] != string(foundEntry("Q1").JSON) || texts[1] != "NULL" {
		t.Fatalf("results %q; want Q1's object, then NULL", texts)
	}
}

// hostileEvent is an event and what a server with Q1 found and
// --on-row-error error must answer it.
type hostileEvent struct {
	name, event string
	err         string   // success false with this in error_msg
	want        []string // else these result texts
}

// redshiftHostile: malformed events, and odd but valid ones.
var redshiftHostile = func() []hostileEvent {
	q1 := string(foundEntry("Q1").JSON)
	deep := `{"arguments":[[` + strings.Repeat("[", 5000) + strings.Repeat("]", 5000) + `]]}`
	return []hostileEvent{
		{name: "empty", event: "", err: "not valid JSON"},
		{name: "not JSON", event: "arguments", err: "not valid JSON at byte 1"},
		{name: "null", event: "null", err: `must be a JSON object with an "arguments" array`},
		{name: "array", event: `[["a"]]`, err: `must be a JSON object with an "arguments" array`},
		{name: "string", event: `"{}"`, err: `must be a JSON object with an "arguments" array`},
		{name: "no arguments", event: `{"num_records":0}`, err: `"arguments" array`},
		{name: "arguments case", event: `{"Arguments":[["a"]]}`, err: `"arguments" array`},
		{name: "arguments null", event: `{"arguments":null}`, err: `"arguments" array`},
		{name: "arguments object", event: `{"arguments":{"0":["a"]}}`, err: `"arguments" array`},
		{name: "record number", event: `{"arguments":[["a"],7]}`, err: "record 1 must be an array of arguments or null, got 7"},
		{name: "record string", event: `{"arguments":["a"]}`, err: `record 0 must be an array of arguments or null, got "a"`},
		{name: "no argument", event: `{"arguments":[["a"],[]]}`, err: "record 1 has 0 arguments, want 1"},
		{name: "two arguments", event: `{"arguments":[["a","b"]]}`, err: "record 0 has 2 arguments, want 1"},
		{name: "count short", event: `{"num_records":2,"arguments":[["a"]]}`, err: `"num_records" is 2 but "arguments" has 1 records`},
		{name: "count long", event: `{"num_records":0,"arguments":[["a"]]}`, err: `"num_records" is 0 but "arguments" has 1 records`},
		{name: "count text", event: `{"num_records":"1","arguments":[["a"]]}`, err: `"num_records" must be an integer, got "1"`},
		{name: "count fraction", event: `{"num_records":1.0,"arguments":[["a"]]}`, err: `"num_records" must be an integer, got 1.0`},
		{name: "count null", event: `{"num_records":null,"arguments":[["a"]]}`, err: `"num_records" must be an integer, got null`},
		{name: "trailing data", event: `{"arguments":[["a"]]} {}`, err: "not valid JSON"},
		{name: "truncated", event: `{"arguments":[["a"],["b"`, err: "not valid JSON"},
		{name: "control character", event: "{\"arguments\":[[\"a\x01\"]]}", err: "not valid JSON"},
		{name: "empty batch", event: `{"num_records":0,"arguments":[]}`, want: []string{}},
		{name: "null record and argument", event: `{"arguments":[null,[null]]}`, want: []string{"NULL", "NULL"}},
		{name: "bool id", event: `{"arguments":[[true]]}`, want: []string{`{"error":"invalid id: a boolean is not an id"}`}},
		{name: "object id", event: `{"arguments":[[{"id":"a"}]]}`, want: []string{`{"error":"invalid id: an object is not an id"}`}},
		{name: "deep array id", event: deep, want: []string{`{"error":"invalid id: an array is not an id"}`}},
		{name: "bad UTF-8 id", event: "{\"arguments\":[[\"a\xffb\"]]}", want: []string{`{"error":"invalid id: not valid UTF-8"}`}},
		{name: "lone surrogate id", event: `{"arguments":[["\ud800"]]}`, want: []string{`{"error":"invalid id: an unpaired UTF-16 surrogate escape"}`}},
		{name: "empty id", event: `{"arguments":[[""]]}`, want: []string{`{"error":"invalid id: empty"}`}},
		{name: "escaped id", event: `{"arguments":[["\u0051\u0031"]]}`, want: []string{q1}},
		{name: "unknown nested fields", event: `{"x":{"y":[1,{"z":null}]},"arguments":[["Q1"]],"user":"\u00e9"}`,
			want: []string{q1}},
		{name: "arguments twice: the last counts", event: `{"arguments":[["x"],["y"]],"arguments":[["Q1"]]}`,
			want: []string{q1}},
		{name: "whitespace", event: " \n{ \"arguments\" :\t[ [ \"Q1\" ] ,\r\nnull ] , \"num_records\" : 2 }\n",
			want: []string{q1, "NULL"}},
	}
}()

// TestRedshiftHostileEvents: every malformed event fails whole with a
// clear reason and without a lookup; odd but valid ones answer every
// record.
func TestRedshiftHostileEvents(t *testing.T) {
	for _, tc := range redshiftHostile {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake("Q1")
			s := newServer(t, f, Config{OnRowError: RowErrorObject})
			a := decodeAnswer(t, s.Redshift(context.Background(), []byte(tc.event)))
			if tc.err != "" {
				if *a.Success || !strings.Contains(*a.ErrorMsg, tc.err) {
					t.Fatalf("got success %v, error_msg %v; want false with %q", *a.Success, a.ErrorMsg, tc.err)
				}
				if f.callCount() != 0 {
					t.Fatalf("resolver called %d times; want 0", f.callCount())
				}
				return
			}
			if !*a.Success {
				t.Fatalf("got error %q; want results %q", *a.ErrorMsg, tc.want)
			}
			if got := resultTexts(t, a); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got results %q; want %q", got, tc.want)
			}
		})
	}
}

// TestRedshiftEventTooLarge: an event over --max-body fails whole, naming
// the limit and the options that shrink a batch.
func TestRedshiftEventTooLarge(t *testing.T) {
	f := newFake()
	s := newServer(t, f, Config{MaxBody: 64})
	event := redshiftEventFor([]string{"a", "b", "c", "d", "e", "f"})
	a := decodeAnswer(t, s.Redshift(context.Background(), event))
	want := fmt.Sprintf("event too large: %d bytes, over the 64-byte limit (--max-body): lower MAX_BATCH_SIZE or MAX_BATCH_ROWS", len(event))
	if *a.Success || *a.ErrorMsg != want {
		t.Fatalf("got %v %q; want false %q", *a.Success, *a.ErrorMsg, want)
	}
}

// TestRedshiftBatchFailures: what fails a batch under Snowflake (a 4xx or
// 5xx) fails the Redshift query, with the same one-line reason.
func TestRedshiftBatchFailures(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		ids  []string
		want string
	}{
		{"provider failure, on-row-error fail", Config{OnRowError: RowErrorFail}, []string{"Q1", "fail-1"},
			"record 1: lookup failed; run the query again later"},
		{"invalid id, on-row-error fail", Config{OnRowError: RowErrorFail}, []string{"", "Q1"},
			"record 0: invalid id: empty"},
		{"answer over --max-response", Config{MaxResponse: 300}, []string{"Q1", "Q1", "Q1"},
			"over the 300-byte response limit: set MAX_BATCH_ROWS 1 (or a smaller MAX_BATCH_SIZE) on the external function"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t, newFake("Q1"), tc.cfg)
			a := decodeAnswer(t, s.Redshift(context.Background(), redshiftEventFor(tc.ids)))
			if *a.Success || !strings.Contains(*a.ErrorMsg, tc.want) {
				t.Fatalf("got %v %v; want false with %q", *a.Success, a.ErrorMsg, tc.want)
			}
		})
	}
}

// TestRedshiftEngineRefusals: overload, an invocation that ends before
// its batch, and drain each answer success false; none is a crash or a
// hang, and the held batch still answers every record.
func TestRedshiftEngineRefusals(t *testing.T) {
	f := newFake("Q1")
	f.entered = make(chan []string, 2)
	f.release = make(chan struct{})
	s := newServer(t, f, Config{MaxInflightRows: 3})
	held := make(chan []byte, 1)
	go func() { held <- s.Redshift(context.Background(), redshiftEventFor([]string{"Q1", "Q1"})) }()
	<-f.entered // two rows in flight

	a := decodeAnswer(t, s.Redshift(context.Background(), redshiftEventFor([]string{"Q1", "Q1"})))
	if *a.Success || *a.ErrorMsg != "overloaded: over 3 rows in flight; retry later" {
		t.Fatalf("over the cap: got %v %v; want the overload error", *a.Success, a.ErrorMsg)
	}

	ctx, cancel := context.WithCancel(context.Background())
	ended := make(chan []byte, 1)
	go func() { ended <- s.Redshift(ctx, redshiftEventFor([]string{"Q1"})) }()
	<-f.entered // the third row is in flight, held like the others
	cancel()
	a = decodeAnswer(t, <-ended)
	if *a.Success || *a.ErrorMsg != "invocation ended before its batch was answered: context canceled" {
		t.Fatalf("ended invocation: got %v %v; want the ended error", *a.Success, a.ErrorMsg)
	}

	close(f.release)
	if a := decodeAnswer(t, <-held); !*a.Success || len(a.Results) != 2 {
		t.Fatalf("held batch: got %+v; want 2 results", a)
	}
	s.batches.drain()
	a = decodeAnswer(t, s.Redshift(context.Background(), redshiftEventFor([]string{"Q1"})))
	if *a.Success || *a.ErrorMsg != errDraining.Error() {
		t.Fatalf("draining: got %v %v; want %q", *a.Success, a.ErrorMsg, errDraining)
	}
}

// TestRedshiftMetricsAndLog: batches count under protocol="redshift" and
// the summary line names the event's request and query IDs.
func TestRedshiftMetricsAndLog(t *testing.T) {
	var logs syncBuffer
	reg := prometheus.NewRegistry()
	s, err := New(newFake("Q1"), Config{Logger: debugLogger(&logs)}, reg)
	if err != nil {
		t.Fatal(err)
	}
	s.Redshift(context.Background(), redshiftEventFor([]string{"Q1", "<null>", "nope"}))
	s.Redshift(context.Background(), []byte(`{"request_id":"r-2","query_id":"q-2","arguments":[["a","b"]]}`))
	for _, c := range []struct {
		outcome string
		want    float64
	}{{outcomeOK, 1}, {outcomeRejected, 1}} {
		if got := testutil.ToFloat64(s.met.batches.WithLabelValues(protoRedshift, c.outcome)); got != c.want {
			t.Errorf("batches{redshift,%s} = %v; want %v", c.outcome, got, c.want)
		}
	}
	if got := testutil.ToFloat64(s.met.rows.WithLabelValues(protoRedshift, "found")); got != 1 {
		t.Errorf("rows{redshift,found} = %v; want 1", got)
	}
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		if m["msg"] == "batch" {
			lines = append(lines, m)
		}
	}
	if len(lines) != 2 {
		t.Fatalf("got %d batch lines; want 2: %s", len(lines), logs.String())
	}
	for i, want := range []map[string]any{
		{"protocol": "redshift", "request_id": "23FF1F97-F28A-44AA-AB67-266ED976BF40", "query_id": "5678234",
			"rows": 3.0, "found": 1.0, "null": 1.0, "not_found": 1.0, "outcome": outcomeOK, "status": 200.0},
		{"protocol": "redshift", "request_id": "r-2", "query_id": "q-2", "outcome": outcomeRejected, "status": 400.0},
	} {
		for k, v := range want {
			if lines[i][k] != v {
				t.Errorf("line %d: %s = %v; want %v", i, k, lines[i][k], v)
			}
		}
	}
}

// redshiftScanCases are events the hand scanner should take, and some it
// must leave to encoding/json.
var redshiftScanCases = []string{
	`{"arguments":[]}`,
	`{"arguments":[["a"],null,[null]],"num_records":3}`,
	`{"request_id":"r","query_id":12,"cluster":"c","flag":true,"none":null,"arguments":[["a"]]}`,
	` { "arguments" : [ [ "a" ] ] } `,
	`{"arguments":[["a"]],"num_records":2}`,
	`{"arguments":[["a"]],"arguments":[["b"]]}`,
	`{"num_records":1,"num_records":1,"arguments":[["a"]]}`,
	`{"arguments":[["a\"b"]]}`,
	`{"arguments":[[1]]}`,
	`{"arguments":[["a"]],"query_id":1.5}`,
	`{"arguments":[["a"]],"x":{}}`,
	`{"arguments":[["a"]]}x`,
	`{"arguments":[["a"],]}`,
	`{"arguments":[nul]}`,
	`{"arguments":[["é"]]}`,
	`{"request_id":"r","request_id":"s","arguments":[["a"]]}`,
}

// TestRedshiftScanAgrees: whatever the hand scanner accepts, encoding/json
// decodes to the same batch and log IDs.
func TestRedshiftScanAgrees(t *testing.T) {
	accepted := 0
	for _, ev := range redshiftScanCases {
		if checkScanAgrees(t, []byte(ev)) {
			accepted++
		}
	}
	if accepted < 5 {
		t.Fatalf("the scanner took %d of the plain events; want at least 5", accepted)
	}
	if !checkScanAgrees(t, redshiftEventFor([]string{"Q1", "<null>", "Q2"})) {
		t.Fatal("the scanner did not take the event Redshift sends")
	}
}

// checkScanAgrees reports whether scanRedshift took event, failing the
// test if parseRedshift disagrees with it.
func checkScanAgrees(t testing.TB, event []byte) bool {
	t.Helper()
	fast, ok := scanRedshift(event)
	if !ok {
		return false
	}
	slow, err := parseRedshift(event)
	if err != nil {
		t.Fatalf("scanner took %q; encoding/json says %v", event, err)
	}
	if !reflect.DeepEqual(fast.b, slow.b) || !reflect.DeepEqual(fast.ids, slow.ids) {
		t.Fatalf("%q: scanner %+v %v; encoding/json %+v %v", event, fast.b, fast.ids, slow.b, slow.ids)
	}
	return true
}

// FuzzRedshiftEvent: any event gets valid JSON, success true with one
// result per record of its arguments array, or success false with a
// one-line error_msg; never a panic; and the hand scanner never disagrees
// with encoding/json.
func FuzzRedshiftEvent(f *testing.F) {
	f.Add([]byte(`{"request_id": "23FF1F97-F28A-44AA-AB67-266ED976BF40", "cluster": "arn:aws:redshift:xxxx",
 "user": "adminuser", "database": "db1", "external_function": "public.foo", "query_id": 5678234,
 "num_records": 4, "arguments": [[1, 2], [3, null], null, [4, 6]]}`))
	f.Add(redshiftEventFor([]string{"Q1", "<null>", "fail-1", "", "noloc", "x"}))
	for _, ev := range redshiftScanCases {
		f.Add([]byte(ev))
	}
	s := newServer(f, newFake("Q1", "1"), Config{OnRowError: RowErrorObject, NotFound: NotFoundObject})
	f.Fuzz(func(t *testing.T, event []byte) {
		checkScanAgrees(t, event)
		a := decodeAnswer(t, s.Redshift(context.Background(), event))
		if !*a.Success {
			return
		}
		var top map[string]json.RawMessage
		var records []json.RawMessage
		if json.Unmarshal(event, &top) != nil || json.Unmarshal(top["arguments"], &records) != nil {
			t.Fatalf("success for an event encoding/json cannot read: %q", event)
		}
		if len(records) != len(a.Results) {
			t.Fatalf("%d results for %d records", len(a.Results), len(records))
		}
		for i, r := range resultTexts(t, a) {
			if r != "NULL" && !json.Valid([]byte(r)) {
				t.Fatalf("result %d holds no JSON value: %q", i, r)
			}
		}
	})
}

// checkRedshiftResults compares an answer with what the simulator says
// for ids: each found record's result is a JSON string holding exactly
// the VARIANT text Snowflake's function answers.
func (st *stack) checkRedshiftResults(t testing.TB, out []byte, ids []string) {
	t.Helper()
	a := decodeAnswer(t, out)
	if !*a.Success {
		t.Fatalf("got error %q; want results", *a.ErrorMsg)
	}
	texts := resultTexts(t, a)
	if len(texts) != len(ids) {
		t.Fatalf("got %d results; want %d", len(texts), len(ids))
	}
	for i, id := range ids {
		want := "NULL"
		if id != "<null>" {
			if want = st.expected(t, id); want == "null" {
				want = "NULL"
			}
		}
		if texts[i] != want {
			t.Fatalf("record %d (%s): got %.200s; want %.200s", i, id, texts[i], want)
		}
	}
}

// TestRedshiftAgainstSimulator: events of 1,000 records from 4 concurrent
// invocations, a third of the records repeating earlier IDs and some NULL,
// provider limited to 1,000 req/s: every result right, provider calls
// equal to distinct IDs, no 429.
func TestRedshiftAgainstSimulator(t *testing.T) {
	// Half a second of provider burst, as in TestEndToEnd: a starved
	// machine hands the in-process simulator paced requests all at once.
	st := startStack(t,
		sim.Config{Rate: 1000, Burst: 500, NotFoundRatio: 0.1, NoLocationRatio: 0.05},
		locapi.Config{Rate: 1000, Concurrency: 32},
		Config{BatchTimeout: 5 * time.Minute}) // guards a hang only: a busy machine may be slow
	rng := rand.New(rand.NewPCG(3, 4))
	ids := make([]string, 4000)
	distinct := 0
	for i := range ids {
		switch r := rng.Float64(); {
		case r < 0.02:
			ids[i] = "<null>"
		case i > 0 && r < 0.33:
			ids[i] = ids[rng.IntN(i)]
		default:
			ids[i] = fmt.Sprintf("RS-%06d", distinct)
			distinct++
		}
	}
	if ids[0] == "<null>" { // repeats of a null are nulls, not IDs
		t.Fatal("pick another seed: the first record is null")
	}
	const size, invocations = 1000, 4
	outs := make([][]byte, len(ids)/size)
	var wg sync.WaitGroup
	for c := range invocations {
		wg.Go(func() {
			for b := c; b < len(outs); b += invocations {
				outs[b] = st.gw.Redshift(context.Background(), redshiftEventFor(ids[b*size:(b+1)*size]))
			}
		})
	}
	wg.Wait()
	for b, out := range outs {
		st.checkRedshiftResults(t, out, ids[b*size:(b+1)*size])
	}
	if got := st.sim.Total(); got != distinct {
		t.Fatalf("provider calls %d; want %d (one per distinct ID)", got, distinct)
	}
	if got := st.sim.Status(429); got != 0 {
		t.Fatalf("provider 429s: %d; want 0", got)
	}
}

// TestRedshiftAndSnowflakeShareOneCache: the same IDs through Snowflake's
// HTTP path and through Redshift on one server: one provider call per
// distinct ID across both, and the same value object in both answers.
func TestRedshiftAndSnowflakeShareOneCache(t *testing.T) {
	st := startStack(t, sim.Config{NotFoundRatio: 0.2}, locapi.Config{Concurrency: 8}, Config{})
	var sfIDs, rsIDs []string
	for i := range 300 {
		sfIDs = append(sfIDs, fmt.Sprintf("BOTH-%04d", i))
		rsIDs = append(rsIDs, fmt.Sprintf("BOTH-%04d", i+150)) // half shared
	}
	code, body, err := send(context.Background(), http.MethodPost, st.url, "both:1", []byte(batchBody(sfIDs)))
	if err != nil || code != http.StatusOK {
		t.Fatalf("Snowflake batch: %d %v %.200s", code, err, body)
	}
	st.checkAnswer(t, body, sfIDs)
	_, sfVals := rowsOf(t, body)
	out := st.gw.Redshift(context.Background(), redshiftEventFor(rsIDs))
	st.checkRedshiftResults(t, out, rsIDs)
	texts := resultTexts(t, decodeAnswer(t, out))
	for i := range 150 { // rsIDs[i] is sfIDs[i+150]
		if sf := sfVals[i+150]; texts[i] != sf && (sf != "null" || texts[i] != "NULL") {
			t.Fatalf("%s: Redshift %s; Snowflake %s", rsIDs[i], texts[i], sf)
		}
	}
	if got, want := st.sim.Total(), 450; got != want {
		t.Fatalf("provider calls %d; want %d (distinct IDs across both protocols)", got, want)
	}
}

// TestRedshiftSQLScripts holds sql/redshift/ to the adapter: the function
// takes one VARCHAR and returns a VARCHAR long enough for a record, its
// batch caps fit the event and answer limits under Lambda, and every key
// the examples read is one the answer can carry.
func TestRedshiftSQLScripts(t *testing.T) {
	ddl, err := os.ReadFile("../sql/redshift/external_function.sql")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?i)CREATE OR REPLACE EXTERNAL FUNCTION <schema>\.resolve_location\(VARCHAR\)\s+` +
		`RETURNS VARCHAR\((\d+)\)\s+VOLATILE\s+LAMBDA '<lambda_function_name>'\s+IAM_ROLE '<iam_role_arn>'\s+` +
		`RETRY_TIMEOUT (\d+)\s+MAX_BATCH_ROWS (\d+)\s+MAX_BATCH_SIZE (\d+) MB;`)
	m := re.FindSubmatch(ddl)
	if m == nil {
		t.Fatal("external_function.sql has no CREATE EXTERNAL FUNCTION resolve_location(VARCHAR) in the expected form")
	}
	num := func(b []byte) int { n, _ := strconv.Atoi(string(b)); return n }
	varcharLen, rows, sizeMB := num(m[1]), num(m[3]), num(m[4])
	rec, err := EncodeRecord(hotRecord("Q0000001", 1))
	if err != nil {
		t.Fatal(err)
	}
	// Twice a full record's quoted size per row leaves room for long labels.
	perRow := 2 * len(quoted(t, rec))
	switch {
	case varcharLen > 65535 || varcharLen < 4*len(rec):
		t.Errorf("RETURNS VARCHAR(%d): want at most Redshift's 65535 and room for long records", varcharLen)
	case rows*perRow > 6_000_000:
		t.Errorf("MAX_BATCH_ROWS %d: answers of %d rows x %d bytes pass Lambda's 6 MB", rows, rows, perRow)
	case sizeMB > 5 || int64(sizeMB)<<20 > defaultMaxBody:
		t.Errorf("MAX_BATCH_SIZE %d MB: want at most 5 MB and the default --max-body", sizeMB)
	}

	ex, err := os.ReadFile("../sql/redshift/examples.sql")
	if err != nil {
		t.Fatal(err)
	}
	var keys map[string]any
	if err := json.Unmarshal(rec, &keys); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"found", "status", "error"} { // --not-found object, --on-row-error error
		keys[k] = true
	}
	used := 0
	for _, re := range []*regexp.Regexp{
		regexp.MustCompile(`JSON_EXTRACT_PATH_TEXT\(\w+, '(\w+)'\)`),
		regexp.MustCompile(`\b\w+\.(?:loc|j)\.(\w+)`),
	} {
		for _, m := range re.FindAllSubmatch(ex, -1) {
			used++
			if _, ok := keys[string(m[1])]; !ok {
				t.Errorf("examples.sql reads key %q, which no answer carries", m[1])
			}
		}
	}
	if used < 10 {
		t.Fatalf("found %d key reads in examples.sql; want the examples' dozens", used)
	}
}

// TestRedshiftAnswerIsItsOwn: Redshift's answer stays as it was while
// later invocations reuse the gateway's buffers (RedshiftWith's answer is
// only lent), and RedshiftWith hands each answer to use exactly once.
func TestRedshiftAnswerIsItsOwn(t *testing.T) {
	s := newServer(t, newFake("Q1", "Q2", "Q3"), Config{})
	first := s.Redshift(context.Background(), redshiftEventFor([]string{"Q1", "Q2"}))
	kept := string(first)
	for _, ids := range [][]string{{"Q3", "Q2"}, {"Q2", "Q3", "Q1"}, {"Q3"}} {
		calls := 0
		s.RedshiftWith(context.Background(), redshiftEventFor(ids), func(answer []byte) {
			calls++
			if n := len(resultTexts(t, decodeAnswer(t, answer))); n != len(ids) {
				t.Fatalf("%v: %d results; want %d", ids, n, len(ids))
			}
		})
		if calls != 1 {
			t.Fatalf("%v: use called %d times; want once", ids, calls)
		}
	}
	s.RedshiftWith(context.Background(), []byte(`{`), func(answer []byte) {
		if !strings.Contains(string(answer), `"success":false`) {
			t.Fatalf("a malformed event: %s; want success false", answer)
		}
	})
	if string(first) != kept {
		t.Fatalf("the first answer changed under later invocations:\n%s\nwas\n%s", first, kept)
	}
}
