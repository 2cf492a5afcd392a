package cache

import (
	"strings"
	"sync"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// item is what a shard stores: the shared entry, when it stops being an
// answer, and when it was last put at the front of the LRU.
type item struct {
	e       *Entry
	expires int64  // clock value
	placed  uint64 // shard.tick when it was added or last moved to the front
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
	mu  sync.Mutex // guards every field below
	lru *simplelru.LRU[string, item]
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

// get returns the live entry for id, dropping an expired one.
func (s *shard) get(id string, now int64) (*Entry, bool) {
	s.mu.Lock()
	it, ok := s.lru.Peek(id)
	switch {
	case !ok:
	case now >= it.expires:
		s.lru.Remove(id)
		ok = false
	default:
		s.hits++
		if s.tick-it.placed >= s.promoteAfter {
			it.placed = s.tick
			s.tick++
			s.lru.Add(id, it) // an existing key: moves it to the front
		}
	}
	s.mu.Unlock()
	return it.e, ok
}

// add stores it under a copy of id and reports whether that evicted
// another entry. The copy: a caller's ID may be cut from a whole request
// body (the gateway's scanner), which a kept key would keep alive.
func (s *shard) add(id string, it item) (evicted bool) {
	id = strings.Clone(id)
	s.mu.Lock()
	it.placed = s.tick
	s.tick++
	evicted = s.lru.Add(id, it)
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
