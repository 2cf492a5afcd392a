package locapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
)

// MaxBodyBytes caps how much of one provider answer is read (after any
// decompression). An entity is a few hundred bytes; anything near the cap is
// not an entity.
const MaxBodyBytes = 1 << 20

// ErrMalformed marks a 200 answer the client cannot use: not JSON, not an
// entity, too large, or for another ID. It is retried, since a truncated or
// garbled body is usually a transient fault of the provider or the network.
var ErrMalformed = errors.New("malformed answer")

// entity is the provider's wire shape. Pointers keep JSON null apart from
// an empty value.
type entity struct {
	ID       *string   `json:"id"`
	Label    *string   `json:"label"`
	Location *location `json:"location"`
}

type location struct {
	GeoLabel      *string  `json:"geoLabel"`
	StreetAddress *string  `json:"streetAddress"`
	CityLabel     *string  `json:"cityLabel"`
	PostalCode    *string  `json:"postalCode"`
	CountryLabel  *string  `json:"countryLabel"`
	Latitude      *float64 `json:"latitude"`
	Longitude     *float64 `json:"longitude"`
}

// errBodyRead marks a body that broke off while being read: a network
// fault (the connection closed or the attempt timed out), not a bad answer.
type errBodyRead struct{ err error }

func (e *errBodyRead) Error() string { return "reading answer: " + e.err.Error() }
func (e *errBodyRead) Unwrap() error { return e.err }

// decodeEntity reads a 200 answer for id. A location that is null or absent
// is NoLocation; any location object, even one whose fields are all null,
// is Found.
//
// The usual answer (the provider's exact keys, each once, well-formed
// strings and numbers) is read by a hand-written scanner; anything else goes
// to decodeEntitySlow, which is encoding/json and the reference the scanner
// is fuzzed against, so the two always give the same Result and error.
func decodeEntity(body io.Reader, id string) (Result, error) {
	s := scanPool.Get().(*entityScan)
	defer s.release()
	data, err := readBody(body, s.data[:0])
	s.data = data // keep a grown buffer for the next body
	if err != nil {
		return Result{}, &errBodyRead{err: err}
	}
	if len(data) > MaxBodyBytes {
		return Result{}, fmt.Errorf("%w: body larger than %d bytes", ErrMalformed, MaxBodyBytes)
	}
	if res, ok := s.decode(id); ok {
		return res, nil
	}
	return decodeEntitySlow(data, id)
}

// scanPool recycles the read buffer and scratch space of decodeEntity: a
// batch of cold IDs decodes thousands of answers of similar size. Nothing a
// decode returns points into them.
var scanPool = sync.Pool{New: func() any { return &entityScan{data: make([]byte, 0, 2<<10)} }}

// maxPooled is the largest buffer put back in scanPool: an answer near
// MaxBodyBytes is not worth keeping a megabyte for.
const maxPooled = 64 << 10

// release puts s back in scanPool, unless it grew past maxPooled.
func (s *entityScan) release() {
	if cap(s.data) > maxPooled || cap(s.text) > maxPooled {
		return
	}
	*s = entityScan{data: s.data[:0], text: s.text[:0]}
	scanPool.Put(s)
}

// readBody appends r's content to b, at most MaxBodyBytes+1 bytes of it, the
// way io.ReadAll(io.LimitReader(r, MaxBodyBytes+1)) does.
func readBody(r io.Reader, b []byte) ([]byte, error) {
	const limit = MaxBodyBytes + 1
	for len(b) < limit {
		if len(b) == cap(b) {
			b = slices.Grow(b, min(max(cap(b), 512), limit-len(b)))
		}
		n, err := r.Read(b[len(b):min(cap(b), limit)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
	return b, nil
}

// decodeEntitySlow decodes data, a whole answer for id, with encoding/json.
func decodeEntitySlow(data []byte, id string) (Result, error) {
	var e entity
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&e); err != nil {
		return Result{}, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Result{}, fmt.Errorf("%w: data after the JSON object", ErrMalformed)
	}
	if e.ID == nil {
		return Result{}, fmt.Errorf("%w: no id", ErrMalformed)
	}
	if *e.ID != id {
		return Result{}, fmt.Errorf("%w: answer is for id %s", ErrMalformed, shortID(*e.ID))
	}
	rec := &Record{ID: id, Label: e.Label}
	if e.Location == nil {
		return Result{Status: NoLocation, Record: rec}, nil
	}
	l := e.Location
	rec.GeoLabel, rec.StreetAddress, rec.CityLabel = l.GeoLabel, l.StreetAddress, l.CityLabel
	rec.PostalCode, rec.CountryLabel = l.PostalCode, l.CountryLabel
	rec.Latitude, rec.Longitude = l.Latitude, l.Longitude
	return Result{Status: Found, Record: rec}, nil
}

// shortID quotes id for an error or log line, cut to a readable length: a
// hostile ID may be kilobytes long.
func shortID(id string) string {
	const max = 64
	if len(id) <= max {
		return fmt.Sprintf("%q", id)
	}
	return fmt.Sprintf("%q...(%d bytes)", id[:max], len(id))
}
