package locapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/time/rate"
)

const entitiesPath = "/api/v2/entities/"

// fake is a hand-written provider: handle answers the n-th request (from 1)
// and every request's raw URI and headers are kept.
type fake struct {
	srv    *httptest.Server
	handle func(w http.ResponseWriter, r *http.Request, n int)

	mu   sync.Mutex // guards uris, auth
	uris []string
	auth []string
}

// newFake starts the fake; configure, if given, adjusts the server first.
func newFake(t *testing.T, handle func(w http.ResponseWriter, r *http.Request, n int), configure ...func(*http.Server)) *fake {
	t.Helper()
	f := &fake{handle: handle}
	f.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.uris = append(f.uris, r.RequestURI)
		f.auth = append(f.auth, r.Header.Get("Authorization"))
		n := len(f.uris)
		f.mu.Unlock()
		f.handle(w, r, n)
	}))
	for _, c := range configure {
		c(f.srv.Config)
	}
	f.srv.Start()
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fake) requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.uris...)
}

func (f *fake) url() string { return f.srv.URL + entitiesPath + "{id}?select=id,label,location" }

// idOf is the ID a request asks for (the server already unescaped it).
func idOf(r *http.Request) string { return strings.TrimPrefix(r.URL.Path, entitiesPath) }

func writeEntity(w http.ResponseWriter, id string) {
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"id":%q,"label":"L","location":{"cityLabel":"Zürich","latitude":47.37,"longitude":null}}`, id)
}

func okHandler(w http.ResponseWriter, r *http.Request, _ int) { writeEntity(w, idOf(r)) }

// newClient builds a client for base with fast backoff unless cfg says
// otherwise, closed when the test ends.
func newClient(t *testing.T, rawURL string, cfg Config) *Client {
	t.Helper()
	cfg.URL = rawURL
	if cfg.BaseBackoff == 0 {
		cfg.BaseBackoff, cfg.MaxBackoff = time.Millisecond, 5*time.Millisecond
	}
	c, err := New(cfg, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

func TestNewRejectsBadConfig(t *testing.T) {
	const tmpl = "http://h/api/v2/entities/{id}"
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no url", Config{}, "no URL"},
		{"bad template", Config{URL: "http://h/entities"}, "exactly once"},
		{"negative burst", Config{URL: tmpl, Burst: -1}, "must not be negative"},
		{"negative concurrency", Config{URL: tmpl, Concurrency: -1}, "must not be negative"},
		{"negative timeout", Config{URL: tmpl, Timeout: -time.Second}, "durations"},
		{"NaN rate", Config{URL: tmpl, Rate: nan()}, "finite"},
		{"min rate above rate", Config{URL: tmpl, Rate: 10, MinRate: 20}, "min rate 20 is above rate 10"},
		{"token with newline", Config{URL: tmpl, Token: "s3cr3t\r\nX-Evil: 1"}, "control character"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(tt.cfg, nil)
			if err == nil {
				c.Close()
				t.Fatalf("New succeeded; want error containing %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New error = %q; want it to contain %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "s3cr3t") {
				t.Fatalf("New error %q contains the token", err)
			}
		})
	}
}

func nan() float64 { var z float64; return z / z }

func TestNewDefaults(t *testing.T) {
	c, err := New(Config{URL: "http://h/api/v2/entities/{id}", Rate: 200}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tests := []struct {
		name      string
		got, want any
	}{
		{"burst", c.cfg.Burst, 1},
		{"concurrency", c.cfg.Concurrency, 64},
		{"timeout", c.cfg.Timeout, 10 * time.Second},
		{"max attempts", c.cfg.MaxAttempts, 8},
		{"max retry time", c.cfg.MaxRetryTime, 2 * time.Minute},
		{"base backoff", c.cfg.BaseBackoff, 50 * time.Millisecond},
		{"max backoff", c.cfg.MaxBackoff, 5 * time.Second},
		{"max id len", c.cfg.MaxIDLen, DefaultMaxIDLen},
		{"min rate", c.cfg.MinRate, 10.0},
		{"rate has headroom", c.Rate(), 200 * headroom},
		{"pool sized to concurrency", c.owned.MaxIdleConnsPerHost, 64},
		{"response header timeout", c.owned.ResponseHeaderTimeout, 10 * time.Second},
		{"bucket starts empty", c.lim.tokens() < 0.5, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Fatalf("got %v; want %v", tt.got, tt.want)
			}
		})
	}
	u := newClient(t, "http://h/api/v2/entities/{id}", Config{})
	if got := u.Rate(); got != 0 {
		t.Fatalf("unlimited Rate() = %v; want 0", got)
	}
}

func TestLookupAnswers(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, _ int) {
		switch id := idOf(r); id {
		case "found":
			writeEntity(w, id)
		case "noloc":
			fmt.Fprintf(w, `{"id":%q,"label":null,"location":null}`, id)
		default:
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"error":"not_found"}`)
		}
	})
	c := newClient(t, f.url(), Config{Token: "tok-123"})
	tests := []struct {
		id         string
		want       Status
		wantRecord bool
	}{
		{"found", Found, true},
		{"noloc", NoLocation, true},
		{"missing", NotFound, false},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			res, err := c.Lookup(context.Background(), tt.id)
			if err != nil {
				t.Fatalf("Lookup: %v", err)
			}
			if res.Status != tt.want || (res.Record != nil) != tt.wantRecord {
				t.Fatalf("got %v record=%v; want %v record=%v", res.Status, res.Record != nil, tt.want, tt.wantRecord)
			}
			if tt.wantRecord && res.Record.ID != tt.id {
				t.Fatalf("record id = %q; want %q", res.Record.ID, tt.id)
			}
		})
	}
	if got := c.Stats(); got.Found != 1 || got.NoLocation != 1 || got.NotFound != 1 || got.Requests != 3 || got.Retries != 0 {
		t.Fatalf("stats = %+v; want 1 found, 1 no location, 1 not found, 3 requests, 0 retries", got)
	}
	for i, a := range f.auth {
		if a != "Bearer tok-123" {
			t.Fatalf("request %d Authorization = %q; want %q", i, a, "Bearer tok-123")
		}
	}
}

func TestLookupRequestShape(t *testing.T) {
	got := make(chan http.Header, 1)
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
		got <- r.Header.Clone()
		if r.Method != http.MethodGet {
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		okHandler(w, r, n)
	})
	c := newClient(t, f.url(), Config{})
	if _, err := c.Lookup(context.Background(), "w1"); err != nil {
		t.Fatalf("Lookup: %v", err)
	}
	h := <-got
	if a := h.Get("Accept"); a != "application/json" {
		t.Fatalf("Accept = %q; want application/json", a)
	}
	if a, ok := h["Authorization"]; ok {
		t.Fatalf("Authorization = %q; want none without a token", a)
	}
	if u, want := f.requests()[0], entitiesPath+"w1?select=id,label,location"; u != want {
		t.Fatalf("request URI = %q; want %q", u, want)
	}
}

// TestLookupHostileIDs checks what reaches a plain HTTP server for IDs that
// try to leave their path segment: one segment that unescapes to the ID, or
// no request at all.
func TestLookupHostileIDs(t *testing.T) {
	f := newFake(t, okHandler)
	c := newClient(t, f.url(), Config{MaxIDLen: 16 << 10})
	for _, tt := range hostileIDs() {
		t.Run(tt.name, func(t *testing.T) {
			before := len(f.requests())
			res, err := c.Lookup(context.Background(), tt.id)
			checkHostile(t, tt, res, err, f.requests()[before:])
		})
	}
}

type hostileID struct {
	name, id string
	invalid  bool // must be refused before any request
}

func hostileIDs() []hostileID {
	return []hostileID{
		{"dot dot admin", "../../admin", false},
		{"slash", "a/b", false},
		{"query and fragment", "x?y=1#z", false},
		{"escaped slash", "%2F", false},
		{"percent alone", "100%", false},
		{"spaces", " a b ", false},
		{"plus and semicolon", "a+b;c=d", false},
		{"backslash", `..\..\admin`, false},
		{"unicode", "Zürich-東京-🚚", false},
		{"leading slash", "/etc/passwd", false},
		{"three dots", "...", false},
		{"10 KB", strings.Repeat("a/", 5<<10), false},
		{"too long", strings.Repeat("x", 16<<10+1), true},
		{"dot", ".", true},
		{"dot dot", "..", true},
		{"empty", "", true},
		{"NUL", "a\x00b", true},
		{"newline", "a\r\nHost: evil", true},
		{"tab", "a\tb", true},
		{"DEL", "a\x7f", true},
		{"C1 control", "a\u0085b", true},
		{"invalid UTF-8", "a\xffb", true},
	}
}

func checkHostile(t *testing.T, tt hostileID, res Result, err error, uris []string) {
	t.Helper()
	if tt.invalid {
		if !errors.Is(err, ErrInvalidID) {
			t.Fatalf("Lookup error = %v; want ErrInvalidID", err)
		}
		if len(uris) != 0 {
			t.Fatalf("server saw %q; want no request", uris)
		}
		return
	}
	if err != nil {
		t.Fatalf("Lookup: %v", err)
	}
	if res.Record == nil || res.Record.ID != tt.id {
		t.Fatalf("record = %+v; want one for the ID", res.Record)
	}
	if len(uris) != 1 {
		t.Fatalf("server saw %d requests; want 1", len(uris))
	}
	path, query, _ := strings.Cut(uris[0], "?")
	seg, ok := strings.CutPrefix(path, entitiesPath)
	if !ok || strings.Contains(seg, "/") || query != "select=id,label,location" {
		t.Fatalf("raw request URI %.200q; want %s<one segment>?select=id,label,location", uris[0], entitiesPath)
	}
	if got, err := url.PathUnescape(seg); err != nil || got != tt.id {
		t.Fatalf("segment %.200q unescapes to %.200q, %v; want the ID", seg, got, err)
	}
}

func TestLookupRetries(t *testing.T) {
	status := func(code int) func(http.ResponseWriter, *http.Request) {
		return func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(code) }
	}
	body := func(s string) func(http.ResponseWriter, *http.Request) {
		return func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, s) }
	}
	ok := func(w http.ResponseWriter, r *http.Request) { writeEntity(w, idOf(r)) }
	hang := func(_ http.ResponseWriter, r *http.Request) { <-r.Context().Done() }
	cutShort := func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Length", "200")
		fmt.Fprint(w, `{"id":"w1","lab`)
	}
	reset := func(w http.ResponseWriter, _ *http.Request) {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
	}
	tests := []struct {
		name  string
		seq   []func(http.ResponseWriter, *http.Request)
		check func(ClientStats) bool
	}{
		{"500 then ok", seq(status(500), ok), func(s ClientStats) bool { return s.ServerErrors == 1 }},
		{"502 503 then ok", seq(status(502), status(503), ok), func(s ClientStats) bool { return s.ServerErrors == 2 }},
		{"429 then ok", seq(status(429), ok), func(s ClientStats) bool { return s.Throttled == 1 }},
		{"truncated json", seq(body(`{"id":"w1","loc`), ok), func(s ClientStats) bool { return s.Malformed == 1 }},
		{"body cut short", seq(cutShort, ok), func(s ClientStats) bool { return s.NetErrors == 1 }},
		{"html 200", seq(body("<html>maintenance</html>"), ok), func(s ClientStats) bool { return s.Malformed == 1 }},
		{"other id", seq(body(`{"id":"w2","location":null}`), ok), func(s ClientStats) bool { return s.Malformed == 1 }},
		{"hang", seq(hang, ok), func(s ClientStats) bool { return s.NetErrors == 1 }},
		{"connection reset", seq(reset, ok), func(s ClientStats) bool { return s.NetErrors == 1 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) { tt.seq[min(n, len(tt.seq))-1](w, r) })
			// Only the hang waits for the timeout; 2 s keeps a starved
			// machine's slow answer from counting as one more fault.
			c := newClient(t, f.url(), Config{Timeout: 2 * time.Second})
			res, err := c.Lookup(context.Background(), "w1")
			if err != nil || res.Status != Found {
				t.Fatalf("Lookup = %v, %v; want found", res.Status, err)
			}
			st := c.Stats()
			want := int64(len(tt.seq))
			if st.Requests != want || st.Retries != want-1 || !tt.check(st) {
				t.Fatalf("stats = %+v; want %d requests, %d retries and the fault counted", st, want, want-1)
			}
			if got := len(f.requests()); int64(got) != want {
				t.Fatalf("server saw %d requests; want %d", got, want)
			}
		})
	}
}

func seq(fs ...func(http.ResponseWriter, *http.Request)) []func(http.ResponseWriter, *http.Request) {
	return fs
}

func TestLookupNotRetried(t *testing.T) {
	for _, code := range []int{400, 401, 403, 405, 410, 301, 204} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			f := newFake(t, func(w http.ResponseWriter, _ *http.Request, _ int) {
				if code == 301 {
					w.Header().Set("Location", "/elsewhere")
				}
				w.WriteHeader(code)
			})
			c := newClient(t, f.url(), Config{Token: "s3cr3t"})
			_, err := c.Lookup(context.Background(), "w1")
			var se *StatusError
			if !errors.As(err, &se) || se.Code != code {
				t.Fatalf("Lookup error = %v; want a StatusError %d", err, code)
			}
			if want := fmt.Sprintf("provider answered %d", code); !strings.Contains(err.Error(), want) {
				t.Fatalf("error %q does not say %q", err, want)
			}
			if n := len(f.requests()); n != 1 {
				t.Fatalf("server saw %d requests; want 1", n)
			}
			if st := c.Stats(); st.Failures != 1 || st.Retries != 0 {
				t.Fatalf("stats = %+v; want 1 failure, 0 retries", st)
			}
		})
	}
}

func TestLookupGivesUp(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, _ *http.Request, _ int) { w.WriteHeader(http.StatusServiceUnavailable) })
	c := newClient(t, f.url(), Config{MaxAttempts: 3})
	_, err := c.Lookup(context.Background(), "w1")
	if want := `locapi: lookup "w1": giving up after 3 attempts: provider answered 503 Service Unavailable`; err == nil || err.Error() != want {
		t.Fatalf("Lookup error = %v; want %s", err, want)
	}
	if n := len(f.requests()); n != 3 {
		t.Fatalf("server saw %d requests; want 3", n)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in     string
		want   time.Duration
		wantOK bool
	}{
		{"3", 3 * time.Second, true},
		{" 0 ", 0, true},
		{"Sat, 01 Mar 2025 12:00:07 GMT", 7 * time.Second, true},
		{"Saturday, 01-Mar-25 12:00:07 GMT", 7 * time.Second, true},
		{"Sat Mar  1 12:00:07 2025", 7 * time.Second, true},
		{"Sat, 01 Mar 2025 11:00:00 GMT", 0, true}, // in the past: now
		{"", 0, false},
		{"-1", 0, false},
		{"1.5", 0, false},
		{"soon", 0, false},
		{"99999999999", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, ok := parseRetryAfter(tt.in, now)
			if got != tt.want || ok != tt.wantOK {
				t.Fatalf("parseRetryAfter(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

// TestRetryAfterHonoured measures, at the server, the gap between a 429
// carrying Retry-After and the retry: backoff alone is at most 5ms here.
func TestRetryAfterHonoured(t *testing.T) {
	tests := []struct {
		name   string
		header func() string
		min    time.Duration
	}{
		{"seconds", func() string { return "1" }, time.Second},
		// Whole seconds: now+2s truncated is at least 1s away.
		{"http date", func() string { return time.Now().Add(2 * time.Second).UTC().Format(http.TimeFormat) }, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			firsts := make(chan time.Time, 1)
			gaps := make(chan time.Duration, 1)
			f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
				if n == 1 {
					firsts <- time.Now()
					w.Header().Set("Retry-After", tt.header())
					w.WriteHeader(http.StatusServiceUnavailable)
					return
				}
				gaps <- time.Since(<-firsts)
				writeEntity(w, idOf(r))
			})
			c := newClient(t, f.url(), Config{})
			if _, err := c.Lookup(context.Background(), "w1"); err != nil {
				t.Fatalf("Lookup: %v", err)
			}
			gap := <-gaps
			// A few ms of slack for the header's own clock reading.
			if gap < tt.min-20*time.Millisecond {
				t.Fatalf("retry came %v after the 503; want at least %v", gap, tt.min)
			}
		})
	}
}

// TestDeadlineFailsFast checks that no wait sleeps into a deadline it
// cannot meet: the lookup fails at once, well before the deadline.
func TestDeadlineFailsFast(t *testing.T) {
	tests := []struct {
		name    string
		handle  func(w http.ResponseWriter, r *http.Request, n int)
		cfg     Config
		wantReq int
	}{
		{"retry-after past deadline", func(w http.ResponseWriter, _ *http.Request, _ int) {
			w.Header().Set("Retry-After", "30")
			w.WriteHeader(http.StatusTooManyRequests)
		}, Config{}, 1},
		{"limiter token past deadline", okHandler, Config{Rate: 0.01}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, tt.handle)
			c := newClient(t, f.url(), tt.cfg)
			// Long enough that failing "at once" holds on a starved machine;
			// the waits above (30 s, 100 s) are longer still.
			const budget = 20 * time.Second
			ctx, cancel := context.WithTimeout(context.Background(), budget)
			defer cancel()
			start := time.Now()
			_, err := c.Lookup(ctx, "w1")
			took := time.Since(start)
			if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "would pass the deadline") {
				t.Fatalf("Lookup error = %v; want a fail-fast deadline error", err)
			}
			if took > budget/2 {
				t.Fatalf("Lookup took %v; want it to fail at once, long before the %v deadline", took, budget)
			}
			if n := len(f.requests()); n != tt.wantReq {
				t.Fatalf("server saw %d requests; want %d", n, tt.wantReq)
			}
		})
	}
}

// TestSleepFailsFast covers the backoff wait, whose length is random and so
// is tested here rather than through Lookup.
func TestSleepFailsFast(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	err := sleep(ctx, "a retry", time.Hour)
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 10*time.Second {
		t.Fatalf("sleep = %v after %v; want DeadlineExceeded at once", err, time.Since(start))
	}
	cctx, ccancel := context.WithCancel(context.Background())
	ccancel()
	if err := sleep(cctx, "a retry", time.Millisecond); !errors.Is(err, context.Canceled) {
		t.Fatalf("sleep on a canceled context = %v; want Canceled", err)
	}
}

func TestBackoffRange(t *testing.T) {
	c := newClient(t, "http://h/{id}", Config{BaseBackoff: 100 * time.Millisecond, MaxBackoff: time.Second})
	for n, ceil := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 4: 800 * time.Millisecond, 5: time.Second, 60: time.Second} {
		for range 200 {
			if d := c.backoff(n); d < 0 || d > ceil {
				t.Fatalf("backoff(%d) = %v; want within [0, %v]", n, d, ceil)
			}
		}
	}
}

func TestDeadlineWhileWaitingForSlot(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
		entered <- struct{}{}
		<-release
		okHandler(w, r, n)
	})
	c := newClient(t, f.url(), Config{Concurrency: 1})
	done := make(chan error, 1)
	go func() { _, err := c.Lookup(context.Background(), "first"); done <- err }()
	<-entered
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := c.Lookup(ctx, "second")
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "concurrency slot") {
		t.Fatalf("Lookup error = %v; want a deadline while waiting for a concurrency slot", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("first Lookup: %v", err)
	}
	if n := len(f.requests()); n != 1 {
		t.Fatalf("server saw %d requests; want 1", n)
	}
}

func TestMaxRetryTime(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, _ *http.Request, _ int) { w.WriteHeader(http.StatusInternalServerError) })
	const budget, backoff = 300 * time.Millisecond, 20 * time.Millisecond
	c := newClient(t, f.url(), Config{MaxRetryTime: budget, MaxAttempts: 1000,
		BaseBackoff: backoff, MaxBackoff: backoff})
	start := time.Now()
	_, err := c.Lookup(context.Background(), "w1")
	took := time.Since(start)
	// DeadlineExceeded rather than "giving up after 1000 attempts" shows the
	// budget ended the lookup. It ends at the budget, or one backoff before
	// when the next wait would pass it; a busy machine only makes it later,
	// so the upper bound is a hang guard.
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Lookup error = %v; want DeadlineExceeded", err)
	}
	if took < budget-backoff || took > 30*time.Second {
		t.Fatalf("Lookup took %v; want the %v budget used up", took, budget)
	}
}

func TestConcurrencyCap(t *testing.T) {
	const limit, callers = 3, 12
	var inflight, peak atomic.Int64
	entered := make(chan struct{}, callers)
	release := make(chan struct{})
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
		cur := inflight.Add(1)
		for p := peak.Load(); cur > p && !peak.CompareAndSwap(p, cur); p = peak.Load() {
		}
		entered <- struct{}{}
		<-release
		inflight.Add(-1)
		okHandler(w, r, n)
	})
	c := newClient(t, f.url(), Config{Concurrency: limit})
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for i := range callers {
		wg.Go(func() {
			_, err := c.Lookup(context.Background(), fmt.Sprint("id", i))
			errs <- err
		})
	}
	for range limit {
		<-entered
	}
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("Lookup: %v", err)
		}
	}
	if got := peak.Load(); got != limit {
		t.Fatalf("peak requests in flight = %d; want %d", got, limit)
	}
}

// TestSecretsHidden runs every failure path with a debug logger and checks
// that the token reaches the provider and nothing else.
func TestSecretsHidden(t *testing.T) {
	const token = "s3cr3t-T0KEN"
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
		switch idOf(r) {
		case "unauthorized":
			w.WriteHeader(http.StatusUnauthorized)
		case "throttled":
			w.WriteHeader(http.StatusTooManyRequests)
		case "garbage":
			fmt.Fprint(w, "{")
		default:
			w.WriteHeader(http.StatusInternalServerError)
		}
	})
	var errs []error
	c := newClient(t, f.url(), Config{Token: token, Logger: logger, MaxAttempts: 2, Rate: 1000})
	for _, id := range []string{"unauthorized", "throttled", "garbage", "broken", "a\x00"} {
		_, err := c.Lookup(context.Background(), id)
		errs = append(errs, err)
	}
	dead := newClient(t, "http://127.0.0.1:1/{id}", Config{Token: token, Logger: logger, MaxAttempts: 2})
	_, err := dead.Lookup(context.Background(), "w1")
	errs = append(errs, err)
	for i, err := range errs {
		if err == nil {
			t.Fatalf("lookup %d succeeded; want an error", i)
		}
		if strings.Contains(err.Error(), token) {
			t.Fatalf("error %q contains the token", err)
		}
	}
	if logs.Len() == 0 || strings.Contains(logs.String(), token) {
		t.Fatalf("logs (%d bytes) contain the token or are empty:\n%s", logs.Len(), logs.String())
	}
	for _, a := range f.auth {
		if a != "Bearer "+token {
			t.Fatalf("Authorization = %q; want the bearer token", a)
		}
	}
}

func TestMetrics(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
		switch idOf(r) {
		case "missing":
			w.WriteHeader(http.StatusNotFound)
		case "flaky":
			if n == 2 {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			writeEntity(w, "flaky")
		default:
			writeEntity(w, idOf(r))
		}
	})
	reg := prometheus.NewPedanticRegistry()
	c, err := New(Config{URL: f.url(), Rate: 1000, BaseBackoff: time.Millisecond}, reg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, id := range []string{"w1", "flaky", "missing"} {
		if _, err := c.Lookup(context.Background(), id); err != nil {
			t.Fatalf("Lookup(%s): %v", id, err)
		}
	}
	tests := []struct {
		name      string
		got, want float64
	}{
		{"requests 200", testutil.ToFloat64(c.m.requests.WithLabelValues("200")), 2},
		{"requests 503", testutil.ToFloat64(c.m.requests.WithLabelValues("503")), 1},
		{"requests 404", testutil.ToFloat64(c.m.requests.WithLabelValues("404")), 1},
		{"retries", testutil.ToFloat64(c.m.retries), 1},
		{"rate limit", testutil.ToFloat64(c.m.rateLimit), 1000 * headroom},
		{"inflight back to zero", testutil.ToFloat64(c.m.inflight), 0},
		{"series registered", float64(mustCount(t, reg)), 7}, // the budget fallback gauge included
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Fatalf("got %v; want %v", tt.got, tt.want)
			}
		})
	}
	if _, err := New(Config{URL: f.url()}, reg); err == nil || !strings.Contains(err.Error(), "registering metrics") {
		t.Fatalf("second New on one registry: err = %v; want a registration error", err)
	}
}

func mustCount(t *testing.T, reg *prometheus.Registry) int {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), "snowgate_upstream_") {
			n++
		}
	}
	return n
}

// TestClose checks that Close cancels a lookup stuck on a hanging provider,
// that later lookups fail with ErrClosed, and that no connection goroutine
// of the client outlives it.
func TestClose(t *testing.T) {
	entered := make(chan struct{})
	var once sync.Once
	var opened atomic.Int64
	closed := make(chan struct{}, 64)
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if idOf(r) == "hang" {
			once.Do(func() { close(entered) })
			<-r.Context().Done()
			return
		}
		okHandler(w, r, n)
	}, func(srv *http.Server) {
		srv.ConnState = func(_ net.Conn, s http.ConnState) {
			switch s {
			case http.StateNew:
				opened.Add(1)
			case http.StateClosed:
				closed <- struct{}{}
			}
		}
	})
	c, err := New(Config{URL: f.url()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Lookup(context.Background(), "w1"); err != nil { // leaves an idle connection
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := c.Lookup(context.Background(), "hang"); done <- err }()
	<-entered
	c.Close()
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Fatalf("in-flight Lookup error = %v; want ErrClosed", err)
	}
	if _, err := c.Lookup(context.Background(), "w1"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Lookup after Close error = %v; want ErrClosed", err)
	}
	c.Close() // idempotent
	for range opened.Load() {
		<-closed
	}
	waitNoGoroutines(t, "net/http.(*persistConn)", "locapi.(*Client)")
}

// waitNoGoroutines fails unless, within a few seconds, no goroutine's stack
// mentions any of frames. The server seeing the connections closed does not
// mean the client's reader goroutines have returned yet, hence the retry.
func waitNoGoroutines(t *testing.T, frames ...string) {
	t.Helper()
	if g := leftover(frames...); g != "" {
		t.Fatalf("goroutine left after Close:\n%s", g)
	}
}

// leftover polls the goroutine stacks for up to 30 s (a hang guard: a
// starved machine can be slow to end a goroutine) and returns one that
// still mentions any of frames, or "".
func leftover(frames ...string) string {
	deadline := time.Now().Add(30 * time.Second)
	for {
		buf := make([]byte, 1<<20)
		stacks := string(buf[:runtime.Stack(buf, true)])
		found := ""
		for _, g := range strings.Split(stacks, "\n\n") {
			for _, f := range frames {
				if strings.Contains(g, f) && !strings.Contains(g, "locapi.leftover") {
					found = g
				}
			}
		}
		if found == "" || time.Now().After(deadline) {
			return found
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestMain fails the package if any test left a Lookup or a client
// connection running.
func TestMain(m *testing.M) {
	code := m.Run()
	if g := leftover("locapi.(*Client)", "net/http.(*persistConn)"); g != "" && code == 0 {
		fmt.Fprintf(os.Stderr, "goroutine left after the tests:\n%s\n", g)
		code = 1
	}
	os.Exit(code)
}

// sendRecorder is a Transport that records when each request left, then
// passes it to next or, without one, answers it with an entity without
// location.
type sendRecorder struct {
	next  http.RoundTripper
	mu    sync.Mutex // guards sends, in the order of the clock
	sends []time.Time
}

func (s *sendRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	s.mu.Lock()
	s.sends = append(s.sends, time.Now())
	s.mu.Unlock()
	if s.next != nil {
		return s.next.RoundTrip(r)
	}
	body := fmt.Sprintf(`{"id":%q,"location":null}`, strings.TrimPrefix(r.URL.Path, entitiesPath))
	return &http.Response{StatusCode: http.StatusOK, Header: http.Header{}, Request: r,
		Body: io.NopCloser(strings.NewReader(body))}, nil
}

// TestGateCapsStaleTokens makes every pacer token stale at once, as when
// all waiters wake late after a stall, and checks that the send times still
// conform to a bucket of the client's rate and half the configured burst.
func TestGateCapsStaleTokens(t *testing.T) {
	const callers, burst = 40, 10
	rec := &sendRecorder{}
	c := newClient(t, "http://provider.invalid"+entitiesPath+"{id}", Config{Rate: 100, Burst: burst, Transport: rec})
	c.lim.setLimit(float64(rate.Inf))
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			if _, err := c.Lookup(context.Background(), fmt.Sprint("id", i)); err != nil {
				t.Errorf("Lookup: %v", err)
			}
		})
	}
	wg.Wait()
	sends := rec.sends
	slices.SortFunc(sends, time.Time.Compare)
	r := c.Rate()
	for i := range sends {
		for j := i; j < len(sends); j++ {
			// +1: a request leaves a moment after the gate let it through.
			allowed := float64(burst/2) + r*sends[j].Sub(sends[i]).Seconds() + 1
			if n := float64(j - i + 1); n > allowed {
				t.Fatalf("%v requests sent within %v; a bucket of %g/s and burst %d allows %.1f",
					n, sends[j].Sub(sends[i]), r, burst/2, allowed)
			}
		}
	}
}

func TestThrottleLowersRate(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if n == 1 {
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		okHandler(w, r, n)
	})
	c := newClient(t, f.url(), Config{Rate: 1000})
	if _, err := c.Lookup(context.Background(), "w1"); err != nil {
		t.Fatalf("Lookup: %v", err)
	}
	// Recovery may have added a little since the cut.
	if got, want := c.Rate(), 1000*headroom*cutFactor; got < want || got > want+5 {
		t.Fatalf("Rate() after one 429 = %g; want about %g", got, want)
	}
	if got := c.Stats().Throttled; got != 1 {
		t.Fatalf("Throttled = %d; want 1", got)
	}
}
