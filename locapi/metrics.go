package locapi

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the client's Prometheus series. They always exist, so the
// code that updates them has no nil checks; they are registered only when a
// Registerer is given.
type metrics struct {
	requests    *prometheus.CounterVec
	retries     prometheus.Counter
	limiterWait prometheus.Histogram
	duration    prometheus.Histogram
	rateLimit   prometheus.Gauge
	inflight    prometheus.Gauge
	// budgetFallback is 1 while a shared budget is unreachable.
	budgetFallback prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "snowgate_upstream_requests_total",
			Help: "Requests sent to the location provider, every attempt (retries and 429s included), by HTTP status code (\"error\": no answer).",
		}, []string{"code"}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "snowgate_upstream_retries_total",
			Help: "Requests to the location provider that repeated an earlier, failed attempt.",
		}),
		limiterWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "snowgate_upstream_limiter_wait_seconds",
			Help:    "Time an attempt waited for a concurrency slot and a rate-limit token.",
			Buckets: []float64{.0005, .001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "snowgate_upstream_request_duration_seconds",
			Help:    "Duration of one request to the location provider, body included.",
			Buckets: prometheus.DefBuckets,
		}),
		rateLimit: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "snowgate_upstream_rate_limit",
			Help: "Effective request rate limit towards the provider, requests/s (0: unlimited).",
		}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "snowgate_upstream_inflight",
			Help: "Requests to the location provider in flight.",
		}),
		budgetFallback: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "snowgate_upstream_budget_fallback",
			Help: "1 while the shared provider budget (--redis-url) is unreachable or just back and this process paces itself at --redis-local-share of the rate.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.requests, m.retries, m.limiterWait, m.duration, m.rateLimit, m.inflight, m.budgetFallback} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering metrics: %w", err)
		}
	}
	return m, nil
}
