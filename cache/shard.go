package cache

import (
	"strings"
	"sync"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// item is what a shard stores: the shared entry, when it stops being an
// answer, when it was last put at the front of the LRU, and its ID.
type item struct {
	e       *Entry
	expires int64  // clock value
	placed  uint64 // shard.tick when it was added or last moved to the front
	id      idKey
}

// idKey is an ID as a shard keeps it: in place when it is short, as most
// are, so that a lookup checks a hit without reading memory elsewhere.
// Shards are keyed by the ID's hash instead of the ID: a string key costs
// the map a second hash of the ID and, on every hit, a cache miss on the
// key's bytes. Two IDs with one hash take turns in the shard: the later
// replaces the earlier, and a lookup of the other is a miss, never its
// answer.
type idKey struct {
	short [idShort]byte
	n     uint8  // length of short; idLong when the ID is in long
	long  string // an ID longer than idShort bytes, copied
}

const (
	idShort = 23
	idLong  = 255
)

func makeIDKey(id string) idKey {
	var k idKey
	if len(id) > idShort {
		k.n, k.long = idLong, strings.Clone(id)
		return k
	}
	k.n = uint8(len(id))
	copy(k.short[:], id)
	return k
}

func (k *idKey) is(id string) bool {
	if k.n == idLong {
		return k.long == id
	}
	return int(k.n) == len(id) && string(k.short[:k.n]) == id
}

// shard is one LRU under its own lock. simplelru rather than lru.Cache so
// that "expired, remove it" happens under the same lock as the read, and a
// fresh entry stored in between is never removed by mistake.
//
// A hit moves an entry to the front only once it may have fallen into the
// back half of the shard. Moving is most of a hit's cost (six pointer
// writes, each with a GC write barrier while the collector marks), and an
// entry in the front half is not close to eviction: at least half a shard's
// worth of adds and moves must pass before it can be. So a hot working set
// is read without writes, and eviction stays least-recently-used to within
// half a shard.
type shard struct {
	mu  sync.Mutex                   // guards every field below
	lru *simplelru.LRU[uint64, item] // by the ID's hash
	// tick counts adds and moves to the front. An entry placed at tick t
	// has at most tick-t entries ahead of it, so tick-t below
	// promoteAfter proves it is in the front half.
	tick         uint64
	promoteAfter uint64 // half of cap, at least 1
	// hits counts answers given: the line is already ours under mu, so
	// unlike a shared counter it costs the hot path nothing.
	hits uint64
	cap  int // lru's size
	// Keep neighbouring shards' locks off this cache line (and the one
	// the hardware prefetcher pairs with it).
	_ [128 - 48]byte
}

// get returns the live entry for id, whose hash is h, dropping an expired
// one.
func (s *shard) get(id string, h uint64, now int64) (*Entry, bool) {
	s.mu.Lock()
	e, ok := s.getLocked(id, h, now)
	s.mu.Unlock()
	return e, ok
}

func (s *shard) getLocked(id string, h uint64, now int64) (*Entry, bool) {
	it, ok := s.lru.Peek(h)
	switch {
	case !ok:
	case !it.id.is(id): // another ID with the same hash
		ok = false
	case now >= it.expires:
		s.lru.Remove(h)
		ok = false
	default:
		s.hits++
		if s.tick-it.placed >= s.promoteAfter {
			it.placed = s.tick
			s.tick++
			s.lru.Add(h, it) // an existing key: moves it to the front
		}
	}
	return it.e, ok
}

// getMany is get for each of ms (IDs of this shard), setting out[m.at]
// for a hit. It takes the lock once for a run of lookups: between two
// lookups under one lock there is no atomic operation, so the CPU
// overlaps their cache misses, which one lock a lookup would serialize.
func (s *shard) getMany(ids []string, ms []miss, now int64, out []Outcome) {
	const run = 64 // lookups under one hold of the lock
	for len(ms) > 0 {
		part := ms[:min(run, len(ms))]
		ms = ms[len(part):]
		s.mu.Lock()
		for _, m := range part {
			if e, ok := s.getLocked(ids[m.at], m.h, now); ok {
				// Field by field: out is zeroed, and a whole-struct store
				// would also pay GC write barriers for the nil Err.
				out[m.at].Entry, out[m.at].Hit = e, true
			}
		}
		s.mu.Unlock()
	}
}

// add stores it under id, whose hash is h, and reports whether that
// evicted another entry. The ID kept is a copy (makeIDKey): a caller's ID
// may be cut from a whole request body (the gateway's scanner), which a
// kept string would keep alive.
func (s *shard) add(id string, h uint64, it item) (evicted bool) {
	it.id = makeIDKey(id)
	s.mu.Lock()
	it.placed = s.tick
	s.tick++
	evicted = s.lru.Add(h, it)
	s.mu.Unlock()
	return evicted
}

func (s *shard) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lru.Len()
}

func (s *shard) hitCount() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits
}

// hits is the number of answers the cache has given, over all shards.
func (r *Resolver) hits() float64 {
	var n uint64
	for i := range r.shards {
		n += r.shards[i].hitCount()
	}
	return float64(n)
}
