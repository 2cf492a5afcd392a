package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/snowgate/snowgate/sim"
)

func TestOracleCheck(t *testing.T) {
	o, ids := testOracle(t, 60)
	byKind := map[sim.Kind]string{}
	for _, id := range ids {
		byKind[o.want[id].kind] = id
	}
	found, notFound, noLoc, fail := byKind[sim.Found], byKind[sim.NotFound], byKind[sim.NoLocation], byKind[sim.PermanentFail]
	value := func(id string) json.RawMessage {
		kind, rec, _ := o.truth(id)
		return gatewayValue(id, kind, rec)
	}
	// The same record with its keys in another order: not the same bytes.
	var m map[string]any
	if err := json.Unmarshal(value(found), &m); err != nil {
		t.Fatal(err)
	}
	reordered, _ := json.Marshal(m)
	tests := []struct {
		name string
		id   string
		v    string
		want verdict
	}{
		{"found, exact", found, string(value(found)), rowRight},
		{"found, keys reordered", found, string(reordered), rowRight},
		{"found, null", found, "null", rowWrong},
		{"found, another record", found, string(value(byKindOther(o, ids, found))), rowWrong},
		{"found, an error value", found, `{"error":"lookup failed"}`, rowFailed},
		{"not found", notFound, string(value(notFound)), rowRight},
		{"not found answered as no location", notFound, strings.Replace(string(value(notFound)), "not_found", "no_location", 1), rowWrong},
		{"no location", noLoc, string(value(noLoc)), rowRight},
		{"always failing, an error value", fail, `{"error":"lookup failed"}`, rowRight},
		{"always failing, null", fail, "null", rowWrong},
		{"an ID not precomputed", "ZZZ", "null", rowWrong},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, why := o.check(tt.id, json.RawMessage(tt.v)); got != tt.want {
				t.Errorf("check(%q, %s): got %d (%s); want %d", tt.id, clip([]byte(tt.v)), got, why, tt.want)
			}
		})
	}
}

// byKindOther is another found ID than id.
func byKindOther(o *oracle, ids []string, id string) string {
	for _, other := range ids {
		if other != id && o.want[other].kind == sim.Found {
			return other
		}
	}
	return id
}

func TestGatewayRows(t *testing.T) {
	tests := []struct {
		n        int
		repeat   float64
		distinct int
	}{{10, 0, 10}, {1000, 0.3, 700}, {7, 0.5, 3}, {1, 0.9, 1}}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d rows %.1f repeats", tt.n, tt.repeat), func(t *testing.T) {
			rows, distinct := gatewayRows(tt.n, tt.repeat, 1)
			again, _ := gatewayRows(tt.n, tt.repeat, 1)
			if len(rows) != tt.n || len(distinct) != tt.distinct || !slices.Equal(rows, again) {
				t.Fatalf("got %d rows, %d distinct, same again %v; want %d, %d, true", len(rows), len(distinct), slices.Equal(rows, again), tt.n, tt.distinct)
			}
			set := map[string]bool{}
			for _, id := range rows {
				set[id] = true
			}
			if len(set) != tt.distinct {
				t.Errorf("distinct IDs in the rows: got %d; want %d", len(set), tt.distinct)
			}
		})
	}
}

func TestTo99AndPercentile(t *testing.T) {
	pts := []Point{{0, 0}, {1, 50}, {2, 99}, {5, 100}}
	if rate, tail := to99(pts); rate != 49.5 || tail != 3 {
		t.Errorf("to99: got %v/s, tail %v; want 49.5, 3", rate, tail)
	}
	if rate, tail := to99(nil); rate != 0 || tail != 0 {
		t.Errorf("to99(nil): got %v, %v; want 0, 0", rate, tail)
	}
	secs := []Second{{Requests: 500}, {Requests: 490}, {Requests: 5}, {Requests: 5}}
	if rate, tail := requestsTo99(secs, 1, 3.5); rate != 495 || tail != 1.5 {
		t.Errorf("requestsTo99: got %v/s, tail %v; want 495, 1.5", rate, tail)
	}
	lat := []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	for _, tt := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 5}, {0.99, 10}, {1, 10}, {0, 1}} {
		if got := percentile(lat, tt.q); got != tt.want {
			t.Errorf("percentile(%v): got %v; want %v", tt.q, got, tt.want)
		}
	}
}

func TestThroughputCap(t *testing.T) {
	tests := []struct {
		rate    float64
		conc    int
		latency time.Duration
		want    float64
	}{
		{2000, 64, 20 * time.Millisecond, 2000},
		{0, 100, 20 * time.Millisecond, 5000},
		{500, 100, 20 * time.Millisecond, 500},
		{0, 100, 0, 0},
		{300, 100, 0, 300},
	}
	for _, tt := range tests {
		if got := throughputCap(tt.rate, tt.conc, tt.latency); got != tt.want {
			t.Errorf("throughputCap(%v, %d, %v): got %v; want %v", tt.rate, tt.conc, tt.latency, got, tt.want)
		}
	}
}

func TestBaselineFetchOne(t *testing.T) {
	s, err := sim.New(sim.Config{})
	if err != nil {
		t.Fatal(err)
	}
	_, good := s.Expected("E1")
	tests := []struct {
		name   string
		status int
		body   string
		kind   sim.Kind
		lost   string
	}{
		{"found", 200, string(good), sim.Found, ""},
		{"no location", 200, `{"id":"E1","label":"x","location":null}`, sim.NoLocation, ""},
		{"not found", 404, `{"error":"not_found"}`, sim.NotFound, ""},
		{"rate limited", 429, `{"error":"rate_limited"}`, 0, lost429},
		{"server error", 503, `oops`, 0, lost5xx},
		{"truncated", 200, string(good[:len(good)/2]), 0, lostMalformed},
		{"another id", 200, `{"id":"E2","location":null}`, 0, lostMalformed},
		{"forbidden", 403, ``, 0, lostOther},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tt.status)
				_, _ = w.Write([]byte(tt.body)) // fetchOne's verdict on what arrived is the test
			}))
			defer srv.Close()
			got := fetchOne(context.Background(), srv.Client(), srv.URL+"/api/v2/entities/E1", "E1")
			if got.kind != tt.kind || got.lost != tt.lost {
				t.Errorf("got kind %v, lost %q; want %v, %q", got.kind, got.lost, tt.kind, tt.lost)
			}
		})
	}
}

func TestFetchBlockStartsAllAtOnce(t *testing.T) {
	// With a pool of 4 connections, the fifth request waits for one: the
	// handler sees at most 4 at a time, and all 12 are answered.
	var now, peak atomic.Int64
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := now.Add(1)
		defer now.Add(-1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		if n == 4 {
			close(release)
		}
		<-release
		w.WriteHeader(404)
	}))
	defer srv.Close()
	ids := make([]string, 12)
	for i := range ids {
		ids[i] = fmt.Sprint("I", i)
	}
	var good atomic.Int64
	out := fetchBlock(context.Background(), srv.URL, ids, 4, 10*time.Second, &good)
	if good.Load() != 12 || len(out) != 12 || peak.Load() != 4 {
		t.Errorf("got %d good of %d, peak %d in flight; want 12 of 12, peak 4", good.Load(), len(out), peak.Load())
	}
}

func TestChildEnvAndSummary(t *testing.T) {
	env := childEnv([]string{"PATH=/bin", "SNOWGATE_SOURCE_TABLE=x", "SNOWGATE_UPSTREAM_TOKEN=secret", "HOME=/h"})
	if want := []string{"PATH=/bin", "HOME=/h", "SNOWGATE_LOG_LEVEL=info"}; !slices.Equal(env, want) {
		t.Errorf("childEnv: got %v; want %v", env, want)
	}
	log := `{"level":"INFO","msg":"backfill progress","done":5}
not json
{"level":"INFO","msg":"backfill done","committed":10,"found":7,"not_found":1,"no_location":1,"failed":1,"abandoned":0,"duration":2500000000,"interrupted":false}
`
	run, err := parseBackfillDone([]byte(log))
	if err != nil {
		t.Fatal(err)
	}
	want := loaderRun{seconds: 2.5, committed: 10, found: 7, notFound: 1, noLocation: 1, failed: 1}
	if run != want {
		t.Errorf("parseBackfillDone: got %+v; want %+v", run, want)
	}
	if _, err := parseBackfillDone([]byte(`{"msg":"backfill progress"}`)); err == nil {
		t.Error("parseBackfillDone without the summary: got nil error; want one")
	}
}

func TestCheckBackfillFindsEveryKindOfMistake(t *testing.T) {
	ctx := t.Context()
	r := &runner{db: t.TempDir() + "/check.duckdb"}
	s, err := sim.New(sim.Config{NotFoundRatio: 0.3, NoLocationRatio: 0.2, PermanentFailRatio: 0.1})
	if err != nil {
		t.Fatal(err)
	}
	o := &oracle{sim: s}
	db, err := openDuck(r.db)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range []string{
		`CREATE TABLE STANDARDIZED_LOCATIONS (ID VARCHAR, LABEL VARCHAR, GEO_LABEL VARCHAR, CITY_LABEL VARCHAR,
			POSTAL_CODE VARCHAR, COUNTRY_LABEL VARCHAR, LATITUDE DOUBLE, LONGITUDE DOUBLE, STREET_ADDRESS VARCHAR)`,
		`CREATE TABLE STANDARDIZED_LOCATIONS_MISSES (ID VARCHAR, OUTCOME VARCHAR)`,
		`CREATE TABLE STANDARDIZED_LOCATIONS_FAILURES (ID VARCHAR)`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	store := func(id string) {
		kind, rec, _ := o.truth(id)
		var err error
		switch kind {
		case sim.Found:
			v := recordValues(id, rec)
			_, err = db.ExecContext(ctx, `INSERT INTO STANDARDIZED_LOCATIONS VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8])
		case sim.PermanentFail:
			_, err = db.ExecContext(ctx, `INSERT INTO STANDARDIZED_LOCATIONS_FAILURES VALUES (?)`, id)
		default:
			_, err = db.ExecContext(ctx, `INSERT INTO STANDARDIZED_LOCATIONS_MISSES VALUES (?, ?)`, id, kind.String())
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	for i := range 4 {
		store(backfillID(i)) // right
	}
	// ID 4 is in no table; ID 5 is stored as found with a wrong label; ID 0 is stored twice.
	if _, err := db.ExecContext(ctx, `INSERT INTO STANDARDIZED_LOCATIONS (ID, LABEL) VALUES (?, 'WRONG')`, backfillID(5)); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO STANDARDIZED_LOCATIONS_FAILURES VALUES (?)`, backfillID(0)); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	var ck CheckReport
	if err := r.checkBackfill(ctx, o, 6, &ck); err != nil {
		t.Fatal(err)
	}
	if ck.Checked != 7 || ck.Right != 4 || ck.Wrong != 3 || ck.Failed != 0 {
		t.Errorf("got %+v; want 7 checked, 4 right, 3 wrong", ck)
	}
	for _, want := range []string{backfillID(4) + ": in no table", backfillID(0) + ": stored twice", backfillID(5) + ": "} {
		if !slices.ContainsFunc(ck.Examples, func(e string) bool { return strings.HasPrefix(e, want) }) {
			t.Errorf("examples %q: none starts with %q", ck.Examples, want)
		}
	}
}

func TestReportErr(t *testing.T) {
	tests := []struct {
		name string
		rep  Report
		want string // "" for no error
	}{
		{"all right", Report{Gateway: &GatewayReport{Cold: PassReport{Right: 5, Failed: 1}}, Backfill: &BackfillReport{Check: CheckReport{Right: 3, Failed: 1}}}, ""},
		{"a wrong cold row", Report{Gateway: &GatewayReport{Cold: PassReport{Wrong: 1}}}, "gateway cold pass: 1 rows wrong"},
		{"a batch never answered", Report{Gateway: &GatewayReport{Hot: PassReport{Missing: 4096}}}, "gateway hot pass: 0 rows wrong, 4096 never answered"},
		{"a wrong stored ID", Report{Backfill: &BackfillReport{Check: CheckReport{Wrong: 2}}}, "backfill: 2 IDs wrong"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.rep.Err()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("got %v; want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("got %v; want an error containing %q", err, tt.want)
			}
		})
	}
}
