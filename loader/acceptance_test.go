package loader_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/snowgate/snowgate/cache"
	. "github.com/snowgate/snowgate/loader"
	"github.com/snowgate/snowgate/locapi"
	"github.com/snowgate/snowgate/sim"
)

// The acceptance tests of issue 4 run the real resolver (cache over locapi)
// against the simulator. The default run uses tens of thousands of IDs;
// SNOWGATE_HEAVY=1 adds the million-row run (TestAcceptanceMillionRows).

// e2eConfig is the provider client side of one acceptance run.
type e2eConfig struct {
	Concurrency int
	Rate        float64
	Burst       int
	Timeout     time.Duration
	MaxAttempts int
}

// newRealResolver builds the production resolver against a simulator.
func newRealResolver(t testing.TB, simURL string, c e2eConfig) (*cache.Resolver, *locapi.Client) {
	t.Helper()
	client, err := locapi.New(locapi.Config{
		URL:         simURL + sim.EntitiesPath + "{id}?select=id,label,location",
		Rate:        c.Rate,
		Burst:       c.Burst,
		Concurrency: c.Concurrency,
		Timeout:     c.Timeout,
		MaxAttempts: c.MaxAttempts,
		BaseBackoff: 5 * time.Millisecond,
		MaxBackoff:  50 * time.Millisecond,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := cache.New(client, cache.Config{Size: 10_000, Concurrency: c.Concurrency}, nil)
	if err != nil {
		client.Close()
		t.Fatal(err)
	}
	return res, client
}

func providerStats(c *locapi.Client) func() ProviderStats {
	return func() ProviderStats {
		s := c.Stats()
		return ProviderStats{Calls: s.Requests, Throttled: s.Throttled}
	}
}

// createSource makes MASTER_TABLE with n rows, about dupPct percent of them
// repeating an earlier ID, in a scattered order; IDs look like "E0012345".
func createSource(t testing.TB, tdb *testDB, n, dupPct int) {
	t.Helper()
	distinct := n - n*dupPct/100
	tdb.exec(t, fmt.Sprintf(`CREATE TABLE MASTER_TABLE AS SELECT ID FROM (
SELECT 'E' || lpad(CAST(i AS VARCHAR), 7, '0') AS ID FROM range(%d) r(i)
UNION ALL SELECT 'E' || lpad(CAST(i * 7 %% %d AS VARCHAR), 7, '0') FROM range(%d) r(i)
) ORDER BY hash(ID)`, distinct, distinct, n-distinct))
}

func fmtStr(p *string) string {
	if p == nil {
		return "NULL"
	}
	return *p
}

func fmtNum(p *float64) string {
	if p == nil {
		return "NULL"
	}
	return strconv.FormatFloat(*p, 'g', -1, 64)
}

// wantRow is the row the warehouse must hold for id, in the form gotRows
// returns: "T|<fields>" in the target, "M|<outcome>|<label>" in misses or
// "F" in failures.
func wantRow(t testing.TB, s *sim.Server, id string) string {
	kind, body := s.Expected(id)
	var rec sim.Entity
	if kind == sim.Found || kind == sim.NoLocation {
		if err := json.Unmarshal(body, &rec); err != nil {
			t.Fatalf("simulator body for %q: %v", id, err)
		}
	}
	switch kind {
	case sim.Found:
		l := rec.Location
		if l == nil {
			t.Fatalf("simulator found %q without a location", id)
		}
		return strings.Join([]string{"T", fmtStr(rec.Label), fmtStr(l.GeoLabel), fmtStr(l.CityLabel), fmtStr(l.PostalCode),
			fmtStr(l.CountryLabel), fmtNum(l.Latitude), fmtNum(l.Longitude), fmtStr(l.StreetAddress)}, "|")
	case sim.NotFound:
		return "M|not_found|NULL"
	case sim.NoLocation:
		return "M|no_location|" + fmtStr(rec.Label)
	}
	return "F"
}

// gotRows reads every stored outcome by ID; an ID stored twice fails.
func gotRows(t testing.TB, db *sql.DB) map[string]string {
	t.Helper()
	out := map[string]string{}
	add := func(id, v string) {
		if prev, dup := out[id]; dup {
			t.Fatalf("ID %q stored twice: %s and %s", id, prev, v)
		}
		out[id] = v
	}
	rows, err := db.QueryContext(t.Context(), `SELECT "ID", "LABEL", "GEO_LABEL", "CITY_LABEL", "POSTAL_CODE", "COUNTRY_LABEL", "LATITUDE", "LONGITUDE", "STREET_ADDRESS" FROM STANDARDIZED_LOCATIONS`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id string
		var s [6]sql.NullString
		var f [2]sql.NullFloat64
		if err := rows.Scan(&id, &s[0], &s[1], &s[2], &s[3], &s[4], &f[0], &f[1], &s[5]); err != nil {
			t.Fatal(err)
		}
		str := func(n sql.NullString) string { return fmtStr(map[bool]*string{true: &n.String}[n.Valid]) }
		num := func(n sql.NullFloat64) string { return fmtNum(map[bool]*float64{true: &n.Float64}[n.Valid]) }
		add(id, strings.Join([]string{"T", str(s[0]), str(s[1]), str(s[2]), str(s[3]), str(s[4]), num(f[0]), num(f[1]), str(s[5])}, "|"))
	}
	rows.Close()
	for _, r := range queryStrings(t, db, `SELECT "ID" || chr(0) || 'M|' || "OUTCOME" || '|' || coalesce("LABEL", 'NULL') FROM STANDARDIZED_LOCATIONS_MISSES`) {
		id, v, _ := strings.Cut(r, "\x00")
		add(id, v)
	}
	for _, id := range queryStrings(t, db, `SELECT "ID" FROM STANDARDIZED_LOCATIONS_FAILURES`) {
		add(id, "F")
	}
	return out
}

// verifyAgainstSim checks that every distinct source ID is stored exactly
// once with the simulator's answer, and nothing else is stored. It returns
// the count of each kind.
func verifyAgainstSim(t testing.TB, db *sql.DB, s *sim.Server) map[string]int {
	t.Helper()
	got := gotRows(t, db)
	ids := queryStrings(t, db, `SELECT DISTINCT CAST("ID" AS VARCHAR) FROM MASTER_TABLE WHERE "ID" IS NOT NULL`)
	kinds := map[string]int{}
	wrong := 0
	for _, id := range ids {
		want := wantRow(t, s, id)
		kinds[want[:1]]++
		if got[id] != want {
			if wrong++; wrong <= 5 {
				t.Errorf("ID %s stored as %q; want %q", id, got[id], want)
			}
		}
		delete(got, id)
	}
	if wrong > 0 || len(got) > 0 {
		t.Fatalf("%d of %d IDs wrong or missing, %d stored IDs not in the source", wrong, len(ids), len(got))
	}
	return kinds
}

// TestAcceptanceThroughputAndRerun is acceptance 1 at CI size and 5: 40,000
// rows with 10% duplicates, 20ms +/- 5ms latency, 100 lookups at once. The
// full-size figures (1M rows) come from TestAcceptanceMillionRows; set
// SNOWGATE_PERF=1 to assert the rate here too.
func TestAcceptanceThroughputAndRerun(t *testing.T) {
	s, err := sim.Start(sim.Config{Latency: 20 * time.Millisecond, Jitter: 5 * time.Millisecond,
		NotFoundRatio: 0.05, NoLocationRatio: 0.05, PermanentFailRatio: 0.01})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tdb := newTestDB(t)
	createSource(t, tdb, 40_000, 10)
	d := openTest(t, tdb.path, mustTables(t))
	// Nothing hangs here: the long timeout only keeps a starved machine's
	// slow answers from using up an ID's three attempts.
	res, client := newRealResolver(t, s.URL, e2eConfig{Concurrency: 100, Timeout: 10 * time.Second, MaxAttempts: 3})
	sum := runLoader(t, context.Background(), d, res, Config{Concurrency: 100, ProviderStats: providerStats(client)})
	res.Close()
	client.Close()
	t.Logf("40k rows: %d IDs in %s = %.0f IDs/s (bound 5,000/s); provider requests %d", sum.Committed, sum.Duration, sum.Rate(), sum.Provider.Calls)
	if sum.Committed != 36_000 || sum.Read != 36_000 {
		t.Fatalf("committed %d of %d read; want 36,000 distinct IDs", sum.Committed, sum.Read)
	}
	// The bound is 5,000/s. On a shared CI machine (or under -race) the
	// rate says more about the neighbours than about the loader, so the
	// floor is asserted on request, on an idle machine.
	if os.Getenv("SNOWGATE_PERF") != "" && sum.Rate() < 4500 {
		t.Errorf("rate = %.0f IDs/s; want >= 4,500 (90%% of the bound)", sum.Rate())
	}
	kinds := verifyAgainstSim(t, d.db, s.Server)
	t.Logf("stored exactly: %v", kinds)
	firstRun := sum.Duration

	t.Run("second run calls the provider zero times", func(t *testing.T) {
		before := s.Total()
		res, client := newRealResolver(t, s.URL, e2eConfig{Concurrency: 100})
		defer client.Close()
		defer res.Close()
		start := time.Now()
		sum := runLoader(t, context.Background(), d, res, Config{Concurrency: 100, ProviderStats: providerStats(client)})
		if sum.Pending != 0 || sum.Provider.Calls != 0 || s.Total() != before {
			t.Fatalf("second run: pending %d, provider calls %d, simulator requests %d; want 0, 0, 0",
				sum.Pending, sum.Provider.Calls, s.Total()-before)
		}
		// The first run, on the same machine at the same time, waited for
		// 36,000 lookups; this one does its reading and no lookup.
		el := time.Since(start)
		t.Logf("second run took %s; the first %s", el, firstRun)
		if el >= firstRun {
			t.Errorf("second run took %s; want less than the first run's %s", el, firstRun)
		}
	})
}

// TestAcceptanceRateLimited is acceptance 2: the simulator admits 500
// requests/s; the loader must keep to it with no 429, and use it (at least
// 97% on an idle machine).
func TestAcceptanceRateLimited(t *testing.T) {
	if testing.Short() {
		t.Skip("12 s at a fixed rate; run without -short")
	}
	// The provider keeps half a second of burst: with the simulator in this
	// process, a starved machine hands it requests paced apart all at once.
	// A loader over the rate still drains that within a second and draws
	// 429s. The client's own pacing against an identical bucket is
	// locapi's TestAcceptanceExactRate.
	s, err := sim.Start(sim.Config{Rate: 500, Burst: 250, Latency: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tdb := newTestDB(t)
	createSource(t, tdb, 6_000, 0)
	d := openTest(t, tdb.path, mustTables(t))
	res, client := newRealResolver(t, s.URL, e2eConfig{Concurrency: 64, Rate: 500, Burst: 50, Timeout: 10 * time.Second})
	defer client.Close()
	defer res.Close()
	s.Reset()
	sum := runLoader(t, context.Background(), d, res, Config{Concurrency: 64, ProviderStats: providerStats(client)})

	perSec := s.PerSecond()
	steady := perSec[1 : len(perSec)-1] // whole seconds between the ramp-up and the tail
	total := 0
	for _, n := range steady {
		total += n
	}
	mean := float64(total) / float64(len(steady))
	t.Logf("rate-limited: %d IDs in %s = %.0f IDs/s overall; per second at the provider %v (steady mean %.1f); 429s %d",
		sum.Committed, sum.Duration, sum.Rate(), perSec, mean, s.Status(429))
	if s.Status(429) != 0 || sum.Provider.Throttled != 0 {
		t.Errorf("provider 429s = %d (client saw %d); want 0", s.Status(429), sum.Provider.Throttled)
	}
	floor := 0.1 // carried at all: on busy cores the load itself falls behind
	if os.Getenv("SNOWGATE_PERF") != "" {
		floor = 0.97
	}
	if mean < floor*500 {
		t.Errorf("steady rate = %.1f/s; want >= %.0f/s", mean, floor*500)
	}
	verifyAgainstSim(t, d.db, s.Server)
}

// TestAcceptanceFaults is acceptance 4: 5% 5xx, 1% hangs, 1% truncated
// bodies; nothing lost or wrong, and failures hold exactly the IDs the
// simulator fails permanently.
func TestAcceptanceFaults(t *testing.T) {
	s, err := sim.Start(sim.Config{Seed: 7, Latency: time.Millisecond, ErrorRate: 0.05, HangRate: 0.01, TruncateRate: 0.01,
		NotFoundRatio: 0.05, NoLocationRatio: 0.05, PermanentFailRatio: 0.01})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tdb := newTestDB(t)
	createSource(t, tdb, 10_000, 10)
	d := openTest(t, tdb.path, mustTables(t))
	// The timeout ends the hangs; 2 s rather than less, or a starved
	// machine's slow answers too would use up an ID's attempts.
	res, client := newRealResolver(t, s.URL, e2eConfig{Concurrency: 64, Timeout: 2 * time.Second, MaxAttempts: 8})
	defer client.Close()
	defer res.Close()
	sum := runLoader(t, context.Background(), d, res, Config{Concurrency: 64, ProviderStats: providerStats(client)})
	st := s.Stats()
	t.Logf("faults: %d IDs in %s; simulator: %d requests, %d faults, %d truncated, %d hung", sum.Committed, sum.Duration,
		st.Total, st.Faults, st.Truncated, st.ByStatus[0])
	if st.Faults == 0 || st.Truncated == 0 || st.ByStatus[0] == 0 {
		t.Fatalf("simulator stats %+v: want every fault kind drawn", st)
	}
	kinds := verifyAgainstSim(t, d.db, s.Server)
	if int64(kinds["F"]) != sum.Failed {
		t.Errorf("failed = %d; want the %d permanent failures", sum.Failed, kinds["F"])
	}
}
