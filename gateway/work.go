package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"time"
)

// The work of a batch, the same for every protocol: resolved, encoded in
// the protocol's envelope, counted in the metrics under its protocol label,
// summed up in one log line, and handed to the engine.

// run works one job to its end: resolves and encodes it, writes the
// batch's metrics and summary line, and hands the answer to the engine.
func (s *Server) run(j *job, b *batch, p *protocol, log *slog.Logger, start time.Time) {
	ctx, cancel := s.batches.Context(j)
	defer cancel()
	res := s.runSafely(ctx, b, p, j.compress, log)
	a := answer{status: res.status, body: res.body}
	if res.pooled {
		a.free = s.recycle
	}
	// A sparse body is gzipped whatever its size: it cannot go as it is.
	if j.compress && res.status == http.StatusOK && (res.sparse || len(res.body) >= gzipMinBytes) {
		gz, pooled := s.gzipAnswer(res.body, res.spans, res.sparse)
		a.body, a.gzipped, a.free = gz, true, nil
		if pooled {
			a.free = s.recycleGzipped
		}
		if res.pooled {
			s.recycle(res.body)
		}
	}
	s.recycleSpans(res.spans)

	// Metrics and the summary line come before the answer is released, so
	// whoever got the answer also finds them.
	d := time.Since(start)
	s.met.batch(p.name, res.outcome)
	s.met.duration.WithLabelValues(p.name).Observe(d.Seconds())
	s.met.observeRows(p.name, res.rows)
	s.met.observeLookups(p.name, res.stats)
	s.logSummary(log, b, p, res, d, s.batches.IsAsync(j))
	s.batches.Finish(j, a)
}

// logSummary writes a finished batch's line. Row figures count rows by
// their answer; distinct to abandoned count distinct IDs by how the
// resolver answered them; provider_calls is the HTTP requests this batch's
// own lookups sent (see README, Operations).
func (s *Server) logSummary(log *slog.Logger, b *batch, p *protocol, res result, d time.Duration, async bool) {
	rc, st := res.rows, res.stats
	log.Info("batch", "protocol", p.name, "function", "resolve_location", "rows", b.len(),
		"found", rc.found, "not_found", rc.notFound, "no_location", rc.noLocation,
		"null", rc.nullID, "invalid", rc.invalid, "failed", rc.failed,
		"distinct", st.Distinct, "hits", st.Hits, "coalesced", st.Coalesced, "fetched", st.Fetched,
		"abandoned", st.Abandoned, "provider_calls", st.Requests,
		"duration_ms", d.Milliseconds(), "outcome", res.outcome, "status", res.status, "async", async)
}

// runSafely resolves the batch, turning a panic (a bug) into a 500 answer
// so the job still finishes and its waiters are released.
func (s *Server) runSafely(ctx context.Context, b *batch, p *protocol, sparse bool, log *slog.Logger) (res result) {
	defer func() {
		if v := recover(); v != nil {
			log.Error("panic resolving batch", "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			res = textResult(http.StatusInternalServerError, outcomeFailed, "internal error")
		}
	}()
	return s.resolveLocation(ctx, b, p, sparse)
}
