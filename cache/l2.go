package cache

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/snowgate/snowgate/locapi"
)

// L2 is a second cache level shared with other processes (package cluster
// keeps one in Redis), behind the in-process LRU: IDs the LRU misses are
// looked for there before the provider is asked, and provider answers are
// stored there with the same TTLs. Values are opaque to it. Its errors are
// treated as misses and never fail an ID.
type L2 interface {
	// GetMany returns the value stored for each key, nil where there is
	// none, in key order.
	GetMany(ctx context.Context, keys []string) ([][]byte, error)
	// Set stores value under key for ttl.
	Set(ctx context.Context, key string, value []byte, ttl time.Duration) error
}

// An L2 value is a version byte, the Status, the expiry in Unix
// milliseconds (8 bytes, big-endian), then json.Marshal of the Record, the
// cache's own format whatever Config.Encode is (none for NotFound).
const (
	l2Version    = 1
	l2HeaderSize = 10
	// l2MaxTTL keeps an expiry representable: a TTL "forever" is a year.
	l2MaxTTL = 365 * 24 * time.Hour
)

func encodeL2(e *Entry, expires time.Time) ([]byte, error) {
	var body []byte
	if e.Status != locapi.NotFound && e.Record != nil {
		var err error
		if body, err = json.Marshal(e.Record); err != nil {
			return nil, fmt.Errorf("encode record: %w", err)
		}
	}
	b := make([]byte, l2HeaderSize, l2HeaderSize+len(body))
	b[0], b[1] = l2Version, byte(e.Status)
	binary.BigEndian.PutUint64(b[2:], uint64(expires.UnixMilli()))
	return append(b, body...), nil
}

var errL2Value = errors.New("unusable shared cache value")

// decodeL2 turns a value stored for id back into an entry, with its expiry.
// Anything odd (another version, an expired or foreign record) is a miss.
func decodeL2(id string, b []byte, now time.Time, encode func(*locapi.Record) ([]byte, error)) (*Entry, time.Time, error) {
	if len(b) < l2HeaderSize || b[0] != l2Version {
		return nil, time.Time{}, errL2Value
	}
	st := locapi.Status(b[1])
	expires := time.UnixMilli(int64(binary.BigEndian.Uint64(b[2:])))
	if !expires.After(now) {
		return nil, time.Time{}, errL2Value
	}
	res := locapi.Result{Status: st}
	if body := b[l2HeaderSize:]; len(body) > 0 {
		res.Record = new(locapi.Record)
		if err := json.Unmarshal(body, res.Record); err != nil || res.Record.ID != id {
			return nil, time.Time{}, errL2Value
		}
	}
	// makeEntry checks the status and re-encodes the record: what goes
	// into an answer is always this process's own encoding.
	e, err := makeEntry(res, encode)
	if err != nil {
		return nil, time.Time{}, errL2Value
	}
	return e, expires, nil
}

// fromL2 answers the misses the shared cache has, stores them in the LRU,
// and returns the misses left.
func (r *Resolver) fromL2(ctx context.Context, ids []string, misses []miss, out []Outcome, st *Stats) []miss {
	keys := make([]string, len(misses))
	for k, m := range misses {
		keys[k] = ids[m.at]
	}
	vals, err := r.cfg.L2.GetMany(ctx, keys)
	if err != nil || len(vals) != len(keys) {
		r.m.l2Errors.Add(uint64(len(keys)))
		return misses
	}
	now, clock := r.cfg.Now(), r.clock()
	rest := misses[:0] // filled behind the reads
	for k, m := range misses {
		e, ok := r.keepL2(ids[m.at], m.h, vals[k], now, clock)
		if !ok {
			rest = append(rest, m)
			continue
		}
		out[m.at].Entry, out[m.at].Hit = e, true
		st.Hits++
		st.L2Hits++
	}
	return rest
}

// lookupL2 is fromL2 for the one ID of a flight.
func (r *Resolver) lookupL2(id string, h uint64) (*Entry, bool) {
	vals, err := r.cfg.L2.GetMany(r.life, []string{id})
	if err != nil || len(vals) != 1 {
		r.m.l2Errors.Add(1)
		return nil, false
	}
	return r.keepL2(id, h, vals[0], r.cfg.Now(), r.clock())
}

// keepL2 decodes a shared value and stores it in the LRU until the earlier
// of its own expiry and this cache's TTL for its status.
func (r *Resolver) keepL2(id string, h uint64, val []byte, now time.Time, clock int64) (*Entry, bool) {
	if val == nil {
		r.m.l2Misses.Add(1)
		return nil, false
	}
	e, expires, err := decodeL2(id, val, now, r.cfg.Encode)
	if err != nil {
		r.m.l2Misses.Add(1)
		return nil, false
	}
	r.m.l2Hits.Add(1)
	r.store(id, h, e, min(expires.Sub(now), r.ttlFor(e.Status)), clock)
	return e, true
}

// storeL2 shares a provider answer, for as long as this cache keeps it.
// A failure only costs the other processes a provider call.
func (r *Resolver) storeL2(id string, e *Entry, ttl time.Duration) {
	ttl = min(ttl, l2MaxTTL)
	b, err := encodeL2(e, r.cfg.Now().Add(ttl))
	if err == nil {
		err = r.cfg.L2.Set(r.life, id, b, ttl)
	}
	if err != nil {
		r.m.l2StoreErrors.Inc()
	}
}

// ttlFor is how long this cache keeps an answer of status st.
func (r *Resolver) ttlFor(st locapi.Status) time.Duration {
	if st == locapi.Found {
		return r.cfg.TTL
	}
	return r.cfg.NegativeTTL
}

// store puts e in id's shard for ttl from clock, and counts an eviction.
func (r *Resolver) store(id string, h uint64, e *Entry, ttl time.Duration, clock int64) {
	exp := clock + int64(ttl)
	if exp < clock { // a TTL too long to add means forever
		exp = math.MaxInt64
	}
	if r.shardFor(h).add(id, h, item{e: e, expires: exp}) {
		r.m.evictions.Inc()
	}
}
