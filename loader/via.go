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
	var values []json.RawMessage
	if err == nil {
		values, err = extfunc.DecodeResponse(answer, len(batch))
	}
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
