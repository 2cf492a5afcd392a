package cluster_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/snowgate/snowgate/gateway"
	"github.com/snowgate/snowgate/sim"
)

// Issue 7's acceptance: three gateway replicas and a backfill-like
// resolver sharing one Redis in front of a provider limited to 1,000
// requests/s. The fourth process resolves one ID at a time through its own
// cache.Resolver, as the loader's workers do (the loader package itself is
// not used, so these tests do not depend on its API).

// perf reports whether SNOWGATE_PERF asks for the figures of an idle
// machine to be asserted, not only logged.
func perf() bool { return os.Getenv("SNOWGATE_PERF") != "" }

// stallTolerance is the lateness the shared budget absorbs: a request
// later than this for its slot books another (locapi's maxLate). When this
// process or the simulator loses the CPU for longer, requests paced apart
// are sent, or read, together, and may draw 429s (retried: every row is
// still checked). Within it there must be none.
const stallTolerance = 50 * time.Millisecond

// check429s fails on any 429 unless a stall past stallTolerance explains it.
func check429s(t *testing.T, limited int, simStall, ownStall time.Duration) {
	t.Helper()
	worst := max(simStall, ownStall)
	if limited != 0 && (perf() || worst <= stallTolerance) {
		t.Errorf("provider 429s: got %d with stalls of at most %v; want 0", limited, worst)
	}
}

// TestSharedBudget is acceptance 1: together the four processes never send
// more than 1,000 + burst in any second, draw no 429, and use the
// provider's 1,000/s (95% of it on an idle machine).
func TestSharedBudget(t *testing.T) {
	f := newRemoteFleet(t, childConfig{Rate: provRate, Latency: 2 * time.Millisecond, Jitter: time.Millisecond,
		NotFoundRatio: 0.05, NoLocationRatio: 0.05})
	gc := gateway.Config{BatchTimeout: 20 * time.Second}
	reps := []*replica{f.startReplica(t, "A", gc), f.startReplica(t, "B", gc), f.startReplica(t, "C", gc)}
	lone := f.newProcess(t, "backfill")

	const seconds = 11
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var e errs
	stall := meterStalls(t)
	f.remote.reset(t)
	for r, rep := range reps {
		for p := range 3 {
			wg.Go(func() { f.postLoop(stop, rep.url, fmt.Sprintf("budget-r%d-p%d", r, p), 300, &e) })
		}
	}
	for w := range 64 {
		wg.Go(func() { f.resolveLoop(stop, lone, fmt.Sprintf("budget-l%d", w), &e) })
	}
	time.Sleep(seconds * time.Second) // the load's duration
	close(stop)
	wg.Wait()
	e.report(t)

	// Second 0 is the pacers starting with empty buckets.
	st := f.remote.stats(t)
	sum, most := perSecond(st.PerSecond, 1, seconds)
	rate := float64(sum) / (seconds - 1)
	t.Logf("provider: %.0f requests/s over seconds 1-%d, busiest second %d, busiest 1s window %d, 429s %d, simulator stalled up to %v, this process %v; per process: %s",
		rate, seconds-1, most, st.MaxInSecond, st.Limited, st.Stall, stall.max(), requestsByProcess(append(processes(reps), lone)))
	// On busy cores the load itself falls behind (660-860/s seen beside
	// two busy loops, under 200/s on a machine loaded 7x over), so the
	// rate only has to show the budget carried requests at all; the idle
	// machine's 95% is asserted with SNOWGATE_PERF=1.
	floor := 0.1
	if perf() {
		floor = 0.95
	}
	if rate < floor*provRate {
		t.Errorf("combined provider rate: got %.0f/s; want at least %.0f/s", rate, floor*provRate)
	}
	if st.MaxInSecond > provRate+provBurst {
		t.Errorf("busiest 1-second window: got %d requests; want at most %d", st.MaxInSecond, provRate+provBurst)
	}
	check429s(t, st.Limited, st.Stall, stall.max())
	if t.Failed() {
		t.Logf("logs:\n%s", f.logs.String())
	}
	for _, p := range append(processes(reps), lone) {
		if p.requests() == 0 {
			t.Errorf("%s sent no request: the budget was not shared", p.name)
		}
	}
}

func processes(reps []*replica) []*process {
	var ps []*process
	for _, r := range reps {
		ps = append(ps, r.process)
	}
	return ps
}

func requestsByProcess(ps []*process) string {
	var parts []string
	for _, p := range ps {
		parts = append(parts, fmt.Sprintf("%s %d", p.name, p.requests()))
	}
	return strings.Join(parts, ", ")
}

// TestAsyncAcrossReplicas is acceptance 2: a batch started through replica
// A is polled through B and C and answered there; re-sent to B meanwhile,
// it is not worked on twice.
func TestAsyncAcrossReplicas(t *testing.T) {
	f := newFleet(t, sim.Config{Rate: 400, NotFoundRatio: 0.1, NoLocationRatio: 0.05})
	gc := gateway.Config{Async: true, BatchTimeout: 300 * time.Millisecond}
	a, b, c := f.startReplica(t, "A", gc), f.startReplica(t, "B", gc), f.startReplica(t, "C", gc)
	ids := idsFor("async", 600)
	const batch = "01b0async-cross:1:1:0:0"
	ctx := context.Background()
	if code, body, err := call(ctx, a.url, batch, ids); err != nil || code != http.StatusAccepted {
		t.Fatalf("POST to A: got %d %q %v; want 202", code, body, err)
	}
	if code, body, err := call(ctx, b.url, batch, ids); err != nil || code != http.StatusAccepted {
		t.Fatalf("the same batch re-sent to B: got %d %q %v; want 202", code, body, err)
	}
	if code, _, err := call(ctx, c.url, "01b0never-posted:1:1:0:0", nil); err != nil || code != http.StatusNotFound {
		t.Fatalf("poll of a batch no replica knows: got %d %v; want 404", code, err)
	}
	who, err := f.pollUntilDone([]string{b.url, c.url}, batch, ids, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("answered by %s", []string{"B", "C"}[who])
	// Both B and C answer, once the answer is kept.
	for _, r := range []*replica{b, c} {
		code, body, err := call(ctx, r.url, batch, nil)
		if err != nil || code != http.StatusOK {
			t.Fatalf("poll of %s after the answer: got %d %v; want 200", r.name, code, err)
		}
		if err := f.check(body, ids); err != nil {
			t.Fatalf("poll of %s: %v", r.name, err)
		}
	}
	if got := f.sim.Total(); got != len(ids) {
		t.Errorf("provider requests: got %d; want %d (one per ID: the re-sent batch must not run again)", got, len(ids))
	}
	if got := b.requests() + c.requests(); got != 0 {
		t.Errorf("B and C sent %d provider requests; want 0", got)
	}
}

// TestTakeOverFromADeadReplica: a batch claimed by a replica that stops
// renewing its claim (it died) is worked on by the next replica it is sent
// to, once the claim lapses.
func TestTakeOverFromADeadReplica(t *testing.T) {
	f := newFleet(t, sim.Config{})
	b := f.startReplica(t, "B", gateway.Config{Async: true, BatchTimeout: 5 * time.Second})
	dead := f.newProcess(t, "dead")
	const batch = "01b0takeover:1:1:0:0"
	ctx := context.Background()
	if _, _, err := dead.cl.Jobs().Claim(ctx, fnPath+" "+batch, 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	ids := idsFor("takeover", 20)
	start := time.Now()
	code, body, err := call(ctx, b.url, batch, ids)
	if err != nil || code != http.StatusOK {
		t.Fatalf("POST to B: got %d %q %v; want 200", code, body, err)
	}
	if err := f.check(body, ids); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("answered after %v; want B to have waited for the dead replica's claim to lapse", d)
	}
}

// TestSharedCache is acceptance 3: IDs resolved through replica A are
// answered by replica B and by the backfill from the shared cache, without
// a provider call, with the cache's TTLs.
func TestSharedCache(t *testing.T) {
	f := newFleet(t, sim.Config{NotFoundRatio: 0.2, NoLocationRatio: 0.1})
	a, b := f.startReplica(t, "A", gateway.Config{}), f.startReplica(t, "B", gateway.Config{})
	lone := f.newProcess(t, "backfill")
	ids := idsFor("shared", 200)
	ctx := context.Background()
	code, body, err := call(ctx, a.url, "01b0cache-a:1:1:0:0", ids)
	if err != nil || code != http.StatusOK {
		t.Fatalf("POST to A: got %d %v; want 200", code, err)
	}
	if err := f.check(body, ids); err != nil {
		t.Fatal(err)
	}
	code, body, err = call(ctx, b.url, "01b0cache-b:1:1:0:0", ids)
	if err != nil || code != http.StatusOK {
		t.Fatalf("POST to B: got %d %v; want 200", code, err)
	}
	if err := f.check(body, ids); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids[:20] {
		o := lone.res.Resolve(ctx, id)
		if err := f.checkOutcome(id, o); err != nil {
			t.Fatal(err)
		}
		if !o.Hit {
			t.Errorf("backfill resolving %s: not a hit; want one from the shared cache", id)
		}
	}
	if got := b.requests() + lone.requests(); got != 0 {
		t.Errorf("B and the backfill sent %d provider requests; want 0", got)
	}
	for _, id := range ids {
		if n := f.sim.Requests(id); n != 1 {
			t.Fatalf("provider requests for %s: got %d; want 1", id, n)
		}
	}
	_, st := b.res.ResolveMany(ctx, ids[:10])
	if st.Hits != 10 || st.L2Hits != 0 {
		t.Errorf("B again: got %+v; want 10 hits from its own cache, none from the shared one", st)
	}
}

// TestRedisOutage is acceptance 4: Redis is killed for 10 s under load and
// restarted. No batch fails and no row is wrong; while Redis is down every
// process keeps to its share of the provider's rate; afterwards they share
// again, and answers kept by one replica are polled through the others.
func TestRedisOutage(t *testing.T) {
	f := newRemoteFleet(t, childConfig{Rate: provRate, Latency: 2 * time.Millisecond, Jitter: time.Millisecond,
		NotFoundRatio: 0.05, NoLocationRatio: 0.05})
	gc := gateway.Config{Async: true, BatchTimeout: 10 * time.Second}
	a, b := f.startReplica(t, "A", gc), f.startReplica(t, "B", gc)
	gc.BatchTimeout = 300 * time.Millisecond // C's batches go asynchronous
	c := f.startReplica(t, "C", gc)
	lone := f.newProcess(t, "backfill")
	procs := []*process{a.process, b.process, c.process, lone}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var e errs
	answered := make([]atomic.Int64, 3) // C's batches answered through A, B, C
	for r, rep := range []*replica{a, b} {
		for p := range 2 {
			wg.Go(func() { f.postLoop(stop, rep.url, fmt.Sprintf("outage-r%d-p%d", r, p), 200, &e) })
		}
	}
	wg.Go(func() { f.asyncLoop(stop, c.url, []string{a.url, b.url, c.url}, "outage-async", 400, &e, answered) })
	for w := range 16 {
		wg.Go(func() { f.resolveLoop(stop, lone, fmt.Sprintf("outage-l%d", w), &e) })
	}

	stall := meterStalls(t)
	f.remote.reset(t)
	time.Sleep(3 * time.Second) // shared, before the outage
	f.rds.Stop()
	time.Sleep(time.Second) // every process notices
	from, before := time.Now(), requestCounts(procs)
	// A batch that goes asynchronous while Redis is down stays on C...
	lateIDs := idsFor("outage-late", 300)
	const late = "01b0outage-late:1:1:0:0"
	if code, body, err := call(context.Background(), c.url, late, lateIDs); err != nil || code != http.StatusAccepted {
		t.Errorf("POST to C during the outage: got %d %q %v; want 202", code, body, err)
	}
	time.Sleep(8 * time.Second)
	until, after := time.Now(), requestCounts(procs)
	f.rds.Restart()
	// ... and is answered through A and B once Redis is back.
	if _, err := f.pollUntilDone([]string{a.url, b.url}, late, lateIDs, 30*time.Second); err != nil {
		t.Errorf("batch posted during the outage, polled through A and B: %v", err)
	}
	time.Sleep(3 * time.Second) // shared again
	close(stop)
	wg.Wait()
	e.report(t)

	secs := until.Sub(from).Seconds()
	var rates []string
	for i, p := range procs {
		r := float64(after[i]-before[i]) / secs
		rates = append(rates, fmt.Sprintf("%s %.0f/s", p.name, r))
		if r > 1.05*share*provRate {
			t.Errorf("%s during the outage: got %.0f requests/s; want at most its share, %.0f/s", p.name, r, share*provRate)
		}
	}
	st := f.remote.stats(t)
	_, most := perSecond(st.PerSecond, 4, 13)
	t.Logf("during the outage: %s; busiest second %d. Overall: busiest 1s window %d, 429s %d, stalls up to %v (simulator), %v (this process); C's batches answered through A %d, B %d, C %d",
		strings.Join(rates, ", "), most, st.MaxInSecond, st.Limited, st.Stall, stall.max(), answered[0].Load(), answered[1].Load(), answered[2].Load())
	if st.MaxInSecond > provRate+provBurst {
		t.Errorf("busiest 1-second window: got %d requests; want at most %d", st.MaxInSecond, provRate+provBurst)
	}
	check429s(t, st.Limited, st.Stall, stall.max())
	for _, p := range procs {
		if !p.cl.Up() {
			t.Errorf("%s: Redis still taken as down after it came back", p.name)
		}
		if r := p.client.Rate(); r < 0.9*provRate {
			t.Errorf("%s: rate %.0f/s after the outage; want it back at the full rate", p.name, r)
		}
	}
	// One line each way per process and outage (the provider client's only
	// if it sent a request while Redis was down).
	logs := strings.Split(f.logs.String(), "\n")
	for i, p := range procs {
		for _, l := range []struct {
			line     string
			min, max int
		}{{"redis unreachable", 1, 1}, {"redis reachable again", 1, 1}, {"shared provider budget unreachable", 0, 1}} {
			if after[i] > before[i] && l.min == 0 {
				l.min = 1
			}
			if n := countLines(logs, l.line, "process="+p.name); n < l.min || n > l.max {
				t.Errorf("%s: got %d log lines %q; want %d to %d", p.name, n, l.line, l.min, l.max)
			}
		}
	}
	if t.Failed() {
		t.Logf("logs:\n%s", f.logs.String())
	}
}

func countLines(lines []string, parts ...string) int {
	n := 0
	for _, l := range lines {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(l, p)
		}
		if all {
			n++
		}
	}
	return n
}

func requestCounts(ps []*process) []int64 {
	n := make([]int64, len(ps))
	for i, p := range ps {
		n[i] = p.requests()
	}
	return n
}

// TestResentBatchWaitsForItsOwner: Snowflake re-sends a batch, to another
// replica, while the first is still working on it (synchronously). The
// second waits for the first's answer instead of asking the provider again.
func TestResentBatchWaitsForItsOwner(t *testing.T) {
	f := newFleet(t, sim.Config{Rate: 300, NotFoundRatio: 0.1})
	gc := gateway.Config{BatchTimeout: 20 * time.Second}
	a, b := f.startReplica(t, "A", gc), f.startReplica(t, "B", gc)
	ids := idsFor("resent", 300)
	const batch = "01b0resent:1:1:0:0"
	key := fnPath + " " + batch
	ctx := context.Background()
	type answer struct {
		code int
		body []byte
		err  error
	}
	first := make(chan answer, 1)
	go func() {
		code, body, err := call(ctx, a.url, batch, ids)
		first <- answer{code, body, err}
	}()
	// Wait until A holds the claim; the batch takes about a second.
	for {
		_, _, running, err := b.cl.Jobs().Peek(ctx, key, 0)
		if err != nil {
			t.Fatal(err)
		}
		if running {
			break
		}
		select {
		case got := <-first:
			t.Fatalf("A answered (%d) before its claim was seen", got.code)
		case <-time.After(5 * time.Millisecond): // A is decoding the batch
		}
	}
	code, body, err := call(ctx, b.url, batch, ids)
	if err != nil || code != http.StatusOK {
		t.Fatalf("re-sent to B: got %d %q %v; want 200", code, body, err)
	}
	if err := f.check(body, ids); err != nil {
		t.Fatalf("B's answer: %v", err)
	}
	got := <-first
	if got.err != nil || got.code != http.StatusOK {
		t.Fatalf("A: got %d %v; want 200", got.code, got.err)
	}
	if err := f.check(got.body, ids); err != nil {
		t.Fatalf("A's answer: %v", err)
	}
	if n := f.sim.Total(); n != len(ids) || b.requests() != 0 {
		t.Errorf("provider requests: %d (B sent %d); want %d, all from A", n, b.requests(), len(ids))
	}
}
