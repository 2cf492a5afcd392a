package bench

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteText writes the report as tables: each figure, its bound, and how
// the bound is made.
func (r *Report) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	r.writeHeader(tw)
	if g := r.Gateway; g != nil {
		r.writeGateway(tw, g)
	}
	if m := r.Mixed; m != nil {
		r.writeMixed(tw, m)
	}
	if b := r.Backfill; b != nil {
		r.writeBackfill(tw, b)
	}
	if err := r.Err(); err != nil {
		fmt.Fprintf(tw, "\nFAILED: %v\n", err)
	} else {
		fmt.Fprintln(tw, "\nevery checked row was right")
	}
	return tw.Flush()
}

func (r *Report) writeHeader(w io.Writer) {
	c, p, m := r.Config, r.Config.Provider, r.Machine
	fmt.Fprintf(w, "snowgate bench, %s, %s\n", r.Started.UTC().Format(time.RFC3339), secs(r.Seconds))
	fmt.Fprintf(w, "provider: SIMULATED (not a real API): %s, latency %v ±%v; IDs %s not found, %s no location, %s always failing; requests %s 5xx, %s truncated, %s hanging, %s slow\n",
		rateText(p.Rate, p.Bucket()), p.Latency, p.Jitter, pct(p.NotFoundRatio), pct(p.NoLocationRatio),
		pct(p.PermanentFailRatio), pct(p.ErrorRate), pct(p.TruncateRate), pct(p.HangRate), pct(p.SlowRate))
	fmt.Fprintf(w, "snowgate: %s, %d provider requests in flight at most\n", rateText(c.Rate, c.Burst), c.Concurrency)
	if !c.NoBaseline {
		fmt.Fprintf(w, "baseline: blocks of %s IDs (LIMIT/OFFSET), a fresh pool of %d connections per block, all requests at once, %v timeout, no retry, no limiter\n",
			num(c.BaselineBlock), c.BaselineConns, c.BaselineTimeout)
	}
	fmt.Fprintf(w, "machine: %d CPUs (GOMAXPROCS %d), %s memory, %s/%s, %s; load average %s at start, %s at end\n",
		m.CPUs, m.GOMAXPROCS, bytesText(m.MemTotalBytes), m.OS, m.Arch, m.GoVersion, m.LoadStart, m.LoadEnd)
}

func (r *Report) writeGateway(w io.Writer, g *GatewayReport) {
	c := r.Config
	fmt.Fprintf(w, "\nGATEWAY: %s rows (%s distinct, %s repeats) in %s batches of %s, %d in parallel, gzip, async after %v\n",
		num(g.Rows), num(g.Distinct), pct(c.RepeatRatio), num(g.Batches), num(g.BatchSize), g.Parallel, c.AsyncAfter)
	fmt.Fprintln(w, "  figure\tvalue\tbound\thow the bound is made")
	capText := fmt.Sprintf("cap = min(rate, %d in flight / %v) = %s/s", c.Concurrency, c.Provider.Latency, num(g.ProviderCap))
	row(w, "hot-cache rows/s", num(g.Hot.RowsPerSec), num(g.HandlerRowsPerSecond),
		"the gateway's handler alone, same gzip batches and cores (no TCP, no client decoding and checking)")
	if g.HotLeftOut > 0 {
		row(w, "  rows left out of the hot pass", num(g.HotLeftOut), "", "IDs the provider always fails: failures are not cached")
	}
	row(w, "cold pass rows/s", num(g.Cold.RowsPerSec), boundNum(g.ColdRowsPerSecondBound), "rows / (distinct / cap), "+capText)
	row(w, "cold batch latency p50 / p99", secs(g.Cold.LatencyP50)+" / "+secs(g.Cold.LatencyP99), ">= "+secs(g.ColdLatencyBound),
		fmt.Sprintf("%d batches x %s rows x %s new / cap (at least one latency)", min(g.Parallel, g.Batches), num(g.BatchSize),
			pct(float64(g.Distinct)/float64(g.Rows))))
	writeProvider(w, g.Provider, "cold pass")
	row(w, "hot pass provider calls", num(g.HotProviderCalls), "0", "every ID is cached")
	for _, p := range []struct {
		name string
		pr   PassReport
	}{{"cold", g.Cold}, {"hot", g.Hot}} {
		row(w, p.name+" rows checked", fmt.Sprintf("%s: %s right, %s failed, %s wrong, %s missing", num(p.pr.Right+p.pr.Failed+p.pr.Wrong+p.pr.Missing),
			num(p.pr.Right), num(p.pr.Failed), num(p.pr.Wrong), num(p.pr.Missing)), "0 wrong", "each row against the simulator")
	}
	row(w, "driver retries", fmt.Sprintf("%s gateway 429s, %s 5xx, %s network; %s batches went async (202)",
		num(g.Cold.Gateway429s+g.Hot.Gateway429s), num(g.Cold.Retries5xx+g.Hot.Retries5xx),
		num(g.Cold.RetriesNet+g.Hot.RetriesNet), num(g.Cold.Async+g.Hot.Async)), "", "same batch id on every retry and poll")
	if b := g.Baseline; b != nil {
		writeBaseline(w, b, g.Ratio, "cold pass rows/s")
	}
}

func (r *Report) writeBackfill(w io.Writer, b *BackfillReport) {
	c := r.Config
	how := "in this process"
	if b.Child {
		how = "as a child process: " + strings.Join(c.LoaderCommand, " ")
	}
	fmt.Fprintf(w, "\nBACKFILL: %s distinct IDs of MASTER_TABLE (DuckDB) into STANDARDIZED_LOCATIONS, %s\n", num(b.IDs), how)
	fmt.Fprintln(w, "  figure\tvalue\tbound\thow the bound is made")
	row(w, "backfill IDs/s", num(b.IDsPerSecond), boundNum(b.Bound),
		fmt.Sprintf("min(rate, %d in flight / %v)", c.Concurrency, c.Provider.Latency))
	row(w, "  until 99% of IDs", num(b.IDsPerSecTo99), boundNum(b.Bound),
		"the last 1% took "+secs(b.TailSeconds)+": retries, and IDs that always fail (every attempt, with backoff)")
	row(w, "committed", fmt.Sprintf("%s in %s: %s found, %s not found, %s no location, %s failed", num(b.Committed),
		secs(b.Seconds), num(b.Found), num(b.NotFound), num(b.NoLocation), num(b.Failed)), num(b.IDs), "every ID")
	row(w, "peak RSS of the loader", bytesText(b.PeakRSSBytes), "", b.RSSSource+"; DuckDB's memory_limit is 96MB")
	if b.LoaderCPUSeconds > 0 && b.Committed > 0 {
		row(w, "loader CPU", fmt.Sprintf("%s (%s per 1,000 IDs)", secs(b.LoaderCPUSeconds),
			secs(b.LoaderCPUSeconds*1000/float64(b.Committed))), "", "user + system time of the child")
	}
	writeProvider(w, b.Provider, "backfill")
	row(w, "tables checked", fmt.Sprintf("%s: %s right, %s failed, %s wrong", num(b.Check.Checked), num(b.Check.Right),
		num(b.Check.Failed), num(b.Check.Wrong)), "0 wrong", "each stored ID against the simulator, no duplicates, none missing")
	if bl := b.Baseline; bl != nil {
		writeBaseline(w, bl, b.Ratio, "backfill IDs/s")
	}
}

func writeProvider(w io.Writer, p ProviderReport, during string) {
	limit, busiest := "unlimited", "none"
	if p.Limit > 0 {
		limit, busiest = num(p.Limit)+" req/s", num(p.BusiestBound)
	}
	row(w, "provider rate ("+during+")", num(p.RatePerSecond)+" req/s", limit, "the provider's limit")
	row(w, "  until 99% of requests", num(p.RateTo99)+" req/s", limit,
		"the last 1% took "+secs(p.TailSeconds)+": retries with backoff of a few failing IDs, which hold their batch or worker")
	row(w, "provider 429s", num(p.Throttled), "0", "")
	row(w, "busiest 1-second window", num(p.BusiestSecond), busiest, "limit + burst")
	row(w, "provider calls per distinct ID", strconv.FormatFloat(p.CallsPerID, 'f', 3, 64),
		strconv.FormatFloat(p.CallsPerIDExpected, 'f', 3, 64), "expected from the fault rates, no 429")
}

func writeBaseline(w io.Writer, b *BaselineReport, ratio float64, ours string) {
	row(w, "baseline good rows/s", num(b.GoodPerSecond), "", fmt.Sprintf("%s of %s rows in %s; %d blocks", num(b.Good),
		num(b.Rows), secs(b.Seconds), b.Blocks))
	row(w, "baseline rows lost", fmt.Sprintf("%s (%s)", num(b.Lost), pct(float64(b.Lost)/math.Max(1, float64(b.Rows)))), "0", lostText(b.LostTo))
	row(w, "baseline provider 429s", num(b.Provider.Throttled), "0",
		fmt.Sprintf("busiest 1-second window %s; %s requests", num(b.Provider.BusiestSecond), num(b.Provider.Requests)))
	r := "no baseline row succeeded"
	if ratio > 0 {
		r = strconv.FormatFloat(ratio, 'f', 2, 64) + "x"
	}
	row(w, "snowgate / baseline", r, "", ours+" over baseline good rows/s")
}

func lostText(m map[string]int64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + ": " + num(m[k])
	}
	if len(parts) == 0 {
		return "no retry: every failed request is a lost row"
	}
	return strings.Join(parts, ", ")
}

func row(w io.Writer, figure, value, bound, how string) {
	fmt.Fprintf(w, "  %s\t%s\t%s\t%s\n", figure, value, bound, how)
}

func rateText(rate float64, burst int) string {
	if rate <= 0 {
		return "rate unlimited"
	}
	return fmt.Sprintf("rate %s/s, burst %d", num(rate), burst)
}

func boundNum(v float64) string {
	if v <= 0 {
		return "none"
	}
	return num(v)
}

// num formats a count or rate with thousands separators; rates under 10
// keep one decimal.
func num[T int | int64 | float64](v T) string {
	f := float64(v)
	if f != math.Trunc(f) && math.Abs(f) < 10 {
		return strconv.FormatFloat(f, 'f', 1, 64)
	}
	s := strconv.FormatInt(int64(math.Round(f)), 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func pct(f float64) string { return strconv.FormatFloat(f*100, 'g', 3, 64) + "%" }

func secs(s float64) string {
	switch {
	case s >= 10:
		return strconv.FormatFloat(s, 'f', 1, 64) + " s"
	case s >= 1:
		return strconv.FormatFloat(s, 'f', 2, 64) + " s"
	}
	return strconv.FormatFloat(s*1000, 'f', 1, 64) + " ms"
}

func bytesText(n int64) string {
	switch {
	case n <= 0:
		return "unknown"
	case n >= 1<<30:
		return strconv.FormatFloat(float64(n)/(1<<30), 'f', 1, 64) + " GiB"
	}
	return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) + " MiB"
}
