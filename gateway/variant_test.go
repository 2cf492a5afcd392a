package gateway

import (
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/snowgate/snowgate/jsontext"
	"github.com/snowgate/snowgate/locapi"
)

// variant is the VARIANT object's shape for encoding/json, the reference
// EncodeRecord is held to.
type variant struct {
	ID            string   `json:"id"`
	Label         *string  `json:"label"`
	GeoLabel      *string  `json:"geo_label"`
	StreetAddress *string  `json:"street_address"`
	CityLabel     *string  `json:"city_label"`
	PostalCode    *string  `json:"postal_code"`
	CountryLabel  *string  `json:"country_label"`
	Latitude      *float64 `json:"latitude"`
	Longitude     *float64 `json:"longitude"`
}

// encodeMatches checks EncodeRecord(r) against json.Marshal of r's variant:
// the same bytes, or an error from both.
func encodeMatches(t *testing.T, r *locapi.Record) {
	t.Helper()
	got, err := EncodeRecord(r)
	var v any = (*variant)(nil)
	if r != nil {
		v = variant(*r)
	}
	if cerr := jsontext.Compare(v, true, got, err); cerr != nil {
		t.Fatalf("EncodeRecord(%+v): %v", r, cerr)
	}
}

func TestEncodeRecord(t *testing.T) {
	tests := []struct {
		name string
		r    *locapi.Record
	}{
		{"nil record", nil},
		{"all nil", &locapi.Record{ID: "w1"}},
		{"all set", &locapi.Record{ID: "w1", Label: ptr("Depot"), GeoLabel: ptr("g"), StreetAddress: ptr("1 Main St"),
			CityLabel: ptr("Łódź"), PostalCode: ptr("90-001"), CountryLabel: ptr("Poland"), Latitude: ptr(51.77), Longitude: ptr(19.46)}},
		{"empty strings", &locapi.Record{Label: ptr(""), CityLabel: ptr("")}},
		{"quotes and backslashes", &locapi.Record{ID: `a"b\c/d`, Label: ptr(`"\"`)}},
		{"html", &locapi.Record{ID: "<script>&amp;</script>", Label: ptr("a<b>c&d")}},
		{"control characters", &locapi.Record{ID: "\x00\x01\x07\b\t\n\v\f\r\x1b\x1f\x7f"}},
		{"longer than the stack buffer", &locapi.Record{ID: "w1", Label: ptr(strings.Repeat("ab<c", 300)), Latitude: ptr(1.0)}},
		{"every ASCII byte", &locapi.Record{ID: asciiBytes()}},
		{"line separators", &locapi.Record{ID: "a\u2028b\u2029c\u2027\u202a"}},
		{"invalid UTF-8", &locapi.Record{ID: "a\xffb\xed\xa0\x80c\xe6\x9d", Label: ptr("\xc0\xaf\x80")}},
		{"unicode", &locapi.Record{ID: "Αθήνα 東京 😀 \ufffd \ufeff"}},
		{"zeros", &locapi.Record{Latitude: ptr(0.0), Longitude: ptr(math.Copysign(0, -1))}},
		{"small", &locapi.Record{Latitude: ptr(1e-6), Longitude: ptr(9.999999999999999e-7)}},
		{"tiny", &locapi.Record{Latitude: ptr(1e-7), Longitude: ptr(-5e-324)}},
		{"exponent of two digits", &locapi.Record{Latitude: ptr(1.5e-10), Longitude: ptr(-2e-100)}},
		{"large", &locapi.Record{Latitude: ptr(1e20), Longitude: ptr(999999999999999900000.0)}},
		{"huge", &locapi.Record{Latitude: ptr(1e21), Longitude: ptr(-math.MaxFloat64)}},
		{"coordinates", &locapi.Record{Latitude: ptr(-33.832664), Longitude: ptr(151.205575)}},
		{"fractions", &locapi.Record{Latitude: ptr(0.1), Longitude: ptr(0.30000000000000004)}},
		{"integers", &locapi.Record{Latitude: ptr(90.0), Longitude: ptr(-180.0)}},
		{"latitude NaN", &locapi.Record{Latitude: ptr(math.NaN())}},
		{"longitude infinite", &locapi.Record{Latitude: ptr(1.0), Longitude: ptr(math.Inf(1))}},
		{"latitude minus infinity", &locapi.Record{Latitude: ptr(math.Inf(-1))}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { encodeMatches(t, tt.r) })
	}
}

func ptr[T any](v T) *T { return &v }

func asciiBytes() string {
	b := make([]byte, 128)
	for i := range b {
		b[i] = byte(i)
	}
	return string(b)
}

// FuzzEncodeRecord builds Records from fuzzed strings, float bit patterns
// (NaN and the infinities included) and a mask of nil fields.
func FuzzEncodeRecord(f *testing.F) {
	f.Add("w1", "Depot", "g", "1 Main St", "Łódź", "90-001", "Poland", math.Float64bits(51.77), math.Float64bits(19.46), uint16(0))
	f.Add("<&>", "\u2028\x00", "\xff", `"\`, "\x7f", "😀", "", math.Float64bits(1e-7), math.Float64bits(1e21), uint16(0x1ff))
	f.Add("w", "", "", "", "", "", "", math.Float64bits(math.NaN()), math.Float64bits(math.Inf(-1)), uint16(0x0f0))
	f.Add("w", "a", "b", "c", "d", "e", "f", math.Float64bits(math.Copysign(0, -1)), uint64(1), uint16(0x155))
	f.Fuzz(func(t *testing.T, id, label, geo, street, city, postal, country string, lat, lon uint64, nils uint16) {
		r := &locapi.Record{ID: id}
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
		encodeMatches(t, r)
	})
}

// BenchmarkEncodeRecord encodes a found record as cache.newEntry does, with
// EncodeRecord and with json.Marshal.
func BenchmarkEncodeRecord(b *testing.B) {
	r := &locapi.Record{ID: "warehouse/0 ü", Label: ptr(`Hub "North" Αθήνα 9093`), GeoLabel: ptr("Οδός Ερμού 155, 104 69 Αθήνα, Ελλάδα"),
		StreetAddress: ptr("Οδός Ερμού 155"), CityLabel: ptr("Αθήνα"), PostalCode: ptr("104 69"), CountryLabel: ptr("Ελλάδα"),
		Latitude: ptr(37.979907), Longitude: ptr(23.768034)}
	b.Run("hand", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := EncodeRecord(r); err != nil {
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
