package extfunc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/snowgate/snowgate/backoff"
)

// Post sends b until it is answered 200, and returns that answer's body,
// decompressed, for DecodeResponse. As Snowflake does, it retries 429, 5xx
// and requests without an answer with the same batch id, after full-jitter
// backoff or the answer's Retry-After, whichever is longer; and it polls a
// batch answered 202 with GET, with growing delays. It gives up after
// Config.MaxAttempts failures, when polling passes Config.PollTimeout, at
// any other status (a *StatusError), or when ctx ends. The Stats count its
// requests, whether it succeeded or not.
func (c *Client) Post(ctx context.Context, b Batch) ([]byte, Stats, error) {
	k := &call{c: c}
	b, err := c.Compress(b)
	if err != nil {
		return nil, k.st, err
	}
	k.b = b
	for {
		status, body, err := k.send(ctx, http.MethodPost)
		switch {
		case err == nil && status == http.StatusOK:
			return body, k.st, nil
		case err == nil && status == http.StatusAccepted:
			k.st.Accepted = true
			body, err = k.poll(ctx)
			return body, k.st, err
		}
		wait, gaveUp := k.retry(ctx, err)
		if gaveUp != nil {
			return nil, k.st, gaveUp
		}
		if serr := backoff.Sleep(ctx, wait); serr != nil {
			return nil, k.st, fmt.Errorf("extfunc: %w; then %w", err, serr)
		}
	}
}

// call is one batch in Post.
type call struct {
	c        *Client
	b        Batch
	st       Stats
	failures int  // requests that failed in a way worth retrying
	again    bool // the next request repeats a failed one
}

// poll GETs an accepted batch until it is no longer 202. A failed poll is
// retried as a poll, the service knowing the batch, after the longer of
// the poll delay and the retry's wait.
func (k *call) poll(ctx context.Context) ([]byte, error) {
	cfg := &k.c.cfg
	giveUp := time.Now().Add(cfg.PollTimeout)
	delay := cfg.PollFirst
	wait := delay
	for {
		if time.Now().Add(wait).After(giveUp) {
			return nil, fmt.Errorf("extfunc: batch still accepted (202) after %v of polling", cfg.PollTimeout)
		}
		if err := backoff.Sleep(ctx, wait); err != nil {
			return nil, fmt.Errorf("extfunc: polling: %w", err)
		}
		k.st.Polls++
		status, body, err := k.send(ctx, http.MethodGet)
		switch {
		case err == nil && status == http.StatusOK:
			return body, nil
		case err == nil && status == http.StatusAccepted:
			delay = min(cfg.PollMax, delay*3/2)
			wait = delay
			continue
		}
		retryWait, gaveUp := k.retry(ctx, err)
		if gaveUp != nil {
			return nil, gaveUp
		}
		delay = min(cfg.PollMax, delay*3/2)
		wait = max(delay, retryWait)
	}
}

// retry decides after a failed request: how long to wait before sending it
// again, or the error to give up with.
func (k *call) retry(ctx context.Context, cause error) (time.Duration, error) {
	var ne *netError
	var se *StatusError
	var retryAfter time.Duration
	switch {
	case errors.As(cause, &se) && se.Temporary():
		retryAfter = min(se.RetryAfter, k.c.cfg.MaxRetryAfter)
	case !errors.As(cause, &ne):
		return 0, fmt.Errorf("extfunc: %w", cause)
	}
	k.failures++
	if cerr := context.Cause(ctx); cerr != nil {
		if errors.Is(cause, cerr) {
			return 0, fmt.Errorf("extfunc: %w", cause) // the request failed because ctx ended
		}
		return 0, fmt.Errorf("extfunc: %w; then %w", cause, cerr)
	}
	if k.failures >= k.c.cfg.MaxAttempts {
		return 0, fmt.Errorf("extfunc: gave up after %d attempts: %w", k.failures, cause)
	}
	k.again = true
	return max(k.c.policy.Delay(k.failures), retryAfter), nil
}

// netError is a request that got no usable answer; it is retried.
type netError struct{ err error }

func (e *netError) Error() string { return e.err.Error() }
func (e *netError) Unwrap() error { return e.err }

// send makes one request of the batch and counts what it came to. A 200
// or 202 is (status, body, nil); anything else an error.
func (k *call) send(ctx context.Context, method string) (int, []byte, error) {
	k.st.Requests++
	if k.again {
		k.st.Retries++
		k.again = false
	}
	status, body, err := k.c.do(ctx, method, k.b)
	var ne *netError
	switch {
	case errors.As(err, &ne):
		k.st.NetErrors++
	case status == http.StatusTooManyRequests:
		k.st.Throttled++
	case status >= 500:
		k.st.ServerErrors++
	}
	return status, body, err
}

// do sends one request and reads its answer.
func (c *Client) do(ctx context.Context, method string, b Batch) (int, []byte, error) {
	actx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	req, err := c.Request(actx, method, b)
	if err != nil {
		return 0, nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, &netError{c.describe(ctx, actx, method, err)}
	}
	defer resp.Body.Close()
	body, err := c.read(resp)
	if err != nil {
		return 0, nil, err
	}
	switch resp.StatusCode {
	case http.StatusOK, http.StatusAccepted:
		return resp.StatusCode, body, nil
	}
	se := &StatusError{Code: resp.StatusCode, Body: body}
	if se.Temporary() {
		se.RetryAfter, _ = backoff.RetryAfter(resp.Header.Get("Retry-After"), time.Now())
	}
	return resp.StatusCode, nil, se
}

// errTooLarge fails a batch whose answer passes Config.MaxResponse: asking
// again would get the same answer.
var errTooLarge = errors.New("answer too large")

// read reads an answer's body, decompressing it when it says gzip.
func (c *Client) read(resp *http.Response) ([]byte, error) {
	var r io.Reader = resp.Body
	if strings.EqualFold(strings.TrimSpace(resp.Header.Get("Content-Encoding")), "gzip") {
		zr, err := gzip.NewReader(resp.Body)
		if err != nil {
			return nil, &netError{fmt.Errorf("gzip answer: %w", err)}
		}
		defer zr.Close()
		r = zr
	}
	body, err := io.ReadAll(io.LimitReader(r, c.cfg.MaxResponse+1))
	if err != nil {
		return nil, &netError{fmt.Errorf("read answer: %w", err)}
	}
	if int64(len(body)) > c.cfg.MaxResponse {
		return nil, fmt.Errorf("%w: more than %d bytes (status %d)", errTooLarge, c.cfg.MaxResponse, resp.StatusCode)
	}
	return body, nil
}

// describe strips the *url.Error around a transport error (it repeats the
// URL in every message) and names a request's own timeout as such.
func (c *Client) describe(ctx, actx context.Context, method string, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if ctx.Err() == nil && actx.Err() != nil {
		return fmt.Errorf("%s timed out after %v: %w", method, c.cfg.Timeout, err)
	}
	return fmt.Errorf("%s: %w", method, err)
}
