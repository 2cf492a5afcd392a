package gateway

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/snowgate/snowgate/locapi"
)

// The request Snowflake documents for f(integer, varchar, timestamp)
// (external-functions-data-format).
const goldenRequest = `{"data": [[0, 10, "Alex", "2014-01-01 16:00:00"], [1, 20, "Steve", "2015-01-01 16:00:00"],
          [2, 30, "Alice", "2016-01-01 16:00:00"], [3, 40, "Adrian", "2017-01-01 16:00:00"]]}`

// Observed body with newlines between rows (section 6).
const goldenNewlines = "{\n\"data\":[\n[0,\"WL8ZUOD1kM\"]\n]\n}"

// testArg is one decoded row, for comparisons.
type testArg struct {
	row  int64
	id   string
	kind idKind
	err  error
}

func listOf(b *batch) []testArg {
	out := []testArg{}
	for i := range b.rows {
		out = append(out, testArg{row: b.rows[i], id: b.ids[i], kind: b.kinds[i], err: b.bad[i]})
	}
	return out
}

func TestParseBatchGolden(t *testing.T) {
	tests := []struct {
		name  string
		body  string
		arity int
		want  []testArg
	}{
		{"documented three-argument request", goldenRequest, 3, []testArg{
			{row: 0, id: "10"}, {row: 1, id: "20"}, {row: 2, id: "30"}, {row: 3, id: "40"},
		}},
		{"observed body with newlines", goldenNewlines, 1, []testArg{{row: 0, id: "WL8ZUOD1kM"}}},
		{"null and number ids", `{"data":[[0,null],[1,12345678901234567890123],[2,-7.50]]}`, 1, []testArg{
			{row: 0, kind: idNull}, {row: 1, id: "12345678901234567890123"}, {row: 2, id: "-7.50"},
		}},
		{"unknown top-level keys ignored", `{"x":1,"data":[[0,"a"]],"y":{"data":5}}`, 1, []testArg{{row: 0, id: "a"}}},
		{"escapes decoded", `{"data":[[0,"a\"b\\c\u00e9"]]}`, 1, []testArg{{row: 0, id: "a\"b\\cé"}}},
		{"rows in any order", `{"data":[[2,"c"],[0,"a"],[1,"b"]]}`, 1, []testArg{
			{row: 2, id: "c"}, {row: 0, id: "a"}, {row: 1, id: "b"},
		}},
		{"empty batch", `{"data":[]}`, 1, []testArg{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, status, err := parseBatch([]byte(tt.body), tt.arity)
			if err != nil {
				t.Fatalf("parseBatch: status %d, %v; want success", status, err)
			}
			if got := listOf(b); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v; want %+v", got, tt.want)
			}
		})
	}
}

func TestParseBatchRejects(t *testing.T) {
	tests := []struct {
		name, body, want string // want: a substring of the error
	}{
		{"empty body", ``, "invalid JSON"},
		{"invalid JSON", `{"data":[[0,"a"]`, "invalid JSON"},
		{"trailing data", `{"data":[[0,"a"]]} x`, "invalid JSON"},
		{"two objects", `{"data":[]}{"data":[]}`, "invalid JSON"},
		{"no data", `{}`, msgNoData},
		{"top-level array", `[[0,"a"]]`, msgNoData},
		{"top-level null", `null`, msgNoData},
		{"data null", `{"data":null}`, msgNoData},
		{"data object", `{"data":{"0":"a"}}`, msgNoData},
		{"data string", `{"data":"[[0,\"a\"]]"}`, msgNoData},
		{"row not an array", `{"data":[5]}`, "must be an array"},
		{"row object", `{"data":[{"0":"a"}]}`, "must be an array"},
		{"too few elements", `{"data":[[0]]}`, "1 elements, want 2"},
		{"too many elements", `{"data":[[0,"a","b"]]}`, "3 elements, want 2"},
		{"empty row", `{"data":[[]]}`, "0 elements"},
		{"fractional row number", `{"data":[[1.5,"a"]]}`, "must be an integer"},
		{"exponent row number", `{"data":[[1e2,"a"]]}`, "must be an integer"},
		{"string row number", `{"data":[["0","a"]]}`, "must be an integer"},
		{"null row number", `{"data":[[null,"a"]]}`, "must be an integer"},
		{"negative row number", `{"data":[[-1,"a"]]}`, "must not be negative"},
		{"huge row number", `{"data":[[99999999999999999999999,"a"]]}`, "out of range"},
		{"duplicate row numbers", `{"data":[[0,"a"],[1,"b"],[0,"c"]]}`, "duplicate row number 0"},
		{"raw control character", "{\"data\":[[0,\"a\x01b\"]]}", "invalid JSON"},
		{"second row broken", `{"data":[[0,"a"],[1]]}`, "data element 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, status, err := parseBatch([]byte(tt.body), 1)
			if err == nil {
				t.Fatalf("parseBatch(%q) succeeded; want an error containing %q", tt.body, tt.want)
			}
			if status != http.StatusBadRequest || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %d %q; want 400 containing %q", status, err, tt.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %q has a newline; Snowflake shows one line", err)
			}
		})
	}
}

func TestParseBatchBadIDs(t *testing.T) {
	tests := []struct {
		name, body string
		want       error
	}{
		{"boolean", `{"data":[[0,true]]}`, errBoolID},
		{"object", `{"data":[[0,{"id":"a"}]]}`, errObjectID},
		{"array", `{"data":[[0,["a"]]]}`, errArrayID},
		{"invalid UTF-8", "{\"data\":[[0,\"a\xffb\"]]}", errUTF8ID},
		{"lone high surrogate", `{"data":[[0,"a\ud800"]]}`, errSurrogID},
		{"lone low surrogate", `{"data":[[0,"\udc00a"]]}`, errSurrogID},
		{"high surrogate then a letter", `{"data":[[0,"\ud83dx"]]}`, errSurrogID},
		{"pair reversed", `{"data":[[0,"\ude00\ud83d"]]}`, errSurrogID},
		{"two highs", `{"data":[[0,"\ud83d\ud83d\ude00"]]}`, errSurrogID},
		{"high then escape", `{"data":[[0,"\ud83d\n"]]}`, errSurrogID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, _, err := parseBatch([]byte(tt.body), 1)
			if err != nil {
				t.Fatalf("parseBatch: %v; want a per-row error, not a batch error", err)
			}
			a := listOf(b)[0]
			if a.kind != idBad || !errors.Is(a.err, tt.want) || !errors.Is(a.err, locapi.ErrInvalidID) {
				t.Fatalf("got kind %d err %v; want idBad %v wrapping ErrInvalidID", a.kind, a.err, tt.want)
			}
		})
	}
}

// Escapes that are whole characters are IDs like any other.
func TestParseBatchEscapedIDs(t *testing.T) {
	tests := []struct{ body, want string }{
		{`{"data":[[0,"\ud83d\ude00"]]}`, "\U0001F600"},
		{`{"data":[[0,"a\\ud800"]]}`, `a\ud800`}, // an escaped backslash, then text
		{`{"data":[[0,"\u00e9\"\/"]]}`, `é"/`},
	}
	for _, tt := range tests {
		b, _, err := parseBatch([]byte(tt.body), 1)
		if err != nil {
			t.Fatalf("parseBatch(%s): %v", tt.body, err)
		}
		if a := listOf(b)[0]; a.kind != idText || a.id != tt.want {
			t.Errorf("parseBatch(%s): got kind %d id %q; want %q", tt.body, a.kind, a.id, tt.want)
		}
	}
}

func compress(t testing.TB, enc string, p []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	var w interface {
		Write([]byte) (int, error)
		Close() error
	}
	switch enc {
	case "gzip":
		w, _ = gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	case "zlib":
		w = zlib.NewWriter(&buf)
	case "raw":
		fw, err := flate.NewWriter(&buf, flate.BestSpeed)
		if err != nil {
			t.Fatal(err)
		}
		w = fw
	}
	if _, err := w.Write(p); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestReadBody(t *testing.T) {
	plain := []byte(goldenNewlines)
	bomb := compress(t, "gzip", make([]byte, 8<<20))         // 8 MiB of zeros in about 8 KB
	empties := bytes.Repeat(compress(t, "gzip", nil), 20000) // empty gzip members: input without output
	tests := []struct {
		name, encoding string
		body           []byte
		limit          int64
		wantStatus     int
	}{
		{"identity", "", plain, 1 << 20, 0},
		{"gzip", "gzip", compress(t, "gzip", plain), 1 << 20, 0},
		{"deflate zlib", "deflate", compress(t, "zlib", plain), 1 << 20, 0},
		{"deflate raw", "deflate", compress(t, "raw", plain), 1 << 20, 0},
		{"encoding case and spaces", " GZIP ", compress(t, "gzip", plain), 1 << 20, 0},
		{"exactly the limit", "", plain, int64(len(plain)), 0},
		{"over the limit", "", plain, int64(len(plain)) - 1, http.StatusRequestEntityTooLarge},
		{"gzip bomb", "gzip", bomb, 1 << 20, http.StatusRequestEntityTooLarge},
		{"endless empty gzip members", "gzip", empties, 1 << 16, http.StatusRequestEntityTooLarge},
		{"not gzip", "gzip", plain, 1 << 20, http.StatusBadRequest},
		{"truncated gzip", "gzip", compress(t, "gzip", plain)[:20], 1 << 20, http.StatusBadRequest},
		{"not deflate", "deflate", []byte{0xff, 0xff, 0xff}, 1 << 20, http.StatusBadRequest},
		{"brotli", "br", plain, 1 << 20, http.StatusUnsupportedMediaType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequestWithContext(t.Context(), http.MethodPost, "/", bytes.NewReader(tt.body))
			if tt.encoding != "" {
				req.Header.Set("Content-Encoding", tt.encoding)
			}
			var buf bytes.Buffer
			status, err := readBody(req, &buf, tt.limit)
			if status != tt.wantStatus {
				t.Fatalf("got status %d (%v); want %d", status, err, tt.wantStatus)
			}
			if status == 0 && !bytes.Equal(buf.Bytes(), plain) {
				t.Fatalf("got body %q; want %q", buf.Bytes(), plain)
			}
			if want := fmt.Sprintf("over %d bytes", tt.limit); status == http.StatusRequestEntityTooLarge && !strings.Contains(err.Error(), want) {
				t.Fatalf("got %q; want it to say %q", err, want)
			}
			if status != 0 && buf.Len() > int(tt.limit)+1 {
				t.Fatalf("read %d bytes; want at most limit+1 = %d", buf.Len(), tt.limit+1)
			}
		})
	}
}

// FuzzDecodeBatch checks that no input panics, every failure is a 400 with a
// one-line reason, and the hand-written scanner agrees with encoding/json on
// everything it accepts.
func FuzzDecodeBatch(f *testing.F) {
	for _, seed := range []string{
		goldenRequest, goldenNewlines,
		`{"data":[[0,"a"],[1,null],[2,"b"]]}`,
		`{"data":[[0,1],[1,-2.5e3],[2,true],[3,{}],[4,[]]]}`,
		`{"data":[]}`, `{}`, `[]`, `null`, ``, `{"data":null}`, `{"data":[5]}`,
		`{"data":[[0,"a"]]} x`, `{"data":[[1.5,"a"]]}`, `{"data":[[99999999999999999999,"a"]]}`,
		`{"data":[[0,"a"],[0,"b"]]}`, `{"data":[[1,"b"],[0,"a"]]}`,
		"{\"data\":[[0,\"a\xffb\"]]}", "{\"data\":[[0,\"a\x01b\"]]}", `{"data":[[0,"\u0000"]]}`,
		` { "data" : [ [ 0 , "a" ] , [ 1 , null ] ] } `, `{"data":[[007,"a"]]}`, `{"data":[[-0,"a"]]}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		b, status, err := parseBatch(body, 1)
		if err != nil {
			if status != http.StatusBadRequest || strings.ContainsAny(err.Error(), "\r\n") {
				t.Fatalf("got status %d error %q; want 400 and one line", status, err)
			}
			return
		}
		if len(b.ids) != len(b.rows) || len(b.kinds) != len(b.rows) {
			t.Fatalf("ragged batch: %d rows, %d ids, %d kinds", len(b.rows), len(b.ids), len(b.kinds))
		}
		for _, a := range listOf(b) {
			if (a.kind == idBad) != (a.err != nil) {
				t.Fatalf("row %d: kind %d with err %v", a.row, a.kind, a.err)
			}
			if a.row < 0 {
				t.Fatalf("negative row %d accepted", a.row)
			}
		}
		if fast, ok := scanFast(body, 1); ok {
			slow, err := parseSlow(body, 1)
			if err != nil {
				t.Fatalf("scanner accepted %q; encoding/json says %v", body, err)
			}
			if got, want := listOf(fast), listOf(slow); !reflect.DeepEqual(got, want) {
				t.Fatalf("scanner got %+v; encoding/json got %+v", got, want)
			}
		}
	})
}
