package gateway

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/snowgate/snowgate/cache"
)

// Batch outcomes, the values of the outcome label and of the log field.
const (
	outcomeOK           = "ok"           // 200, every row answered
	outcomePartial      = "partial"      // 200, some rows answered per --on-row-error
	outcomeFailed       = "failed"       // 503 with --on-row-error=fail: Snowflake retries
	outcomeTooLarge     = "too_large"    // the answer would exceed the response limit
	outcomeRejected     = "rejected"     // 4xx: the request broke the contract
	outcomeOverloaded   = "overloaded"   // 429: over --max-inflight-rows
	outcomeUnauthorized = "unauthorized" // 401
	outcomeDraining     = "draining"     // 503 while shutting down
	outcomeAccepted     = "accepted"     // 202: still working
	outcomeReplayed     = "replayed"     // a stored or joined answer, no new work
)

// metrics are per batch, never per row: a hot batch adds counts once.
type metrics struct {
	batches   *prometheus.CounterVec
	rows      *prometheus.CounterVec
	lookups   *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	inflight  prometheus.Gauge
	asyncJobs prometheus.Gauge
	kept      prometheus.Gauge
	shared    *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		batches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "snowgate_gateway_batches_total",
			Help: "Batches (requests to a function path) by protocol (snowflake, bigquery, redshift, rest) and outcome.",
		}, []string{"protocol", "outcome"}),
		rows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "snowgate_gateway_rows_total",
			Help: "Rows of the batches resolved, by result: found, not_found, no_location, null_id, invalid_id, failed; " +
				"a batch refused as a whole (--on-row-error=fail, too large) counts its rows too.",
		}, []string{"protocol", "result"}),
		lookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "snowgate_gateway_lookups_total",
			Help: "Distinct IDs per batch by how the resolver answered: hit (cache), coalesced (joined another batch's lookup in flight), " +
				"fetched (this batch's own provider lookup), invalid (rejected before any request), abandoned (unanswered at the batch's deadline).",
		}, []string{"protocol", "source"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "snowgate_gateway_batch_duration_seconds",
			Help:    "Time to answer a batch, by protocol, from the request's arrival (body read and decode included) to the encoded answer.",
			Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 25, 60, 300},
		}, []string{"protocol"}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "snowgate_gateway_rows_in_flight",
			Help: "Rows of batches being worked on (capped by --max-inflight-rows).",
		}),
		asyncJobs: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "snowgate_gateway_async_jobs",
			Help: "Batches answered 202 and still being worked on.",
		}),
		kept: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "snowgate_gateway_results_kept",
			Help: "Finished answers kept by batch id for retries and polls.",
		}),
		shared: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "snowgate_gateway_shared_batches_total",
			Help: "New batches settled with the shared job store (--redis-url), by result: claimed (worked on here), " +
				"replayed (another replica's answer), followed (waited on another replica), " +
				"unreachable (store down: worked on here, synchronously).",
		}, []string{"result"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.batches, m.rows, m.lookups, m.duration, m.inflight, m.asyncJobs, m.kept, m.shared} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering gateway metrics: %w", err)
		}
	}
	return m, nil
}

// rowCounts tallies one batch's rows by result.
type rowCounts struct {
	found, notFound, noLocation, nullID, invalid, failed int
}

// batch counts one batch of protocol proto by outcome.
func (m *metrics) batch(proto, outcome string) {
	m.batches.WithLabelValues(proto, outcome).Inc()
}

// observeLookups counts one batch's distinct IDs by source.
func (m *metrics) observeLookups(proto string, st cache.Stats) {
	for _, s := range []struct {
		label string
		n     int
	}{{"hit", st.Hits}, {"coalesced", st.Coalesced}, {"fetched", st.Fetched}, {"invalid", st.Invalid}, {"abandoned", st.Abandoned}} {
		if s.n > 0 {
			m.lookups.WithLabelValues(proto, s.label).Add(float64(s.n))
		}
	}
}

func (m *metrics) observeRows(proto string, c rowCounts) {
	add := func(label string, n int) {
		if n > 0 {
			m.rows.WithLabelValues(proto, label).Add(float64(n))
		}
	}
	add("found", c.found)
	add("not_found", c.notFound)
	add("no_location", c.noLocation)
	add("null_id", c.nullID)
	add("invalid_id", c.invalid)
	add("failed", c.failed)
}
