//go:build !slim

package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/snowgate/snowgate/cache"
	"github.com/snowgate/snowgate/extfunc"
	"github.com/snowgate/snowgate/gateway"
	"github.com/snowgate/snowgate/loader"
	"github.com/snowgate/snowgate/loader/duckdb"
	"github.com/snowgate/snowgate/locapi"
	"github.com/snowgate/snowgate/sim"
	"github.com/snowgate/snowgate/stack"
)

const demoSynopsis = `Run snowgate end to end on this machine, with no accounts and no network beyond
127.0.0.1: a DuckDB file with a MASTER_TABLE of sample IDs, the SIMULATED provider
(latency, a rate limit and faults switched on), a backfill into
STANDARDIZED_LOCATIONS, then the gateway answering Snowflake-format batches
(a repeated batch id and bad IDs included) and one new ID asked through
Snowflake, BigQuery, REST and Redshift (one provider call for all four), then
a 'snowgate sql' query of the file. Prints a report; exits 0 only if every
check passed.`

type demoFlags struct {
	db       string
	rows     int
	distinct int
	rate     float64
	latency  time.Duration
	progress string
}

// demoEnv is what the steps of the demo share.
type demoEnv struct {
	f      demoFlags
	out    io.Writer
	logger *slog.Logger
	sim    *sim.Running
	client *locapi.Client
	res    *cache.Resolver
}

// newDemoFlags declares demo's flags. The demo is meant to finish in
// seconds to minutes, which bounds its sizes.
func newDemoFlags(stdout io.Writer) (*flag.FlagSet, *demoFlags) {
	fs := newFlagSet("demo", demoSynopsis, stdout)
	f := &demoFlags{}
	fs.StringVar(&f.db, "db", "snowgate-demo.duckdb", "DuckDB file to create (replaced if it exists)")
	numVar(fs, &f.rows, "rows", 12_000, between(1, 10_000_000), "rows in the sample MASTER_TABLE")
	numVar(fs, &f.distinct, "distinct", 10_000, between(1, 10_000_000), "distinct IDs among those rows (the rest repeat)")
	numVar(fs, &f.rate, "rate", 1000, between(1.0, 100_000),
		"the simulated provider's rate limit, requests/s (snowgate is set to the same)")
	numVar(fs, &f.latency, "latency", 20*time.Millisecond, between(0, time.Minute).zeroMeans("none"),
		"the simulated provider's mean latency (0 = none)")
	enumVar(fs, &f.progress, "progress", "auto", progressModes, "auto, bar, log or none")
	return fs, f
}

// parseDemo reads demo's settings and checks them, touching nothing: the
// DuckDB file is replaced only once they are known to be right.
func parseDemo(args []string, stdout io.Writer) (demoFlags, error) {
	fs, f := newDemoFlags(stdout)
	if err := parseFlags(fs, args); err != nil {
		return demoFlags{}, err
	}
	switch {
	case f.db == "":
		return demoFlags{}, usagef("demo: --db is empty: want the path of the DuckDB file to create")
	case f.distinct > f.rows:
		return demoFlags{}, usagef("demo: --distinct %d: want at most --rows (%d)", f.distinct, f.rows)
	}
	return *f, nil
}

func runDemo(ctx context.Context, args []string, stdout io.Writer, logger *slog.Logger) error {
	f, err := parseDemo(args, stdout)
	if err != nil {
		return err
	}
	start := time.Now()
	d := &demoEnv{f: f, out: stdout, logger: logger}
	if err := d.start(ctx); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer d.close()

	sum, err := d.backfill(ctx)
	if err != nil {
		return fmt.Errorf("demo: backfill: %w", err)
	}
	callsAfterBackfill := d.client.Stats().Requests
	sample, err := d.gateway(ctx)
	if err != nil {
		return fmt.Errorf("demo: gateway: %w", err)
	}
	if err := d.sql(ctx); err != nil {
		return fmt.Errorf("demo: sql: %w", err)
	}
	return d.report(sum, callsAfterBackfill, sample, time.Since(start))
}

// start makes the DuckDB file and starts the simulator and the resolver.
func (d *demoEnv) start(ctx context.Context) error {
	if err := makeDemoTable(ctx, d.f.db, d.f.rows, d.f.distinct); err != nil {
		return err
	}
	s, err := sim.Start(sim.Config{
		Seed: 1, Latency: d.f.latency, Jitter: d.f.latency / 2,
		Rate: d.f.rate, Burst: int(d.f.rate / 20),
		NotFoundRatio: 0.05, NoLocationRatio: 0.05, ErrorRate: 0.02, TruncateRate: 0.005,
	})
	if err != nil {
		return fmt.Errorf("simulator: %w", err)
	}
	d.sim = s
	fmt.Fprintf(d.out, "snowgate demo: SIMULATED provider (not a real API) at %s: %.0f req/s limit, %s latency, 2%% errors, 0.5%% truncated bodies\n",
		s.URL, d.f.rate, d.f.latency)
	reg := prometheus.NewRegistry()
	p, err := stack.New(stack.Config{
		Provider: locapi.Config{URL: s.URL + sim.EntitiesPath + "{id}?select=id,label,location", Rate: d.f.rate, Burst: int(d.f.rate / 20)},
		Logger:   d.logger,
	}, reg)
	if err != nil {
		return err
	}
	d.client, d.res = p.Client, p.Resolver
	return nil
}

// close releases what start made. The demo's verdict is in by then, and a
// close error would change none of it.
func (d *demoEnv) close() {
	if d.res != nil {
		_ = d.res.Close()
	}
	if d.client != nil {
		d.client.Close()
	}
	if d.sim != nil {
		_ = d.sim.Close()
	}
}

// makeDemoTable replaces path with a DuckDB file holding MASTER_TABLE(ID):
// rows IDs of which distinct are different.
func makeDemoTable(ctx context.Context, path string, rows, distinct int) error {
	for _, p := range []string{path, path + ".wal"} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	db, err := sql.Open("duckdb", path)
	if err != nil {
		return err
	}
	defer func() { _ = db.Close() }() // for the error path: the end checks its own Close
	_, err = db.ExecContext(ctx, `CREATE TABLE MASTER_TABLE AS
		SELECT 'Q' || lpad((i % ?)::VARCHAR, 6, '0') AS ID FROM range(?) t(i)`, distinct, rows)
	if err != nil {
		return fmt.Errorf("create MASTER_TABLE: %w", err)
	}
	return db.Close()
}

// backfill loads every MASTER_TABLE ID into STANDARDIZED_LOCATIONS and
// checks the tables against what the simulator says each ID is.
func (d *demoEnv) backfill(ctx context.Context) (loader.Summary, error) {
	tables, err := loader.NewTables("", "", "")
	if err != nil {
		return loader.Summary{}, err
	}
	wh, err := duckdb.Open(ctx, d.f.db, tables)
	if err != nil {
		return loader.Summary{}, err
	}
	defer func() { _ = wh.Close() }() // for the error paths: the end checks its own Close
	bf := &backfillFlags{progress: d.f.progress}
	cfg := loader.Config{ProviderStats: func() loader.ProviderStats {
		s := d.client.Stats()
		return loader.ProviderStats{Calls: s.Requests, Throttled: s.Throttled}
	}}
	finish := bf.startProgress(&cfg)
	if finish == nil {
		return loader.Summary{}, fmt.Errorf("%w: --progress %q: want auto, bar, log or none", errUsage, d.f.progress)
	}
	l, err := loader.New(wh, d.res, cfg, d.logger)
	if err != nil {
		return loader.Summary{}, err
	}
	fmt.Fprintf(d.out, "\n1. backfill: %d rows of MASTER_TABLE -> STANDARDIZED_LOCATIONS\n", d.f.rows)
	sum, err := l.Run(ctx)
	finish()
	if err != nil {
		return sum, err
	}
	printSummary(d.out, sum, nil, providerCosts(sum))
	if err := wh.Close(); err != nil {
		return sum, err
	}
	return sum, d.checkTables(ctx, sum)
}

// checkTables compares the DuckDB tables with the simulator's answers.
func (d *demoEnv) checkTables(ctx context.Context, sum loader.Summary) error {
	var want [4]int64 // found, not found, no location, failed
	for i := 0; i < d.f.distinct; i++ {
		switch kind, _ := d.sim.Expected(fmt.Sprintf("Q%06d", i)); kind {
		case sim.Found:
			want[0]++
		case sim.NotFound:
			want[1]++
		case sim.NoLocation:
			want[2]++
		default:
			want[3]++
		}
	}
	db, err := sql.Open("duckdb", d.f.db)
	if err != nil {
		return err
	}
	defer func() { _ = db.Close() }() // for the error paths: the end checks its own Close
	var got [4]int64
	err = db.QueryRowContext(ctx, `SELECT
		(SELECT count(DISTINCT ID) FROM STANDARDIZED_LOCATIONS),
		(SELECT count(*) FROM STANDARDIZED_LOCATIONS_MISSES WHERE OUTCOME = 'not_found'),
		(SELECT count(*) FROM STANDARDIZED_LOCATIONS_MISSES WHERE OUTCOME = 'no_location'),
		(SELECT count(*) FROM STANDARDIZED_LOCATIONS_FAILURES)`).Scan(&got[0], &got[1], &got[2], &got[3])
	if err != nil {
		return fmt.Errorf("read back: %w", err)
	}
	if got != want || sum.Failed != 0 {
		return fmt.Errorf("tables hold found/not found/no location/failed = %v; the simulator says %v", got, want)
	}
	var rows int64
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM STANDARDIZED_LOCATIONS`).Scan(&rows); err != nil {
		return err
	}
	if rows != want[0] {
		return fmt.Errorf("STANDARDIZED_LOCATIONS has %d rows for %d IDs: duplicates", rows, want[0])
	}
	fmt.Fprintf(d.out, "   checked: %d found, %d not found, %d no location, 0 failed, no duplicates; matches the simulator\n",
		want[0], want[1], want[2])
	return db.Close()
}

// demoBatch is one Snowflake-format request the demo sends the gateway.
type demoBatch struct {
	name    string
	batchID string
	body    []byte
	err     error // from encoding body
	ids     []any // the argument of each row, as sent (string, number or nil)
}

func newDemoBatch(name, batchID string, ids []any) demoBatch {
	body, err := extfunc.EncodeColumn(ids)
	return demoBatch{name: name, batchID: batchID, body: body, err: err, ids: ids}
}

// gateway starts the gateway on 127.0.0.1 over the same resolver and sends
// it batches as Snowflake would; it returns a sample answered row.
func (d *demoEnv) gateway(ctx context.Context) (string, error) {
	gw, err := gateway.New(d.res, gateway.Config{Logger: d.logger, BigQueryPath: demoBigQueryPath, RESTPrefix: demoRESTPrefix},
		prometheus.NewRegistry())
	if err != nil {
		return "", err
	}
	ln, err := new(net.ListenConfig).Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	ctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- gw.Serve(ctx, ln) }()
	defer func() {
		stop()
		if err := <-served; err != nil {
			d.logger.Warn("demo gateway", "err", err.Error())
		}
	}()
	base := "http://" + ln.Addr().String()
	sample, err := d.snowflakeSteps(ctx, base+"/resolve_location")
	if err != nil {
		return "", err
	}
	return sample, d.fourProtocols(ctx, gw, base)
}

// snowflakeSteps sends the gateway batches as Snowflake would and returns
// a sample answered row.
func (d *demoEnv) snowflakeSteps(ctx context.Context, url string) (string, error) {
	fmt.Fprintf(d.out, "\n2. gateway: Snowflake-format batches to %s\n", url)
	hot := make([]any, 0, 4096)
	for i := 0; i < 4096; i++ {
		hot = append(hot, fmt.Sprintf("Q%06d", i%d.f.distinct))
	}
	cold := make([]any, 0, 1000)
	for i := 0; i < 1000; i++ {
		cold = append(cold, fmt.Sprintf("R%06d", i))
	}
	bad := []any{nil, "", "../../admin", json.Number("12345"), "a\x01b", strings.Repeat("x", 300), "x?y=1#z"}
	steps := []struct {
		b         demoBatch
		wantCalls string // "none" or "some": provider calls this batch may make
	}{
		{newDemoBatch("4,096 IDs already backfilled (cache hits)", "demo:1", hot), "none"},
		{newDemoBatch("1,000 new IDs", "demo:2", cold), "some"},
		{newDemoBatch("the same batch id sent again (a Snowflake retry)", "demo:2", cold), "none"},
		{newDemoBatch("bad IDs: null, empty, path tricks, a number, a control character, 300 bytes", "demo:3", bad), "some"},
	}
	var sample string
	for _, st := range steps {
		before := d.client.Stats().Requests
		got, err := d.post(ctx, url, st.b)
		if err != nil {
			return "", fmt.Errorf("%s: %w", st.b.name, err)
		}
		calls := d.client.Stats().Requests - before
		if st.wantCalls == "none" && calls != 0 {
			return "", fmt.Errorf("%s: %d provider calls; want 0", st.b.name, calls)
		}
		if sample == "" {
			sample = got
		}
		fmt.Fprintf(d.out, "   %-75s 200, %d rows right, %d provider calls\n", st.b.name, len(st.b.ids), calls)
	}
	msg, err := d.postMalformed(ctx, url)
	if err != nil {
		return "", err
	}
	fmt.Fprintf(d.out, "   %-75s 400 %q\n", "a malformed batch (a row without its argument)", msg)
	return sample, nil
}

// post sends one batch as Snowflake does (gzip accepted) and checks every
// answered row against the simulator. It returns one found row, as sent.
func (d *demoEnv) post(ctx context.Context, url string, b demoBatch) (string, error) {
	if b.err != nil {
		return "", b.err
	}
	status, body, err := demoRequest(ctx, url, b.batchID, b.body)
	if err != nil {
		return "", err
	}
	if status != http.StatusOK {
		return "", fmt.Errorf("status %d: %s", status, body)
	}
	values, err := extfunc.DecodeResponse(body, len(b.ids))
	if err != nil {
		return "", err
	}
	sample := ""
	for i, v := range values {
		found, err := d.checkValue(b.ids[i], v)
		if err != nil {
			return "", fmt.Errorf("row %d (%q): %w", i, b.ids[i], err)
		}
		if found && sample == "" {
			sample = fmt.Sprintf("[%d, %s]", i, v)
		}
	}
	return sample, nil
}

// checkValue says whether v is the right answer for id, and whether it is a
// found location.
func (d *demoEnv) checkValue(id any, v json.RawMessage) (bool, error) {
	text, ok := id.(string)
	if n, isNum := id.(json.Number); isNum {
		text, ok = n.String(), true
	}
	wantNull := !ok || locapi.ValidateID(text, 0) != nil
	var want sim.Entity
	if !wantNull {
		kind, body := d.sim.Expected(text)
		wantNull = kind != sim.Found
		if err := json.Unmarshal(body, &want); !wantNull && err != nil {
			return false, err
		}
	}
	if wantNull {
		if string(v) != "null" {
			return false, fmt.Errorf("got %s; want null", v)
		}
		return false, nil
	}
	var got locapi.Record
	if err := json.Unmarshal(v, &got); err != nil {
		return false, fmt.Errorf("got %s; want a location object", v)
	}
	if got.ID != want.ID || !equalPtr(got.Label, want.Label) ||
		!equalPtr(got.CityLabel, want.Location.CityLabel) || !equalPtr(got.Latitude, want.Location.Latitude) {
		return false, fmt.Errorf("got %s; the simulator says %+v", v, want)
	}
	return true, nil
}

func equalPtr[T comparable](a, b *T) bool {
	return a == nil && b == nil || a != nil && b != nil && *a == *b
}

// postMalformed checks that a broken batch gets a 400 with a reason.
func (d *demoEnv) postMalformed(ctx context.Context, url string) (string, error) {
	status, body, err := demoRequest(ctx, url, "demo:4", []byte(`{"data": [[0, "Q000001"], [1]]}`))
	if err != nil {
		return "", err
	}
	if status != http.StatusBadRequest || len(body) == 0 {
		return "", fmt.Errorf("malformed batch: got %d %q; want 400 with a reason", status, body)
	}
	return strings.TrimSpace(string(body)), nil
}

// demoRequest sends one batch through the extfunc client, as Snowflake
// would (429 and 5xx retried with the same batch id, 202 polled). It
// returns 200 and the answer, or the status and body of any other final
// answer.
func demoRequest(ctx context.Context, url, batchID string, body []byte) (int, []byte, error) {
	ef, err := extfunc.New(url, extfunc.Config{
		Function:   extfunc.Function{Name: "RESOLVE_LOCATION", Signature: "(ID VARCHAR)", ReturnType: "VARIANT"},
		HTTPClient: http.DefaultClient,
	})
	if err != nil {
		return 0, nil, err
	}
	answer, _, err := ef.Post(ctx, extfunc.Batch{QueryID: "demo", BatchID: batchID, Body: body})
	var se *extfunc.StatusError
	switch {
	case errors.As(err, &se):
		return se.Code, se.Body, nil
	case err != nil:
		return 0, nil, err
	}
	return http.StatusOK, answer, nil
}

// demoSQL resolves a few backfilled IDs again in SQL, beside what the
// backfill stored for them: the two city columns must agree.
const demoSQL = `SELECT l.ID, resolve_location(l.ID)->>'city_label' AS resolved, l.CITY_LABEL AS backfilled
FROM STANDARDIZED_LOCATIONS l ORDER BY l.ID LIMIT 5`

// sql runs `snowgate sql` on the demo's database, as a user would, with
// its own resolver (a new process's cache) against the same simulator.
func (d *demoEnv) sql(ctx context.Context) error {
	fmt.Fprintf(d.out, "\n3. sql: snowgate sql --warehouse duckdb:%s \"%s\"\n", d.f.db, strings.Join(strings.Fields(demoSQL), " "))
	var out bytes.Buffer
	err := runSQL(ctx, []string{"--warehouse", "duckdb:" + d.f.db, "--progress", "off", "--format", "csv",
		"--upstream-url", d.sim.URL + sim.EntitiesPath + "{id}?select=id,label,location",
		"--rate", fmt.Sprint(d.f.rate), "--burst", fmt.Sprint(int(d.f.rate / 20)), demoSQL}, &out, d.logger)
	if err != nil {
		return err
	}
	recs, err := csv.NewReader(&out).ReadAll()
	if err != nil {
		return err
	}
	if len(recs) < 2 {
		return fmt.Errorf("got %d lines of output; want a header and rows", len(recs))
	}
	for i, r := range recs {
		fmt.Fprintf(d.out, "   %-10s %-22s %s\n", r[0], r[1], r[2])
		if i > 0 && r[1] != r[2] {
			return fmt.Errorf("%s: resolve_location says %q, the backfill stored %q", r[0], r[1], r[2])
		}
	}
	fmt.Fprintf(d.out, "   %d rows: resolve_location in DuckDB agrees with the backfill\n", len(recs)-1)
	return nil
}

// report prints what the demo showed.
func (d *demoEnv) report(sum loader.Summary, callsAfterBackfill int64, sample string, took time.Duration) error {
	st := d.client.Stats()
	window := d.sim.MaxInWindow(time.Second)
	limit := int(d.f.rate) + int(d.f.rate/20)
	abs, _ := filepath.Abs(d.f.db)
	fmt.Fprintf(d.out, "\nReport (%s)\n", took.Round(100*time.Millisecond))
	fmt.Fprintf(d.out, "  rows in MASTER_TABLE          %d (%d distinct IDs)\n", d.f.rows, d.f.distinct)
	fmt.Fprintf(d.out, "  backfill                      %d IDs committed at %.0f IDs/s: %d found, %d not found, %d no location, %d failed\n",
		sum.Committed, sum.Rate(), sum.Found, sum.NotFound, sum.NoLocation, sum.Failed)
	fmt.Fprintf(d.out, "  provider calls                %d for the backfill's %d IDs (retries of simulated faults included), %d in all\n",
		callsAfterBackfill, sum.Committed, st.Requests)
	fmt.Fprintf(d.out, "  provider rate                 busiest second %d requests; limit %.0f/s + burst %d; 429s %d\n",
		window, d.f.rate, int(d.f.rate/20), d.sim.Status(http.StatusTooManyRequests))
	fmt.Fprintf(d.out, "  sample answer row             %s\n", sample)
	fmt.Fprintf(d.out, "  DuckDB file                   %s\n", abs)
	fmt.Fprintf(d.out, "    query it: snowgate sql --warehouse duckdb:%s \"SELECT * FROM STANDARDIZED_LOCATIONS LIMIT 5\"\n", d.f.db)
	fmt.Fprintln(d.out, "    (resolve_location(ID) works there too while a provider answers: snowgate sim, or --upstream-url)")
	if window > limit {
		return fmt.Errorf("demo: the provider saw %d requests in one second; its limit is %d", window, limit)
	}
	fmt.Fprintln(d.out, "demo: every check passed")
	return nil
}

// Where the demo's gateway serves BigQuery and the REST API: serve's
// defaults.
const (
	demoBigQueryPath = "/bigquery/resolve_location"
	demoRESTPrefix   = "/v1"
)

// fourProtocols asks one ID the demo has not asked before through each
// protocol the gateway speaks and checks that all four answer the same
// object for one provider call: one resolver, one cache behind them all.
func (d *demoEnv) fourProtocols(ctx context.Context, gw *gateway.Server, base string) error {
	id, err := d.freshFoundID()
	if err != nil {
		return err
	}
	fmt.Fprintf(d.out, "   one new ID, %s, through every protocol (Redshift reaches snowgate only through Lambda: its event goes to the gateway's Redshift method in process)\n", id)
	asks := []struct {
		name string
		ask  func() (json.RawMessage, error)
	}{
		{"Snowflake  POST /resolve_location", func() (json.RawMessage, error) { return d.askSnowflake(ctx, base, id) }},
		{"BigQuery   POST " + demoBigQueryPath, func() (json.RawMessage, error) { return askBigQuery(ctx, base, id) }},
		{"REST       GET  " + demoRESTPrefix + "/locations/" + id, func() (json.RawMessage, error) { return askREST(ctx, base, id) }},
		{"Redshift   Lambda event", func() (json.RawMessage, error) { return askRedshift(ctx, gw, id) }},
	}
	var first json.RawMessage
	for _, a := range asks {
		v, err := a.ask()
		if err != nil {
			return fmt.Errorf("%s: %s: %w", id, a.name, err)
		}
		if _, err := d.checkValue(id, v); err != nil {
			return fmt.Errorf("%s: %s: %w", id, a.name, err)
		}
		if first == nil {
			first = v
		} else if !bytes.Equal(v, first) {
			return fmt.Errorf("%s: %s answered %s; Snowflake got %s", id, a.name, v, first)
		}
		fmt.Fprintf(d.out, "     %-45s %s\n", a.name, clipDemo(v, 80))
	}
	calls := d.sim.Requests(id)
	fmt.Fprintf(d.out, "   the same value in all four; provider requests for %s (the simulator's count): %d\n", id, calls)
	if calls != 1 {
		return fmt.Errorf("%s: the provider was asked %d times for four protocols; want 1 (one cache)", id, calls)
	}
	return nil
}

// freshFoundID is an ID no earlier step asked (the backfill's are Q..., the
// gateway's new ones R...) that the simulator has a location for, so that
// the four answers are a full object. The simulator's faults are drawn per
// ID and seed, so this ID's one call is never a simulated fault's retry.
func (d *demoEnv) freshFoundID() (string, error) {
	for i := range 1000 {
		id := fmt.Sprintf("P%06d", i)
		if kind, _ := d.sim.Expected(id); kind == sim.Found && d.sim.Requests(id) == 0 {
			return id, nil
		}
	}
	return "", errors.New("the simulator has no location for any of 1,000 IDs")
}

// askSnowflake sends id as a one-row Snowflake batch and returns its value.
func (d *demoEnv) askSnowflake(ctx context.Context, base, id string) (json.RawMessage, error) {
	body, err := extfunc.EncodeColumn([]any{id})
	if err != nil {
		return nil, err
	}
	status, answer, err := demoRequest(ctx, base+"/resolve_location", "demo:5", body)
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		return nil, fmt.Errorf("status %d: %s", status, answer)
	}
	values, err := extfunc.DecodeResponse(answer, 1)
	if err != nil {
		return nil, err
	}
	return values[0], nil
}

// askBigQuery sends id as a one-call BigQuery remote-function request.
func askBigQuery(ctx context.Context, base, id string) (json.RawMessage, error) {
	req, err := json.Marshal(map[string]any{"requestId": "demo-5", "calls": [][]any{{id}}})
	if err != nil {
		return nil, err
	}
	body, err := demoHTTP(ctx, http.MethodPost, base+demoBigQueryPath, req)
	if err != nil {
		return nil, err
	}
	var a struct{ Replies []json.RawMessage }
	if err := json.Unmarshal(body, &a); err != nil || len(a.Replies) != 1 {
		return nil, fmt.Errorf("got %s; want {\"replies\": [value]}", clipDemo(body, 200))
	}
	return a.Replies[0], nil
}

// askREST gets id's location from the REST API.
func askREST(ctx context.Context, base, id string) (json.RawMessage, error) {
	return demoHTTP(ctx, http.MethodGet, base+demoRESTPrefix+"/locations/"+url.PathEscape(id), nil)
}

// askRedshift hands the gateway a Redshift Lambda UDF event for id. Its
// result is the object's JSON text as a VARCHAR string.
func askRedshift(ctx context.Context, gw *gateway.Server, id string) (json.RawMessage, error) {
	event, err := json.Marshal(map[string]any{
		"request_id": "demo-5", "cluster": "arn:aws:redshift:demo", "user": "demo", "database": "dev",
		"external_function": "public.resolve_location", "query_id": 5, "num_records": 1, "arguments": [][]any{{id}},
	})
	if err != nil {
		return nil, err
	}
	answer := gw.Redshift(ctx, event)
	var a struct {
		Success bool
		Results []*string
	}
	if err := json.Unmarshal(answer, &a); err != nil || !a.Success || len(a.Results) != 1 || a.Results[0] == nil {
		return nil, fmt.Errorf("got %s; want {\"success\": true, \"results\": [\"<object>\"]}", clipDemo(answer, 200))
	}
	return json.RawMessage(*a.Results[0]), nil
}

// demoHTTP makes one request and returns a 200's body.
func demoHTTP(ctx context.Context, method, u string, body []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %d: %s", resp.StatusCode, clipDemo(answer, 200))
	}
	return answer, nil
}

// clipDemo shortens an answer for one line of the demo's output.
func clipDemo(v []byte, n int) string {
	if len(v) <= n {
		return string(v)
	}
	for n > 0 && !utf8.RuneStart(v[n]) { // never half a character
		n--
	}
	return string(v[:n]) + "..."
}
