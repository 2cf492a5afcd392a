package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"
)

// Jobs keeps batches by key where every replica sees them: which replica
// works on a batch (a claim that lapses unless renewed, so a dead
// replica's batch can be taken over), and its answer once done, for the
// result TTL. It implements gateway.JobStore.
//
// Answers are kept only when asked to (the batch went asynchronous) or when
// another replica asked for them (Peek with want), so a busy gateway does
// not copy every answer into Redis.
type Jobs struct {
	c      *Client
	prefix string
}

// Jobs returns the shared job store.
func (c *Client) Jobs() *Jobs {
	return &Jobs{c: c, prefix: c.cfg.Prefix + "job:"}
}

// keys are a batch's answer, claim and want keys. Batch keys are opaque and
// may be long: they are hashed, and the hash is a hash tag, so the three
// keys of one batch share a Redis Cluster slot.
func (j *Jobs) keys(key string) []string {
	sum := sha256.Sum256([]byte(key))
	base := j.prefix + "{" + hex.EncodeToString(sum[:16]) + "}:"
	return []string{base + "answer", base + "claim", base + "want"}
}

// Claim makes this process the owner of key's batch for lease, unless a
// 200 answer is kept for it (returned as answer) or another process owns it
// (running).
func (j *Jobs) Claim(ctx context.Context, key string, lease time.Duration) (answer []byte, running bool, err error) {
	kind, val, err := j.run(ctx, "claim", func(ctx context.Context) ([]any, error) {
		return j.c.scripts.claim.Run(ctx, j.c.rdb, j.keys(key), j.c.owner, millis(lease)).Slice()
	})
	if err != nil {
		return nil, false, err
	}
	switch kind {
	case "answer":
		_, body, err := splitAnswer(val)
		return body, false, err
	case "running":
		return nil, true, nil
	case "claimed":
		return nil, false, nil
	}
	return nil, false, fmt.Errorf("cluster: claim: unexpected reply %q", kind)
}

// Peek returns the answer kept for key with its status (0: none), or
// running when another process works on it. When Redis came back less than
// Config.Grace ago, a batch it does not know is reported running: its
// owner may not have re-published it yet. want > 0 asks the owner to keep
// its answer (for that long) when it finishes.
func (j *Jobs) Peek(ctx context.Context, key string, want time.Duration) (status int, answer []byte, running bool, err error) {
	kind, val, err := j.run(ctx, "peek", func(ctx context.Context) ([]any, error) {
		return j.c.scripts.peek.Run(ctx, j.c.rdb, j.keys(key), millis(want)).Slice()
	})
	if err != nil {
		return 0, nil, false, err
	}
	switch kind {
	case "answer":
		status, body, err := splitAnswer(val)
		return status, body, false, err
	case "running":
		return 0, nil, true, nil
	case "none":
		return 0, nil, j.c.h.recovering(time.Now(), j.c.cfg.Grace), nil
	}
	return 0, nil, false, fmt.Errorf("cluster: peek: unexpected reply %q", kind)
}

// Renew extends this process's claim on key by lease, or makes it again if
// Redis lost it.
func (j *Jobs) Renew(ctx context.Context, key string, lease time.Duration) error {
	return j.c.do(ctx, "renew", func(ctx context.Context) error {
		return j.c.scripts.renew.Run(ctx, j.c.rdb, j.keys(key)[1:2], j.c.owner, millis(lease)).Err()
	})
}

// Release drops this process's claim on key. With an answer (status > 0)
// it first keeps the answer for ttl if keep is set or another process asked
// for it, and reports whether it did.
func (j *Jobs) Release(ctx context.Context, key string, status int, answer []byte, keep bool, ttl time.Duration) (kept bool, err error) {
	if status > 0 && ttl <= 0 {
		return false, fmt.Errorf("cluster: release: ttl %v must be positive", ttl)
	}
	var val []byte
	if status > 0 {
		val = make([]byte, 0, len(answer)+4)
		val = strconv.AppendInt(val, int64(status), 10)
		val = append(val, ' ')
		val = append(val, answer...)
	}
	keepArg := "0"
	if keep {
		keepArg = "1"
	}
	var n int64
	err = j.c.do(ctx, "release", func(ctx context.Context) error {
		var err error
		n, err = j.c.scripts.release.Run(ctx, j.c.rdb, j.keys(key), j.c.owner, keepArg, millis(ttl), val).Int64()
		return err
	})
	return n == 1, err
}

// Generation changes each time Redis comes back after being unreachable:
// answers kept before may be gone and should be kept again.
func (j *Jobs) Generation() uint64 { return j.c.h.gen.Load() }

// run runs a job script whose reply is {kind, value}.
func (j *Jobs) run(ctx context.Context, op string, f func(ctx context.Context) ([]any, error)) (kind, val string, err error) {
	var reply []any
	err = j.c.do(ctx, op, func(ctx context.Context) error {
		var err error
		reply, err = f(ctx)
		return err
	})
	if err != nil {
		return "", "", err
	}
	if len(reply) != 2 {
		return "", "", fmt.Errorf("cluster: %s: unexpected reply %v", op, reply)
	}
	kind, _ = reply[0].(string)
	val, _ = reply[1].(string)
	return kind, val, nil
}

// splitAnswer reads "<status> <body>".
func splitAnswer(v string) (int, []byte, error) {
	if len(v) < 4 || v[3] != ' ' {
		return 0, nil, fmt.Errorf("cluster: malformed answer of %d bytes", len(v))
	}
	status, err := strconv.Atoi(v[:3])
	if err != nil || status < 100 {
		return 0, nil, fmt.Errorf("cluster: malformed answer status %q", v[:3])
	}
	return status, []byte(v[4:]), nil
}

// millis is d in whole milliseconds, at least 1 when d > 0 (Redis rejects
// a PX of 0).
func millis(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return max(d.Milliseconds(), 1)
}
