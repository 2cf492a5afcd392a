//go:build !slim

package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"database/sql"
	"encoding/csv"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mattn/go-runewidth"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/term"

	"github.com/snowgate/snowgate/cache"
	"github.com/snowgate/snowgate/duckfn"
	"github.com/snowgate/snowgate/gateway"
	"github.com/snowgate/snowgate/locapi"
	"github.com/snowgate/snowgate/stack"
)

const sqlSynopsis = `Run SQL in DuckDB with resolve_location(id) -> JSON registered: the same
resolver as serve and backfill (cache, coalescing, limiter, retries), one
provider lookup per distinct ID of each chunk of up to 2,048 rows. Statements
come from --file, then from the arguments, each of which may hold several
separated by ';'; they run in order on one connection and one cache, and every
query's result set is printed. Flags go before the SQL:
  snowgate sql --warehouse duckdb:my.duckdb "SELECT id, resolve_location(id)->>'city_label' FROM 'ids.parquet'"
Exit status 1 names the statement DuckDB refused; 2 is a usage error.`

type sqlFlags struct {
	warehouse, file, format, progress string
	onRowError, notFound              string
	statements                        []string // the positional arguments
}

var sqlFormats = []string{"auto", "table", "csv", "json"}

func newSQLFlags(stdout io.Writer) (*flag.FlagSet, *sqlFlags, *resolverFlags) {
	fs := newFlagSet("sql", sqlSynopsis, stdout)
	f := &sqlFlags{}
	fs.StringVar(&f.warehouse, "warehouse", "duckdb:", "duckdb:PATH[?setting=value&...] of the database to open; duckdb: alone is a new in-memory database")
	fs.StringVar(&f.file, "file", "", "read statements from this file first (separated by ';')")
	enumVar(fs, &f.format, "format", "auto", sqlFormats,
		"how result sets are printed: table, csv, json (one object a line) or auto (table on a terminal, csv otherwise)")
	enumVar(fs, &f.progress, "progress", "auto", []string{"auto", "on", "off"},
		"rows resolved and provider requests/s on stderr while a statement runs: auto (when stderr is a terminal), on or off")
	enumVar(fs, &f.onRowError, "on-row-error", gateway.RowErrorNull,
		[]string{gateway.RowErrorNull, gateway.RowErrorObject, gateway.RowErrorFail},
		"a row with a bad ID or one the provider failed: null, error ({\"error\": reason}) or fail (the statement fails)")
	enumVar(fs, &f.notFound, "not-found", gateway.NotFoundNull, []string{gateway.NotFoundNull, gateway.NotFoundObject},
		"a not-found or no-location row: null, or object ({\"found\": false, ...})")
	return fs, f, addResolverFlags(fs)
}

// parseSQL reads sql's settings and statements, touching nothing but the
// --file it reads.
func parseSQL(args []string, stdout io.Writer) (*sqlFlags, *resolverFlags, []string, error) {
	fs, f, rf := newSQLFlags(stdout)
	// The flag package stops at the first argument that is not a flag:
	// what a first parse leaves over is the SQL, and parseFlags (which
	// refuses leftovers) gets only the flags.
	probe, _, _ := newSQLFlags(io.Discard)
	probe.Usage = func() {}
	flagArgs := args
	if probe.Parse(args) == nil {
		f.statements = probe.Args()
		flagArgs = args[:len(args)-len(f.statements)]
	}
	if err := parseFlags(fs, flagArgs); err != nil {
		return nil, nil, nil, err
	}
	for _, s := range f.statements {
		// "SELECT 1" --format csv would otherwise run "csv" as SQL.
		name, _, _ := strings.Cut(strings.TrimLeft(s, "-"), "=")
		if strings.HasPrefix(s, "-") && fs.Lookup(name) != nil {
			return nil, nil, nil, usagef("sql: --%s comes after the SQL: flags go before the statements", name)
		}
	}
	if !strings.HasPrefix(f.warehouse, "duckdb:") {
		return nil, nil, nil, usagef("sql: --warehouse %q: want duckdb:PATH, or duckdb: for an in-memory database", f.warehouse)
	}
	var stmts []string
	if f.file != "" {
		b, err := os.ReadFile(f.file)
		if err != nil {
			return nil, nil, nil, usagef("sql: --file: %v", err)
		}
		stmts = splitStatements(string(b))
	}
	for _, s := range f.statements {
		stmts = append(stmts, splitStatements(s)...)
	}
	if len(stmts) == 0 {
		return nil, nil, nil, usagef("sql: no SQL: give statements as arguments after the flags, or --file")
	}
	return f, rf, stmts, nil
}

// runSQL runs the statements in order and prints each query's rows. The
// first statement DuckDB refuses ends the run.
func runSQL(ctx context.Context, args []string, stdout io.Writer, logger *slog.Logger) (err error) {
	f, rf, stmts, err := parseSQL(args, stdout)
	if err != nil {
		return err
	}
	s, err := openSQL(ctx, f, rf, logger)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := s.close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	out := newPrinter(stdout, f.format)
	prog := newSQLProgress(os.Stderr, f.progress, &s.rows, func() (int64, int64) {
		st := s.parts.Client.Stats()
		return st.Found + st.NotFound + st.NoLocation + st.Failures, st.Requests
	})
	for i, stmt := range stmts {
		stop := prog.start(i + 1)
		err := runStatement(ctx, s.conn, stmt, out)
		stop()
		if ferr := out.flush(); err == nil {
			err = ferr
		}
		if err != nil {
			return fmt.Errorf("sql: statement %d (%s): %s", i+1, excerpt(stmt), oneLine(err))
		}
	}
	return nil
}

// sqlSession is what sql's statements run on: the resolver stack, the
// database, and the one connection resolve_location is registered on.
type sqlSession struct {
	warehouse string
	parts     *stack.Parts
	db        *sql.DB
	conn      *sql.Conn
	rows      atomic.Int64 // rows of the chunks answered
}

// openSQL builds the session runSQL's statements run on (and the
// benchmark's, which times them one by one).
func openSQL(ctx context.Context, f *sqlFlags, rf *resolverFlags, logger *slog.Logger) (_ *sqlSession, err error) {
	p, err := rf.stack(prometheus.NewRegistry(), logger)
	if err != nil {
		return nil, fmt.Errorf("sql: %w", err)
	}
	s := &sqlSession{warehouse: f.warehouse, parts: p}
	defer func() {
		if err != nil {
			_ = s.close() // the open failed; that error is the one to report
		}
	}()
	if s.db, err = sql.Open("duckdb", strings.TrimPrefix(f.warehouse, "duckdb:")); err != nil {
		return nil, usagef("sql: --warehouse %q: %v", f.warehouse, oneLine(err))
	}
	if s.conn, err = s.db.Conn(ctx); err != nil {
		return nil, fmt.Errorf("sql: open %s: %s", f.warehouse, oneLine(err))
	}
	opt := duckfn.Options{
		NotFoundObject: f.notFound == gateway.NotFoundObject,
		OnRowError:     f.onRowError,
		Observe:        func(n int, _ cache.Stats) { s.rows.Add(int64(n)) },
	}
	if err := duckfn.Register(ctx, s.conn, p.Resolver, opt); err != nil {
		return nil, fmt.Errorf("sql: %w", err)
	}
	return s, nil
}

// close ends the session. DuckDB writes its file out on Close: a Close
// that fails is an error, as the tables may not be on disk. The statements
// are done by then; a Redis pool that closes badly changes none of their
// results.
func (s *sqlSession) close() error {
	var err error
	if s.conn != nil {
		_ = s.conn.Close() // returns it to db, whose Close is checked
	}
	if s.db != nil {
		if cerr := s.db.Close(); cerr != nil {
			err = fmt.Errorf("sql: close %s: %s", s.warehouse, oneLine(cerr))
		}
	}
	_ = s.parts.Close()
	return err
}

// runStatement runs one statement; a query's rows go to out.
func runStatement(ctx context.Context, conn *sql.Conn, stmt string, out *printer) error {
	if !isQuery(stmt) {
		_, err := conn.ExecContext(ctx, stmt)
		return err
	}
	rows, err := conn.QueryContext(ctx, stmt)
	if err != nil {
		return err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return err
	}
	if err := out.begin(cols); err != nil {
		return err
	}
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		if err := out.row(vals); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	return out.end()
}

// queryWords start the statements whose result set is printed; the rest
// (CREATE, INSERT, COPY, SET...) run silently, as in DuckDB's own shell
// where they print no table.
var queryWords = map[string]bool{
	"SELECT": true, "WITH": true, "FROM": true, "VALUES": true, "TABLE": true, "SHOW": true, "DESCRIBE": true,
	"DESC": true, "SUMMARIZE": true, "EXPLAIN": true, "PRAGMA": true, "CALL": true, "PIVOT": true, "UNPIVOT": true,
}

func isQuery(stmt string) bool {
	s := strings.TrimLeft(skipComments(stmt), " \t\r\n(")
	end := strings.IndexFunc(s, func(r rune) bool { return (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') })
	if end < 0 {
		end = len(s)
	}
	return queryWords[strings.ToUpper(s[:end])]
}

// oneLine keeps DuckDB's message (which may span lines, with a caret
// under the error) on the one line main prints.
func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}

// excerpt names a statement in an error: its first words.
func excerpt(stmt string) string {
	s := strings.Join(strings.Fields(skipComments(stmt)), " ")
	if len(s) > 40 {
		s = s[:40] + "..."
	}
	return s
}

// sqlProgress shows, on stderr, what a long statement has done so far.
type sqlProgress struct {
	w        io.Writer // stderr, but for tests
	on       bool
	terminal bool
	rows     *atomic.Int64 // rows of the chunks answered
	// provider is the lookups the provider answered, and the requests
	// they took: a chunk's rows count only once the chunk is done.
	provider func() (lookups, requests int64)
}

func newSQLProgress(w io.Writer, mode string, rows *atomic.Int64, provider func() (int64, int64)) *sqlProgress {
	f, ok := w.(*os.File)
	tty := ok && term.IsTerminal(int(f.Fd()))
	return &sqlProgress{w: w, on: mode == "on" || mode == "auto" && tty, terminal: tty, rows: rows, provider: provider}
}

// start reports on statement n every second until stop is called; a
// statement done within the first second shows nothing.
func (p *sqlProgress) start(n int) (stop func()) {
	if !p.on {
		return func() {}
	}
	done, finished := make(chan struct{}), make(chan struct{})
	rows0, began := p.rows.Load(), time.Now()
	look0, req0 := p.provider()
	go func() {
		defer close(finished)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		shown := false
		for {
			select {
			case <-done:
				if shown && p.terminal {
					fmt.Fprintln(p.w)
				}
				return
			case <-t.C:
			}
			secs := time.Since(began).Seconds()
			look, req := p.provider()
			line := fmt.Sprintf("statement %d: %s, %d rows answered, %d IDs looked up, %d provider requests (%.0f/s)",
				n, time.Since(began).Round(time.Second), p.rows.Load()-rows0, look-look0, req-req0, float64(req-req0)/secs)
			if p.terminal {
				fmt.Fprintf(p.w, "\r\033[K%s", line)
			} else {
				fmt.Fprintln(p.w, line)
			}
			shown = true
		}
	}()
	return func() { close(done); <-finished }
}

// splitStatements splits a script at the semicolons outside strings, quoted
// names, dollar quotes and comments. The driver would run several
// statements in one call, but return the last one's rows only; split, each
// query's rows can be printed. Statements of only comments are dropped.
func splitStatements(script string) []string {
	var out []string
	start := 0
	for i := 0; i < len(script); {
		switch c := script[i]; {
		case c == '\'' || c == '"':
			i = skipQuoted(script, i, c)
		case strings.HasPrefix(script[i:], "--"):
			i = skipTo(script, i+2, "\n")
		case strings.HasPrefix(script[i:], "/*"):
			i = skipTo(script, i+2, "*/")
		case c == '$':
			i = skipDollar(script, i)
		case c == ';':
			out = appendStatement(out, script[start:i])
			i++
			start = i
		default:
			i++
		}
	}
	return appendStatement(out, script[start:])
}

func appendStatement(out []string, s string) []string {
	if skipComments(s) == "" {
		return out
	}
	return append(out, strings.TrimSpace(s))
}

// skipQuoted returns the index after the quote that closes the one at i;
// a doubled quote is part of the text.
func skipQuoted(s string, i int, q byte) int {
	for j := i + 1; j < len(s); j++ {
		if s[j] == q {
			if j+1 < len(s) && s[j+1] == q {
				j++
				continue
			}
			return j + 1
		}
	}
	return len(s)
}

// skipTo returns the index after the first end at or after i.
func skipTo(s string, i int, end string) int {
	if k := strings.Index(s[i:], end); k >= 0 {
		return i + k + len(end)
	}
	return len(s)
}

// skipDollar skips a dollar-quoted string ($$...$$ or $tag$...$tag$); a
// $ that does not open one ($1, a parameter) is one character.
func skipDollar(s string, i int) int {
	j := i + 1
	for j < len(s) && (s[j] == '_' || s[j] >= 'a' && s[j] <= 'z' || s[j] >= 'A' && s[j] <= 'Z' || j > i+1 && s[j] >= '0' && s[j] <= '9') {
		j++
	}
	if j >= len(s) || s[j] != '$' {
		return i + 1
	}
	return skipTo(s, j+1, s[i:j+1])
}

// skipComments drops the blanks and comments a statement starts with.
func skipComments(s string) string {
	for {
		s = strings.TrimSpace(s)
		switch {
		case strings.HasPrefix(s, "--"):
			s = s[skipTo(s, 2, "\n"):]
		case strings.HasPrefix(s, "/*"):
			s = s[skipTo(s, 2, "*/"):]
		default:
			return s
		}
	}
}

// printer prints result sets as a table, CSV or JSON lines.
type printer struct {
	w      *bufio.Writer
	format string
	sets   int // result sets begun
	cols   []string
	table  [][]string // the current table's rows, held to size its columns
	csv    *csv.Writer
}

func newPrinter(stdout io.Writer, format string) *printer {
	if format == "auto" {
		format = "csv"
		if f, ok := stdout.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			format = "table"
		}
	}
	w := bufio.NewWriter(stdout)
	return &printer{w: w, format: format, csv: csv.NewWriter(w)}
}

func (p *printer) begin(cols []string) error {
	if p.sets > 0 && p.format != "json" {
		if _, err := p.w.WriteString("\n"); err != nil {
			return err
		}
	}
	p.sets++
	p.cols, p.table = cols, p.table[:0]
	if p.format == "csv" {
		return p.csv.Write(cols)
	}
	return nil
}

func (p *printer) row(vals []any) error {
	switch p.format {
	case "json":
		return p.jsonRow(vals)
	case "csv":
		rec := make([]string, len(vals))
		for i, v := range vals {
			rec[i], _ = cellText(v)
		}
		return p.csv.Write(rec)
	}
	rec := make([]string, len(vals))
	for i, v := range vals {
		text, null := cellText(v)
		if null {
			text = "NULL"
		}
		rec[i] = text
	}
	p.table = append(p.table, rec)
	return nil
}

// jsonRow prints one object a line, keys in column order.
func (p *printer) jsonRow(vals []any) error {
	line := []byte{'{'}
	for i, v := range vals {
		if i > 0 {
			line = append(line, ',')
		}
		k, err := json.Marshal(p.cols[i])
		if err != nil {
			return err
		}
		line = append(append(line, k...), ':')
		if b, ok := v.([]byte); ok {
			v = string(b)
		}
		j, err := appendJSON(line, v)
		if err != nil {
			if j, err = json.Marshal(fmt.Sprint(v)); err != nil {
				return err
			}
			j = append(line, j...)
		}
		line = j
	}
	_, err := p.w.Write(append(line, '}', '\n'))
	return err
}

// end finishes a result set: a table is printed now that its widths are
// known.
func (p *printer) end() error {
	switch p.format {
	case "csv":
		p.csv.Flush()
		return p.csv.Error()
	case "json":
		return nil
	}
	widths := make([]int, len(p.cols))
	for i, c := range p.cols {
		widths[i] = runewidth.StringWidth(c)
	}
	for _, r := range p.table {
		for i, c := range r {
			widths[i] = max(widths[i], runewidth.StringWidth(c))
		}
	}
	dashes := make([]string, len(widths))
	for i, w := range widths {
		dashes[i] = strings.Repeat("-", w)
	}
	var b []byte
	b = tableLine(b, p.cols, widths)
	b = tableLine(b, dashes, widths)
	for _, r := range p.table {
		b = tableLine(b, r, widths)
	}
	if n := len(p.table); n == 1 {
		b = append(b, "(1 row)\n"...)
	} else {
		b = fmt.Appendf(b, "(%d rows)\n", n)
	}
	_, err := p.w.Write(b)
	return err
}

// tableLine appends one line of cells padded to widths, in terminal
// columns (a CJK character takes two, a combining mark none); the last is
// not padded, so no line ends in blanks.
func tableLine(b []byte, cells []string, widths []int) []byte {
	for i, c := range cells {
		if i > 0 {
			b = append(b, "  "...)
		}
		b = append(b, c...)
		if i < len(cells)-1 {
			b = append(b, strings.Repeat(" ", widths[i]-runewidth.StringWidth(c))...)
		}
	}
	return append(b, '\n')
}

func (p *printer) flush() error { return p.w.Flush() }

// cellText is a value as text for a table or CSV cell, and whether it is
// NULL. JSON values and nested types are printed as compact JSON
// (appendJSON).
func cellText(v any) (string, bool) {
	switch x := v.(type) {
	case nil:
		return "", true
	case string:
		return x, false
	case []byte:
		return string(x), false
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64), false
	case float32:
		return strconv.FormatFloat(float64(x), 'g', -1, 32), false
	case time.Time:
		return x.Format(time.RFC3339Nano), false
	case map[string]any, []any:
		b, err := appendJSON(nil, x)
		if err == nil {
			return string(b), false
		}
	}
	return fmt.Sprint(v), false
}

// appendJSON appends v as compact JSON, as json.Marshal does, except for
// the order of an object's keys: the driver hands a JSON value decoded, its
// objects as maps, so their order is lost, and json.Marshal would sort
// them. The keys of resolve_location's value come back in the gateway's
// order instead (variantKeys), so a record prints as the VARIANT text
// Snowflake gets; other keys follow, sorted.
func appendJSON(b []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		rank := func(k string) int {
			if r, ok := variantKeys[k]; ok {
				return r
			}
			return len(variantKeys)
		}
		slices.SortFunc(keys, func(a, b string) int {
			return cmp.Or(cmp.Compare(rank(a), rank(b)), strings.Compare(a, b))
		})
		b = append(b, '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			kj, err := json.Marshal(k)
			if err != nil {
				return nil, err
			}
			b = append(append(b, kj...), ':')
			if b, err = appendJSON(b, x[k]); err != nil {
				return nil, err
			}
		}
		return append(b, '}'), nil
	case []any:
		b = append(b, '[')
		for i, e := range x {
			if i > 0 {
				b = append(b, ',')
			}
			var err error
			if b, err = appendJSON(b, e); err != nil {
				return nil, err
			}
		}
		return append(b, ']'), nil
	}
	j, err := json.Marshal(v)
	return append(b, j...), err
}

// variantKeys ranks the keys of the gateway's VARIANT in its order, read
// from what gateway.EncodeRecord writes for a record with every field set.
var variantKeys = func() map[string]int {
	s, f := "x", 1.0
	js, err := gateway.EncodeRecord(&locapi.Record{ID: s, Label: &s, GeoLabel: &s, StreetAddress: &s,
		CityLabel: &s, PostalCode: &s, CountryLabel: &s, Latitude: &f, Longitude: &f})
	rank := map[string]int{}
	if err != nil {
		return rank
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	if _, err := dec.Token(); err != nil { // {
		return rank
	}
	for dec.More() {
		k, err := dec.Token()
		name, ok := k.(string)
		if err != nil || !ok {
			return rank
		}
		rank[name] = len(rank)
		var skip json.RawMessage
		if dec.Decode(&skip) != nil {
			return rank
		}
	}
	return rank
}()
