// Package locapi is the client of the upstream location provider
// (GET /api/v2/entities/{id}?select=id,label,location): the ID escaped as one
// path segment, one shared rate limiter per provider that slows down on 429
// and recovers (AIMD), a cap on requests in flight, retries with backoff and
// Retry-After within the caller's deadline, and decoding into a typed Record.
package locapi

import (
	"errors"
	"fmt"
	"unicode/utf8"
)

// Status is what the provider said about one ID. Failures are not a Status:
// they are returned as errors, because they are not answers and must never be
// cached.
type Status uint8

const (
	// Found: the entity exists and has a location.
	Found Status = iota + 1
	// NotFound: the provider answered 404.
	NotFound
	// NoLocation: the entity exists but its location is null or absent.
	NoLocation
)

func (s Status) String() string {
	switch s {
	case Found:
		return "found"
	case NotFound:
		return "not_found"
	case NoLocation:
		return "no_location"
	}
	return "unknown"
}

// Record is a standardized location. Its JSON encoding is the form the
// cache's L2 keeps. The gateway writes its VARIANT object with the same keys
// by itself (gateway.EncodeRecord), and backfill --via reads that object
// back into a Record. JSON nulls from the provider stay nil.
type Record struct {
	ID            string   `json:"id"`
	Label         *string  `json:"label"`
	GeoLabel      *string  `json:"geo_label"`
	StreetAddress *string  `json:"street_address"`
	CityLabel     *string  `json:"city_label"`
	PostalCode    *string  `json:"postal_code"`
	CountryLabel  *string  `json:"country_label"`
	Latitude      *float64 `json:"latitude"`
	Longitude     *float64 `json:"longitude"`
}

// Result is the provider's answer for one ID. Record is set when Status is
// Found, and also for NoLocation (ID and Label only).
type Result struct {
	Status Status
	Record *Record
	// Requests is how many requests Lookup sent to the provider for it,
	// every attempt counted (retries and 429s included). Lookup sets it
	// with an error too, so a failed lookup still says what it cost.
	Requests int
}

// ErrInvalidID marks an ID rejected before any request: empty, longer than
// the configured maximum, not valid UTF-8, containing control characters, or
// exactly "." or "..". It is the caller's mistake, not the provider's: never
// retried.
var ErrInvalidID = errors.New("invalid id")

// DefaultMaxIDLen is the longest ID accepted when Config.MaxIDLen is zero.
const DefaultMaxIDLen = 256

// ValidateID reports whether id may be sent to the provider.
func ValidateID(id string, maxLen int) error {
	if maxLen <= 0 {
		maxLen = DefaultMaxIDLen
	}
	switch {
	case id == "":
		return errorf(ErrInvalidID, "empty")
	case len(id) > maxLen:
		return errorf(ErrInvalidID, "longer than %d bytes", maxLen)
	case !utf8.ValidString(id):
		return errorf(ErrInvalidID, "not valid UTF-8")
	case id == "." || id == "..":
		// A dot segment cannot be sent unambiguously: RFC 3986 lets servers
		// and proxies decode %2E and then remove the segment, so the request
		// could reach another resource. No real entity has such an ID.
		return errorf(ErrInvalidID, "%q is a dot path segment", id)
	}
	for _, r := range id {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return errorf(ErrInvalidID, "contains a control character")
		}
	}
	return nil
}

func errorf(kind error, format string, args ...any) error {
	return &reasonError{kind: kind, reason: fmt.Sprintf(format, args...)}
}

// reasonError carries a short reason under a sentinel kind, so callers can
// test errors.Is(err, ErrInvalidID) and still show why.
type reasonError struct {
	kind   error
	reason string
}

func (e *reasonError) Error() string { return e.kind.Error() + ": " + e.reason }
func (e *reasonError) Unwrap() error { return e.kind }
