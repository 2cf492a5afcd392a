package cluster

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics always exist so the code that updates them has no nil checks;
// they are registered only when a Registerer is given.
type metrics struct {
	up       prometheus.Gauge
	outages  prometheus.Counter
	errors   *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		up: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "snowgate_redis_up",
			Help: "1 while Redis is taken as reachable, 0 while this process falls back to working alone.",
		}),
		outages: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "snowgate_redis_fallbacks_total",
			Help: "Times Redis was found unreachable and this process fell back to working alone.",
		}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "snowgate_redis_errors_total",
			Help: "Redis operations that failed or timed out, by operation.",
		}, []string{"op"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "snowgate_redis_op_duration_seconds",
			Help:    "Duration of one Redis operation, by operation.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25},
		}, []string{"op"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.up, m.outages, m.errors, m.duration} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering metrics: %w", err)
		}
	}
	return m, nil
}
