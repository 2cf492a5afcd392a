package cluster_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/snowgate/snowgate/cache"
	"github.com/snowgate/snowgate/cluster"
	"github.com/snowgate/snowgate/cluster/redistest"
	"github.com/snowgate/snowgate/gateway"
	"github.com/snowgate/snowgate/locapi"
	"github.com/snowgate/snowgate/sim"
)

// The fleet is the real thing several times over: one simulated provider,
// one redis-server, and processes (gateway replicas, and resolvers standing
// for a backfill), each with its own cluster.Client, provider client and
// cache, as separate machines would have.

const (
	provRate  = 1000 // the simulator's limit, and every process's --rate
	provBurst = 100  // the simulator's default burst at 1,000/s
	share     = 0.25 // --redis-local-share: four processes
	fnPath    = "/resolve_location"
)

type fleet struct {
	rate   float64 // the provider's rate, every process's --rate
	burst  int     // the provider's burst, every process's --burst
	simURL string
	sim    *sim.Running // the simulator when it runs in this process
	remote *remoteSim   // or in a child process
	expect *sim.Server  // the simulator's configuration, for Expected
	rds    *redistest.Server
	logs   *lockedBuffer // every process's log lines
	log    *slog.Logger
}

// newFleet runs the simulator in this process, where its per-ID counters
// are at hand.
func newFleet(t *testing.T, sc sim.Config) *fleet {
	t.Helper()
	rs, err := sim.Start(sc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rs.Close() })
	f := startFleet(t, sc)
	f.simURL, f.sim, f.expect = rs.URL, rs, rs.Server
	return f
}

// newRemoteFleet runs the simulator in a child process, for tests that
// measure the provider's rate.
func newRemoteFleet(t *testing.T, cc childConfig) *fleet {
	t.Helper()
	rs := startSimChild(t, cc)
	f := startFleet(t, cc.sim())
	f.simURL, f.remote, f.expect = rs.URL, rs, rs.local
	return f
}

func startFleet(t *testing.T, sc sim.Config) *fleet {
	t.Helper()
	logs := &lockedBuffer{}
	f := &fleet{rate: sc.Rate, burst: sc.Burst, rds: redistest.Start(t), logs: logs, log: slog.New(slog.NewTextHandler(logs, nil))}
	if f.rate == 0 { // an unlimited simulator; a shared budget needs a rate
		f.rate = provRate
	}
	if f.burst == 0 { // the simulator's default
		f.burst = max(1, int(f.rate/10))
	}
	return f
}

// process is one provider client, resolver and cluster client.
type process struct {
	name   string
	cl     *cluster.Client
	client *locapi.Client
	res    *cache.Resolver
}

func (f *fleet) newProcess(t *testing.T, name string) *process {
	t.Helper()
	log := f.log.With("process", name)
	// A Redis call slower than Timeout counts as an outage; 2 s keeps a
	// starved machine's slow round trip from being one. A stopped Redis
	// refuses connections at once, so the outage test does not wait on it.
	cl, err := cluster.New(f.rds.URL, cluster.Config{Timeout: 2 * time.Second, RetryEvery: 200 * time.Millisecond, Logger: log}, nil)
	if err != nil {
		t.Fatal(err)
	}
	client, err := locapi.New(locapi.Config{
		URL:  f.simURL + sim.EntitiesPath + "{id}?select=id,label,location",
		Rate: f.rate, Burst: f.burst, Concurrency: 64, Timeout: 5 * time.Second,
		Budget: cl.Budget("sim"), BudgetShare: share, Logger: log, Transport: f.transport(t),
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := cache.New(client, cache.Config{Size: 1 << 20, Concurrency: 256, L2: cl.Records()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		res.Close()
		client.Close()
		cl.Close()
	})
	return &process{name: name, cl: cl, client: client, res: res}
}

// transport returns a provider transport whose connections are already
// open, as a replica that has run for a while has them. Opened all at once
// when the load starts, they would be a test artifact: the simulator
// admits a request when its connection is accepted, and connections
// accepted together send a burst the clients never made.
func (f *fleet) transport(t *testing.T) http.RoundTripper {
	t.Helper()
	const conns = 64 // locapi.Config.Concurrency
	tr := &http.Transport{MaxIdleConns: conns, MaxIdleConnsPerHost: conns, IdleConnTimeout: time.Minute}
	t.Cleanup(tr.CloseIdleConnections)
	if f.remote == nil {
		return tr
	}
	client := &http.Client{Transport: tr}
	var wg sync.WaitGroup
	for range conns {
		wg.Go(func() {
			req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, f.simURL+"/_stats", nil)
			if err != nil {
				t.Errorf("warming a connection: %v", err)
				return
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Errorf("warming a connection: %v", err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		})
	}
	wg.Wait()
	return tr
}

// replica is a process serving the gateway on 127.0.0.1.
type replica struct {
	*process
	url string
}

func (f *fleet) startReplica(t *testing.T, name string, gc gateway.Config) *replica {
	t.Helper()
	p := f.newProcess(t, name)
	gc.Shared = p.cl.Jobs()
	gc.Logger = f.log.With("process", name)
	gc.ShutdownTimeout = 5 * time.Second
	gw, err := gateway.New(p.res, gc, nil)
	if err != nil {
		t.Fatal(err)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- gw.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("%s: Serve: %v", name, err)
		}
	})
	return &replica{process: p, url: "http://" + ln.Addr().String() + fnPath}
}

// requests is the number of requests p sent to the provider.
func (p *process) requests() int64 { return p.client.Stats().Requests }

// call makes one Snowflake-like request: a POST of ids, or a poll (ids nil).
func call(ctx context.Context, url, batchID string, ids []string) (int, []byte, error) {
	method, body := http.MethodGet, io.Reader(nil)
	if ids != nil {
		method, body = http.MethodPost, strings.NewReader(batchBody(ids))
	}
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("sf-external-function-format", "json")
	req.Header.Set("sf-external-function-format-version", "1.0")
	req.Header.Set("sf-external-function-query-batch-id", batchID)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

func batchBody(ids []string) string {
	var b strings.Builder
	b.WriteString(`{"data":[`)
	for i, id := range ids {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "[%d,%q]", i, id)
	}
	b.WriteString("]}")
	return b.String()
}

func idsFor(prefix string, n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s-%04d", prefix, i)
	}
	return ids
}

// expected is the value the gateway must answer for id, derived from the
// simulator's own answer, independently of locapi and cache: the record,
// or null for not found and no location.
func (f *fleet) expected(id string) (string, error) {
	kind, body := f.expect.Expected(id)
	if kind != sim.Found {
		return "null", nil
	}
	var e sim.Entity
	if err := json.Unmarshal(body, &e); err != nil {
		return "", fmt.Errorf("simulator body for %q: %w", id, err)
	}
	l := e.Location // Found always has one
	js, err := json.Marshal(locapi.Record{ID: e.ID, Label: e.Label, GeoLabel: l.GeoLabel, StreetAddress: l.StreetAddress,
		CityLabel: l.CityLabel, PostalCode: l.PostalCode, CountryLabel: l.CountryLabel, Latitude: l.Latitude, Longitude: l.Longitude})
	return string(js), err
}

// check compares an answer with what the simulator says for ids.
func (f *fleet) check(body []byte, ids []string) error {
	var ans struct{ Data [][]json.RawMessage }
	if err := json.Unmarshal(body, &ans); err != nil {
		return fmt.Errorf("answer is not JSON: %w", err)
	}
	if len(ans.Data) != len(ids) {
		return fmt.Errorf("got %d rows; want %d", len(ans.Data), len(ids))
	}
	for i, row := range ans.Data {
		if len(row) != 2 {
			return fmt.Errorf("row %d: got %d elements; want [%d, value]", i, len(row), i)
		}
		if string(row[0]) != fmt.Sprint(i) {
			return fmt.Errorf("row %d: numbered %s", i, row[0])
		}
		want, err := f.expected(ids[i])
		if err != nil {
			return err
		}
		if string(row[1]) != want {
			return fmt.Errorf("row %d (%s): got %s; want %s", i, ids[i], row[1], want)
		}
	}
	return nil
}

// checkOutcome compares one Resolve answer with the simulator's.
func (f *fleet) checkOutcome(id string, o cache.Outcome) error {
	if o.Err != nil {
		return fmt.Errorf("resolve %s: %w", id, o.Err)
	}
	got := "null"
	if o.Status == locapi.Found {
		got = string(o.JSON)
	}
	want, err := f.expected(id)
	if err != nil {
		return err
	}
	if got != want {
		return fmt.Errorf("resolve %s: got %s; want %s", id, got, want)
	}
	return nil
}

// errs collects the failures of load goroutines for the test to report.
type errs struct {
	mu   sync.Mutex // guards list
	list []error
}

func (e *errs) add(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.list = append(e.list, err)
}

func (e *errs) report(t *testing.T) {
	t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	for i, err := range e.list {
		if i == 10 {
			t.Errorf("... and %d more", len(e.list)-i)
			break
		}
		t.Error(err)
	}
}

// postLoop posts batches of n new IDs to url until stop is closed, checking
// every answer. A batch started before stop finishes.
func (f *fleet) postLoop(stop <-chan struct{}, url, prefix string, n int, e *errs) {
	for b := 0; ; b++ {
		select {
		case <-stop:
			return
		default:
		}
		ids := idsFor(fmt.Sprintf("%s-b%d", prefix, b), n)
		code, body, err := call(context.Background(), url, prefix+fmt.Sprintf(":%d:0:0", b), ids)
		switch {
		case err != nil:
			e.add(fmt.Errorf("%s batch %d: %w", prefix, b, err))
		case code != http.StatusOK:
			e.add(fmt.Errorf("%s batch %d: got %d %q; want 200", prefix, b, code, body))
		default:
			if err := f.check(body, ids); err != nil {
				e.add(fmt.Errorf("%s batch %d: %w", prefix, b, err))
			}
		}
	}
}

// resolveLoop resolves new IDs one at a time, the way the backfill's
// workers do, until stop is closed.
func (f *fleet) resolveLoop(stop <-chan struct{}, p *process, prefix string, e *errs) {
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		id := fmt.Sprintf("%s-%d", prefix, i)
		if err := f.checkOutcome(id, p.res.Resolve(context.Background(), id)); err != nil {
			e.add(err)
		}
	}
}

// pollUntilDone polls batchID through urls in turn until it is answered,
// checks the answer, and returns the index of the url that answered.
func (f *fleet) pollUntilDone(urls []string, batchID string, ids []string, timeout time.Duration) (int, error) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for n := 0; ; n++ {
		select {
		case <-tick.C:
		case <-deadline.C:
			return 0, fmt.Errorf("batch %s: no answer after %d polls", batchID, n)
		}
		i := n % len(urls)
		code, body, err := call(context.Background(), urls[i], batchID, nil)
		switch {
		case err != nil:
			return 0, fmt.Errorf("poll %d of %s: %w", n, batchID, err)
		case code == http.StatusAccepted:
			continue
		case code != http.StatusOK:
			return 0, fmt.Errorf("poll %d of %s: got %d %q; want 202 or 200", n, batchID, code, body)
		}
		return i, f.check(body, ids)
	}
}

// perSecond sums the simulator's admitted requests over whole seconds
// [from, to) since its last Reset.
func perSecond(per []int, from, to int) (sum, most int) {
	for s := from; s < to && s < len(per); s++ {
		sum += per[s]
		most = max(most, per[s])
	}
	return sum, most
}

// asyncLoop posts batches of n new IDs to post until stop is closed, and
// polls each through the polls URLs in turn until it is answered, checking
// the answer. answered counts the batches a poll URL answered, by index.
func (f *fleet) asyncLoop(stop <-chan struct{}, post string, polls []string, prefix string, n int, e *errs, answered []atomic.Int64) {
	for b := 0; ; b++ {
		select {
		case <-stop:
			return
		default:
		}
		ids := idsFor(fmt.Sprintf("%s-b%d", prefix, b), n)
		batch := prefix + fmt.Sprintf(":%d:0:0", b)
		code, body, err := call(context.Background(), post, batch, ids)
		switch {
		case err != nil:
			e.add(fmt.Errorf("%s: %w", batch, err))
		case code == http.StatusOK: // done within the batch timeout
			if err := f.check(body, ids); err != nil {
				e.add(fmt.Errorf("%s: %w", batch, err))
			}
		case code != http.StatusAccepted:
			e.add(fmt.Errorf("%s: got %d %q; want 202 or 200", batch, code, body))
		default:
			i, err := f.pollUntilDone(polls, batch, ids, time.Minute)
			if err != nil {
				e.add(err)
				continue
			}
			answered[i].Add(1)
		}
	}
}
