package cluster

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Budget is one provider's request budget, shared by every process that
// uses the same Redis, prefix and provider name. It is a GCRA schedule kept
// in Redis (the theoretical arrival time of the next request), used by
// reservation: a request is given the next free slot and told how long to
// wait for it, so waiting requests queue across processes in one order and
// nobody polls. Beside it, the provider's last 429 back-off: a lowered rate
// that climbs back to the ceiling.
//
// Budget implements locapi.Budget.
type Budget struct {
	c        *Client
	schedule string // key: the next slot, in Redis microseconds
	lowered  string // key: "<rate> <ceiling> <recovery ms>", expiring when recovered
}

// Budget returns the budget of the provider named provider (for example the
// host of its URL).
func (c *Client) Budget(provider string) *Budget {
	base := c.cfg.Prefix + "budget:" + provider
	return &Budget{c: c, schedule: base + ":next", lowered: base + ":lowered"}
}

// maxScheduleWait bounds how far ahead a slot is booked, whatever the
// caller's deadline: a schedule that far behind is a stalled system.
const maxScheduleWait = time.Hour

// Reserve books the next request slot at rate requests/s with burst
// requests allowed at once after an idle time, and returns how long the
// caller must wait before sending. When that wait would exceed maxWait it
// books nothing and returns the wait with ok false.
func (b *Budget) Reserve(ctx context.Context, rate float64, burst int, maxWait time.Duration) (wait time.Duration, ok bool, err error) {
	if !(rate > 0) || math.IsInf(rate, 0) || burst < 1 {
		return 0, false, fmt.Errorf("cluster: reserve: rate %g and burst %d must be positive and finite", rate, burst)
	}
	maxWait = min(max(maxWait, 0), maxScheduleWait)
	interval := 1e6 / rate // µs
	var reply []int64
	err = b.c.do(ctx, "reserve", func(ctx context.Context) error {
		var err error
		reply, err = b.c.scripts.reserve.Run(ctx, b.c.rdb, []string{b.schedule},
			strconv.FormatFloat(interval, 'f', 3, 64), burst, maxWait.Microseconds()).Int64Slice()
		return err
	})
	if err != nil {
		return 0, false, err
	}
	if len(reply) != 2 {
		return 0, false, fmt.Errorf("cluster: reserve: unexpected reply %v", reply)
	}
	return time.Duration(reply[1]) * time.Microsecond, reply[0] == 1, nil
}

// Lower records that the provider throttled at rate: the shared rate drops
// to rate, unless it is lower already, and climbs back linearly to ceiling
// over recovery.
func (b *Budget) Lower(ctx context.Context, rate, ceiling float64, recovery time.Duration) error {
	if !(rate > 0) || !(ceiling >= rate) || math.IsInf(ceiling, 0) || recovery < time.Millisecond {
		return fmt.Errorf("cluster: lower: rate %g, ceiling %g, recovery %v out of range", rate, ceiling, recovery)
	}
	return b.c.do(ctx, "lower", func(ctx context.Context) error {
		return b.c.scripts.lower.Run(ctx, b.c.rdb, []string{b.lowered},
			formatRate(rate), formatRate(ceiling), recovery.Milliseconds()).Err()
	})
}

// Lowered returns the shared rate now, while a back-off is in effect; ok is
// false when there is none (the rate is the ceiling).
func (b *Budget) Lowered(ctx context.Context) (rate float64, ok bool, err error) {
	var s string
	err = b.c.do(ctx, "lowered", func(ctx context.Context) error {
		var err error
		s, err = b.c.scripts.lowered.Run(ctx, b.c.rdb, []string{b.lowered}).Text()
		return err
	})
	switch {
	case errors.Is(err, redis.Nil):
		return 0, false, nil
	case err != nil:
		return 0, false, err
	}
	rate, err = strconv.ParseFloat(s, 64)
	if err != nil || !(rate > 0) {
		return 0, false, fmt.Errorf("cluster: lowered: bad value %q", s)
	}
	return rate, true, nil
}

func formatRate(r float64) string { return strconv.FormatFloat(r, 'f', 3, 64) }
