package extfunc

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
)

// The request and response of Snowflake's [external-functions-data-format]
// page, verbatim.
const (
	goldenRequest = `{"data": [[0, 10, "Alex", "2014-01-01 16:00:00"], [1, 20, "Steve", "2015-01-01 16:00:00"],
          [2, 30, "Alice", "2016-01-01 16:00:00"], [3, 40, "Adrian", "2017-01-01 16:00:00"]]}`
	goldenResponse = `{"data": [[0, {"City": "Warsaw", "latitude": 52.23, "longitude": 21.01}],
          [1, {"City": "Toronto", "latitude": 43.65, "longitude": -79.38}]]}`
)

// sameJSON decodes a and b with UseNumber and compares them.
func sameJSON(t *testing.T, a, b []byte) bool {
	t.Helper()
	decode := func(s []byte) any {
		d := json.NewDecoder(bytes.NewReader(s))
		d.UseNumber()
		var v any
		if err := d.Decode(&v); err != nil {
			t.Fatalf("decode %s: %v", s, err)
		}
		return v
	}
	return reflect.DeepEqual(decode(a), decode(b))
}

func TestEncodeRequest(t *testing.T) {
	tests := []struct {
		name   string
		rows   [][]any
		want   string // exact bytes
		golden string // the same document as written elsewhere, if any
	}{
		{"the documented f(integer, varchar, timestamp) batch", [][]any{
			{10, "Alex", "2014-01-01 16:00:00"}, {20, "Steve", "2015-01-01 16:00:00"},
			{30, "Alice", "2016-01-01 16:00:00"}, {json.Number("40"), "Adrian", "2017-01-01 16:00:00"},
		}, `{"data":[[0,10,"Alex","2014-01-01 16:00:00"],[1,20,"Steve","2015-01-01 16:00:00"],[2,30,"Alice","2016-01-01 16:00:00"],[3,40,"Adrian","2017-01-01 16:00:00"]]}`, goldenRequest},
		{"no rows", nil, `{"data":[]}`, ""},
		{"null, booleans, a big number and an object", [][]any{{nil, true}, {json.Number("123456789012345678901234567890"), map[string]int{"a": 1}}},
			`{"data":[[0,null,true],[1,123456789012345678901234567890,{"a":1}]]}`, ""},
		{"a function of no arguments", [][]any{{}, {}}, `{"data":[[0],[1]]}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := EncodeRequest(tt.rows)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Fatalf("EncodeRequest = %s; want %s", got, tt.want)
			}
			if tt.golden != "" && !sameJSON(t, got, []byte(tt.golden)) {
				t.Fatalf("EncodeRequest = %s; want the same document as %s", got, tt.golden)
			}
		})
	}
}

func TestEncodeColumn(t *testing.T) {
	ids := []string{"a", `q"uote`, "ünï", "x/y", "<&>", "tab\there", ""}
	body, err := EncodeColumn(ids)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Data [][2]any `json:"data"`
	}
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatalf("body %s: %v", body, err)
	}
	if len(got.Data) != len(ids) {
		t.Fatalf("%d rows; want %d", len(got.Data), len(ids))
	}
	for i, row := range got.Data {
		if row[0] != float64(i) || row[1] != ids[i] {
			t.Errorf("row %d: got %v; want [%d %q]", i, row, i, ids[i])
		}
	}
	mixed, err := EncodeColumn([]any{nil, json.Number("12345"), "Q1"})
	if want := `{"data":[[0,null],[1,12345],[2,"Q1"]]}`; err != nil || string(mixed) != want {
		t.Fatalf("EncodeColumn(mixed) = %s, %v; want %s", mixed, err, want)
	}
}

func TestEncodeRejectsWhatJSONCannotHold(t *testing.T) {
	for _, rows := range [][][]any{{{"ok"}, {math.NaN()}}, {{make(chan int)}}} {
		if body, err := EncodeRequest(rows); err == nil || !strings.Contains(err.Error(), "encode row") {
			t.Errorf("EncodeRequest(%v) = %s, %v; want an encode error naming the row", rows, body, err)
		}
	}
}

func TestDecodeResponse(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		n       int
		want    []string // the values, compact
		wantErr error
		wantMsg string
	}{
		{"documented OBJECT values", goldenResponse, 2,
			[]string{`{"City":"Warsaw","latitude":52.23,"longitude":21.01}`, `{"City":"Toronto","latitude":43.65,"longitude":-79.38}`}, nil, ""},
		{"newlines between rows, null and scalar values", "{\n\"data\":[\n[0,null],\n[1,\"x\"],[2, 3.5]\n]\n}", 3, []string{"null", `"x"`, "3.5"}, nil, ""},
		{"unknown top-level keys are ignored", `{"meta":{"a":1},"data":[[0,true]]}`, 1, []string{"true"}, nil, ""},
		{"no rows for no rows", `{"data":[]}`, 0, []string{}, nil, ""},
		{"a row short", `{"data":[[0,1]]}`, 2, nil, ErrRowCount, "1 rows answered for 2 sent"},
		{"a row too many", `{"data":[[0,1],[1,2],[2,3]]}`, 2, nil, ErrRowCount, "3 rows answered for 2 sent"},
		{"rows swapped", `{"data":[[1,1],[0,2]]}`, 2, nil, ErrRowOrder, "row 0 is numbered 1"},
		{"rows numbered from 1", `{"data":[[1,1],[2,2]]}`, 2, nil, ErrRowOrder, ""},
		{"a row number as a string", `{"data":[["0",1]]}`, 1, nil, ErrRowOrder, ""},
		{"a fractional row number", `{"data":[[0.0,1]]}`, 1, nil, ErrRowOrder, ""},
		{"a row without its value", `{"data":[[0]]}`, 1, nil, ErrInvalidJSON, "row 0 has 1 elements"},
		{"a row with two values", `{"data":[[0,1,2]]}`, 1, nil, ErrInvalidJSON, ""},
		{"a row that is null", `{"data":[null]}`, 1, nil, ErrInvalidJSON, ""},
		{"a row that is not an array", `{"data":[5]}`, 1, nil, ErrInvalidJSON, "not an array"},
		{"not JSON", `<html>bad gateway</html>`, 1, nil, ErrInvalidJSON, ""},
		{"empty body", ``, 1, nil, ErrInvalidJSON, ""},
		{"cut short", `{"data":[[0,{"id":"a"`, 1, nil, ErrInvalidJSON, ""},
		{"trailing data", `{"data":[[0,1]]} {"data":[]}`, 1, nil, ErrInvalidJSON, ""},
		{"no data key", `{"rows":[[0,1]]}`, 1, nil, ErrNoData, ""},
		{"data key in another case", `{"DATA":[[0,1]]}`, 1, nil, ErrNoData, ""},
		{"data is null", `{"data":null}`, 1, nil, ErrNoData, ""},
		{"data is an object", `{"data":{"0":1}}`, 1, nil, ErrNoData, ""},
		{"top level is an array", `[[0,1]]`, 1, nil, ErrNoData, "not a JSON object"},
		{"top level is null", `null`, 1, nil, ErrNoData, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			values, err := DecodeResponse([]byte(tt.body), tt.n)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.wantMsg) {
					t.Fatalf("DecodeResponse error = %v; want %v mentioning %q", err, tt.wantErr, tt.wantMsg)
				}
				if values != nil {
					t.Fatalf("DecodeResponse values = %s with an error; want none", values)
				}
				return
			}
			if err != nil {
				t.Fatalf("DecodeResponse: %v", err)
			}
			got := make([]string, len(values))
			for i, v := range values {
				var buf bytes.Buffer
				if err := json.Compact(&buf, v); err != nil {
					t.Fatalf("value %d %s: %v", i, v, err)
				}
				got[i] = buf.String()
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("values = %q; want %q", got, tt.want)
			}
		})
	}
}

// TestErrorsAreSnowflakes pins the messages to the ones Snowflake shows.
func TestErrorsAreSnowflakes(t *testing.T) {
	for err, want := range map[error]string{
		ErrInvalidJSON: "Error parsing JSON: Invalid response",
		ErrNoData:      `top-level JSON object must contain "data" JSON array element`,
		ErrRowCount:    "Function received the wrong number of rows",
		ErrRowOrder:    "Row numbers out of order",
	} {
		if err.Error() != want {
			t.Errorf("error %q; want %q", err, want)
		}
	}
}

// FuzzDecodeResponse checks the decoder against encoding/json: it never
// panics, it accepts only valid JSON, and what it accepts is exactly n rows
// [i, value] whose values are the document's own.
func FuzzDecodeResponse(f *testing.F) {
	f.Add([]byte(goldenResponse), 2)
	f.Add([]byte(`{"data":[[0,{"id":"a","label":"x"}],[1,null]]}`), 2)
	f.Add([]byte(`{"data":[[1,null],[0,null]]}`), 2)
	f.Add([]byte(`{"data":[[0,{"error":"boom"}]], "extra": 1}`), 1)
	f.Add([]byte(`{"data":[[0]]}`), 1)
	f.Add([]byte(`{"data":[]}`), 0)
	f.Add([]byte(`{"data":[[0,1]],"data":[[0,2],[1,3]]}`), 2)
	f.Fuzz(func(t *testing.T, body []byte, n int) {
		if n < 0 || n > 1000 {
			return
		}
		values, err := DecodeResponse(body, n)
		if err != nil {
			for _, want := range []error{ErrInvalidJSON, ErrNoData, ErrRowCount, ErrRowOrder} {
				if errors.Is(err, want) {
					return
				}
			}
			t.Fatalf("error %v wraps none of Snowflake's messages", err)
		}
		if !json.Valid(body) {
			t.Fatalf("accepted invalid JSON %q", body)
		}
		if len(values) != n {
			t.Fatalf("decoded %d values; want %d", len(values), n)
		}
		// The key is matched exactly, as a map does (a struct field would
		// also match "DATA").
		var top map[string]json.RawMessage
		var rows [][]json.RawMessage
		err = json.Unmarshal(body, &top)
		if err == nil {
			err = json.Unmarshal(top["data"], &rows)
		}
		if err != nil || len(rows) != n {
			t.Fatalf("accepted %q, which encoding/json reads as %d rows (%v)", body, len(rows), err)
		}
		for i, v := range values {
			if !json.Valid(v) || !bytes.Equal(v, rows[i][1]) {
				t.Fatalf("value %d = %q; encoding/json reads %q", i, v, rows[i][1])
			}
		}
	})
}
