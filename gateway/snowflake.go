package gateway

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
)

// The Snowflake external-function adapter: resolve_location over
// Snowflake's JSON envelope ({"data": [[row, id], ...]} both ways), the
// sf-* headers, 202 and GET polls by sf-external-function-query-batch-id.
// It decodes, hands the batch to the engine (batches.go), runs the resolver
// and encodes; the engine does the rest.

// locationArgs is resolve_location's arity: one ID after the row number.
const locationArgs = 1

// bodyReadTimeout bounds reading one request body.
const bodyReadTimeout = time.Minute

// post handles a batch: decoded, then joined to the job known under its
// batch id (or its kept answer), or admitted and run as a new job.
func (s *Server) post(c *gin.Context) {
	start := time.Now()
	h := c.Request.Header
	key := jobKey(s.cfg.Path, h.Get(hdrBatchID))
	log := s.logger(snowflakeProto, h)
	// A retry joins its batch whatever its format headers say: the first
	// POST of the batch was checked.
	if !s.batches.Known(key) {
		if err := checkFormat(h); err != nil {
			s.reject(c, snowflakeProto, log, http.StatusBadRequest, outcomeRejected, err)
			return
		}
	}
	b, status, err := s.decode(c, start)
	if err != nil {
		s.reject(c, snowflakeProto, log, status, outcomeRejected, err)
		return
	}
	var digest uint64 // only a batch id can be reused
	if key != "" {
		digest = b.digest(s.digestSeed)
	}
	j, started, err := s.batches.Begin(c.Request.Context(), jobSpec{key: key, rows: b.len(), digest: digest, async: true}, log)
	switch {
	case err != nil:
		s.refuse(c, log, err)
		return
	case !started:
		s.met.batch(protoSnowflake, outcomeReplayed)
	default:
		j.compress = s.cfg.Shared == nil && acceptsGzip(h.Get("Accept-Encoding"))
		if log.Enabled(c, slog.LevelDebug) {
			// Parsed only here: nothing else reads the call's headers.
			log.Debug("batch headers", "call", parseCall(h).logValue(s.cfg.AuthHeader))
		}
		go s.run(j, b, snowflakeProto, log, start)
	}
	s.await(c, j)
}

// refuse answers a batch the engine did not take.
func (s *Server) refuse(c *gin.Context, log *slog.Logger, err error) {
	switch {
	case errors.Is(err, errDraining):
		s.reject(c, snowflakeProto, log, http.StatusServiceUnavailable, outcomeDraining, err)
	case errors.Is(err, errReused):
		s.reject(c, snowflakeProto, log, http.StatusConflict, outcomeRejected, err)
	case errors.Is(err, errOverloaded):
		s.reject(c, snowflakeProto, log, http.StatusTooManyRequests, outcomeOverloaded,
			fmt.Errorf("overloaded: over %d rows in flight; retry later", s.cfg.MaxInflightRows))
	case errors.Is(err, errPending):
		s.accepted(c)
	case errors.Is(err, errElsewhere):
		s.met.batch(protoSnowflake, outcomeFailed)
		writeText(c, http.StatusServiceUnavailable, err.Error())
	default: // errGone
		// Nobody reads this; it only keeps gin from sending an empty 200.
		writeText(c, http.StatusServiceUnavailable, "client went away")
	}
}

// decode reads and parses a new batch.
func (s *Server) decode(c *gin.Context, start time.Time) (*batch, int, error) {
	return readRequest(s, c, start, "lower MAX_BATCH_ROWS", func(body []byte) (*batch, int, error) {
		return parseBatch(body, locationArgs)
	})
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

// await answers from j once the engine has its answer: 202 when it went
// asynchronous, and if the client leaves the job goes on and keeps its
// answer for Snowflake's retry.
func (s *Server) await(c *gin.Context, j *job) {
	defer s.batches.Release(j)
	switch a, st := s.batches.Await(c.Request.Context(), j); st {
	case awaitDone:
		s.writeAnswer(c, snowflakeProto, a)
	case awaitPending:
		s.accepted(c)
	default:
		// Nobody reads this; it only keeps gin from sending an empty 200.
		writeText(c, http.StatusServiceUnavailable, "client went away")
	}
}

// poll answers Snowflake's GET for an asynchronous batch: 202 while it runs,
// its answer when done, 404 if the batch id is unknown here (and, with a
// shared store, to every replica).
func (s *Server) poll(c *gin.Context) {
	id := c.Request.Header.Get(hdrBatchID)
	if id == "" {
		writeText(c, http.StatusBadRequest, "GET needs the "+hdrBatchID+" header: it only polls an asynchronous batch")
		return
	}
	a, st, j := s.batches.Poll(c.Request.Context(), jobKey(s.cfg.Path, id))
	defer s.batches.Release(j)
	switch {
	case st == awaitDone:
		s.writeAnswer(c, snowflakeProto, a)
	case st == awaitPending:
		c.Status(http.StatusAccepted)
		c.Writer.WriteHeaderNow()
	case s.cfg.Shared != nil:
		writeText(c, http.StatusNotFound, "unknown batch id "+quoteID(id)+
			": never posted to any replica, or its answer expired (see --result-ttl)")
	default:
		writeText(c, http.StatusNotFound, "unknown batch id "+quoteID(id)+
			": never posted here, or its answer expired (see --result-ttl); with several replicas, route a query's polls to one replica")
	}
}
