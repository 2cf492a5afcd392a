package locapi

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/snowgate/snowgate/sim"
)

// handlerTransport serves requests from an in-process handler, so the
// benchmark measures the client rather than the loopback network.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, r)
	return rec.Result(), nil
}

// BenchmarkLookup is the client's cost per found ID: URL, limiter (with a
// rate too high to wait), slot, request, decode.
func BenchmarkLookup(b *testing.B) {
	h, err := sim.New(sim.Config{})
	if err != nil {
		b.Fatal(err)
	}
	c, err := New(Config{URL: "http://sim.invalid/api/v2/entities/{id}?select=id,label,location",
		Rate: 1e9, Burst: 1 << 20, Transport: handlerTransport{h}}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	ids := make([]string, 1024)
	for i := range ids {
		ids[i] = fmt.Sprintf("warehouse/%d ü", i)
	}
	var n atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id := ids[n.Add(1)%int64(len(ids))]
			if res, err := c.Lookup(context.Background(), id); err != nil || res.Status != Found {
				b.Errorf("Lookup(%q) = %v, %v; want found", id, res.Status, err)
				return
			}
		}
	})
}

func BenchmarkEscapeSegment(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		escapeSegment("../../admin?x=1#ü")
	}
}
