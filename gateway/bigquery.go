package gateway

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/snowgate/snowgate/jsontext"
)

// The BigQuery remote-function adapter: resolve_location over BigQuery's
// envelope ({"requestId", "caller", "userDefinedContext", "calls":
// [[id], ...]} in, {"replies": [value, ...]} out), each reply the same value
// Snowflake gets. BigQuery never polls, so every request waits for its
// answer. It retries 408, 429, 500, 503 and 504 and may re-send a request
// that succeeded: a request is kept by its requestId and a digest of its
// calls, and only overload, draining and provider failures (with
// --on-row-error=fail) answer a status it retries; its own mistakes get 4xx.

// maxBigQueryError bounds an {"errorMessage": ...} answer: BigQuery shows the
// SQL user about 1 KB of it.
const maxBigQueryError = 1023

// msgNoBigQueryCalls answers a body without BigQuery's calls.
const msgNoBigQueryCalls = `request body must be a JSON object with a "calls" array of argument arrays`

// bigqueryProto is {"replies":[value,...]}: no row numbers, replies in the
// order of the calls. Its logIDs is nil: BigQuery's IDs are in the body, so
// bigqueryLogger adds them once it is decoded.
var bigqueryProto = &protocol{
	name:       protoBigQuery,
	open:       func(buf []byte, _ int) []byte { return append(buf, `{"replies":[`...) },
	close:      "]}",
	rowWord:    "call",
	sizeOption: "max_batching_rows = %d in the function's OPTIONS",
	errorBody:  bigqueryError,
}

// bigqueryError is {"errorMessage": msg}, msg shortened until the whole
// fits maxBigQueryError (escapes may make it up to six times longer).
func bigqueryError(msg string) []byte {
	for n := min(len(msg), maxBigQueryError); ; n /= 2 {
		buf := append(make([]byte, 0, 24+n), `{"errorMessage":`...)
		buf = jsontext.AppendString(buf, truncate(msg, n), false)
		buf = append(buf, '}')
		if len(buf) <= maxBigQueryError || n == 0 {
			return buf
		}
	}
}

// bigqueryRequest is the part of BigQuery's envelope snowgate reads; other
// fields (sessionUser, and any BigQuery adds later) are ignored.
type bigqueryRequest struct {
	RequestID string `json:"requestId"`
	Caller    string `json:"caller"`
	// Context is the function's user_defined_context: read only for the
	// shared secret.
	Context json.RawMessage `json:"userDefinedContext"`
	Calls   json.RawMessage `json:"calls"`
}

// postBigQuery answers one BigQuery request. The route has no auth
// middleware: BigQuery sends no custom headers, so the secret may come in
// the body, and the check waits for it to be decoded.
func (s *Server) postBigQuery(c *gin.Context) {
	start := time.Now()
	req, status, err := s.readBigQuery(c, start)
	log := s.bigqueryLogger(req)
	// A body that is not the envelope is refused before the auth check,
	// which needs the envelope: the refusal tells a stranger nothing, and a
	// 401 would hide the real reason (a body over --max-body, say).
	if err != nil {
		s.reject(c, bigqueryProto, log, status, outcomeRejected, err)
		return
	}
	if !s.bigqueryAuthorized(c.Request.Header, req) {
		s.met.batch(protoBigQuery, outcomeUnauthorized)
		log.Warn("batch", "protocol", protoBigQuery, "outcome", outcomeUnauthorized, "status", http.StatusUnauthorized)
		bigqueryProto.writeError(c, http.StatusUnauthorized, fmt.Sprintf(
			"missing or wrong secret: set user_defined_context = [(%q, \"<secret>\")] in the function's OPTIONS", s.cfg.AuthHeader))
		return
	}
	b, err := parseBigQueryCalls(req.Calls)
	if err != nil {
		s.reject(c, bigqueryProto, log, http.StatusBadRequest, outcomeRejected, err)
		return
	}
	j, started, err := s.batches.Begin(c.Request.Context(), bigquerySpec(s.cfg.BigQueryPath, req.RequestID, b), log)
	switch {
	case err != nil:
		s.refuseBigQuery(c, log, err)
		return
	case !started:
		s.met.batch(protoBigQuery, outcomeReplayed)
	default:
		j.compress = s.cfg.Shared == nil && acceptsGzip(c.Request.Header.Get("Accept-Encoding"))
		go s.run(j, b, bigqueryProto, log, start)
	}
	defer s.batches.Release(j)
	if a, st := s.batches.Await(c.Request.Context(), j); st == awaitDone {
		s.writeAnswer(c, bigqueryProto, a)
		return
	}
	// Gone: nobody reads this; it only keeps gin from sending an empty 200.
	// (Pending cannot happen: the spec is not async.)
	bigqueryProto.writeError(c, http.StatusServiceUnavailable, "client went away")
}

// bigquerySpec is the engine's view of a request. The key is the requestId
// with a digest of the calls, since whether BigQuery keeps the requestId on
// a retry is not documented; a request without one is never replayed. A
// one-row request (what BigQuery sends under CASE, IF and MERGE ... WHEN)
// is not kept either: answering it again from the cache costs less than
// keeping it, and a flood of them would push the bigger batches' answers
// out of the kept set (MaxResults). BigQuery has no polls: never async.
func bigquerySpec(path, requestID string, b *batch) jobSpec {
	spec := jobSpec{rows: b.len()}
	if requestID == "" || b.len() <= 1 {
		return spec
	}
	d := bigqueryDigest(b)
	spec.key = jobKey(path, requestID+":"+hex.EncodeToString(d[:16]))
	spec.digest = binary.LittleEndian.Uint64(d[:8]) | 1 // never 0, "not known"
	return spec
}

// bigqueryDigest identifies a request's calls by each ID's kind and text (and
// a bad ID's reason, which its answer may name). It is a SHA-256, not
// batch.digest: a key must be the same on every replica sharing a
// JobStore, and batch.digest is seeded per process.
func bigqueryDigest(b *batch) [sha256.Size]byte {
	h := sha256.New()
	// Written in chunks: a Write per ID costs more than the hashing.
	buf := make([]byte, 0, 8<<10)
	for i, id := range b.ids {
		if b.kinds[i] == idBad {
			id = b.bad[i].Error()
		}
		buf = append(buf, byte(b.kinds[i]))
		buf = binary.AppendUvarint(buf, uint64(len(id)))
		buf = append(buf, id...)
		if len(buf) >= 8<<10 {
			h.Write(buf)
			buf = buf[:0]
		}
	}
	h.Write(buf)
	var d [sha256.Size]byte
	h.Sum(d[:0])
	return d
}

// refuseBigQuery answers a request the engine did not take.
func (s *Server) refuseBigQuery(c *gin.Context, log *slog.Logger, err error) {
	switch {
	case errors.Is(err, errOverloaded):
		s.reject(c, bigqueryProto, log, http.StatusTooManyRequests, outcomeOverloaded,
			fmt.Errorf("overloaded: over %d rows in flight; BigQuery retries", s.cfg.MaxInflightRows))
	case errors.Is(err, errDraining):
		s.reject(c, bigqueryProto, log, http.StatusServiceUnavailable, outcomeDraining, err)
	case errors.Is(err, errElsewhere), errors.Is(err, errPending):
		// errPending comes with --async from the shared store's wait, which
		// knows no protocol; BigQuery cannot poll, so it retries instead.
		s.reject(c, bigqueryProto, log, http.StatusServiceUnavailable, outcomeFailed,
			errors.New("request still running on another replica; BigQuery retries"))
	default:
		// errGone (nobody reads this), or errReused, which cannot happen:
		// the digest of the calls is part of the key.
		bigqueryProto.writeError(c, http.StatusServiceUnavailable, err.Error())
	}
}

// bigqueryLogger is the base logger with the request's IDs, once known.
func (s *Server) bigqueryLogger(req *bigqueryRequest) *slog.Logger {
	if req == nil {
		return s.log
	}
	return s.log.With("request_id", truncate(req.RequestID, 128), "caller", truncate(req.Caller, 256))
}

// readBigQuery reads and parses a request's envelope. The calls are
// parsed later, after the auth check that needs the envelope.
func (s *Server) readBigQuery(c *gin.Context, start time.Time) (*bigqueryRequest, int, error) {
	return readRequest(s, c, start, "lower max_batching_rows in the function's OPTIONS", func(body []byte) (*bigqueryRequest, int, error) {
		req, err := parseBigQuery(body)
		if err != nil {
			return nil, http.StatusBadRequest, err
		}
		return req, 0, nil
	})
}

// parseBigQuery decodes the envelope strictly: one JSON object, nothing
// after it, requestId and caller strings if present. Its fields are copies:
// body may be reused.
func parseBigQuery(body []byte) (*bigqueryRequest, error) {
	req := &bigqueryRequest{}
	err := json.Unmarshal(body, req)
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case err == nil:
		return req, nil
	case errors.As(err, &syn):
		return nil, fmt.Errorf("invalid JSON at byte %d: %s", syn.Offset, syn.Error())
	case errors.As(err, &typ) && typ.Field != "":
		return nil, fmt.Errorf("%s must be a string, got a %s", typ.Field, typ.Value)
	case errors.As(err, &typ):
		return nil, errors.New(msgNoBigQueryCalls)
	}
	return nil, fmt.Errorf("invalid JSON: %w", err)
}

// parseBigQueryCalls turns the calls into a batch whose row numbers are the call
// indexes. Each call must have exactly resolve_location's one argument; the
// argument is read by parseID, like Snowflake's (an INT64 arrives as a
// number, or beyond 2^53 as a string: both are its exact text).
func parseBigQueryCalls(raw json.RawMessage) (*batch, error) {
	if len(raw) == 0 || raw[0] != '[' {
		return nil, errors.New(msgNoBigQueryCalls)
	}
	if b, ok := scanBigQueryCalls(raw); ok {
		return b, nil
	}
	return parseBigQueryCallsSlow(raw)
}

// parseBigQueryCallsSlow is parseBigQueryCalls through encoding/json: any valid JSON, and a
// precise one-line reason for everything else.
func parseBigQueryCallsSlow(raw json.RawMessage) (*batch, error) {
	var calls []json.RawMessage
	if err := json.Unmarshal(raw, &calls); err != nil {
		return nil, fmt.Errorf("invalid calls array: %w", err)
	}
	b := newBatch(len(calls))
	var args []json.RawMessage
	for i, call := range calls {
		if call[0] != '[' {
			return nil, fmt.Errorf("call %d is not an array of arguments", i)
		}
		args = args[:0]
		if err := json.Unmarshal(call, &args); err != nil {
			return nil, fmt.Errorf("call %d: %w", i, err)
		}
		if len(args) != locationArgs {
			return nil, fmt.Errorf("call %d has %d arguments, want %d: resolve_location(id) takes one; check the function's signature",
				i, len(args), locationArgs)
		}
		id, kind, err := parseID(args[0])
		b.add(int64(i), id, kind, err)
	}
	return b, nil
}

// scanBigQueryCalls decodes the common shape, [["id"],[null],[123],...] with plain
// ASCII strings and unsigned integers, without reflection. Like scanFast it
// returns false for anything else, leaving parseBigQueryCalls' encoding/json path
// to decide, so it needs to be right only about what it accepts.
func scanBigQueryCalls(raw []byte) (*batch, bool) {
	s := scanner{buf: raw}
	if !s.lit('[') {
		return nil, false
	}
	b := newBatch(len(raw)/12 + 1) // a call of a short ID takes about 12 bytes
	if s.peek() == ']' {
		s.pos++
	} else {
		for i := int64(0); ; i++ {
			if !s.lit('[') || !scanBigQueryArg(&s, b, i) || !s.lit(']') {
				return nil, false
			}
			if c := s.next(); c == ']' {
				break
			} else if c != ',' {
				return nil, false
			}
		}
	}
	s.skipSpace()
	return b, s.pos == len(s.buf)
}

// scanBigQueryArg scans one plain string, null, or integer without sign, fraction
// or exponent (the text parseID keeps for a number) into b as row i.
func scanBigQueryArg(s *scanner, b *batch, i int64) bool {
	switch c := s.peek(); {
	case c == '"':
		s.pos++
		start := s.pos
		// Escapes, control characters and non-ASCII need encoding/json.
		for s.pos < len(s.buf) && s.buf[s.pos] != '"' {
			if c := s.buf[s.pos]; c == '\\' || c < 0x20 || c >= 0x7f {
				return false
			}
			s.pos++
		}
		if s.pos == len(s.buf) {
			return false
		}
		b.add(i, string(s.buf[start:s.pos]), idText, nil)
		s.pos++
	case c == 'n':
		if !s.word("null") {
			return false
		}
		b.add(i, "", idNull, nil)
	case c >= '0' && c <= '9':
		start := s.pos
		for s.pos < len(s.buf) && s.buf[s.pos] >= '0' && s.buf[s.pos] <= '9' {
			s.pos++
		}
		if s.pos-start > 1 && s.buf[start] == '0' {
			return false // not JSON
		}
		b.add(i, string(s.buf[start:s.pos]), idText, nil)
	default:
		return false
	}
	return true
}

// bigqueryAuthorized reports whether a request carries the shared secret,
// when one is set: in the auth header (a proxy in front may add it) or, as
// BigQuery sends no custom headers, as the value of the key of that name in
// userDefinedContext. Both sides are hashed first, as in auth.
func (s *Server) bigqueryAuthorized(h http.Header, req *bigqueryRequest) bool {
	if s.cfg.AuthHeader == "" {
		return true
	}
	header := sum256(h.Get(s.cfg.AuthHeader))
	inContext := sum256(bigqueryContextValue(req.Context, s.cfg.AuthHeader))
	return subtle.ConstantTimeCompare(header[:], s.authSum[:])|
		subtle.ConstantTimeCompare(inContext[:], s.authSum[:]) == 1
}

// bigqueryContextValue is userDefinedContext's value for key, matched as a header
// name is (any case); "" when there is none.
func bigqueryContextValue(raw json.RawMessage, key string) string {
	var m map[string]string
	if len(raw) == 0 || json.Unmarshal(raw, &m) != nil {
		return ""
	}
	if v, ok := m[key]; ok {
		return v
	}
	for k, v := range m {
		if strings.EqualFold(k, key) {
			return v
		}
	}
	return ""
}
