package sim

import (
	"net/http"
	"strconv"
	"time"
)

type faultKind uint8

const (
	noFault faultKind = iota
	errorFault
	hangFault
	slowFault
	truncateFault
)

// fault is what happens to one admitted request.
type fault struct {
	kind  faultKind
	code  int           // for errorFault
	delay time.Duration // before answering
}

var errorCodes = [...]int{http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable}

// draw decides the fault and delay of the index-th admitted request of the
// ID hashed h. It is a counter-based RNG keyed by (Seed, ID, index): the
// same run gives the same faults whatever the interleaving of requests.
func (s *Server) draw(h uint64, index uint32) fault {
	key := mix(mix(h^uint64(s.cfg.Seed)*0x9e3779b97f4a7c15) + uint64(index))
	var f fault
	f.delay = s.cfg.Latency
	if j := s.cfg.Jitter; j > 0 {
		f.delay += time.Duration((2*unit(derive(key, 1)) - 1) * float64(j))
		f.delay = max(0, f.delay)
	}
	u := unit(derive(key, 0))
	c := s.cfg
	switch {
	case u < c.ErrorRate:
		f.kind, f.code = errorFault, errorCodes[derive(key, 2)%uint64(len(errorCodes))]
	case u < c.ErrorRate+c.HangRate:
		f.kind = hangFault
	case u < c.ErrorRate+c.HangRate+c.SlowRate:
		f.kind = slowFault
		f.delay += c.SlowDelay
	case u < c.ErrorRate+c.HangRate+c.SlowRate+c.TruncateRate:
		f.kind = truncateFault
	}
	return f
}

// answer sends the admitted request's answer after its delay and fault.
func (s *Server) answer(w http.ResponseWriter, r *http.Request, req request, kind Kind, h uint64, f fault) {
	if f.kind == hangFault {
		s.hang(w, r)
		return
	}
	if !s.wait(r, f.delay) {
		s.ctr.status[0].Add(1) // the client left before the answer
		return
	}
	switch f.kind {
	case errorFault:
		s.ctr.faults.Add(1)
		if f.code == http.StatusBadGateway {
			// A proxy in front of the provider answers in HTML: clients
			// must not expect JSON from every error.
			s.reply(w, f.code, "text/html; charset=utf-8", []byte("<html><body><h1>502 Bad Gateway</h1></body></html>\n"))
			return
		}
		s.replyError(w, f.code, "unavailable")
		return
	case slowFault:
		s.ctr.slow.Add(1)
	}
	bp := s.bufs.Get().(*[]byte)
	body := appendAnswer((*bp)[:0], req.id, h, kind, req.sel)
	if f.kind == truncateFault && kind.HTTPStatus() == http.StatusOK {
		s.ctr.truncated.Add(1)
		body = body[:len(body)/2]
	}
	s.reply(w, kind.HTTPStatus(), contentJSON, body)
	*bp = body
	s.bufs.Put(bp)
}

// wait holds the answer for d. It returns false if the client went away
// first; Close cuts it short and the answer is sent at once.
//
// Go timers fire late: the runtime sleeps in whole milliseconds, so an idle
// process wakes up to 1 ms after the deadline, and a "20 ms" provider would
// answer in 21. The timer is set early by the lateness measured so far, so
// the mean wait is d.
func (s *Server) wait(r *http.Request, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	early := min(time.Duration(s.late.Load()), d/2)
	if s.uncorrected {
		early = 0
	}
	start := time.Now()
	t := time.NewTimer(d - early)
	defer t.Stop()
	if s.onWait != nil {
		s.onWait()
	}
	select {
	case <-t.C:
		s.learnLateness(time.Since(start) - (d - early))
		return true
	case <-s.done:
		return true
	case <-r.Context().Done():
		return false
	}
}

// learnLateness folds one timer's lateness into the running mean (weight
// 1/16; the first sample is taken whole) that wait sets its timers early by.
func (s *Server) learnLateness(late time.Duration) {
	for {
		old := s.late.Load()
		next := int64(max(0, late))
		if old != 0 {
			next = old + (next-old)/16
		}
		if s.late.CompareAndSwap(old, next) {
			return
		}
	}
}

// hang never answers: it returns when the client gives up, or aborts the
// connection when the simulator closes.
func (s *Server) hang(w http.ResponseWriter, r *http.Request) {
	s.ctr.status[0].Add(1)
	if s.onWait != nil {
		s.onWait()
	}
	select {
	case <-r.Context().Done():
	case <-s.done:
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			_ = conn.Close() // the dropped connection is the answer
			return
		}
		// Not a real connection (a recorder in a test): say why instead.
		s.ctr.status[0].Add(-1)
		s.replyError(w, http.StatusServiceUnavailable, "simulator_closed")
	}
}

// replyError sends the provider's JSON error shape.
func (s *Server) replyError(w http.ResponseWriter, code int, reason string) {
	bp := s.bufs.Get().(*[]byte)
	b := append((*bp)[:0], `{"error":"`...)
	b = append(b, reason...)
	b = append(b, `"}`...)
	s.reply(w, code, contentJSON, b)
	*bp = b
	s.bufs.Put(bp)
}

const contentJSON = "application/json; charset=utf-8"

// reply sends one response. Header values are set as fresh slices, without
// canonicalizing: the keys are already canonical.
func (s *Server) reply(w http.ResponseWriter, code int, contentType string, body []byte) {
	hdr := w.Header()
	hdr["Content-Type"] = []string{contentType}
	hdr["X-Content-Type-Options"] = []string{"nosniff"}
	hdr["Content-Length"] = []string{strconv.Itoa(len(body))}
	switch code {
	case http.StatusMethodNotAllowed:
		hdr["Allow"] = []string{"GET, HEAD"}
	case http.StatusUnauthorized:
		hdr["Www-Authenticate"] = []string{`Bearer realm="snowgate-sim"`}
	}
	// Counted first: a client may read a large body before Write returns,
	// and its test must then see the count.
	s.ctr.status[code].Add(1)
	w.WriteHeader(code)
	w.Write(body) //nolint:errcheck // the client may be gone; nothing to do
}
