package extfunc

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
)

// got is one request the fake service received.
type got struct {
	method string
	header http.Header
	body   []byte // decompressed; nil without a body
	at     time.Time
}

// answer is what the fake service does with the n-th request (from 0).
type answer func(w http.ResponseWriter, r *http.Request, n int)

// fakeService records every request and answers it with script.
type fakeService struct {
	t      *testing.T
	url    string
	script answer
	mu     sync.Mutex
	log    []got // guarded by mu
}

func newService(t *testing.T, script answer) *fakeService {
	s := &fakeService{t: t, script: script}
	srv := httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(srv.Close)
	s.url = srv.URL + "/resolve_location"
	return s
}

func (s *fakeService) serve(w http.ResponseWriter, r *http.Request) {
	g := got{method: r.Method, header: r.Header.Clone(), at: time.Now()}
	var rd io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			s.t.Errorf("gzip request body: %v", err)
			return
		}
		rd = zr
	}
	if b, err := io.ReadAll(rd); err == nil && len(b) > 0 {
		g.body = b
	}
	s.mu.Lock()
	s.log = append(s.log, g)
	n := len(s.log) - 1
	s.mu.Unlock()
	s.script(w, r, n)
}

func (s *fakeService) requests() []got {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]got(nil), s.log...)
}

func (s *fakeService) methods() string {
	var m []string
	for _, g := range s.requests() {
		m = append(m, g.method)
	}
	return strings.Join(m, ",")
}

// statuses answers the n-th request statuses[n]; 200 with a one-row answer.
func statuses(codes ...int) answer {
	return func(w http.ResponseWriter, _ *http.Request, n int) {
		code := codes[min(n, len(codes)-1)]
		if code == http.StatusOK {
			fmt.Fprint(w, `{"data":[[0,"ok"]]}`)
			return
		}
		w.Header().Set("Retry-After", "0")
		w.WriteHeader(code)
		fmt.Fprintf(w, "answer %d", n)
	}
}

var testFunction = Function{Name: "RESOLVE_LOCATION", Signature: "(ID VARCHAR)", ReturnType: "VARIANT"}

func newTestClient(t *testing.T, url string, cfg Config) *Client {
	t.Helper()
	if cfg.Function == (Function{}) {
		cfg.Function = testFunction
	}
	if cfg.BaseBackoff == 0 {
		cfg.BaseBackoff, cfg.MaxBackoff = time.Millisecond, 5*time.Millisecond
	}
	if cfg.PollFirst == 0 {
		cfg.PollFirst, cfg.PollMax = time.Millisecond, 5*time.Millisecond
	}
	c, err := New(url, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

var oneRow = Batch{QueryID: "q1", BatchID: "q1:1:1:0:0", Body: []byte(`{"data":[[0,"a"]]}`)}

// TestHeadersSentExactly checks every header of a POST and of a poll.
func TestHeadersSentExactly(t *testing.T) {
	s := newService(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if n == 0 {
			w.WriteHeader(http.StatusAccepted)
			return
		}
		statuses(200)(w, r, n)
	})
	c := newTestClient(t, s.url, Config{Gzip: true, UserAgent: "snowflake/1.0",
		Headers: map[string]string{"sf-custom-snowgate-secret": "s3cret", HeaderBatchID: "not this"}})
	if _, _, err := c.Post(context.Background(), oneRow); err != nil {
		t.Fatal(err)
	}
	common := map[string]string{
		"Accept-Encoding":                         "gzip",
		"User-Agent":                              "snowflake/1.0",
		"Sf-External-Function-Format":             "json",
		"Sf-External-Function-Format-Version":     "1.0",
		"Sf-External-Function-Current-Query-Id":   "q1",
		"Sf-External-Function-Query-Batch-Id":     "q1:1:1:0:0",
		"Sf-External-Function-Name":               "RESOLVE_LOCATION",
		"Sf-External-Function-Name-Base64":        base64.StdEncoding.EncodeToString([]byte("RESOLVE_LOCATION")),
		"Sf-External-Function-Signature":          "(ID VARCHAR)",
		"Sf-External-Function-Signature-Base64":   "KElEIFZBUkNIQVIp",
		"Sf-External-Function-Return-Type":        "VARIANT",
		"Sf-External-Function-Return-Type-Base64": "VkFSSUFOVA==", // as in Snowflake's captured request
		"Sf-Custom-Snowgate-Secret":               "s3cret",
	}
	post := map[string]string{"Content-Type": "application/json", "Content-Encoding": "gzip"}
	reqs := s.requests()
	if len(reqs) != 2 || reqs[0].method != http.MethodPost || reqs[1].method != http.MethodGet {
		t.Fatalf("requests %s; want POST,GET", s.methods())
	}
	for i, r := range reqs {
		want := map[string]string{}
		for k, v := range common {
			want[k] = v
		}
		if r.method == http.MethodPost {
			for k, v := range post {
				want[k] = v
			}
		}
		for k := range r.header {
			if _, ok := want[k]; !ok && k != "Content-Length" {
				t.Errorf("request %d (%s): unexpected header %s: %q", i, r.method, k, r.header[k])
			}
		}
		for k, v := range want {
			if vs := r.header.Values(k); len(vs) != 1 || vs[0] != v {
				t.Errorf("request %d (%s): header %s = %q; want %q", i, r.method, k, vs, v)
			}
		}
	}
	if string(reqs[0].body) != string(oneRow.Body) || reqs[1].body != nil {
		t.Errorf("bodies: POST %q, GET %q; want %q and none", reqs[0].body, reqs[1].body, oneRow.Body)
	}
}

func TestPostRetriesAndPolls(t *testing.T) {
	tests := []struct {
		name    string
		script  answer
		cfg     Config
		methods string
		stats   Stats
		wantErr string // empty: the answer is returned
		status  int    // of the *StatusError, if any
	}{
		{"answered at once", statuses(200), Config{}, "POST", Stats{Requests: 1}, "", 0},
		{"503 then retried", statuses(503, 200), Config{}, "POST,POST",
			Stats{Requests: 2, ServerErrors: 1, Retries: 1}, "", 0},
		{"429 and 500 then retried", statuses(429, 500, 200), Config{}, "POST,POST,POST",
			Stats{Requests: 3, Throttled: 1, ServerErrors: 1, Retries: 2}, "", 0},
		{"202 then polls then 200", statuses(202, 202, 202, 200), Config{}, "POST,GET,GET,GET",
			Stats{Requests: 4, Polls: 3, Accepted: true}, "", 0},
		{"a failed poll is polled again", statuses(202, 202, 503, 200), Config{}, "POST,GET,GET,GET",
			Stats{Requests: 4, Polls: 3, ServerErrors: 1, Retries: 1, Accepted: true}, "", 0},
		{"always 503", statuses(503), Config{MaxAttempts: 3}, "POST,POST,POST",
			Stats{Requests: 3, ServerErrors: 3, Retries: 2}, "gave up after 3 attempts: status 503: answer 2", 503},
		{"failures of POSTs and polls count together", statuses(503, 202, 503, 503), Config{MaxAttempts: 3}, "POST,POST,GET,GET",
			Stats{Requests: 4, ServerErrors: 3, Retries: 2, Polls: 2, Accepted: true}, "gave up after 3 attempts", 503},
		{"400 is not retried", statuses(400), Config{}, "POST", Stats{Requests: 1}, "status 400: answer 0", 400},
		{"a poll answered 404 is not retried", statuses(202, 404), Config{}, "POST,GET",
			Stats{Requests: 2, Polls: 1, Accepted: true}, "status 404", 404},
		{"a dropped connection is retried", func(w http.ResponseWriter, r *http.Request, n int) {
			if n == 0 {
				conn, _, err := w.(http.Hijacker).Hijack()
				if err == nil {
					conn.Close()
				}
				return
			}
			statuses(200)(w, r, n)
		}, Config{}, "POST,POST", Stats{Requests: 2, NetErrors: 1, Retries: 1}, "", 0},
		{"a request past Timeout is retried", func(w http.ResponseWriter, r *http.Request, n int) {
			if n == 0 {
				<-r.Context().Done() // the client gives up on it
				return
			}
			statuses(200)(w, r, n)
		}, Config{Timeout: 2 * time.Second}, "POST,POST", Stats{Requests: 2, NetErrors: 1, Retries: 1}, "", 0}, // the retry too must beat it on a busy machine
		{"an answer larger than MaxResponse is not retried", func(w http.ResponseWriter, _ *http.Request, _ int) {
			fmt.Fprintf(w, `{"data":[[0,"%s"]]}`, strings.Repeat("x", 100))
		}, Config{MaxResponse: 64}, "POST", Stats{Requests: 1}, "answer too large: more than 64 bytes", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newService(t, tt.script)
			c := newTestClient(t, s.url, tt.cfg)
			body, st, err := c.Post(context.Background(), oneRow)
			if tt.wantErr == "" && (err != nil || string(body) != `{"data":[[0,"ok"]]}`) {
				t.Fatalf("Post = %q, %v; want the answer", body, err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr) || body != nil) {
				t.Fatalf("Post = %q, %v; want no answer and an error mentioning %q", body, err, tt.wantErr)
			}
			var se *StatusError
			code := 0
			if errors.As(err, &se) {
				code = se.Code
			}
			if code != tt.status {
				t.Fatalf("Post error %v: status %d; want %d", err, code, tt.status)
			}
			if st != tt.stats {
				t.Errorf("stats = %+v; want %+v", st, tt.stats)
			}
			if m := s.methods(); m != tt.methods {
				t.Errorf("requests %s; want %s", m, tt.methods)
			}
			for _, r := range s.requests() {
				if id := r.header.Get(HeaderBatchID); id != oneRow.BatchID {
					t.Errorf("%s with batch id %q; want %q on every request", r.method, id, oneRow.BatchID)
				}
			}
		})
	}
}

// TestRetryAfterBothForms measures at the service the gap between a 429
// carrying Retry-After and the retry; backoff alone is at most 5ms here.
func TestRetryAfterBothForms(t *testing.T) {
	tests := []struct {
		name   string
		value  func() string
		status int
	}{
		{"delay-seconds", func() string { return "1" }, http.StatusTooManyRequests},
		// Whole seconds: now+2s truncated is at least 1s away.
		{"HTTP-date", func() string { return time.Now().Add(2 * time.Second).UTC().Format(http.TimeFormat) }, http.StatusServiceUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newService(t, func(w http.ResponseWriter, r *http.Request, n int) {
				if n == 0 {
					w.Header().Set("Retry-After", tt.value())
					w.WriteHeader(tt.status)
					return
				}
				statuses(200)(w, r, n)
			})
			c := newTestClient(t, s.url, Config{})
			if _, _, err := c.Post(context.Background(), oneRow); err != nil {
				t.Fatal(err)
			}
			reqs := s.requests()
			if gap := reqs[1].at.Sub(reqs[0].at); gap < time.Second {
				t.Fatalf("retry %v after the %d; want at least the 1s Retry-After asked for", gap, tt.status)
			}
		})
	}
}

// TestRetryAfterCapped checks a Retry-After of an hour waits only
// MaxRetryAfter: the Post must end, long before the hour.
func TestRetryAfterCapped(t *testing.T) {
	s := newService(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if n == 0 {
			w.Header().Set("Retry-After", "3600")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		statuses(200)(w, r, n)
	})
	c := newTestClient(t, s.url, Config{MaxRetryAfter: 10 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, st, err := c.Post(ctx, oneRow); err != nil || st.Retries != 1 {
		t.Fatalf("Post = %+v, %v; want one retry and the answer", st, err)
	}
}

// TestPollTimeout polls a batch that stays accepted: polling must end
// with an error once the next poll would pass PollTimeout.
func TestPollTimeout(t *testing.T) {
	s := newService(t, statuses(202))
	c := newTestClient(t, s.url, Config{PollTimeout: 100 * time.Millisecond, PollFirst: 10 * time.Millisecond, PollMax: 10 * time.Millisecond})
	body, st, err := c.Post(context.Background(), oneRow)
	if err == nil || !strings.Contains(err.Error(), "still accepted (202) after 100ms of polling") || body != nil {
		t.Fatalf("Post = %q, %v; want a polling timeout", body, err)
	}
	m := s.methods()
	if !st.Accepted || st.Polls < 1 || st.Requests != st.Polls+1 || m != "POST"+strings.Repeat(",GET", st.Polls) {
		t.Fatalf("stats %+v, requests %s; want a POST, then only polls", st, m)
	}
}

// TestPostStopsWithContext cancels ctx while Post waits to retry, while it
// polls and while a request is in flight: it must return the cancellation
// and send nothing more.
func TestPostStopsWithContext(t *testing.T) {
	tests := []struct {
		name string
		// answer gets the cancel of Post's ctx.
		answer func(cancel func()) answer
		want   int // requests the service sees
	}{
		{"waiting to retry", func(cancel func()) answer {
			return func(w http.ResponseWriter, _ *http.Request, _ int) {
				w.Header().Set("Retry-After", "30")
				w.WriteHeader(http.StatusServiceUnavailable)
				time.AfterFunc(20*time.Millisecond, cancel) // while the client waits its 30s
			}
		}, 1},
		{"polling", func(cancel func()) answer {
			return func(w http.ResponseWriter, _ *http.Request, n int) {
				if n == 2 {
					cancel()
				}
				w.WriteHeader(http.StatusAccepted)
			}
		}, 3},
		{"a request in flight", func(cancel func()) answer {
			return func(_ http.ResponseWriter, r *http.Request, _ int) {
				cancel()
				<-r.Context().Done()
			}
		}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			s := newService(t, tt.answer(cancel))
			c := newTestClient(t, s.url, Config{})
			if _, _, err := c.Post(ctx, oneRow); !errors.Is(err, context.Canceled) {
				t.Fatalf("Post error = %v; want %v", err, context.Canceled)
			}
			if n := len(s.requests()); n != tt.want {
				t.Fatalf("service saw %d requests; want %d, none after the cancel", n, tt.want)
			}
		})
	}
}

// TestGzip checks a compressed request body arrives whole and a
// compressed answer is read, with or without Config.Gzip.
func TestGzip(t *testing.T) {
	big := bytes.Repeat([]byte(`[0,"abcdefgh"],`), 2000)
	body := append(append([]byte(`{"data":[`), big...), `[1,"z"]]}`...)
	for _, gz := range []bool{true, false} {
		t.Run(fmt.Sprint("gzip ", gz), func(t *testing.T) {
			s := newService(t, func(w http.ResponseWriter, r *http.Request, _ int) {
				w.Header().Set("Content-Encoding", "gzip")
				zw := gzip.NewWriter(w)
				fmt.Fprint(zw, `{"data":[[0,"compressed"]]}`)
				zw.Close()
			})
			c := newTestClient(t, s.url, Config{Gzip: gz})
			ans, _, err := c.Post(context.Background(), Batch{BatchID: "b", Body: body})
			if err != nil || string(ans) != `{"data":[[0,"compressed"]]}` {
				t.Fatalf("Post = %q, %v; want the decompressed answer", ans, err)
			}
			r := s.requests()[0]
			if !bytes.Equal(r.body, body) || (r.header.Get("Content-Encoding") == "gzip") != gz {
				t.Fatalf("request: %d bytes, Content-Encoding %q; want the %d bytes sent, gzip %v",
					len(r.body), r.header.Get("Content-Encoding"), len(body), gz)
			}
			if cl := r.header.Get("Content-Length"); gz && cl == fmt.Sprint(len(body)) {
				t.Fatalf("Content-Length %s with gzip; want the compressed length", cl)
			}
		})
	}
}

func TestCompressOnce(t *testing.T) {
	c := newTestClient(t, "http://127.0.0.1:1/f", Config{Gzip: true})
	b, err := c.Compress(oneRow)
	if err != nil || !b.Gzipped {
		t.Fatalf("Compress = %+v, %v; want a gzipped batch", b, err)
	}
	again, err := c.Compress(b)
	if err != nil || !bytes.Equal(again.Body, b.Body) {
		t.Fatalf("Compress of a compressed batch changed it (%v)", err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(b.Body))
	if err != nil {
		t.Fatal(err)
	}
	if raw, err := io.ReadAll(zr); err != nil || string(raw) != string(oneRow.Body) {
		t.Fatalf("decompressed %q, %v; want %q", raw, err, oneRow.Body)
	}
	plain := newTestClient(t, "http://127.0.0.1:1/f", Config{})
	if b, err := plain.Compress(oneRow); err != nil || b.Gzipped || !bytes.Equal(b.Body, oneRow.Body) {
		t.Fatalf("Compress without Config.Gzip = %+v, %v; want the batch unchanged", b, err)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	tests := []struct {
		url string
		cfg Config
	}{
		{"", Config{}},
		{"ftp://h/f", Config{}},
		{"http://", Config{}},
		{"::", Config{}},
		{"http://h/f", Config{MaxAttempts: -1}},
		{"http://h/f", Config{Timeout: -time.Second}},
		{"http://h/f", Config{MaxResponse: -1}},
	}
	for _, tt := range tests {
		if _, err := New(tt.url, tt.cfg); err == nil || !strings.HasPrefix(err.Error(), "extfunc: ") {
			t.Errorf("New(%q, %+v) error = %v; want one", tt.url, tt.cfg, err)
		}
	}
}
