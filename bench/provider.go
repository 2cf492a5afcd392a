package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/snowgate/snowgate/sim"
)

// Second is what the provider saw in one second (or one bucket) of a
// phase. Requests count when they arrive; the others when they are
// answered.
type Second struct {
	Requests  int `json:"requests"`
	Throttled int `json:"throttled"` // answered 429
	Failed    int `json:"failed"`    // 5xx, or no answer (hang, client gone)
	// Answers are usable answers: 404, or 200 with a complete JSON body.
	// In a backfill of distinct IDs, each is one ID resolved.
	Answers int `json:"answers"`
}

// provider is the simulator served behind a counting wrapper: the
// simulator counts admissions per second, but the picture of a client that
// hammers a provider needs every request, 429s included.
type provider struct {
	*sim.Server
	url   string
	srv   *http.Server
	done  chan struct{}
	start time.Time

	answers atomic.Int64 // usable answers so far
	mu      sync.Mutex   // guards buckets
	buckets []Second     // counts per bucket since start
}

// maxRecordedBody bounds what the wrapper keeps of an answer to check that
// it is complete JSON; an entity is a few hundred bytes.
const maxRecordedBody = 64 << 10

// startProvider serves a new simulator on 127.0.0.1. Close it.
func startProvider(ctx context.Context, cfg sim.Config, logger *slog.Logger) (*provider, error) {
	cfg.Logger = logger
	s, err := sim.New(cfg)
	if err != nil {
		return nil, err
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("provider listen: %w", err)
	}
	p := &provider{Server: s, url: "http://" + ln.Addr().String(), done: make(chan struct{}), start: time.Now()}
	p.srv = &http.Server{
		Handler:           p,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(slog.DiscardHandler, slog.LevelError),
	}
	go func() {
		defer close(p.done)
		_ = p.srv.Serve(ln) // ErrServerClosed after Close; nothing else to report
	}()
	return p, nil
}

// Close ends every wait of the simulator and every connection.
func (p *provider) Close() {
	_ = p.Server.Close() // never fails: it only ends the waits
	_ = p.srv.Close()
	<-p.done
}

// template is the locapi URL template for this provider.
func (p *provider) template() string {
	return p.url + sim.EntitiesPath + "{id}?select=id,label,location"
}

func (p *provider) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.count(time.Now(), func(s *Second) { s.Requests++ })
	rec := &recorder{ResponseWriter: w}
	p.Server.ServeHTTP(rec, r)
	usable := rec.status == http.StatusNotFound || rec.status == http.StatusOK && !rec.overflow && json.Valid(rec.body)
	if usable {
		p.answers.Add(1)
	}
	p.count(time.Now(), func(s *Second) {
		switch {
		case rec.status == http.StatusTooManyRequests:
			s.Throttled++
		case rec.status == 0 || rec.status >= 500:
			s.Failed++
		case usable:
			s.Answers++
		}
	})
}

// bucket is the resolution of the provider's counts: fine enough to draw a
// baseline block that lasts under a second.
const bucket = 250 * time.Millisecond

func (p *provider) count(t time.Time, f func(*Second)) {
	i := int(t.Sub(p.start) / bucket)
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(p.buckets) <= i {
		p.buckets = append(p.buckets, Second{})
	}
	f(&p.buckets[i])
}

// window returns the counts per bucket from since to until, re-based so
// that index 0 is the bucket starting at since.
func (p *provider) window(since, until time.Time) []Second {
	from := max(0, int(since.Sub(p.start)/bucket))
	to := int(until.Sub(p.start)/bucket) + 1
	p.mu.Lock()
	defer p.mu.Unlock()
	to = min(to, len(p.buckets))
	if from >= to {
		return nil
	}
	return append([]Second(nil), p.buckets[from:to]...)
}

// perSecond adds up buckets into whole seconds.
func perSecond(buckets []Second) []Second {
	per := int(time.Second / bucket)
	out := make([]Second, (len(buckets)+per-1)/per)
	for i, b := range buckets {
		s := &out[i/per]
		s.Requests += b.Requests
		s.Throttled += b.Throttled
		s.Failed += b.Failed
		s.Answers += b.Answers
	}
	return out
}

// recorder keeps the status and (a bounded copy of) the body of an answer.
type recorder struct {
	http.ResponseWriter
	status   int
	body     []byte
	overflow bool
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	if len(r.body)+len(b) <= maxRecordedBody {
		r.body = append(r.body, b...)
	} else {
		r.overflow = true
	}
	return r.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection: the simulator
// hijacks it to abort a hanging request when it closes.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
