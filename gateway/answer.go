package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"unsafe"

	"github.com/snowgate/snowgate/cache"
	"github.com/snowgate/snowgate/jsontext"
	"github.com/snowgate/snowgate/locapi"
)

// result is a finished batch: the response and what the summary line says.
type result struct {
	status int
	body   []byte
	// pooled says body came from Server.answerBuffer: it may go back to
	// the pool once no job keeps it.
	pooled bool
	// spans are where found records' JSON lies in body, for gzipFast;
	// from Server.spanBuffer. sparse says body leaves those records out
	// (encodeAnswer).
	spans   []span
	sparse  bool
	outcome string
	stats   cache.Stats
	rows    rowCounts
}

func textResult(status int, outcome, msg string) result {
	return result{status: status, outcome: outcome, body: []byte(msg + "\n")}
}

// resolveLocation answers resolve_location(id) in protocol p: every ID
// that can be looked up goes to the resolver in one call (it dedupes,
// caches and fans out), and the answers are laid out in input order. With
// sparse set the answer is for gzipFast only (see encodeAnswer).
func (s *Server) resolveLocation(ctx context.Context, b *batch, p *protocol, sparse bool) result {
	outs, st, err := s.lookupText(ctx, b)
	if err != nil {
		// A broken resolver, not bad input: 500 makes the warehouse retry.
		return textResult(http.StatusInternalServerError, outcomeFailed, err.Error())
	}
	res := s.encodeAnswer(b, outs, p, sparse)
	res.stats = st
	return res
}

// lookupText sends the batch's text IDs to the resolver in one call, as
// every protocol does; outs follow the text rows in order.
func (s *Server) lookupText(ctx context.Context, b *batch) ([]cache.Outcome, cache.Stats, error) {
	ids := b.ids
	if b.text < b.len() {
		ids = make([]string, 0, b.text)
		for i, k := range b.kinds {
			if k == idText {
				ids = append(ids, b.ids[i])
			}
		}
	}
	if len(ids) == 0 {
		return nil, cache.Stats{}, nil
	}
	outs, st := s.res.ResolveMany(ctx, ids)
	if len(outs) != len(ids) {
		// A broken resolver, not bad input.
		return nil, st, fmt.Errorf("internal error: resolver answered %d of %d ids", len(outs), len(ids))
	}
	return outs, st, nil
}

// encodeAnswer builds p's answer ({"data":[[row,value],...]} for
// Snowflake) by appending bytes: found records are copied from their
// cached encoding, never re-encoded. Every row is counted, also in an
// answer refused as a whole. With sparse set, found records are not copied
// at all: the body holds the bytes between them, result.spans says where
// each goes, and only gzipFast can read it (the answer is to be gzipped).
func (s *Server) encodeAnswer(b *batch, outs []cache.Outcome, p *protocol, sparse bool) result {
	w := &answerWriter{s: s, p: p, sparse: sparse && !p.quoted}
	if w.sparse {
		w.spans = s.spanBuffer(len(outs))
	}
	w.buf = p.open(s.answerBuffer(answerSize(b, outs, p)), b.len())
	plain := !w.sparse && !p.quoted // found records go in as they are
	k := 0
	for i, row := range b.rows {
		if i > 0 {
			w.buf = append(w.buf, ',')
		}
		if p.rowNumbers {
			w.buf = append(w.buf, '[')
			w.buf = strconv.AppendInt(w.buf, row, 10)
			w.buf = append(w.buf, ',')
		}
		switch b.kinds[i] {
		case idText:
			o := &outs[k]
			k++
			if plain && o.Err == nil && o.Entry != nil && o.Status == locapi.Found && len(o.JSON) > 0 {
				// The hot path: a found record's bytes, as they are.
				w.buf = append(w.buf, o.JSON...)
				w.rc.found++
				break
			}
			w.outcome(row, b.ids[i], o)
		case idNull:
			w.buf = append(w.buf, "null"...)
			w.rc.nullID++
		default:
			w.rowError(row, len(w.buf), b.bad[i])
		}
		if p.rowNumbers {
			w.buf = append(w.buf, ']')
		}
	}
	w.buf = append(w.buf, p.close...)
	return w.finish(b.len())
}

// answerWriter is one answer being encoded.
type answerWriter struct {
	s       *Server
	p       *protocol
	buf     []byte
	rc      rowCounts
	failRow int64
	failErr error // the first row error, with --on-row-error=fail
	scratch []byte
	spans   []span
	sparse  bool
	skipped int // the bytes of the records a sparse body leaves out
}

// outcome appends the value of a looked-up row.
func (w *answerWriter) outcome(row int64, id string, o *cache.Outcome) {
	at := len(w.buf)
	found := o.Err == nil && o.Entry != nil && o.Status == locapi.Found && len(o.JSON) > 0
	switch {
	case found && w.p.quoted:
		w.buf = append(w.buf, memoOf(&o.Entry.Memo).quotedJSON(o.JSON)...)
		w.rc.found++
		return
	case found && w.sparse:
		w.spans = append(w.spans, span{at: at, memo: &o.Memo, js: o.JSON})
		w.skipped += len(o.JSON)
		w.rc.found++
		return
	}
	var err error
	w.buf, err = w.s.appendOutcome(w.buf, id, o, &w.rc)
	switch {
	case err != nil:
		w.rowError(row, at, err)
	case w.p.quoted && !found:
		w.buf, w.scratch = quoteValue(w.buf, at, w.scratch)
	}
}

// rowError answers a row without a value, whose answer starts at at.
func (w *answerWriter) rowError(row int64, at int, err error) {
	if w.s.cfg.OnRowError == RowErrorFail && w.failErr == nil {
		w.failRow, w.failErr = row, err
	}
	w.buf = w.s.appendRowError(w.buf, err, &w.rc)
	if w.p.quoted {
		w.buf, w.scratch = quoteValue(w.buf, at, w.scratch)
	}
}

// finish ends the answer to rows rows: refused as a whole, or a 200.
func (w *answerWriter) finish(rows int) result {
	s, buf := w.s, w.buf
	if w.failErr != nil {
		s.recycle(buf)
		s.recycleSpans(w.spans)
		res := failBatch(w.p, w.failRow, w.failErr)
		res.rows = w.rc
		return res
	}
	if size := len(buf) + w.skipped; size > s.cfg.MaxResponse {
		s.recycle(buf)
		s.recycleSpans(w.spans)
		res := tooLarge(w.p, rows, size, s.cfg.MaxResponse)
		res.rows = w.rc
		return res
	}
	outcome := outcomeOK
	if w.rc.invalid+w.rc.failed > 0 {
		outcome = outcomePartial
	}
	spans, sparse := w.spans, w.sparse
	if sparse && len(buf)+w.skipped < gzipMinBytes {
		// Too small to gzip: it goes as it is, so it needs its records.
		buf, spans, sparse = s.fillIn(buf, spans, w.skipped)
	}
	return result{status: http.StatusOK, body: buf, pooled: true, spans: spans, sparse: sparse, outcome: outcome, rows: w.rc}
}

// fillIn turns a sparse answer into the plain one, records copied in.
func (s *Server) fillIn(sparse []byte, spans []span, skipped int) ([]byte, []span, bool) {
	buf := s.answerBuffer(len(sparse) + skipped)
	at := 0
	for i, sp := range spans {
		buf = append(buf, sparse[at:sp.at]...)
		at = sp.at
		spans[i].at = len(buf)
		buf = append(buf, sp.js...)
	}
	buf = append(buf, sparse[at:]...)
	s.recycle(sparse)
	return buf, spans, false
}

// quoteValue turns the value at buf[at:] into a JSON string holding it,
// unless it is null. scratch is reused between rows.
func quoteValue(buf []byte, at int, scratch []byte) ([]byte, []byte) {
	v := buf[at:]
	if string(v) == "null" {
		return buf, scratch
	}
	scratch = append(scratch[:0], v...)
	// A view, not a copy: scratch is not written while AppendString reads.
	return jsontext.AppendString(buf[:at], unsafe.String(unsafe.SliceData(scratch), len(scratch)), false), scratch
}

// answerSize is room enough for the answer to b in most cases: rows of
// short values, and the found records' encodings.
func answerSize(b *batch, outs []cache.Outcome, p *protocol) int {
	size := 64 + b.len()*24
	for i := range outs {
		if outs[i].Entry != nil {
			size += len(outs[i].JSON)
		}
	}
	if p.quoted { // escaped quotes
		size += size / 4
	}
	return size
}

// maxPooledAnswer bounds the answer buffers kept for reuse, so a rare huge
// batch does not stay in memory.
const maxPooledAnswer = 4 << 20

// answerBuffer returns an empty slice with room for size bytes: a pooled
// one when it is big enough, since a fresh one is a megabyte per hot batch
// for the allocator to clear; else one from bytes.Buffer.Grow, which at
// least does not zero it a second time.
func (s *Server) answerBuffer(size int) []byte {
	if p, ok := s.answers.Get().(*[]byte); ok && cap(*p) >= size {
		return (*p)[:0]
	}
	var bb bytes.Buffer
	bb.Grow(size)
	return bb.AvailableBuffer()
}

// spanBuffer returns an empty span slice with room for n, pooled.
func (s *Server) spanBuffer(n int) []span {
	if p, ok := s.spanPool.Get().(*[]span); ok && cap(*p) >= n {
		return (*p)[:0]
	}
	return make([]span, 0, n)
}

// recycleSpans gives back a span slice, cleared so it keeps no record
// alive.
func (s *Server) recycleSpans(sp []span) {
	if sp == nil || cap(sp) > maxPooledAnswer/32 {
		return
	}
	clear(sp[:cap(sp)])
	sp = sp[:0]
	s.spanPool.Put(&sp)
}

// recycle gives back an answer buffer that nothing refers to any more.
func (s *Server) recycle(buf []byte) { putBuffer(&s.answers, buf) }

// putBuffer gives an empty buf to p, unless it is too big to keep.
func putBuffer(p *sync.Pool, buf []byte) {
	if cap(buf) <= maxPooledAnswer {
		buf = buf[:0]
		p.Put(&buf)
	}
}

// appendOutcome appends the value for one resolved ID, or returns the row's
// error for the caller to answer per --on-row-error.
func (s *Server) appendOutcome(buf []byte, id string, o *cache.Outcome, rc *rowCounts) ([]byte, error) {
	switch {
	case o.Err != nil:
		return buf, o.Err
	case o.Entry == nil:
		return buf, errors.New("resolver gave no answer")
	}
	switch o.Status {
	case locapi.Found:
		if len(o.JSON) == 0 {
			return buf, errors.New("resolver gave a record without its encoding")
		}
		rc.found++
		return append(buf, o.JSON...), nil
	case locapi.NotFound, locapi.NoLocation:
		if o.Status == locapi.NotFound {
			rc.notFound++
		} else {
			rc.noLocation++
		}
		if s.cfg.NotFound != NotFoundObject {
			return append(buf, "null"...), nil
		}
		buf = append(buf, `{"found":false,"id":`...)
		buf = jsontext.AppendString(buf, id, false)
		buf = append(buf, `,"status":"`...)
		buf = append(buf, o.Status.String()...)
		return append(buf, `"}`...), nil
	}
	return buf, fmt.Errorf("resolver gave unknown status %d", o.Status)
}

// appendRowError answers a row that has no value: null, or with
// --on-row-error=error an object naming the reason.
func (s *Server) appendRowError(buf []byte, err error, rc *rowCounts) []byte {
	if errors.Is(err, locapi.ErrInvalidID) {
		rc.invalid++
	} else {
		rc.failed++
	}
	if s.cfg.OnRowError != RowErrorObject {
		return append(buf, "null"...)
	}
	buf = append(buf, `{"error":`...)
	buf = jsontext.AppendString(buf, rowReason(err), false)
	return append(buf, '}')
}

// rowReason is the short text a SQL user sees for a failed row. Provider
// errors are summarised, not quoted: their text may carry URLs.
func rowReason(err error) string {
	switch {
	case errors.Is(err, locapi.ErrInvalidID):
		return truncate(invalidReason(err), 120)
	case errors.Is(err, context.DeadlineExceeded):
		return "lookup timed out"
	case errors.Is(err, context.Canceled):
		return "lookup canceled"
	}
	return "lookup failed"
}

// invalidReason finds, under any wrapping (which may quote the whole ID),
// the error that directly wraps locapi.ErrInvalidID: "invalid id: <why>".
// It walks the chain by hand because errors.Is and errors.As only say that
// the sentinel is somewhere below, not which error wraps it directly.
func invalidReason(err error) string {
	switch u := err.(type) { //nolint:errorlint // walks the wrapping itself, see above
	case interface{ Unwrap() error }:
		if u.Unwrap() == locapi.ErrInvalidID { //nolint:errorlint // the direct wrap is the one wanted
			return err.Error()
		}
		if inner := u.Unwrap(); inner != nil {
			return invalidReason(inner)
		}
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			if errors.Is(e, locapi.ErrInvalidID) {
				return invalidReason(e)
			}
		}
	}
	return locapi.ErrInvalidID.Error()
}

// failBatch is --on-row-error=fail: a provider failure makes the whole batch
// a 503 so the warehouse retries it; a bad ID would fail again, so it is a
// 400 that tells the SQL user which row.
func failBatch(p *protocol, row int64, err error) result {
	if errors.Is(err, locapi.ErrInvalidID) {
		return textResult(http.StatusBadRequest, outcomeRejected,
			fmt.Sprintf("%s %d: %s", p.rowWord, row, rowReason(err)))
	}
	hint := "; retry the batch"
	if p.noRetry {
		hint = "; run the query again later"
	}
	return textResult(http.StatusServiceUnavailable, outcomeFailed,
		fmt.Sprintf("%s %d: %s%s", p.rowWord, row, rowReason(err), hint))
}

// tooLarge refuses an answer over the response limit with the batch size
// that would fit, with a margin for rows larger than this batch's average.
func tooLarge(p *protocol, rows, size, limit int) result {
	fit := int(float64(rows) * float64(limit) / float64(size) * 0.8)
	fit = max(fit, 1)
	return textResult(http.StatusBadRequest, outcomeTooLarge, fmt.Sprintf(
		"answer for %d rows is %d bytes, over the %d-byte response limit: set "+p.sizeOption,
		rows, size, limit, fit))
}
