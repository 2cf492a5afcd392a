package bench

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// How the driver behaves where Snowflake's documentation says only
// "retries" and "polls with growing delays": these are guesses of the same
// order as what public captures show, kept in one place.
const (
	batchGiveUp = 10 * time.Minute // Snowflake stops polling after 10 minutes
	retryFirst  = 100 * time.Millisecond
	retryMax    = 5 * time.Second
	pollFirst   = 50 * time.Millisecond
	pollMax     = time.Second
	maxAnswer   = 64 << 20
)

// sfClient sends batches to the gateway the way Snowflake does: several
// batches in parallel, gzip request bodies, gzip accepted, every 429 and
// 5xx retried with the same batch id, 202 polled with GET, and every
// answered row checked against the oracle.
type sfClient struct {
	url    string
	client *http.Client
	oracle *oracle
	gzips  sync.Pool // *gzip.Writer
}

func newSFClient(url string, parallel int, o *oracle) *sfClient {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 2 * parallel
	t.DisableCompression = true // the driver handles gzip itself, as Snowflake does
	d := &sfClient{url: url, client: &http.Client{Transport: t}, oracle: o}
	d.gzips.New = func() any { return gzip.NewWriter(nil) }
	return d
}

func (d *sfClient) close() { d.client.CloseIdleConnections() }

// pass is one query's worth of batches and what became of them.
type pass struct {
	queryID string
	start   time.Time
	end     time.Time
	rows    atomic.Int64 // rows answered (right or failed), for the progress sampler
	right   atomic.Int64
	failed  atomic.Int64
	wrong   atomic.Int64
	missing atomic.Int64 // rows of batches that never got an answer
	tries   [4]atomic.Int64

	mu        sync.Mutex // guards latencies and examples
	latencies []time.Duration
	examples  []string
}

// Indexes of pass.tries.
const (
	tryGateway429 = iota // the gateway's in-flight cap said 429
	try5xx
	tryNet
	tryAccepted // 202: the batch went asynchronous
)

func (p *pass) note(example string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.examples) < 5 {
		p.examples = append(p.examples, example)
	}
}

func newPass(queryID string) *pass { return &pass{queryID: queryID} }

// run sends batches as a new query and returns what became of them.
func (d *sfClient) run(ctx context.Context, queryID string, batches [][]string, parallel int) *pass {
	p := newPass(queryID)
	d.send(ctx, p, batches, parallel)
	return p
}

// send sends batches, parallel at a time, as the query p, and returns when
// every batch is answered or given up, or ctx ends.
func (d *sfClient) send(ctx context.Context, p *pass, batches [][]string, parallel int) {
	p.start = time.Now()
	next := make(chan int)
	var wg sync.WaitGroup
	for range parallel {
		wg.Go(func() {
			for i := range next {
				d.batch(ctx, p, fmt.Sprintf("%s:1:1:0:%d", p.queryID, i), batches[i])
			}
		})
	}
feed:
	for i := range batches {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	p.end = time.Now()
}

// batch sends one batch until it is answered, and checks the answer.
func (d *sfClient) batch(ctx context.Context, p *pass, batchID string, ids []string) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, batchGiveUp)
	defer cancel()
	body, err := d.encode(ids)
	if err == nil {
		body, err = d.exchange(ctx, p, batchID, body)
	}
	if err != nil {
		p.missing.Add(int64(len(ids)))
		p.note(fmt.Sprintf("batch %s: %v", batchID, err))
		return
	}
	p.mu.Lock()
	p.latencies = append(p.latencies, time.Since(start))
	p.mu.Unlock()
	d.check(p, batchID, ids, body)
}

// encode builds the gzip-compressed {"data": [[0, "id"], ...]} body.
func (d *sfClient) encode(ids []string) ([]byte, error) {
	raw := make([]byte, 0, 16+len(ids)*24)
	raw = append(raw, `{"data":[`...)
	for i, id := range ids {
		if i > 0 {
			raw = append(raw, ',')
		}
		raw = append(raw, '[')
		raw = strconv.AppendInt(raw, int64(i), 10)
		raw = append(raw, ',')
		q, err := json.Marshal(id)
		if err != nil {
			return nil, err
		}
		raw = append(raw, q...)
		raw = append(raw, ']')
	}
	raw = append(raw, "]}"...)
	var buf bytes.Buffer
	zw := d.gzips.Get().(*gzip.Writer)
	defer d.gzips.Put(zw)
	zw.Reset(&buf)
	if _, err := zw.Write(raw); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// exchange POSTs the batch, retrying 429, 5xx and transport errors with the
// same batch id, and polls a 202 until the answer is ready.
func (d *sfClient) exchange(ctx context.Context, p *pass, batchID string, body []byte) ([]byte, error) {
	for attempt := 0; ; attempt++ {
		status, answer, err := d.do(ctx, http.MethodPost, p.queryID, batchID, body)
		switch {
		case err == nil && status == http.StatusOK:
			return answer, nil
		case err == nil && status == http.StatusAccepted:
			p.tries[tryAccepted].Add(1)
			return d.poll(ctx, p, batchID)
		case err == nil && status != http.StatusTooManyRequests && status < 500:
			return nil, fmt.Errorf("status %d: %s", status, clip(answer))
		}
		countRetry(p, status, err)
		if werr := sleepCtx(ctx, backoff(attempt)); werr != nil {
			return nil, fmt.Errorf("gave up after %d attempts (last: %v): %w", attempt+1, describe(status, err), werr)
		}
	}
}

// poll GETs the batch with growing delays until it is no longer 202.
func (d *sfClient) poll(ctx context.Context, p *pass, batchID string) ([]byte, error) {
	delay := pollFirst
	for attempt := 0; ; attempt++ {
		if err := sleepCtx(ctx, delay); err != nil {
			return nil, fmt.Errorf("polling: %w", err)
		}
		delay = min(pollMax, delay*3/2)
		status, answer, err := d.do(ctx, http.MethodGet, p.queryID, batchID, nil)
		switch {
		case err == nil && status == http.StatusOK:
			return answer, nil
		case err == nil && status == http.StatusAccepted:
			continue
		case err == nil && status != http.StatusTooManyRequests && status < 500:
			return nil, fmt.Errorf("poll: status %d: %s", status, clip(answer))
		}
		countRetry(p, status, err)
		delay = max(delay, backoff(attempt))
	}
}

func countRetry(p *pass, status int, err error) {
	switch {
	case err != nil:
		p.tries[tryNet].Add(1)
	case status == http.StatusTooManyRequests:
		p.tries[tryGateway429].Add(1)
	default:
		p.tries[try5xx].Add(1)
	}
}

func describe(status int, err error) string {
	if err != nil {
		return err.Error()
	}
	return "status " + strconv.Itoa(status)
}

// backoff is exponential with full jitter.
func backoff(attempt int) time.Duration {
	d := min(retryMax, retryFirst<<min(attempt, 10))
	return d/2 + rand.N(d/2+1)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

var nameBase64 = base64.StdEncoding.EncodeToString([]byte("RESOLVE_LOCATION"))

// setHeaders sets the headers Snowflake sends with a batch (PROTOCOL.md
// section 3, as observed through AWS API Gateway).
func setHeaders(h http.Header, queryID, batchID string, body bool) {
	h.Set("Accept-Encoding", "gzip")
	h.Set("User-Agent", "snowflake/1.0")
	h.Set("sf-external-function-format", "json")
	h.Set("sf-external-function-format-version", "1.0")
	h.Set("sf-external-function-current-query-id", queryID)
	h.Set("sf-external-function-query-batch-id", batchID)
	h.Set("sf-external-function-name-base64", nameBase64)
	h.Set("sf-external-function-signature", "(ID VARCHAR)")
	h.Set("sf-external-function-return-type", "VARIANT")
	if body {
		h.Set("Content-Type", "application/json")
		h.Set("Content-Encoding", "gzip")
	}
}

// do sends one request with Snowflake's headers and returns the status and
// the decompressed body.
func (d *sfClient) do(ctx context.Context, method, queryID, batchID string, body []byte) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, d.url, rd)
	if err != nil {
		return 0, nil, err
	}
	setHeaders(req.Header, queryID, batchID, body != nil)
	resp, err := d.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var r io.Reader = resp.Body
	if resp.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(resp.Body)
		if err != nil {
			return 0, nil, fmt.Errorf("answer: %w", err)
		}
		r = zr
	}
	out, err := io.ReadAll(io.LimitReader(r, maxAnswer))
	if err != nil {
		return 0, nil, fmt.Errorf("answer: %w", err)
	}
	return resp.StatusCode, out, nil
}

// check decodes an answer and judges every row; a broken answer makes
// every row of the batch wrong.
func (d *sfClient) check(p *pass, batchID string, ids []string, body []byte) {
	var ans struct {
		Data [][]json.RawMessage `json:"data"`
	}
	err := json.Unmarshal(body, &ans)
	if err == nil && len(ans.Data) != len(ids) {
		err = fmt.Errorf("%d rows answered for %d sent", len(ans.Data), len(ids))
	}
	if err != nil {
		p.wrong.Add(int64(len(ids)))
		p.note(fmt.Sprintf("batch %s: %v", batchID, err))
		return
	}
	var right, failed, wrong int64
	for i, row := range ans.Data {
		if len(row) != 2 || string(row[0]) != strconv.Itoa(i) {
			wrong++
			p.note(fmt.Sprintf("batch %s row %d: got %s; want [%d, value]", batchID, i, clip(mustJSON(row)), i))
			continue
		}
		switch v, why := d.oracle.check(ids[i], row[1]); v {
		case rowRight:
			right++
		case rowFailed:
			failed++
		default:
			wrong++
			p.note(fmt.Sprintf("batch %s row %d: %s", batchID, i, why))
		}
	}
	p.right.Add(right)
	p.failed.Add(failed)
	p.wrong.Add(wrong)
	p.rows.Add(right + failed)
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		return []byte(err.Error())
	}
	return b
}

// summarize merges passes into one report.
func summarize(passes ...*pass) PassReport {
	var pr PassReport
	var lat []time.Duration
	for _, p := range passes {
		pr.Seconds += p.end.Sub(p.start).Seconds()
		pr.Right += p.right.Load()
		pr.Failed += p.failed.Load()
		pr.Wrong += p.wrong.Load()
		pr.Missing += p.missing.Load()
		pr.Gateway429s += p.tries[tryGateway429].Load()
		pr.Retries5xx += p.tries[try5xx].Load()
		pr.RetriesNet += p.tries[tryNet].Load()
		pr.Async += p.tries[tryAccepted].Load()
		p.mu.Lock()
		lat = append(lat, p.latencies...)
		pr.Examples = append(pr.Examples, p.examples...)
		p.mu.Unlock()
	}
	pr.Batches = len(lat)
	pr.Rows = pr.Right + pr.Failed + pr.Wrong
	if pr.Seconds > 0 {
		pr.RowsPerSec = float64(pr.Right+pr.Failed) / pr.Seconds
	}
	slices.Sort(lat)
	pr.LatencyP50 = percentile(lat, 0.50).Seconds()
	pr.LatencyP99 = percentile(lat, 0.99).Seconds()
	pr.LatencyMax = percentile(lat, 1).Seconds()
	if len(pr.Examples) > 5 {
		pr.Examples = pr.Examples[:5]
	}
	return pr
}

// percentile is the nearest-rank percentile of sorted durations.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	k := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(k, 0), len(sorted)-1)]
}
