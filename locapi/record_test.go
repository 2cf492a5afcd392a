package locapi

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/snowgate/snowgate/jsontext"
)

// marshalMatches checks r.AppendJSON against json.Marshal: the same bytes,
// or an error from both, and on error the prefix returned as it came.
func marshalMatches(t *testing.T, r *Record) {
	t.Helper()
	prefix := []byte("prefix")
	got, gerr := r.AppendJSON(prefix)
	if !bytes.HasPrefix(got, prefix) {
		t.Fatalf("AppendJSON = %q; want it to start with %q", got, prefix)
	}
	if gerr != nil && len(got) != len(prefix) {
		t.Fatalf("AppendJSON failed and returned %q; want the prefix as it came", got)
	}
	if err := jsontext.Compare(r, true, got[len(prefix):], gerr); err != nil {
		t.Fatalf("AppendJSON(%+v): %v", r, err)
	}
}

func TestRecordAppendJSON(t *testing.T) {
	tests := []struct {
		name string
		r    *Record
	}{
		{"nil record", nil},
		{"all nil", &Record{ID: "w1"}},
		{"all set", &Record{ID: "w1", Label: ptr("Depot"), GeoLabel: ptr("g"), StreetAddress: ptr("1 Main St"),
			CityLabel: ptr("Łódź"), PostalCode: ptr("90-001"), CountryLabel: ptr("Poland"), Latitude: ptr(51.77), Longitude: ptr(19.46)}},
		{"empty strings", &Record{Label: ptr(""), CityLabel: ptr("")}},
		{"quotes and backslashes", &Record{ID: `a"b\c/d`, Label: ptr(`"\"`)}},
		{"html", &Record{ID: "<script>&amp;</script>", Label: ptr("a<b>c&d")}},
		{"control characters", &Record{ID: "\x00\x01\x07\b\t\n\v\f\r\x1b\x1f\x7f"}},
		{"longer than the stack buffer", &Record{ID: "w1", Label: ptr(strings.Repeat("ab<c", 300)), Latitude: ptr(1.0)}},
		{"every ASCII byte", &Record{ID: asciiBytes()}},
		{"line separators", &Record{ID: "a\u2028b\u2029c\u2027\u202a"}},
		{"invalid UTF-8", &Record{ID: "a\xffb\xed\xa0\x80c\xe6\x9d", Label: ptr("\xc0\xaf\x80")}},
		{"unicode", &Record{ID: "Αθήνα 東京 😀 \ufffd \ufeff"}},
		{"zeros", &Record{Latitude: ptr(0.0), Longitude: ptr(math.Copysign(0, -1))}},
		{"small", &Record{Latitude: ptr(1e-6), Longitude: ptr(9.999999999999999e-7)}},
		{"tiny", &Record{Latitude: ptr(1e-7), Longitude: ptr(-5e-324)}},
		{"exponent of two digits", &Record{Latitude: ptr(1.5e-10), Longitude: ptr(-2e-100)}},
		{"large", &Record{Latitude: ptr(1e20), Longitude: ptr(999999999999999900000.0)}},
		{"huge", &Record{Latitude: ptr(1e21), Longitude: ptr(-math.MaxFloat64)}},
		{"coordinates", &Record{Latitude: ptr(-33.832664), Longitude: ptr(151.205575)}},
		{"fractions", &Record{Latitude: ptr(0.1), Longitude: ptr(0.30000000000000004)}},
		{"integers", &Record{Latitude: ptr(90.0), Longitude: ptr(-180.0)}},
		{"latitude NaN", &Record{Latitude: ptr(math.NaN())}},
		{"longitude infinite", &Record{Latitude: ptr(1.0), Longitude: ptr(math.Inf(1))}},
		{"latitude minus infinity", &Record{Latitude: ptr(math.Inf(-1))}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { marshalMatches(t, tt.r) })
	}
}

func asciiBytes() string {
	b := make([]byte, 128)
	for i := range b {
		b[i] = byte(i)
	}
	return string(b)
}

// FuzzRecordJSON builds Records from fuzzed strings, float bit patterns
// (NaN and the infinities included) and a mask of nil fields.
func FuzzRecordJSON(f *testing.F) {
	f.Add("w1", "Depot", "g", "1 Main St", "Łódź", "90-001", "Poland", math.Float64bits(51.77), math.Float64bits(19.46), uint16(0))
	f.Add("<&>", "\u2028\x00", "\xff", `"\`, "\x7f", "😀", "", math.Float64bits(1e-7), math.Float64bits(1e21), uint16(0x1ff))
	f.Add("w", "", "", "", "", "", "", math.Float64bits(math.NaN()), math.Float64bits(math.Inf(-1)), uint16(0x0f0))
	f.Add("w", "a", "b", "c", "d", "e", "f", math.Float64bits(math.Copysign(0, -1)), uint64(1), uint16(0x155))
	f.Fuzz(func(t *testing.T, id, label, geo, street, city, postal, country string, lat, lon uint64, nils uint16) {
		r := &Record{ID: id}
		fields := []struct {
			p **string
			v string
		}{{&r.Label, label}, {&r.GeoLabel, geo}, {&r.StreetAddress, street}, {&r.CityLabel, city}, {&r.PostalCode, postal}, {&r.CountryLabel, country}}
		for i, fl := range fields {
			if nils&(1<<i) == 0 {
				*fl.p = ptr(fl.v)
			}
		}
		if nils&(1<<6) == 0 {
			r.Latitude = ptr(math.Float64frombits(lat))
		}
		if nils&(1<<7) == 0 {
			r.Longitude = ptr(math.Float64frombits(lon))
		}
		marshalMatches(t, r)
	})
}

// BenchmarkRecordJSON encodes a found record as cache.newEntry does, with
// AppendJSON and with the json.Marshal it replaced.
func BenchmarkRecordJSON(b *testing.B) {
	r := &Record{ID: "warehouse/0 ü", Label: ptr(`Hub "North" Αθήνα 9093`), GeoLabel: ptr("Οδός Ερμού 155, 104 69 Αθήνα, Ελλάδα"),
		StreetAddress: ptr("Οδός Ερμού 155"), CityLabel: ptr("Αθήνα"), PostalCode: ptr("104 69"), CountryLabel: ptr("Ελλάδα"),
		Latitude: ptr(37.979907), Longitude: ptr(23.768034)}
	b.Run("append", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := r.AppendJSON(nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(r); err != nil {
				b.Fatal(err)
			}
		}
	})
}
