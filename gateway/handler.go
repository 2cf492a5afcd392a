package gateway

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/klauspost/compress/gzip"
)

// bodyReadTimeout bounds reading one request body.
const bodyReadTimeout = time.Minute

// newEngine routes the function table and the operational endpoints.
func (s *Server) newEngine() *gin.Engine {
	e := gin.New()
	e.HandleMethodNotAllowed = true
	e.Use(s.recoverPanic)
	e.GET("/healthz", func(c *gin.Context) { writeText(c, http.StatusOK, "ok") })
	e.GET("/readyz", s.ready)
	if s.cfg.Metrics != nil {
		e.GET("/metrics", gin.WrapH(s.cfg.Metrics))
	}
	for i := range s.functions {
		fn := &s.functions[i]
		e.POST(fn.path, s.auth, s.post(fn))
		e.GET(fn.path, s.auth, s.poll(fn))
	}
	e.NoRoute(func(c *gin.Context) {
		writeText(c, http.StatusNotFound, "no such path: "+truncate(c.Request.URL.Path, 64))
	})
	e.NoMethod(func(c *gin.Context) { writeText(c, http.StatusMethodNotAllowed, "method not allowed") })
	return e
}

// recoverPanic turns a bug into a 500 (which Snowflake retries) and a log
// line, instead of a dropped connection.
func (s *Server) recoverPanic(c *gin.Context) {
	defer func() {
		if v := recover(); v != nil {
			// Identity, as net/http itself tests the value: a panic value is
			// not an error chain, and only the sentinel means "abort".
			if v == http.ErrAbortHandler { //nolint:errorlint // see above
				panic(v)
			}
			s.log.Error("panic serving request", "path", c.Request.URL.Path, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			if !c.Writer.Written() {
				writeText(c, http.StatusInternalServerError, "internal error")
			}
			c.Abort()
		}
	}()
	c.Next()
}

func (s *Server) ready(c *gin.Context) {
	if s.jobs.isDraining() {
		writeText(c, http.StatusServiceUnavailable, "draining")
		return
	}
	writeText(c, http.StatusOK, "ready")
}

// auth checks the shared secret in constant time. Both sides are hashed
// first so neither the content nor the length of the secret leaks.
func (s *Server) auth(c *gin.Context) {
	if s.cfg.AuthHeader == "" {
		return
	}
	got := sum256(c.Request.Header.Get(s.cfg.AuthHeader))
	if subtle.ConstantTimeCompare(got[:], s.authSum[:]) != 1 {
		s.met.batches.WithLabelValues(outcomeUnauthorized).Inc()
		s.logger(c.Request.Header).Warn("batch", "outcome", outcomeUnauthorized, "status", http.StatusUnauthorized)
		writeText(c, http.StatusUnauthorized, "missing or wrong "+s.cfg.AuthHeader+" header")
		c.Abort()
	}
}

func sum256(s string) [32]byte { return sha256.Sum256([]byte(s)) }

// logger is the base logger with the IDs every line about a batch carries.
func (s *Server) logger(h http.Header) *slog.Logger {
	return s.log.With("query_id", h.Get(hdrQueryID), "batch_id", h.Get(hdrBatchID))
}

// post handles a batch: a known batch id joins its job or gets its kept
// answer without decoding; otherwise the body is decoded, admitted against
// the in-flight cap, and run as a new job.
func (s *Server) post(fn *function) gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		h := c.Request.Header
		key := jobKey(fn.path, h.Get(hdrBatchID))
		log := s.logger(h)
		if j := s.jobs.get(key, start); j != nil && !j.failed() {
			// A retry repeats its rows; a reused batch id must not get
			// another batch's answer.
			if b, status, err := s.decode(c, fn, start); err != nil {
				s.reject(c, log, status, outcomeRejected, err)
				return
			} else if !j.sameRows(b.digest(s.digestSeed)) {
				s.reject(c, log, http.StatusConflict, outcomeRejected, errReused)
				return
			}
			s.met.batches.WithLabelValues(outcomeReplayed).Inc()
			s.await(c, j)
			return
		}
		if err := checkFormat(h); err != nil {
			s.reject(c, log, http.StatusBadRequest, outcomeRejected, err)
			return
		}
		b, status, err := s.decode(c, fn, start)
		if err != nil {
			s.reject(c, log, status, outcomeRejected, err)
			return
		}
		st := claimNone
		if s.cfg.Shared != nil && key != "" {
			var done bool
			if st, done = s.settle(c, key, log); done {
				return
			}
		}
		var digest uint64 // only a batch id can be reused
		if key != "" {
			digest = b.digest(s.digestSeed)
		}
		j, started, err := s.jobs.startShared(key, b.len(), digest, time.Now(), st)
		if err != nil && st == claimHeld {
			s.dropClaim(key)
		}
		switch {
		case errors.Is(err, errDraining):
			s.reject(c, log, http.StatusServiceUnavailable, outcomeDraining, err)
			return
		case errors.Is(err, errReused):
			s.reject(c, log, http.StatusConflict, outcomeRejected, err)
			return
		case errors.Is(err, errOverloaded):
			s.reject(c, log, http.StatusTooManyRequests, outcomeOverloaded,
				fmt.Errorf("overloaded: over %d rows in flight; retry later", s.cfg.MaxInflightRows))
			return
		case !started:
			s.met.batches.WithLabelValues(outcomeReplayed).Inc()
		default:
			j.compress = s.cfg.Shared == nil && acceptsGzip(h.Get("Accept-Encoding"))
			cl := parseCall(h)
			if log.Enabled(c, slog.LevelDebug) {
				log.Debug("batch headers", "call", cl.logValue(s.cfg.AuthHeader))
			}
			go s.run(j, fn, b, cl, log, start)
		}
		s.await(c, j)
	}
}

// decode reads and parses a new batch's body into a pooled buffer. A slow
// sender may not hold the buffer for long: the read has a deadline, lifted
// again for the wait on the batch. (Test recorders do not support deadlines;
// the error is then ignored.)
func (s *Server) decode(c *gin.Context, fn *function, start time.Time) (*batch, int, error) {
	buf := s.bodies.Get().(*bytes.Buffer)
	buf.Reset()
	rc := http.NewResponseController(c.Writer)
	_ = rc.SetReadDeadline(start.Add(bodyReadTimeout))
	b, status, err := decodeRequest(c.Request, buf, s.cfg.MaxBody, fn.arity)
	_ = rc.SetReadDeadline(time.Time{})
	if buf.Cap() <= 4<<20 { // don't keep rare huge buffers alive
		s.bodies.Put(buf)
	}
	return b, status, err
}

// checkFormat rejects a format other than Snowflake's JSON 1.0. Absent
// headers are accepted, for hand-made requests.
func checkFormat(h http.Header) error {
	if f := h.Get(hdrFormat); f != "" && !strings.EqualFold(f, "json") {
		return fmt.Errorf("unsupported %s %q: only json", hdrFormat, truncate(f, 32))
	}
	if v := h.Get(hdrFormatVersion); v != "" && v != "1.0" {
		return fmt.Errorf("unsupported %s %q: only 1.0", hdrFormatVersion, truncate(v, 32))
	}
	return nil
}

// await answers from j once it is done. With Async a batch not done within
// BatchTimeout answers 202 and keeps going. If the client leaves, the job
// goes on and keeps its answer for Snowflake's retry.
func (s *Server) await(c *gin.Context, j *job) {
	var timeout <-chan time.Time
	if s.asyncJob(j) {
		t := time.NewTimer(s.cfg.BatchTimeout)
		defer t.Stop()
		timeout = t.C
	}
	if s.cfg.Shared != nil {
		s.jobs.wait(j, 1)
		defer s.jobs.wait(j, -1)
	}
	select {
	case <-j.done:
		s.writeJob(c, j)
	case <-timeout:
		if !s.jobs.markAsync(j) { // it finished just now
			s.writeJob(c, j)
			return
		}
		s.met.batches.WithLabelValues(outcomeAccepted).Inc()
		c.Status(http.StatusAccepted)
		c.Writer.WriteHeaderNow()
	case <-c.Request.Context().Done():
		// Nobody reads this; it only keeps gin from sending an empty 200.
		writeText(c, http.StatusServiceUnavailable, "client went away")
	}
}

// asyncJob reports whether j may answer 202: Async is on and the batch has
// an id to poll by.
func (s *Server) asyncJob(j *job) bool {
	return s.cfg.Async && j.key != ""
}

// poll answers Snowflake's GET for an asynchronous batch: 202 while it runs,
// its answer when done, 404 if the batch id is unknown here (and, with a
// shared store, to every replica).
func (s *Server) poll(fn *function) gin.HandlerFunc {
	return func(c *gin.Context) {
		key := c.Request.Header.Get(hdrBatchID)
		if key == "" {
			writeText(c, http.StatusBadRequest, "GET needs the "+hdrBatchID+" header: it only polls an asynchronous batch")
			return
		}
		j := s.jobs.get(jobKey(fn.path, key), time.Now())
		if j == nil && s.cfg.Shared != nil {
			s.pollShared(c, jobKey(fn.path, key), key)
			return
		}
		if j == nil {
			writeText(c, http.StatusNotFound, "unknown batch id "+quoteID(key)+
				": never posted here, or its answer expired (see --result-ttl); with several replicas, route a query's polls to one replica")
			return
		}
		select {
		case <-j.done:
			s.writeJob(c, j)
		default:
			c.Status(http.StatusAccepted)
			c.Writer.WriteHeaderNow()
		}
	}
}

// run works one job to its end, publishes the answer, and writes the
// batch's metrics and summary line.
func (s *Server) run(j *job, fn *function, b *batch, cl *call, log *slog.Logger, start time.Time) {
	timeout := s.cfg.BatchTimeout
	if s.asyncJob(j) {
		timeout = s.cfg.AsyncTimeout
	}
	ctx, cancel := context.WithTimeout(s.jobCtx, timeout)
	defer cancel()
	// The claim is renewed even when the store was down at the start: the
	// renewal makes it once the store is back, so polls there find it.
	stopRenew := func() {}
	if j.shared != claimNone {
		stopRenew = s.renewClaim(j.key)
	}
	res := s.runSafely(ctx, fn, b, cl, log)
	j.status, j.body = res.status, res.body
	if j.compress && res.status == http.StatusOK && len(res.body) >= gzipMinBytes {
		j.body, j.gzipped = s.gzipAnswer(res.body), true
		if res.pooled {
			s.recycle(res.body)
		}
	}
	stopRenew()

	// Metrics and the summary line come before the answer is released, so
	// whoever got the answer also finds them.
	d := time.Since(start)
	s.met.batches.WithLabelValues(res.outcome).Inc()
	s.met.duration.Observe(d.Seconds())
	s.met.observeRows(res.rows)
	s.met.observeLookups(res.stats)
	s.logSummary(log, fn, b, res, d, s.jobs.isAsync(j))

	s.jobs.finish(j, time.Now())
	if j.shared != claimNone {
		s.release(j)
	}
}

// logSummary writes a finished batch's line. Row figures count rows by
// their answer; distinct to abandoned count distinct IDs by how the
// resolver answered them; provider_calls is the HTTP requests this batch's
// own lookups sent (see README, Operations).
func (s *Server) logSummary(log *slog.Logger, fn *function, b *batch, res result, d time.Duration, async bool) {
	rc, st := res.rows, res.stats
	log.Info("batch", "function", fn.name, "rows", b.len(),
		"found", rc.found, "not_found", rc.notFound, "no_location", rc.noLocation,
		"null", rc.nullID, "invalid", rc.invalid, "failed", rc.failed,
		"distinct", st.Distinct, "hits", st.Hits, "coalesced", st.Coalesced, "fetched", st.Fetched,
		"abandoned", st.Abandoned, "provider_calls", st.Requests,
		"duration_ms", d.Milliseconds(), "outcome", res.outcome, "status", res.status, "async", async)
}

// runSafely runs fn, turning a panic (a bug) into a 500 answer so the job
// still finishes and its waiters are released.
func (s *Server) runSafely(ctx context.Context, fn *function, b *batch, cl *call, log *slog.Logger) (res result) {
	defer func() {
		if v := recover(); v != nil {
			log.Error("panic resolving batch", "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			res = textResult(http.StatusInternalServerError, outcomeFailed, "internal error")
		}
	}()
	return fn.run(ctx, b, cl)
}

// reject answers a batch that will not run, with its summary line.
func (s *Server) reject(c *gin.Context, log *slog.Logger, status int, outcome string, err error) {
	s.met.batches.WithLabelValues(outcome).Inc()
	log.Info("batch", "outcome", outcome, "status", status, "reason", err.Error())
	writeText(c, status, err.Error())
}

// write sends an answer, gzipped when the client accepts it and it is big
// enough to gain.
func (s *Server) write(c *gin.Context, status int, body []byte) {
	if status != http.StatusOK {
		c.Data(status, "text/plain; charset=utf-8", body)
		return
	}
	h := c.Writer.Header()
	h.Set("Content-Type", "application/json")
	if len(body) < gzipMinBytes || !acceptsGzip(c.Request.Header.Get("Accept-Encoding")) {
		h.Set("Content-Length", strconv.Itoa(len(body)))
		c.Writer.WriteHeader(status)
		_, _ = c.Writer.Write(body) // the client left; nothing to do
		return
	}
	h.Set("Content-Encoding", "gzip")
	h.Set("Vary", "Accept-Encoding")
	c.Writer.WriteHeader(status)
	zw := s.gzips.Get().(*gzip.Writer)
	zw.Reset(c.Writer)
	_, _ = zw.Write(body)
	_ = zw.Close()
	zw.Reset(nil)
	s.gzips.Put(zw)
}

// writeJob sends a finished job's answer. One kept gzipped goes out as it
// is to a client that accepts gzip, with its length, and inflated again to
// one that does not.
func (s *Server) writeJob(c *gin.Context, j *job) {
	if !j.gzipped {
		s.write(c, j.status, j.body)
		return
	}
	if !acceptsGzip(c.Request.Header.Get("Accept-Encoding")) {
		// A batch first sent with gzip accepted, now without: only a
		// hand-made retry does that.
		plain, err := gunzip(j.body)
		if err != nil {
			writeText(c, http.StatusInternalServerError, "internal error: "+err.Error())
			return
		}
		s.write(c, j.status, plain)
		return
	}
	h := c.Writer.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Encoding", "gzip")
	h.Set("Vary", "Accept-Encoding")
	h.Set("Content-Length", strconv.Itoa(len(j.body)))
	c.Writer.WriteHeader(j.status)
	_, _ = c.Writer.Write(j.body) // the client left; nothing to do
}

// gzipAnswer compresses an answer into a slice of its own exact size: it
// is kept for the result TTL.
func (s *Server) gzipAnswer(body []byte) []byte {
	buf := s.bodies.Get().(*bytes.Buffer)
	buf.Reset()
	zw := s.gzips.Get().(*gzip.Writer)
	zw.Reset(buf)
	_, _ = zw.Write(body) // a bytes.Buffer does not fail
	_ = zw.Close()
	zw.Reset(nil)
	s.gzips.Put(zw)
	out := bytes.Clone(buf.Bytes())
	if buf.Cap() <= 4<<20 {
		s.bodies.Put(buf)
	}
	return out
}

// gunzip undoes gzipAnswer.
func gunzip(gz []byte) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return nil, fmt.Errorf("kept answer: %w", err)
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(zr); err != nil {
		return nil, fmt.Errorf("kept answer: %w", err)
	}
	return buf.Bytes(), nil
}

// acceptsGzip reads an Accept-Encoding header: gzip (or *) listed without
// q=0.
func acceptsGzip(h string) bool {
	for _, part := range strings.Split(h, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		name = strings.ToLower(strings.TrimSpace(name))
		if name != "gzip" && name != "*" {
			continue
		}
		q := strings.ReplaceAll(strings.ToLower(params), " ", "")
		return !strings.HasPrefix(q, "q=0") || strings.TrimLeft(q[3:], ".0") != ""
	}
	return false
}

// quoteID quotes a batch id for an error message.
func quoteID(id string) string { return strconv.Quote(truncate(id, 128)) }

// writeText sends a one-line plain-text answer: what Snowflake shows the SQL
// user for a 4xx.
func writeText(c *gin.Context, status int, msg string) {
	c.Data(status, "text/plain; charset=utf-8", []byte(msg+"\n"))
}
