package locapi

import (
	"fmt"
	"math"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/snowgate/snowgate/jsontext"
)

// This file holds the two pieces of JSON on the cold path, written by hand
// because encoding/json's reflection showed up in the profile of a batch of
// uncached IDs: reading the provider's entity (entityScan) and writing a
// Record (Record.AppendJSON). Both must give exactly what encoding/json
// gives; the fuzz tests compare them byte for byte.

// Indexes of a Record's optional strings and numbers in an entityScan.
const (
	fieldLabel = iota
	fieldGeoLabel
	fieldStreetAddress
	fieldCityLabel
	fieldPostalCode
	fieldCountryLabel
	numStrings
)

const (
	fieldLatitude = iota
	fieldLongitude
	numNumbers
)

// entityScan reads the usual provider answer in one pass. It accepts only
// what it can decode exactly as encoding/json would: each of the provider's
// keys at most once and spelt exactly, string values that are valid UTF-8,
// numbers and null where the entity has them. On anything else decode
// reports false, and the caller asks encoding/json, which either decodes
// the odd answer its own way (a key in another case, a repeated key, an
// unknown key, invalid UTF-8) or names what is wrong with it.
type entityScan struct {
	data []byte // the whole answer; also the read buffer the pool keeps
	pos  int    // next byte of data to read
	id   string // the ID asked for

	// text holds the string values read so far, unescaped, end to end: the
	// Record's strings are cut from one copy of it.
	text []byte
	strs [numStrings]span
	nums [numNumbers]float64
	hasN [numNumbers]bool

	seen    uint16 // one bit per key read, to send a repeated key to encoding/json
	idOK    bool   // an "id" equal to the ID asked for was read
	located bool   // "location" was an object, not null
}

// span is a string value, text[start:end]; set is false for null or absent.
type span struct {
	start, end int
	set        bool
}

// recordBox is a decoded Record with room for the values its pointers point
// to: one allocation instead of one per field.
type recordBox struct {
	rec  Record
	strs [numStrings]string
	nums [numNumbers]float64
}

// decode reads s.data as an answer for id. ok is false when the answer is
// not one entityScan reads exactly, including every malformed answer.
func (s *entityScan) decode(id string) (res Result, ok bool) {
	s.id = id
	s.ws()
	if !s.object(true) {
		return Result{}, false
	}
	s.ws()
	if s.pos != len(s.data) || !s.idOK {
		return Result{}, false
	}
	return s.result(), true
}

// result builds the Result from a complete scan, copying every string out
// of the pooled buffers.
func (s *entityScan) result() Result {
	text := string(s.text)
	box := new(recordBox)
	r := &box.rec
	r.ID = s.id
	strs := [numStrings]**string{&r.Label, &r.GeoLabel, &r.StreetAddress, &r.CityLabel, &r.PostalCode, &r.CountryLabel}
	for i, sp := range s.strs {
		if sp.set {
			box.strs[i] = text[sp.start:sp.end]
			*strs[i] = &box.strs[i]
		}
	}
	nums := [numNumbers]**float64{&r.Latitude, &r.Longitude}
	for i, set := range s.hasN {
		if set {
			box.nums[i] = s.nums[i]
			*nums[i] = &box.nums[i]
		}
	}
	if !s.located {
		return Result{Status: NoLocation, Record: r}
	}
	return Result{Status: Found, Record: r}
}

// object reads an object at s.pos: the entity when top, else its location.
func (s *entityScan) object(top bool) bool {
	if !s.eat('{') {
		return false
	}
	s.ws()
	if s.eat('}') {
		return true
	}
	for {
		key, ok := s.key()
		if !ok {
			return false
		}
		s.ws()
		if !s.eat(':') {
			return false
		}
		s.ws()
		if top {
			ok = s.entityMember(key)
		} else {
			ok = s.locationMember(key)
		}
		if !ok {
			return false
		}
		s.ws()
		if s.eat('}') {
			return true
		}
		if !s.eat(',') {
			return false
		}
		s.ws()
	}
}

// entityMember reads the value of a top-level key.
func (s *entityScan) entityMember(key []byte) bool {
	switch string(key) {
	case "id":
		if !s.first(0) || s.peek() != '"' {
			return false // a null or non-string id is an error encoding/json names
		}
		mark := len(s.text)
		if !s.str() {
			return false
		}
		s.idOK = string(s.text[mark:]) == s.id
		s.text = s.text[:mark]
		return true
	case "label":
		return s.first(1) && s.optString(fieldLabel)
	case "location":
		if !s.first(2) {
			return false
		}
		if s.null() {
			return true
		}
		s.located = true
		return s.object(false)
	}
	return false
}

// locationMember reads the value of a key of the location object.
func (s *entityScan) locationMember(key []byte) bool {
	switch string(key) {
	case "geoLabel":
		return s.first(3) && s.optString(fieldGeoLabel)
	case "streetAddress":
		return s.first(4) && s.optString(fieldStreetAddress)
	case "cityLabel":
		return s.first(5) && s.optString(fieldCityLabel)
	case "postalCode":
		return s.first(6) && s.optString(fieldPostalCode)
	case "countryLabel":
		return s.first(7) && s.optString(fieldCountryLabel)
	case "latitude":
		return s.first(8) && s.optNumber(fieldLatitude)
	case "longitude":
		return s.first(9) && s.optNumber(fieldLongitude)
	}
	return false
}

// first marks key number bit as seen and reports whether it was new.
func (s *entityScan) first(bit uint) bool {
	if s.seen&(1<<bit) != 0 {
		return false
	}
	s.seen |= 1 << bit
	return true
}

// optString reads a string or null into s.strs[i].
func (s *entityScan) optString(i int) bool {
	if s.null() {
		return true
	}
	start := len(s.text)
	if s.peek() != '"' || !s.str() {
		return false
	}
	s.strs[i] = span{start: start, end: len(s.text), set: true}
	return true
}

// optNumber reads a number or null into s.nums[i].
func (s *entityScan) optNumber(i int) bool {
	if s.null() {
		return true
	}
	f, ok := s.number()
	s.nums[i], s.hasN[i] = f, ok
	return ok
}

// key reads an object key that needs no unescaping: the provider's keys are
// plain ASCII, and any other key is not one of them.
func (s *entityScan) key() ([]byte, bool) {
	if !s.eat('"') {
		return nil, false
	}
	start := s.pos
	for s.pos < len(s.data) {
		c := s.data[s.pos]
		if c == '"' {
			s.pos++
			return s.data[start : s.pos-1], true
		}
		if c < 0x20 || c == '\\' || c >= utf8.RuneSelf {
			return nil, false
		}
		s.pos++
	}
	return nil, false
}

// str reads the string at s.pos, its opening quote included, and appends
// its value to s.text. Invalid UTF-8 and control characters fail it:
// encoding/json replaces the one and rejects the other.
func (s *entityScan) str() bool {
	s.pos++
	for {
		start := s.pos
		for s.pos < len(s.data) {
			c := s.data[s.pos]
			if c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf {
				break
			}
			s.pos++
		}
		s.text = append(s.text, s.data[start:s.pos]...)
		if s.pos == len(s.data) {
			return false
		}
		switch c := s.data[s.pos]; {
		case c == '"':
			s.pos++
			return true
		case c == '\\':
			if !s.escape() {
				return false
			}
		case c < 0x20:
			return false
		default:
			r, n := utf8.DecodeRune(s.data[s.pos:])
			if r == utf8.RuneError && n == 1 {
				return false
			}
			s.text = append(s.text, s.data[s.pos:s.pos+n]...)
			s.pos += n
		}
	}
}

// escape reads the escape sequence at s.pos (a backslash) and appends what
// it stands for. A \u escape of half a UTF-16 surrogate pair that is not
// followed by the other half becomes U+FFFD, and the escape after it, if
// any, is read on its own, as encoding/json does.
func (s *entityScan) escape() bool {
	if s.pos+1 >= len(s.data) {
		return false
	}
	var c byte
	switch s.data[s.pos+1] {
	case '"', '\\', '/':
		c = s.data[s.pos+1]
	case 'b':
		c = '\b'
	case 'f':
		c = '\f'
	case 'n':
		c = '\n'
	case 'r':
		c = '\r'
	case 't':
		c = '\t'
	case 'u':
		r, ok := s.u4(s.pos)
		if !ok {
			return false
		}
		s.pos += 6
		if utf16.IsSurrogate(r) {
			low, ok := s.u4(s.pos)
			r = utf16.DecodeRune(r, low) // U+FFFD unless r and low make a pair
			if ok && r != utf8.RuneError {
				s.pos += 6
			}
		}
		s.text = utf8.AppendRune(s.text, r)
		return true
	default:
		return false
	}
	s.text = append(s.text, c)
	s.pos += 2
	return true
}

// u4 decodes the escape \uXXXX at data[at:].
func (s *entityScan) u4(at int) (rune, bool) {
	if len(s.data)-at < 6 || s.data[at] != '\\' || s.data[at+1] != 'u' {
		return 0, false
	}
	var r rune
	for _, c := range s.data[at+2 : at+6] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// number reads a JSON number and converts it as encoding/json does for a
// float64. A number out of float64's range fails it: encoding/json reports
// that as an error.
func (s *entityScan) number() (float64, bool) {
	start := s.pos
	s.eat('-')
	switch {
	case s.eat('0'):
	case s.digits() == 0:
		return 0, false
	}
	if s.eat('.') && s.digits() == 0 {
		return 0, false
	}
	if s.eat('e') || s.eat('E') {
		if !s.eat('+') {
			s.eat('-')
		}
		if s.digits() == 0 {
			return 0, false
		}
	}
	f, err := strconv.ParseFloat(string(s.data[start:s.pos]), 64)
	return f, err == nil
}

// digits skips a run of decimal digits and returns its length.
func (s *entityScan) digits() int {
	start := s.pos
	for s.pos < len(s.data) && '0' <= s.data[s.pos] && s.data[s.pos] <= '9' {
		s.pos++
	}
	return s.pos - start
}

// null reads the literal null if it is next.
func (s *entityScan) null() bool {
	if len(s.data)-s.pos >= 4 && string(s.data[s.pos:s.pos+4]) == "null" {
		s.pos += 4
		return true
	}
	return false
}

// ws skips JSON whitespace.
func (s *entityScan) ws() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// eat reads c if it is next.
func (s *entityScan) eat(c byte) bool {
	if s.pos < len(s.data) && s.data[s.pos] == c {
		s.pos++
		return true
	}
	return false
}

// peek returns the next byte, or 0 at the end.
func (s *entityScan) peek() byte {
	if s.pos < len(s.data) {
		return s.data[s.pos]
	}
	return 0
}

// AppendJSON appends r's JSON encoding to b: the bytes json.Marshal(r)
// gives, without reflection. It fails, as json.Marshal does, when a
// coordinate is NaN or infinite; b is then returned as it came.
func (r *Record) AppendJSON(b []byte) ([]byte, error) {
	if r == nil {
		return append(b, "null"...), nil
	}
	// Encode on the stack first, so that b grows once and by no more than
	// the encoding: a found record's JSON is kept in the cache.
	var stack [512]byte
	enc, err := r.appendJSON(stack[:0])
	if err != nil {
		return b, err
	}
	return append(b, enc...), nil
}

// appendJSON is AppendJSON without the copy; on failure it returns nil.
func (r *Record) appendJSON(b []byte) ([]byte, error) {
	b = append(b, `{"id":`...)
	b = jsontext.AppendString(b, r.ID, true)
	b = appendOptString(b, `,"label":`, r.Label)
	b = appendOptString(b, `,"geo_label":`, r.GeoLabel)
	b = appendOptString(b, `,"street_address":`, r.StreetAddress)
	b = appendOptString(b, `,"city_label":`, r.CityLabel)
	b = appendOptString(b, `,"postal_code":`, r.PostalCode)
	b = appendOptString(b, `,"country_label":`, r.CountryLabel)
	b, ok := appendOptFloat(b, `,"latitude":`, r.Latitude)
	if !ok {
		return nil, fmt.Errorf("locapi: record latitude is %v, not a JSON number", *r.Latitude)
	}
	b, ok = appendOptFloat(b, `,"longitude":`, r.Longitude)
	if !ok {
		return nil, fmt.Errorf("locapi: record longitude is %v, not a JSON number", *r.Longitude)
	}
	return append(b, '}'), nil
}

func appendOptString(b []byte, key string, p *string) []byte {
	b = append(b, key...)
	if p == nil {
		return append(b, "null"...)
	}
	return jsontext.AppendString(b, *p, true)
}

func appendOptFloat(b []byte, key string, p *float64) ([]byte, bool) {
	b = append(b, key...)
	if p == nil {
		return append(b, "null"...), true
	}
	return appendFloat(b, *p)
}

// appendFloat appends f as encoding/json writes a float64: the shortest
// decimal that reads back as f, in exponent form only below 1e-6 or from
// 1e21 on (as JavaScript prints numbers), with a negative exponent not
// padded to two digits. It fails for NaN and the infinities.
func appendFloat(b []byte, f float64) ([]byte, bool) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return b, false
	}
	format := byte('f')
	if a := math.Abs(f); a != 0 && (a < 1e-6 || a >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	// strconv pads the exponent to two digits; e-07 becomes e-7. A large
	// exponent has two digits already.
	if n := len(b); format == 'e' && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
		b[n-2] = b[n-1]
		b = b[:n-1]
	}
	return b, true
}
