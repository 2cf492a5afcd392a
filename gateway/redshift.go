package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/snowgate/snowgate/jsontext"
)

// The Amazon Redshift Lambda UDF adapter: resolve_location over Redshift's
// invocation event ({"arguments": [[id], ...], ...}) and its answer
// ({"success": true, "num_records": n, "results": ["<value>", ...]}). The
// function returns VARCHAR, so each value is the JSON text of the same
// object Snowflake's function returns, as a string (null stays null).
// Redshift calls Lambda, never HTTP: the Lambda runtime loop hands each
// event to Server.Redshift and returns its answer as the payload.

// redshiftProto is {"success":true,"num_records":N,"results":["...",...]}.
var redshiftProto = &protocol{
	name: protoRedshift,
	open: func(buf []byte, n int) []byte {
		buf = append(buf, `{"success":true,"num_records":`...)
		buf = strconv.AppendInt(buf, int64(n), 10)
		return append(buf, `,"results":[`...)
	},
	close:      "]}",
	quoted:     true,
	rowWord:    "record",
	noRetry:    true,
	sizeOption: "MAX_BATCH_ROWS %d (or a smaller MAX_BATCH_SIZE) on the external function",
	errorBody:  redshiftError,
	logIDs: func(h http.Header) []any {
		return []any{"request_id", h.Get(hdrRedshiftRequest), "query_id", h.Get(hdrRedshiftQuery)}
	},
}

// An event has no headers: its two IDs travel to the shared logger in a
// Header of their own under these names, as Snowflake's travel in theirs.
const (
	hdrRedshiftRequest = "Redshift-Request-Id"
	hdrRedshiftQuery   = "Redshift-Query-Id"
)

// redshiftError is the answer that fails the query: success false and the
// one-line reason, which Redshift shows the SQL user.
func redshiftError(msg string) []byte {
	msg = strings.ReplaceAll(strings.TrimSuffix(msg, "\n"), "\n", " ")
	buf := append(make([]byte, 0, len(msg)+40), `{"success":false,"error_msg":`...)
	buf = jsontext.AppendString(buf, msg, false)
	return append(buf, '}')
}

// Redshift answers one Redshift Lambda UDF invocation: event is the
// invocation's payload, the answer the JSON text Redshift reads
// ({"success": true, "num_records": n, "results": [...]}). A malformed
// event, and anything else that fails the batch as a whole, answers
// {"success": false, "error_msg": "..."}; a row that cannot be resolved
// answers per --on-row-error like any protocol's.
//
// The batch has no key, so it is never deduplicated by request_id and
// never waits to be polled: Lambda hands an instance one invocation at a
// time, Redshift retries only Lambda's throttling errors (which never
// reached here), and a batch that does come again finds its IDs in the
// cache, so a second run costs no provider call.
func (s *Server) Redshift(ctx context.Context, event []byte) []byte {
	var out []byte
	s.RedshiftWith(ctx, event, func(answer []byte) { out = bytes.Clone(answer) })
	return out
}

// RedshiftWith is Redshift handing the answer to use instead of returning
// it. use must not keep answer: once use returns, its buffer goes back to
// the gateway's pool for the next answer, which saves every invocation
// an answer's worth of fresh memory (a megabyte for 4,096 rows).
func (s *Server) RedshiftWith(ctx context.Context, event []byte, use func(answer []byte)) {
	answer, j := s.redshift(ctx, event)
	defer s.batches.Release(j)
	use(answer)
}

// redshift is RedshiftWith's work: the answer, and the job it belongs to,
// held (nil for an event that did not become one).
func (s *Server) redshift(ctx context.Context, event []byte) ([]byte, *job) {
	start := time.Now()
	ev, err := s.decodeRedshift(event)
	log := s.logger(redshiftProto, ev.ids)
	if err != nil {
		status := http.StatusBadRequest
		if errors.Is(err, errEventTooLarge) {
			status = http.StatusRequestEntityTooLarge
		}
		return s.refuseRedshift(log, status, outcomeRejected, err), nil
	}
	j, _, err := s.batches.Begin(ctx, jobSpec{rows: ev.b.len()}, log)
	switch {
	case errors.Is(err, errDraining):
		return s.refuseRedshift(log, http.StatusServiceUnavailable, outcomeDraining, err), nil
	case errors.Is(err, errOverloaded):
		return s.refuseRedshift(log, http.StatusTooManyRequests, outcomeOverloaded,
			fmt.Errorf("overloaded: over %d rows in flight; retry later", s.cfg.MaxInflightRows)), nil
	case err != nil: // the engine's other errors need a batch key
		return s.refuseRedshift(log, http.StatusServiceUnavailable, outcomeFailed, err), nil
	}
	go s.run(j, ev.b, redshiftProto, log, start)
	a, st := s.batches.Await(ctx, j)
	switch {
	case st != awaitDone:
		// The job finishes, counted and logged, without anyone to read it.
		return redshiftError("invocation ended before its batch was answered: " + context.Cause(ctx).Error()), j
	case a.status != http.StatusOK:
		return redshiftError(string(a.body)), j
	}
	return a.body, j
}

// refuseRedshift answers an event that will not run, with its summary line.
func (s *Server) refuseRedshift(log *slog.Logger, status int, outcome string, err error) []byte {
	s.met.batch(protoRedshift, outcome)
	log.Info("batch", "protocol", protoRedshift, "outcome", outcome, "status", status, "reason", err.Error())
	return redshiftError(err.Error())
}

// redshiftEvent is a decoded invocation: its batch, one row per record
// numbered from 0, and the IDs that name it in logs.
type redshiftEvent struct {
	b   *batch
	ids http.Header // hdrRedshiftRequest, hdrRedshiftQuery
}

var errEventTooLarge = errors.New("event too large")

// decodeRedshift is the one way an event becomes a batch: the common shape
// is scanned by hand, and everything else, every error included, goes
// through encoding/json, which has the last word. ids is set even on error
// when the event said them.
func (s *Server) decodeRedshift(event []byte) (redshiftEvent, error) {
	if int64(len(event)) > s.cfg.MaxBody {
		return redshiftEvent{ids: http.Header{}}, fmt.Errorf("%w: %d bytes, over the %d-byte limit (--max-body): lower MAX_BATCH_SIZE or MAX_BATCH_ROWS",
			errEventTooLarge, len(event), s.cfg.MaxBody)
	}
	if ev, ok := scanRedshift(event); ok {
		return ev, nil
	}
	return parseRedshift(event)
}

// parseRedshift decodes any event the contract allows and gives a precise
// one-line reason for everything else. Unknown fields are ignored; of a
// field given twice the last counts, as encoding/json has it.
func parseRedshift(event []byte) (redshiftEvent, error) {
	ev := redshiftEvent{ids: http.Header{}}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(event, &top); err != nil {
		var syn *json.SyntaxError
		if errors.As(err, &syn) {
			return ev, fmt.Errorf("event is not valid JSON at byte %d: %s", syn.Offset, syn.Error())
		}
		return ev, errors.New(`event must be a JSON object with an "arguments" array`)
	}
	setLogID(ev.ids, hdrRedshiftRequest, top["request_id"])
	setLogID(ev.ids, hdrRedshiftQuery, top["query_id"])
	args, ok := top["arguments"]
	if !ok || args[0] != '[' {
		return ev, errors.New(`event must be a JSON object with an "arguments" array`)
	}
	var records []json.RawMessage
	if err := json.Unmarshal(args, &records); err != nil {
		return ev, fmt.Errorf(`invalid "arguments": %w`, err)
	}
	if n, ok := top["num_records"]; ok {
		if err := checkNumRecords(n, len(records)); err != nil {
			return ev, err
		}
	}
	b := newBatch(len(records))
	for i, rec := range records {
		if err := parseRecord(rec, i, b); err != nil {
			return ev, err
		}
	}
	ev.b = b
	return ev, nil
}

// checkNumRecords holds num_records to the number of records sent: a
// mismatch means the event was cut or built wrong, and answering a number
// of results Redshift does not expect would fail the query anyway.
func checkNumRecords(raw json.RawMessage, records int) error {
	n, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil {
		return fmt.Errorf(`"num_records" must be an integer, got %s`, truncate(string(raw), 32))
	}
	if n != int64(records) {
		return fmt.Errorf(`"num_records" is %d but "arguments" has %d records`, n, records)
	}
	return nil
}

// parseRecord decodes record i: null (answered null) or an array of
// resolve_location's one argument, which parseID reads as Snowflake's ID.
func parseRecord(raw json.RawMessage, i int, b *batch) error {
	switch raw[0] {
	case 'n':
		b.add(int64(i), "", idNull, nil)
		return nil
	case '[':
	default:
		return fmt.Errorf("record %d must be an array of arguments or null, got %s", i, truncate(string(raw), 32))
	}
	var args []json.RawMessage
	if err := json.Unmarshal(raw, &args); err != nil {
		return fmt.Errorf("record %d: %w", i, err)
	}
	if len(args) != locationArgs {
		return fmt.Errorf("record %d has %d arguments, want %d: resolve_location takes one VARCHAR", i, len(args), locationArgs)
	}
	id, kind, err := parseID(args[0])
	b.add(int64(i), id, kind, err)
	return nil
}

// setLogID keeps a request or query ID for the log lines: a string's
// text, or any other JSON value as written (Redshift's query_id is a
// number).
func setLogID(h http.Header, name string, raw json.RawMessage) {
	if len(raw) == 0 {
		return
	}
	v := string(raw)
	if raw[0] == '"' {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			v = s
		}
	}
	h.Set(name, truncate(v, 128))
}

// scanRedshift decodes the event Redshift sends for resolve_location,
// {"request_id":"...",...,"arguments":[["id"],null,...]} with its keys in
// any order and any JSON whitespace, without reflection. Like scanFast it
// gives up (false) as soon as the input leaves that shape: escapes,
// non-ASCII, number IDs, nested values in other fields, a known field given
// twice, errors of any kind; parseRedshift then decides.
func scanRedshift(event []byte) (redshiftEvent, bool) {
	ev := redshiftEvent{ids: http.Header{}}
	s := scanner{buf: event}
	if !s.lit('{') {
		return ev, false
	}
	numRecords := int64(-1)
	for {
		key, ok := s.plainString()
		if !ok || !s.lit(':') {
			return ev, false
		}
		switch key {
		case "arguments":
			if ev.b != nil || !s.records(&ev) {
				return ev, false
			}
		case "num_records":
			if numRecords >= 0 {
				return ev, false
			}
			if numRecords, ok = s.rowNumber(); !ok {
				return ev, false
			}
		case "request_id", "query_id":
			v, ok := s.scalar()
			if !ok {
				return ev, false
			}
			name := hdrRedshiftRequest
			if key == "query_id" {
				name = hdrRedshiftQuery
			}
			ev.ids.Set(name, truncate(v, 128))
		default:
			if _, ok := s.scalar(); !ok {
				return ev, false
			}
		}
		if c := s.next(); c == '}' {
			break
		} else if c != ',' {
			return ev, false
		}
	}
	s.skipSpace()
	if s.pos != len(s.buf) || ev.b == nil || (numRecords >= 0 && numRecords != int64(ev.b.len())) {
		return ev, false
	}
	return ev, true
}

// records scans the arguments array: each record ["id"], [null] or null.
func (s *scanner) records(ev *redshiftEvent) bool {
	if !s.lit('[') {
		return false
	}
	// A record of a short ID takes about 14 bytes: size the slices once
	// for that without overshooting much.
	b := newBatch((len(s.buf)-s.pos)/14 + 1)
	if s.peek() == ']' {
		s.pos++
		ev.b = b
		return true
	}
	for {
		if !s.record(b) {
			return false
		}
		c := s.next()
		if c == ']' {
			ev.b = b
			return true
		}
		if c != ',' {
			return false
		}
	}
}

// record scans one record into b as row len(b.rows).
func (s *scanner) record(b *batch) bool {
	row := int64(b.len())
	switch s.peek() {
	case 'n':
		if !s.word("null") {
			return false
		}
		b.add(row, "", idNull, nil)
		return true
	case '[':
		s.pos++
	default:
		return false
	}
	kind := idText
	var id string
	if s.peek() == 'n' {
		if !s.word("null") {
			return false
		}
		kind = idNull
	} else {
		var ok bool
		if id, ok = s.plainString(); !ok {
			return false
		}
	}
	if !s.lit(']') {
		return false
	}
	b.add(row, id, kind, nil)
	return true
}

// plainString scans a string of printable ASCII without escapes: anything
// else needs the full decoder's rules.
func (s *scanner) plainString() (string, bool) {
	if !s.lit('"') {
		return "", false
	}
	start := s.pos
	for ; s.pos < len(s.buf); s.pos++ {
		switch c := s.buf[s.pos]; {
		case c == '"':
			s.pos++
			return string(s.buf[start : s.pos-1]), true
		case c == '\\' || c < 0x20 || c >= 0x7f:
			return "", false
		}
	}
	return "", false
}

// scalar scans a field the adapter only logs or ignores: a plain string
// (its text), an integer as rowNumber reads it, true, false or null (as
// written).
func (s *scanner) scalar() (string, bool) {
	switch c := s.peek(); {
	case c == '"':
		return s.plainString()
	case c >= '0' && c <= '9':
		start := s.pos
		_, ok := s.rowNumber()
		return string(s.buf[start:s.pos]), ok
	}
	for _, w := range []string{"null", "true", "false"} {
		if s.word(w) {
			return w, true
		}
	}
	return "", false
}
