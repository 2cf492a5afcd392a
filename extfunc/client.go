package extfunc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/snowgate/snowgate/backoff"
)

// Config tunes a Client. Zero values are the documented defaults.
type Config struct {
	// Function is named in every request's headers.
	Function Function
	// Headers are added to every request: what the function's HEADERS
	// clause would send (sf-custom-*), such as a secret shared with the
	// service. They cannot replace the protocol's own headers.
	Headers map[string]string
	// UserAgent is sent as User-Agent. Default "snowgate".
	UserAgent string
	// Gzip compresses request bodies (Content-Encoding: gzip) and asks for
	// compressed answers (Accept-Encoding: gzip), as Snowflake does with
	// COMPRESSION = AUTO. Compressed answers are read either way.
	Gzip bool
	// MaxAttempts bounds the requests of one batch that fail with 429, 5xx
	// or no answer, polls included; polls answered 202 do not count.
	// Default 10.
	MaxAttempts int
	// BaseBackoff and MaxBackoff shape the full-jitter backoff between
	// retries. Defaults 100ms and 5s.
	BaseBackoff time.Duration
	MaxBackoff  time.Duration
	// MaxRetryAfter caps the wait a Retry-After header may ask for.
	// Default 30s.
	MaxRetryAfter time.Duration
	// PollFirst is the wait before the first poll of an accepted (202)
	// batch; each later wait is half as long again, up to PollMax.
	// Defaults 50ms and 1s.
	PollFirst time.Duration
	PollMax   time.Duration
	// PollTimeout bounds the polling of one accepted batch. Default 10
	// minutes, after which Snowflake gives up too.
	PollTimeout time.Duration
	// Timeout bounds one request, its answer's body included. Default 60s.
	Timeout time.Duration
	// MaxResponse is the largest answer read, in bytes after
	// decompression; a larger one fails the batch. Default 16 MiB
	// (Snowflake's own limit is 10 MB).
	MaxResponse int64
	// HTTPClient sends the requests. Default: a client of the Client's own,
	// closed by Close.
	HTTPClient *http.Client
}

func (c Config) withDefaults() (Config, error) {
	if c.MaxAttempts < 0 || c.MaxResponse < 0 || c.BaseBackoff < 0 || c.MaxBackoff < 0 || c.MaxRetryAfter < 0 ||
		c.PollFirst < 0 || c.PollMax < 0 || c.PollTimeout < 0 || c.Timeout < 0 {
		return c, errors.New("attempts, sizes and durations must not be negative")
	}
	set := func(d *time.Duration, def time.Duration) {
		if *d == 0 {
			*d = def
		}
	}
	set(&c.BaseBackoff, 100*time.Millisecond)
	set(&c.MaxBackoff, 5*time.Second)
	set(&c.MaxRetryAfter, 30*time.Second)
	set(&c.PollFirst, 50*time.Millisecond)
	set(&c.PollMax, time.Second)
	set(&c.PollTimeout, 10*time.Minute)
	set(&c.Timeout, 60*time.Second)
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 10
	}
	if c.MaxResponse == 0 {
		c.MaxResponse = 16 << 20
	}
	if c.UserAgent == "" {
		c.UserAgent = "snowgate"
	}
	return c, nil
}

// Client sends batches to one external-function endpoint the way
// Snowflake does. It is safe for concurrent use.
type Client struct {
	url    string
	cfg    Config
	policy backoff.Policy
	http   *http.Client
	own    bool      // http is the Client's own, closed by Close
	gzips  sync.Pool // *gzip.Writer, reused across batches
}

// New returns a Client posting to rawURL, an http:// or https:// URL.
func New(rawURL string, cfg Config) (*Client, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("extfunc: url %q: want http://host/path or https://host/path", rawURL)
	}
	cfg, err = cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("extfunc: %w", err)
	}
	c := &Client{url: rawURL, cfg: cfg, policy: backoff.Policy{Base: cfg.BaseBackoff, Max: cfg.MaxBackoff}, http: cfg.HTTPClient}
	if c.http == nil {
		c.http, c.own = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}, true
	}
	c.gzips.New = func() any { return gzip.NewWriter(nil) }
	return c, nil
}

// Close closes the idle connections of the Client's own HTTP client; one
// given in Config is left alone.
func (c *Client) Close() {
	if c.own {
		c.http.CloseIdleConnections()
	}
}

// Batch is one batch to send.
type Batch struct {
	QueryID string // sent as HeaderQueryID; may be empty
	BatchID string // sent as HeaderBatchID on every request of the batch
	// Body is the request JSON (EncodeRequest, EncodeColumn), or, with
	// Gzipped set, that JSON gzip-compressed (Compress), sent as it is.
	Body    []byte
	Gzipped bool
}

// Stats counts what the requests of one batch came to.
type Stats struct {
	Requests     int  // POSTs and polls sent
	Throttled    int  // answered 429
	ServerErrors int  // answered 5xx
	NetErrors    int  // no usable answer: a transport error, a timeout, a body cut short
	Retries      int  // requests sent again after one of those three
	Polls        int  // GETs of an accepted batch
	Accepted     bool // the POST was answered 202 and the batch polled
}

// StatusError is an answer other than 200 and 202.
type StatusError struct {
	Code int
	// Body is the answer's body: for a 4xx, the text Snowflake would show
	// the SQL user.
	Body []byte
	// RetryAfter is the wait a 429 or 5xx asked for, 0 if none.
	RetryAfter time.Duration
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("status %d: %.200s", e.Code, bytes.TrimSpace(e.Body))
}

// Temporary reports whether Snowflake would retry the batch: 429 and 5xx.
func (e *StatusError) Temporary() bool {
	return e.Code == http.StatusTooManyRequests || e.Code >= 500
}

// Compress returns b with its body gzip-compressed, when Config.Gzip asks
// for it and b is not compressed yet. Post compresses a batch once itself;
// call this for a body sent many times through Request.
func (c *Client) Compress(b Batch) (Batch, error) {
	if !c.cfg.Gzip || b.Gzipped {
		return b, nil
	}
	var buf bytes.Buffer
	buf.Grow(len(b.Body)/4 + 64)
	zw := c.gzips.Get().(*gzip.Writer)
	defer c.gzips.Put(zw)
	zw.Reset(&buf)
	if _, err := zw.Write(b.Body); err != nil {
		return b, fmt.Errorf("extfunc: gzip: %w", err)
	}
	if err := zw.Close(); err != nil {
		return b, fmt.Errorf("extfunc: gzip: %w", err)
	}
	b.Body, b.Gzipped = buf.Bytes(), true
	return b, nil
}

// Request builds one request of b with every header Post sends: a POST
// carrying b's body, or with method GET a poll of b. Post builds its own;
// this is for a caller that hands requests to an http.Handler in process.
func (c *Client) Request(ctx context.Context, method string, b Batch) (*http.Request, error) {
	b, err := c.Compress(b)
	if err != nil {
		return nil, err
	}
	var body io.Reader
	if method == http.MethodPost {
		body = bytes.NewReader(b.Body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.url, body)
	if err != nil {
		return nil, fmt.Errorf("extfunc: %w", err)
	}
	h := req.Header
	for k, v := range c.cfg.Headers {
		h.Set(k, v)
	}
	h.Set("User-Agent", c.cfg.UserAgent)
	if c.cfg.Gzip {
		h.Set("Accept-Encoding", "gzip")
	}
	if method == http.MethodPost {
		h.Set("Content-Type", "application/json")
		if b.Gzipped {
			h.Set("Content-Encoding", "gzip")
		}
	}
	c.cfg.Function.setHeaders(h, b.QueryID, b.BatchID)
	return req, nil
}
