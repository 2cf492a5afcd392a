package gateway

import (
	"fmt"

	"github.com/snowgate/snowgate/jsontext"
	"github.com/snowgate/snowgate/locapi"
)

// EncodeRecord is the VARIANT object a found row answers with, in
// json.Marshal's bytes (HTML-safe), written by hand because it runs once per
// found record on the cold path. It is the gateway's format: give it to the
// resolver as cache.Config.Encode, so a hit appends kept bytes and is never
// re-encoded. It fails, as json.Marshal does, when a coordinate is NaN or
// infinite.
func EncodeRecord(r *locapi.Record) ([]byte, error) {
	if r == nil {
		return []byte("null"), nil
	}
	// Encode on the stack first, so that the kept slice is exactly as
	// long as the encoding.
	var stack [512]byte
	b, err := appendRecord(stack[:0], r)
	if err != nil {
		return nil, err
	}
	return append([]byte(nil), b...), nil
}

// appendRecord appends r's VARIANT object to b.
func appendRecord(b []byte, r *locapi.Record) ([]byte, error) {
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
		return nil, fmt.Errorf("gateway: record latitude is %v, not a JSON number", *r.Latitude)
	}
	b, ok = appendOptFloat(b, `,"longitude":`, r.Longitude)
	if !ok {
		return nil, fmt.Errorf("gateway: record longitude is %v, not a JSON number", *r.Longitude)
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
	return jsontext.AppendFloat(b, *p)
}
