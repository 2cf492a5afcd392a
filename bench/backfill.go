package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/snowgate/snowgate/cache"
	"github.com/snowgate/snowgate/loader"
	"github.com/snowgate/snowgate/loader/duckdb"
	"github.com/snowgate/snowgate/locapi"
	"github.com/snowgate/snowgate/stack"
)

// BackfillReport is the loader's run over MASTER_TABLE.
type BackfillReport struct {
	IDs int `json:"ids"`
	// Child is true when the loader ran as a child process (snowgate
	// backfill); its figures are then the ones it logged.
	Child   bool    `json:"child"`
	Seconds float64 `json:"seconds"`
	// IDsPerSecond is committed IDs per second; Bound is
	// min(rate limit, concurrency / latency).
	IDsPerSecond float64 `json:"ids_per_sec"`
	Bound        float64 `json:"bound_ids_per_sec"`
	// IDsPerSecTo99 is the rate until 99% of the IDs were resolved, and
	// TailSeconds how long the last 1% took (retries of failing IDs).
	IDsPerSecTo99 float64 `json:"ids_per_sec_to_99"`
	TailSeconds   float64 `json:"tail_s"`
	Committed     int64   `json:"committed"`
	Found         int64   `json:"found"`
	NotFound      int64   `json:"not_found"`
	NoLocation    int64   `json:"no_location"`
	Failed        int64   `json:"failed"`
	Abandoned     int64   `json:"abandoned"`
	// PeakRSSBytes is the loader's peak resident memory; RSSSource says
	// how it was read: the child's VmHWM, or this process's VmHWM when the
	// loader ran in process.
	PeakRSSBytes int64  `json:"peak_rss_bytes"`
	RSSSource    string `json:"rss_source"`
	// LoaderCPUSeconds is the child's user+system CPU time (0 in process):
	// with IDs it gives the CPU one ID costs the loader.
	LoaderCPUSeconds float64        `json:"loader_cpu_s"`
	Check            CheckReport    `json:"check"`
	Provider         ProviderReport `json:"provider"`
	// RowsDone counts the provider's usable answers: with distinct IDs,
	// one per ID resolved.
	RowsDone []Point         `json:"rows_done"`
	Baseline *BaselineReport `json:"baseline,omitempty"`
	// Ratio is IDsPerSecond over the baseline's good rows per second.
	Ratio float64 `json:"ratio"`
}

// CheckReport is what reading the tables back found, ID by ID, against the
// simulator.
type CheckReport struct {
	Checked int64 `json:"checked"`
	Right   int64 `json:"right"`
	// Failed IDs are in the failures table although the provider has an
	// answer for them: lost, but said so. Wrong IDs disagree with the
	// simulator, are duplicated, or are not in any table (silently lost).
	Failed   int64    `json:"failed"`
	Wrong    int64    `json:"wrong"`
	Examples []string `json:"examples,omitempty"`
}

func (c *CheckReport) wrong(format string, args ...any) {
	c.Wrong++
	if len(c.Examples) < 5 {
		c.Examples = append(c.Examples, fmt.Sprintf(format, args...))
	}
}

// loaderRun is what one backfill run reported about itself.
type loaderRun struct {
	seconds                                float64
	committed, found, notFound, noLocation int64
	failed, abandoned                      int64
	interrupted                            bool
	peakRSS                                int64
	rssSource                              string
	cpuSeconds                             float64
	child                                  bool
}

func (r *runner) backfillPhase(ctx context.Context) (*BackfillReport, error) {
	n := r.cfg.BackfillRows
	r.log.Info("bench phase", "phase", "backfill", "ids", n, "child", len(r.cfg.LoaderCommand) > 0)
	if err := makeMaster(ctx, r.db, n); err != nil {
		return nil, fmt.Errorf("backfill: %w", err)
	}
	prov, err := startProvider(ctx, r.cfg.Provider, r.log)
	if err != nil {
		return nil, fmt.Errorf("backfill: %w", err)
	}
	defer prov.Close()
	smp := startSampler("backfill", n, func() float64 { return float64(prov.answers.Load()) }, r.log)
	start := time.Now()
	run, err := r.runLoader(ctx, prov)
	end := time.Now()
	points := smp.finish()
	if err != nil {
		return nil, fmt.Errorf("backfill: %w", err)
	}
	rep := &BackfillReport{
		IDs: n, Child: run.child, Seconds: run.seconds, Committed: run.committed, Found: run.found,
		NotFound: run.notFound, NoLocation: run.noLocation, Failed: run.failed, Abandoned: run.abandoned,
		PeakRSSBytes: run.peakRSS, RSSSource: run.rssSource, LoaderCPUSeconds: run.cpuSeconds, RowsDone: points,
		Bound:    throughputCap(r.cfg.Rate, r.cfg.Concurrency, r.cfg.Provider.Latency),
		Provider: r.providerReport(prov, start, end, n),
	}
	if rep.Seconds > 0 {
		rep.IDsPerSecond = float64(rep.Committed) / rep.Seconds
	}
	rep.IDsPerSecTo99, rep.TailSeconds = to99(points)
	if err := r.checkBackfill(ctx, &oracle{sim: prov.Server}, n, &rep.Check); err != nil {
		return nil, fmt.Errorf("backfill: check: %w", err)
	}
	if !r.cfg.NoBaseline {
		if rep.Baseline, err = r.baseline(ctx, masterTable, n, n); err != nil {
			return nil, err
		}
		rep.Ratio = ratio(rep.IDsPerSecond, rep.Baseline.GoodPerSecond)
	}
	return rep, nil
}

func (r *runner) runLoader(ctx context.Context, prov *provider) (loaderRun, error) {
	if len(r.cfg.LoaderCommand) > 0 {
		return r.loaderChild(ctx, prov)
	}
	return r.loaderInProcess(ctx, prov)
}

// loaderInProcess runs the loader as `snowgate backfill` builds it, in this
// process: peak RSS is then this whole process's.
func (r *runner) loaderInProcess(ctx context.Context, prov *provider) (loaderRun, error) {
	p, err := stack.New(stack.Config{
		Provider:    locapi.Config{URL: prov.template(), Rate: r.cfg.Rate, Burst: r.cfg.Burst},
		Cache:       cache.Config{Size: 10_000},
		Concurrency: r.cfg.Concurrency,
	}, prometheus.NewRegistry())
	if err != nil {
		return loaderRun{}, err
	}
	defer func() { _ = p.Close() }() // no Redis: Close has no error to give
	tables, err := loader.NewTables("", "", "")
	if err != nil {
		return loaderRun{}, err
	}
	wh, err := duckdb.Open(ctx, r.db, tables)
	if err != nil {
		return loaderRun{}, err
	}
	defer func() { _ = wh.Close() }() // checked below once the run succeeded
	l, err := loader.New(wh, p.Resolver, loader.Config{OnProgress: func(loader.Progress) {}}, nil)
	if err != nil {
		return loaderRun{}, err
	}
	sum, err := l.Run(ctx)
	if err != nil {
		return loaderRun{}, err
	}
	if err := wh.Close(); err != nil {
		return loaderRun{}, err
	}
	return loaderRun{
		seconds: sum.Duration.Seconds(), committed: sum.Committed, found: sum.Found, notFound: sum.NotFound,
		noLocation: sum.NoLocation, failed: sum.Failed, abandoned: sum.Abandoned, interrupted: sum.Interrupted,
		peakRSS: peakRSSSelf(), rssSource: "bench process VmHWM",
	}, nil
}

// loaderChild runs LoaderCommand (snowgate backfill) against the provider
// and reads its summary line and its peak RSS.
func (r *runner) loaderChild(ctx context.Context, prov *provider) (loaderRun, error) {
	argv := r.cfg.LoaderCommand
	args := append(append([]string(nil), argv[1:]...),
		"--warehouse", "duckdb:"+r.db, "--upstream-url", prov.template(),
		"--rate", strconv.FormatFloat(r.cfg.Rate, 'f', -1, 64), "--burst", strconv.Itoa(r.cfg.Burst),
		"--upstream-concurrency", strconv.Itoa(r.cfg.Concurrency), "--progress", "none")
	cmd := exec.CommandContext(ctx, argv[0], args...)
	cmd.Env = childEnv(os.Environ())
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// An interrupt lets the loader commit what it resolved and exit.
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = time.Minute
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return loaderRun{}, fmt.Errorf("%s: %w", strings.Join(argv, " "), err)
	}
	hwm := watchHWM(cmd.Process.Pid)
	err := cmd.Wait()
	peak := hwm()
	wall := time.Since(start)
	if err != nil {
		return loaderRun{}, fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, tail(stderr.String(), 2000))
	}
	run, err := parseBackfillDone(stderr.Bytes())
	if err != nil {
		return loaderRun{}, fmt.Errorf("%s: %w; its output: %s", strings.Join(argv, " "), err, tail(stdout.String(), 2000))
	}
	if run.seconds <= 0 {
		run.seconds = wall.Seconds()
	}
	run.child = true
	run.cpuSeconds = (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds()
	run.peakRSS, run.rssSource = peak, "child VmHWM, read every 100ms"
	if peak == 0 {
		// No /proc: rusage, which on Linux would also count this process's
		// own peak (see watchHWM).
		run.peakRSS, run.rssSource = peakRSSChild(cmd.ProcessState), "child maxrss (rusage)"
	}
	return run, nil
}

// watchHWM reads the VmHWM (peak RSS) of process pid every 100ms until the
// returned function is called, which returns the last reading. The child's
// rusage maxrss is not used on Linux: Go starts a child with vfork
// semantics, and exec records the parent's memory high-water mark into the
// child's maxrss, so it would report the bench's own peak. VmHWM belongs to
// the child's own address space; being a high-water mark, only growth in the
// child's last 100ms can be missed.
func watchHWM(pid int) func() int64 {
	path := fmt.Sprintf("/proc/%d/status", pid)
	var peak atomic.Int64
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			if kb := procKB(path, "VmHWM:"); kb*1024 > peak.Load() {
				peak.Store(kb * 1024)
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	return func() int64 { close(stop); <-done; return peak.Load() }
}

// childEnv is the environment without SNOWGATE_* settings (every flag has
// an environment twin, and a user's SNOWGATE_SOURCE_TABLE must not steer
// the bench) and with the log level that prints the summary line.
func childEnv(env []string) []string {
	out := make([]string, 0, len(env)+1)
	for _, kv := range env {
		if !strings.HasPrefix(kv, "SNOWGATE_") {
			out = append(out, kv)
		}
	}
	return append(out, "SNOWGATE_LOG_LEVEL=info")
}

// parseBackfillDone finds the "backfill done" JSON log line of snowgate
// backfill: its summary, as loader.Summary.LogAttrs names the fields.
func parseBackfillDone(stderr []byte) (loaderRun, error) {
	sc := bufio.NewScanner(bytes.NewReader(stderr))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		var l struct {
			Msg         string `json:"msg"`
			Committed   int64  `json:"committed"`
			Found       int64  `json:"found"`
			NotFound    int64  `json:"not_found"`
			NoLocation  int64  `json:"no_location"`
			Failed      int64  `json:"failed"`
			Abandoned   int64  `json:"abandoned"`
			Duration    int64  `json:"duration"` // slog's JSON handler writes nanoseconds
			Interrupted bool   `json:"interrupted"`
		}
		if json.Unmarshal(sc.Bytes(), &l) != nil || l.Msg != "backfill done" {
			continue
		}
		return loaderRun{
			seconds: time.Duration(l.Duration).Seconds(), committed: l.Committed, found: l.Found,
			notFound: l.NotFound, noLocation: l.NoLocation, failed: l.Failed, abandoned: l.Abandoned,
			interrupted: l.Interrupted,
		}, nil
	}
	return loaderRun{}, errors.New(`no "backfill done" line in its log`)
}

// checkBackfill reads the loader's three tables and checks every ID of
// MASTER_TABLE against the simulator: found rows field by field, misses by
// outcome, failures by whether the provider always fails them, and that
// each ID is in exactly one table once.
func (r *runner) checkBackfill(ctx context.Context, o *oracle, n int, ck *CheckReport) error {
	db, err := openDuck(r.db)
	if err != nil {
		return err
	}
	defer func() { _ = db.Close() }() // only read: nothing to lose
	seen := make([]bool, n)
	if err := checkFound(ctx, db, loader.DefaultTargetTable, o, ck, seen); err != nil {
		return err
	}
	if err := checkMisses(ctx, db, o, ck, seen); err != nil {
		return err
	}
	if err := checkFailures(ctx, db, o, ck, seen); err != nil {
		return err
	}
	for i, ok := range seen {
		if !ok {
			ck.Checked++
			ck.wrong("%s: in no table (lost without a trace)", backfillID(i))
		}
	}
	return nil
}

func backfillID(i int) string { return fmt.Sprintf("%s%0*d", backfillPrefix, backfillDigits, i) }

// mark records id as seen, reporting a duplicate or an ID not in
// MASTER_TABLE. seen nil skips the bookkeeping (the baseline's table
// repeats IDs by design).
func mark(seen []bool, id string, ck *CheckReport) bool {
	if seen == nil {
		return true
	}
	i, err := strconv.Atoi(strings.TrimPrefix(id, backfillPrefix))
	switch {
	case err != nil || !strings.HasPrefix(id, backfillPrefix) || i < 0 || i >= len(seen):
		ck.wrong("%q: not an ID of %s", id, masterTable)
		return false
	case seen[i]:
		ck.wrong("%s: stored twice", id)
		return false
	}
	seen[i] = true
	return true
}
