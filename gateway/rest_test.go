package gateway

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/snowgate/snowgate/cache"
	"github.com/snowgate/snowgate/locapi"
	"github.com/snowgate/snowgate/sim"
)

// restKeyHeader and restKey are the API key of the REST tests' servers;
// the header is the placeholder openapi.json names, so its 401 example
// is what these servers answer.
const restKeyHeader, restKey = "X-Snowgate-Key", "s3cret"

// restFake is fakeResolver with a realistic record for LOC-1001, the
// record openapi.json's examples show.
func restFake(t testing.TB) *fakeResolver {
	t.Helper()
	f := newFake()
	str := func(s string) *string { return &s }
	lat, lon := 52.2297, 21.0122
	rec := &locapi.Record{ID: "LOC-1001", Label: str("Warsaw office"), GeoLabel: str("Warsaw, Masovian Voivodeship, Poland"),
		StreetAddress: str("ul. Marszalkowska 1"), CityLabel: str("Warsaw"), PostalCode: str("00-624"),
		CountryLabel: str("Poland"), Latitude: &lat, Longitude: &lon}
	js, err := EncodeRecord(rec)
	if err != nil {
		t.Fatal(err)
	}
	f.found[rec.ID] = &cache.Entry{Status: locapi.Found, Record: rec, JSON: js}
	return f
}

// restServer is a server with the REST API at /v1 and the test API key.
func restServer(t testing.TB, res Resolver, cfg Config) *Server {
	t.Helper()
	cfg.RESTPrefix = "/v1"
	if cfg.AuthHeader == "" {
		cfg.AuthHeader, cfg.AuthSecret = restKeyHeader, restKey
	}
	return newServer(t, res, cfg)
}

// restDo sends one request with the API key (unless noKey).
func restDo(t testing.TB, s *Server, method, path, body string, noKey bool, headers ...string) (int, http.Header, []byte) {
	t.Helper()
	h := map[string]string{}
	if !noKey {
		h[restKeyHeader] = restKey
	}
	for i := 0; i+1 < len(headers); i += 2 {
		h[headers[i]] = headers[i+1]
	}
	w := do(t, s.Handler(), request{method: method, path: path, body: body, headers: h})
	return w.Code, w.Header(), w.Body.Bytes()
}

// normJSON re-encodes JSON text so that equal values compare equal.
func normJSON(t testing.TB, b []byte) string {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("not JSON: %v: %.300s", err, b)
	}
	out, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// restErrorOf checks that body is the REST error form for status and
// returns its message.
func restErrorOf(t testing.TB, status int, body []byte) string {
	t.Helper()
	var e struct {
		Error struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
			Status  string `json:"status"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("error body is not JSON: %v: %.200s", err, body)
	}
	if e.Error.Code != status || e.Error.Status != restStatus(status) || e.Error.Message == "" {
		t.Fatalf("error body %s; want code %d, status %s and a message", body, status, restStatus(status))
	}
	return e.Error.Message
}

// restEntry is one entry of a batchGet answer.
type restEntry struct {
	ID       *string         `json:"id"`
	Found    bool            `json:"found"`
	Location json.RawMessage `json:"location"`
	Error    *string         `json:"error"`
}

// restEntries parses a batchGet answer strictly.
func restEntries(t testing.TB, body []byte) []restEntry {
	t.Helper()
	var resp struct {
		Locations []restEntry `json:"locations"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&resp); err != nil {
		t.Fatalf("batchGet answer: %v: %.300s", err, body)
	}
	if resp.Locations == nil {
		t.Fatalf("batchGet answer without locations: %.300s", body)
	}
	return resp.Locations
}

func TestRESTGetLocation(t *testing.T) {
	s := restServer(t, restFake(t), Config{})
	for _, c := range []struct {
		name, path string
		status     int
		want       string // the body's normalised JSON, or a substring of the error message
	}{
		{"found", "/v1/locations/LOC-1001", 200, `{"city_label":"Warsaw","country_label":"Poland","geo_label":"Warsaw, Masovian Voivodeship, Poland","id":"LOC-1001","label":"Warsaw office","latitude":52.2297,"longitude":21.0122,"postal_code":"00-624","street_address":"ul. Marszalkowska 1"}`},
		{"not found", "/v1/locations/nope", 404, `no entity with id "nope"`},
		{"no location", "/v1/locations/noloc", 404, `entity "noloc" has no location`},
		{"failed", "/v1/locations/fail-7", 503, "lookup failed"},
		{"control character", "/v1/locations/a%07b", 400, "invalid id: contains a control character"},
		{"empty", "/v1/locations/", 400, "invalid id: empty"},
		{"dot segment", "/v1/locations/..", 400, "dot path segment"},
		{"not UTF-8", "/v1/locations/%FF", 400, "not valid UTF-8"},
		{"escaped slash", "/v1/locations/a%2Fb", 404, `no entity with id "a/b"`},
		{"two segments", "/v1/locations/a/b", 404, "no such path"},
		{"escaped colon is batchGet", "/v1/locations%3AbatchGet", 405, "use POST"},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, h, body := restDo(t, s, http.MethodGet, c.path, "", false)
			if code != c.status {
				t.Fatalf("got %d %s; want %d", code, body, c.status)
			}
			if code == http.StatusOK {
				if got := normJSON(t, body); got != c.want {
					t.Fatalf("got %s; want %s", got, c.want)
				}
				return
			}
			if msg := restErrorOf(t, code, body); !strings.Contains(msg, c.want) {
				t.Fatalf("message %q; want it to contain %q", msg, c.want)
			}
			if retry := h.Get("Retry-After"); (code == 503) != (retry == "1") {
				t.Fatalf("status %d with Retry-After %q", code, retry)
			}
		})
	}
}

// TestRESTGetPassesDecodedID: the resolver sees the ID percent-decoded,
// '/' included.
func TestRESTGetPassesDecodedID(t *testing.T) {
	f := restFake(t)
	s := restServer(t, f, Config{})
	restDo(t, s, http.MethodGet, "/v1/locations/"+url.PathEscape("a/b c%"), "", false)
	if got := f.seenIDs(); !slices.Equal(got, []string{"a/b c%"}) {
		t.Fatalf("resolver saw %q; want [a/b c%%]", got)
	}
}

func TestRESTBatchGetAnswer(t *testing.T) {
	f := restFake(t)
	s := restServer(t, f, Config{})
	body := `{"ids":["LOC-1001","x",12345,"LOC-1001",-1.50e3,"fail-1",null,true,{"a":1},[1],"a\u0007b","\ud800"]}`
	code, _, resp := restDo(t, s, http.MethodPost, "/v1/locations:batchGet", body, false)
	if code != http.StatusOK {
		t.Fatalf("got %d %s; want 200", code, resp)
	}
	got := restEntries(t, resp)
	str := func(s string) *string { return &s }
	want := []restEntry{
		{ID: str("LOC-1001"), Found: true, Location: f.found["LOC-1001"].JSON},
		{ID: str("x"), Location: json.RawMessage("null")},
		{ID: str("12345"), Location: json.RawMessage("null")},
		{ID: str("LOC-1001"), Found: true, Location: f.found["LOC-1001"].JSON},
		{ID: str("-1.50e3"), Location: json.RawMessage("null")},
		{ID: str("fail-1"), Location: json.RawMessage("null"), Error: str("lookup failed")},
		{Location: json.RawMessage("null"), Error: str("invalid id: null is not an id")},
		{Location: json.RawMessage("null"), Error: str("invalid id: a boolean is not an id")},
		{Location: json.RawMessage("null"), Error: str("invalid id: an object is not an id")},
		{Location: json.RawMessage("null"), Error: str("invalid id: an array is not an id")},
		{ID: str("a\ab"), Location: json.RawMessage("null"), Error: str("invalid id: contains a control character")},
		{Location: json.RawMessage("null"), Error: str("invalid id: an unpaired UTF-16 surrogate escape")},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d entries; want %d: %s", len(got), len(want), resp)
	}
	for i := range want {
		if !reflect.DeepEqual(got[i], want[i]) {
			gj, _ := json.Marshal(got[i])
			wj, _ := json.Marshal(want[i])
			t.Errorf("entry %d: got %s; want %s", i, gj, wj)
		}
	}
	// Numbers are looked up by their exact text; bad entries never reach the resolver.
	if ids := f.seenIDs(); !slices.Equal(ids, []string{"LOC-1001", "x", "12345", "LOC-1001", "-1.50e3", "fail-1", "a\ab"}) {
		t.Fatalf("resolver saw %q", ids)
	}
	if n := testutil.ToFloat64(s.met.batches.WithLabelValues(protoREST, outcomePartial)); n != 1 {
		t.Fatalf("rest partial batches %v; want 1", n)
	}
}

// TestRESTSummaryLine: a REST batch writes the one summary line every
// protocol writes, with protocol "rest".
func TestRESTSummaryLine(t *testing.T) {
	var logs syncBuffer
	s := restServer(t, restFake(t), Config{Logger: debugLogger(&logs)})
	code, _, resp := restDo(t, s, http.MethodPost, "/v1/locations:batchGet", `{"ids":["LOC-1001","nope","noloc","fail-1",true]}`, false)
	if code != http.StatusOK {
		t.Fatalf("got %d %s", code, resp)
	}
	var line map[string]any
	if err := json.Unmarshal([]byte(strings.TrimSpace(logs.String())), &line); err != nil {
		t.Fatalf("want one JSON summary line: %v: %s", err, logs.String())
	}
	want := map[string]any{"msg": "batch", "protocol": "rest", "function": "resolve_location", "rows": 5.0, "found": 1.0,
		"not_found": 1.0, "no_location": 1.0, "invalid": 1.0, "failed": 1.0, "outcome": outcomePartial, "status": 200.0, "async": false}
	for k, v := range want {
		if line[k] != v {
			t.Errorf("summary %s = %v; want %v", k, line[k], v)
		}
	}
}

func TestRESTBatchGetHostile(t *testing.T) {
	s := restServer(t, restFake(t), Config{MaxBody: 64 << 10})
	many := `{"ids":[` + strings.Repeat(`"a",`, maxRESTIDs) + `"a"]}`
	for _, c := range []struct {
		name, body string
		headers    []string
		status     int
		want       string
	}{
		{"empty body", "", nil, 400, "must be a JSON object"},
		{"array", `["a"]`, nil, 400, "must be a JSON object"},
		{"null", `null`, nil, 400, "must be a JSON object"},
		{"no ids", `{}`, nil, 400, `missing field "ids"`},
		{"ids null", `{"ids":null}`, nil, 400, "must be an array"},
		{"ids string", `{"ids":"a"}`, nil, 400, "must be an array"},
		{"ids object", `{"ids":{"0":"a"}}`, nil, 400, "must be an array"},
		{"unknown field", `{"ids":["a"],"pageSize":3}`, nil, 400, `unknown field "pageSize"`},
		{"ids twice", `{"ids":["a"],"ids":["b"]}`, nil, 400, "given twice"},
		{"trailing data", `{"ids":["a"]} {}`, nil, 400, "data after"},
		{"cut short", `{"ids":["a"`, nil, 400, "invalid JSON"},
		{"syntax", `{"ids":[a]}`, nil, 400, "invalid JSON at byte"},
		{"too many ids", many, nil, 400, "over the limit of 10000"},
		{"too large", `{"ids":["` + strings.Repeat("x", 70<<10) + `"]}`, nil, 413, "send fewer ids"},
		{"not gzip", `{"ids":[]}`, []string{"Content-Encoding", "gzip"}, 400, "not valid gzip"},
		{"unknown encoding", `{"ids":[]}`, []string{"Content-Encoding", "br"}, 415, "unsupported Content-Encoding"},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, _, body := restDo(t, s, http.MethodPost, "/v1/locations:batchGet", c.body, false, c.headers...)
			if code != c.status {
				t.Fatalf("got %d %s; want %d", code, body, c.status)
			}
			if msg := restErrorOf(t, code, body); !strings.Contains(msg, c.want) || strings.ContainsAny(msg, "\r\n") {
				t.Fatalf("message %q; want one line containing %q", msg, c.want)
			}
		})
	}
	if n := testutil.ToFloat64(s.met.batches.WithLabelValues(protoREST, outcomeRejected)); n != 16 {
		t.Fatalf("rest rejected batches %v; want 16", n)
	}
}

// TestRESTBatchGetLimits: exactly the limit is served, and an empty list
// is an empty answer.
func TestRESTBatchGetLimits(t *testing.T) {
	s := restServer(t, restFake(t), Config{})
	for _, n := range []int{0, maxRESTIDs} {
		ids := make([]string, n)
		for i := range ids {
			ids[i] = fmt.Sprintf("id-%d", i%100)
		}
		js, _ := json.Marshal(map[string]any{"ids": ids})
		code, _, body := restDo(t, s, http.MethodPost, "/v1/locations:batchGet", string(js), false)
		if code != http.StatusOK {
			t.Fatalf("%d ids: got %d %.200s; want 200", n, code, body)
		}
		got := restEntries(t, body)
		if len(got) != n {
			t.Fatalf("%d ids: got %d entries", n, len(got))
		}
		for i, e := range got {
			if e.ID == nil || *e.ID != ids[i] {
				t.Fatalf("%d ids: entry %d has id %v; want %s", n, i, e.ID, ids[i])
			}
		}
	}
}

// TestRESTRowOptions: --on-row-error and --not-found shape location as
// they shape Snowflake's value, and fail refuses the whole request.
func TestRESTRowOptions(t *testing.T) {
	const ids = `{"ids":["nope","fail-1"]}`
	for _, c := range []struct {
		name   string
		cfg    Config
		body   string
		status int
		want   string // normalised answer, or a substring of the error message
	}{
		{"object", Config{OnRowError: RowErrorObject, NotFound: NotFoundObject}, ids, 200,
			`{"locations":[{"found":false,"id":"nope","location":{"found":false,"id":"nope","status":"not_found"}},` +
				`{"error":"lookup failed","found":false,"id":"fail-1","location":{"error":"lookup failed"}}]}`},
		{"fail on provider error", Config{OnRowError: RowErrorFail}, ids, 503, "ids entry 1: lookup failed; retry the batch"},
		{"fail on bad id", Config{OnRowError: RowErrorFail}, `{"ids":["nope",false]}`, 400, "ids entry 1: invalid id: a boolean"},
		{"too large", Config{MaxResponse: 300}, `{"ids":["LOC-1001","LOC-1001"]}`, 400, "set at most"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := restServer(t, restFake(t), c.cfg)
			code, h, body := restDo(t, s, http.MethodPost, "/v1/locations:batchGet", c.body, false)
			if code != c.status {
				t.Fatalf("got %d %s; want %d", code, body, c.status)
			}
			if code == http.StatusOK {
				if got := normJSON(t, body); got != c.want {
					t.Fatalf("got %s; want %s", got, c.want)
				}
				return
			}
			if msg := restErrorOf(t, code, body); !strings.Contains(msg, c.want) {
				t.Fatalf("message %q; want it to contain %q", msg, c.want)
			}
			if retry := h.Get("Retry-After"); (code == 503) != (retry == "1") {
				t.Fatalf("status %d with Retry-After %q", code, retry)
			}
		})
	}
}

func TestRESTAuthAndRouting(t *testing.T) {
	s := restServer(t, restFake(t), Config{})
	for _, c := range []struct {
		name, method, path, body string
		noKey                    bool
		status                   int
		allow                    string
	}{
		{"get without key", "GET", "/v1/locations/LOC-1001", "", true, 401, ""},
		{"batchGet without key", "POST", "/v1/locations:batchGet", `{"ids":[]}`, true, 401, ""},
		{"openapi without key", "GET", "/v1/openapi.json", "", true, 200, ""},
		{"post to a location", "POST", "/v1/locations/x", "", false, 405, "GET"},
		{"get batchGet", "GET", "/v1/locations:batchGet", "", false, 405, "POST"},
		{"delete openapi", "DELETE", "/v1/openapi.json", "", false, 405, "GET"},
		{"unknown path", "GET", "/v1/things/x", "", false, 404, ""},
		{"list", "GET", "/v1/locations", "", false, 404, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, h, body := restDo(t, s, c.method, c.path, c.body, c.noKey)
			if code != c.status || h.Get("Allow") != c.allow {
				t.Fatalf("got %d (Allow %q) %s; want %d (Allow %q)", code, h.Get("Allow"), body, c.status, c.allow)
			}
			if code != http.StatusOK {
				restErrorOf(t, code, body)
			}
		})
	}
	if n := testutil.ToFloat64(s.met.batches.WithLabelValues(protoREST, outcomeUnauthorized)); n != 2 {
		t.Fatalf("rest unauthorized batches %v; want 2", n)
	}
}

// TestRESTOverloaded: REST batches count against the in-flight row cap
// like any other: over it, 429 with Retry-After, and nothing is lost.
func TestRESTOverloaded(t *testing.T) {
	f := restFake(t)
	f.entered, f.release = make(chan []string, 1), make(chan struct{})
	s := restServer(t, f, Config{MaxInflightRows: 2})
	first := make(chan int, 1)
	go func() {
		code, _, _ := restDo(t, s, http.MethodPost, "/v1/locations:batchGet", `{"ids":["LOC-1001","b"]}`, false)
		first <- code
	}()
	<-f.entered
	code, h, body := restDo(t, s, http.MethodGet, "/v1/locations/LOC-1001", "", false)
	if code != http.StatusTooManyRequests || h.Get("Retry-After") != "1" {
		t.Fatalf("got %d (Retry-After %q) %s; want 429 with Retry-After 1", code, h.Get("Retry-After"), body)
	}
	restErrorOf(t, code, body)
	close(f.release)
	if code := <-first; code != http.StatusOK {
		t.Fatalf("held batch: got %d; want 200", code)
	}
	if n := testutil.ToFloat64(s.met.batches.WithLabelValues(protoREST, outcomeOverloaded)); n != 1 {
		t.Fatalf("rest overloaded batches %v; want 1", n)
	}
}

// TestRESTGzip: a gzipped body is read, and an answer is gzipped for a
// client that accepts it.
func TestRESTGzip(t *testing.T) {
	s := restServer(t, restFake(t), Config{})
	ids := make([]string, 500)
	for i := range ids {
		ids[i] = "LOC-1001"
	}
	js, _ := json.Marshal(map[string]any{"ids": ids})
	w := do(t, s.Handler(), request{method: http.MethodPost, path: "/v1/locations:batchGet", raw: compress(t, "gzip", js),
		headers: map[string]string{restKeyHeader: restKey, "Content-Encoding": "gzip", "Accept-Encoding": "gzip"}})
	if w.Code != http.StatusOK || w.Header().Get("Content-Encoding") != "gzip" {
		t.Fatalf("got %d, Content-Encoding %q; want 200 gzip", w.Code, w.Header().Get("Content-Encoding"))
	}
	zr, err := gzip.NewReader(w.Body)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if got := restEntries(t, plain); len(got) != len(ids) || !got[499].Found {
		t.Fatalf("got %d entries; want %d, all found", len(got), len(ids))
	}
}

// FuzzRESTBatchGet: whatever the body, the answer is 200 with one entry
// per id, in order, or a 4xx in the error form; never a 5xx (the fake
// fails only IDs starting with "fail", answered per entry).
func FuzzRESTBatchGet(f *testing.F) {
	for _, seed := range []string{
		`{"ids":["a","b"]}`, `{"ids":[]}`, `{"ids":[1,-2.5e3,null,true,{},[]]}`, `{}`, `[]`, `null`, ``,
		`{"ids":null}`, `{"ids":"a"}`, `{"ids":["a"],"x":1}`, `{"ids":["a"],"ids":["b"]}`, `{"ids":["a"]} x`,
		"{\"ids\":[\"a\xffb\"]}", `{"ids":["\ud800","\u0000","fail-1","noloc",""]}`, ` { "ids" : [ "a" , 1 ] } `,
	} {
		f.Add([]byte(seed))
	}
	s := restServer(f, restFake(f), Config{MaxBody: 1 << 20})
	f.Fuzz(func(t *testing.T, body []byte) {
		w := do(t, s.Handler(), request{method: http.MethodPost, path: "/v1/locations:batchGet", raw: body,
			headers: map[string]string{restKeyHeader: restKey}})
		if w.Code != http.StatusOK {
			if w.Code < 400 || w.Code >= 500 {
				t.Fatalf("got %d for %q; want 200 or a 4xx", w.Code, body)
			}
			restErrorOf(t, w.Code, w.Body.Bytes())
			return
		}
		// encoding/json must agree that the body is {"ids": [...]}.
		var in struct {
			IDs []json.RawMessage `json:"ids"`
		}
		if err := json.Unmarshal(body, &in); err != nil || in.IDs == nil {
			t.Fatalf("200 for a body encoding/json reads as %v: %q", err, body)
		}
		got := restEntries(t, w.Body.Bytes())
		if len(got) != len(in.IDs) {
			t.Fatalf("got %d entries for %d ids: %q", len(got), len(in.IDs), body)
		}
		for i, raw := range in.IDs {
			checkFuzzEntry(t, i, raw, got[i])
			// The fast path must read an id exactly as parseID does.
			if id, ok := plainString(raw); ok {
				if pid, kind, err := parseID(raw); pid != id || kind != idText || err != nil {
					t.Fatalf("plainString(%s) = %q; parseID says %q, kind %d, %v", raw, id, pid, kind, err)
				}
			}
		}
	})
}

// checkFuzzEntry checks one entry against its raw input id: a string or
// number is echoed (or, for a string the decoder cannot keep exactly, is an
// error), anything else is an error with id null.
func checkFuzzEntry(t *testing.T, i int, raw json.RawMessage, e restEntry) {
	t.Helper()
	var s string
	switch c := raw[0]; {
	case c == '"' && json.Unmarshal(raw, &s) == nil && e.ID != nil:
		if *e.ID != s {
			t.Fatalf("entry %d: id %q; want %q", i, *e.ID, s)
		}
	case c == '-' || (c >= '0' && c <= '9'):
		if e.ID == nil || *e.ID != string(raw) {
			t.Fatalf("entry %d: id %v; want %s as text", i, e.ID, raw)
		}
	case e.ID != nil || e.Error == nil || e.Found:
		t.Fatalf("entry %d for %s: got id %v, error %v, found %v; want null, an error, false", i, raw, e.ID, e.Error, e.Found)
	}
	if e.Found == (e.Error != nil) && e.Found {
		t.Fatalf("entry %d found with an error", i)
	}
}

// The OpenAPI document against the real routes: every operation in it is
// served, every served operation is in it, and its examples are what the
// server answers.

// apiExample is an OpenAPI example object.
type apiExample struct {
	Value json.RawMessage `json:"value"`
}

// apiContent is a media-type map; only JSON is used.
type apiContent map[string]struct {
	Examples map[string]apiExample `json:"examples"`
}

type apiResponse struct {
	Ref     string     `json:"$ref"`
	Content apiContent `json:"content"`
}

type apiOperation struct {
	Parameters []struct {
		Name     string                `json:"name"`
		In       string                `json:"in"`
		Examples map[string]apiExample `json:"examples"`
	} `json:"parameters"`
	RequestBody *struct {
		Content apiContent `json:"content"`
	} `json:"requestBody"`
	Responses map[string]apiResponse `json:"responses"`
}

type apiDoc struct {
	OpenAPI    string                             `json:"openapi"`
	Paths      map[string]map[string]apiOperation `json:"paths"`
	Components struct {
		Responses map[string]apiResponse `json:"responses"`
	} `json:"components"`
}

func loadAPIDoc(t *testing.T) apiDoc {
	t.Helper()
	var doc apiDoc
	if err := json.Unmarshal(openAPIDoc, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.1.") {
		t.Fatalf("openapi %q; want 3.1.x", doc.OpenAPI)
	}
	return doc
}

// resolve follows a response's $ref into components.responses.
func (d apiDoc) resolve(t *testing.T, r apiResponse) apiResponse {
	t.Helper()
	if r.Ref == "" {
		return r
	}
	name, ok := strings.CutPrefix(r.Ref, "#/components/responses/")
	got, found := d.Components.Responses[name]
	if !ok || !found {
		t.Fatalf("unresolvable $ref %q", r.Ref)
	}
	return got
}

func TestRESTOpenAPIRoutes(t *testing.T) {
	doc := loadAPIDoc(t)
	var inDoc, served []string
	for path, ops := range doc.Paths {
		for method := range ops {
			inDoc = append(inDoc, strings.ToUpper(method)+" "+path)
		}
	}
	for _, r := range restRoutes {
		served = append(served, r.method+" "+r.path)
	}
	slices.Sort(inDoc)
	slices.Sort(served)
	if !slices.Equal(inDoc, served) {
		t.Fatalf("openapi.json has %q; the server routes %q", inDoc, served)
	}
	s := restServer(t, restFake(t), Config{})
	for _, r := range restRoutes {
		path := "/v1" + strings.ReplaceAll(r.path, "{id}", "LOC-1001")
		code, _, body := restDo(t, s, r.method, path, `{"ids":["LOC-1001"]}`, false)
		if code != http.StatusOK {
			t.Errorf("%s %s: got %d %s; want 200", r.method, path, code, body)
		}
	}
}

// TestRESTOpenAPIExamples: each response example is what the server
// answers to the request example of the same name, status included.
func TestRESTOpenAPIExamples(t *testing.T) {
	doc := loadAPIDoc(t)
	s := restServer(t, restFake(t), Config{})
	checked := 0
	for path, ops := range doc.Paths {
		for method, op := range ops {
			for code, r := range op.Responses {
				for name, ex := range doc.resolve(t, r).Content["application/json"].Examples {
					t.Run(method+" "+path+" "+code+" "+name, func(t *testing.T) {
						status, body := sendExample(t, s, strings.ToUpper(method), path, op, name)
						if code != strconv.Itoa(status) {
							t.Fatalf("got %d %s; want %s", status, body, code)
						}
						if got, want := normJSON(t, body), normJSON(t, ex.Value); got != want {
							t.Fatalf("got %s\nwant %s", got, want)
						}
					})
					checked++
				}
			}
		}
	}
	if checked < 10 {
		t.Fatalf("checked %d examples; want every one (at least 10)", checked)
	}
}

// sendExample sends the request example named name of op: its path
// parameter or body, and without the API key for "unauthenticated".
func sendExample(t *testing.T, s *Server, method, path string, op apiOperation, name string) (int, []byte) {
	t.Helper()
	for _, p := range op.Parameters {
		if p.In != "path" {
			continue
		}
		ex, ok := p.Examples[name]
		if !ok {
			t.Fatalf("no %s example %q for parameter %s", path, name, p.Name)
		}
		var v string
		if err := json.Unmarshal(ex.Value, &v); err != nil {
			t.Fatalf("parameter example %q: %v", name, err)
		}
		path = strings.ReplaceAll(path, "{"+p.Name+"}", url.PathEscape(v))
	}
	body := ""
	if op.RequestBody != nil {
		ex, ok := op.RequestBody.Content["application/json"].Examples[name]
		if !ok {
			t.Fatalf("no request body example %q", name)
		}
		body = string(ex.Value)
	}
	code, _, resp := restDo(t, s, method, "/v1"+path, body, name == "unauthenticated")
	return code, resp
}

// TestRESTOpenAPIRequestExamplesAnswered: no request example lacks the
// response example that shows its answer.
func TestRESTOpenAPIRequestExamplesAnswered(t *testing.T) {
	doc := loadAPIDoc(t)
	for path, ops := range doc.Paths {
		for method, op := range ops {
			answered := map[string]bool{}
			for _, r := range op.Responses {
				for name := range doc.resolve(t, r).Content["application/json"].Examples {
					answered[name] = true
				}
			}
			var asked []string
			for _, p := range op.Parameters {
				for name := range p.Examples {
					asked = append(asked, name)
				}
			}
			if op.RequestBody != nil {
				for name := range op.RequestBody.Content["application/json"].Examples {
					asked = append(asked, name)
				}
			}
			for _, name := range asked {
				if !answered[name] {
					t.Errorf("%s %s: request example %q has no response example", method, path, name)
				}
			}
		}
	}
}

// TestRESTOpenAPIServed: the served document is the repository's, with
// the server's prefix and API key header, and without a key when the
// server checks none.
func TestRESTOpenAPIServed(t *testing.T) {
	for _, c := range []struct {
		name, prefix, header string
	}{
		{"default", "/v1", restKeyHeader},
		{"other prefix and header", "/api/geo", "sf-custom-snowgate-secret"},
		{"no auth", "/v1", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := Config{RESTPrefix: c.prefix, AuthHeader: c.header}
			if c.header != "" {
				cfg.AuthSecret = "k"
			}
			s := newServer(t, restFake(t), cfg)
			w := do(t, s.Handler(), request{method: http.MethodGet, path: c.prefix + "/openapi.json"})
			if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "application/json" {
				t.Fatalf("got %d %q; want 200 application/json", w.Code, w.Header().Get("Content-Type"))
			}
			var served, repo map[string]any
			if err := json.Unmarshal(w.Body.Bytes(), &served); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(openAPIDoc, &repo); err != nil {
				t.Fatal(err)
			}
			repo["servers"] = []any{map[string]any{"url": c.prefix}}
			key := repo["components"].(map[string]any)["securitySchemes"].(map[string]any)["apiKey"].(map[string]any)
			if c.header == "" {
				repo["security"] = []any{}
			} else {
				key["name"] = c.header
			}
			got, _ := json.Marshal(served)
			want, _ := json.Marshal(repo)
			if string(got) != string(want) {
				t.Fatalf("served document differs:\ngot  %.400s\nwant %.400s", got, want)
			}
		})
	}
}

// restBase is the REST API's URL on a stack started with RESTPrefix "/v1".
func (st *stack) restBase() string { return strings.TrimSuffix(st.url, defaultPath) + "/v1" }

// restCall makes one HTTP call to the REST API of a stack.
func restCall(ctx context.Context, method, url string, body []byte) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
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

// checkEntries compares a batchGet answer with what the simulator says.
func (st *stack) checkEntries(t testing.TB, body []byte, ids []string) {
	t.Helper()
	got := restEntries(t, body)
	if len(got) != len(ids) {
		t.Fatalf("got %d entries; want %d", len(got), len(ids))
	}
	for i, id := range ids {
		want := st.expected(t, id)
		e := got[i]
		if e.ID == nil || *e.ID != id || string(e.Location) != want || e.Found != (want != "null") || e.Error != nil {
			gj, _ := json.Marshal(e)
			t.Fatalf("entry %d (%s): got %s; want location %s", i, id, gj, want)
		}
	}
}

// TestRESTEndToEnd: 6,000 ids in batchGet requests of 1,000 from 8 parallel
// clients, 30% of ids repeating earlier ones, then single GETs, against a
// simulator limited to 2,000 req/s: every entry right, one provider call
// per distinct ID, no 429.
func TestRESTEndToEnd(t *testing.T) {
	const batchIDs, clients = 1000, 8
	st := startStack(t,
		sim.Config{Rate: 2000, Burst: 1000, Latency: 2 * time.Millisecond, NotFoundRatio: 0.05, NoLocationRatio: 0.05},
		locapi.Config{Rate: 2000, Concurrency: 64},
		// The timeout only guards a hang on a starved machine.
		Config{RESTPrefix: "/v1", BatchTimeout: 10 * time.Minute})
	rng := rand.New(rand.NewPCG(3, 4))
	ids := make([]string, 6000)
	distinct := 0
	for i := range ids {
		if i > 0 && rng.Float64() < 0.3 {
			ids[i] = ids[rng.IntN(i)]
			continue
		}
		ids[i] = fmt.Sprintf("REST-%06d", distinct)
		distinct++
	}
	var batches [][]string
	for lo := 0; lo < len(ids); lo += batchIDs {
		batches = append(batches, ids[lo:min(lo+batchIDs, len(ids))])
	}
	answers := make([][]byte, len(batches))
	errs := make(chan error, len(batches))
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			for b := c; b < len(batches); b += clients {
				js, _ := json.Marshal(map[string][]string{"ids": batches[b]})
				code, body, err := restCall(context.Background(), http.MethodPost, st.restBase()+"/locations:batchGet", js)
				if err != nil || code != http.StatusOK {
					errs <- fmt.Errorf("batch %d: %d %w %.200s", b, code, err, body)
					return
				}
				answers[b] = body // each client writes its own indexes
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for b, body := range answers {
		st.checkEntries(t, body, batches[b])
	}
	for _, id := range ids[:200] {
		st.checkGet(t, id)
	}
	if got := st.sim.Total(); got != distinct {
		t.Fatalf("provider calls %d; want %d (one per distinct ID)", got, distinct)
	}
	if got := st.sim.Status(429); got != 0 {
		t.Fatalf("provider 429s: %d; want 0", got)
	}
}

// checkGet checks GET {prefix}/locations/{id} against the simulator.
func (st *stack) checkGet(t testing.TB, id string) {
	t.Helper()
	code, body, err := restCall(context.Background(), http.MethodGet, st.restBase()+"/locations/"+url.PathEscape(id), nil)
	if err != nil {
		t.Fatal(err)
	}
	switch want := st.expected(t, id); {
	case want == "null" && code != http.StatusNotFound:
		t.Fatalf("GET %s: got %d %s; want 404", id, code, body)
	case want == "null":
		restErrorOf(t, code, body)
	case code != http.StatusOK || string(body) != want:
		t.Fatalf("GET %s: got %d %s; want 200 %s", id, code, body, want)
	}
}

// TestRESTSharesResolverWithSnowflake: the same IDs through Snowflake's
// path and the REST API of one server cost one provider call per distinct
// ID across both, and both answer them alike.
func TestRESTSharesResolverWithSnowflake(t *testing.T) {
	st := startStack(t, sim.Config{NotFoundRatio: 0.1, NoLocationRatio: 0.1},
		locapi.Config{Concurrency: 16}, Config{RESTPrefix: "/v1"})
	ids := make([]string, 600)
	for i := range ids {
		ids[i] = fmt.Sprintf("BOTH-%04d", i)
	}
	ctx := context.Background()
	// Snowflake first for the first half, REST for all, Snowflake again for all.
	code, body, err := send(ctx, http.MethodPost, st.url, "both:1", []byte(batchBody(ids[:300])))
	if err != nil || code != http.StatusOK {
		t.Fatalf("Snowflake batch: %d %v %.200s", code, err, body)
	}
	st.checkAnswer(t, body, ids[:300])
	js, _ := json.Marshal(map[string][]string{"ids": ids})
	code, body, err = restCall(ctx, http.MethodPost, st.restBase()+"/locations:batchGet", js)
	if err != nil || code != http.StatusOK {
		t.Fatalf("batchGet: %d %v %.200s", code, err, body)
	}
	st.checkEntries(t, body, ids)
	code, body, err = send(ctx, http.MethodPost, st.url, "both:2", []byte(batchBody(ids)))
	if err != nil || code != http.StatusOK {
		t.Fatalf("Snowflake batch: %d %v %.200s", code, err, body)
	}
	st.checkAnswer(t, body, ids)
	if got := st.sim.Total(); got != len(ids) {
		t.Fatalf("provider calls %d; want %d (one per distinct ID across both protocols)", got, len(ids))
	}
	m := st.gw.met
	if n := testutil.ToFloat64(m.batches.WithLabelValues(protoREST, outcomeOK)); n != 1 {
		t.Fatalf("rest ok batches %v; want 1", n)
	}
	if n := testutil.ToFloat64(m.batches.WithLabelValues(protoSnowflake, outcomeOK)); n != 2 {
		t.Fatalf("snowflake ok batches %v; want 2", n)
	}
}

// BenchmarkRESTBatchGetHot: a batchGet of 4,096 cached IDs through the gin
// engine in process, beside the same IDs as a Snowflake batch, for the
// cost of the REST envelope and of its decoder.
func BenchmarkRESTBatchGetHot(b *testing.B) {
	sfBody, res := hotBatch(b)
	ids := make([]string, 0, len(res))
	for id := range res {
		ids = append(ids, id)
	}
	restBody, err := json.Marshal(map[string][]string{"ids": ids})
	if err != nil {
		b.Fatal(err)
	}
	s := newServer(b, res, Config{RESTPrefix: "/v1"})
	for _, c := range []struct {
		name, path string
		body       []byte
	}{{"rest", "/v1/locations:batchGet", restBody}, {"snowflake", defaultPath, sfBody}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			w := &countingWriter{h: http.Header{}}
			for b.Loop() {
				req := httptest.NewRequestWithContext(b.Context(), http.MethodPost, c.path, bytes.NewReader(c.body))
				clear(w.h)
				w.code, w.n = 0, 0
				s.Handler().ServeHTTP(w, req)
				if w.code != http.StatusOK || w.n == 0 {
					b.Fatalf("got %d with %d bytes; want 200 with an answer", w.code, w.n)
				}
			}
			b.ReportMetric(float64(b.N)*float64(len(ids))/b.Elapsed().Seconds(), "rows/s")
		})
	}
}
