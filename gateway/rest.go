package gateway

import (
	"bytes"
	_ "embed" // openapi.json
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"runtime/debug"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/snowgate/snowgate/cache"
	"github.com/snowgate/snowgate/jsontext"
	"github.com/snowgate/snowgate/locapi"
)

// The plain REST API, under Config.RESTPrefix:
//
//	GET  {prefix}/locations/{id}      the VARIANT object, or a JSON error
//	POST {prefix}/locations:batchGet  {"ids": [...]} -> {"locations": [...]}
//	GET  {prefix}/openapi.json        openapi.json, public
//
// Both lookups are batches of the engine (batches.go: in-flight cap, drain,
// BatchTimeout) with no key, so they are synchronous and never replayed.
// They cannot go through s.run: an entry of a batchGet answer wraps the
// row's value with its id, a found flag and an error, which depend on the
// row's outcome, and a protocol's envelope only puts row numbers around it. So this
// file has its own encoders, which call the shared appendOutcome and
// appendRowError for the value itself, and its own run, which writes the
// same metrics and summary line as s.run.

// maxRESTIDs caps the ids of one batchGet request.
const maxRESTIDs = 10_000

//go:embed openapi.json
var openAPIDoc []byte

// restProto is the REST envelope: {"locations":[entry,...]}, and errors
// in Google API style, {"error":{"code":404,"message":"...","status":"NOT_FOUND"}}.
var restProto = &protocol{
	name:       protoREST,
	open:       func(buf []byte, _ int) []byte { return append(buf, `{"locations":[`...) },
	close:      "]}",
	rowWord:    "ids entry",
	sizeOption: "at most %d ids per batchGet request",
	// errorBody has no status argument. Its one caller with restProto is
	// s.auth, whose answer is 401; every other REST error goes through
	// restError, which knows its status.
	errorBody: func(msg string) []byte { return restErrorBody(http.StatusUnauthorized, msg) },
}

// errNullID answers a null in "ids": unlike a SQL NULL argument, a null
// in a list the caller wrote is a mistake, answered as a bad entry.
var errNullID = fmt.Errorf("%w: null is not an id", locapi.ErrInvalidID)

// restRoute is one operation of the API. path is under the prefix; a
// segment "{id}" matches any one path segment.
type restRoute struct {
	method, path string
}

// restRoutes is every REST operation; openapi.json must list exactly these
// (a test holds them together).
var restRoutes = []restRoute{
	{http.MethodGet, "/openapi.json"},
	{http.MethodGet, "/locations/{id}"},
	{http.MethodPost, "/locations:batchGet"},
}

// routeREST adds the REST API under Config.RESTPrefix. One catch-all route
// dispatches by the escaped path: gin routes on the decoded path, where an
// ID holding %2F would look like two segments, and a literal ':' would be
// a parameter.
func (s *Server) routeREST(e *gin.Engine) {
	prefix := strings.TrimSuffix(s.cfg.RESTPrefix, "/")
	doc, docErr := openAPIFor(prefix, s.cfg.AuthHeader)
	auth := s.auth(restProto)
	e.Any(prefix+"/*rest", func(c *gin.Context) {
		rest, ok := strings.CutPrefix(c.Request.URL.EscapedPath(), prefix)
		route, rawID, allow := matchREST(rest, c.Request.Method)
		switch {
		case !ok || (route == nil && allow == ""):
			restError(c, http.StatusNotFound, "no such path: "+truncate(c.Request.URL.Path, 64))
		case route == nil:
			c.Header("Allow", allow)
			restError(c, http.StatusMethodNotAllowed, "method "+truncate(c.Request.Method, 16)+" not allowed here: use "+allow)
		case route.path == "/openapi.json" && docErr != nil:
			restError(c, http.StatusInternalServerError, docErr.Error())
		case route.path == "/openapi.json":
			c.Data(http.StatusOK, "application/json", doc)
		default:
			if auth(c); c.IsAborted() {
				return
			}
			if route.path == "/locations/{id}" {
				s.getLocation(c, rawID)
				return
			}
			s.batchGet(c)
		}
	})
}

// matchREST finds the route for an escaped path under the prefix and a
// method. When the path is known but not for method, route is nil and
// allow lists the methods it takes; when it is unknown both are empty.
func matchREST(rest, method string) (route *restRoute, rawID, allow string) {
	segs := strings.Split(rest, "/")
	for i := range restRoutes {
		r := &restRoutes[i]
		id, ok := matchPath(strings.Split(r.path, "/"), segs)
		switch {
		case !ok:
			continue
		case r.method == method:
			return r, id, ""
		case allow == "":
			allow = r.method
		default:
			allow += ", " + r.method
		}
	}
	return nil, "", allow
}

// matchPath matches a route's segments against a request's escaped ones,
// returning the escaped segment that "{id}" matched. Literal segments
// compare decoded, so "locations%3AbatchGet" is "locations:batchGet".
func matchPath(tmpl, segs []string) (string, bool) {
	if len(tmpl) != len(segs) {
		return "", false
	}
	id := ""
	for i, t := range tmpl {
		if t == "{id}" {
			id = segs[i]
			continue
		}
		if dec, err := url.PathUnescape(segs[i]); err != nil || dec != t {
			return "", false
		}
	}
	return id, true
}

// openAPIFor is the document as served: its server URL is the prefix and
// its API key header the one --auth-header names (with none, no operation
// asks for a key).
func openAPIFor(prefix, authHeader string) ([]byte, error) {
	var doc map[string]any
	if err := json.Unmarshal(openAPIDoc, &doc); err != nil {
		return nil, fmt.Errorf("openapi.json: %w", err)
	}
	doc["servers"] = []any{map[string]any{"url": prefix}}
	if authHeader == "" {
		doc["security"] = []any{}
	} else if comp, ok := doc["components"].(map[string]any); ok {
		if schemes, ok := comp["securitySchemes"].(map[string]any); ok {
			if key, ok := schemes["apiKey"].(map[string]any); ok {
				key["name"] = authHeader
			}
		}
	}
	out, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("openapi.json: %w", err)
	}
	return append(out, '\n'), nil
}

// getLocation answers GET {prefix}/locations/{id}: a batch of one row.
func (s *Server) getLocation(c *gin.Context, rawID string) {
	start := time.Now()
	log := s.logger(restProto, c.Request.Header)
	id, err := url.PathUnescape(rawID)
	if err != nil { // EscapedPath gives valid escapes; this guards any other caller
		s.restReject(c, log, http.StatusBadRequest, outcomeRejected,
			fmt.Errorf("id path segment %q is not percent-encoded correctly", truncate(rawID, 64)))
		return
	}
	b := newBatch(1)
	b.add(0, id, idText, nil)
	s.startREST(c, b, log, start, s.encodeLocation)
}

// batchGet answers POST {prefix}/locations:batchGet.
func (s *Server) batchGet(c *gin.Context) {
	start := time.Now()
	log := s.logger(restProto, c.Request.Header)
	b, status, err := s.decodeIDs(c, start)
	if err != nil {
		s.restReject(c, log, status, outcomeRejected, err)
		return
	}
	s.startREST(c, b, log, start, s.encodeLocations)
}

// decodeIDs reads a batchGet body as every protocol's is read.
func (s *Server) decodeIDs(c *gin.Context, start time.Time) (*batch, int, error) {
	return readRequest(s, c, start, "send fewer ids per request", func(body []byte) (*batch, int, error) {
		b, err := parseIDs(body)
		if err != nil {
			return nil, http.StatusBadRequest, err
		}
		return b, 0, nil
	})
}

// parseIDs decodes {"ids": [...]} strictly into a batch whose row numbers
// are the positions in ids. Each entry is read by parseID, like every
// protocol's ID argument; a null is a bad entry (errNullID). The batch
// owns its strings: body may be reused.
func parseIDs(body []byte) (*batch, error) {
	raw, err := idsField(body)
	if err != nil {
		return nil, err
	}
	if len(raw) == 0 || raw[0] != '[' {
		return nil, errors.New(`"ids" must be an array of strings or numbers`)
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(raw, &elems); err != nil {
		return nil, fmt.Errorf(`invalid "ids" array: %w`, err)
	}
	if len(elems) > maxRESTIDs {
		return nil, fmt.Errorf(`"ids" has %d entries, over the limit of %d per request: split the request`, len(elems), maxRESTIDs)
	}
	b := newBatch(len(elems))
	for i, e := range elems {
		if id, ok := plainString(e); ok {
			b.add(int64(i), id, idText, nil)
			continue
		}
		id, kind, err := parseID(e)
		if kind == idNull {
			kind, err = idBad, errNullID
		}
		b.add(int64(i), id, kind, err)
	}
	return b, nil
}

// plainString reads a JSON string without escapes or control characters,
// in valid UTF-8: the common ID, whose text is its bytes. parseID would
// answer it the same, through encoding/json at about three times the
// cost; anything else goes there.
func plainString(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return "", false
	}
	in := raw[1 : len(raw)-1]
	for _, c := range in {
		if c < 0x20 || c == '\\' || c == '"' {
			return "", false
		}
	}
	if !utf8.Valid(in) {
		return "", false
	}
	return string(in), true
}

// msgNoIDs is the answer to a body that is not {"ids": [...]}.
const msgNoIDs = `the body must be a JSON object {"ids": [...]}`

// idsField returns the raw value of the body's one field, "ids". An
// unknown or repeated field is refused, not ignored: it is likely a typo
// whose ids would otherwise go unanswered.
func idsField(body []byte) (json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, jsonErr(err, msgNoIDs)
	}
	var ids json.RawMessage
	seen := false
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, jsonErr(err, msgNoIDs)
		}
		switch key, _ := tok.(string); {
		case key != "ids":
			return nil, fmt.Errorf("unknown field %q: %s", truncate(key, 32), msgNoIDs)
		case seen:
			return nil, errors.New(`field "ids" given twice`)
		}
		seen = true
		if err := dec.Decode(&ids); err != nil {
			return nil, jsonErr(err, msgNoIDs)
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, jsonErr(err, msgNoIDs)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("invalid JSON: data after the top-level object")
	}
	if !seen {
		return nil, errors.New(`missing field "ids": ` + msgNoIDs)
	}
	return ids, nil
}

// jsonErr words a decoder error: where the syntax broke, else what.
func jsonErr(err error, what string) error {
	var syn *json.SyntaxError
	switch {
	case errors.As(err, &syn):
		return fmt.Errorf("invalid JSON at byte %d: %s", syn.Offset, syn.Error())
	case err == nil, errors.Is(err, io.EOF):
		return errors.New(what)
	}
	return fmt.Errorf("invalid JSON: %w", err)
}

// restEncoder lays out the answer to a resolved batch.
type restEncoder func(b *batch, outs []cache.Outcome) result

// startREST hands a decoded batch to the engine and answers from it.
func (s *Server) startREST(c *gin.Context, b *batch, log *slog.Logger, start time.Time, enc restEncoder) {
	j, started, err := s.batches.Begin(c.Request.Context(), jobSpec{rows: b.len()}, log)
	if err != nil {
		s.refuseREST(c, log, err)
		return
	}
	if started { // always, for a batch without a key
		go s.runREST(j, b, log, start, enc)
	}
	defer s.batches.Release(j)
	switch a, st := s.batches.Await(c.Request.Context(), j); {
	case st != awaitDone:
		// The client left; nobody reads this.
		restError(c, http.StatusServiceUnavailable, "client went away")
	case a.status == http.StatusOK:
		s.writeAnswer(c, restProto, a)
	default:
		restError(c, a.status, strings.TrimSuffix(string(a.body), "\n"))
	}
}

// refuseREST answers a batch the engine did not take. A batch without a
// key can only meet the drain and the in-flight cap.
func (s *Server) refuseREST(c *gin.Context, log *slog.Logger, err error) {
	switch {
	case errors.Is(err, errDraining):
		s.restReject(c, log, http.StatusServiceUnavailable, outcomeDraining, err)
	case errors.Is(err, errOverloaded):
		s.restReject(c, log, http.StatusTooManyRequests, outcomeOverloaded,
			fmt.Errorf("overloaded: over %d rows in flight; retry later", s.cfg.MaxInflightRows))
	case errors.Is(err, errGone):
		restError(c, http.StatusServiceUnavailable, "client went away")
	default:
		s.restReject(c, log, http.StatusServiceUnavailable, outcomeFailed, err)
	}
}

// restReject is s.reject in the REST error form, which needs the status.
func (s *Server) restReject(c *gin.Context, log *slog.Logger, status int, outcome string, err error) {
	s.met.batch(protoREST, outcome)
	log.Info("batch", "protocol", protoREST, "outcome", outcome, "status", status, "reason", err.Error())
	restError(c, status, err.Error())
}

// runREST is s.run with enc for the answer: the job resolved and encoded,
// its metrics and summary line written, the answer handed to the engine.
func (s *Server) runREST(j *job, b *batch, log *slog.Logger, start time.Time, enc restEncoder) {
	ctx, cancel := s.batches.Context(j)
	defer cancel()
	res := func() (res result) {
		defer func() {
			if v := recover(); v != nil {
				log.Error("panic resolving batch", "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
				res = textResult(http.StatusInternalServerError, outcomeFailed, "internal error")
			}
		}()
		outs, st, err := s.lookupText(ctx, b)
		if err != nil {
			return textResult(http.StatusInternalServerError, outcomeFailed, err.Error())
		}
		res = enc(b, outs)
		res.stats = st
		return res
	}()
	d := time.Since(start)
	s.met.batch(protoREST, res.outcome)
	s.met.duration.WithLabelValues(protoREST).Observe(d.Seconds())
	s.met.observeRows(protoREST, res.rows)
	s.met.observeLookups(protoREST, res.stats)
	s.logSummary(log, b, restProto, res, d, false)
	a := answer{status: res.status, body: res.body}
	if res.pooled {
		a.free = s.recycle
	}
	s.batches.Finish(j, a)
}

// encodeLocations is the batchGet answer: one entry per input id, in
// order, {"id":..., "found":..., "location": <the row's value>} plus
// "error" for a row without one. location is exactly the value
// Snowflake's function answers for the row (found records copied from
// their cached encoding), so --not-found and --on-row-error shape it the
// same way.
func (s *Server) encodeLocations(b *batch, outs []cache.Outcome) result {
	// Each entry adds about 45 bytes of keys to the value.
	buf := s.answerBuffer(answerSize(b, outs, restProto) + b.len()*48)
	buf = restProto.open(buf, b.len())
	var rc rowCounts
	var failRow int64
	var failErr error // the first row error, with --on-row-error=fail
	k := 0
	for i, row := range b.rows {
		if i > 0 {
			buf = append(buf, ',')
		}
		var o *cache.Outcome
		if b.kinds[i] == idText {
			o = &outs[k]
			k++
		}
		var rowErr error
		buf, rowErr = s.appendEntry(buf, b, i, o, &rc)
		if rowErr != nil && s.cfg.OnRowError == RowErrorFail && failErr == nil {
			failRow, failErr = row, rowErr
		}
	}
	buf = append(buf, restProto.close...)
	return s.settleAnswer(buf, b.len(), rc, failRow, failErr)
}

// appendEntry appends row i's entry; o is its outcome, nil for a bad id.
func (s *Server) appendEntry(buf []byte, b *batch, i int, o *cache.Outcome, rc *rowCounts) ([]byte, error) {
	buf = append(buf, `{"id":`...)
	if b.kinds[i] == idText {
		buf = jsontext.AppendString(buf, b.ids[i], false)
	} else {
		buf = append(buf, "null"...)
	}
	found := o != nil && o.Err == nil && o.Entry != nil && o.Status == locapi.Found && len(o.JSON) > 0
	buf = append(buf, `,"found":`...)
	buf = strconv.AppendBool(buf, found)
	buf = append(buf, `,"location":`...)
	rowErr := b.bad[i]
	if o != nil {
		buf, rowErr = s.appendOutcome(buf, b.ids[i], o, rc)
	}
	if rowErr != nil {
		buf = s.appendRowError(buf, rowErr, rc)
		buf = append(buf, `,"error":`...)
		buf = jsontext.AppendString(buf, rowReason(rowErr), false)
	}
	return append(buf, '}'), rowErr
}

// settleAnswer ends an encoded batch as encodeAnswer does: refused as a
// whole with --on-row-error=fail or over the response limit, else 200.
func (s *Server) settleAnswer(buf []byte, rows int, rc rowCounts, failRow int64, failErr error) result {
	var res result
	switch {
	case failErr != nil:
		s.recycle(buf)
		res = failBatch(restProto, failRow, failErr)
	case len(buf) > s.cfg.MaxResponse:
		s.recycle(buf)
		res = tooLarge(restProto, rows, len(buf), s.cfg.MaxResponse)
	default:
		res = result{status: http.StatusOK, body: buf, pooled: true, outcome: outcomeOK}
		if rc.invalid+rc.failed > 0 {
			res.outcome = outcomePartial
		}
	}
	res.rows = rc
	return res
}

// encodeLocation is the answer to GET {prefix}/locations/{id}: the found
// record's VARIANT object; 404 for an unknown ID and for an entity without
// a location (there is no location to get); 400 for an ID that cannot be
// looked up; 503 for a lookup that failed, which a retry may fix.
func (s *Server) encodeLocation(b *batch, outs []cache.Outcome) result {
	var rc rowCounts
	o := &outs[0]
	size := 64
	if o.Entry != nil {
		size += len(o.JSON)
	}
	buf, err := s.appendOutcome(s.answerBuffer(size), b.ids[0], o, &rc)
	var res result
	switch {
	case err != nil:
		s.appendRowError(buf[:0], err, &rc) // counts the row
		s.recycle(buf)
		status, outcome := http.StatusServiceUnavailable, outcomeFailed
		if errors.Is(err, locapi.ErrInvalidID) {
			status, outcome = http.StatusBadRequest, outcomeRejected
		}
		res = textResult(status, outcome, rowReason(err))
	case rc.found == 0:
		s.recycle(buf)
		msg := "no entity with id " + quoteID(b.ids[0])
		if rc.noLocation > 0 {
			msg = "entity " + quoteID(b.ids[0]) + " has no location"
		}
		res = textResult(http.StatusNotFound, outcomeOK, msg)
	case len(buf) > s.cfg.MaxResponse:
		s.recycle(buf)
		res = tooLarge(restProto, 1, len(buf), s.cfg.MaxResponse)
	default:
		res = result{status: http.StatusOK, body: buf, pooled: true, outcome: outcomeOK}
	}
	res.rows = rc
	return res
}

// restError sends a REST error answer. 429 and 503 say when to retry.
func restError(c *gin.Context, status int, msg string) {
	if status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable {
		c.Header("Retry-After", "1")
	}
	c.Data(status, "application/json", restErrorBody(status, msg))
}

// restErrorBody is {"error":{"code":...,"message":...,"status":...}}, the
// Google API error form, with the canonical status name for the code.
func restErrorBody(status int, msg string) []byte {
	buf := append([]byte(nil), `{"error":{"code":`...)
	buf = strconv.AppendInt(buf, int64(status), 10)
	buf = append(buf, `,"message":`...)
	buf = jsontext.AppendString(buf, msg, false)
	buf = append(buf, `,"status":"`...)
	buf = append(buf, restStatus(status)...)
	return append(buf, "\"}}\n"...)
}

// restStatus is the canonical (google.rpc.Code) name for an HTTP status.
func restStatus(status int) string {
	switch status {
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType:
		return "INVALID_ARGUMENT"
	case http.StatusUnauthorized:
		return "UNAUTHENTICATED"
	case http.StatusNotFound:
		return "NOT_FOUND"
	case http.StatusMethodNotAllowed, http.StatusNotImplemented:
		return "UNIMPLEMENTED"
	case http.StatusConflict:
		return "ABORTED"
	case http.StatusTooManyRequests:
		return "RESOURCE_EXHAUSTED"
	case http.StatusInternalServerError:
		return "INTERNAL"
	case http.StatusServiceUnavailable:
		return "UNAVAILABLE"
	case http.StatusGatewayTimeout:
		return "DEADLINE_EXCEEDED"
	}
	return "UNKNOWN"
}
