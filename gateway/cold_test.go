//go:build !race

// The race detector slows every provider round trip several times over, so
// the latency bound is only checked (and benchmarked) in normal builds.

package gateway

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/snowgate/snowgate/locapi"
	"github.com/snowgate/snowgate/sim"
)

// coldBound is 4,096 IDs / 256 in flight x 20 ms of provider latency.
const coldBound = 4096 / 256 * 20 * time.Millisecond

func coldStack(t testing.TB) *stack {
	return startStack(t, sim.Config{Latency: 20 * time.Millisecond},
		locapi.Config{Rate: 0, Concurrency: 256}, Config{})
}

// coldBatch posts 4,096 IDs never seen before and returns the latency.
func coldBatch(t testing.TB, st *stack, round int) time.Duration {
	ids := make([]string, 4096)
	for i := range ids {
		ids[i] = fmt.Sprintf("COLD-%d-%04d", round, i)
	}
	body := []byte(batchBody(ids))
	runtime.GC() // the last batch's check left garbage that is not the gateway's
	start := time.Now()
	code, resp, err := send(context.Background(), http.MethodPost, st.url, fmt.Sprintf("cold:%d", round), body)
	d := time.Since(start)
	if err != nil || code != http.StatusOK {
		t.Fatalf("cold batch: %d %v %.200s", code, err, resp)
	}
	st.checkAnswer(t, resp, ids)
	return d
}

// TestColdBatchLatency guards the fan-out: 4,096 uncached IDs, 20 ms
// provider latency, no rate limit, 256 in flight must answer near the
// 320 ms bound, not in 4,096 x 20 ms. The target (1.25 x 320 ms) is measured
// by BenchmarkColdBatch. What the machine can do at the moment is measured
// beside it: the bare net/http fan-out to the same simulator, round by
// round. A busy machine slows both alike (1.1-1.3x apart beside two busy
// loops); a serial fan-out takes 80 s, and one a quarter as wide 1.3 s,
// over three times an idle machine's bare 0.36-0.38 s.
func TestColdBatchLatency(t *testing.T) {
	st := coldStack(t)
	best, bare := time.Hour, time.Hour
	for round := range 3 {
		d, b := coldBatch(t, st, round), bareFanOut(t, st.sim, round)
		t.Logf("round %d: %v, bare net/http %v", round, d.Round(time.Millisecond), b.Round(time.Millisecond))
		best, bare = min(best, d), min(bare, b)
	}
	t.Logf("best %v = %.2f x the %v bound, %.2f x the bare fan-out", best.Round(time.Millisecond),
		float64(best)/float64(coldBound), coldBound, float64(best)/float64(bare))
	if best > 3*bare {
		t.Fatalf("best cold batch %v; want at most 3 x the bare fan-out's %v", best, bare)
	}
}

// BenchmarkColdBatch measures the cold-batch target: ms/batch, from the
// POST to the whole answer, against the 320 ms bound (goal: at most 400).
// Building the IDs and checking every answered row are left out: they are
// the benchmark's work, not the batch's.
//
// The baseline in the same run is the least any Go service can do here:
// the same 4,096 GETs, 256 at a time, from a bare net/http client to the
// same simulator, with no gateway, cache or client library. On two shared
// cores the simulator's server and the client's transport alone take well
// over the 320 ms bound.
func BenchmarkColdBatch(b *testing.B) {
	st := coldStack(b)
	var total, bare time.Duration
	round := 0
	for b.Loop() {
		total += coldBatch(b, st, round)
		b.StopTimer()
		bare += bareFanOut(b, st.sim, round)
		b.StartTimer()
		round++
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(round), "ms/batch")
	b.ReportMetric(float64(bare.Milliseconds())/float64(round), "bare-ms/batch")
}

// bareFanOut fetches 4,096 new IDs, 256 at a time, with a plain
// http.Client, and returns how long it took.
func bareFanOut(b testing.TB, rs *sim.Running, round int) time.Duration {
	client := rs.Client() // keep-alive, enough idle connections for 256
	var next atomic.Int64
	var wg sync.WaitGroup
	runtime.GC()
	start := time.Now()
	for range 256 {
		wg.Go(func() {
			for k := next.Add(1) - 1; k < 4096; k = next.Add(1) - 1 {
				req, err := http.NewRequestWithContext(b.Context(), http.MethodGet, rs.EntityURL(fmt.Sprintf("BARE-%d-%04d", round, k)), nil)
				if err != nil {
					b.Error(err)
					return
				}
				resp, err := client.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode >= 500 {
					b.Errorf("bare GET: %d %v", resp.StatusCode, err)
					return
				}
			}
		})
	}
	wg.Wait()
	return time.Since(start)
}
