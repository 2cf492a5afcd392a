package sim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
	"unicode/utf8"
)

// entity is the provider's JSON, decoded with nulls kept visible.
type entity struct {
	ID       string          `json:"id"`
	Label    *string         `json:"label"`
	Location json.RawMessage `json:"location"`
}

type location struct {
	GeoLabel      *string  `json:"geoLabel"`
	StreetAddress *string  `json:"streetAddress"`
	CityLabel     *string  `json:"cityLabel"`
	PostalCode    *string  `json:"postalCode"`
	CountryLabel  *string  `json:"countryLabel"`
	Latitude      *float64 `json:"latitude"`
	Longitude     *float64 `json:"longitude"`
}

func mustNew(t testing.TB, cfg Config) *Server {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

// idOfKind finds an ID of kind k, deterministically.
func idOfKind(t testing.TB, s *Server, k Kind, prefix string) string {
	t.Helper()
	for i := range 100_000 {
		id := fmt.Sprintf("%s-%d", prefix, i)
		if got, _ := s.Expected(id); got == k {
			return id
		}
	}
	t.Fatalf("no ID of kind %v among 100000", k)
	return ""
}

func TestExpectedIsDeterministic(t *testing.T) {
	cfg := Config{NotFoundRatio: 0.1, NoLocationRatio: 0.1, PermanentFailRatio: 0.05}
	a, b := mustNew(t, cfg), mustNew(t, Config{Seed: 99, NotFoundRatio: 0.1, NoLocationRatio: 0.1, PermanentFailRatio: 0.05})
	for i := range 2000 {
		id := fmt.Sprintf("WH%06d", i)
		ka, ba := a.Expected(id)
		kb, bb := b.Expected(id)
		ka2, ba2 := a.Expected(id)
		if ka != kb || ka != ka2 || !bytes.Equal(ba, bb) || !bytes.Equal(ba, ba2) {
			t.Fatalf("Expected(%q) differs between calls or seeds: %v %s / %v %s", id, ka, ba, kb, bb)
		}
	}
}

// TestGoldenRecord pins one record byte for byte, so a change to the
// derivation (which would silently change every demo and fixture) is seen.
func TestGoldenRecord(t *testing.T) {
	s := mustNew(t, Config{})
	tests := []struct {
		id   string
		want string
	}{
		{"y", `{"id":"y","label":"Warehouse Reykjavík 4626","location":{"geoLabel":"Laugavegur 14, 118 Reykjavík, Ísland","streetAddress":"Laugavegur 14","cityLabel":"Reykjavík","postalCode":"118","countryLabel":"Ísland","latitude":64.156354,"longitude":-21.984391}}`},
		{`q"\`, `{"id":"q\"\\","label":`},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			k, body := s.Expected(tt.id)
			if k != Found {
				t.Fatalf("kind: got %v; want found", k)
			}
			if !strings.HasPrefix(string(body), tt.want) {
				t.Errorf("body:\ngot  %s\nwant %s", body, tt.want)
			}
		})
	}
}

// TestRecordShape decodes many records and checks the shares of kinds,
// nulls and non-ASCII text against what the package promises.
func TestRecordShape(t *testing.T) {
	const n = 20_000
	cfg := Config{NotFoundRatio: 0.1, NoLocationRatio: 0.15, PermanentFailRatio: 0.05}
	s := mustNew(t, cfg)
	kinds := map[Kind]int{}
	var nullPostal, nonASCII, locNull, locAbsent, nullLabel int
	for i := range n {
		id := fmt.Sprintf("id-%d", i)
		k, body := s.Expected(id)
		kinds[k]++
		if !json.Valid(body) || !utf8.Valid(body) {
			t.Fatalf("Expected(%q) body is not valid JSON: %s", id, body)
		}
		if k != Found && k != NoLocation {
			var e struct{ Error, ID string }
			if err := json.Unmarshal(body, &e); err != nil || e.ID != id || e.Error == "" {
				t.Fatalf("error body for %q: got %s (%v); want error and id", id, body, err)
			}
			continue
		}
		var e entity
		if err := json.Unmarshal(body, &e); err != nil {
			t.Fatalf("decode %s: %v", body, err)
		}
		if e.ID != id {
			t.Fatalf("id: got %q; want %q", e.ID, id)
		}
		if e.Label == nil {
			nullLabel++
		} else if !isASCII(*e.Label) {
			nonASCII++
		}
		switch {
		case k == NoLocation && e.Location == nil:
			locAbsent++
		case k == NoLocation && string(e.Location) == "null":
			locNull++
		case k == NoLocation:
			t.Fatalf("no-location record %q has a location: %s", id, body)
		default:
			var loc location
			if err := json.Unmarshal(e.Location, &loc); err != nil || loc.CityLabel == nil {
				t.Fatalf("location of %q: got %s (%v); want an object with a city", id, e.Location, err)
			}
			if loc.PostalCode == nil {
				nullPostal++
			}
			if (loc.Latitude == nil) != (loc.Longitude == nil) {
				t.Fatalf("%q: latitude and longitude must be null together: %s", id, body)
			}
			if loc.Latitude != nil && (math.Abs(*loc.Latitude) > 90 || math.Abs(*loc.Longitude) > 180) {
				t.Fatalf("%q: coordinates out of range: %s", id, body)
			}
		}
	}
	found := kinds[Found]
	share := func(got, of int) float64 { return float64(got) / float64(of) }
	checks := []struct {
		name      string
		got, want float64
		tol       float64
	}{
		{"not found", share(kinds[NotFound], n), cfg.NotFoundRatio, 0.01},
		{"no location", share(kinds[NoLocation], n), cfg.NoLocationRatio, 0.01},
		{"permanent fail", share(kinds[PermanentFail], n), cfg.PermanentFailRatio, 0.01},
		{"null postal code", share(nullPostal, found), 0.10, 0.015},
		{"null label", share(nullLabel, found+kinds[NoLocation]), 0.02, 0.01},
		{"location null among no-location", share(locNull, kinds[NoLocation]), 0.5, 0.05},
		{"location absent among no-location", share(locAbsent, kinds[NoLocation]), 0.5, 0.05},
		{"non-ASCII labels", share(nonASCII, found+kinds[NoLocation]), 0.5, 0.45},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			if math.Abs(c.got-c.want) > c.tol {
				t.Errorf("share: got %.4f; want %.4f ± %.3f", c.got, c.want, c.tol)
			}
		})
	}
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func TestExpectedKinds(t *testing.T) {
	s := mustNew(t, Config{NotFoundRatio: 0.25, NoLocationRatio: 0.25, PermanentFailRatio: 0.25})
	tests := []struct {
		kind   Kind
		status int
	}{
		{Found, 200}, {NotFound, 404}, {NoLocation, 200}, {PermanentFail, 500},
	}
	for _, tt := range tests {
		t.Run(tt.kind.String(), func(t *testing.T) {
			id := idOfKind(t, s, tt.kind, "k")
			if got := tt.kind.HTTPStatus(); got != tt.status {
				t.Errorf("HTTPStatus: got %d; want %d", got, tt.status)
			}
			if k, _ := s.Expected(id); k != tt.kind {
				t.Errorf("Expected(%q): got %v; want %v", id, k, tt.kind)
			}
		})
	}
	for _, id := range []string{"", "a\x00b", "tab\there", "\xff\xfe", "del\x7f", "c1\u0085"} {
		t.Run(fmt.Sprintf("invalid %q", id), func(t *testing.T) {
			k, body := s.Expected(id)
			if k != Invalid || k.HTTPStatus() != 400 || !json.Valid(body) {
				t.Errorf("got %v %d %s; want invalid, 400, a JSON body", k, k.HTTPStatus(), body)
			}
		})
	}
}

func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{
		"", "plain", `q"uote`, `back\slash`, "nl\ncr\rtab\t", "\x00\x01\x1f", "Zürich 東京 Łódź",
		"bad\xffutf8", "\u2028\u2029", "emoji 🧊", "a/b?c=d#e%2F",
	} {
		t.Run(fmt.Sprintf("%q", s), func(t *testing.T) {
			got := appendString(nil, s)
			var back string
			if err := json.Unmarshal(got, &back); err != nil {
				t.Fatalf("appendString(%q) = %s: not JSON: %v", s, got, err)
			}
			if want := viaEncodingJSON(t, s); back != want {
				t.Errorf("round trip: got %q; want %q", back, want)
			}
		})
	}
}

func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "x", "Zürich", "\xff", "\u2028", `"\`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := appendString(nil, s)
		var back string
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatalf("appendString(%q) = %s: not JSON: %v", s, got, err)
		}
		if want := viaEncodingJSON(t, s); back != want {
			t.Errorf("round trip of %q: got %q; want %q", s, back, want)
		}
	})
}

// viaEncodingJSON is s after a round trip through encoding/json, which
// replaces each invalid byte with U+FFFD.
func viaEncodingJSON(t *testing.T, s string) string {
	t.Helper()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var back string
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	return back
}
