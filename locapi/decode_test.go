package locapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/snowgate/snowgate/sim"
)

func ptr[T any](v T) *T { return &v }

func TestDecodeEntity(t *testing.T) {
	full := `{"id":"w1","label":"Depot","location":{"geoLabel":"g","streetAddress":"1 Main St",
		"cityLabel":"Łódź","postalCode":"90-001","countryLabel":"Poland","latitude":51.77,"longitude":19.46}}`
	tests := []struct {
		name, body string
		want       Result
	}{
		{"full", full, Result{Status: Found, Record: &Record{ID: "w1", Label: ptr("Depot"), GeoLabel: ptr("g"),
			StreetAddress: ptr("1 Main St"), CityLabel: ptr("Łódź"), PostalCode: ptr("90-001"),
			CountryLabel: ptr("Poland"), Latitude: ptr(51.77), Longitude: ptr(19.46)}}},
		{"nulls stay nil", `{"id":"w1","label":null,"location":{"geoLabel":null,"cityLabel":"c","latitude":null,"longitude":0}}`,
			Result{Status: Found, Record: &Record{ID: "w1", CityLabel: ptr("c"), Longitude: ptr(0.0)}}},
		{"empty location object is found", `{"id":"w1","location":{}}`, Result{Status: Found, Record: &Record{ID: "w1"}}},
		{"location null", `{"id":"w1","label":"L","location":null}`, Result{Status: NoLocation, Record: &Record{ID: "w1", Label: ptr("L")}}},
		{"location absent", `{"id":"w1","label":"L"}`, Result{Status: NoLocation, Record: &Record{ID: "w1", Label: ptr("L")}}},
		{"unknown fields ignored", `{"id":"w1","extra":[1,2],"location":null}`, Result{Status: NoLocation, Record: &Record{ID: "w1"}}},
		{"trailing whitespace", `{"id":"w1"}` + " \n", Result{Status: NoLocation, Record: &Record{ID: "w1"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeEntity(strings.NewReader(tt.body), "w1")
			if err != nil {
				t.Fatalf("decodeEntity: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				g, _ := json.Marshal(got.Record)
				w, _ := json.Marshal(tt.want.Record)
				t.Fatalf("got %v %s; want %v %s", got.Status, g, tt.want.Status, w)
			}
		})
	}
}

func TestDecodeEntityMalformed(t *testing.T) {
	tests := []struct {
		name, body, want string
	}{
		{"empty", "", "EOF"},
		{"truncated", `{"id":"w1","label":"De`, "unexpected EOF"},
		{"not json", "<html>busy</html>", "invalid character"},
		{"null", "null", "no id"},
		{"array", `[{"id":"w1"}]`, "cannot unmarshal"},
		{"no id", `{"label":"x"}`, "no id"},
		{"other id", `{"id":"w2"}`, `answer is for id "w2"`},
		{"id differs in case", `{"id":"W1"}`, `answer is for id "W1"`},
		{"id wrong type", `{"id":1}`, "cannot unmarshal"},
		{"latitude string", `{"id":"w1","location":{"latitude":"51.7"}}`, "cannot unmarshal"},
		{"location wrong type", `{"id":"w1","location":"Paris"}`, "cannot unmarshal"},
		{"trailing data", `{"id":"w1"}{"id":"w1"}`, "data after the JSON object"},
		{"too large", `{"id":"w1","label":"` + strings.Repeat("x", MaxBodyBytes) + `"}`, "larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeEntity(strings.NewReader(tt.body), "w1")
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("decodeEntity error = %v; want ErrMalformed containing %q", err, tt.want)
			}
		})
	}
}

func TestDecodeEntityBodyBreaksOff(t *testing.T) {
	r := io.MultiReader(strings.NewReader(`{"id":"w1"`), iotest.ErrReader(io.ErrUnexpectedEOF))
	_, err := decodeEntity(r, "w1")
	var br *errBodyRead
	if !errors.As(err, &br) || errors.Is(err, ErrMalformed) {
		t.Fatalf("decodeEntity error = %v; want a body read error, not ErrMalformed", err)
	}
}

func TestShortID(t *testing.T) {
	long := strings.Repeat("a", 10<<10)
	if got := shortID(long); len(got) > 100 || !strings.Contains(got, "10240 bytes") {
		t.Fatalf("shortID(10 KB) = %q; want a short quote naming the length", got)
	}
	if got, want := shortID("a\x00b"), `"a\x00b"`; got != want {
		t.Fatalf("shortID = %s; want %s", got, want)
	}
}

// decodeReference is decodeEntity as it was before its fast path: the
// behaviour the fast path must reproduce exactly.
func decodeReference(body io.Reader, id string) (Result, error) {
	data, err := io.ReadAll(io.LimitReader(body, MaxBodyBytes+1))
	if err != nil {
		return Result{}, &errBodyRead{err: err}
	}
	if len(data) > MaxBodyBytes {
		return Result{}, fmt.Errorf("%w: body larger than %d bytes", ErrMalformed, MaxBodyBytes)
	}
	return decodeEntitySlow(data, id)
}

// diffDecode describes how decodeEntity's answer for body differs from
// decodeReference's, or returns "" when they are the same: status, record
// (pointer for pointer, floats bit for bit) and error, message included.
func diffDecode(body, id string) string {
	got, gerr := decodeEntity(strings.NewReader(body), id)
	want, werr := decodeReference(strings.NewReader(body), id)
	switch {
	case (gerr == nil) != (werr == nil):
		return fmt.Sprintf("error %v; want %v", gerr, werr)
	case gerr != nil && (gerr.Error() != werr.Error() || !errors.Is(gerr, ErrMalformed)):
		return fmt.Sprintf("error %q; want %q wrapping ErrMalformed", gerr, werr)
	case got.Status != want.Status:
		return fmt.Sprintf("status %v; want %v", got.Status, want.Status)
	}
	if d := diffRecord(got.Record, want.Record); d != "" {
		return "record: " + d
	}
	return ""
}

func diffRecord(got, want *Record) string {
	if got == nil || want == nil {
		if got != want {
			return fmt.Sprintf("%+v; want %+v", got, want)
		}
		return ""
	}
	if got.ID != want.ID {
		return fmt.Sprintf("id %q; want %q", got.ID, want.ID)
	}
	strs := []struct {
		name      string
		got, want *string
	}{
		{"label", got.Label, want.Label}, {"geo_label", got.GeoLabel, want.GeoLabel},
		{"street_address", got.StreetAddress, want.StreetAddress}, {"city_label", got.CityLabel, want.CityLabel},
		{"postal_code", got.PostalCode, want.PostalCode}, {"country_label", got.CountryLabel, want.CountryLabel},
	}
	for _, f := range strs {
		if (f.got == nil) != (f.want == nil) || f.got != nil && *f.got != *f.want {
			return fmt.Sprintf("%s %s; want %s", f.name, show(f.got), show(f.want))
		}
	}
	nums := []struct {
		name      string
		got, want *float64
	}{{"latitude", got.Latitude, want.Latitude}, {"longitude", got.Longitude, want.Longitude}}
	for _, f := range nums {
		if (f.got == nil) != (f.want == nil) || f.got != nil && math.Float64bits(*f.got) != math.Float64bits(*f.want) {
			return fmt.Sprintf("%s %s; want %s", f.name, show(f.got), show(f.want))
		}
	}
	return ""
}

func show[T any](p *T) string {
	if p == nil {
		return "nil"
	}
	return fmt.Sprintf("%#v", *p)
}

// scansFast reports whether the fast path reads body on its own.
func scansFast(body, id string) bool {
	s := entityScan{data: []byte(body)}
	_, ok := s.decode(id)
	return ok
}

// decodeCases are answers the fast path must decode exactly as
// encoding/json does; fast says whether it reads them itself rather than
// handing them to encoding/json.
var decodeCases = []struct {
	name, body string
	fast       bool
}{
	{"full", `{"id":"w1","label":"Depot","location":{"geoLabel":"g","streetAddress":"1 Main St","cityLabel":"Łódź",` +
		`"postalCode":"90-001","countryLabel":"Poland","latitude":51.77,"longitude":19.46}}`, true},
	{"keys in another order", `{"location":{"longitude":19.46,"cityLabel":"c","latitude":51.77},"label":"L","id":"w1"}`, true},
	{"all null", `{"id":"w1","label":null,"location":{"geoLabel":null,"streetAddress":null,"cityLabel":null,` +
		`"postalCode":null,"countryLabel":null,"latitude":null,"longitude":null}}`, true},
	{"location absent", `{"id":"w1","label":"L"}`, true},
	{"location null", `{"id":"w1","label":"L","location":null}`, true},
	{"location empty", `{"id":"w1","location":{}}`, true},
	{"only id", `{"id":"w1"}`, true},
	{"empty strings", `{"id":"w1","label":"","location":{"cityLabel":""}}`, true},
	{"whitespace everywhere", " \t\r\n{ \"id\" :\n\"w1\" ,\t\"location\" : { \"latitude\" : -1.5 , \"cityLabel\"\r: null } } \n\t", true},
	{"trailing whitespace", `{"id":"w1"}` + " \n", true},

	{"simple escapes", `{"id":"w1","label":"a\"b\\c\/d\be\ff\ng\rh\ti"}`, true},
	{"escaped id", `{"id":"w\u0031"}`, true},
	{"unicode escapes", `{"id":"w1","label":"\u00e9\u4E2D\u0000\u001f\u007f\u2028"}`, true},
	{"surrogate pair", `{"id":"w1","label":"\ud83d\ude00 \uD83D\uDE00"}`, true},
	{"lone high surrogate at end", `{"id":"w1","label":"a\ud83d"}`, true},
	{"lone high surrogate then text", `{"id":"w1","label":"\ud83dx"}`, true},
	{"lone low surrogate", `{"id":"w1","label":"\ude00\ude00"}`, true},
	{"high surrogate twice then low", `{"id":"w1","label":"\ud83d\ud83d\ude00"}`, true},
	{"high surrogate then other escape", `{"id":"w1","label":"\ud83d\u0041\ud83d\n"}`, true},
	{"high surrogate then bad escape", `{"id":"w1","label":"\ud83d\uZZZZ"}`, false},
	{"bad escape", `{"id":"w1","label":"\x"}`, false},
	{"single quote escape", `{"id":"w1","label":"\'"}`, false},
	{"short unicode escape", `{"id":"w1","label":"\u12"}`, false},
	{"raw unicode", `{"id":"w1","label":"Αθήνα 東京 😀 ` + "\u2028\u2029\x7f" + `"}`, true},
	{"invalid UTF-8", "{\"id\":\"w1\",\"label\":\"a\xffb\"}", false},
	{"UTF-8 encoded surrogate", "{\"id\":\"w1\",\"label\":\"\xed\xa0\x80\"}", false},
	{"truncated UTF-8", "{\"id\":\"w1\",\"label\":\"\xe6\x9d\"}", false},
	{"invalid UTF-8 in id", "{\"id\":\"w1\xff\"}", false},
	{"control character", "{\"id\":\"w1\",\"label\":\"a\x01b\"}", false},
	{"newline in string", "{\"id\":\"w1\",\"label\":\"a\nb\"}", false},

	{"zero", `{"id":"w1","location":{"latitude":0,"longitude":-0}}`, true},
	{"exponents", `{"id":"w1","location":{"latitude":1e5,"longitude":1E-7}}`, true},
	{"signed exponents", `{"id":"w1","location":{"latitude":1e+2,"longitude":-2.5E-10}}`, true},
	{"fractions", `{"id":"w1","location":{"latitude":0.1,"longitude":-0.000001}}`, true},
	{"long mantissa", `{"id":"w1","location":{"latitude":123456789012345678901234567890.123456789,"longitude":0.30000000000000004}}`, true},
	{"extremes", `{"id":"w1","location":{"latitude":1.7976931348623157e308,"longitude":5e-324}}`, true},
	{"underflow", `{"id":"w1","location":{"latitude":1e-400,"longitude":-1e-400}}`, true},
	{"exponent with leading zeros", `{"id":"w1","location":{"longitude":-1e000,"latitude":2E+0001}}`, true},
	{"exponent too large", `{"id":"w1","location":{"latitude":1e400}}`, false},
	{"negative exponent too large", `{"id":"w1","location":{"latitude":-1e309}}`, false},
	{"leading zero", `{"id":"w1","location":{"latitude":01}}`, false},
	{"bare point", `{"id":"w1","location":{"latitude":1.}}`, false},
	{"leading point", `{"id":"w1","location":{"latitude":.5}}`, false},
	{"plus sign", `{"id":"w1","location":{"latitude":+1}}`, false},
	{"bare minus", `{"id":"w1","location":{"latitude":-}}`, false},
	{"bare exponent", `{"id":"w1","location":{"latitude":1e}}`, false},
	{"hex", `{"id":"w1","location":{"latitude":0x10}}`, false},
	{"underscore", `{"id":"w1","location":{"latitude":1_0}}`, false},
	{"NaN", `{"id":"w1","location":{"latitude":NaN}}`, false},
	{"Infinity", `{"id":"w1","location":{"latitude":-Infinity}}`, false},

	{"trailing garbage", `{"id":"w1"}x`, false},
	{"second object", `{"id":"w1"}{"id":"w1"}`, false},
	{"trailing NUL", "{\"id\":\"w1\"}\x00", false},
	{"byte order mark", "\ufeff{\"id\":\"w1\"}", false},
	{"other id", `{"id":"w2"}`, false},
	{"id differs in case", `{"id":"W1"}`, false},
	{"no id", `{"label":"x"}`, false},
	{"id null", `{"id":null}`, false},
	{"id number", `{"id":1}`, false},
	{"empty body", ``, false},
	{"only whitespace", " \n", false},
	{"empty object", `{}`, false},
	{"top-level null", `null`, false},
	{"top-level array", `[{"id":"w1"}]`, false},
	{"top-level string", `"w1"`, false},
	{"truncated in string", `{"id":"w1","label":"De`, false},
	{"truncated after key", `{"id":"w1","label"`, false},
	{"truncated in location", `{"id":"w1","location":{"latitude":1`, false},
	{"truncated null", `{"id":"w1","label":nul`, false},
	{"trailing comma", `{"id":"w1",}`, false},
	{"missing colon", `{"id" "w1"}`, false},
	{"missing comma", `{"id":"w1" "label":"x"}`, false},
	{"html", `<html>busy</html>`, false},
	// Found by FuzzDecodeEntity as new coverage; kept as seeds.
	{"truncated in unicode escape", `{"id":"w1","label":"\u0AAA`, false},
	{"non-ASCII key", `{"ۻ":0 }`, false},
	{"empty key", `{"":null,"id":"w1"}`, false},
	{"string then string", `{"id":"w1"}""`, false},
	{"many escapes unterminated", `{"id":"\r\r\r\r\r\r\r\r`, false},
	{"empty key in location", `{"id":"w1","location":{"":-1e000}}`, false},

	{"unknown key", `{"id":"w1","extra":[1,{"a":2}],"location":null}`, false},
	{"unknown location key", `{"id":"w1","location":{"altitude":3,"latitude":1}}`, false},
	{"uppercase key", `{"ID":"w1"}`, false},
	{"key in other case", `{"id":"w1","Label":"L","location":{"Latitude":1,"cityLABEL":"c"}}`, false},
	{"key in two cases", `{"id":"w1","label":"a","LABEL":"b"}`, false},
	{"escaped key", `{"\u0069d":"w1"}`, false},
	{"duplicate id", `{"id":"w2","id":"w1"}`, false},
	{"duplicate label", `{"id":"w1","label":"a","label":null}`, false},
	{"duplicate location", `{"id":"w1","location":{"latitude":1},"location":null}`, false},
	{"duplicate latitude", `{"id":"w1","location":{"latitude":1,"latitude":2}}`, false},
	{"label number", `{"id":"w1","label":1}`, false},
	{"label true", `{"id":"w1","label":true}`, false},
	{"label object", `{"id":"w1","label":{}}`, false},
	{"latitude string", `{"id":"w1","location":{"latitude":"51.7"}}`, false},
	{"latitude array", `{"id":"w1","location":{"latitude":[1]}}`, false},
	{"latitude false", `{"id":"w1","location":{"latitude":false}}`, false},
	{"location string", `{"id":"w1","location":"Paris"}`, false},
	{"location array", `{"id":"w1","location":[]}`, false},
	{"location true", `{"id":"w1","location":true}`, false},
}

func TestDecodeEntityMatchesReference(t *testing.T) {
	for _, tt := range decodeCases {
		t.Run(tt.name, func(t *testing.T) {
			if d := diffDecode(tt.body, "w1"); d != "" {
				t.Fatalf("decodeEntity(%q): %s", tt.body, d)
			}
			if got := scansFast(tt.body, "w1"); got != tt.fast {
				t.Fatalf("fast path read %q: %v; want %v", tt.body, got, tt.fast)
			}
		})
	}
}

// TestDecodeEntityPrefixes cuts realistic answers at every byte.
func TestDecodeEntityPrefixes(t *testing.T) {
	for _, a := range simAnswers(t) {
		for n := range len(a.body) {
			if d := diffDecode(a.body[:n], a.id); d != "" {
				t.Fatalf("decodeEntity(%q): %s", a.body[:n], d)
			}
		}
	}
}

// TestDecodeEntityReadsSimulator checks the fast path reads every kind of
// answer the simulator writes, escapes included, by itself.
func TestDecodeEntityReadsSimulator(t *testing.T) {
	for _, a := range simAnswers(t) {
		if d := diffDecode(a.body, a.id); d != "" {
			t.Fatalf("decodeEntity(%q): %s", a.body, d)
		}
		if !scansFast(a.body, a.id) {
			t.Fatalf("fast path did not read %q", a.body)
		}
	}
}

func TestDecodeEntitySizeLimit(t *testing.T) {
	pad := func(n int) string {
		const frame = `{"id":"w1","label":""}`
		return `{"id":"w1","label":"` + strings.Repeat("x", n-len(frame)) + `"}`
	}
	for _, body := range []string{pad(MaxBodyBytes), pad(MaxBodyBytes + 1), pad(MaxBodyBytes + 4096)} {
		if d := diffDecode(body, "w1"); d != "" {
			t.Fatalf("decodeEntity(%d bytes): %s", len(body), d)
		}
	}
	if _, err := decodeEntity(strings.NewReader(pad(MaxBodyBytes)), "w1"); err != nil {
		t.Fatalf("decodeEntity(%d bytes) = %v; want it read", MaxBodyBytes, err)
	}
}

// TestDecodeEntityReaders feeds bodies the ways a connection may: in small
// pieces, with the last data and io.EOF together, or breaking off.
func TestDecodeEntityReaders(t *testing.T) {
	body := `{"id":"w1","label":"Depot","location":{"cityLabel":"Łódź","latitude":51.77}}`
	want, err := decodeReference(strings.NewReader(body), "w1")
	if err != nil {
		t.Fatal(err)
	}
	for name, r := range map[string]func() io.Reader{
		"one byte":       func() io.Reader { return iotest.OneByteReader(strings.NewReader(body)) },
		"data with EOF":  func() io.Reader { return iotest.DataErrReader(strings.NewReader(body)) },
		"half with half": func() io.Reader { return iotest.HalfReader(strings.NewReader(body)) },
	} {
		got, err := decodeEntity(r(), "w1")
		if err != nil || got.Status != want.Status || diffRecord(got.Record, want.Record) != "" {
			t.Fatalf("%s: decodeEntity = %v %+v, %v; want %v %+v", name, got.Status, got.Record, err, want.Status, want.Record)
		}
	}
	for _, n := range []int{0, 10, len(body)} {
		r := io.MultiReader(strings.NewReader(body[:n]), iotest.ErrReader(io.ErrUnexpectedEOF))
		_, err := decodeEntity(r, "w1")
		var br *errBodyRead
		if !errors.As(err, &br) || !errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, ErrMalformed) {
			t.Fatalf("decodeEntity(break after %d bytes) error = %v; want a body read error, not ErrMalformed", n, err)
		}
	}
}

// TestDecodeEntityOwnsStrings checks a Record does not share memory with
// the pooled buffers the next answers are read into.
func TestDecodeEntityOwnsStrings(t *testing.T) {
	first, err := decodeEntity(strings.NewReader(`{"id":"w1","label":"Depot \"A\"","location":{"cityLabel":"Łódź"}}`), "w1")
	if err != nil {
		t.Fatal(err)
	}
	for range 100 {
		if _, err := decodeEntity(strings.NewReader(`{"id":"w1","label":"XXXXXXXXXXXXXXXXXX","location":{"cityLabel":"YYYYYYYYYYYY"}}`), "w1"); err != nil {
			t.Fatal(err)
		}
	}
	if *first.Record.Label != `Depot "A"` || *first.Record.CityLabel != "Łódź" {
		t.Fatalf("first record became %q, %q; want %q, %q", *first.Record.Label, *first.Record.CityLabel, `Depot "A"`, "Łódź")
	}
}

type answer struct{ id, body string }

// simAnswers are answers of each kind from the simulator, the closest thing
// to the provider at hand.
func simAnswers(tb testing.TB) []answer {
	tb.Helper()
	srv, err := sim.New(sim.Config{NoLocationRatio: 0.2})
	if err != nil {
		tb.Fatal(err)
	}
	var out []answer
	for i := 0; len(out) < 40 && i < 1000; i++ {
		id := fmt.Sprintf("warehouse/%d ü", i)
		if k, body := srv.Expected(id); k == sim.Found || k == sim.NoLocation {
			out = append(out, answer{id: id, body: string(body)})
		}
	}
	return out
}

// FuzzDecodeEntity checks that decodeEntity, fast path and all, answers
// every body for every ID exactly as the encoding/json reference does.
func FuzzDecodeEntity(f *testing.F) {
	for _, tt := range decodeCases {
		f.Add(tt.body, "w1")
	}
	for _, a := range simAnswers(f) {
		f.Add(a.body, a.id)
	}
	f.Fuzz(func(t *testing.T, body, id string) {
		if d := diffDecode(body, id); d != "" {
			t.Fatalf("decodeEntity(%q, %q): %s", body, id, d)
		}
		res, err := decodeEntity(strings.NewReader(body), id)
		if err == nil && (res.Record == nil || res.Record.ID != id || (res.Status != Found && res.Status != NoLocation)) {
			t.Fatalf("decodeEntity(%q) = %+v; want Found or NoLocation for %q", body, res, id)
		}
	})
}

// BenchmarkDecodeEntity decodes a realistic found answer (escapes and
// non-ASCII text included) with decodeEntity and with the encoding/json
// reference it replaced.
func BenchmarkDecodeEntity(b *testing.B) {
	var a answer
	for _, a = range simAnswers(b) {
		if strings.Contains(a.body, `\"`) && strings.Contains(a.body, `"latitude"`) {
			break
		}
	}
	for _, bm := range []struct {
		name   string
		decode func(io.Reader, string) (Result, error)
	}{{"fast", decodeEntity}, {"reference", decodeReference}} {
		b.Run(bm.name, func(b *testing.B) {
			r := strings.NewReader(a.body)
			b.SetBytes(int64(len(a.body)))
			b.ReportAllocs()
			for b.Loop() {
				r.Reset(a.body)
				if res, err := bm.decode(r, a.id); err != nil || res.Status != Found {
					b.Fatalf("decode = %v, %v; want found", res.Status, err)
				}
			}
		})
	}
}
