package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/snowgate/snowgate/extfunc"
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

// resolveLocation is the function as Snowflake names it in a batch's
// headers, seen through AWS API Gateway.
var resolveLocation = extfunc.Function{Name: "RESOLVE_LOCATION", Signature: "(ID VARCHAR)", ReturnType: "VARIANT"}

// sfClient sends batches to the gateway the way Snowflake does: several
// batches in parallel, gzip request bodies, gzip accepted, every 429 and
// 5xx retried with the same batch id, 202 polled with GET, and every
// answered row checked against the oracle.
type sfClient struct {
	ef     *extfunc.Client
	client *http.Client
	oracle *oracle
}

func newSFClient(url string, parallel int, o *oracle) (*sfClient, error) {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 2 * parallel
	t.DisableCompression = true // the client handles gzip itself, as Snowflake does
	hc := &http.Client{Transport: t}
	ef, err := extfunc.New(url, extfunc.Config{
		Function: resolveLocation, UserAgent: "snowflake/1.0", Gzip: true,
		// Snowflake retries until its own timeout: only batchGiveUp ends a batch.
		MaxAttempts: math.MaxInt, BaseBackoff: retryFirst, MaxBackoff: retryMax,
		PollFirst: pollFirst, PollMax: pollMax, PollTimeout: batchGiveUp,
		Timeout: batchGiveUp, MaxResponse: maxAnswer, HTTPClient: hc,
	})
	if err != nil {
		return nil, fmt.Errorf("bench driver: %w", err)
	}
	return &sfClient{ef: ef, client: hc, oracle: o}, nil
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
	var st extfunc.Stats
	body, err := d.encode(ids)
	if err == nil {
		body, st, err = d.ef.Post(ctx, extfunc.Batch{QueryID: p.queryID, BatchID: batchID, Body: body, Gzipped: true})
	}
	p.tries[tryGateway429].Add(int64(st.Throttled))
	p.tries[try5xx].Add(int64(st.ServerErrors))
	p.tries[tryNet].Add(int64(st.NetErrors))
	if st.Accepted {
		p.tries[tryAccepted].Add(1)
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
	raw, err := extfunc.EncodeColumn(ids)
	if err != nil {
		return nil, err
	}
	b, err := d.ef.Compress(extfunc.Batch{Body: raw})
	return b.Body, err
}

// request builds one request of a batch whose body encode made, with the
// headers Snowflake sends.
func (d *sfClient) request(ctx context.Context, method, queryID, batchID string, body []byte) (*http.Request, error) {
	return d.ef.Request(ctx, method, extfunc.Batch{QueryID: queryID, BatchID: batchID, Body: body, Gzipped: true})
}

// check decodes an answer and judges every row; a broken answer makes
// every row of the batch wrong.
func (d *sfClient) check(p *pass, batchID string, ids []string, body []byte) {
	rows, err := extfunc.DecodeRows(body)
	if err == nil && len(rows) != len(ids) {
		err = fmt.Errorf("%w: %d rows answered for %d sent", extfunc.ErrRowCount, len(rows), len(ids))
	}
	if err != nil {
		p.wrong.Add(int64(len(ids)))
		p.note(fmt.Sprintf("batch %s: %v", batchID, err))
		return
	}
	var right, failed, wrong int64
	for i, row := range rows {
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
