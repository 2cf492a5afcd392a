package cache

import (
	"math/bits"
	"slices"
)

// dedupe is ResolveMany's per-call set of the IDs seen so far: open
// addressing over the IDs' hashes, with the ID compared on a hash match, so
// a batch full of repeats looks each ID up in the cache once. Tables are
// reused through the resolver's pool, so a hot batch allocates none.
type dedupe struct {
	slots []slot
	mask  uint64
	// distinct are the batch's first occurrences in order, order the
	// same grouped by shard (see place), and dups the repeats.
	distinct []miss
	order    []miss
	ends     []int
	dups     []dup
}

// group readies t.add for a batch over shards shards.
func (t *dedupe) group(shards int) {
	t.distinct, t.dups = t.distinct[:0], t.dups[:0]
	t.ends = slices.Grow(t.ends[:0], shards+1)[:shards+1]
	clear(t.ends)
}

// add records a first occurrence at i with hash h, in shard k.
func (t *dedupe) add(i int, h, k uint64) {
	t.distinct = append(t.distinct, miss{at: i, h: h})
	t.ends[k]++
}

// place fills order, the first occurrences grouped by shard (shard k's
// are order[ends[k]:ends[k+1]]), with the hash shifted right by shift
// giving the shard.
func (t *dedupe) place(shift uint64) {
	n := 0
	for k, c := range t.ends {
		n += c
		t.ends[k] = n
	}
	t.order = slices.Grow(t.order[:0], n)[:n]
	for _, d := range slices.Backward(t.distinct) {
		k := d.h >> shift
		t.ends[k]--
		t.order[t.ends[k]] = d
	}
}

// shard is shard k's part of order, after place.
func (t *dedupe) shard(k int) []miss { return t.order[t.ends[k]:t.ends[k+1]] }

// slot holds one seen ID: its hash and its position in the batch plus one
// (0 marks an empty slot, so a cleared table is an empty one).
type slot struct {
	h  uint64
	at int
}

// maxPooledSlots keeps a table made for one huge batch from staying pinned
// in the pool: 1<<16 slots (1 MiB) covers batches of 32,768 IDs.
const maxPooledSlots = 1 << 16

// reset empties t and sizes it for n IDs at a load of at most one half,
// which keeps probe chains short.
func (t *dedupe) reset(n int) {
	size := max(16, 1<<bits.Len(uint(2*n-1)))
	if cap(t.slots) >= size {
		t.slots = t.slots[:size]
		clear(t.slots)
	} else {
		t.slots = make([]slot, size)
	}
	t.mask = uint64(size - 1)
}

// insert records ids[i] with hash h. If an equal ID was recorded before, it
// returns that one's position and true instead.
func (t *dedupe) insert(ids []string, h uint64, i int) (first int, seen bool) {
	for p := h & t.mask; ; p = (p + 1) & t.mask {
		s := &t.slots[p]
		if s.at == 0 {
			s.h, s.at = h, i+1
			return i, false
		}
		if s.h == h && ids[s.at-1] == ids[i] {
			return s.at - 1, true
		}
	}
}

func (r *Resolver) table(n int) *dedupe {
	t, _ := r.tables.Get().(*dedupe)
	if t == nil {
		t = new(dedupe)
	}
	t.reset(n)
	return t
}

func (r *Resolver) release(t *dedupe) {
	if len(t.slots) <= maxPooledSlots {
		r.tables.Put(t)
	}
}
