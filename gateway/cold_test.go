//go:build !race

// The race detector slows every provider round trip several times over, so
// the latency bound is only checked (and benchmarked) in normal builds.

package gateway

import (
	"context"
	"fmt"
	"net/http"
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
// by BenchmarkColdBatch; on a shared two-core machine HTTP overhead alone is
// about 150 ms per batch, so the test allows 2x to stay reliable.
func TestColdBatchLatency(t *testing.T) {
	st := coldStack(t)
	best := time.Hour
	for round := range 3 {
		d := coldBatch(t, st, round)
		t.Logf("round %d: %v", round, d.Round(time.Millisecond))
		best = min(best, d)
	}
	if best > 2*coldBound {
		t.Fatalf("best cold batch %v; want at most %v (2 x %v)", best, 2*coldBound, coldBound)
	}
}

// BenchmarkColdBatch measures the cold-batch target: ms/batch, from the
// POST to the whole answer, against the 320 ms bound (goal: at most 400).
// Building the IDs and checking every answered row are left out: they are
// the benchmark's work, not the batch's.
func BenchmarkColdBatch(b *testing.B) {
	st := coldStack(b)
	var total time.Duration
	round := 0
	for b.Loop() {
		total += coldBatch(b, st, round)
		round++
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(round), "ms/batch")
}
