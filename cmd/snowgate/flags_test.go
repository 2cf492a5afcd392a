//go:build !slim

package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// flagCommand is one subcommand's real flag set, and its parse step: flags,
// environment twins, ranges and cross-flag checks, with no side effect.
type flagCommand struct {
	flags func(io.Writer) *flag.FlagSet
	parse func(args []string) error
	// guard is what keeps a run from touching anything outside the test,
	// and untouched says whether it was left alone.
	guard func(t *testing.T) (args []string, untouched func() error)
}

var flagCommands = map[string]flagCommand{
	"serve": {
		flags: func(w io.Writer) *flag.FlagSet { fs, _ := newServeFlags(w); return fs },
		parse: func(args []string) error { _, err := parseServe(args, io.Discard); return err },
		guard: listenGuard,
	},
	"backfill": {
		flags: func(w io.Writer) *flag.FlagSet { fs, _, _ := newBackfillFlags(w); return fs },
		parse: func(args []string) error { _, _, _, err := parseBackfill(args, io.Discard); return err },
		guard: func(t *testing.T) ([]string, func() error) {
			db := filepath.Join(t.TempDir(), "bf.duckdb")
			return []string{"--warehouse", "duckdb:" + db}, func() error { return absent(db) }
		},
	},
	"sql": {
		flags: func(w io.Writer) *flag.FlagSet { fs, _, _ := newSQLFlags(w); return fs },
		parse: func(args []string) error { _, _, _, err := parseSQL(append(args, "SELECT 1"), io.Discard); return err },
		guard: func(t *testing.T) ([]string, func() error) {
			db := filepath.Join(t.TempDir(), "sql.duckdb")
			return []string{"--warehouse", "duckdb:" + db}, func() error { return absent(db) }
		},
	},
	"demo": {
		flags: func(w io.Writer) *flag.FlagSet { fs, _ := newDemoFlags(w); return fs },
		parse: func(args []string) error { _, err := parseDemo(args, io.Discard); return err },
		guard: func(t *testing.T) ([]string, func() error) {
			db := filepath.Join(t.TempDir(), "demo.duckdb")
			return []string{"--db", db}, func() error { return absent(db) }
		},
	},
	"sim": {
		flags: func(w io.Writer) *flag.FlagSet { fs, _ := newSimFlags(w); return fs },
		parse: func(args []string) error { _, err := parseSim(args, io.Discard); return err },
		guard: listenGuard,
	},
	"bench": {
		flags: func(w io.Writer) *flag.FlagSet { fs, _ := newBenchFlags(w); return fs },
		parse: func(args []string) error { _, _, err := parseBench(args, io.Discard); return err },
		guard: func(t *testing.T) ([]string, func() error) {
			dir := t.TempDir()
			return []string{"--dir", dir}, func() error {
				if entries, err := os.ReadDir(dir); err != nil || len(entries) > 0 {
					return errors.New("bench wrote into --dir")
				}
				return nil
			}
		},
	},
	"healthcheck": {
		flags: func(w io.Writer) *flag.FlagSet { fs, _, _ := newHealthcheckFlags(w); return fs },
		parse: func(args []string) error {
			fs, _, _ := newHealthcheckFlags(io.Discard)
			return parseFlags(fs, args)
		},
		// A healthcheck run on a cancelled context fails with the context's
		// error, not a usage error, if it gets as far as asking.
		guard: listenGuard,
	},
}

// listenGuard gives a listen address nobody else uses; a command that got
// as far as serving would print its address, which the test refuses.
func listenGuard(*testing.T) ([]string, func() error) {
	return []string{"--listen", "127.0.0.1:0"}, func() error { return nil }
}

func absent(path string) error {
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		return errors.New(path + " was created")
	}
	return nil
}

// cleanEnv unsets every environment twin of every command's flags and the
// secrets, for the length of the test.
func cleanEnv(t *testing.T) {
	t.Helper()
	names := []string{"SNOWGATE_AUTH_SECRET", "SNOWGATE_UPSTREAM_TOKEN"}
	for _, c := range flagCommands {
		c.flags(io.Discard).VisitAll(func(f *flag.Flag) { names = append(names, envName(f.Name)) })
	}
	for _, n := range names {
		t.Setenv(n, "") // restores the old value after the test
		// Unset, not empty: an empty twin is a value the flag must parse.
		if err := os.Unsetenv(n); err != nil {
			t.Fatal(err)
		}
	}
}

func TestEveryCommandWithFlagsIsChecked(t *testing.T) {
	for _, cmd := range commandsWithFlags {
		if _, ok := flagCommands[cmd]; !ok {
			t.Errorf("snowgate %s has flags but no entry in flagCommands", cmd)
		}
	}
	if len(flagCommands) != len(commandsWithFlags) {
		t.Errorf("flagCommands has %d commands; commandsWithFlags %d", len(flagCommands), len(commandsWithFlags))
	}
}

// TestNumericFlagsHaveRanges fails for a numeric flag declared with the flag
// package's own IntVar, DurationVar... instead of numVar.
func TestNumericFlagsHaveRanges(t *testing.T) {
	for cmd, c := range flagCommands {
		numeric := 0
		c.flags(io.Discard).VisitAll(func(f *flag.Flag) {
			_, checked := f.Value.(checkedValue)
			if isNumeric(f.Value) {
				numeric++
				if !checked {
					t.Errorf("%s --%s is numeric but has no declared range", cmd, f.Name)
				}
			}
		})
		if numeric == 0 {
			t.Errorf("%s: found no numeric flag; the test cannot see them", cmd)
		}
	}

	fs := newFlagSet("x", "", io.Discard)
	fs.Int("plain", 1, "declared without a range")
	err := parseFlags(fs, nil)
	if err == nil || errors.Is(err, errUsage) || !strings.Contains(err.Error(), "--plain") {
		t.Errorf("a numeric flag without a range: got %v; want a program error naming --plain", err)
	}
}

func TestDefaultsAreAccepted(t *testing.T) {
	cleanEnv(t)
	for cmd, c := range flagCommands {
		if err := c.parse(nil); err != nil {
			t.Errorf("snowgate %s with no flags: %v", cmd, err)
		}
	}
}

// TestOutOfRangeRefusedBeforeAnything runs every command with each checked
// flag set just outside its range, and to text that is no value at all.
// Each must end at once with one usage line naming the flag, the value and
// what is allowed, having printed, created and listened on nothing.
func TestOutOfRangeRefusedBeforeAnything(t *testing.T) {
	cleanEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // a command that got past its checks would stop at once, not hang the test
	for cmd, c := range flagCommands {
		t.Run(cmd, func(t *testing.T) {
			tried := 0
			c.flags(io.Discard).VisitAll(func(f *flag.Flag) {
				bad, _, allowed, ok := edges(f.Value)
				if !ok {
					return
				}
				if len(bad) == 0 {
					t.Errorf("--%s: no value outside its range to try", f.Name)
				}
				for _, v := range bad {
					tried++
					// The guard goes first so that the flag under test wins.
					guardArgs, untouched := c.guard(t)
					args := append(append([]string{cmd}, guardArgs...), "--"+f.Name, v)
					var out bytes.Buffer
					err := run(ctx, args, &out, slog.New(slog.DiscardHandler))
					checkUsageLine(t, err, cmd, f.Name, v, allowed)
					if out.Len() > 0 {
						t.Errorf("snowgate %s --%s %s printed %q; want nothing", cmd, f.Name, v, out.String())
					}
					if e := untouched(); e != nil {
						t.Errorf("snowgate %s --%s %s: %v", cmd, f.Name, v, e)
					}
				}
			})
			if tried == 0 {
				t.Error("no flag tried")
			}
		})
	}
}

// checkUsageLine checks the one line a bad value gets.
func checkUsageLine(t *testing.T, err error, cmd, name, value, allowed string) {
	t.Helper()
	switch {
	case !errors.Is(err, errUsage):
		t.Errorf("snowgate %s --%s %s: got %v; want a usage error", cmd, name, value, err)
	case strings.Contains(err.Error(), "\n"):
		t.Errorf("snowgate %s --%s %s: error %q is more than one line", cmd, name, value, err)
	case !strings.HasPrefix(err.Error(), cmd+": --"+name+" "),
		!strings.Contains(err.Error(), value),
		!strings.Contains(err.Error(), ": want "+allowed) && !strings.HasSuffix(err.Error(), ": "+allowed):
		t.Errorf("snowgate %s --%s %s: got %q; want %q naming the flag, the value and %q", cmd, name, value, err, cmd+": --"+name, allowed)
	}
}

// TestBoundariesAccepted parses every checked numeric flag at each end of
// its range (and 0 where 0 has a meaning): ranges only, no cross checks.
func TestBoundariesAccepted(t *testing.T) {
	cleanEnv(t)
	for cmd, c := range flagCommands {
		c.flags(io.Discard).VisitAll(func(f *flag.Flag) {
			_, good, _, ok := edges(f.Value)
			for _, v := range good {
				fs := c.flags(io.Discard)
				if err := parseFlags(fs, []string{"--" + f.Name, v}); err != nil {
					t.Errorf("snowgate %s --%s %s: %v; want it accepted", cmd, f.Name, v, err)
				} else if got := fs.Lookup(f.Name).Value.String(); got != v {
					t.Errorf("snowgate %s --%s %s: the flag holds %s", cmd, f.Name, v, got)
				}
			}
			if ok && len(good) == 0 {
				t.Errorf("%s --%s: no boundary value to try", cmd, f.Name)
			}
		})
	}
}

// edges reads a checked flag's declared range from its fields (not from
// its check): values outside it, its boundary values, and the text that
// names what is allowed.
func edges(v flag.Value) (bad, good []string, allowed string, ok bool) {
	switch n := v.(type) {
	case *numValue[int]:
		bad, good = spanEdges(n.span)
		bad = append(bad, "x", "99999999999999999999")
	case *numValue[int64]:
		bad, good = spanEdges(n.span)
		bad = append(bad, "x", "9223372036854775808")
	case *numValue[time.Duration]:
		bad, good = spanEdges(n.span)
		bad = append(bad, "x", "10") // a number without a unit is no duration
	case *numValue[float64]:
		bad, good = spanEdges(n.span)
		bad = append(bad, "x", "NaN", "+Inf")
	case *enumValue:
		return []string{"nope", ""}, n.words, orList(n.words), true
	default:
		return nil, nil, "", false
	}
	return bad, good, v.(checkedValue).allowed(), true
}

func spanEdges[T number](s span[T]) (bad, good []string) {
	add := func(list *[]string, x T) { *list = append(*list, formatNum(x)) }
	if s.loOpen {
		add(&bad, s.lo)
		if x, ok := neighbor(s.lo, true); ok {
			add(&good, x)
		}
	} else {
		add(&good, s.lo)
		if x, ok := neighbor(s.lo, false); ok && (s.zero == "" || x != 0) {
			add(&bad, x)
		}
	}
	if !s.noHi {
		if s.hiOpen {
			add(&bad, s.hi)
			if x, ok := neighbor(s.hi, false); ok {
				add(&good, x)
			}
		} else {
			add(&good, s.hi)
			if x, ok := neighbor(s.hi, true); ok {
				add(&bad, x)
			}
		}
	}
	if s.zero != "" && s.lo != 0 {
		add(&good, 0)
	}
	return bad, good
}

// neighbor is the next value of x's type up or down; false past its end.
func neighbor[T number](x T, up bool) (T, bool) {
	if f, isFloat := any(x).(float64); isFloat {
		toward := math.Inf(-1)
		if up {
			toward = math.Inf(1)
		}
		return T(math.Nextafter(f, toward)), true
	}
	y := x - 1
	if up {
		y = x + 1
	}
	return y, (y > x) == up
}

// TestRangeMessages pins the exact line of a few bad values, the range
// chosen for each included.
func TestRangeMessages(t *testing.T) {
	tests := []struct {
		cmd  string
		args []string
		env  map[string]string
		want string
	}{
		{"serve", []string{"--rate", "-5"}, nil, "serve: --rate -5: want 0 (unlimited) or more"},
		{"serve", []string{"--rate", "abc"}, nil, `serve: --rate "abc": want a number: 0 (unlimited) or more`},
		{"serve", []string{"--rate", "+Inf"}, nil, "serve: --rate +Inf: want a finite number: 0 (unlimited) or more"},
		{"serve", nil, map[string]string{"SNOWGATE_RATE": "-5"}, "serve: --rate -5 (from SNOWGATE_RATE): want 0 (unlimited) or more"},
		{"serve", []string{"--upstream-concurrency", "0"}, nil, "serve: --upstream-concurrency 0: want 1 to 100000"},
		{"serve", []string{"--upstream-timeout", "0"}, nil, "serve: --upstream-timeout 0s: want 1ms to 1h0m0s"},
		{"serve", []string{"--max-body", "1023"}, nil, "serve: --max-body 1023: want 1024 to 1073741824"},
		{"serve", []string{"--redis-local-share", "0"}, nil, "serve: --redis-local-share 0: want more than 0, at most 1"},
		{"serve", []string{"--on-row-error", "nul"}, nil, `serve: --on-row-error "nul": want null, error or fail`},
		{"serve", nil, map[string]string{"SNOWGATE_NOT_FOUND": "none"}, `serve: --not-found "none" (from SNOWGATE_NOT_FOUND): want null or object`},
		{"serve", []string{"--nope"}, nil, "serve: flag provided but not defined: -nope (snowgate serve --help lists the flags)"},
		{"serve", nil, map[string]string{"SNOWGATE_ASYNC": "maybe"}, `serve: --async "maybe" (from SNOWGATE_ASYNC): want true or false`},
		{"backfill", []string{"--limit", "-1"}, nil, "backfill: --limit -1: want 0 (all) or more"},
		{"backfill", nil, map[string]string{"SNOWGATE_PAGE_SIZE": "1"}, "backfill: --page-size 1 (from SNOWGATE_PAGE_SIZE): want 2 to 1000000"},
		{"backfill", []string{"--refresh-older-than", "-1h"}, nil, "backfill: --refresh-older-than -1h0m0s: want 0 (off) or more"},
		{"backfill", []string{"--progress", "fancy"}, nil, `backfill: --progress "fancy": want auto, bar, log or none`},
		{"demo", []string{"--latency", "-1ms"}, nil, "demo: --latency -1ms: want 0 (none) to 1m0s"},
		{"demo", []string{"--rows", "4", "--distinct", "5"}, nil, "demo: --distinct 5: want at most --rows (4)"},
		{"sim", []string{"--hang-rate", "1.5"}, nil, "sim: --hang-rate 1.5: want 0 to 1"},
		{"sim", []string{"--seed", "9223372036854775808"}, nil,
			`sim: --seed "9223372036854775808": want an integer: -9223372036854775808 to 9223372036854775807`},
		{"sim", []string{"--error-rate", "0.5", "--slow-rate", "0.6"}, nil,
			"sim: --error-rate + --hang-rate + --slow-rate + --truncate-rate = 1.1: want a sum of at most 1"},
		{"bench", []string{"--repeat-ratio", "1"}, nil, "bench: --repeat-ratio 1: want at least 0, less than 1"},
		{"bench", nil, map[string]string{"SNOWGATE_PARALLEL": "0"}, "bench: --parallel 0 (from SNOWGATE_PARALLEL): want 1 to 1024"},
		{"bench", []string{"--rows", "0", "--backfill-rows", "0"}, nil, "bench: --rows 0 and --backfill-rows 0: want at least one phase"},
		{"bench", []string{"--loader", "thread"}, nil, `bench: --loader "thread": want child or inprocess`},
		{"healthcheck", []string{"--timeout", "-1s"}, nil, "healthcheck: --timeout -1s: want 1ms to 10m0s"},
		{"healthcheck", nil, map[string]string{"SNOWGATE_TIMEOUT": "soon"},
			`healthcheck: --timeout "soon" (from SNOWGATE_TIMEOUT): want a duration (like 250ms, 30s or 1h30m): 1ms to 10m0s`},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			cleanEnv(t)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			err := flagCommands[tt.cmd].parse(tt.args)
			if !errors.Is(err, errUsage) || err.Error() != tt.want {
				t.Errorf("got %v; want the usage error %q", err, tt.want)
			}
		})
	}
}

// TestInRangeAccepted parses values a user is likely to give, at the edges
// of what is allowed, through each command's whole parse step.
func TestInRangeAccepted(t *testing.T) {
	tests := []struct {
		cmd  string
		args []string
		env  map[string]string
	}{
		{"serve", []string{"--rate", "0", "--upstream-concurrency", "1", "--burst", "0"}, nil},
		{"serve", []string{"--upstream-concurrency", "100000", "--redis-local-share", "1", "--max-body", "1024"}, nil},
		// The command line wins over a bad environment twin.
		{"serve", []string{"--rate", "10"}, map[string]string{"SNOWGATE_RATE": "-5"}},
		{"serve", []string{"--on-row-error", "fail", "--not-found", "object"}, nil},
		{"backfill", []string{"--page-size", "2", "--limit", "0", "--refresh-older-than", "720h"}, nil},
		{"backfill", nil, map[string]string{"SNOWGATE_VIA_IN_FLIGHT": "1024", "SNOWGATE_PROGRESS": "none"}},
		{"demo", []string{"--rows", "1", "--distinct", "1", "--latency", "0", "--rate", "1"}, nil},
		{"sim", []string{"--seed", "-9223372036854775808", "--rate", "0", "--latency", "0", "--jitter", "0"}, nil},
		{"sim", []string{"--not-found-ratio", "0.5", "--no-location-ratio", "0.5", "--permanent-fail-ratio", "0"}, nil},
		{"bench", []string{"--repeat-ratio", "0.99", "--rows", "0", "--quick"}, nil},
		{"bench", []string{"--provider-rate", "0", "--burst", "0", "--concurrency", "100000"}, nil},
		{"healthcheck", []string{"--timeout", "10m"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.cmd+" "+strings.Join(tt.args, " "), func(t *testing.T) {
			cleanEnv(t)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			if err := flagCommands[tt.cmd].parse(tt.args); err != nil {
				t.Errorf("got %v; want it accepted", err)
			}
		})
	}
}

func TestHelpShowsRanges(t *testing.T) {
	var out bytes.Buffer
	err := run(context.Background(), []string{"serve", "--help"}, &out, slog.New(slog.DiscardHandler))
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("got %v; want flag.ErrHelp", err)
	}
	want := "  --upstream-concurrency  [SNOWGATE_UPSTREAM_CONCURRENCY] (default 64)\n" +
		"      provider requests in flight at most\n" +
		"      allowed: 1 to 100000\n"
	if !strings.Contains(out.String(), want) {
		t.Errorf("serve --help lacks\n%s\ngot:\n%s", want, out.String())
	}
}
