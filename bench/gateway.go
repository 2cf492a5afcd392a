package bench

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/snowgate/snowgate/backoff"
	"github.com/snowgate/snowgate/cache"
	"github.com/snowgate/snowgate/gateway"
	"github.com/snowgate/snowgate/locapi"
	"github.com/snowgate/snowgate/sim"
	"github.com/snowgate/snowgate/stack"
)

// GatewayReport is the Snowflake-like driver against the gateway: a cold
// pass (every distinct ID new to the cache) and a hot pass (all cached).
type GatewayReport struct {
	Rows      int `json:"rows"`
	Distinct  int `json:"distinct"`
	Batches   int `json:"batches"`
	BatchSize int `json:"batch_size"`
	Parallel  int `json:"parallel"`
	CacheSize int `json:"cache_size"`

	Cold PassReport `json:"cold"`
	Hot  PassReport `json:"hot"`
	// HotProviderCalls is what the hot pass asked the provider (want 0).
	// HotLeftOut rows were left out of it: their IDs always fail, and
	// failures are not cached.
	HotProviderCalls int64 `json:"hot_provider_calls"`
	HotLeftOut       int   `json:"hot_left_out"`
	// HandlerRowsPerSecond is the hot pass's bound: the gateway's handler
	// called in process on the same gzip batches and cores, with no TCP and
	// no client decoding and checking the answers.
	HandlerRowsPerSecond float64 `json:"handler_rows_per_sec"`
	// ProviderCap is min(rate limit, concurrency / latency): the provider
	// calls per second snowgate can make. The cold pass's bounds follow:
	// ColdRowsPerSecondBound = rows / (distinct / cap), and
	// ColdLatencyBound = parallel x batch x distinct/rows / cap, the time
	// the provider needs for the new IDs of the batches in flight.
	ProviderCap            float64 `json:"provider_cap"`
	ColdRowsPerSecondBound float64 `json:"cold_rows_per_sec_bound"`
	ColdLatencyBound       float64 `json:"cold_latency_bound_s"`

	Provider ProviderReport  `json:"provider"`
	RowsDone []Point         `json:"rows_done"` // cold pass, rows answered
	Baseline *BaselineReport `json:"baseline,omitempty"`
	// Ratio is the cold pass's rows per second over the baseline's good
	// rows per second on the same rows.
	Ratio float64 `json:"ratio"`
}

// PassReport is one or more passes of the driver over the batches.
type PassReport struct {
	Batches    int     `json:"batches"`
	Rows       int64   `json:"rows"`
	Seconds    float64 `json:"seconds"`
	RowsPerSec float64 `json:"rows_per_sec"`
	// Batch latency, first POST to answer, polls and retries included.
	LatencyP50 float64 `json:"latency_p50_s"`
	LatencyP99 float64 `json:"latency_p99_s"`
	LatencyMax float64 `json:"latency_max_s"`
	// Every answered row is checked: Right, Failed (an error value where
	// the provider has an answer), Wrong; Missing rows belong to batches
	// that never got an answer.
	Right   int64 `json:"right"`
	Failed  int64 `json:"failed"`
	Wrong   int64 `json:"wrong"`
	Missing int64 `json:"missing"`
	// What the driver had to do: gateway 429s (its in-flight cap), 5xx and
	// network retries, and batches that went asynchronous (202, polled).
	Gateway429s int64    `json:"gateway_429s"`
	Retries5xx  int64    `json:"retries_5xx"`
	RetriesNet  int64    `json:"retries_network"`
	Async       int64    `json:"async_202s"`
	Examples    []string `json:"examples,omitempty"`
}

// gatewayRows returns n IDs of which a fraction repeat repeats an ID used
// earlier, shuffled deterministically, and the distinct IDs.
func gatewayRows(n int, repeat float64, seed int64) (rows, distinct []string) {
	d := max(1, n-int(math.Round(float64(n)*repeat)))
	rng := rand.New(rand.NewPCG(uint64(seed), 0x6761746577617900))
	distinct = make([]string, d)
	for i := range distinct {
		distinct[i] = fmt.Sprintf("G%09d", i)
	}
	rows = make([]string, n)
	copy(rows, distinct)
	for i := d; i < n; i++ {
		rows[i] = distinct[rng.IntN(d)]
	}
	rng.Shuffle(n, func(i, j int) { rows[i], rows[j] = rows[j], rows[i] })
	return rows, distinct
}

func split(rows []string, size int) [][]string {
	var out [][]string
	for len(rows) > 0 {
		k := min(size, len(rows))
		out = append(out, rows[:k])
		rows = rows[k:]
	}
	return out
}

// gatewayStack is snowgate's serving side: client, resolver and gateway.
type gatewayStack struct {
	client  *locapi.Client
	gw      *gateway.Server
	handler http.Handler // the gateway's, also served at url
	base    string       // http://host:port
	url     string       // Snowflake's resolve_location
	stop    func()
}

// snowflakeGateway is the gateway phase's configuration: Snowflake only,
// asynchronous after AsyncAfter.
func (r *runner) snowflakeGateway() gateway.Config {
	return gateway.Config{
		Async: true, BatchTimeout: r.cfg.AsyncAfter, ShutdownTimeout: 5 * time.Second,
		OnRowError: gateway.RowErrorObject, NotFound: gateway.NotFoundObject,
	}
}

func (r *runner) startGateway(ctx context.Context, prov *provider, cacheSize int, gcfg gateway.Config) (*gatewayStack, error) {
	reg := prometheus.NewRegistry()
	p, err := stack.New(stack.Config{
		Provider:    locapi.Config{URL: prov.template(), Rate: r.cfg.Rate, Burst: r.cfg.Burst},
		Cache:       cache.Config{Size: cacheSize, Encode: gateway.EncodeRecord},
		Concurrency: r.cfg.Concurrency,
	}, reg)
	if err != nil {
		return nil, err
	}
	release := func() { _ = p.Close() } // no Redis: Close has no error to give
	gw, err := gateway.New(p.Resolver, gcfg, reg)
	if err != nil {
		release()
		return nil, err
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		release()
		return nil, fmt.Errorf("gateway listen: %w", err)
	}
	// The gateway lives until stop, not until the caller's ctx ends: stop
	// drains it after the last pass.
	sctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- gw.Serve(sctx, ln) }()
	stop := func() {
		cancel()
		// The passes are over and measured: a gateway that died early is
		// worth a warning, not a lost report.
		if err := <-served; err != nil {
			r.log.Warn("bench: gateway stopped", "err", err.Error())
		}
		release()
	}
	base := "http://" + ln.Addr().String()
	return &gatewayStack{
		client: p.Client, gw: gw, handler: gw.Handler(), base: base, url: base + "/resolve_location", stop: stop,
	}, nil
}

func (r *runner) gatewayPhase(ctx context.Context) (*GatewayReport, error) {
	c := r.cfg
	rows, distinct := gatewayRows(c.Rows, c.RepeatRatio, c.Provider.Seed)
	batches := split(rows, c.BatchSize)
	rep := &GatewayReport{Rows: len(rows), Distinct: len(distinct), Batches: len(batches), BatchSize: c.BatchSize,
		Parallel: c.Parallel, CacheSize: max(cache.DefaultSize, 2*len(distinct))}
	r.log.Info("bench phase", "phase", "gateway", "rows", len(rows), "distinct", len(distinct))
	if err := r.gatewayRun(ctx, rep, batches, distinct); err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	if !c.NoBaseline {
		if err := writeIDs(ctx, r.db, gatewayTable, rows); err != nil {
			return nil, fmt.Errorf("gateway: %w", err)
		}
		b, err := r.baseline(ctx, gatewayTable, len(rows), len(distinct))
		if err != nil {
			return nil, err
		}
		rep.Baseline, rep.Ratio = b, ratio(rep.Cold.RowsPerSec, b.GoodPerSecond)
	}
	return rep, nil
}

// gatewayRun measures the cold pass, the hot pass and the handler alone.
func (r *runner) gatewayRun(ctx context.Context, rep *GatewayReport, batches [][]string, distinct []string) error {
	c := r.cfg
	prov, err := startProvider(ctx, c.Provider, r.log)
	if err != nil {
		return err
	}
	defer prov.Close()
	o, err := newOracle(prov.Server, distinct)
	if err != nil {
		return err
	}
	st, err := r.startGateway(ctx, prov, rep.CacheSize, r.snowflakeGateway())
	if err != nil {
		return err
	}
	defer st.stop()
	drv, err := newSFClient(st.url, c.Parallel, o)
	if err != nil {
		return err
	}
	defer drv.close()

	cold := newPass("bench-cold")
	smp := startSampler("gateway cold pass", rep.Rows, func() float64 { return float64(cold.rows.Load()) }, r.log)
	drv.send(ctx, cold, batches, c.Parallel)
	rep.RowsDone = smp.finish()
	rep.Cold = summarize(cold)
	rep.Provider = r.providerReport(prov, cold.start, cold.end, len(distinct))
	before := st.client.Stats().Requests

	hotBatches, left := cacheable(batches, o)
	rep.HotLeftOut = left
	var hot []*pass
	for start := time.Now(); len(hot) == 0 || time.Since(start) < c.HotMin; {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		hot = append(hot, drv.run(ctx, fmt.Sprintf("bench-hot-%d", len(hot)), hotBatches, c.Parallel))
	}
	rep.Hot = summarize(hot...)
	rep.HotProviderCalls = st.client.Stats().Requests - before
	if rep.HandlerRowsPerSecond, err = handlerAlone(ctx, st.handler, drv, hotBatches, c.Parallel, max(time.Second, c.HotMin/2)); err != nil {
		return err
	}

	rep.setBounds(c)
	return ctx.Err()
}

// setBounds computes the cold pass's bounds from the settings.
func (rep *GatewayReport) setBounds(c Config) {
	rep.ProviderCap = throughputCap(c.Rate, c.Concurrency, c.Provider.Latency)
	rep.ColdLatencyBound = c.Provider.Latency.Seconds()
	if rep.ProviderCap > 0 {
		share := float64(rep.Distinct) / float64(rep.Rows)
		rep.ColdRowsPerSecondBound = rep.ProviderCap / share
		inFlight := float64(min(c.Parallel*c.BatchSize, rep.Rows)) * share
		rep.ColdLatencyBound = math.Max(rep.ColdLatencyBound, inFlight/rep.ProviderCap)
	}
}

// cacheable drops the rows whose ID the provider always fails: failures are
// never cached, so each of them costs every retry again, every time, and
// the hot pass would measure retry backoff instead of the cache. It returns
// how many rows it dropped.
func cacheable(batches [][]string, o *oracle) ([][]string, int) {
	out := make([][]string, 0, len(batches))
	left := 0
	for _, b := range batches {
		keep := make([]string, 0, len(b))
		for _, id := range b {
			if o.want[id].kind == sim.PermanentFail {
				left++
				continue
			}
			keep = append(keep, id)
		}
		if len(keep) > 0 {
			out = append(out, keep)
		}
	}
	return out, left
}

// handlerAlone is the hot path without TCP and without a client: the
// gateway's handler called in process with the same gzip batches (each with
// a new batch id, so no kept answer is replayed), for at least min.
func handlerAlone(ctx context.Context, h http.Handler, drv *sfClient, batches [][]string, parallel int, min time.Duration) (float64, error) {
	bodies := make([][]byte, len(batches))
	for i, b := range batches {
		var err error
		if bodies[i], err = drv.encode(b); err != nil {
			return 0, err
		}
	}
	var rows, failed, seq atomic.Int64
	start := time.Now()
	next := make(chan int)
	var wg sync.WaitGroup
	for range parallel {
		wg.Go(func() {
			for i := range next {
				if serveBatch(ctx, h, drv, bodies[i], fmt.Sprintf("bench-handler:1:1:0:%d", seq.Add(1))) != http.StatusOK {
					failed.Add(1)
					continue
				}
				rows.Add(int64(len(batches[i])))
			}
		})
	}
	feedRepeatedly(ctx, next, len(batches), start, min)
	close(next)
	wg.Wait()
	if n := failed.Load(); n > 0 {
		return 0, fmt.Errorf("handler alone: %d batches not answered 200", n)
	}
	return float64(rows.Load()) / time.Since(start).Seconds(), nil
}

// serveBatch posts one batch to h, polling it while it answers 202, and
// returns the final status.
func serveBatch(ctx context.Context, h http.Handler, drv *sfClient, body []byte, batchID string) int {
	method, delay := http.MethodPost, time.Millisecond
	for {
		req, err := drv.request(ctx, method, "bench-handler", batchID, body)
		if err != nil {
			return 0
		}
		w := &discard{header: http.Header{}}
		h.ServeHTTP(w, req)
		if w.status != http.StatusAccepted {
			return w.status
		}
		if backoff.Sleep(ctx, delay) != nil {
			return 0
		}
		method, delay = http.MethodGet, min(pollMax, 2*delay)
	}
}

// feedRepeatedly sends 0..n-1 on next, again and again until min has
// passed (at least once) or ctx ends.
func feedRepeatedly(ctx context.Context, next chan<- int, n int, start time.Time, min time.Duration) {
	for pass := 0; pass == 0 || time.Since(start) < min; pass++ {
		for i := range n {
			select {
			case next <- i:
			case <-ctx.Done():
				return
			}
		}
	}
}

// discard is a ResponseWriter that keeps only the status.
type discard struct {
	header http.Header
	status int
}

func (d *discard) Header() http.Header { return d.header }
func (d *discard) WriteHeader(code int) {
	if d.status == 0 {
		d.status = code
	}
}
func (d *discard) Write(b []byte) (int, error) {
	d.WriteHeader(http.StatusOK)
	return len(b), nil
}

// throughputCap is the provider calls per second snowgate can make: the
// rate limit, or concurrency requests per latency, whichever is lower; 0
// when neither binds.
func throughputCap(rate float64, concurrency int, latency time.Duration) float64 {
	limit := rate
	if latency > 0 {
		byLatency := float64(concurrency) / latency.Seconds()
		if limit == 0 || byLatency < limit {
			limit = byLatency
		}
	}
	return limit
}

// ratio is a/b, or 0 when b is 0 (JSON has no infinity).
func ratio(a, b float64) float64 {
	if b <= 0 {
		return 0
	}
	return a / b
}
