package locapi

import (
	"fmt"
	"math"
	"strconv"

	"github.com/snowgate/snowgate/jsontext"
)

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
