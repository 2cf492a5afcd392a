package locapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/snowgate/snowgate/backoff"
)

// StatusError is a provider answer the client could not use as a Result:
// 429, 5xx (both retried) or any other status but 200 and 404 (not retried).
type StatusError struct {
	Code int
	// RetryAfter is the wait the provider asked for, 0 if none.
	RetryAfter time.Duration
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("provider answered %d %s", e.Code, http.StatusText(e.Code))
}

// Temporary reports whether the same request may succeed later.
func (e *StatusError) Temporary() bool {
	return e.Code == http.StatusTooManyRequests || e.Code >= 500
}

// netError is a request that got no answer: a connection error, an attempt
// timeout, or a body cut short.
type netError struct{ err error }

func (e *netError) Error() string { return e.err.Error() }
func (e *netError) Unwrap() error { return e.err }

// Lookup asks the provider about id. Found, NotFound and NoLocation are
// answers; everything else (an invalid ID, a provider still failing after the
// retries, the end of ctx or of Config.MaxRetryTime) is an error. An invalid
// ID wraps ErrInvalidID and is never sent.
func (c *Client) Lookup(ctx context.Context, id string) (Result, error) {
	if err := ValidateID(id, c.cfg.MaxIDLen); err != nil {
		c.n.invalid.Add(1)
		return Result{}, fmt.Errorf("locapi: lookup: %w", err)
	}
	u, err := c.tmpl.build(id)
	if err != nil {
		c.n.invalid.Add(1)
		return Result{}, fmt.Errorf("locapi: lookup %s: %w: %w", shortID(id), ErrInvalidID, err)
	}
	if !c.enter() {
		return Result{}, ErrClosed
	}
	defer c.wg.Done()
	c.n.lookups.Add(1)
	ctx, cancel := context.WithTimeoutCause(ctx, c.cfg.MaxRetryTime, errRetryTime)
	defer cancel()
	stop := context.AfterFunc(c.closing, cancel)
	defer stop()

	var requests int
	res, err := c.retry(ctx, id, u, &requests)
	if err != nil {
		c.n.failures.Add(1)
		if c.closing.Err() != nil {
			return Result{Requests: requests}, fmt.Errorf("locapi: lookup %s: %w", shortID(id), ErrClosed)
		}
		return Result{Requests: requests}, fmt.Errorf("locapi: lookup %s: %w", shortID(id), err)
	}
	res.Requests = requests
	switch res.Status {
	case Found:
		c.n.found.Add(1)
	case NotFound:
		c.n.notFound.Add(1)
	case NoLocation:
		c.n.noLocation.Add(1)
	}
	return res, nil
}

// errRetryTime is the cause when Config.MaxRetryTime ends a Lookup.
var errRetryTime = fmt.Errorf("retry time exhausted: %w", context.DeadlineExceeded)

// retry runs attempts until one gives an answer, one fails for good, the
// attempts are used up, or the next wait would pass ctx's deadline. It adds
// every request it sends to *requests.
func (c *Client) retry(ctx context.Context, id string, u *url.URL, requests *int) (Result, error) {
	for attempt := 1; ; attempt++ {
		res, err := c.attempt(ctx, id, u, attempt, requests)
		if err == nil {
			return res, nil
		}
		if !retryable(err) {
			return Result{}, fmt.Errorf("attempt %d: %w", attempt, err)
		}
		if ctx.Err() != nil {
			// The lookup's time ran out as this attempt failed: say both,
			// so callers see the deadline, not only the provider's 5xx.
			return Result{}, fmt.Errorf("attempt %d: %w; then %w", attempt, err, context.Cause(ctx))
		}
		if attempt >= c.cfg.MaxAttempts {
			return Result{}, fmt.Errorf("giving up after %d attempts: %w", attempt, err)
		}
		wait := c.backoff(attempt)
		var se *StatusError
		if errors.As(err, &se) && se.RetryAfter > wait {
			wait = se.RetryAfter
		}
		c.log.Debug("retrying provider request", "id", shortID(id), "attempt", attempt, "wait", wait, "err", err)
		if werr := sleep(ctx, "a retry", wait); werr != nil {
			return Result{}, fmt.Errorf("attempt %d: %w; then %w", attempt, err, werr)
		}
	}
}

func retryable(err error) bool {
	var se *StatusError
	var ne *netError
	switch {
	case errors.As(err, &se):
		return se.Temporary()
	case errors.As(err, &ne), errors.Is(err, ErrMalformed):
		return true
	}
	return false
}

// backoff is the full-jitter wait after attempt n: uniform in
// [0, min(MaxBackoff, BaseBackoff*2^(n-1))].
func (c *Client) backoff(n int) time.Duration {
	return backoff.Policy{Base: c.cfg.BaseBackoff, Max: c.cfg.MaxBackoff}.Delay(n)
}

// sleep waits d for what (named in errors), failing at once when the wait
// would end after ctx's deadline: give up now rather than sleep into a
// failure.
func sleep(ctx context.Context, what string, d time.Duration) error {
	if err := backoff.Sleep(ctx, d); err != nil {
		return fmt.Errorf("waiting for %s: %w", what, err)
	}
	return nil
}

// attempt sends the n-th request of a lookup, holding a concurrency slot and
// a limiter token, and counts it in *requests once it goes out.
func (c *Client) attempt(ctx context.Context, id string, u *url.URL, n int, requests *int) (Result, error) {
	start := time.Now()
	reserved, err := c.acquire(ctx)
	if err != nil {
		return Result{}, err
	}
	defer c.sem.Release(1)
	c.m.limiterWait.Observe(time.Since(start).Seconds())
	c.m.inflight.Inc()
	defer c.m.inflight.Dec()

	actx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	req := (&http.Request{Method: http.MethodGet, URL: u, Header: c.header, Host: u.Host}).WithContext(actx)
	sent := time.Now()
	c.n.requests.Add(1)
	*requests++
	if n > 1 {
		c.n.retries.Add(1)
		c.m.retries.Inc()
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.n.netErrors.Add(1)
		c.m.requests.WithLabelValues("error").Inc()
		c.m.duration.Observe(time.Since(sent).Seconds())
		return Result{}, &netError{err: c.describe(ctx, actx, err)}
	}
	defer resp.Body.Close()
	c.m.requests.WithLabelValues(strconv.Itoa(resp.StatusCode)).Inc()
	res, err := c.answer(ctx, resp, id, reserved)
	c.m.duration.Observe(time.Since(sent).Seconds())
	var br *errBodyRead
	if errors.As(err, &br) {
		c.n.netErrors.Add(1)
		return Result{}, &netError{err: c.describe(ctx, actx, err)}
	}
	return res, err
}

// acquire takes a concurrency slot, then a limiter token, in that order: a
// token spent while waiting for a slot would let requests bunch up behind
// the slot and arrive at the provider faster than the rate. It returns when
// the token was reserved, which dates the rate the request was paced at.
func (c *Client) acquire(ctx context.Context) (time.Time, error) {
	if err := c.sem.Acquire(ctx, 1); err != nil {
		return time.Time{}, fmt.Errorf("waiting for a concurrency slot: %w", context.Cause(ctx))
	}
	reserved, err := c.waitToken(ctx)
	if err != nil {
		c.sem.Release(1)
		return time.Time{}, err
	}
	return reserved, nil
}

// waitToken takes a token from the pacer, then a slot in the shared budget
// if there is one, then passes the gate. It fails at once when a token
// comes due after ctx's deadline, and returns when it reserved the pacer's
// token.
func (c *Client) waitToken(ctx context.Context) (time.Time, error) {
	now := time.Now()
	if c.lim == nil {
		return now, nil
	}
	c.adapt.recover(now)
	if c.budget != nil {
		c.budget.sync(ctx, now)
	}
	now, delay, r := c.lim.reserve()
	if err := sleep(ctx, "a rate-limit token", delay); err != nil {
		c.lim.cancel(r)
		return now, err
	}
	if c.budget != nil {
		if err := c.budget.take(ctx); err != nil {
			return now, err
		}
	}
	return now, c.pass(ctx)
}

// pass waits until the gate, a bucket like the pacer's checked without
// reserving ahead, admits a request at the moment it leaves. The pacer
// hands out tokens in advance; goroutines that wake late (a GC pause, a
// starved CPU) would otherwise send their stale tokens together, a burst
// the provider's bucket, which kept no more than its burst meanwhile, would
// answer with 429s.
func (c *Client) pass(ctx context.Context) error {
	for {
		ok, wait := c.gate.take()
		if ok {
			return nil
		}
		if err := sleep(ctx, "a rate-limit token", max(wait, 100*time.Microsecond)); err != nil {
			return err
		}
	}
}

// requestHeader is the header of every request. One map serves them all:
// neither http.Client nor a Transport writes to a request's header.
func requestHeader(token string) http.Header {
	h := http.Header{"Accept": {"application/json"}, "User-Agent": {"snowgate"}}
	if token != "" {
		h["Authorization"] = []string{"Bearer " + token}
	}
	return h
}

// describe strips the *url.Error around a transport error (it quotes the
// whole URL, hostile ID included) and names an attempt timeout as such: the
// attempt's own context ended while the lookup's did not.
func (c *Client) describe(ctx, actx context.Context, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if ctx.Err() == nil && actx.Err() != nil {
		return fmt.Errorf("attempt timed out after %v: %w", c.cfg.Timeout, err)
	}
	return err
}

// answer turns a response into a Result or a classified error; reserved is
// when the request's limiter token was reserved.
func (c *Client) answer(ctx context.Context, resp *http.Response, id string, reserved time.Time) (Result, error) {
	if c.adapt != nil && resp.StatusCode != http.StatusTooManyRequests {
		c.adapt.answered(time.Now())
	}
	switch code := resp.StatusCode; code {
	case http.StatusOK:
		res, err := decodeEntity(resp.Body, id)
		if errors.Is(err, ErrMalformed) {
			c.n.malformed.Add(1)
		}
		return res, err
	case http.StatusNotFound:
		drain(resp.Body)
		return Result{Status: NotFound}, nil
	default:
		drain(resp.Body)
		se := &StatusError{Code: code}
		if code == http.StatusTooManyRequests || code >= 500 {
			se.RetryAfter, _ = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
		}
		c.count(ctx, se, reserved)
		return Result{}, se
	}
}

func (c *Client) count(ctx context.Context, se *StatusError, reserved time.Time) {
	switch {
	case se.Code == http.StatusTooManyRequests:
		c.n.throttled.Add(1)
		if c.adapt == nil {
			return
		}
		if r, cut := c.adapt.throttled(reserved, time.Now()); cut {
			c.log.Info("provider throttled; lowering request rate", "rate", r)
			if c.budget != nil {
				c.budget.lower(ctx, r)
			}
		}
	case se.Code >= 500:
		c.n.serverErrors.Add(1)
	}
}

// drain reads a little of an unused body so the connection can be reused.
func drain(body io.Reader) {
	_, _ = io.Copy(io.Discard, io.LimitReader(body, 4<<10))
}

// parseRetryAfter reads a Retry-After value: delay-seconds or an HTTP-date.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	return backoff.RetryAfter(v, now)
}
