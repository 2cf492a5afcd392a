package sim

import (
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
)

// nopWriter is a ResponseWriter that keeps nothing, so the benchmark
// measures the handler rather than a recorder.
type nopWriter struct{ h http.Header }

func (w *nopWriter) Header() http.Header         { return w.h }
func (w *nopWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *nopWriter) WriteHeader(int)             {}

// BenchmarkServeHTTP is the handler alone: parse, count, admit, encode.
func BenchmarkServeHTTP(b *testing.B) {
	s := mustNew(b, Config{Rate: 1e9, NotFoundRatio: 0.05, NoLocationRatio: 0.05, ErrorRate: 0.01})
	reqs := make([]*http.Request, 1024)
	for i := range reqs {
		r, err := http.NewRequestWithContext(b.Context(), http.MethodGet, EntityURL("http://sim", fmt.Sprintf("WH-%06d/ü", i)), nil)
		if err != nil {
			b.Fatal(err)
		}
		reqs[i] = r
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		w := &nopWriter{h: http.Header{}}
		i := 0
		for pb.Next() {
			clear(w.h)
			s.ServeHTTP(w, reqs[i%len(reqs)])
			i++
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}

// BenchmarkLoopback is a client and the simulator over real keep-alive
// connections on 127.0.0.1, sharing the machine's cores.
func BenchmarkLoopback(b *testing.B) {
	rs := mustStart(b, Config{})
	var next atomic.Int64
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, err := http.NewRequestWithContext(b.Context(), http.MethodGet, rs.EntityURL(fmt.Sprint("WH-", next.Add(1))), nil)
			if err != nil {
				b.Error(err)
				return
			}
			resp, err := rs.Client().Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			drain(resp)
			if resp.StatusCode != 200 {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}
