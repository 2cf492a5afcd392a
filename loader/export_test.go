package loader

import (
	"net/http/httptest"
	"testing"

	"github.com/snowgate/snowgate/locapi"
)

// The tests that run the pipeline on a real DuckDB warehouse are in package
// loader_test: loader/duckdb imports loader, so this package's own tests
// cannot import it. These are the fixtures of this package's tests that
// they share.

// FakeRecord is the record the fake resolver and the fake gateway give id.
func FakeRecord(id string) *locapi.Record {
	label, city := "L-"+id, "City"
	lat, lon := float64(len(id)), -1.5
	return &locapi.Record{ID: id, Label: &label, CityLabel: &city, Latitude: &lat, Longitude: &lon}
}

// NewFakeGateway starts the fake gateway of via_test.go.
func NewFakeGateway(t *testing.T) *httptest.Server {
	_, srv := newFakeGateway(t)
	return srv
}
