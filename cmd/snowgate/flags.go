package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"time"
)

// newFlagSet returns a flag set for one subcommand whose usage lists every
// flag with its SNOWGATE_* environment twin and, for a checked flag, the
// values it allows.
func newFlagSet(name, synopsis string, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() {
		fmt.Fprintf(out, "Usage: snowgate %s [flags]\n\n%s\n\nFlags (each also read from the environment variable shown):\n", name, synopsis)
		fs.VisitAll(func(f *flag.Flag) {
			def := ""
			if f.DefValue != "" {
				def = fmt.Sprintf(" (default %s)", f.DefValue)
			}
			fmt.Fprintf(out, "  --%s  [%s]%s\n      %s\n", f.Name, envName(f.Name), def, f.Usage)
			if r, ok := f.Value.(interface{ allowed() string }); ok {
				fmt.Fprintf(out, "      allowed: %s\n", r.allowed())
			}
		})
	}
	return fs
}

// envName is the environment twin of a flag: --upstream-url is
// SNOWGATE_UPSTREAM_URL.
func envName(flagName string) string {
	return "SNOWGATE_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// usageError is bad configuration: main prints it as its one line and
// exits 2.
type usageError struct{ msg string }

func (e *usageError) Error() string        { return e.msg }
func (e *usageError) Is(target error) bool { return target == errUsage }

func usagef(format string, a ...any) error { return &usageError{fmt.Sprintf(format, a...)} }

// parseFlags parses args, fills every flag not given on the command line
// from its environment twin (so the command line always wins), then checks
// every value against its declared range. It has no other effect, so a
// command calls it before it creates, opens or listens on anything.
func parseFlags(fs *flag.FlagSet, args []string) error {
	// The flag package prints a bad flag and the whole usage; one line says
	// it better. --help still prints the usage.
	usage, out := fs.Usage, fs.Output()
	fs.Usage = func() {}
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	fs.Usage = usage
	fs.SetOutput(out)
	switch {
	case errors.Is(err, flag.ErrHelp):
		usage()
		return err
	case err != nil:
		return parseError(fs, err)
	case fs.NArg() > 0:
		return usagef("%s: unexpected argument %q", fs.Name(), fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	fromEnv := map[string]bool{}
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil || set[f.Name] {
			return
		}
		if v, ok := os.LookupEnv(envName(f.Name)); ok {
			fromEnv[f.Name] = true
			if e := fs.Set(f.Name, v); e != nil {
				err = usagef("%s: --%s %q (from %s): %s", fs.Name(), f.Name, v, envName(f.Name), want(f, e))
			}
		}
	})
	if err != nil {
		return err
	}
	return checkFlags(fs, fromEnv)
}

// parseError names the flag whose value did not parse, the way a range
// error does, when it is one of ours.
func parseError(fs *flag.FlagSet, err error) error {
	var bad error
	fs.VisitAll(func(f *flag.Flag) {
		if v, ok := f.Value.(checkedValue); ok && bad == nil {
			if text, failed := v.unparsed(); failed {
				bad = usagef("%s: --%s %q: %s", fs.Name(), f.Name, text, v.allowedAs())
			}
		}
	})
	if bad != nil {
		return bad
	}
	return usagef("%s: %v (snowgate %s --help lists the flags)", fs.Name(), err, fs.Name())
}

// want says what a flag accepts, for a value that did not parse.
func want(f *flag.Flag, err error) string {
	if v, ok := f.Value.(checkedValue); ok {
		return v.allowedAs()
	}
	if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
		return "want true or false"
	}
	return err.Error()
}

// checkedValue is a flag value that knows what it allows.
type checkedValue interface {
	flag.Getter
	// check returns "" when the value is allowed, else what is wanted.
	check() string
	// allowed describes the values allowed, allowedAs the same with the
	// kind of value, for text that did not parse.
	allowed() string
	allowedAs() string
	// unparsed is the text of the last Set that failed, if it failed.
	unparsed() (string, bool)
}

// checkFlags checks every flag's value. A numeric flag declared without a
// range is a bug in this program, reported as such: every number a user
// can give has limits somewhere downstream, and they belong at the edge.
func checkFlags(fs *flag.FlagSet, fromEnv map[string]bool) error {
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil {
			return
		}
		v, ok := f.Value.(checkedValue)
		if !ok {
			if isNumeric(f.Value) {
				err = fmt.Errorf("%s: --%s is a number declared without a range (declare it with numVar)", fs.Name(), f.Name)
			}
			return
		}
		if w := v.check(); w != "" {
			from := ""
			if fromEnv[f.Name] {
				from = " (from " + envName(f.Name) + ")"
			}
			err = usagef("%s: --%s %s%s: %s", fs.Name(), f.Name, displayValue(v), from, w)
		}
	})
	return err
}

// displayValue keeps the error one line whatever the value holds.
func displayValue(v flag.Value) string {
	s := v.String()
	if _, isEnum := v.(*enumValue); isEnum || s == "" || strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == '"' }) {
		return strconv.Quote(s)
	}
	return s
}

func isNumeric(v flag.Value) bool {
	g, ok := v.(flag.Getter)
	if !ok {
		return false
	}
	switch g.Get().(type) {
	case int, int64, uint, uint64, float64, time.Duration:
		return true
	}
	return false
}

// number is what a numeric flag holds; time.Duration is an int64.
type number interface{ ~int | ~int64 | ~float64 }

// span is the values a numeric flag allows: lo to hi, either end open,
// hi possibly unbounded, 0 possibly allowed with a meaning of its own.
type span[T number] struct {
	lo, hi         T
	loOpen, hiOpen bool // lo, hi themselves excluded
	noHi           bool
	zero           string // when set, 0 is allowed and means this
}

// between allows lo to hi, both included.
func between[T number](lo, hi T) span[T] { return span[T]{lo: lo, hi: hi} }

// atLeast allows lo and every finite value above it.
func atLeast[T number](lo T) span[T] { return span[T]{lo: lo, noHi: true} }

// anyInt64 allows every int64, for a seed: only text that does not parse
// as one is refused.
func anyInt64() span[int64] { return between[int64](math.MinInt64, math.MaxInt64) }

func (s span[T]) openLo() span[T] { s.loOpen = true; return s }
func (s span[T]) openHi() span[T] { s.hiOpen = true; return s }

// zeroMeans allows 0 and says what it means: "unlimited", "all", "off".
func (s span[T]) zeroMeans(meaning string) span[T] { s.zero = meaning; return s }

func (s span[T]) allows(v T) bool {
	f := float64(v)
	switch {
	case math.IsNaN(f) || math.IsInf(f, 0):
		return false
	case s.zero != "" && v == 0:
		return true
	}
	loOK := v > s.lo || !s.loOpen && v == s.lo
	hiOK := s.noHi || v < s.hi || !s.hiOpen && v == s.hi
	return loOK && hiOK
}

func (s span[T]) String() string {
	lo, prefix := formatNum(s.lo), ""
	if s.zero != "" {
		if s.lo == 0 && !s.loOpen {
			lo = "0 (" + s.zero + ")"
		} else {
			prefix = "0 (" + s.zero + ") or "
		}
	}
	hi := formatNum(s.hi)
	switch {
	case s.noHi && s.loOpen:
		return prefix + "more than " + lo
	case s.noHi:
		return prefix + lo + " or more"
	case s.loOpen:
		return prefix + "more than " + lo + ", at most " + hi
	case s.hiOpen:
		return prefix + "at least " + lo + ", less than " + hi
	}
	return prefix + lo + " to " + hi
}

// numValue is a numeric flag bound to a variable and checked against a
// span after parsing. Its text forms are the flag package's, so defaults
// print as before and bench's --quick can set a value again from its text.
type numValue[T number] struct {
	p      *T
	span   span[T]
	failed *string // text of the last Set that did not parse
}

// numVar declares a numeric flag with the values it allows. It is the only
// way to declare one: checkFlags refuses numeric flags declared otherwise.
func numVar[T number](fs *flag.FlagSet, p *T, name string, def T, allowed span[T], usage string) {
	*p = def
	fs.Var(&numValue[T]{p: p, span: allowed}, name, usage)
}

func (v *numValue[T]) Set(s string) error {
	x, err := parseNum[T](s)
	if err != nil {
		v.failed = &s
		return errors.New(v.allowedAs())
	}
	*v.p, v.failed = x, nil
	return nil
}

func (v *numValue[T]) String() string {
	if v == nil || v.p == nil { // the flag package's zero-value probe
		return ""
	}
	return formatNum(*v.p)
}

func (v *numValue[T]) Get() any          { return *v.p }
func (v *numValue[T]) allowed() string   { return v.span.String() }
func (v *numValue[T]) allowedAs() string { return "want " + kindOf[T]() + ": " + v.span.String() }

func (v *numValue[T]) check() string {
	switch f := float64(*v.p); {
	case v.span.allows(*v.p):
		return ""
	case math.IsNaN(f) || math.IsInf(f, 0):
		return "want a finite number: " + v.span.String()
	}
	return "want " + v.span.String()
}

func (v *numValue[T]) unparsed() (string, bool) {
	if v.failed == nil {
		return "", false
	}
	return *v.failed, true
}

func parseNum[T number](s string) (T, error) {
	var zero T
	switch any(zero).(type) {
	case time.Duration:
		d, err := time.ParseDuration(s)
		return T(d), err
	case float64:
		f, err := strconv.ParseFloat(s, 64)
		return T(f), err
	case int64:
		i, err := strconv.ParseInt(s, 0, 64)
		return T(i), err
	default:
		i, err := strconv.ParseInt(s, 0, strconv.IntSize)
		return T(i), err
	}
}

func formatNum[T number](v T) string {
	switch x := any(v).(type) {
	case time.Duration:
		return x.String()
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case int64:
		return strconv.FormatInt(x, 10)
	}
	return strconv.FormatInt(int64(v), 10)
}

func kindOf[T number]() string {
	var zero T
	switch any(zero).(type) {
	case time.Duration:
		return "a duration (like 250ms, 30s or 1h30m)"
	case float64:
		return "a number"
	}
	return "an integer"
}

// enumValue is a string flag that must be one of a few words.
type enumValue struct {
	p     *string
	words []string
}

// enumVar declares a flag taking one of words; def must be one of them.
func enumVar(fs *flag.FlagSet, p *string, name, def string, words []string, usage string) {
	*p = def
	fs.Var(&enumValue{p: p, words: words}, name, usage)
}

// Set takes any text: checkFlags names the flag and the words if it is
// not one of them, the same way for the command line and the environment.
func (v *enumValue) Set(s string) error { *v.p = s; return nil }

func (v *enumValue) String() string {
	if v == nil || v.p == nil {
		return ""
	}
	return *v.p
}

func (v *enumValue) Get() any                 { return *v.p }
func (v *enumValue) allowed() string          { return orList(v.words) }
func (v *enumValue) allowedAs() string        { return "want " + orList(v.words) }
func (v *enumValue) unparsed() (string, bool) { return "", false }

func (v *enumValue) check() string {
	for _, w := range v.words {
		if *v.p == w {
			return ""
		}
	}
	return v.allowedAs()
}

// orList is "a, b or c".
func orList(words []string) string {
	if len(words) < 2 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " or " + words[len(words)-1]
}

// fractionsFit checks that fractions taken from one draw sum to 1 at
// most. sim refuses them too, but by field name; here they are flags.
func fractionsFit(fs *flag.FlagSet, names ...string) error {
	sum := 0.0
	for _, n := range names {
		sum += fs.Lookup(n).Value.(flag.Getter).Get().(float64)
	}
	if sum > 1 {
		return usagef("%s: --%s = %g: want a sum of at most 1", fs.Name(), strings.Join(names, " + --"), sum)
	}
	return nil
}
