package gateway

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/snowgate/snowgate/cache"
	"github.com/snowgate/snowgate/locapi"
	"github.com/snowgate/snowgate/sim"
)

// summarySim answers every kind (found, not found, no location, always
// 500) and draws transient faults (5xx, bodies cut short) per seed, ID and
// attempt, so lookups retry, and a run always draws the same faults.
var summarySim = sim.Config{Seed: 11, NotFoundRatio: 0.2, NoLocationRatio: 0.2, PermanentFailRatio: 0.15,
	ErrorRate: 0.3, TruncateRate: 0.1}

// summaryAttempts is locapi's MaxAttempts: what an always-failing ID costs.
const summaryAttempts = 6

// summaryClient is locapi's configuration for these tests: quick retries.
func summaryClient(url string, tr http.RoundTripper) locapi.Config {
	return locapi.Config{URL: url + sim.EntitiesPath + "{id}?select=id,label,location", Transport: tr,
		Concurrency: 16, MaxAttempts: summaryAttempts, BaseBackoff: time.Millisecond, MaxBackoff: 4 * time.Millisecond}
}

// badTexts reach the resolver as text and are rejected by locapi without a
// request (empty, over 256 bytes, a control character); a boolean row is
// refused by the decoder.
var badTexts = []string{"", strings.Repeat("x", 300), "a\x01b"}

// mixIDs are IDs of every kind the simulator answers, chosen by its own
// Expected.
type mixIDs struct {
	found                        []string // the first is cached before the mixed batch
	notFound, noLocation, failed string
}

func pickIDs(t testing.TB, s *sim.Server, prefix string, found int) mixIDs {
	t.Helper()
	var ids mixIDs
	for i := 0; len(ids.found) < found || ids.notFound == "" || ids.noLocation == "" || ids.failed == ""; i++ {
		if i == 10_000 {
			t.Fatalf("no ID of every kind among %d", i)
		}
		id := fmt.Sprintf("%s-%d", prefix, i)
		switch k, _ := s.Expected(id); {
		case k == sim.Found && len(ids.found) < found:
			ids.found = append(ids.found, id)
		case k == sim.NotFound && ids.notFound == "":
			ids.notFound = id
		case k == sim.NoLocation && ids.noLocation == "":
			ids.noLocation = id
		case k == sim.PermanentFail && ids.failed == "":
			ids.failed = id
		}
	}
	return ids
}

// mixedBody is a batch of 11 rows and extra: a found ID twice, a null, the
// three bad texts, a boolean, a not-found and a no-location ID, extra
// (found IDs), an always-failing ID and another found ID.
func mixedBody(ids mixIDs, extra ...string) string {
	rows := []string{q(ids.found[1]), q(ids.found[1]), "null"}
	for _, b := range badTexts {
		rows = append(rows, q(b))
	}
	rows = append(rows, "true", q(ids.notFound), q(ids.noLocation))
	for _, id := range extra {
		rows = append(rows, q(id))
	}
	rows = append(rows, q(ids.failed), q(ids.found[2]))
	var sb strings.Builder
	sb.WriteString(`{"data":[`)
	for i, r := range rows {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, "[%d,%s]", i, r)
	}
	sb.WriteString("]}")
	return sb.String()
}

func q(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// batchLines parses the JSON log into its summary lines, by batch id.
func batchLines(t testing.TB, logs string) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for _, l := range strings.Split(strings.TrimSpace(logs), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line is not JSON: %v: %s", err, l)
		}
		if m["msg"] == "batch" {
			out[m["batch_id"].(string)] = m
		}
	}
	return out
}

// checkLine compares a summary line's figures with want, exactly.
func checkLine(t testing.TB, name string, line map[string]any, want map[string]any) {
	t.Helper()
	if line == nil {
		t.Fatalf("%s: no summary line", name)
	}
	for k, w := range want {
		got := line[k]
		if n, ok := w.(int); ok {
			w = float64(n) // how encoding/json reads a number
		}
		if got != w {
			t.Errorf("%s: %s got %v; want %v", name, k, got, w)
		}
	}
}

// simTransport hands each request to the simulator in process, so a test
// can run in a synctest bubble. Requests for hold's ID wait for release.
type simTransport struct {
	sim     *sim.Server
	hold    string
	held    chan struct{} // gets a value when the held request arrives
	release chan struct{}
}

func (tr *simTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	select {
	case <-tr.release: // retries after the release pass
	default:
		if strings.HasSuffix(req.URL.Path, "/"+tr.hold) {
			tr.held <- struct{}{}
			select {
			case <-tr.release:
			case <-req.Context().Done():
				return nil, req.Context().Err()
			}
		}
	}
	rec := httptest.NewRecorder()
	tr.sim.ServeHTTP(rec, req)
	return rec.Result(), nil
}

// The summary line of a batch mixing valid, invalid, null, duplicate,
// not-found, no-location, cached, coalesced and always-failing IDs says
// exactly what the simulator received. The bubble's fake clock makes the
// join and the one 429 deterministic.
func TestSummaryLineMatchesSimulator(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := summarySim
		cfg.Rate, cfg.Burst = 1000, 50
		sv, err := sim.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		ids := pickIDs(t, sv, "S", 4)
		cached, held := ids.found[0], ids.found[3]
		tr := &simTransport{sim: sv, hold: held, held: make(chan struct{}, 1), release: make(chan struct{})}
		client, err := locapi.New(summaryClient("http://127.0.0.1", tr), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer client.Close()
		res, err := cache.New(client, cache.Config{Concurrency: 16}, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Close()
		var logs syncBuffer
		gw := newServer(t, res, Config{Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
		post := func(id, body string) *httptest.ResponseRecorder {
			return do(t, gw.Handler(), request{body: body, headers: map[string]string{hdrBatchID: id}})
		}

		// Empty the provider's bucket: the warm batch's first request gets
		// a 429 and is retried after its Retry-After second.
		const probes = 50
		for range probes {
			sv.ServeHTTP(httptest.NewRecorder(), httptest.NewRequestWithContext(t.Context(), http.MethodGet, sim.EntitiesPath+"probe?select=id,label,location", nil))
		}
		if w := post("warm", batchBody([]string{cached})); w.Code != http.StatusOK {
			t.Fatalf("warm batch: %d %s", w.Code, w.Body)
		}
		answers := make(chan *httptest.ResponseRecorder, 2)
		start := time.Now()
		go func() { answers <- post("A", batchBody([]string{held})) }()
		<-tr.held
		go func() { answers <- post("B", mixedBody(ids, cached, held)) }()
		synctest.Wait() // B's lookups are done or sleeping; held joined A's
		time.Sleep(time.Second)
		close(tr.release)
		for range 2 {
			if w := <-answers; w.Code != http.StatusOK {
				t.Fatalf("batch: %d %s", w.Code, w.Body)
			}
		}
		elapsed := time.Since(start).Milliseconds()

		lines := batchLines(t, logs.String())
		fetched := []string{ids.found[1], ids.notFound, ids.noLocation, ids.failed, ids.found[2]}
		checkLine(t, "B", lines["B"], map[string]any{
			"rows": 13, "found": 5, "not_found": 1, "no_location": 1, "null": 1, "invalid": 4, "failed": 1,
			"distinct": 10, "hits": 1, "coalesced": 1, "fetched": len(fetched), "abandoned": 0,
			"provider_calls": requestsFor(sv, fetched...), "outcome": outcomePartial, "status": 200, "async": false,
		})
		checkLine(t, "A", lines["A"], map[string]any{"rows": 1, "found": 1, "distinct": 1, "hits": 0,
			"coalesced": 0, "fetched": 1, "provider_calls": sv.Requests(held), "outcome": outcomeOK})
		checkLine(t, "warm", lines["warm"], map[string]any{"rows": 1, "found": 1, "fetched": 1,
			"provider_calls": sv.Requests(cached)})
		checkSimTotals(t, sv, lines, probes, ids)
		for _, name := range []string{"A", "B"} {
			if d := lines[name]["duration_ms"].(float64); d < 1000 || d > float64(elapsed) {
				t.Errorf("%s: duration_ms %v; want between the 1000 it was held and the %d the test took", name, d, elapsed)
			}
		}
	})
}

// checkSimTotals checks what the simulator received against the lines:
// every request is some batch's (but the probes), the invalid IDs sent
// none, the always-failing ID was tried exactly MaxAttempts times and the
// one 429 was retried and counted.
func checkSimTotals(t *testing.T, sv *sim.Server, lines map[string]map[string]any, probes int, ids mixIDs) {
	t.Helper()
	sum := 0
	for _, l := range lines {
		sum += int(l["provider_calls"].(float64))
	}
	if got := sv.Total() - probes; sum != got {
		t.Errorf("provider_calls over all lines: %d; the simulator received %d", sum, got)
	}
	valid := requestsFor(sv, append([]string{ids.notFound, ids.noLocation, ids.failed}, ids.found...)...)
	if got := sv.Total() - probes; valid != got {
		t.Errorf("requests for the valid IDs: %d of %d; the others went to invalid IDs", valid, got)
	}
	if got := sv.Requests(ids.failed); got != summaryAttempts {
		t.Errorf("requests for the failing ID: %d; want MaxAttempts = %d", got, summaryAttempts)
	}
	if got := sv.Status(http.StatusTooManyRequests); got != 1 {
		t.Errorf("429s: %d; want the warm batch's one", got)
	}
}

func requestsFor(sv *sim.Server, ids ...string) int {
	n := 0
	for _, id := range ids {
		n += sv.Requests(id)
	}
	return n
}

// The metrics say what the simulator received over a real 127.0.0.1
// connection: a batch caching one ID, the mixed batch, the same rows again
// (all cached now but the failing ID) and a replay of the second batch.
func TestMetricsMatchSimulator(t *testing.T) {
	rs, err := sim.Start(summarySim)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rs.Close() })
	reg := prometheus.NewRegistry()
	client, err := locapi.New(summaryClient(rs.URL, nil), reg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.Close)
	res, err := cache.New(client, cache.Config{Concurrency: 16}, reg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { res.Close() })
	var logs syncBuffer
	gw, err := New(res, Config{Logger: slog.New(slog.NewJSONHandler(&logs, nil))}, reg)
	if err != nil {
		t.Fatal(err)
	}
	ids := pickIDs(t, rs.Server, "M", 3)
	for _, b := range []struct{ id, body string }{
		{"warm", batchBody([]string{ids.found[0]})},
		{"B1", mixedBody(ids, ids.found[0])},
		{"B2", mixedBody(ids, ids.found[0])},
		{"B1", mixedBody(ids, ids.found[0])}, // replayed: no new work, no new figures
	} {
		if w := do(t, gw.Handler(), request{body: b.body, headers: map[string]string{hdrBatchID: b.id}}); w.Code != http.StatusOK {
			t.Fatalf("batch %s: %d %s", b.id, w.Code, w.Body)
		}
	}
	// The failing ID is never cached: B1 and B2 each looked it up.
	if got := rs.Requests(ids.failed); got != 2*summaryAttempts {
		t.Errorf("requests for the failing ID: %d; want 2 lookups of MaxAttempts = %d", got, summaryAttempts)
	}
	m := gathered(t, reg)
	checkRows(t, m)
	checkLookups(t, m)
	checkUpstream(t, m, rs.Server)
	lines := batchLines(t, logs.String())
	sum := 0
	for _, l := range lines {
		sum += int(l["provider_calls"].(float64))
	}
	if sum != rs.Total() {
		t.Errorf("provider_calls over the summary lines: %d; the simulator received %d", sum, rs.Total())
	}
	checkLine(t, "B2", lines["B2"], map[string]any{"hits": 5, "fetched": 1, "provider_calls": summaryAttempts})
	if got := m[`snowgate_gateway_batch_duration_seconds{protocol="snowflake"}_count`]; got != 3 {
		t.Errorf("batch durations observed: %v; want 3 (the replay did no work)", got)
	}
	if got := m[`snowgate_gateway_batches_total{outcome="replayed",protocol="snowflake"}`]; got != 1 {
		t.Errorf("replayed batches: %v; want 1", got)
	}
}

// metricsLookups is the truth of TestMetricsMatchSimulator by source:
// warm fetches 1; B1 has 1 hit, fetches 5 and 3 invalid; B2 has 5 hits,
// fetches the failing ID again and 3 invalid.
const (
	metricsHits, metricsFetched, metricsInvalid = 6, 7, 6
	metricsDistinct                             = 1 + 9 + 9
)

// checkRows: rows by result are the known truth of the three batches run.
func checkRows(t *testing.T, m map[string]float64) {
	t.Helper()
	for result, want := range map[string]float64{"found": 1 + 2*4, "not_found": 2, "no_location": 2,
		"null_id": 2, "invalid_id": 2 * 4, "failed": 2} {
		if got := m[`snowgate_gateway_rows_total{protocol="snowflake",result="`+result+`"}`]; got != want {
			t.Errorf("rows %s: got %v; want %v", result, got, want)
		}
	}
}

// checkLookups: distinct IDs split into the same sources in the gateway
// and the cache, adding up to the distinct IDs asked.
func checkLookups(t *testing.T, m map[string]float64) {
	t.Helper()
	lookup := func(source string) float64 {
		return m[`snowgate_gateway_lookups_total{protocol="snowflake",source="`+source+`"}`]
	}
	cacheReq := func(result string) float64 { return m[`snowgate_cache_requests_total{result="`+result+`"}`] }
	checks := []struct {
		name      string
		got, want float64
	}{
		{"gateway lookups, all sources", lookup("hit") + lookup("coalesced") + lookup("fetched") + lookup("invalid") + lookup("abandoned"), metricsDistinct},
		{"gateway hits", lookup("hit"), metricsHits},
		{"gateway fetched", lookup("fetched"), metricsFetched},
		{"gateway invalid", lookup("invalid"), metricsInvalid},
		{"cache requests, all results", cacheReq("hit") + cacheReq("miss") + cacheReq("coalesced") + cacheReq("abandoned"), metricsDistinct},
		{"cache hits", cacheReq("hit"), metricsHits},
		{"cache misses (lookups started)", cacheReq("miss"), metricsFetched + metricsInvalid},
		{"cache failures (invalid and failing, per batch)", m["snowgate_cache_failures_total"], 2 * 4},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %v; want %v", c.name, c.got, c.want)
		}
	}
}

// checkUpstream: requests by code are what the simulator answered, and a
// retry is every request of a lookup after its first.
func checkUpstream(t *testing.T, m map[string]float64, sv *sim.Server) {
	t.Helper()
	st := sv.Stats()
	var total float64
	for key, v := range m {
		code, ok := strings.CutPrefix(key, `snowgate_upstream_requests_total{code="`)
		if !ok {
			continue
		}
		total += v
		var n int
		if _, err := fmt.Sscanf(code, "%d", &n); err != nil || float64(st.ByStatus[n]) != v {
			t.Errorf("requests with code %s: got %v; the simulator answered %d", code, v, st.ByStatus[n])
		}
	}
	if total != float64(st.Total) {
		t.Errorf("upstream requests: got %v; the simulator received %d", total, st.Total)
	}
	if st.Faults+st.Truncated == 0 {
		t.Fatalf("no transient fault was drawn: the retry count below would prove little")
	}
	if got, want := m["snowgate_upstream_retries_total"], float64(st.Total-metricsFetched); got != want {
		t.Errorf("retries: got %v; want %v (%d requests for %d lookups)", got, want, st.Total, metricsFetched)
	}
}

// gathered reads every sample of reg as name{label="value",...}, with a
// histogram as its _count.
func gathered(t testing.TB, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, mt := range mf.GetMetric() {
			key := mf.GetName()
			var labels []string
			for _, l := range mt.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			if len(labels) > 0 {
				key += "{" + strings.Join(labels, ",") + "}"
			}
			switch {
			case mt.GetCounter() != nil:
				out[key] = mt.GetCounter().GetValue()
			case mt.GetGauge() != nil:
				out[key] = mt.GetGauge().GetValue()
			case mt.GetHistogram() != nil:
				out[key+"_count"] = float64(mt.GetHistogram().GetSampleCount())
			}
		}
	}
	return out
}

// A batch refused as a whole still counts its rows by result, in its line
// and in snowgate_gateway_rows_total: before, it said failed 0.
func TestSummaryRefusedBatchCountsRows(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		status  int
		outcome string
	}{
		{"provider failure with fail", Config{OnRowError: RowErrorFail}, http.StatusServiceUnavailable, outcomeFailed},
		{"too large", Config{MaxResponse: 64}, http.StatusBadRequest, outcomeTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs syncBuffer
			reg := prometheus.NewRegistry()
			tt.cfg.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
			s, err := New(newFake("a"), tt.cfg, reg)
			if err != nil {
				t.Fatal(err)
			}
			body := `{"data":[[0,"a"],[1,"fail-1"],[2,null],[3,"a"],[4,"zz"]]}`
			w := do(t, s.Handler(), request{body: body, headers: map[string]string{hdrBatchID: "R"}})
			if w.Code != tt.status {
				t.Fatalf("got %d %s; want %d", w.Code, w.Body, tt.status)
			}
			checkLine(t, tt.name, batchLines(t, logs.String())["R"], map[string]any{"rows": 5, "found": 2,
				"not_found": 1, "null": 1, "failed": 1, "invalid": 0, "outcome": tt.outcome, "status": tt.status})
			m := gathered(t, reg)
			for result, want := range map[string]float64{"found": 2, "not_found": 1, "null_id": 1, "failed": 1} {
				if got := m[`snowgate_gateway_rows_total{protocol="snowflake",result="`+result+`"}`]; got != want {
					t.Errorf("rows %s: got %v; want %v", result, got, want)
				}
			}
		})
	}
}
