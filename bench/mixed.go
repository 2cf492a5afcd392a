package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/snowgate/snowgate/backoff"
	"github.com/snowgate/snowgate/cache"
	"github.com/snowgate/snowgate/gateway"
	"github.com/snowgate/snowgate/sim"
)

// MixedReport is the mixed-protocol phase: the gateway phase's rows, split
// into the same batches, sent in turn as a Snowflake batch, a BigQuery
// request, a REST batchGet and a Redshift event, all at once through one
// gateway on one cache: a cold pass, then hot passes in which each batch
// goes by another protocol than before. Its provider has no faults, so
// each provider call is one distinct ID resolved: every protocol reading
// every other's entries shows as ProviderCalls == Distinct.
type MixedReport struct {
	Rows      int `json:"rows"`
	Distinct  int `json:"distinct"`
	Batches   int `json:"batches"`
	BatchSize int `json:"batch_size"`
	Parallel  int `json:"parallel"`

	Cold MixedPass `json:"cold"`
	Hot  MixedPass `json:"hot"`
	// ColdRowsPerSecondBound is the gateway phase's: rows / (distinct /
	// provider cap).
	ColdRowsPerSecondBound float64 `json:"cold_rows_per_sec_bound"`

	// ProviderCalls is the requests the provider admitted (past its token
	// bucket), each one answered; want Distinct. Provider429s were refused
	// by the bucket and retried by snowgate: they resolve nothing.
	ProviderCalls int `json:"provider_calls"`
	Provider429s  int `json:"provider_429s"`
}

// MixedPass is one or more passes over the batches.
type MixedPass struct {
	Seconds    float64 `json:"seconds"`
	RowsPerSec float64 `json:"rows_per_sec"`
	// Protocols holds snowflake, bigquery, rest and redshift in that order;
	// their batches are interleaved over the same Seconds, so their rows
	// per second add up to RowsPerSec.
	Protocols []ProtocolReport `json:"protocols"`
}

// ProtocolReport is what became of one protocol's batches in the mixed
// phase. Gateway429s counts the gateway's overload answers (for Redshift,
// an "overloaded" error_msg), each retried; want 0.
type ProtocolReport struct {
	Name        string   `json:"name"`
	Batches     int      `json:"batches"`
	Rows        int64    `json:"rows"`
	RowsPerSec  float64  `json:"rows_per_sec"`
	LatencyP50  float64  `json:"latency_p50_s"`
	LatencyP99  float64  `json:"latency_p99_s"`
	Right       int64    `json:"right"`
	Failed      int64    `json:"failed"`
	Wrong       int64    `json:"wrong"`
	Missing     int64    `json:"missing"`
	Gateway429s int64    `json:"gateway_429s"`
	Retries     int64    `json:"retries"` // 5xx and network errors, retried
	Examples    []string `json:"examples,omitempty"`
}

// The protocols of the mixed phase, in the order batches take turns.
const (
	mixedSnowflake = "snowflake"
	mixedBigQuery  = "bigquery"
	mixedREST      = "rest"
	mixedRedshift  = "redshift"
)

var mixedProtocols = []string{mixedSnowflake, mixedBigQuery, mixedREST, mixedRedshift}

// Where the mixed phase's gateway serves BigQuery and REST: serve's defaults.
const (
	mixedBigQueryPath = "/bigquery/resolve_location"
	mixedRESTPrefix   = "/v1"
)

// mixedBatchCap is the REST API's limit of ids per batchGet.
const mixedBatchCap = 10_000

// mixedPhase runs the phase on the gateway phase's rows.
func (r *runner) mixedPhase(ctx context.Context) (*MixedReport, error) {
	c := r.cfg
	rows, distinct := gatewayRows(c.Rows, c.RepeatRatio, c.Provider.Seed)
	size := min(c.BatchSize, mixedBatchCap)
	batches := split(rows, size)
	rep := &MixedReport{Rows: len(rows), Distinct: len(distinct), Batches: len(batches), BatchSize: size, Parallel: c.Parallel}
	r.log.Info("bench phase", "phase", "mixed", "rows", len(rows), "distinct", len(distinct))
	if err := r.mixedRun(ctx, rep, batches, distinct); err != nil {
		return nil, fmt.Errorf("mixed: %w", err)
	}
	return rep, nil
}

// faultless is cfg without transient faults or always-failing IDs: a
// retried fault would be a second call for one ID. Misses stay: they are
// cached too.
func faultless(cfg sim.Config) sim.Config {
	cfg.ErrorRate, cfg.HangRate, cfg.SlowRate, cfg.TruncateRate, cfg.PermanentFailRatio = 0, 0, 0, 0, 0
	return cfg
}

func (r *runner) mixedRun(ctx context.Context, rep *MixedReport, batches [][]string, distinct []string) error {
	c := r.cfg
	prov, err := startProvider(ctx, faultless(c.Provider), r.log)
	if err != nil {
		return err
	}
	defer prov.Close()
	o, err := newOracle(prov.Server, distinct)
	if err != nil {
		return err
	}
	// Synchronous, as BigQuery, REST and Redshift are: the serve defaults.
	st, err := r.startGateway(ctx, prov, max(cache.DefaultSize, 2*len(distinct)), gateway.Config{
		BigQueryPath: mixedBigQueryPath, RESTPrefix: mixedRESTPrefix, ShutdownTimeout: 5 * time.Second,
		OnRowError: gateway.RowErrorObject, NotFound: gateway.NotFoundObject,
	})
	if err != nil {
		return err
	}
	defer st.stop()
	m, err := newMixedClient(st, c.Parallel, o)
	if err != nil {
		return err
	}
	defer m.sf.close()
	rep.Cold = summarizeMixed([][]*pass{m.send(ctx, "bench-mixed-cold", batches, c.Parallel, 0)})
	// Each hot round shifts the protocols by one: a batch's IDs come back
	// by another protocol than the one that resolved them.
	var hot [][]*pass
	for start := time.Now(); len(hot) == 0 || time.Since(start) < c.HotMin; {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		hot = append(hot, m.send(ctx, fmt.Sprintf("bench-mixed-hot-%d", len(hot)), batches, c.Parallel, len(hot)+1))
	}
	rep.Hot = summarizeMixed(hot)
	pst := prov.Stats()
	rep.ProviderCalls, rep.Provider429s = pst.Admitted, pst.Limited
	if pc := throughputCap(c.Rate, c.Concurrency, c.Provider.Latency); pc > 0 {
		rep.ColdRowsPerSecondBound = pc * float64(rep.Rows) / float64(rep.Distinct)
	}
	return ctx.Err()
}

// summarizeMixed merges rounds of passes, each round one pass per
// protocol over the same time.
func summarizeMixed(rounds [][]*pass) MixedPass {
	var mp MixedPass
	var rows int64
	for k, name := range mixedProtocols {
		var ps []*pass
		for _, round := range rounds {
			ps = append(ps, round[k])
		}
		pr := summarize(ps...)
		mp.Seconds = max(mp.Seconds, pr.Seconds)
		mp.Protocols = append(mp.Protocols, ProtocolReport{
			Name: name, Batches: pr.Batches, Rows: pr.Rows + pr.Missing, RowsPerSec: pr.RowsPerSec,
			LatencyP50: pr.LatencyP50, LatencyP99: pr.LatencyP99,
			Right: pr.Right, Failed: pr.Failed, Wrong: pr.Wrong, Missing: pr.Missing,
			Gateway429s: pr.Gateway429s, Retries: pr.Retries5xx + pr.RetriesNet, Examples: pr.Examples,
		})
		rows += pr.Right + pr.Failed
	}
	mp.RowsPerSec = ratio(float64(rows), mp.Seconds)
	return mp
}

// err reports what the phase must never show: a row wrong or unanswered, a
// gateway 429, or a provider call that another protocol's entry should
// have saved (or an ID never asked).
func (rep *MixedReport) err() error {
	var errs []error
	for _, mp := range []struct {
		name string
		pass MixedPass
	}{{"cold", rep.Cold}, {"hot", rep.Hot}} {
		for _, p := range mp.pass.Protocols {
			if p.Wrong+p.Missing > 0 {
				errs = append(errs, fmt.Errorf("mixed %s pass, %s: %d rows wrong, %d never answered; e.g. %v",
					mp.name, p.Name, p.Wrong, p.Missing, p.Examples))
			}
			if p.Gateway429s > 0 {
				errs = append(errs, fmt.Errorf("mixed %s pass, %s: %d gateway 429s; want 0", mp.name, p.Name, p.Gateway429s))
			}
		}
	}
	if rep.ProviderCalls != rep.Distinct {
		errs = append(errs, fmt.Errorf("mixed: %d provider calls for %d distinct IDs; want one each", rep.ProviderCalls, rep.Distinct))
	}
	return errors.Join(errs...)
}

// mixedClient speaks each protocol to one gateway: Snowflake through the
// Snowflake-like driver, BigQuery and REST over HTTP, Redshift in process
// (Redshift reaches snowgate only through Lambda, whose runtime loop hands
// the event to Server.Redshift).
type mixedClient struct {
	sf   *sfClient
	gw   *gateway.Server
	base string
}

func newMixedClient(st *gatewayStack, parallel int, o *oracle) (*mixedClient, error) {
	sf, err := newSFClient(st.base+"/resolve_location", parallel, o)
	if err != nil {
		return nil, err
	}
	return &mixedClient{sf: sf, gw: st.gw, base: st.base}, nil
}

// send sends batch i as protocol (i+shift)%4, parallel at a time, as the
// query queryID, and returns one pass per protocol.
func (m *mixedClient) send(ctx context.Context, queryID string, batches [][]string, parallel, shift int) []*pass {
	passes := make([]*pass, len(mixedProtocols))
	start := time.Now()
	for i, name := range mixedProtocols {
		passes[i] = newPass(queryID + "-" + name)
		passes[i].start = start
	}
	next := make(chan int)
	var wg sync.WaitGroup
	for range parallel {
		wg.Go(func() {
			for i := range next {
				k := (i + shift) % len(mixedProtocols)
				m.batch(ctx, passes[k], mixedProtocols[k], fmt.Sprintf("%s:1:1:0:%d", passes[k].queryID, i), batches[i])
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
	end := time.Now()
	for _, p := range passes {
		p.end = end
	}
	return passes
}

// batch sends one batch as proto and checks its answer.
func (m *mixedClient) batch(ctx context.Context, p *pass, proto, batchID string, ids []string) {
	if proto == mixedSnowflake {
		m.sf.batch(ctx, p, batchID, ids)
		return
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, batchGiveUp)
	defer cancel()
	values, err := retrying(ctx, p, func() ([]json.RawMessage, int, error) { return m.ask(ctx, proto, batchID, ids) })
	if err != nil {
		p.missing.Add(int64(len(ids)))
		p.note(fmt.Sprintf("batch %s: %v", batchID, err))
		return
	}
	p.mu.Lock()
	p.latencies = append(p.latencies, time.Since(start))
	p.mu.Unlock()
	m.judge(p, batchID, ids, values)
}

func (m *mixedClient) ask(ctx context.Context, proto, batchID string, ids []string) ([]json.RawMessage, int, error) {
	switch proto {
	case mixedBigQuery:
		return m.bigQuery(ctx, batchID, ids)
	case mixedREST:
		return m.batchGet(ctx, ids)
	}
	return m.redshift(ctx, batchID, ids)
}

// retrying calls try until it answers 200, retrying what the platforms
// retry (429, 5xx, network errors) with growing delays, counted in p.
func retrying(ctx context.Context, p *pass, try func() ([]json.RawMessage, int, error)) ([]json.RawMessage, error) {
	delay := retryFirst
	for {
		values, status, err := try()
		switch {
		case err == nil && status == http.StatusOK:
			return values, nil
		case status == http.StatusTooManyRequests:
			p.tries[tryGateway429].Add(1)
		case status >= 500:
			p.tries[try5xx].Add(1)
		case status == 0 && ctx.Err() == nil:
			p.tries[tryNet].Add(1)
		default:
			return nil, fmt.Errorf("status %d: %w", status, err)
		}
		if backoff.Sleep(ctx, delay) != nil {
			return nil, fmt.Errorf("gave up (last: status %d): %w", status, errors.Join(ctx.Err(), err))
		}
		delay = min(retryMax, 2*delay)
	}
}

// judge checks every answered value against the oracle; an answer with
// the wrong number of values makes every row of the batch wrong.
func (m *mixedClient) judge(p *pass, batchID string, ids []string, values []json.RawMessage) {
	if len(values) != len(ids) {
		p.wrong.Add(int64(len(ids)))
		p.note(fmt.Sprintf("batch %s: %d values answered for %d sent", batchID, len(values), len(ids)))
		return
	}
	var right, failed, wrong int64
	for i, v := range values {
		switch verdict, why := m.sf.oracle.check(ids[i], v); verdict {
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

// bigQuery sends ids as one remote-function request; requestId is the
// batch's, as BigQuery keeps one per request.
func (m *mixedClient) bigQuery(ctx context.Context, batchID string, ids []string) ([]json.RawMessage, int, error) {
	calls := make([][]string, len(ids))
	for i, id := range ids {
		calls[i] = []string{id}
	}
	var a struct {
		Replies []json.RawMessage `json:"replies"`
	}
	status, err := m.postJSON(ctx, mixedBigQueryPath, map[string]any{"requestId": batchID, "calls": calls}, &a)
	return a.Replies, status, err
}

// batchGet sends ids as one REST batchGet; each entry's location is the
// value, and its id must be the one asked.
func (m *mixedClient) batchGet(ctx context.Context, ids []string) ([]json.RawMessage, int, error) {
	var a struct {
		Locations []struct {
			ID       *string         `json:"id"`
			Location json.RawMessage `json:"location"`
		} `json:"locations"`
	}
	status, err := m.postJSON(ctx, mixedRESTPrefix+"/locations:batchGet", map[string]any{"ids": ids}, &a)
	if err != nil || status != http.StatusOK {
		return nil, status, err
	}
	values := make([]json.RawMessage, len(a.Locations))
	for i, l := range a.Locations {
		values[i] = l.Location
		if i < len(ids) && (l.ID == nil || *l.ID != ids[i]) {
			values[i] = json.RawMessage(fmt.Sprintf(`{"entry_id_mismatch":%q}`, ids[i])) // judged wrong
		}
	}
	return values, status, nil
}

// postJSON posts body as JSON and decodes a 200's answer into out.
func (m *mixedClient) postJSON(ctx context.Context, path string, body, out any) (int, error) {
	raw, err := json.Marshal(body)
	if err != nil {
		return -1, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.base+path, bytes.NewReader(raw))
	if err != nil {
		return -1, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := m.sf.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer func() { _ = resp.Body.Close() }()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	switch {
	case err != nil:
		return 0, err
	case resp.StatusCode != http.StatusOK:
		return resp.StatusCode, fmt.Errorf("%s", clip(answer))
	}
	if err := json.Unmarshal(answer, out); err != nil {
		return -1, fmt.Errorf("answer %s: %w", clip(answer), err)
	}
	return http.StatusOK, nil
}

// redshift hands the gateway one Redshift Lambda UDF event. Each result
// is the value's JSON text as a string; a null result stays null. An
// overloaded gateway's error_msg counts as a 429, as Lambda's throttling
// would reach Redshift.
func (m *mixedClient) redshift(ctx context.Context, batchID string, ids []string) ([]json.RawMessage, int, error) {
	args := make([][]string, len(ids))
	for i, id := range ids {
		args[i] = []string{id}
	}
	event, err := json.Marshal(map[string]any{
		"request_id": batchID, "cluster": "arn:aws:redshift:bench", "user": "bench", "database": "dev",
		"external_function": "public.resolve_location", "query_id": 1, "num_records": len(ids), "arguments": args,
	})
	if err != nil {
		return nil, -1, err
	}
	var a struct {
		Success  bool      `json:"success"`
		ErrorMsg string    `json:"error_msg"`
		Results  []*string `json:"results"`
	}
	answer := m.gw.Redshift(ctx, event)
	switch err := json.Unmarshal(answer, &a); {
	case err != nil:
		return nil, -1, fmt.Errorf("answer %s: %w", clip(answer), err)
	case !a.Success && strings.HasPrefix(a.ErrorMsg, "overloaded"):
		return nil, http.StatusTooManyRequests, errors.New(a.ErrorMsg)
	case !a.Success:
		return nil, -1, errors.New(a.ErrorMsg)
	}
	values := make([]json.RawMessage, len(a.Results))
	for i, s := range a.Results {
		values[i] = json.RawMessage("null")
		if s != nil {
			values[i] = json.RawMessage(*s)
		}
	}
	return values, http.StatusOK, nil
}

func (r *Report) writeMixed(w io.Writer, m *MixedReport) {
	fmt.Fprintf(w, "\nMIXED PROTOCOLS: the gateway's %s rows (%s distinct) in %s batches of %s, %d in parallel, taking turns as Snowflake, BigQuery, REST batchGet and Redshift (in process, as Lambda hands it an event); one gateway, one cache, provider without faults; hot passes shift each batch to another protocol\n",
		num(m.Rows), num(m.Distinct), num(m.Batches), num(m.BatchSize), m.Parallel)
	fmt.Fprintln(w, "  figure\tvalue\tbound\thow the bound is made")
	var right, failed, wrong, missing, g429, retries int64
	for _, mp := range []struct {
		name  string
		pass  MixedPass
		bound string
	}{{"cold", m.Cold, boundNum(m.ColdRowsPerSecondBound)}, {"hot", m.Hot, ""}} {
		for _, p := range mp.pass.Protocols {
			row(w, mp.name+" "+p.Name+" rows/s", num(p.RowsPerSec), "", fmt.Sprintf("%s batches; latency p50 / p99 %s / %s",
				num(p.Batches), secs(p.LatencyP50), secs(p.LatencyP99)))
			right, failed, wrong, missing = right+p.Right, failed+p.Failed, wrong+p.Wrong, missing+p.Missing
			g429, retries = g429+p.Gateway429s, retries+p.Retries
		}
		row(w, mp.name+" all protocols rows/s", num(mp.pass.RowsPerSec), mp.bound,
			fmt.Sprintf("the sum over %s: the four share the time", secs(mp.pass.Seconds)))
	}
	row(w, "gateway 429s", num(g429), "0", fmt.Sprintf("%s other retries (5xx, network)", num(retries)))
	row(w, "provider calls", num(m.ProviderCalls), num(m.Distinct),
		fmt.Sprintf("one per distinct ID, both passes: one cache for every protocol (%s provider 429s retried)", num(m.Provider429s)))
	row(w, "rows checked", fmt.Sprintf("%s: %s right, %s failed, %s wrong, %s missing", num(right+failed+wrong+missing),
		num(right), num(failed), num(wrong), num(missing)), "0 wrong", "each row against the simulator")
}
