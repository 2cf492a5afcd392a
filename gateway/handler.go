package gateway

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/klauspost/compress/gzip"
)

// newEngine routes each protocol's function and the operational endpoints.
// The router panics on paths that conflict; CheckRoutes refuses the ones
// known to, and anything else is an error here, not a crash.
func (s *Server) newEngine() (e *gin.Engine, err error) {
	defer func() {
		if v := recover(); v != nil {
			e, err = nil, fmt.Errorf("routes conflict: %v", v)
		}
	}()
	e = gin.New()
	e.HandleMethodNotAllowed = true
	e.Use(s.recoverPanic)
	e.GET("/healthz", func(c *gin.Context) { writeText(c, http.StatusOK, "ok") })
	e.GET("/readyz", s.ready)
	if s.cfg.Metrics != nil {
		e.GET("/metrics", gin.WrapH(s.cfg.Metrics))
	}
	if !s.cfg.NoSnowflake {
		sf := s.auth(snowflakeProto)
		e.POST(s.cfg.Path, sf, s.post)
		e.GET(s.cfg.Path, sf, s.poll)
	}
	if s.cfg.BigQueryPath != "" {
		e.POST(s.cfg.BigQueryPath, s.postBigQuery)
	}
	if s.cfg.RESTPrefix != "" {
		s.routeREST(e)
	}
	e.NoRoute(func(c *gin.Context) {
		writeText(c, http.StatusNotFound, "no such path: "+truncate(c.Request.URL.Path, 64))
	})
	e.NoMethod(func(c *gin.Context) { writeText(c, http.StatusMethodNotAllowed, "method not allowed") })
	return e, nil
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
	if s.batches.draining() {
		writeText(c, http.StatusServiceUnavailable, "draining")
		return
	}
	writeText(c, http.StatusOK, "ready")
}

// auth checks the shared secret in constant time on p's routes. Both
// sides are hashed first so neither the content nor the length of the
// secret leaks.
func (s *Server) auth(p *protocol) gin.HandlerFunc {
	return func(c *gin.Context) {
		if s.cfg.AuthHeader == "" {
			return
		}
		got := sum256(c.Request.Header.Get(s.cfg.AuthHeader))
		if subtle.ConstantTimeCompare(got[:], s.authSum[:]) != 1 {
			s.met.batch(p.name, outcomeUnauthorized)
			s.logger(p, c.Request.Header).Warn("batch", "protocol", p.name, "outcome", outcomeUnauthorized, "status", http.StatusUnauthorized)
			p.writeError(c, http.StatusUnauthorized, "missing or wrong "+s.cfg.AuthHeader+" header")
			c.Abort()
		}
	}
}

func sum256(s string) [32]byte { return sha256.Sum256([]byte(s)) }

// reject answers a batch of protocol p that will not run, with its
// summary line.
func (s *Server) reject(c *gin.Context, p *protocol, log *slog.Logger, status int, outcome string, err error) {
	s.met.batch(p.name, outcome)
	log.Info("batch", "protocol", p.name, "outcome", outcome, "status", status, "reason", err.Error())
	p.writeError(c, status, err.Error())
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

// writeAnswer sends a finished batch's answer in p's form. One kept
// gzipped goes out as it is to a client that accepts gzip, with its
// length, and inflated again to one that does not.
func (s *Server) writeAnswer(c *gin.Context, p *protocol, a answer) {
	if a.status != http.StatusOK && p.errorBody != nil {
		p.writeError(c, a.status, strings.TrimSuffix(string(a.body), "\n"))
		return
	}
	if !a.gzipped {
		s.write(c, a.status, a.body)
		return
	}
	if !acceptsGzip(c.Request.Header.Get("Accept-Encoding")) {
		// A batch first sent with gzip accepted, now without: only a
		// hand-made retry does that.
		plain, err := gunzip(a.body)
		if err != nil {
			writeText(c, http.StatusInternalServerError, "internal error: "+err.Error())
			return
		}
		s.write(c, a.status, plain)
		return
	}
	h := c.Writer.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Encoding", "gzip")
	h.Set("Vary", "Accept-Encoding")
	h.Set("Content-Length", strconv.Itoa(len(a.body)))
	c.Writer.WriteHeader(a.status)
	_, _ = c.Writer.Write(a.body) // the client left; nothing to do
}

// accepted answers 202 for a batch that goes on running: its answer is
// polled for.
func (s *Server) accepted(c *gin.Context) {
	s.met.batch(protoSnowflake, outcomeAccepted)
	c.Status(http.StatusAccepted)
	c.Writer.WriteHeaderNow()
}

// gzipAnswer compresses an answer (gzipFast, deflate.go) into a buffer
// from Server.gzipped, where it goes back once its job is dropped
// (jobTable.giveBack): a hot gateway reuses the same few hundred buffers
// instead of writing every answer on fresh memory, whose page faults cost
// about a fifth as much as the compression (profiled). A buffer over a quarter too big
// for the answer is not kept: the answer is copied out of it into one of
// its own size (pooled false), so a kept answer costs at most 1.25 times
// its bytes.
func (s *Server) gzipAnswer(body []byte, spans []span, sparse bool) (gz []byte, pooled bool) {
	var out []byte
	if p, ok := s.gzipped.Get().(*[]byte); ok {
		out = (*p)[:0]
	} else {
		plain := len(body)
		if sparse {
			for _, sp := range spans {
				plain += len(sp.js)
			}
		}
		out = make([]byte, 0, plain*5/8+4096) // answers shrink to about 0.57
	}
	out = gzipFast(body, spans, sparse, out)
	if cap(out) <= len(out)+len(out)/4 {
		return out, true
	}
	gz = make([]byte, len(out))
	copy(gz, out)
	s.recycleGzipped(out)
	return gz, false
}

// recycleGzipped gives back a gzipAnswer buffer nothing refers to.
func (s *Server) recycleGzipped(buf []byte) { putBuffer(&s.gzipped, buf) }

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
