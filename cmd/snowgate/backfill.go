//go:build !slim

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/snowgate/snowgate/loader"
	"github.com/snowgate/snowgate/loader/duckdb"
	"github.com/snowgate/snowgate/loader/snowflake"
)

const backfillSynopsis = `Resolve every ID of the source table (or file) through the provider into the
target table, resumably: committed IDs are skipped on the next run, not found and
no location are recorded in <TARGET>_MISSES, failures in <TARGET>_FAILURES.
--warehouse duckdb:PATH (embedded) or snowflake (connection from SNOWFLAKE_DSN
or SNOWFLAKE_ACCOUNT, _USER, ...). With --via, IDs are resolved by a running
'snowgate serve' (run it with --on-row-error error --not-found object) instead
of in this process. Ctrl-C stops reading, commits what is in flight and says
how to resume.`

// backfillCacheSize replaces the resolver's default cache size: a backfill
// asks for each ID once, so a big cache only costs memory.
const backfillCacheSize = 10_000

type backfillFlags struct {
	warehouse, source, idColumn, target, sourceFile string
	via, viaAuthHeader                              string
	viaBatch, viaInFlight                           int
	progress                                        string
	cfg                                             loader.Config
}

func addBackfillFlags(fs *flag.FlagSet) *backfillFlags {
	f := &backfillFlags{}
	fs.StringVar(&f.warehouse, "warehouse", "duckdb:snowgate.duckdb", "duckdb:PATH[?setting=value&...] or snowflake")
	fs.StringVar(&f.source, "source-table", loader.DefaultSourceTable, "table holding the IDs (DB.SCHEMA.TABLE allowed)")
	fs.StringVar(&f.idColumn, "id-column", loader.DefaultIDColumn, "column of the source holding the IDs (text or integer)")
	fs.StringVar(&f.target, "target-table", loader.DefaultTargetTable, "table receiving the locations; _MISSES and _FAILURES tables sit beside it")
	fs.StringVar(&f.sourceFile, "source-file", "", "read the IDs from this CSV (with a header) or Parquet file instead of --source-table (DuckDB only)")
	numVar(fs, &f.cfg.Limit, "limit", 0, atLeast[int64](0).zeroMeans("all"), "resolve at most this many IDs (0 = all)")
	fs.BoolVar(&f.cfg.DryRun, "dry-run", false, "count the IDs that would be resolved: no provider calls, no rows written (missing result tables are still created, empty)")
	numVar(fs, &f.cfg.RefreshOlderThan, "refresh-older-than", 0, atLeast[time.Duration](0).zeroMeans("off"),
		"also re-resolve IDs resolved longer ago than this, e.g. 720h (0 = off)")
	fs.BoolVar(&f.cfg.RetryFailed, "retry-failed", false, "resolve only the IDs in the failures table")
	// The loader's keyset paging needs two IDs a page at least.
	numVar(fs, &f.cfg.PageSize, "page-size", 5000, between(2, 1_000_000), "IDs read from the warehouse per query")
	numVar(fs, &f.cfg.CommitRows, "commit-rows", 5000, between(1, 1_000_000), "commit after this many resolved IDs...")
	numVar(fs, &f.cfg.CommitInterval, "commit-interval", time.Second, between(time.Millisecond, time.Hour),
		"...or this long after the last commit")
	numVar(fs, &f.cfg.DrainTimeout, "drain-timeout", 30*time.Second, between(time.Millisecond, time.Hour),
		"on Ctrl-C, how long lookups in flight may finish before they are dropped")
	fs.StringVar(&f.via, "via", "", "resolve through a running 'snowgate serve' at this URL (e.g. http://127.0.0.1:8080/resolve_location)")
	fs.StringVar(&f.viaAuthHeader, "via-auth-header", "", "header carrying $SNOWGATE_AUTH_SECRET to the --via gateway")
	numVar(fs, &f.viaBatch, "via-batch-size", 500, between(1, 100_000), "IDs per batch sent to the --via gateway")
	numVar(fs, &f.viaInFlight, "via-in-flight", 8, between(1, 1024), "batches in flight to the --via gateway")
	enumVar(fs, &f.progress, "progress", "auto", progressModes, "auto (a bar on a terminal, log lines otherwise), bar, log or none")
	return f
}

// progressModes are the values of --progress, for backfill and demo.
var progressModes = []string{"auto", "bar", "log", "none"}

// newBackfillFlags declares backfill's flags: its own and the resolver's.
func newBackfillFlags(stdout io.Writer) (*flag.FlagSet, *backfillFlags, *resolverFlags) {
	fs := newFlagSet("backfill", backfillSynopsis, stdout)
	f := addBackfillFlags(fs)
	rf := addResolverFlags(fs)
	rf.cacheSize = backfillCacheSize
	if cs := fs.Lookup("cache-size"); cs != nil {
		cs.DefValue = strconv.Itoa(backfillCacheSize)
	}
	return fs, f, rf
}

// parseBackfill reads backfill's settings and checks them, touching
// nothing: no warehouse is opened before they are known to be right.
func parseBackfill(args []string, stdout io.Writer) (*backfillFlags, *resolverFlags, loader.Tables, error) {
	fs, f, rf := newBackfillFlags(stdout)
	if err := parseFlags(fs, args); err != nil {
		return nil, nil, loader.Tables{}, err
	}
	tables, err := loader.NewTables(f.source, f.idColumn, f.target)
	if err != nil {
		return nil, nil, loader.Tables{}, usagef("backfill: %v", err)
	}
	tables.SourceFile = f.sourceFile
	if f.cfg.RetryFailed && f.cfg.RefreshOlderThan > 0 {
		return nil, nil, loader.Tables{}, usagef("backfill: --retry-failed replays only failures; it cannot be combined with --refresh-older-than %v",
			f.cfg.RefreshOlderThan)
	}
	if u, err := url.Parse(f.via); f.via != "" && (err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "") {
		return nil, nil, loader.Tables{}, usagef("backfill: --via %q: want http://host/path or https://host/path", f.via)
	}
	if f.viaAuthHeader != "" && os.Getenv("SNOWGATE_AUTH_SECRET") == "" {
		return nil, nil, loader.Tables{}, usagef("backfill: --via-auth-header needs SNOWGATE_AUTH_SECRET")
	}
	return f, rf, tables, nil
}

// runBackfill runs one backfill and prints its summary. An interrupted run
// is not an error: it prints how to resume.
func runBackfill(ctx context.Context, args []string, stdout io.Writer, logger *slog.Logger) (err error) {
	f, rf, tables, err := parseBackfill(args, stdout)
	if err != nil {
		return err
	}
	finish := f.startProgress(&f.cfg)
	if finish == nil {
		return usagef("backfill: --progress %q: want %s", f.progress, orList(progressModes))
	}

	wh, err := openWarehouse(ctx, f.warehouse, tables, logger)
	if err != nil {
		return backfillError(err)
	}
	// DuckDB's file and Snowflake's session end here: a Close that fails
	// fails the run, whose rows may not all be where it said.
	defer func() {
		if cerr := wh.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("backfill: close warehouse: %w", cerr))
		}
	}()
	res, closeRes, costs, err := f.resolver(rf, logger)
	if err != nil {
		return fmt.Errorf("backfill: %w", err)
	}
	defer closeRes()

	l, err := loader.New(wh, res, f.cfg, logger)
	if err != nil {
		return usagef("backfill: %v", err)
	}
	sum, err := l.Run(ctx)
	finish()
	if err != nil && sum.Read == 0 { // failed before it started: nothing to sum up
		return backfillError(err)
	}
	printSummary(stdout, sum, args, costs(sum))
	logger.LogAttrs(context.Background(), slog.LevelInfo, "backfill done", sum.LogAttrs()...)
	if err != nil {
		return fmt.Errorf("backfill: %w (the %d IDs committed are kept; re-run the same command to resume)", err, sum.Committed)
	}
	return nil
}

// sourceFlags name the flag that fixes each kind of *loader.SourceError.
var sourceFlags = map[loader.SourceKind]string{
	loader.SourceTable: "--source-table", loader.SourceColumn: "--id-column", loader.SourceFile: "--source-file",
}

// backfillError wraps an error of the warehouse. A wrong source table, ID
// column or file is bad configuration, not a failed run: the warehouse has
// created nothing, so it is a usage error naming the flag to fix.
func backfillError(err error) error {
	var se *loader.SourceError
	if errors.As(err, &se) {
		return usagef("backfill: %s: %v", sourceFlags[se.Kind], err)
	}
	return fmt.Errorf("backfill: %w", err)
}

// openWarehouse parses --warehouse. A Snowflake configuration that cannot
// work (a variable missing, a key file unreadable) is a usage error.
func openWarehouse(ctx context.Context, spec string, tables loader.Tables, logger *slog.Logger) (loader.Warehouse, error) {
	switch {
	case strings.HasPrefix(spec, "duckdb:"):
		return duckdb.Open(ctx, strings.TrimPrefix(spec, "duckdb:"), tables)
	case spec == "snowflake":
		if tables.SourceFile != "" {
			return nil, fmt.Errorf("%w: --source-file works with DuckDB only", errUsage)
		}
		if ignored := snowflake.IgnoredByDSN(os.Getenv); len(ignored) > 0 {
			logger.WarnContext(ctx, "SNOWFLAKE_DSN is set, so these variables are ignored", "ignored", ignored)
		}
		dc, err := snowflake.ConfigFromEnv(os.Getenv)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", errUsage, err)
		}
		return snowflake.OpenConfig(ctx, dc, snowflake.Config{Tables: tables})
	}
	return nil, fmt.Errorf("%w: --warehouse %q: want duckdb:PATH or snowflake", errUsage, spec)
}

// resolver builds the in-process resolver stack, or the client of a
// gateway with --via; either brings its own fan-out (ResolveEach), sized
// by --upstream-concurrency or by --via-batch-size and --via-in-flight.
// costs says what the run cost, in the figures this process can know.
func (f *backfillFlags) resolver(rf *resolverFlags, logger *slog.Logger) (res loader.Resolver, closeRes func(), costs func(loader.Summary) string, err error) {
	if f.via == "" {
		p, err := rf.stack(prometheus.NewRegistry(), logger)
		if err != nil {
			return nil, nil, nil, err
		}
		f.cfg.ProviderStats = func() loader.ProviderStats {
			s := p.Client.Stats()
			return loader.ProviderStats{Calls: s.Requests, Throttled: s.Throttled}
		}
		// The rows are in the warehouse by then: a Redis pool that closes
		// badly changes none of them.
		return p.Resolver, func() { _ = p.Close() }, providerCosts, nil
	}
	vc := loader.ViaConfig{BatchSize: f.viaBatch, InFlight: f.viaInFlight, MaxIDLen: rf.maxIDLen}
	if f.viaAuthHeader != "" {
		secret := os.Getenv("SNOWGATE_AUTH_SECRET")
		if secret == "" {
			return nil, nil, nil, usagef("--via-auth-header needs SNOWGATE_AUTH_SECRET")
		}
		vc.Headers = map[string]string{f.viaAuthHeader: secret}
	}
	v, err := loader.NewVia(f.via, vc)
	if err != nil {
		return nil, nil, nil, usagef("--via %q: %v", f.via, err)
	}
	costs = func(loader.Summary) string {
		s := v.Stats()
		return fmt.Sprintf("gateway batches %d, retries %d, 429s %d", s.Batches, s.Retries, s.Throttled)
	}
	return v, func() { _ = v.Close() }, costs, nil // Via.Close always returns nil
}

// providerCosts are the provider's figures of an in-process run.
func providerCosts(s loader.Summary) string {
	return fmt.Sprintf("provider requests %d, 429s %d", s.Provider.Calls, s.Provider.Throttled)
}

// startProgress sets cfg.OnProgress for --progress and returns what to call
// once the run is over. Log lines are the loader's default.
func (f *backfillFlags) startProgress(cfg *loader.Config) (finish func()) {
	mode := f.progress
	if mode == "auto" {
		mode = "log"
		if term.IsTerminal(int(os.Stderr.Fd())) {
			mode = "bar"
		}
	}
	switch mode {
	case "none":
		cfg.OnProgress = func(loader.Progress) {}
	case "log":
	case "bar":
		// Only the loader's reporter goroutine touches bar until Run returns.
		var bar *progressbar.ProgressBar
		cfg.ProgressInterval = 250 * time.Millisecond
		cfg.OnProgress = func(p loader.Progress) {
			if bar == nil {
				bar = progressbar.NewOptions64(p.Total, progressbar.OptionSetWriter(os.Stderr),
					progressbar.OptionShowCount(), progressbar.OptionShowIts(), progressbar.OptionSetItsString("ids"),
					progressbar.OptionSetPredictTime(true), progressbar.OptionThrottle(200*time.Millisecond),
					progressbar.OptionFullWidth())
			}
			if f.via != "" { // the provider's 429s are the gateway's, not known here
				bar.Describe(fmt.Sprintf("hits %d | failed %d", p.CacheHits, p.Failed))
			} else {
				bar.Describe(fmt.Sprintf("hits %d | 429s %d | failed %d", p.CacheHits, p.Provider.Throttled, p.Failed))
			}
			_ = bar.Set64(p.Done)
		}
		return func() {
			if bar != nil {
				_ = bar.Finish()
				fmt.Fprintln(os.Stderr)
			}
		}
	default:
		return nil
	}
	return func() {}
}

// printSummary prints the summary line; costs are the run's request
// figures (providerCosts, or the gateway's with --via).
func printSummary(w io.Writer, s loader.Summary, args []string, costs string) {
	if s.DryRun {
		fmt.Fprintf(w, "dry run: %d IDs would be resolved\n", s.Pending)
		return
	}
	fmt.Fprintf(w, "backfill: %d of %d pending IDs committed in %s (%.0f IDs/s): found %d, not found %d, no location %d, failed %d; cache hits %d; %s\n",
		s.Committed, s.Pending, s.Duration.Round(time.Millisecond), s.Rate(), s.Found, s.NotFound, s.NoLocation, s.Failed,
		s.CacheHits, costs)
	if s.Interrupted || s.Abandoned > 0 {
		quoted := make([]string, len(args))
		for i, a := range args {
			quoted[i] = shellQuote(a)
		}
		fmt.Fprintf(w, "interrupted: %d IDs not committed. Resume with the same command: snowgate backfill %s\n",
			s.Abandoned, strings.Join(quoted, " "))
	}
	if s.Failed > 0 {
		fmt.Fprintln(w, "failed IDs are in the failures table; replay them with --retry-failed")
	}
}

// shellQuote quotes a for a POSIX shell unless it is plainly safe, so the
// resume line can be pasted as printed (URLs hold ? and &).
func shellQuote(a string) string {
	safe := a != ""
	for _, r := range a {
		if (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') && (r < '0' || r > '9') && !strings.ContainsRune("-_./:=,@%+", r) {
			safe = false
			break
		}
	}
	if safe {
		return a
	}
	return "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
}
