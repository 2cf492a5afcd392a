package cluster

import (
	"context"
	"fmt"
	"time"
)

// Records is a shared cache of opaque values by ID with a TTL each: the
// second level behind every process's LRU. It implements cache.L2.
type Records struct {
	c      *Client
	prefix string
}

// Records returns the shared record cache.
func (c *Client) Records() *Records {
	return &Records{c: c, prefix: c.cfg.Prefix + "rec:"}
}

// GetMany returns the value of every ID, nil where there is none, in one
// round trip.
func (r *Records) GetMany(ctx context.Context, ids []string) ([][]byte, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = r.prefix + id
	}
	var vals []any
	err := r.c.do(ctx, "get", func(ctx context.Context) error {
		var err error
		vals, err = r.c.rdb.MGet(ctx, keys...).Result()
		return err
	})
	if err != nil {
		return nil, err
	}
	if len(vals) != len(ids) {
		return nil, fmt.Errorf("cluster: get: %d values for %d keys", len(vals), len(ids))
	}
	out := make([][]byte, len(ids))
	for i, v := range vals {
		if s, ok := v.(string); ok {
			out[i] = []byte(s)
		}
	}
	return out, nil
}

// Set stores value under id for ttl (at least a millisecond).
func (r *Records) Set(ctx context.Context, id string, value []byte, ttl time.Duration) error {
	return r.c.do(ctx, "set", func(ctx context.Context) error {
		return r.c.rdb.Set(ctx, r.prefix+id, value, max(ttl, time.Millisecond)).Err()
	})
}
