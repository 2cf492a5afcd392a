package loader

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/snowgate/snowgate/cache"
	"github.com/snowgate/snowgate/locapi"
)

// ViaConfig tunes a Via. Zero values are the documented defaults.
type ViaConfig struct {
	// BatchSize is the most IDs one request carries. Default 500.
	BatchSize int
	// Linger is how long a batch waits for more IDs before it is sent.
	// Default 5ms.
	Linger time.Duration
	// InFlight is the most batches sent at once. Default 8.
	InFlight int
	// MaxAttempts bounds the tries of one batch on 429, 5xx and transport
	// errors, all with the same batch id. Default 10.
	MaxAttempts int
	// Timeout bounds one HTTP request. Default 60s.
	Timeout time.Duration
	// PollTimeout bounds how long an accepted (202) batch is polled.
	// Default 10 minutes, as Snowflake does.
	PollTimeout time.Duration
	// MaxIDLen is the longest ID sent; longer ones fail as invalid without
	// a request. Default locapi.DefaultMaxIDLen.
	MaxIDLen int
	// Headers are added to every request, e.g. the sf-custom-* secret the
	// gateway checks.
	Headers map[string]string
	// Client sends the requests. Default: a client keeping InFlight
	// connections alive.
	Client *http.Client
}

func (c ViaConfig) withDefaults() ViaConfig {
	if c.BatchSize <= 0 {
		c.BatchSize = 500
	}
	if c.Linger <= 0 {
		c.Linger = 5 * time.Millisecond
	}
	if c.InFlight <= 0 {
		c.InFlight = 8
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 10
	}
	if c.Timeout <= 0 {
		c.Timeout = 60 * time.Second
	}
	if c.PollTimeout <= 0 {
		c.PollTimeout = 10 * time.Minute
	}
	if c.Client == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = c.InFlight
		c.Client = &http.Client{Transport: t}
	}
	return c
}

// Via resolves IDs through a running `snowgate serve`, speaking Snowflake's
// external-function batch protocol as a client, so that one limiter and one
// cache govern the gateway and the backfill. Concurrent Resolve calls are
// gathered into batches.
//
// Run the gateway with --on-row-error error and --not-found object: a null
// value cannot tell not found from no location (Via records it as not
// found), nor, with row errors as nulls, from a provider failure.
type Via struct {
	url     string
	cfg     ViaConfig
	queryID string // prefix of every batch id, unique per Via
	seq     atomic.Uint64
	reqs    chan viaRequest
	// slots holds a token per batch in flight.
	slots   chan struct{}
	ctx     context.Context // ends at Close; batches run on it, not on a caller's
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	batches atomic.Int64
	retries atomic.Int64
}

type viaRequest struct {
	id  string
	out chan cache.Outcome // buffered: the sender never waits for a caller that left
}

// NewVia returns a Via posting to url, the gateway's external-function
// endpoint. Close it when done.
func NewVia(url string, cfg ViaConfig) (*Via, error) {
	if !strings.HasPrefix(url, "http://") && !strings.HasPrefix(url, "https://") {
		return nil, fmt.Errorf("via: url %q: want http:// or https://", url)
	}
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("via: query id: %w", err)
	}
	cfg = cfg.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	v := &Via{
		url: url, cfg: cfg, queryID: "snowgate-backfill-" + hex.EncodeToString(b[:]),
		reqs: make(chan viaRequest), slots: make(chan struct{}, cfg.InFlight),
		ctx: ctx, cancel: cancel,
	}
	v.wg.Go(v.batcher)
	return v, nil
}

var errViaClosed = errors.New("via: closed")

// Resolve queues id for the next batch and waits for its answer.
func (v *Via) Resolve(ctx context.Context, id string) cache.Outcome {
	if err := locapi.ValidateID(id, v.cfg.MaxIDLen); err != nil {
		return cache.Outcome{Err: err}
	}
	r := viaRequest{id: id, out: make(chan cache.Outcome, 1)}
	select {
	case v.reqs <- r:
	case <-ctx.Done():
		return cache.Outcome{Err: ctx.Err()}
	case <-v.ctx.Done():
		return cache.Outcome{Err: errViaClosed}
	}
	select {
	case o := <-r.out:
		return o
	case <-ctx.Done():
		return cache.Outcome{Err: ctx.Err()}
	}
}

// Close stops batching and ends batches in flight; their callers get an
// error.
func (v *Via) Close() error {
	v.cancel()
	v.wg.Wait()
	return nil
}

// ViaStats count requests to the gateway.
type ViaStats struct {
	Batches int64 // batches sent
	Retries int64 // requests repeated after 429, 5xx or a transport error
}

// Stats reads the counters.
func (v *Via) Stats() ViaStats {
	return ViaStats{Batches: v.batches.Load(), Retries: v.retries.Load()}
}

// batcher gathers requests into batches: a batch leaves when it is full, or
// Linger after its first ID, as soon as a slot is free. While it waits for a
// slot it keeps filling.
func (v *Via) batcher() {
	for {
		var batch []viaRequest
		select {
		case r := <-v.reqs:
			batch = append(batch, r)
		case <-v.ctx.Done():
			return
		}
		if !v.fill(&batch) {
			failAll(batch, errViaClosed)
			return
		}
		v.batches.Add(1)
		v.wg.Go(func() {
			defer func() { <-v.slots }()
			v.send(batch)
		})
	}
}

// fill adds requests to batch until it may leave and a slot is taken; false
// means the Via closed.
func (v *Via) fill(batch *[]viaRequest) bool {
	linger := time.NewTimer(v.cfg.Linger)
	defer linger.Stop()
	ready := false // the linger has passed
	for {
		full := len(*batch) >= v.cfg.BatchSize
		var reqs chan viaRequest
		if !full {
			reqs = v.reqs
		}
		var slots chan struct{}
		if full || ready {
			slots = v.slots
		}
		select {
		case r := <-reqs:
			*batch = append(*batch, r)
		case <-linger.C:
			ready = true
		case slots <- struct{}{}:
			return true
		case <-v.ctx.Done():
			return false
		}
	}
}

func failAll(batch []viaRequest, err error) {
	for _, r := range batch {
		r.out <- cache.Outcome{Err: err}
	}
}

// viaValue is one row's value in the gateway's answer: a record; an error
// value when the gateway reports row errors as values; or, when it answers
// misses as objects, {"found": false, "status": "not_found"|"no_location"}.
type viaValue struct {
	Error  *string `json:"error"`
	Found  *bool   `json:"found"`
	Status string  `json:"status"`
	locapi.Record
}

// send posts the batch, retrying and polling under one batch id, and
// delivers one outcome per ID.
func (v *Via) send(batch []viaRequest) {
	rows := make([][2]any, len(batch))
	for i, r := range batch {
		rows[i] = [2]any{i, r.id}
	}
	body, err := json.Marshal(map[string]any{"data": rows})
	if err != nil {
		failAll(batch, fmt.Errorf("via: encode batch: %w", err))
		return
	}
	batchID := fmt.Sprintf("%s:%d", v.queryID, v.seq.Add(1))
	values, err := v.exchange(batchID, body, len(batch))
	if err != nil {
		failAll(batch, fmt.Errorf("via batch %s: %w", batchID, err))
		return
	}
	for i, r := range batch {
		r.out <- viaOutcome(values[i])
	}
}

func viaOutcome(raw json.RawMessage) cache.Outcome {
	if len(raw) == 0 || string(raw) == "null" {
		return cache.Outcome{Entry: &cache.Entry{Status: locapi.NotFound}}
	}
	var val viaValue
	if err := json.Unmarshal(raw, &val); err != nil {
		return cache.Outcome{Err: fmt.Errorf("via: row value %.80s: %w", raw, err)}
	}
	rec := val.Record
	switch {
	case val.Error != nil:
		return cache.Outcome{Err: fmt.Errorf("via: gateway: %s", *val.Error)}
	case val.Found != nil && !*val.Found && val.Status == "no_location":
		return cache.Outcome{Entry: &cache.Entry{Status: locapi.NoLocation, Record: &rec}}
	case val.Found != nil && !*val.Found:
		return cache.Outcome{Entry: &cache.Entry{Status: locapi.NotFound}}
	}
	return cache.Outcome{Entry: &cache.Entry{Status: locapi.Found, Record: &rec}}
}

// exchange runs the protocol for one batch and returns its n row values.
func (v *Via) exchange(batchID string, body []byte, n int) ([]json.RawMessage, error) {
	var lastErr error
	for attempt := 1; attempt <= v.cfg.MaxAttempts; attempt++ {
		if attempt > 1 {
			v.retries.Add(1)
			if err := sleepCtx(v.ctx, retryDelay(attempt, lastErr)); err != nil {
				return nil, err
			}
		}
		status, data, hdr, err := v.do(http.MethodPost, batchID, body)
		if status == http.StatusAccepted {
			status, data, hdr, err = v.poll(batchID)
		}
		switch {
		case err != nil:
			lastErr = err
		case status == http.StatusOK:
			return decodeViaData(data, n)
		case status == http.StatusTooManyRequests || status >= 500:
			lastErr = &viaStatusError{status: status, body: data, retryAfter: hdr.Get("Retry-After")}
		default:
			return nil, &viaStatusError{status: status, body: data}
		}
		if v.ctx.Err() != nil {
			return nil, v.ctx.Err()
		}
	}
	return nil, fmt.Errorf("%d attempts: %w", v.cfg.MaxAttempts, lastErr)
}

// poll GETs an accepted batch until it is done, with growing delays.
func (v *Via) poll(batchID string) (int, []byte, http.Header, error) {
	deadline := time.Now().Add(v.cfg.PollTimeout)
	delay := 20 * time.Millisecond
	for {
		if err := sleepCtx(v.ctx, delay); err != nil {
			return 0, nil, nil, err
		}
		status, data, hdr, err := v.do(http.MethodGet, batchID, nil)
		if err != nil || status != http.StatusAccepted {
			return status, data, hdr, err
		}
		if time.Now().After(deadline) {
			return 0, nil, nil, fmt.Errorf("still accepted (202) after %s of polling", v.cfg.PollTimeout)
		}
		delay = min(delay*2, time.Second)
	}
}

// maxViaBody bounds a response; Snowflake's limit is 10 MB.
const maxViaBody = 16 << 20

func (v *Via) do(method, batchID string, body []byte) (int, []byte, http.Header, error) {
	ctx, cancel := context.WithTimeout(v.ctx, v.cfg.Timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, v.url, rd)
	if err != nil {
		return 0, nil, nil, err
	}
	h := req.Header
	h.Set("Content-Type", "application/json")
	h.Set("sf-external-function-format", "json")
	h.Set("sf-external-function-format-version", "1.0")
	h.Set("sf-external-function-query-batch-id", batchID)
	h.Set("sf-external-function-current-query-id", v.queryID)
	h.Set("sf-external-function-name", "snowgate_backfill")
	for k, val := range v.cfg.Headers {
		h.Set(k, val)
	}
	resp, err := v.cfg.Client.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxViaBody+1))
	if err != nil {
		return 0, nil, nil, fmt.Errorf("read response: %w", err)
	}
	if len(data) > maxViaBody {
		return 0, nil, nil, fmt.Errorf("response larger than %d bytes", maxViaBody)
	}
	return resp.StatusCode, data, resp.Header, nil
}

// decodeViaData checks the answer has one row per input row, numbered in
// order, and returns their values.
func decodeViaData(data []byte, n int) ([]json.RawMessage, error) {
	var resp struct {
		Data []json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(data, &resp); err != nil {
		return nil, fmt.Errorf("decode response: %w", err)
	}
	if len(resp.Data) != n {
		return nil, fmt.Errorf("response has %d rows; sent %d", len(resp.Data), n)
	}
	values := make([]json.RawMessage, n)
	for i, raw := range resp.Data {
		var row []json.RawMessage
		if err := json.Unmarshal(raw, &row); err != nil || len(row) != 2 {
			return nil, fmt.Errorf("response row %d: want [rowNumber, value]", i)
		}
		if num, err := strconv.Atoi(string(row[0])); err != nil || num != i {
			return nil, fmt.Errorf("response row %d: row number %s out of order", i, row[0])
		}
		values[i] = row[1]
	}
	return values, nil
}

// viaStatusError is a non-200 answer; its body is shown, shortened.
type viaStatusError struct {
	status     int
	body       []byte
	retryAfter string
}

func (e *viaStatusError) Error() string {
	return fmt.Sprintf("gateway answered %d: %.200s", e.status, bytes.TrimSpace(e.body))
}

// retryDelay backs off exponentially from 50ms to 5s, or as the gateway's
// Retry-After says.
func retryDelay(attempt int, lastErr error) time.Duration {
	var se *viaStatusError
	if errors.As(lastErr, &se) && se.retryAfter != "" {
		if secs, err := strconv.Atoi(se.retryAfter); err == nil && secs >= 0 {
			return min(time.Duration(secs)*time.Second, 30*time.Second)
		}
	}
	return min(50*time.Millisecond<<min(attempt-2, 10), 5*time.Second)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
