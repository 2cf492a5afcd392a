package cache

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// hotResolver returns a resolver with n IDs of typical length cached.
func hotResolver(b *testing.B, n, shards int) (*Resolver, []string) {
	b.Helper()
	r, err := New(&fakeProvider{}, Config{Shards: shards}, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { r.Close() })
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("WH-%07d", i*7919)
	}
	out, st := r.ResolveMany(b.Context(), ids)
	if st.Fetched != n {
		b.Fatalf("warm-up fetched %d; want %d", st.Fetched, n)
	}
	for i := range out {
		if out[i].Err != nil {
			b.Fatal(out[i].Err)
		}
	}
	return r, ids
}

// nsPerID reports the custom metric acceptance 6 asks for.
func nsPerID(b *testing.B, start time.Time, ids int) {
	b.ReportMetric(float64(time.Since(start).Nanoseconds())/float64(b.N*ids), "ns/id")
}

// Acceptance 6: a gateway batch of 4,096 IDs, all cached.
func BenchmarkResolveManyHot(b *testing.B) {
	const batch = 4096
	r, ids := hotResolver(b, batch, 0)
	b.ReportAllocs()
	start := time.Now()
	b.ResetTimer()
	for b.Loop() {
		out, st := r.ResolveMany(b.Context(), ids)
		if st.Hits != batch || len(out) != batch {
			b.Fatalf("hits %d of %d", st.Hits, batch)
		}
	}
	nsPerID(b, start, batch)
}

// Gateway batches drawn from a working set far bigger than the CPU's
// caches, as a production cache is (a backfill's millions of IDs): each
// lookup's memory is cold, so what a hit reads outside the map decides
// its cost.
func BenchmarkResolveManyHotBig(b *testing.B) {
	const batch, n = 4096, 1_000_000
	r, err := New(&fakeProvider{}, Config{Size: 2 * n}, nil) // room to spare: shards fill unevenly
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { r.Close() })
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("WH-%07d", i)
	}
	if _, st := r.ResolveMany(b.Context(), ids); st.Fetched != n {
		b.Fatalf("warm-up fetched %d; want %d", st.Fetched, n)
	}
	rand.New(rand.NewPCG(1, 2)).Shuffle(n, func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	b.ReportAllocs()
	start := time.Now()
	b.ResetTimer()
	k := 0
	for b.Loop() {
		part := ids[k*batch : (k+1)*batch]
		k = (k + 1) % (n / batch)
		if _, st := r.ResolveMany(b.Context(), part); st.Hits != batch {
			b.Fatalf("hits %d of %d", st.Hits, batch)
		}
	}
	nsPerID(b, start, batch)
}

// Many gateway batches at once over the same hot IDs: one lock for the whole
// cache against sixteen. Run with -cpu 1,2.
func BenchmarkResolveManyHotParallel(b *testing.B) {
	const batch = 4096
	for _, shards := range []int{1, 16} {
		b.Run(fmt.Sprintf("shards=%d", shards), func(b *testing.B) {
			r, ids := hotResolver(b, batch, shards)
			b.ReportAllocs()
			start := time.Now()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, st := r.ResolveMany(b.Context(), ids); st.Hits != batch {
						b.Errorf("hits %d of %d", st.Hits, batch)
						return
					}
				}
			})
			nsPerID(b, start, batch)
		})
	}
}

// The loader's shape: single hot IDs from many workers, the path where a
// shard lock is taken per call. Run with -cpu 1,2.
func BenchmarkResolveHotParallel(b *testing.B) {
	const n = 4096
	for _, shards := range []int{1, 16} {
		b.Run(fmt.Sprintf("shards=%d", shards), func(b *testing.B) {
			r, ids := hotResolver(b, n, shards)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					if o := r.Resolve(b.Context(), ids[i%n]); !o.Hit {
						b.Errorf("%q: not a hit", ids[i%n])
						return
					}
					i += 577
				}
			})
		})
	}
}
