package cache

import (
	"fmt"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the resolver's counters. They exist even when nothing is
// registered, so the code that counts never checks. Hits are not among
// them: the shards count those under their own locks (see shard.hits), the
// L2's are l2Hits, and requests is the collector that reports them with the
// rest.
//
// Each distinct ID a caller asks about is counted once, where its fate is
// decided: a hit by the shard or the L2 that answered it (also for a
// lookup's re-check), miss by the lookup that asks the Lookuper, coalesced
// by the caller joining a lookup, abandoned where no lookup is started or
// joined for it. So hit + miss + coalesced + abandoned is exactly the IDs
// asked (Stats.Distinct summed over ResolveMany calls, plus Resolve calls),
// even when callers give up while their lookups go on.
type metrics struct {
	miss, coalesced, abandoned atomic.Uint64
	failures                   prometheus.Counter
	evictions                  prometheus.Counter
	// IDs looked up in the L2, by result; an error counts every ID asked.
	l2Hits, l2Misses, l2Errors atomic.Uint64
	l2StoreErrors              prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, entries, hits func() float64) (*metrics, error) {
	m := &metrics{
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "snowgate_cache_failures_total",
			Help: "Distinct IDs that ended in an error (invalid ID, provider failure, caller gave up); never cached.",
		}),
		evictions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "snowgate_cache_evictions_total",
			Help: "Entries evicted to stay within the cache size.",
		}),
		l2StoreErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "snowgate_cache_l2_store_errors_total",
			Help: "Provider answers that could not be stored in the shared cache (--redis-url).",
		}),
	}
	if reg == nil {
		return m, nil
	}
	size := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "snowgate_cache_entries",
		Help: "Entries in the cache, expired ones included until looked up or evicted.",
	}, entries)
	req := &requests{m: m, hits: hits, desc: prometheus.NewDesc("snowgate_cache_requests_total",
		"Distinct IDs asked of the resolver (per call), by how they were answered: hit (from the cache or the shared L2), "+
			"miss (a lookup asked the provider; invalid IDs included, rejected without a request), "+
			"coalesced (joined a lookup already in flight), abandoned (the caller gave up or the resolver closed before any lookup).",
		[]string{"result"}, nil)}
	l2 := &l2Requests{m: m, desc: prometheus.NewDesc("snowgate_cache_l2_requests_total",
		"IDs the in-process cache missed and looked for in the shared cache (--redis-url), by result: "+
			"hit, miss, or error (the shared cache did not answer; the ID is fetched).",
		[]string{"result"}, nil)}
	for _, c := range []prometheus.Collector{req, m.failures, m.evictions, size, l2, m.l2StoreErrors} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("cache: register metrics: %w", err)
		}
	}
	return m, nil
}

// add counts one call's failures at once, so a batch of thousands of IDs
// touches the shared counter once, not once per ID.
func (m *metrics) add(st Stats) {
	if st.Failed > 0 {
		m.failures.Add(float64(st.Failed))
	}
}

// requests reports snowgate_cache_requests_total from where each count is
// kept.
type requests struct {
	m    *metrics
	hits func() float64
	desc *prometheus.Desc
}

func (c *requests) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *requests) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, c.hits()+float64(c.m.l2Hits.Load()), "hit")
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(c.m.miss.Load()), "miss")
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(c.m.coalesced.Load()), "coalesced")
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(c.m.abandoned.Load()), "abandoned")
}

// l2Requests reports snowgate_cache_l2_requests_total.
type l2Requests struct {
	m    *metrics
	desc *prometheus.Desc
}

func (c *l2Requests) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *l2Requests) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(c.m.l2Hits.Load()), "hit")
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(c.m.l2Misses.Load()), "miss")
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(c.m.l2Errors.Load()), "error")
}
