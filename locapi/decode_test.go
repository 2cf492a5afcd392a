package locapi

import (
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
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

// FuzzDecodeEntity checks that no body panics the decoder and that every
// success is consistent: the asked ID, and a Record for every status.
func FuzzDecodeEntity(f *testing.F) {
	for _, s := range []string{`{"id":"w1","location":{"latitude":1}}`, `{"id":"w1","location":null}`, `{"id":"w1"`, `null`, `{"id":"w1"} x`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		res, err := decodeEntity(strings.NewReader(body), "w1")
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v is not ErrMalformed", err)
			}
			return
		}
		if res.Record == nil || res.Record.ID != "w1" || (res.Status != Found && res.Status != NoLocation) {
			t.Fatalf("decodeEntity(%q) = %+v; want Found or NoLocation for w1", body, res)
		}
	})
}
