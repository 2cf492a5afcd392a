package loader

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/snowgate/snowgate/cache"
	"github.com/snowgate/snowgate/extfunc"
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
	// errors, all with the same batch id, polls included. Default 10.
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
	ef      *extfunc.Client
	cfg     ViaConfig
	queryID string // prefix of every batch id, unique per Via
	seq     atomic.Uint64
	reqs    chan viaRequest
	// slots holds a token per batch in flight.
	slots     chan struct{}
	ctx       context.Context // ends at Close; batches run on it, not on a caller's
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	batches   atomic.Int64
	retries   atomic.Int64
	throttled atomic.Int64
}

// viaRequest is one ID queued for a batch, with the ResolveEach call that
// waits for it and its key there.
type viaRequest struct {
	id   string
	key  uint64
	each *viaEach
}

// viaEach is one ResolveEach call's side of the batches it joined. The
// batches answer IDs through it; it lets each ID be answered once, and no
// answer reach fn once the call has returned.
type viaEach struct {
	fn func(string, cache.Outcome)
	// mu guards the fields below and is held while fn runs, so that the
	// call cannot return while a batch is still calling fn.
	mu      sync.Mutex
	next    uint64
	open    map[uint64]string // IDs queued and not answered yet, by key
	ended   bool              // the call returned: later answers are dropped
	inputs  bool              // ids is closed: once open is empty, all is answered
	settled chan struct{}     // closed when inputs and open is empty
}

// queue registers id and returns the request to send to the batcher.
func (e *viaEach) queue(id string) viaRequest {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.next++
	e.open[e.next] = id
	return viaRequest{id: id, key: e.next, each: e}
}

// answer gives one queued ID its outcome, unless it already had one.
func (e *viaEach) answer(key uint64, o cache.Outcome) {
	e.mu.Lock()
	defer e.mu.Unlock()
	id, ok := e.open[key]
	if !ok || e.ended {
		return
	}
	delete(e.open, key)
	e.fn(id, o)
	if e.inputs && len(e.open) == 0 {
		close(e.settled)
	}
}

// inputsDone says no more IDs will be queued.
func (e *viaEach) inputsDone() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.inputs = true
	if len(e.open) == 0 {
		close(e.settled)
	}
}

// end answers every ID still open with err and drops later answers.
func (e *viaEach) end(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.ended = true
	for k, id := range e.open {
		delete(e.open, k)
		e.fn(id, cache.Outcome{Err: err})
	}
}

// NewVia returns a Via posting to url, the gateway's external-function
// endpoint. Close it when done.
func NewVia(url string, cfg ViaConfig) (*Via, error) {
	cfg = cfg.withDefaults()
	ef, err := extfunc.New(url, extfunc.Config{
		Function:    extfunc.Function{Name: "snowgate_backfill"},
		Headers:     cfg.Headers,
		MaxAttempts: cfg.MaxAttempts,
		Timeout:     cfg.Timeout,
		PollTimeout: cfg.PollTimeout,
		HTTPClient:  cfg.Client,
	})
	if err != nil {
		return nil, fmt.Errorf("via: %w", err)
	}
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("via: query id: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	v := &Via{
		ef: ef, cfg: cfg, queryID: "snowgate-backfill-" + hex.EncodeToString(b[:]),
		reqs: make(chan viaRequest), slots: make(chan struct{}, cfg.InFlight),
		ctx: ctx, cancel: cancel,
	}
	v.wg.Go(v.batcher)
	return v, nil
}

var errViaClosed = errors.New("via: closed")

// Resolve queues id for the next batch and waits for its answer.
func (v *Via) Resolve(ctx context.Context, id string) cache.Outcome {
	ids := make(chan string, 1)
	ids <- id
	close(ids)
	var out cache.Outcome
	answered := false
	v.ResolveEach(ctx, ids, func(_ string, o cache.Outcome) { out, answered = o, true })
	switch {
	case answered:
		return out
	case ctx.Err() != nil: // id was never taken
		return cache.Outcome{Err: ctx.Err()}
	}
	return cache.Outcome{Err: errViaClosed}
}

// ResolveEach sends the IDs received from ids to the gateway in batches,
// at most InFlight batches at once, and gives fn each ID's answer as its
// batch is answered: no goroutine waits per ID, and the IDs taken but not
// answered are at most (InFlight+1) x BatchSize. Invalid IDs are answered
// at once without a request. When ctx ends (or the Via closes) the IDs
// not answered get its error, no more are taken, and ResolveEach returns;
// their batches still run, and their answers are dropped.
func (v *Via) ResolveEach(ctx context.Context, ids <-chan string, fn func(id string, o cache.Outcome)) {
	e := &viaEach{fn: fn, open: map[uint64]string{}, settled: make(chan struct{})}
	if err := v.queueAll(ctx, ids, e); err != nil {
		e.end(err)
		return
	}
	e.inputsDone()
	select {
	case <-e.settled:
	case <-ctx.Done():
		e.end(ctx.Err())
	case <-v.ctx.Done():
		e.end(errViaClosed)
	}
}

// queueAll hands every ID of ids to the batcher, until ids is closed (nil)
// or ctx or the Via ends (the error the IDs left open get).
func (v *Via) queueAll(ctx context.Context, ids <-chan string, e *viaEach) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		var id string
		select {
		case s, ok := <-ids:
			if !ok {
				return nil
			}
			id = s
		case <-ctx.Done():
			return ctx.Err()
		case <-v.ctx.Done():
			return errViaClosed
		}
		r := e.queue(id)
		if err := locapi.ValidateID(id, v.cfg.MaxIDLen); err != nil {
			e.answer(r.key, cache.Outcome{Err: err})
			continue
		}
		select {
		case v.reqs <- r:
		case <-ctx.Done():
			return ctx.Err()
		case <-v.ctx.Done():
			return errViaClosed
		}
	}
}

// Close stops batching and ends batches in flight; their callers get an
// error.
func (v *Via) Close() error {
	v.cancel()
	v.wg.Wait()
	return nil
}

// ViaStats count requests to the gateway: all a Via can know, since the
// provider requests are the gateway's.
type ViaStats struct {
	Batches   int64 // batches sent
	Retries   int64 // requests repeated after 429, 5xx or a transport error
	Throttled int64 // requests the gateway answered 429
}

// Stats reads the counters.
func (v *Via) Stats() ViaStats {
	return ViaStats{Batches: v.batches.Load(), Retries: v.retries.Load(), Throttled: v.throttled.Load()}
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
		r.each.answer(r.key, cache.Outcome{Err: err})
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
	ids := make([]string, len(batch))
	for i, r := range batch {
		ids[i] = r.id
	}
	body, err := extfunc.EncodeColumn(ids)
	if err != nil {
		failAll(batch, fmt.Errorf("via: encode batch: %w", err))
		return
	}
	batchID := fmt.Sprintf("%s:%d", v.queryID, v.seq.Add(1))
	answer, st, err := v.ef.Post(v.ctx, extfunc.Batch{QueryID: v.queryID, BatchID: batchID, Body: body})
	v.retries.Add(int64(st.Retries))
	v.throttled.Add(int64(st.Throttled))
	var values []json.RawMessage
	if err == nil {
		values, err = extfunc.DecodeResponse(answer, len(batch))
	}
	if err != nil {
		failAll(batch, fmt.Errorf("via batch %s: %w", batchID, err))
		return
	}
	for i, r := range batch {
		r.each.answer(r.key, viaOutcome(values[i]))
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
