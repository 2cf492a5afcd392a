// Package cache is snowgate's one resolver: a sharded LRU of provider
// answers with per-entry expiry (found records and negative answers live
// different times, failures are never kept), in front of a Lookuper, with
// concurrent misses for one ID coalesced into a single provider call.
package cache

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"math/bits"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/snowgate/snowgate/locapi"
)

// Defaults for the zero values of Config.
const (
	DefaultSize        = 100_000
	DefaultTTL         = 24 * time.Hour
	DefaultNegativeTTL = time.Hour
	DefaultConcurrency = 256
	DefaultShards      = 16
)

// ErrClosed is the error of a lookup that could not finish because the
// resolver was closed.
var ErrClosed = errors.New("cache: resolver closed")

// Config holds the resolver's optional settings; every zero value means the
// documented default.
type Config struct {
	// Size is the most entries kept over all shards; default DefaultSize.
	// Each shard holds its share of Size, so with an uneven spread of IDs
	// a shard may evict before the whole cache is full.
	Size int
	// TTL is how long a found record is kept; default DefaultTTL.
	TTL time.Duration
	// NegativeTTL is how long a not-found or no-location answer is kept;
	// default DefaultNegativeTTL.
	NegativeTTL time.Duration
	// Concurrency is the most provider lookups one ResolveMany waits on at
	// once; default DefaultConcurrency. The provider's own rate and
	// in-flight limits are the Lookuper's business.
	Concurrency int
	// Shards is the number of independently locked LRUs, a power of two;
	// default DefaultShards. 1 means one lock for the whole cache. It is
	// lowered to the largest power of two not above Size.
	Shards int
	// Now is the clock, for tests; default time.Now.
	Now func() time.Time
	// Encode makes the bytes kept with a found record (Entry.JSON), once
	// per provider answer: the gateway's gateway.EncodeRecord, so its
	// format lives there and a hit is never re-encoded. It must not keep r.
	// Default: the Record's own JSON, json.Marshal(r).
	Encode func(r *locapi.Record) ([]byte, error)
	// L2, when set, is a cache shared with other processes behind this
	// one (package cluster keeps one in Redis): see L2. Hits in the LRU
	// never touch it. Default: none.
	L2 L2
}

func (c Config) withDefaults() (Config, error) {
	switch {
	case c.Size < 0:
		return c, fmt.Errorf("cache: Size %d is negative", c.Size)
	case c.TTL < 0:
		return c, fmt.Errorf("cache: TTL %v is negative", c.TTL)
	case c.NegativeTTL < 0:
		return c, fmt.Errorf("cache: NegativeTTL %v is negative", c.NegativeTTL)
	case c.Concurrency < 0:
		return c, fmt.Errorf("cache: Concurrency %d is negative", c.Concurrency)
	case c.Shards < 0 || bits.OnesCount(uint(c.Shards)) > 1:
		return c, fmt.Errorf("cache: Shards %d is not a power of two", c.Shards)
	}
	if c.Size == 0 {
		c.Size = DefaultSize
	}
	if c.TTL == 0 {
		c.TTL = DefaultTTL
	}
	if c.NegativeTTL == 0 {
		c.NegativeTTL = DefaultNegativeTTL
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.Shards == 0 {
		c.Shards = DefaultShards
	}
	for c.Shards > c.Size {
		c.Shards /= 2
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Encode == nil {
		c.Encode = marshalRecord
	}
	return c, nil
}

// Resolver answers IDs from its cache and fills misses from a Lookuper. It is
// safe for concurrent use; Close it to end the lookups it still runs.
type Resolver struct {
	up  Lookuper
	cfg Config
	m   *metrics

	seed  maphash.Seed
	epoch time.Time // clock readings are kept as offsets from it
	// shardShift maps a hash to a shard by its top bits, so the low bits
	// stay free for ResolveMany's dedupe table.
	shardShift uint
	shards     []shard

	callsMu sync.Mutex
	calls   map[string]*call // lookups in flight, by ID
	tables  sync.Pool        // *dedupe scratch tables for ResolveMany

	// life is the context of every provider call: detached from all
	// callers, cancelled by Close.
	life   context.Context
	cancel context.CancelFunc
	// mu guards closed and orders flights.Add against Close's Wait.
	mu      sync.RWMutex
	closed  bool
	flights sync.WaitGroup

	// waiting, when set by a test, is called once a caller has started or
	// joined the lookup of id and before it waits.
	waiting func(id string)
}

// New returns a resolver in front of up. reg receives the cache's metrics;
// nil registers none.
func New(up Lookuper, cfg Config, reg prometheus.Registerer) (*Resolver, error) {
	if up == nil {
		return nil, errors.New("cache: nil Lookuper")
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	r := &Resolver{
		up:         up,
		cfg:        cfg,
		seed:       maphash.MakeSeed(),
		epoch:      cfg.Now(),
		shardShift: uint(64 - bits.TrailingZeros(uint(cfg.Shards))),
		shards:     make([]shard, cfg.Shards),
		calls:      map[string]*call{},
	}
	for i := range r.shards {
		// Spread Size so the shards add up to it exactly.
		n := cfg.Size / cfg.Shards
		if i < cfg.Size%cfg.Shards {
			n++
		}
		if r.shards[i].lru, err = simplelru.NewLRU[uint64, item](n, nil); err != nil {
			return nil, fmt.Errorf("cache: shard of %d entries: %w", n, err)
		}
		r.shards[i].cap = n
		r.shards[i].promoteAfter = uint64(max(1, n/2))
	}
	if r.m, err = newMetrics(reg, r.entries, r.hits); err != nil {
		return nil, err
	}
	r.life, r.cancel = context.WithCancel(context.Background())
	return r, nil
}

// Close cancels the provider lookups still running, waits for them to end
// and makes later misses fail with ErrClosed; hits are still answered. It
// always returns nil and may be called more than once.
func (r *Resolver) Close() error {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.cancel()
	r.flights.Wait()
	return nil
}

// Len is the number of entries cached, expired ones included until they are
// looked up or evicted.
func (r *Resolver) Len() int {
	return int(r.entries())
}

func (r *Resolver) entries() float64 {
	n := 0
	for i := range r.shards {
		n += r.shards[i].len()
	}
	return float64(n)
}

// clock is now as an offset from the epoch: one integer compare per expiry
// check, and immune to wall-clock jumps when Now carries a monotonic reading.
func (r *Resolver) clock() int64 { return int64(r.cfg.Now().Sub(r.epoch)) }

func (r *Resolver) shardFor(h uint64) *shard {
	// A shift by 64 (one shard) is 0 in Go.
	return &r.shards[h>>r.shardShift]
}
