package loader_test

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/snowgate/snowgate/cache"
	. "github.com/snowgate/snowgate/loader"
	"github.com/snowgate/snowgate/loader/duckdb"
	"github.com/snowgate/snowgate/locapi"
	"github.com/snowgate/snowgate/sim"
)

// A child is this test binary re-executed to run one backfill in its own
// process, so a test can SIGKILL it or measure its peak memory. The
// simulator stays in the parent, where its per-ID counters survive the
// child.
const (
	childEnv         = "SNOWGATE_LOADER_CHILD" // the DuckDB path; set only in a child
	childURLEnv      = "SNOWGATE_LOADER_CHILD_URL"
	childConcEnv     = "SNOWGATE_LOADER_CHILD_CONCURRENCY"
	childProgressEnv = "SNOWGATE_LOADER_CHILD_PROGRESS"
	childCommitEnv   = "SNOWGATE_LOADER_CHILD_COMMIT_ROWS"
)

func TestMain(m *testing.M) {
	if path := os.Getenv(childEnv); path != "" {
		if err := childMain(path, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// childResult is the child's last line.
type childResult struct {
	Summary Summary
	PeakKB  int64 // VmHWM
	// Samples of VmRSS and the Go heap (MB) at every tenth progress report,
	// to see where the memory goes.
	RSSMB, GoHeapMB []int64
}

// childMain runs one backfill, printing "progress <done> <committed>" lines
// and then "result <json>".
func childMain(path string, out io.Writer) error {
	conc, _ := strconv.Atoi(os.Getenv(childConcEnv))
	every, _ := time.ParseDuration(os.Getenv(childProgressEnv))
	commitRows, _ := strconv.Atoi(os.Getenv(childCommitEnv))
	client, err := locapi.New(locapi.Config{
		URL: os.Getenv(childURLEnv) + sim.EntitiesPath + "{id}?select=id,label,location", Concurrency: conc,
		// Nothing hangs: a long timeout keeps a starved machine's slow
		// answers from using up an ID's three attempts.
		Timeout: 10 * time.Second, MaxAttempts: 3, BaseBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
	}, nil)
	if err != nil {
		return err
	}
	defer client.Close()
	res, err := cache.New(client, cache.Config{Size: 10_000, Concurrency: conc}, nil)
	if err != nil {
		return err
	}
	defer res.Close()
	wh, err := duckdb.Open(context.Background(), path+os.Getenv("SNOWGATE_LOADER_CHILD_DUCKDB"), mustNewTables())
	if err != nil {
		return err
	}
	defer wh.Close()
	var result childResult
	reports := 0
	progress := func(p Progress) {
		fmt.Fprintf(out, "progress %d %d\n", p.Done, p.Committed)
		if reports++; reports%10 == 1 {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			result.RSSMB = append(result.RSSMB, procStatusKB("VmRSS:")/1024)
			result.GoHeapMB = append(result.GoHeapMB, int64(ms.HeapSys>>20))
		}
	}
	l, err := New(wh, res, Config{Concurrency: conc, CommitRows: commitRows, ProgressInterval: every,
		ProviderStats: providerStats(client), OnProgress: progress}, nil)
	if err != nil {
		return err
	}
	if result.Summary, err = l.Run(context.Background()); err != nil {
		return err
	}
	result.PeakKB = procStatusKB("VmHWM:")
	b, _ := json.Marshal(result)
	_, err = fmt.Fprintf(out, "result %s\n", b)
	return err
}

func mustNewTables() Tables {
	t, err := NewTables("", "", "")
	if err != nil {
		panic(err)
	}
	return t
}

// procStatusKB reads one kB figure of /proc/self/status, e.g. "VmHWM:",
// the peak resident set.
func procStatusKB(field string) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, field); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return -1
}

// runChild runs a child backfill. With killAt > 0 it is SIGKILLed once it
// reports that many IDs done and at least one commit; killed says whether
// that happened before it ended by itself.
func runChild(t *testing.T, dbPath, simURL string, conc, commitRows int, killAt int64) (res childResult, killed bool) {
	t.Helper()
	// The child ends by itself or by the Kill below; the test's end kills
	// one that did neither.
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+dbPath, childURLEnv+"="+simURL,
		childConcEnv+"="+strconv.Itoa(conc), childProgressEnv+"=20ms", childCommitEnv+"="+strconv.Itoa(commitRows))
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "progress "); ok && killAt > 0 && !killed {
			d, c, _ := strings.Cut(v, " ")
			done, _ := strconv.ParseInt(d, 10, 64)
			if committed, _ := strconv.ParseInt(c, 10, 64); done >= killAt && committed > 0 {
				if err := cmd.Process.Kill(); err != nil {
					t.Fatal(err)
				}
				killed = true
			}
		}
		if v, ok := strings.CutPrefix(line, "result "); ok {
			if err := json.Unmarshal([]byte(v), &res); err != nil {
				t.Fatal(err)
			}
		}
	}
	err = cmd.Wait()
	if !killed && err != nil {
		t.Fatalf("child: %v", err)
	}
	return res, killed
}

// committedIDs reads the IDs stored in any result table.
func committedIDs(t *testing.T, path string) []string {
	t.Helper()
	db, err := sql.Open("duckdb", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if n := queryStrings(t, db, `SELECT count(*) FROM duckdb_tables() WHERE table_name = 'STANDARDIZED_LOCATIONS'`); n[0] == "0" {
		return nil
	}
	return queryStrings(t, db, `SELECT "ID" FROM STANDARDIZED_LOCATIONS UNION ALL SELECT "ID" FROM STANDARDIZED_LOCATIONS_MISSES
UNION ALL SELECT "ID" FROM STANDARDIZED_LOCATIONS_FAILURES`)
}

// TestAcceptanceCrashSafety is acceptance 3: SIGKILL the loader at three
// random moments, re-run it each time, and check that no run fetches an ID
// committed before it started and that the end result is exact.
func TestAcceptanceCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("runs four child processes; run without -short")
	}
	s, err := sim.Start(sim.Config{Latency: 3 * time.Millisecond, Jitter: 2 * time.Millisecond,
		NotFoundRatio: 0.05, NoLocationRatio: 0.05, PermanentFailRatio: 0.02})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tdb := newTestDB(t)
	const rows, distinct = 20_000, 18_000
	createSource(t, tdb, rows, 10)
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 4))
	t.Logf("kill points drawn with seed %d", seed)

	for round := range 4 {
		committed := committedIDs(t, tdb.path)
		before := make(map[string]int, len(committed))
		for _, id := range committed {
			before[id] = s.Requests(id)
		}
		var killAt int64
		if round < 3 {
			left := distinct - len(committed)
			killAt = int64(left/10 + rng.IntN(left*6/10)) // between 10% and 70% of what is left
		}
		res, killed := runChild(t, tdb.path, s.URL, 32, 1000, killAt)
		if round < 3 && !killed {
			t.Fatalf("round %d: the child finished before reaching %d IDs done", round, killAt)
		}
		if after := len(committedIDs(t, tdb.path)); after <= len(committed) {
			t.Fatalf("round %d: %d IDs committed after it, %d before; want progress", round, after, len(committed))
		}
		refetched := 0
		for id, n := range before {
			if s.Requests(id) != n {
				refetched++
			}
		}
		if killed {
			t.Logf("round %d: %d IDs committed before; SIGKILL at %d done; committed IDs fetched again: %d", round, len(committed), killAt, refetched)
		} else {
			t.Logf("round %d: %d IDs committed before; ran to the end: %d committed; committed IDs fetched again: %d",
				round, len(committed), res.Summary.Committed, refetched)
		}
		if refetched > 0 {
			t.Fatalf("round %d fetched %d IDs that were committed before it started; want 0", round, refetched)
		}
	}
	db, err := sql.Open("duckdb", tdb.path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	kinds := verifyAgainstSim(t, db, s.Server)
	t.Logf("final: %v (F = the simulator's permanent failures, exactly)", kinds)
}

// TestAcceptanceMillionRows is acceptance 1 at full size: 1,000,000 source
// rows (10% duplicates), 20ms +/- 5ms latency, 100 lookups at once; at least
// 4,500 IDs/s and at most 200 MB peak RSS in the loader's process.
// Opt in with SNOWGATE_HEAVY=1 (about four minutes).
func TestAcceptanceMillionRows(t *testing.T) {
	if os.Getenv("SNOWGATE_HEAVY") == "" {
		t.Skip("set SNOWGATE_HEAVY=1 to run the 1M-row acceptance run")
	}
	s, err := sim.Start(sim.Config{Latency: 20 * time.Millisecond, Jitter: 5 * time.Millisecond,
		NotFoundRatio: 0.05, NoLocationRatio: 0.05, PermanentFailRatio: 0.001})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tdb := newTestDB(t)
	createSource(t, tdb, 1_000_000, 10)
	res, _ := runChild(t, tdb.path, s.URL, 100, 0, 0)
	sum := res.Summary
	t.Logf("1M rows: %d IDs in %s = %.0f IDs/s (bound 5,000/s); peak RSS %d MB; provider requests %d, 429s %d",
		sum.Committed, sum.Duration, sum.Rate(), res.PeakKB/1024, sum.Provider.Calls, sum.Provider.Throttled)
	t.Logf("RSS MB over the run: max %d, last %v; Go heap MB: max %d, last %v", slices.Max(res.RSSMB), res.RSSMB[max(0, len(res.RSSMB)-5):],
		slices.Max(res.GoHeapMB), res.GoHeapMB[max(0, len(res.GoHeapMB)-5):])
	if sum.Committed != 900_000 {
		t.Errorf("committed %d; want 900,000", sum.Committed)
	}
	if sum.Rate() < 4500 {
		t.Errorf("rate = %.0f IDs/s; want >= 4,500", sum.Rate())
	}
	if res.PeakKB > 200*1024 {
		t.Errorf("peak RSS = %d MB; want <= 200 MB", res.PeakKB/1024)
	}
	db, err := sql.Open("duckdb", tdb.path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	t.Logf("stored exactly: %v", verifyAgainstSim(t, db, s.Server))
}
