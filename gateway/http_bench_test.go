package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/snowgate/snowgate/cache"
	"github.com/snowgate/snowgate/extfunc"
	"github.com/snowgate/snowgate/locapi"
	"github.com/snowgate/snowgate/sim"
)

// The load of BenchmarkServeHTTP: httpConns batches in flight at once, as
// a warehouse's parallel batches are, each a 4,096-row batch of one of
// httpSets row sets, every one with its own batch id; httpRound batches per
// server per iteration; one answer in checkEvery checked row by row.
const (
	httpConns  = 8
	httpSets   = 8
	httpRound  = 64
	checkEvery = 10
)

// BenchmarkServeHTTP is the hot pass over loopback HTTP, against the
// gateway as `snowgate serve` runs it (a warm cache.Resolver, the JSON
// summary line, metrics registered) and against a replay server: plain
// net/http answering each batch with the gateway's own answer to it as the
// gateway sent it (gzipped, in "gzip"), captured beforehand, so that only
// HTTP and the client's own cost remain. The two are measured in turn within every iteration, with the
// same client and load, so "of-replay" (the gateway's rows/s over the
// replay's) compares like with like on a busy machine; absolute rows/s do
// not. "gzip" is the load as Snowflake sends it; "plain" has no compression
// either way, which shows what the gateway costs beside deflating its
// answers (the one piece of work the replay server never does).
func BenchmarkServeHTTP(b *testing.B) {
	b.Run("gzip", func(b *testing.B) { benchServeHTTP(b, true) })
	b.Run("plain", func(b *testing.B) { benchServeHTTP(b, false) })
}

func benchServeHTTP(b *testing.B, gzip bool) {
	ld := newHTTPLoad(b, gzip)
	gwURL := ld.serveGateway(b)
	rpURL := ld.serveReplay(b, gwURL)
	gw, rp := ld.client(b, gwURL), ld.client(b, rpURL)
	b.ReportAllocs()
	var gw1, rp1 phase
	i := 0
	for b.Loop() {
		// Alternate the order, so neither side always inherits the other's
		// garbage to collect.
		if i%2 == 0 {
			gw1.add(ld.round(b, gw))
			rp1.add(ld.round(b, rp))
		} else {
			rp1.add(ld.round(b, rp))
			gw1.add(ld.round(b, gw))
		}
		i++
	}
	if n := testutil.ToFloat64(ld.gw.met.lookups.WithLabelValues(protoSnowflake, "fetched")); n != 0 {
		b.Fatalf("the gateway's batches fetched %v IDs; want 0: every one cached", n)
	}
	// Each batch logs its line before its answer is released.
	if got, want := ld.lines.n.Load(), int64(httpSets+i*httpRound); got != want {
		b.Fatalf("the gateway logged %d lines; want one per batch, %d", got, want)
	}
	rows := float64(i * httpRound * hotRows)
	gwRate, rpRate := rows/gw1.wall.Seconds(), rows/rp1.wall.Seconds()
	b.ReportMetric(gwRate, "gateway-rows/s")
	b.ReportMetric(rpRate, "replay-rows/s")
	b.ReportMetric(gwRate/rpRate, "of-replay")
	if gw1.cpu > 0 {
		// What the ratio would be with the process alone on the machine:
		// both sides keep every core busy, so rows/s follow CPU per row.
		b.ReportMetric(rp1.cpu.Seconds()/gw1.cpu.Seconds(), "cpu-of-replay")
		b.ReportMetric(gw1.cpu.Seconds()*1e6/rows*hotRows, "gateway-cpu-us/batch")
		b.ReportMetric(rp1.cpu.Seconds()*1e6/rows*hotRows, "replay-cpu-us/batch")
	}
}

// phase adds up the wall and CPU time of one side's rounds.
type phase struct{ wall, cpu time.Duration }

func (p *phase) add(q phase) { p.wall += q.wall; p.cpu += q.cpu }

// httpLoad is the client side of BenchmarkServeHTTP and what it checks.
type httpLoad struct {
	gzip    bool // requests, and answers, gzipped
	res     *cache.Resolver
	gw      *Server
	lines   lineCounter         // the gateway's log lines
	bodies  []extfunc.Batch     // per row set, gzipped if gzip is set
	want    [][]json.RawMessage // per row set, the value of every row
	wantLen []int               // per row set, the decompressed answer's length
	answers [][]byte            // per row set, the gateway's answer as sent (replay)
	queryID string              // unique per load, so batch ids never repeat
	seq     atomic.Int64        // batches sent so far, for their ids
	mu      sync.Mutex          // guards closers
	closers []func()            // servers and connections, closed at cleanup
}

// newHTTPLoad builds the row sets and a cache.Resolver holding every ID,
// warmed by one ResolveMany so every batch is a hit. The records are the
// simulator's, as `snowgate sim` gives them (5% not found, 5% without a
// location, names in several scripts): they compress about as real ones do,
// unlike hotBatch's near-copies of one record.
func newHTTPLoad(b *testing.B, gzip bool) *httpLoad {
	provider, err := sim.New(sim.Config{NotFoundRatio: 0.05, NoLocationRatio: 0.05})
	if err != nil {
		b.Fatal(err)
	}
	ld := &httpLoad{gzip: gzip, queryID: fmt.Sprintf("01bench-%d", time.Now().UnixNano())}
	var all []string
	for set := range httpSets {
		ids := make([]string, hotRows)
		want := make([]json.RawMessage, hotRows)
		for i := range ids {
			ids[i] = fmt.Sprintf("Q%07d", (set*hotRows+i)*7919)
			res, err := simResult(provider, ids[i])
			if err != nil {
				b.Fatal(err)
			}
			want[i] = json.RawMessage("null")
			if res.Status == locapi.Found {
				if want[i], err = json.Marshal(res.Record); err != nil {
					b.Fatal(err)
				}
			}
		}
		all = append(all, ids...)
		ld.want = append(ld.want, want)
		ld.wantLen = append(ld.wantLen, len(answerOf(want)))
		body, err := extfunc.EncodeColumn(ids)
		if err != nil {
			b.Fatal(err)
		}
		ld.bodies = append(ld.bodies, extfunc.Batch{Body: body})
	}
	res, err := cache.New(cache.LookupFunc(func(_ context.Context, id string) (locapi.Result, error) {
		return simResult(provider, id)
	}), cache.Config{}, prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = res.Close() })
	if _, st := res.ResolveMany(context.Background(), all); st.Fetched != len(all) {
		b.Fatalf("warming the cache fetched %d of %d IDs", st.Fetched, len(all))
	}
	ld.res = res
	b.Cleanup(ld.close)
	return ld
}

// simResult is the provider's answer for id: the simulator's record for
// it, without the HTTP.
func simResult(provider *sim.Server, id string) (locapi.Result, error) {
	kind, body := provider.Expected(id)
	switch kind {
	case sim.NotFound:
		return locapi.Result{Status: locapi.NotFound, Requests: 1}, nil
	case sim.Found, sim.NoLocation:
	default:
		return locapi.Result{}, fmt.Errorf("simulator answers %s for %s", kind, id)
	}
	var e sim.Entity
	if err := json.Unmarshal(body, &e); err != nil {
		return locapi.Result{}, fmt.Errorf("simulator record of %s: %w", id, err)
	}
	rec := &locapi.Record{ID: e.ID, Label: e.Label}
	if kind == sim.NoLocation {
		return locapi.Result{Status: locapi.NoLocation, Record: rec, Requests: 1}, nil
	}
	l := e.Location
	rec.GeoLabel, rec.StreetAddress, rec.CityLabel = l.GeoLabel, l.StreetAddress, l.CityLabel
	rec.PostalCode, rec.CountryLabel, rec.Latitude, rec.Longitude = l.PostalCode, l.CountryLabel, l.Latitude, l.Longitude
	return locapi.Result{Status: locapi.Found, Record: rec, Requests: 1}, nil
}

// answerOf is the answer {"data":[[0,v0],...]} the gateway gives.
func answerOf(values []json.RawMessage) []byte {
	var buf bytes.Buffer
	buf.WriteString(`{"data":[`)
	for i, v := range values {
		if i > 0 {
			buf.WriteByte(',')
		}
		fmt.Fprintf(&buf, "[%d,%s]", i, v)
	}
	buf.WriteString("]}")
	return buf.Bytes()
}

func (ld *httpLoad) close() {
	ld.mu.Lock()
	defer ld.mu.Unlock()
	for i := len(ld.closers) - 1; i >= 0; i-- {
		ld.closers[i]()
	}
}

func (ld *httpLoad) onClose(f func()) {
	ld.mu.Lock()
	defer ld.mu.Unlock()
	ld.closers = append(ld.closers, f)
}

// serveGateway starts the gateway on 127.0.0.1 with serve's defaults, and
// returns its function URL.
func (ld *httpLoad) serveGateway(b *testing.B) string {
	reg := prometheus.NewRegistry()
	// The summary lines are formatted as serve's are, then counted.
	log := slog.New(slog.NewJSONHandler(&ld.lines, nil))
	s, err := New(ld.res, Config{Logger: log}, reg)
	if err != nil {
		b.Fatal(err)
	}
	ld.gw = s
	ln := listenLocal(b)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	ld.onClose(func() {
		cancel()
		if err := <-done; err != nil {
			b.Errorf("gateway Serve: %v", err)
		}
	})
	return "http://" + ln.Addr().String() + defaultPath
}

// serveReplay captures the gateway's answer to each row set, as it sent
// it, then starts the replay server on 127.0.0.1 and returns its URL.
func (ld *httpLoad) serveReplay(b *testing.B, gwURL string) string {
	c := ld.client(b, gwURL)
	hc := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	defer hc.CloseIdleConnections()
	for set, body := range ld.bodies {
		bt, _ := ld.batch(set, body)
		req, err := c.Request(context.Background(), http.MethodPost, bt)
		if err != nil {
			b.Fatal(err)
		}
		resp, err := hc.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		ans, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if ce := resp.Header.Get("Content-Encoding"); err != nil || resp.StatusCode != http.StatusOK || (ce == "gzip") != ld.gzip {
			b.Fatalf("capturing set %d: got %d, Content-Encoding %q, %v; want 200, gzip %v", set, resp.StatusCode, ce, err, ld.gzip)
		}
		ld.answers = append(ld.answers, ans)
	}
	ln := listenLocal(b)
	srv := &http.Server{Handler: http.HandlerFunc(ld.replay), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	ld.onClose(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String() + defaultPath
}

func listenLocal(b *testing.B) net.Listener {
	var lc net.ListenConfig
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	return ln
}

// lineCounter counts the lines written to it.
type lineCounter struct{ n atomic.Int64 }

func (c *lineCounter) Write(p []byte) (int, error) {
	c.n.Add(int64(bytes.Count(p, []byte{'\n'})))
	return len(p), nil
}

// replay answers a batch with the kept answer of its row set, named by
// the batch id's last field, after reading the body as any server must.
func (ld *httpLoad) replay(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	id := r.Header.Get(extfunc.HeaderBatchID)
	set, err := strconv.Atoi(id[strings.LastIndexByte(id, ':')+1:])
	if err != nil || set < 0 || set >= len(ld.answers) {
		http.Error(w, "unknown batch id "+strconv.Quote(id), http.StatusBadRequest)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	if ld.gzip {
		h.Set("Content-Encoding", "gzip")
		h.Set("Vary", "Accept-Encoding")
	}
	h.Set("Content-Length", strconv.Itoa(len(ld.answers[set])))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(ld.answers[set])
}

// client is an extfunc client of url, with gzip both ways as Snowflake's
// COMPRESSION = AUTO asks if ld.gzip is set, keeping a connection per batch
// in flight. It
// makes one attempt per batch: a retry would hide a failure.
func (ld *httpLoad) client(b *testing.B, url string) *extfunc.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = httpConns
	// Else, without Gzip, the transport would ask for gzip on its own.
	tr.DisableCompression = true
	c, err := extfunc.New(url, extfunc.Config{
		Function:    extfunc.Function{Name: "RESOLVE_LOCATION", Signature: "(ID VARCHAR)", ReturnType: "VARIANT"},
		Gzip:        ld.gzip,
		HTTPClient:  &http.Client{Transport: tr},
		MaxAttempts: 1,
	})
	if err != nil {
		b.Fatal(err)
	}
	for i, body := range ld.bodies {
		if !body.Gzipped {
			if ld.bodies[i], err = c.Compress(body); err != nil {
				b.Fatal(err)
			}
		}
	}
	ld.onClose(tr.CloseIdleConnections)
	return c
}

// batch is row set set under a batch id of its own, and its number in
// the load; the id's last field names the set, for the replay server.
func (ld *httpLoad) batch(set int, body extfunc.Batch) (extfunc.Batch, int64) {
	n := ld.seq.Add(1)
	body.QueryID = ld.queryID
	body.BatchID = fmt.Sprintf("%s:%d:%d", ld.queryID, n, set)
	return body, n
}

// round sends httpRound batches over httpConns connections and returns how
// long they took, in wall and process CPU time. Every answer must be a 200
// to the first request, of the expected length; every checkEvery-th is
// decoded and checked row by row.
func (ld *httpLoad) round(b *testing.B, c *extfunc.Client) phase {
	var next atomic.Int64
	var wg sync.WaitGroup
	var first error
	var once sync.Once
	fail := func(err error) { once.Do(func() { first = err }) }
	start, cpu := time.Now(), processCPU()
	for range httpConns {
		wg.Go(func() {
			for k := next.Add(1) - 1; k < httpRound; k = next.Add(1) - 1 {
				if err := ld.send(c, int(k)); err != nil {
					fail(err)
					return
				}
			}
		})
	}
	wg.Wait()
	p := phase{wall: time.Since(start), cpu: processCPU() - cpu}
	if first != nil {
		b.Fatal(first)
	}
	return p
}

// send posts batch k of a round and checks its answer.
func (ld *httpLoad) send(c *extfunc.Client, k int) error {
	set := k % httpSets
	bt, n := ld.batch(set, ld.bodies[set])
	body, st, err := c.Post(context.Background(), bt)
	switch {
	case err != nil:
		return fmt.Errorf("batch %s: %w", bt.BatchID, err)
	case st.Requests != 1:
		return fmt.Errorf("batch %s: %d requests; want 1", bt.BatchID, st.Requests)
	case len(body) != ld.wantLen[set]:
		return fmt.Errorf("batch %s: answer of %d bytes; want %d", bt.BatchID, len(body), ld.wantLen[set])
	case n%checkEvery != 0:
		return nil
	}
	values, err := extfunc.DecodeResponse(body, hotRows)
	if err != nil {
		return fmt.Errorf("batch %s: %w", bt.BatchID, err)
	}
	for i, v := range values {
		if !bytes.Equal(v, ld.want[set][i]) {
			return fmt.Errorf("batch %s row %d: got %.80s; want %.80s", bt.BatchID, i, v, ld.want[set][i])
		}
	}
	return nil
}
