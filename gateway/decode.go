package gateway

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
	// klauspost's inflate takes about two thirds of the standard library's
	// time on a gzipped batch, with the same API.
	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zlib"

	"github.com/snowgate/snowgate/jsontext"
	"github.com/snowgate/snowgate/locapi"
)

// idKind says what a row's ID argument was.
type idKind uint8

const (
	idText idKind = iota // a string, or a number as its exact decimal text
	idNull               // SQL NULL: answered null without a provider call
	idBad                // a boolean, object or array: answered as a row error
)

// batch is a decoded request body: one entry per row, in input order, in
// parallel slices so the IDs can go to the resolver without a copy.
type batch struct {
	rows  []int64
	ids   []string // the ID text; "" for null and bad IDs
	kinds []idKind
	bad   map[int]error // why the idBad row at that index cannot be looked up
	text  int           // rows of kind idText
}

func newBatch(capacity int) *batch {
	return &batch{rows: make([]int64, 0, capacity), ids: make([]string, 0, capacity), kinds: make([]idKind, 0, capacity)}
}

func (b *batch) len() int { return len(b.rows) }

// digest identifies the batch's rows (numbers, ID kinds and texts), so a
// batch id sent again with other rows is told apart from Snowflake's
// retries, which repeat the rows exactly (if not the bytes).
func (b *batch) digest(seed maphash.Seed) uint64 {
	var h maphash.Hash
	h.SetSeed(seed)
	var n [9]byte
	for i, row := range b.rows {
		binary.LittleEndian.PutUint64(n[:8], uint64(row))
		n[8] = byte(b.kinds[i])
		h.Write(n[:])
		h.WriteString(b.ids[i])
		h.WriteByte(0)
	}
	return h.Sum64() | 1 // never 0, which means "not known"
}

func (b *batch) add(row int64, id string, kind idKind, err error) {
	if kind == idBad {
		if b.bad == nil {
			b.bad = map[int]error{}
		}
		b.bad[len(b.rows)] = err
	}
	if kind == idText {
		b.text++
	}
	b.rows = append(b.rows, row)
	b.ids = append(b.ids, id)
	b.kinds = append(b.kinds, kind)
}

// Per-row reasons for IDs of a JSON type no ID can have. They wrap
// locapi.ErrInvalidID so they are answered like any other caller's bad ID.
var (
	errBoolID   = fmt.Errorf("%w: a boolean is not an id", locapi.ErrInvalidID)
	errObjectID = fmt.Errorf("%w: an object is not an id", locapi.ErrInvalidID)
	errArrayID  = fmt.Errorf("%w: an array is not an id", locapi.ErrInvalidID)
	errUTF8ID   = fmt.Errorf("%w: not valid UTF-8", locapi.ErrInvalidID)
	errSurrogID = fmt.Errorf("%w: an unpaired UTF-16 surrogate escape", locapi.ErrInvalidID)
)

// msgNoData is Snowflake's own wording for a body without a data array, so
// the SQL user sees a familiar message.
const msgNoData = `top-level JSON object must contain "data" JSON array element`

// readRequest is the one way a request body is read, for every protocol:
// into a pooled buffer, under the body's read deadline (a slow sender may
// not hold the buffer for long; the deadline is lifted again for the wait on
// the batch), decompressed, with MaxBody enforced on the decompressed bytes
// (tooBig is the protocol's advice then), and handed to parse, which must
// copy what it keeps. status is 0 on success, else the HTTP status to answer
// with err's one-line message. (Test recorders do not support deadlines;
// the error is then ignored.)
func readRequest[T any](s *Server, c *gin.Context, start time.Time, tooBig string, parse func([]byte) (T, int, error)) (T, int, error) {
	buf := s.bodies.Get().(*bytes.Buffer)
	buf.Reset()
	defer putBody(&s.bodies, buf)
	rc := http.NewResponseController(c.Writer)
	_ = rc.SetReadDeadline(start.Add(bodyReadTimeout))
	status, err := readBody(c.Request, buf, s.cfg.MaxBody)
	_ = rc.SetReadDeadline(time.Time{})
	var zero T
	switch {
	case status == http.StatusRequestEntityTooLarge:
		return zero, status, fmt.Errorf("request body over %d bytes (after decompression): %s", s.cfg.MaxBody, tooBig)
	case err != nil:
		return zero, status, err
	}
	return parse(buf.Bytes())
}

// readBody reads r's body into buf, decompressed, refusing more than limit
// bytes after decompression so a small gzip bomb cannot use much memory.
// A compressed body is read whole first and inflated from memory, which
// klauspost/compress does faster than from a stream (no bufio in between,
// its bytes fast path); readers and those buffers are pooled.
func readBody(r *http.Request, buf *bytes.Buffer, limit int64) (int, error) {
	// Deflate never grows data by more than a few bytes per 16 KB block, so
	// compressed input past this size cannot fit the limit either; the cap
	// stops, for instance, an endless run of empty gzip members.
	raw := &cappedReader{r: r.Body, left: limit + limit/64 + 1024}
	body := io.Reader(raw)
	enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding")))
	switch enc {
	case "", "identity":
		if r.ContentLength > 0 && r.ContentLength <= limit {
			buf.Grow(int(r.ContentLength))
		}
	case "gzip", "x-gzip", "deflate":
		zbuf := rawBodies.Get().(*bytes.Buffer)
		zbuf.Reset()
		defer putBody(&rawBodies, zbuf)
		if _, err := zbuf.ReadFrom(raw); err != nil {
			return readError(err, limit)
		}
		zr, err := inflater(enc, bytes.NewReader(zbuf.Bytes()))
		if err != nil {
			return http.StatusBadRequest, fmt.Errorf("request body is not valid %s: %w", strings.TrimPrefix(enc, "x-"), err)
		}
		defer zr.Close()
		body = zr
	default:
		return http.StatusUnsupportedMediaType, fmt.Errorf("unsupported Content-Encoding %q: use gzip, deflate or none", truncate(enc, 32))
	}
	n, err := buf.ReadFrom(io.LimitReader(body, limit+1))
	if n > limit {
		err = errRawTooLarge
	}
	if err != nil {
		return readError(err, limit)
	}
	return 0, nil
}

// readError is readBody's status and message for a failed read.
func readError(err error, limit int64) (int, error) {
	if errors.Is(err, errRawTooLarge) {
		return http.StatusRequestEntityTooLarge, fmt.Errorf("request body over %d bytes (after decompression)", limit)
	}
	return http.StatusBadRequest, fmt.Errorf("reading request body: %w", err)
}

// rawBodies holds compressed request bodies while they are inflated.
var rawBodies = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// putBody gives buf back to pool, unless it is a rare huge one.
func putBody(pool *sync.Pool, buf *bytes.Buffer) {
	if buf.Cap() <= 4<<20 {
		pool.Put(buf)
	}
}

// gzipReaders are the gzip readers of request bodies, reset for each.
var gzipReaders sync.Pool // *gzip.Reader

// inflater reads the compressed body in r as enc says.
func inflater(enc string, r *bytes.Reader) (io.ReadCloser, error) {
	if enc == "deflate" {
		return newDeflateReader(r)
	}
	zr, _ := gzipReaders.Get().(*gzip.Reader)
	if zr == nil {
		zr = new(gzip.Reader) // what gzip.NewReader makes before its Reset
	}
	if err := zr.Reset(r); err != nil {
		gzipReaders.Put(zr)
		return nil, err
	}
	return pooledGzip{zr}, nil
}

// pooledGzip goes back to gzipReaders when closed.
type pooledGzip struct{ *gzip.Reader }

func (p pooledGzip) Close() error {
	err := p.Reader.Close()
	gzipReaders.Put(p.Reader)
	return err
}

var errRawTooLarge = errors.New("request body too large")

// cappedReader fails with errRawTooLarge once more than left bytes are read.
type cappedReader struct {
	r    io.Reader
	left int64
}

func (c *cappedReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, errRawTooLarge
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	return n, err
}

// newDeflateReader accepts both meanings of "deflate" seen in the wild:
// zlib-wrapped (RFC 1950, what the HTTP spec says) and raw (RFC 1951). A
// zlib stream starts with a two-byte header whose value is a multiple of 31.
func newDeflateReader(r *bytes.Reader) (io.ReadCloser, error) {
	var h [2]byte
	if n, _ := r.ReadAt(h[:], 0); n == 2 && h[0]&0x0f == 8 && (uint16(h[0])<<8|uint16(h[1]))%31 == 0 {
		return zlib.NewReader(r)
	}
	return flate.NewReader(r), nil
}

// parseBatch parses a request body whose rows are [row number, arg1..argN]
// with arity arguments. The common shape is scanned by hand; anything the
// scanner does not recognise, including every error, goes through
// encoding/json, which has the last word.
func parseBatch(body []byte, arity int) (*batch, int, error) {
	b, ok := scanFast(body, arity)
	if !ok {
		var err error
		if b, err = parseSlow(body, arity); err != nil {
			return nil, http.StatusBadRequest, err
		}
	}
	if err := checkRowNumbers(b.rows); err != nil {
		return nil, http.StatusBadRequest, err
	}
	return b, 0, nil
}

// checkRowNumbers rejects duplicate row numbers. Snowflake sends them
// ascending, which proves uniqueness in one pass; any other order is
// accepted (and answered in input order) if no number repeats.
func checkRowNumbers(in []int64) error {
	ascending := true
	for i := 1; i < len(in); i++ {
		if in[i] <= in[i-1] {
			ascending = false
			break
		}
	}
	if ascending {
		return nil
	}
	rows := slices.Clone(in)
	slices.Sort(rows)
	for i := 1; i < len(rows); i++ {
		if rows[i] == rows[i-1] {
			return fmt.Errorf("duplicate row number %d", rows[i])
		}
	}
	return nil
}

// parseSlow is the general decoder: any valid JSON the contract allows, and
// a precise one-line reason for everything else.
func parseSlow(body []byte, arity int) (*batch, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		var syn *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.As(err, &syn):
			return nil, fmt.Errorf("invalid JSON at byte %d: %s", syn.Offset, syn.Error())
		case errors.As(err, &typ):
			return nil, errors.New(msgNoData)
		}
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	data, ok := top["data"]
	if !ok || len(data) == 0 || data[0] != '[' {
		return nil, errors.New(msgNoData)
	}
	var rows []json.RawMessage
	if err := json.Unmarshal(data, &rows); err != nil {
		return nil, fmt.Errorf("invalid data array: %w", err)
	}
	b := newBatch(len(rows))
	for i, raw := range rows {
		if err := parseRow(raw, arity, b); err != nil {
			return nil, fmt.Errorf("data element %d: %w", i, err)
		}
	}
	return b, nil
}

// parseRow decodes one [row number, id] element.
func parseRow(raw json.RawMessage, arity int, b *batch) error {
	if raw[0] != '[' {
		return errors.New("a row must be an array [row number, arguments...]")
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(raw, &elems); err != nil {
		return fmt.Errorf("invalid row: %w", err)
	}
	if len(elems) != arity+1 {
		return fmt.Errorf("row has %d elements, want %d (row number and %d argument(s)): check the function signature", len(elems), arity+1, arity)
	}
	row, err := parseRowNumber(elems[0])
	if err != nil {
		return err
	}
	id, kind, err := parseID(elems[1])
	b.add(row, id, kind, err)
	return nil
}

func parseRowNumber(raw json.RawMessage) (int64, error) {
	if c := raw[0]; c != '-' && (c < '0' || c > '9') {
		return 0, fmt.Errorf("row number must be an integer, got %s", truncate(string(raw), 32))
	}
	n, err := strconv.ParseInt(string(raw), 10, 64)
	switch {
	case errors.Is(err, strconv.ErrRange):
		return 0, fmt.Errorf("row number %s out of range", truncate(string(raw), 32))
	case err != nil:
		return 0, fmt.Errorf("row number must be an integer, got %s", truncate(string(raw), 32))
	case n < 0:
		return 0, fmt.Errorf("row number must not be negative, got %d", n)
	}
	return n, nil
}

// parseID reads the ID argument: a string, a number (its exact decimal
// text, so NUMBER(38) survives), or null. Other JSON types are a per-row
// error, not a batch error: a VARIANT column can legitimately carry them.
func parseID(raw json.RawMessage) (string, idKind, error) {
	switch c := raw[0]; {
	case c == '"':
		if !utf8.Valid(raw) {
			// encoding/json would quietly turn the bad bytes into U+FFFD
			// and look up an ID the caller never sent.
			return "", idBad, errUTF8ID
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", idBad, fmt.Errorf("%w: %w", locapi.ErrInvalidID, err)
		}
		if jsontext.LoneSurrogate(raw) {
			// Likewise for "\ud800": it has no UTF-8 form, so it would be
			// looked up as U+FFFD.
			return "", idBad, errSurrogID
		}
		return s, idText, nil
	case c == 'n':
		return "", idNull, nil
	case c == '-' || (c >= '0' && c <= '9'):
		return string(raw), idText, nil
	case c == 't' || c == 'f':
		return "", idBad, errBoolID
	case c == '{':
		return "", idBad, errObjectID
	}
	return "", idBad, errArrayID
}

// truncate shortens s for an error message shown to the SQL user.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "..."
}
