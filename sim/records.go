package sim

import (
	"math"
	"net/http"
	"strconv"
	"unicode/utf8"
)

// Kind is the simulator's fixed answer for one ID.
type Kind uint8

const (
	// Found answers 200 with a record and a location.
	Found Kind = iota + 1
	// NotFound answers 404.
	NotFound
	// NoLocation answers 200 with a record whose location is null or absent.
	NoLocation
	// PermanentFail always answers 500.
	PermanentFail
	// Invalid IDs (empty, not UTF-8, control characters) answer 400.
	Invalid
)

func (k Kind) String() string {
	switch k {
	case Found:
		return "found"
	case NotFound:
		return "not_found"
	case NoLocation:
		return "no_location"
	case PermanentFail:
		return "permanent_fail"
	case Invalid:
		return "invalid"
	}
	return "unknown"
}

// HTTPStatus is the status code the simulator answers for k when no
// transient fault is drawn.
func (k Kind) HTTPStatus() int {
	switch k {
	case Found, NoLocation:
		return http.StatusOK
	case NotFound:
		return http.StatusNotFound
	case PermanentFail:
		return http.StatusInternalServerError
	}
	return http.StatusBadRequest
}

// Expected is the deterministic answer for id, as a correctly escaped
// request with select=id,label,location gets it when no transient fault is
// drawn: its Kind and the exact response body.
func (s *Server) Expected(id string) (Kind, []byte) {
	k, h := s.kindOf(id)
	return k, appendAnswer(nil, id, h, k, selectAll)
}

// kindOf classifies id; h is the hash every derived field comes from.
func (s *Server) kindOf(id string) (Kind, uint64) {
	if !validID(id) {
		return Invalid, 0
	}
	h := hashID(id)
	u := unit(derive(h, 0))
	switch {
	case u < s.cfg.NotFoundRatio:
		return NotFound, h
	case u < s.cfg.NotFoundRatio+s.cfg.NoLocationRatio:
		return NoLocation, h
	case u < s.cfg.NotFoundRatio+s.cfg.NoLocationRatio+s.cfg.PermanentFailRatio:
		return PermanentFail, h
	}
	return Found, h
}

// validID mirrors what a careful provider accepts: non-empty UTF-8 without
// C0/C1 control characters or DEL.
func validID(id string) bool {
	if id == "" || !utf8.ValidString(id) {
		return false
	}
	for _, r := range id {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return false
		}
	}
	return true
}

// hashID is FNV-1a finished with a splitmix64 round: stable across
// processes and versions, unlike hash/maphash, so an ID's record never
// changes.
func hashID(id string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(id); i++ {
		h ^= uint64(id[i])
		h *= 1099511628211
	}
	return mix(h)
}

func mix(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// derive gives the i-th independent 64-bit draw from h.
func derive(h uint64, i uint64) uint64 { return mix(h + (i+1)*0x9e3779b97f4a7c15) }

// unit maps x to [0, 1).
func unit(x uint64) float64 { return float64(x>>11) / (1 << 53) }

// pct is a draw in [0, 100).
func pct(h uint64, i uint64) uint64 { return derive(h, i) % 100 }

// city is one place records are drawn from; the names are deliberately
// non-ASCII in many scripts to exercise every encoder on the way.
type city struct {
	name, country string
	lat, lon      float64
	postal        string // '#' becomes a digit
	streets       []string
}

var cities = [...]city{
	{"Zürich", "Schweiz", 47.3769, 8.5417, "80##", []string{"Bahnhofstrasse", "Rämistrasse", "Löwenstrasse"}},
	{"São Paulo", "Brasil", -23.5505, -46.6333, "0####-###", []string{"Avenida Paulista", "Rua Augusta", "Rua da Consolação"}},
	{"Kraków", "Polska", 50.0647, 19.945, "30-###", []string{"ulica Floriańska", "ulica Grodzka", "ulica Świętego Jana"}},
	{"東京", "日本", 35.6762, 139.6503, "1##-####", []string{"銀座四丁目", "丸の内二丁目", "渋谷一丁目"}},
	{"Łódź", "Polska", 51.7592, 19.456, "90-###", []string{"ulica Piotrkowska", "ulica Żeromskiego"}},
	{"München", "Deutschland", 48.1351, 11.582, "80###", []string{"Maximilianstraße", "Leopoldstraße"}},
	{"Reykjavík", "Ísland", 64.1466, -21.9426, "1##", []string{"Laugavegur", "Skólavörðustígur"}},
	{"Montréal", "Canada", 45.5019, -73.5674, "H2X #A#", []string{"Rue Saint-Denis", "Boulevard Saint-Laurent"}},
	{"İstanbul", "Türkiye", 41.0082, 28.9784, "34###", []string{"İstiklal Caddesi", "Bağdat Caddesi"}},
	{"Αθήνα", "Ελλάδα", 37.9838, 23.7275, "10# ##", []string{"Οδός Ερμού", "Οδός Αθηνάς"}},
	{"Malmö", "Sverige", 55.605, 13.0038, "211 ##", []string{"Södergatan", "Östra Förstadsgatan"}},
	{"Toronto", "Canada", 43.6532, -79.3832, "M5V #K#", []string{"King Street West", "Queen's Quay"}},
	{"Sydney", "Australia", -33.8688, 151.2093, "2###", []string{"George Street", "O'Connell Street"}},
	{"Ciudad de México", "México", 19.4326, -99.1332, "06###", []string{"Avenida Insurgentes", "Calle Ñuñoa"}},
}

var labelWords = [...]string{"Warehouse", "Entrepôt", "Lager", "Magazyn", "倉庫", "Depósito", "Αποθήκη", "Hub \"North\""}

// fields selected by ?select=.
type fieldSet uint8

const (
	selID fieldSet = 1 << iota
	selLabel
	selLocation
	selectAll = selID | selLabel | selLocation
)

// appendAnswer appends the body answered for an ID of kind k.
func appendAnswer(b []byte, id string, h uint64, k Kind, sel fieldSet) []byte {
	switch k {
	case Found, NoLocation:
		return appendRecord(b, id, h, k == NoLocation, sel)
	case NotFound:
		return appendError(b, "not_found", id)
	case PermanentFail:
		return appendError(b, "internal_error", id)
	}
	return append(b, `{"error":"invalid_id"}`...) // as parse rejects it
}

// appendError appends the provider's error shape; id is left out when it
// cannot be encoded faithfully.
func appendError(b []byte, code, id string) []byte {
	b = append(b, `{"error":"`...)
	b = append(b, code...)
	b = append(b, '"')
	if validID(id) {
		b = append(b, `,"id":`...)
		b = appendString(b, id)
	}
	return append(b, '}')
}

// appendRecord appends the entity JSON in the provider's key order.
func appendRecord(b []byte, id string, h uint64, noLocation bool, sel fieldSet) []byte {
	b = append(b, '{')
	sep := false
	key := func(name string) {
		if sep {
			b = append(b, ',')
		}
		sep = true
		b = append(b, '"')
		b = append(b, name...)
		b = append(b, `":`...)
	}
	if sel&selID != 0 {
		key("id")
		b = appendString(b, id)
	}
	if sel&selLabel != 0 {
		key("label")
		b = appendNullable(b, pct(h, 8) < 2, func(b []byte) []byte { return appendLabel(b, h) })
	}
	if sel&selLocation != 0 {
		switch {
		case !noLocation:
			key("location")
			b = appendLocation(b, h)
		case derive(h, 14)&1 == 0: // the other half omit the key
			key("location")
			b = append(b, "null"...)
		}
	}
	return append(b, '}')
}

func appendNullable(b []byte, null bool, f func([]byte) []byte) []byte {
	if null {
		return append(b, "null"...)
	}
	return f(b)
}

func cityOf(h uint64) *city { return &cities[derive(h, 1)%uint64(len(cities))] }

func appendLabel(b []byte, h uint64) []byte {
	label := labelWords[derive(h, 2)%uint64(len(labelWords))] + " " + cityOf(h).name + " " +
		strconv.FormatUint(derive(h, 3)%9000+1000, 10)
	return appendString(b, label)
}

// appendLocation appends the location object; each field is null for a
// fixed share of IDs so clients meet nulls everywhere.
func appendLocation(b []byte, h uint64) []byte {
	c := cityOf(h)
	var street, postal, country string
	if pct(h, 9) >= 7 {
		street = c.streets[derive(h, 4)%uint64(len(c.streets))] + " " + strconv.FormatUint(derive(h, 5)%200+1, 10)
	}
	if pct(h, 10) >= 10 {
		postal = fillDigits(c.postal, derive(h, 6))
	}
	if pct(h, 13) >= 1 {
		country = c.country
	}
	opt := func(b []byte, s string) []byte {
		return appendNullable(b, s == "", func(b []byte) []byte { return appendString(b, s) })
	}
	b = append(b, `{"geoLabel":`...)
	b = appendNullable(b, pct(h, 11) < 3, func(b []byte) []byte { return appendString(b, geoLabel(street, postal, c.name, country)) })
	b = append(b, `,"streetAddress":`...)
	b = opt(b, street)
	b = append(b, `,"cityLabel":`...)
	b = appendString(b, c.name)
	b = append(b, `,"postalCode":`...)
	b = opt(b, postal)
	b = append(b, `,"countryLabel":`...)
	b = opt(b, country)
	noCoords := pct(h, 12) < 2
	b = append(b, `,"latitude":`...)
	b = appendNullable(b, noCoords, func(b []byte) []byte { return appendCoord(b, c.lat, derive(h, 7)) })
	b = append(b, `,"longitude":`...)
	b = appendNullable(b, noCoords, func(b []byte) []byte { return appendCoord(b, c.lon, derive(h, 15)) })
	return append(b, '}')
}

func geoLabel(street, postal, cityName, country string) string {
	s := cityName
	if postal != "" {
		s = postal + " " + s
	}
	if street != "" {
		s = street + ", " + s
	}
	if country != "" {
		s += ", " + country
	}
	return s
}

// fillDigits replaces each '#' in pattern with a digit drawn from x.
func fillDigits(pattern string, x uint64) string {
	b := []byte(pattern)
	for i, c := range b {
		if c == '#' {
			b[i] = byte('0' + x%10)
			x = x/10 ^ mix(x)
		}
	}
	return string(b)
}

// appendCoord appends base moved by up to ±0.05 degrees, rounded to six
// decimals as providers usually do.
func appendCoord(b []byte, base float64, x uint64) []byte {
	v := math.Round((base+(unit(x)-0.5)*0.1)*1e6) / 1e6
	return strconv.AppendFloat(b, v, 'f', -1, 64)
}

// appendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD
// and U+2028/U+2029 are escaped, as encoding/json does.
// It is not jsontext.AppendString on purpose: the simulator stays independent of the code it tests.
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, `\n`...)
			case '\t':
				b = append(b, `\t`...)
			case '\r':
				b = append(b, `\r`...)
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 || r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			if r == utf8.RuneError {
				b = append(b, `\ufffd`...)
			} else {
				b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
			}
			start = i + size
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// Entity is the provider's wire shape as the simulator writes it. Tests and
// the bench decode Expected's body into it, independently of the client
// they check, so that a decoding bug there shows up as a wrong row.
type Entity struct {
	ID       string          `json:"id"`
	Label    *string         `json:"label"`
	Location *EntityLocation `json:"location"`
}

// EntityLocation is an Entity's location object.
type EntityLocation struct {
	GeoLabel      *string  `json:"geoLabel"`
	StreetAddress *string  `json:"streetAddress"`
	CityLabel     *string  `json:"cityLabel"`
	PostalCode    *string  `json:"postalCode"`
	CountryLabel  *string  `json:"countryLabel"`
	Latitude      *float64 `json:"latitude"`
	Longitude     *float64 `json:"longitude"`
}
