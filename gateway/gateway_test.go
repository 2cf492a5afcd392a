package gateway

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/snowgate/snowgate/cache"
	"github.com/snowgate/snowgate/locapi"
)

// Headers Snowflake sent through AWS API Gateway, as a public test fixture
// records them (Snowflake documents the names: external-functions-data-format).
var awsHeaders = map[string]string{
	"Content-Encoding":                        "gzip",
	"Accept-Encoding":                         "gzip",
	"Content-Type":                            "application/json",
	"User-Agent":                              "snowflake/1.0",
	"sf-external-function-current-query-id":   "01b02bdf-0001-7b58-0003-27d60056b5a6",
	"sf-external-function-query-batch-id":     "01b02bdf-0001-7b58-0003-27d60056b5a6:1:1:0:0",
	"sf-external-function-name-base64":        "VEhBTEVTX0NBRFBfQVdTX1RPS0VOSVpFQ0hBUg==",
	"sf-external-function-signature":          "(B VARCHAR)",
	"sf-external-function-signature-base64":   "KEIgVkFSQ0hBUik=",
	"sf-external-function-return-type":        "VARIANT",
	"sf-external-function-return-type-base64": "VkFSSUFOVA==",
}

func TestGoldenObservedRequest(t *testing.T) {
	s := newServer(t, newFake("WL8ZUOD1kM"), Config{})
	w := do(t, s.Handler(), request{raw: compress(t, "gzip", []byte(goldenNewlines)), headers: awsHeaders})
	if w.Code != http.StatusOK {
		t.Fatalf("got %d %q; want 200", w.Code, w.Body)
	}
	want := `{"data":[[0,` + string(foundEntry("WL8ZUOD1kM").JSON) + `]]}`
	if got := w.Body.String(); got != want {
		t.Fatalf("got %s; want %s", got, want)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("got Content-Type %q; want application/json", ct)
	}
}

func TestGoldenDocumentedRequest(t *testing.T) {
	// resolve_location takes one argument; the documented example has three,
	// so it must be refused with a reason naming the arity, not a 5xx.
	s := newServer(t, newFake(), Config{})
	w := do(t, s.Handler(), request{body: goldenRequest, headers: map[string]string{
		"sf-external-function-format": "json", "sf-external-function-format-version": "1.0",
		"sf-external-function-name": "ext_func", "sf-external-function-signature": "(N NUMBER)",
		"sf-external-function-return-type": "VARCHAR(134217728)",
	}})
	if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "row has 4 elements, want 2") {
		t.Fatalf("got %d %q; want 400 naming 4 elements", w.Code, w.Body)
	}
}

func TestGoldenResponseShape(t *testing.T) {
	// The documented OBJECT response, produced from cached encodings.
	f := newFake()
	f.found["w"] = &cache.Entry{Status: locapi.Found, JSON: []byte(`{"City": "Warsaw", "latitude": 52.23, "longitude": 21.01}`)}
	f.found["t"] = &cache.Entry{Status: locapi.Found, JSON: []byte(`{"City": "Toronto", "latitude": 43.65, "longitude": -79.38}`)}
	s := newServer(t, f, Config{})
	w := do(t, s.Handler(), request{body: `{"data":[[0,"w"],[1,"t"]]}`})
	const golden = `{"data": [[0, {"City": "Warsaw", "latitude": 52.23, "longitude": 21.01}],
          [1, {"City": "Toronto", "latitude": 43.65, "longitude": -79.38}]]}`
	var got, want any
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatalf("answer %q: %v", w.Body, err)
	}
	if err := json.Unmarshal([]byte(golden), &want); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v; want %v", got, want)
	}
}

func TestParseCallHeaders(t *testing.T) {
	tests := []struct {
		name    string
		headers map[string]string
		want    call
	}{
		{"documented", map[string]string{
			"sf-external-function-name": "ext_func", "sf-external-function-signature": "(N NUMBER)",
			"sf-external-function-return-type": "VARCHAR(134217728)",
		}, call{Function: "ext_func", Signature: "(N NUMBER)", ReturnType: "VARCHAR(134217728)"}},
		{"observed through AWS, base64 twins preferred", awsHeaders, call{
			QueryID: "01b02bdf-0001-7b58-0003-27d60056b5a6", BatchID: "01b02bdf-0001-7b58-0003-27d60056b5a6:1:1:0:0",
			Function: "THALES_CADP_AWS_TOKENIZECHAR", Signature: "(B VARCHAR)", ReturnType: "VARIANT",
		}},
		{"custom and context headers", map[string]string{
			"sf-custom-volume-measure":         "liters",
			"sf-context-current-timestamp":     "2024-01-01 00:00:00",
			"sf-context-current-user":          "plain",
			"sf-context-current-user-base64":   "QUxJQ0U=", // ALICE
			"sf-context-current-role-base64":   "!!not base64",
			"sf-context-current-role":          "ANALYST",
			"sf-external-function-name-base64": "!!",
			"sf-external-function-name":        "fallback",
		}, call{Function: "fallback",
			Custom:  map[string]string{"volume-measure": "liters"},
			Context: map[string]string{"current-timestamp": "2024-01-01 00:00:00", "current-user": "ALICE", "current-role": "ANALYST"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range tt.headers {
				h.Set(k, v)
			}
			if got := parseCall(h); !reflect.DeepEqual(*got, tt.want) {
				t.Fatalf("got %+v; want %+v", *got, tt.want)
			}
		})
	}
}

// TestHostileRequests: every malformed or hostile request gets a 4xx or a
// correct per-row null, never a 5xx, and the server then still serves.
func TestHostileRequests(t *testing.T) {
	long := strings.Repeat("x", 100<<10)
	tests := []struct {
		name       string
		req        request
		wantStatus int
		wantVals   []string // for 200: the answer's values
	}{
		{"invalid JSON", request{body: `{"data":[[0,"a"]`}, 400, nil},
		{"trailing data", request{body: `{"data":[[0,"a"]]}{}`}, 400, nil},
		{"missing data", request{body: `{"rows":[]}`}, 400, nil},
		{"data not an array", request{body: `{"data":{}}`}, 400, nil},
		{"row not an array", request{body: `{"data":["a"]}`}, 400, nil},
		{"wrong arity", request{body: `{"data":[[0,"a","b"]]}`}, 400, nil},
		{"non-integer row number", request{body: `{"data":[[0.5,"a"]]}`}, 400, nil},
		{"huge row number", request{body: `{"data":[[1e999,"a"]]}`}, 400, nil},
		{"duplicate row numbers", request{body: `{"data":[[3,"a"],[3,"a"]]}`}, 400, nil},
		{"empty body", request{body: ``}, 400, nil},
		{"unsupported format", request{body: `{"data":[]}`, headers: map[string]string{hdrFormat: "arrow"}}, 400, nil},
		{"unsupported version", request{body: `{"data":[]}`, headers: map[string]string{hdrFormatVersion: "2.0"}}, 400, nil},
		{"unsupported encoding", request{body: `{"data":[]}`, headers: map[string]string{"Content-Encoding": "br"}}, 415, nil},
		{"corrupt gzip", request{body: `{"data":[]}`, headers: map[string]string{"Content-Encoding": "gzip"}}, 400, nil},
		{"body over the limit", request{body: `{"data":[[0,"` + strings.Repeat("a", 2<<20) + `"]]}`}, 413, nil},
		{"100 KB id", request{body: `{"data":[[0,"` + long + `"]]}`}, 200, []string{"null"}},
		{"escaped control character", request{body: `{"data":[[0,"a\u0007b"]]}`}, 200, []string{"null"}},
		{"invalid UTF-8", request{body: "{\"data\":[[0,\"\xc3\x28\"]]}"}, 200, []string{"null"}},
		{"empty id", request{body: `{"data":[[0,""]]}`}, 200, []string{"null"}},
		{"boolean and object ids", request{body: `{"data":[[0,true],[1,{"a":1}],[2,[1]]]}`}, 200, []string{"null", "null", "null"}},
		{"null id", request{body: `{"data":[[0,null]]}`}, 200, []string{"null"}},
		{"GET without batch id", request{method: http.MethodGet}, 400, nil},
		{"GET of an unknown batch", request{method: http.MethodGet, headers: map[string]string{hdrBatchID: "nope"}}, 404, nil},
		{"PUT", request{method: http.MethodPut, body: `{"data":[]}`}, 405, nil},
		{"unknown path", request{path: "/nope", body: `{"data":[]}`}, 404, nil},
	}
	s := newServer(t, newFake("a"), Config{MaxBody: 1 << 20})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := do(t, s.Handler(), tt.req)
			if w.Code != tt.wantStatus {
				t.Fatalf("got %d %.200q; want %d", w.Code, w.Body, tt.wantStatus)
			}
			if tt.wantStatus != 200 {
				if msg := strings.TrimSuffix(w.Body.String(), "\n"); msg == "" || strings.Contains(msg, "\n") || len(msg) > 400 {
					t.Fatalf("got body %q; want one short line", w.Body)
				}
				return
			}
			if _, vals := rowsOf(t, w.Body.Bytes()); !slices.Equal(vals, tt.wantVals) {
				t.Fatalf("got values %v; want %v", vals, tt.wantVals)
			}
		})
	}
	w := do(t, s.Handler(), request{body: `{"data":[[0,"a"]]}`})
	if _, vals := rowsOf(t, w.Body.Bytes()); w.Code != 200 || vals[0] != string(foundEntry("a").JSON) {
		t.Fatalf("after hostile requests: got %d %s; want 200 with a's record", w.Code, w.Body)
	}
}

func TestRowsAnsweredInInputOrder(t *testing.T) {
	f := newFake("a", "b", "c")
	s := newServer(t, f, Config{})
	w := do(t, s.Handler(), request{body: `{"data":[[2,"c"],[0,"a"],[5,null],[1,"b"],[3,"a"],[4,7]]}`})
	rows, vals := rowsOf(t, w.Body.Bytes())
	if !slices.Equal(rows, []int64{2, 0, 5, 1, 3, 4}) {
		t.Fatalf("got rows %v; want 2 0 5 1 3 4", rows)
	}
	want := []string{string(f.found["c"].JSON), string(f.found["a"].JSON), "null", string(f.found["b"].JSON), string(f.found["a"].JSON), "null"}
	if !slices.Equal(vals, want) {
		t.Fatalf("got %v; want %v", vals, want)
	}
	// Null IDs never reach the resolver; numbers arrive as their exact text.
	if got := f.seenIDs(); !slices.Equal(got, []string{"c", "a", "b", "a", "7"}) {
		t.Fatalf("resolver got %q; want c a b a 7", got)
	}
}

func TestRowErrorModes(t *testing.T) {
	body := `{"data":[[0,"a"],[1,"fail-1"],[2,""],[3,"missing"],[4,"noloc"]]}`
	found := string(foundEntry("a").JSON)
	tests := []struct {
		name, onRowError, notFound string
		wantStatus                 int
		wantVals                   []string
		wantBody                   string
	}{
		{"null", RowErrorNull, NotFoundNull, 200, []string{found, "null", "null", "null", "null"}, ""},
		{"error objects", RowErrorObject, NotFoundNull, 200, []string{found, `{"error":"lookup failed"}`,
			`{"error":"invalid id: empty"}`, "null", "null"}, ""},
		{"not-found objects", RowErrorNull, NotFoundObject, 200, []string{found, "null", "null",
			`{"found":false,"id":"missing","status":"not_found"}`, `{"found":false,"id":"noloc","status":"no_location"}`}, ""},
		{"fail", RowErrorFail, NotFoundNull, 503, nil, "row 1: lookup failed; retry the batch\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t, newFake("a"), Config{OnRowError: tt.onRowError, NotFound: tt.notFound})
			w := do(t, s.Handler(), request{body: body})
			if w.Code != tt.wantStatus {
				t.Fatalf("got %d %q; want %d", w.Code, w.Body, tt.wantStatus)
			}
			if tt.wantBody != "" {
				if w.Body.String() != tt.wantBody {
					t.Fatalf("got %q; want %q", w.Body, tt.wantBody)
				}
				return
			}
			if _, vals := rowsOf(t, w.Body.Bytes()); !slices.Equal(vals, tt.wantVals) {
				t.Fatalf("got %v; want %v", vals, tt.wantVals)
			}
		})
	}
}

func TestFailModeInvalidIDIs400(t *testing.T) {
	s := newServer(t, newFake("a"), Config{OnRowError: RowErrorFail})
	w := do(t, s.Handler(), request{body: `{"data":[[0,"a"],[1,true]]}`})
	if w.Code != 400 || w.Body.String() != "row 1: invalid id: a boolean is not an id\n" {
		t.Fatalf("got %d %q; want 400 naming row 1", w.Code, w.Body)
	}
}

func TestSyncTimeoutRowsFollowOnRowError(t *testing.T) {
	f := newFake("a")
	f.release = make(chan struct{}) // never released: only the deadline ends the call
	s := newServer(t, f, Config{BatchTimeout: 50 * time.Millisecond, OnRowError: RowErrorObject})
	w := do(t, s.Handler(), request{body: `{"data":[[0,"a"],[1,null]]}`})
	if _, vals := rowsOf(t, w.Body.Bytes()); w.Code != 200 || !slices.Equal(vals, []string{`{"error":"lookup timed out"}`, "null"}) {
		t.Fatalf("got %d %s; want 200 with a timed-out row and a null", w.Code, w.Body)
	}
}

func TestResponseCompression(t *testing.T) {
	ids := make([]string, 50)
	for i := range ids {
		ids[i] = "id" + string(rune('a'+i%26)) + string(rune('a'+i/26))
	}
	s := newServer(t, newFake(ids...), Config{})
	plain := do(t, s.Handler(), request{body: batchBody(ids)})
	tests := []struct {
		accept   string
		wantGzip bool
	}{
		{"", false}, {"gzip", true}, {"deflate, gzip;q=0.5", true}, {"*", true},
		{"gzip;q=0", false}, {"identity", false}, {"br, gzip; q=0.000", false},
	}
	for _, tt := range tests {
		t.Run(tt.accept, func(t *testing.T) {
			w := do(t, s.Handler(), request{body: batchBody(ids), headers: map[string]string{"Accept-Encoding": tt.accept}})
			gotGzip := w.Header().Get("Content-Encoding") == "gzip"
			if gotGzip != tt.wantGzip {
				t.Fatalf("gzip %v; want %v", gotGzip, tt.wantGzip)
			}
			body := w.Body.Bytes()
			if gotGzip {
				zr, err := gzip.NewReader(bytes.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				if body, err = io.ReadAll(zr); err != nil {
					t.Fatal(err)
				}
			}
			if !bytes.Equal(body, plain.Body.Bytes()) {
				t.Fatalf("decoded answer differs from the plain one")
			}
		})
	}
}

func TestResponseTooLarge(t *testing.T) {
	ids := []string{"a", "b", "c", "d"}
	s := newServer(t, newFake(ids...), Config{MaxResponse: 300})
	w := do(t, s.Handler(), request{body: batchBody(ids)})
	if w.Code != 400 || !strings.Contains(w.Body.String(), "set MAX_BATCH_ROWS = ") {
		t.Fatalf("got %d %q; want 400 naming MAX_BATCH_ROWS", w.Code, w.Body)
	}
}

func TestConfigValidation(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"zero", Config{}, true},
		{"all modes", Config{OnRowError: RowErrorFail, NotFound: NotFoundObject}, true},
		{"bad on-row-error", Config{OnRowError: "drop"}, false},
		{"bad not-found", Config{NotFound: "empty"}, false},
		{"relative path", Config{Path: "resolve"}, false},
		{"path on healthz", Config{Path: "/healthz"}, false},
		{"negative timeout", Config{BatchTimeout: -time.Second}, false},
		{"header without secret", Config{AuthHeader: "sf-custom-key"}, false},
		{"secret without header", Config{AuthSecret: "s"}, false},
		{"header and secret", Config{AuthHeader: "sf-custom-key", AuthSecret: "s"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(newFake(), tt.cfg, nil)
			if (err == nil) != tt.ok {
				t.Fatalf("got err %v; want ok %v", err, tt.ok)
			}
		})
	}
	if _, err := New(nil, Config{}, nil); err == nil {
		t.Fatal("New(nil resolver) succeeded; want an error")
	}
}

func TestMetricsCountPerBatch(t *testing.T) {
	reg := prometheus.NewRegistry()
	s, err := New(newFake("a"), Config{}, reg)
	if err != nil {
		t.Fatal(err)
	}
	do(t, s.Handler(), request{body: `{"data":[[0,"a"],[1,"a"],[2,null],[3,"zz"],[4,""]]}`})
	do(t, s.Handler(), request{body: `{"data":`})
	checks := []struct {
		name string
		c    prometheus.Collector
		want float64
	}{
		{"partial batches", s.met.batches.WithLabelValues(protoSnowflake, outcomePartial), 1},
		{"rejected batches", s.met.batches.WithLabelValues(protoSnowflake, outcomeRejected), 1},
		{"found rows", s.met.rows.WithLabelValues(protoSnowflake, "found"), 2},
		{"null rows", s.met.rows.WithLabelValues(protoSnowflake, "null_id"), 1},
		{"not-found rows", s.met.rows.WithLabelValues(protoSnowflake, "not_found"), 1},
		{"invalid rows", s.met.rows.WithLabelValues(protoSnowflake, "invalid_id"), 1},
		{"rows in flight", s.met.inflight, 0},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			if got := testutil.ToFloat64(c.c); got != c.want {
				t.Fatalf("got %v; want %v", got, c.want)
			}
		})
	}
	if _, err := New(newFake(), Config{}, reg); err == nil {
		t.Fatal("second server on one registry: got nil error; want a duplicate registration error")
	}
}

// TestRoutesRefused: paths that cannot be served side by side are a
// configuration error from New, never a panic of the router.
func TestRoutesRefused(t *testing.T) {
	for _, cfg := range []Config{
		{BigQueryPath: "/v1/bq", RESTPrefix: "/v1"},
		{Path: "/v1/locations", RESTPrefix: "/v1"},
		{RESTPrefix: "/resolve_location/x"},
		{BigQueryPath: "/resolve_location"},
		{NoSnowflake: true},
		{RESTPrefix: "/v1:x"},
		{BigQueryPath: "/healthz"},
	} {
		if _, err := New(newFake(), cfg, nil); err == nil {
			t.Errorf("New(%+v): no error; want the routes refused", cfg)
		}
	}
	if _, err := New(newFake(), Config{BigQueryPath: "/bigquery/resolve_location", RESTPrefix: "/v1"}, nil); err != nil {
		t.Errorf("the default routes: %v", err)
	}
}
