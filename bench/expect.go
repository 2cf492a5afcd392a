package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"hash/maphash"

	"github.com/snowgate/snowgate/locapi"
	"github.com/snowgate/snowgate/sim"
)

// oracle knows the right answer for every ID: the simulator's records never
// change, so sim.Expected is the truth every answered row is checked
// against.
type oracle struct {
	sim  *sim.Server
	seed maphash.Seed
	// want holds, for the IDs given to newOracle, the kind and a hash of
	// the exact value the gateway is expected to answer, so that checking a
	// hot row costs a hash, not two JSON decodes.
	want map[string]expected
}

type expected struct {
	kind sim.Kind
	sum  uint64
}

// newOracle precomputes the expected gateway values of ids.
func newOracle(s *sim.Server, ids []string) (*oracle, error) {
	o := &oracle{sim: s, seed: maphash.MakeSeed(), want: make(map[string]expected, len(ids))}
	for _, id := range ids {
		kind, rec, err := o.truth(id)
		if err != nil {
			return nil, err
		}
		e := expected{kind: kind}
		if v := gatewayValue(id, kind, rec); v != nil {
			e.sum = maphash.Bytes(o.seed, v)
		}
		o.want[id] = e
	}
	return o, nil
}

// truth is the simulator's answer for id: its kind and, for Found and
// NoLocation, the standardized record.
func (o *oracle) truth(id string) (sim.Kind, *locapi.Record, error) {
	kind, body := o.sim.Expected(id)
	if kind != sim.Found && kind != sim.NoLocation {
		return kind, nil, nil
	}
	_, rec, err := decodeEntity(body, id)
	if err != nil {
		return kind, nil, fmt.Errorf("simulator record for %q: %w", id, err)
	}
	return kind, rec, nil
}

// gatewayValue is the value the gateway answers for id when it runs with
// --on-row-error error and --not-found object; nil for a permanent failure,
// whose error text is the gateway's to choose.
func gatewayValue(id string, kind sim.Kind, rec *locapi.Record) []byte {
	switch kind {
	case sim.Found:
		b, _ := json.Marshal(rec) // a Record always encodes
		return b
	case sim.NotFound, sim.NoLocation:
		b, _ := json.Marshal(notFoundValue{Found: new(bool), ID: id, Status: kind.String()})
		return b
	}
	return nil
}

type notFoundValue struct {
	Found  *bool  `json:"found"`
	ID     string `json:"id"`
	Status string `json:"status"`
}

// verdict is what checking one answered row concluded.
type verdict uint8

const (
	rowRight  verdict = iota
	rowFailed         // an explicit error value where the provider has an answer: lost, not wrong
	rowWrong
)

// check judges the value v answered for id. The fast path compares a hash
// of the exact bytes; anything else is decoded and compared field by field,
// so an encoding change in the gateway is not mistaken for a wrong answer.
func (o *oracle) check(id string, v json.RawMessage) (verdict, string) {
	e, ok := o.want[id]
	if ok && e.sum != 0 && maphash.Bytes(o.seed, v) == e.sum {
		return rowRight, ""
	}
	if isErrorValue(v) {
		if e.kind == sim.PermanentFail {
			return rowRight, ""
		}
		return rowFailed, ""
	}
	kind, rec, err := o.truth(id)
	if err != nil {
		return rowWrong, err.Error()
	}
	if why := compareValue(id, kind, rec, v); why != "" {
		return rowWrong, fmt.Sprintf("id %q: %s", id, why)
	}
	return rowRight, ""
}

// isErrorValue reports whether v is the gateway's {"error": "..."}.
func isErrorValue(v json.RawMessage) bool {
	if !bytes.HasPrefix(bytes.TrimSpace(v), []byte(`{"error"`)) {
		return false
	}
	var e struct {
		Error *string `json:"error"`
	}
	return json.Unmarshal(v, &e) == nil && e.Error != nil
}

// compareValue explains how v differs from the truth, or returns "".
func compareValue(id string, kind sim.Kind, rec *locapi.Record, v json.RawMessage) string {
	switch kind {
	case sim.Found:
		var got locapi.Record
		if err := json.Unmarshal(v, &got); err != nil || got.ID == "" {
			return fmt.Sprintf("got %s; want the record", clip(v))
		}
		if why := diffRecord(&got, rec); why != "" {
			return why
		}
		return ""
	case sim.NotFound, sim.NoLocation:
		var got notFoundValue
		if err := json.Unmarshal(v, &got); err != nil || got.Found == nil || *got.Found || got.ID != id || got.Status != kind.String() {
			return fmt.Sprintf("got %s; want found=false, status %s", clip(v), kind)
		}
		return ""
	case sim.PermanentFail:
		return fmt.Sprintf("got %s; want an error (the provider always fails this ID)", clip(v))
	}
	return fmt.Sprintf("got %s for an ID the simulator calls %s", clip(v), kind)
}

// diffRecord names the first field where got differs from want.
func diffRecord(got, want *locapi.Record) string {
	strs := []struct {
		name string
		g, w *string
	}{
		{"label", got.Label, want.Label}, {"geo_label", got.GeoLabel, want.GeoLabel},
		{"street_address", got.StreetAddress, want.StreetAddress}, {"city_label", got.CityLabel, want.CityLabel},
		{"postal_code", got.PostalCode, want.PostalCode}, {"country_label", got.CountryLabel, want.CountryLabel},
	}
	if got.ID != want.ID {
		return fmt.Sprintf("id: got %q; want %q", got.ID, want.ID)
	}
	for _, f := range strs {
		if !equalPtr(f.g, f.w) {
			return fmt.Sprintf("%s: got %s; want %s", f.name, show(f.g), show(f.w))
		}
	}
	if !equalPtr(got.Latitude, want.Latitude) || !equalPtr(got.Longitude, want.Longitude) {
		return fmt.Sprintf("coordinates: got %s,%s; want %s,%s", show(got.Latitude), show(got.Longitude),
			show(want.Latitude), show(want.Longitude))
	}
	return ""
}

func equalPtr[T comparable](a, b *T) bool {
	return a == nil && b == nil || a != nil && b != nil && *a == *b
}

func show[T any](p *T) string {
	if p == nil {
		return "null"
	}
	return fmt.Sprintf("%q", fmt.Sprint(*p))
}

// clip shortens a value for an error message.
func clip(v []byte) string {
	const n = 160
	if len(v) <= n {
		return string(v)
	}
	return string(v[:n]) + "..."
}
