// Package sim is a SIMULATED location provider, not a real API: an
// http.Handler that imitates GET /api/v2/entities/{id}?select=id,label,location
// with deterministic records, latency, a server-side token bucket and seeded
// faults, and counts what it sees so tests can assert on it. It imports
// nothing else from snowgate.
package sim

import (
	"crypto/subtle"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// EntitiesPath is the prefix of every entity URL the simulator serves.
const EntitiesPath = "/api/v2/entities/"

// Server is the simulated provider. It is safe for concurrent use.
type Server struct {
	cfg   Config
	led   *ledger
	ctr   counters
	paths pathRing
	bufs  sync.Pool    // *[]byte response bodies
	late  atomic.Int64 // mean lateness of wait's timers, in ns

	done      chan struct{} // closed by Close: ends every wait
	closeOnce sync.Once

	// hooks let tests wait for a handler state without sleeping; nil in
	// production, set before the first request.
	onWait func() // a handler starts waiting: a hang or a delay
	onDone func() // a handler returns
	// uncorrected turns off wait's correction for timer lateness.
	uncorrected bool
}

// New validates cfg and returns a simulator. It logs a warning that it is a
// simulator, once.
func New(cfg Config) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:   cfg,
		led:   newLedger(cfg),
		paths: pathRing{max: cfg.MaxPaths},
		done:  make(chan struct{}),
		bufs:  sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }},
	}
	cfg.Logger.Warn("SIMULATOR: this is a simulated location provider, not a real API",
		"seed", cfg.Seed, "latency", cfg.Latency, "jitter", cfg.Jitter, "rate", cfg.Rate, "burst", cfg.Burst,
		"not_found_ratio", cfg.NotFoundRatio, "no_location_ratio", cfg.NoLocationRatio,
		"permanent_fail_ratio", cfg.PermanentFailRatio, "error_rate", cfg.ErrorRate,
		"hang_rate", cfg.HangRate, "slow_rate", cfg.SlowRate, "slow_delay", cfg.SlowDelay,
		"truncate_rate", cfg.TruncateRate, "auth", cfg.Token != "")
	return s, nil
}

// Close ends every wait in progress: latency and slow answers are sent at
// once, hanging requests are aborted. Later requests do not wait. It is
// idempotent and does not stop a listener (see Running).
func (s *Server) Close() error {
	s.closeOnce.Do(func() { close(s.done) })
	return nil
}

// selectAllRaw is the query every correct client sends.
const selectAllRaw = "select=id,label,location"

// request is one parsed entity request.
type request struct {
	id  string
	sel fieldSet
}

// ServeHTTP answers one request. Every response carries
// X-Snowgate-Simulator: true.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.onDone != nil {
		defer s.onDone() // after the in-flight count drops
	}
	s.ctr.total.Add(1)
	s.ctr.inFlight.Add(1)
	defer s.ctr.inFlight.Add(-1)
	if s.cfg.RecordPaths {
		uri := r.RequestURI
		if uri == "" {
			uri = r.URL.RequestURI()
		}
		s.paths.add(uri)
	}
	w.Header()["X-Snowgate-Simulator"] = []string{"true"}
	req, code, msg := s.parse(r)
	if code != 0 {
		s.replyError(w, code, msg)
		return
	}
	kind, h := s.kindOf(req.id)
	index, ok, wait := s.led.admit(h)
	if !ok {
		secs := max(1, int((wait+time.Second-1)/time.Second))
		w.Header()["Retry-After"] = []string{strconv.Itoa(secs)}
		s.replyError(w, http.StatusTooManyRequests, "rate_limited")
		return
	}
	s.answer(w, r, req, kind, h, s.draw(h, index))
}

// parse checks route, method, id, credentials and projection the way a
// real API would, returning a non-zero status for a bad request.
func (s *Server) parse(r *http.Request) (request, int, string) {
	rest, ok := strings.CutPrefix(r.URL.EscapedPath(), EntitiesPath)
	// "." and ".." would be removed by any proxy in front of a real API.
	if !ok || rest == "" || rest == "." || rest == ".." || strings.IndexByte(rest, '/') >= 0 {
		return request{}, http.StatusNotFound, "no_such_route"
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return request{}, http.StatusMethodNotAllowed, "method_not_allowed"
	}
	id, err := url.PathUnescape(rest)
	if err != nil || !validID(id) {
		return request{}, http.StatusBadRequest, "invalid_id"
	}
	if s.cfg.Token != "" && !s.authorized(r.Header.Get("Authorization")) {
		return request{}, http.StatusUnauthorized, "unauthorized"
	}
	if !acceptsJSON(r.Header.Values("Accept")) {
		return request{}, http.StatusNotAcceptable, "not_acceptable"
	}
	sel, ok := parseSelect(r.URL.RawQuery)
	if !ok {
		return request{}, http.StatusBadRequest, "invalid_select"
	}
	return request{id: id, sel: sel}, 0, ""
}

func (s *Server) authorized(header string) bool {
	scheme, token, ok := strings.Cut(header, " ")
	return ok && strings.EqualFold(scheme, "Bearer") &&
		subtle.ConstantTimeCompare([]byte(token), []byte(s.cfg.Token)) == 1
}

// acceptsJSON reports whether the Accept header (absent means anything)
// admits application/json; q-values are ignored.
func acceptsJSON(values []string) bool {
	if len(values) == 0 {
		return true
	}
	for _, v := range values {
		for part := range strings.SplitSeq(v, ",") {
			mt, _, _ := strings.Cut(part, ";")
			switch strings.ToLower(strings.TrimSpace(mt)) {
			case "application/json", "application/*", "*/*":
				return true
			}
		}
	}
	return false
}

// parseSelect reads ?select=: absent means every field; otherwise a
// comma-separated subset of id,label,location. Other parameters are
// ignored, as most APIs do.
func parseSelect(rawQuery string) (fieldSet, bool) {
	if rawQuery == selectAllRaw || rawQuery == "" {
		return selectAll, true
	}
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return 0, false
	}
	vals, ok := q["select"]
	if !ok {
		return selectAll, true
	}
	var sel fieldSet
	for _, v := range vals {
		for f := range strings.SplitSeq(v, ",") {
			switch strings.TrimSpace(f) {
			case "id":
				sel |= selID
			case "label":
				sel |= selLabel
			case "location":
				sel |= selLocation
			default:
				return 0, false
			}
		}
	}
	return sel, true
}

// EntityURL is base + the entity path of id, escaped as exactly one path
// segment, + ?select=id,label,location: the URL a correct client requests.
func EntityURL(base, id string) string {
	return base + EntitiesPath + url.PathEscape(id) + "?" + selectAllRaw
}
