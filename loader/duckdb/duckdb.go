// Package duckdb is the embedded warehouse of the loader: one DuckDB file
// holding the source table (or reading a CSV or Parquet file) and the
// target, misses and failures tables. It lives apart from the pipeline so
// that only its importers link DuckDB's cgo bindings.
package duckdb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"

	duckdbgo "github.com/duckdb/duckdb-go/v2"

	"github.com/snowgate/snowgate/loader"
)

// duckDBDefaults are the settings Open applies unless the path's query
// string sets them. A backfill must fit in a small container beside its
// resolver (1M source rows in under 200 MB for the whole process), and its
// pace is the provider's, so DuckDB gets one thread and a small cache of
// table blocks (it re-reads them from the OS page cache and spills to disk
// rather than grow), checkpoints in small steps, and gives freed memory
// back promptly (its allocator keeps 128MB by default).
func duckDBDefaults() map[string]string {
	return map[string]string{
		"memory_limit":                 "48MB",
		"threads":                      "1",
		"checkpoint_threshold":         "4MB",
		"allocator_flush_threshold":    "8MB",
		"allocator_background_threads": "true",
	}
}

var duckDBTypes = loader.TypeNames{loader.TypeText: "VARCHAR", loader.TypeFloat: "DOUBLE", loader.TypeInt: "BIGINT", loader.TypeTimestamp: "TIMESTAMP"}

// stageTable is the temporary table a commit appends to before merging,
// created and dropped by each commit: DuckDB does not give back the memory of
// rows deleted from a temporary table. Its columns are loader.StageColumns,
// from which each result table takes its own by name.
const stageTable = "SNOWGATE_STAGE"

// Warehouse is the embedded warehouse: one DuckDB file holding the source (or
// reading a CSV/Parquet file) and the target, misses and failures tables.
type Warehouse struct {
	db     *sql.DB
	tables loader.Tables
	// source is the FROM item the IDs come from, aliased s.
	source string
	// w is the connection commits stage on. Only the pinned goroutine uses
	// it, like every other call into DuckDB.
	w *sql.Conn
	// calls carries work to the pinned goroutine until closed is closed.
	calls     chan func()
	closed    chan struct{}
	closeOnce sync.Once
	done      chan struct{} // closed when the pinned goroutine has ended
}

var _ loader.Warehouse = (*Warehouse)(nil)

// Open opens the DuckDB database at path. path may carry DuckDB
// settings as a query string ("file.duckdb?threads=4"); unless set there,
// memory_limit is 48MB, threads 1, checkpoint_threshold 4MB,
// allocator_flush_threshold 8MB and allocator_background_threads true.
//
// A missing file is created only when tables.SourceFile is set, and only
// once that file is found to have the ID column: otherwise the source table
// cannot be in it, and Open returns a *loader.SourceError without creating
// anything. Setup checks a source table in an existing file.
func Open(ctx context.Context, path string, tables loader.Tables) (*Warehouse, error) {
	if err := tables.Validate(); err != nil {
		return nil, err
	}
	dsn, err := duckDBDSN(path)
	if err != nil {
		return nil, err
	}
	source, err := duckDBSource(tables)
	if err != nil {
		return nil, err
	}
	file, _, _ := strings.Cut(path, "?")
	if err := checkBeforeOpen(ctx, file, tables, source); err != nil {
		return nil, err
	}
	db, err := sql.Open("duckdb", dsn)
	if err != nil {
		return nil, fmt.Errorf("open duckdb %q: %w", path, err)
	}
	w, err := db.Conn(ctx)
	if err != nil {
		_ = db.Close() // nothing written yet: the Conn's error is the one to report
		return nil, fmt.Errorf("open duckdb %q: %w", path, err)
	}
	d := &Warehouse{db: db, tables: tables, source: source, w: w,
		calls: make(chan func()), closed: make(chan struct{}), done: make(chan struct{})}
	go d.pinned()
	return d, nil
}

// pinned runs every call into DuckDB on one OS thread. DuckDB's allocator
// keeps caches per thread, and the Go scheduler would otherwise spread the
// calls over whichever threads it has: measured on 1M rows, the peak RSS
// fell from 190 to 147 MB.
func (d *Warehouse) pinned() {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer close(d.done)
	for {
		select {
		case f := <-d.calls:
			f()
		case <-d.closed:
			return
		}
	}
}

var errDuckDBClosed = errors.New("duckdb: closed")

// call runs f on the pinned goroutine and returns its error. Calls are
// serialized; ctx only bounds the wait for a turn (f gets it too).
func (d *Warehouse) call(ctx context.Context, f func() error) error {
	errc := make(chan error, 1)
	select {
	case d.calls <- func() { errc <- f() }:
		return <-errc
	case <-d.closed:
		return errDuckDBClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

func duckDBDSN(path string) (string, error) {
	file, query, _ := strings.Cut(path, "?")
	if file == "" {
		return "", errors.New("duckdb: empty database path")
	}
	opts, err := url.ParseQuery(query)
	if err != nil {
		return "", fmt.Errorf("duckdb settings %q: %w", query, err)
	}
	return file + "?" + withDuckDBDefaults(opts).Encode(), nil
}

func withDuckDBDefaults(opts url.Values) url.Values {
	for k, v := range duckDBDefaults() {
		if !opts.Has(k) {
			opts.Set(k, v)
		}
	}
	return opts
}

// duckDBSource is the source relation: the table, or a reader of the file.
// A file's IDs are read as text so that "007" stays "007".
func duckDBSource(t loader.Tables) (string, error) {
	if t.SourceFile == "" {
		return t.Source.String() + " AS s", nil
	}
	if _, err := os.Stat(t.SourceFile); errors.Is(err, fs.ErrNotExist) {
		return "", sourceErrorf(loader.SourceFile, "source file %q not found", t.SourceFile)
	} else if err != nil {
		return "", sourceErrorf(loader.SourceFile, "source file: %v", err)
	}
	lit := "'" + strings.ReplaceAll(t.SourceFile, "'", "''") + "'"
	switch strings.ToLower(filepath.Ext(t.SourceFile)) {
	case ".csv", ".tsv", ".txt":
		return "read_csv(" + lit + ", header = true, all_varchar = true) AS s", nil
	case ".parquet":
		return "read_parquet(" + lit + ") AS s", nil
	}
	return "", sourceErrorf(loader.SourceFile, "source file %q: want a .csv or .parquet file", t.SourceFile)
}

// checkBeforeOpen runs the source checks that must pass before the database
// file is opened, because opening creates it: a file that does not exist
// cannot hold the source table, and a source file must have the ID column.
func checkBeforeOpen(ctx context.Context, file string, t loader.Tables, source string) error {
	if t.SourceFile != "" {
		return checkSourceFile(ctx, t, source)
	}
	if file == ":memory:" {
		return nil // Setup reports that it holds no tables
	}
	if _, err := os.Stat(file); errors.Is(err, fs.ErrNotExist) {
		return sourceErrorf(loader.SourceTable, "source table %s not found: the database file %q does not exist, so it has no tables",
			lookedFor(t.Source, duckDBDefaultSchema), file)
	}
	return nil
}

// duckDBDefaultSchema is the schema DuckDB resolves an unqualified name in.
const duckDBDefaultSchema = "main"

// checkSourceFile reads the source file's header in a throwaway in-memory
// database, so that a file without the ID column leaves no database file
// behind.
func checkSourceFile(ctx context.Context, t loader.Tables, source string) error {
	db, err := sql.Open("duckdb", "?"+withDuckDBDefaults(url.Values{}).Encode())
	if err != nil {
		return fmt.Errorf("duckdb: check source file: %w", err)
	}
	defer func() { _ = db.Close() }() // in memory and only read: nothing to lose
	rows, err := db.QueryContext(ctx, "SELECT * FROM "+source+" LIMIT 0")
	if err != nil {
		return sourceErrorf(loader.SourceFile, "source file %q: %s", t.SourceFile, firstLine(err))
	}
	cols, err := rows.Columns()
	rows.Close()
	if err != nil {
		return sourceErrorf(loader.SourceFile, "source file %q: %s", t.SourceFile, firstLine(err))
	}
	if !slices.ContainsFunc(cols, func(c string) bool { return strings.EqualFold(c, t.IDColumn.Name()) }) {
		return sourceErrorf(loader.SourceColumn, "column %s not in source file %q; its columns: %s",
			t.IDColumn.Name(), t.SourceFile, loader.NameList(cols, maxListed))
	}
	return nil
}

// sourceErrorf makes a *loader.SourceError.
func sourceErrorf(kind loader.SourceKind, format string, args ...any) error {
	return &loader.SourceError{Kind: kind, Msg: fmt.Sprintf(format, args...)}
}

// maxListed caps the names a SourceError lists.
const maxListed = 20

// firstLine is err's first line: DuckDB appends the query and a caret
// below, which would break a one-line error.
func firstLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}

// lookedFor is a table's name as DuckDB resolves it, unquoted, with an
// unqualified name placed in schema.
func lookedFor(id loader.Ident, schema string) string {
	if len(id.Parts()) == 1 {
		return strings.ToUpper(schema) + "." + id.Parts()[0]
	}
	return strings.Join(id.Parts(), ".")
}

// Setup creates the result tables and the staging table, and checks that
// the source and target have the columns the loader uses.
func (d *Warehouse) Setup(ctx context.Context) error {
	return d.call(ctx, func() error { return d.setup(ctx) })
}

func (d *Warehouse) setup(ctx context.Context) error {
	if err := d.checkSource(ctx); err != nil {
		return err
	}
	if _, err := d.w.ExecContext(ctx, fmt.Sprintf("SELECT %s FROM %s LIMIT 0", d.idExpr(), d.source)); err != nil {
		return fmt.Errorf("source %s, id column %s: %w", d.sourceName(), d.tables.IDColumn, err)
	}
	stmts := []string{
		loader.CreateTableSQL(d.tables.Target, loader.TargetColumns(), duckDBTypes),
		loader.CreateTableSQL(d.tables.Misses(), loader.MissColumns(), duckDBTypes),
		loader.CreateTableSQL(d.tables.Failures(), loader.FailureColumns(), duckDBTypes),
	}
	for _, s := range stmts {
		if _, err := d.w.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("duckdb setup: %w", err)
		}
	}
	for _, t := range []struct {
		table loader.Ident
		cols  []loader.Column
	}{{d.tables.Target, loader.TargetColumns()}, {d.tables.Misses(), loader.MissColumns()}, {d.tables.Failures(), loader.FailureColumns()}} {
		if _, err := d.w.ExecContext(ctx, fmt.Sprintf("SELECT %s FROM %s LIMIT 0", loader.ColumnList(t.cols, ""), t.table)); err != nil {
			return fmt.Errorf("table %s exists without the loader's columns (%s): %w", t.table, loader.ColumnList(t.cols, ""), err)
		}
	}
	return nil
}

// catalogTable is a table or view as information_schema names it.
type catalogTable struct{ catalog, schema, name string }

// checkSource looks the source table and its ID column up in the catalog,
// matching names the way DuckDB does (case-insensitively; SCHEMA.TABLE or
// CATALOG.TABLE for two parts), so that a wrong name is reported with what
// is there instead.
func (d *Warehouse) checkSource(ctx context.Context) error {
	if d.tables.SourceFile != "" {
		return nil // checked before the database was opened
	}
	var curDB, curSchema string
	if err := d.w.QueryRowContext(ctx, "SELECT current_database(), current_schema()").Scan(&curDB, &curSchema); err != nil {
		return fmt.Errorf("duckdb setup: %w", err)
	}
	all, err := d.catalogTables(ctx)
	if err != nil {
		return err
	}
	want := d.tables.Source.Parts()
	i := slices.IndexFunc(all, func(t catalogTable) bool { return t.is(want, curDB, curSchema) })
	if i < 0 {
		names := make([]string, len(all))
		for j, t := range all {
			names[j] = t.display(curDB, curSchema)
		}
		return sourceErrorf(loader.SourceTable, "source table %s not found; tables in the database: %s",
			lookedFor(d.tables.Source, curSchema), loader.NameList(names, maxListed))
	}
	cols, err := d.columnsOf(ctx, all[i])
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(cols, func(c string) bool { return strings.EqualFold(c, d.tables.IDColumn.Name()) }) {
		return sourceErrorf(loader.SourceColumn, "column %s not in %s; its columns: %s",
			d.tables.IDColumn.Name(), all[i].display(curDB, curSchema), loader.NameList(cols, maxListed))
	}
	return nil
}

func (d *Warehouse) catalogTables(ctx context.Context) ([]catalogTable, error) {
	rows, err := d.w.QueryContext(ctx, `SELECT table_catalog, table_schema, table_name FROM information_schema.tables
WHERE table_catalog NOT IN ('system', 'temp') ORDER BY table_schema <> current_schema(), table_schema, table_name`)
	if err != nil {
		return nil, fmt.Errorf("duckdb setup: list tables: %w", err)
	}
	defer rows.Close()
	var out []catalogTable
	for rows.Next() {
		var t catalogTable
		if err := rows.Scan(&t.catalog, &t.schema, &t.name); err != nil {
			return nil, fmt.Errorf("duckdb setup: list tables: %w", err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("duckdb setup: list tables: %w", err)
	}
	return out, nil
}

func (d *Warehouse) columnsOf(ctx context.Context, t catalogTable) ([]string, error) {
	rows, err := d.w.QueryContext(ctx, `SELECT column_name FROM information_schema.columns
WHERE table_catalog = $1 AND table_schema = $2 AND table_name = $3 ORDER BY ordinal_position`, t.catalog, t.schema, t.name)
	if err != nil {
		return nil, fmt.Errorf("duckdb setup: columns of %s: %w", t.name, err)
	}
	defer rows.Close()
	var cols []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			return nil, fmt.Errorf("duckdb setup: columns of %s: %w", t.name, err)
		}
		cols = append(cols, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("duckdb setup: columns of %s: %w", t.name, err)
	}
	return cols, nil
}

// is reports whether parts (TABLE, SCHEMA.TABLE or CATALOG.TABLE,
// CATALOG.SCHEMA.TABLE) name t, given the session's catalog and schema.
func (t catalogTable) is(parts []string, curDB, curSchema string) bool {
	eq := strings.EqualFold
	n := len(parts)
	if !eq(t.name, parts[n-1]) {
		return false
	}
	switch n {
	case 1:
		return eq(t.catalog, curDB) && eq(t.schema, curSchema)
	case 2:
		return eq(t.catalog, curDB) && eq(t.schema, parts[0]) || eq(t.catalog, parts[0]) && eq(t.schema, duckDBDefaultSchema)
	}
	return eq(t.catalog, parts[0]) && eq(t.schema, parts[1])
}

// display names t as short as the session would resolve it.
func (t catalogTable) display(curDB, curSchema string) string {
	switch {
	case !strings.EqualFold(t.catalog, curDB):
		return t.catalog + "." + t.schema + "." + t.name
	case !strings.EqualFold(t.schema, curSchema):
		return t.schema + "." + t.name
	}
	return t.name
}

func (d *Warehouse) sourceName() string {
	if d.tables.SourceFile != "" {
		return fmt.Sprintf("file %q", d.tables.SourceFile)
	}
	return d.tables.Source.String()
}

func columnDefs(cols []loader.Column, types loader.TypeNames) string {
	defs := make([]string, len(cols))
	for i, c := range cols {
		defs[i] = fmt.Sprintf("%q %s", c.Name, types[c.Type])
	}
	return strings.Join(defs, ", ")
}

func (d *Warehouse) idExpr() string { return "CAST(s." + d.tables.IDColumn.String() + " AS VARCHAR)" }

// pendingFrom is the relation of source IDs (column p.id, NULLs dropped)
// that sel selects, with args from $2 on; $1 is the keyset bound. The result
// tables are joined as ANTI/SEMI joins over subqueries bounded by $1 too:
// the pipeline commits in roughly ascending ID order, so on every page but
// the first few those subqueries are nearly empty, and the hash tables
// DuckDB builds stay small.
func (d *Warehouse) pendingFrom(sel loader.Selection) (string, []any) {
	src := fmt.Sprintf(`(SELECT %s AS id FROM %s) AS p`, d.idExpr(), d.source)
	bounded := func(t loader.Ident, extra string) string {
		return fmt.Sprintf(`(SELECT "ID" FROM %s WHERE "ID" >= $1%s) AS`, t, extra)
	}
	if sel.RetryFailed {
		return fmt.Sprintf(`%s SEMI JOIN %s f ON f."ID" = p.id`, src, bounded(d.tables.Failures(), "")), nil
	}
	fresh, args := "", []any(nil)
	if cutoff, ok := sel.Cutoff(); ok {
		fresh, args = ` AND "RESOLVED_AT" >= $2`, []any{cutoff}
	}
	return fmt.Sprintf(`%s ANTI JOIN %s t ON t."ID" = p.id ANTI JOIN %s m ON m."ID" = p.id ANTI JOIN %s f ON f."ID" = p.id`,
		src, bounded(d.tables.Target, fresh), bounded(d.tables.Misses(), fresh), bounded(d.tables.Failures(), "")), args
}

// Pending pages with a top-N over the raw source rows rather than SELECT
// DISTINCT: DISTINCT would hash every remaining ID on every page, while a
// top-N holds only limit rows. Duplicates are dropped here; they are
// adjacent in the ordered page.
func (d *Warehouse) Pending(ctx context.Context, after string, limit int, sel loader.Selection) ([]string, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("pending: limit %d, want > 0", limit)
	}
	var ids []string
	err := d.call(ctx, func() (err error) {
		ids, err = d.pending(ctx, after, limit, sel)
		return err
	})
	return ids, err
}

func (d *Warehouse) pending(ctx context.Context, after string, limit int, sel loader.Selection) ([]string, error) {
	op := ">"
	if after == "" {
		op = ">=" // the empty ID, if any, is a source row too
	}
	from, args := d.pendingFrom(sel)
	q := fmt.Sprintf(`SELECT p.id FROM %s WHERE p.id IS NOT NULL AND p.id %s $1 ORDER BY p.id LIMIT %d`, from, op, limit)
	rows, err := d.db.QueryContext(ctx, q, append([]any{after}, args...)...)
	if err != nil {
		return nil, fmt.Errorf("pending ids after %q: %w", after, err)
	}
	defer rows.Close()
	ids := make([]string, 0, limit)
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("pending ids: %w", err)
		}
		if n := len(ids); n > 0 && ids[n-1] == id {
			continue
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("pending ids after %q: %w", after, err)
	}
	return ids, nil
}

// CountPending counts distinct pending IDs. It hashes them all once, which
// DuckDB spills to disk past its memory limit.
func (d *Warehouse) CountPending(ctx context.Context, sel loader.Selection) (int64, error) {
	from, args := d.pendingFrom(sel)
	q := fmt.Sprintf(`SELECT count(DISTINCT p.id) FROM %s WHERE p.id IS NOT NULL AND p.id >= $1`, from)
	var n int64
	err := d.call(ctx, func() error { return d.db.QueryRowContext(ctx, q, append([]any{""}, args...)...).Scan(&n) })
	if err != nil {
		return 0, fmt.Errorf("count pending ids: %w", err)
	}
	return n, nil
}

// DB is the warehouse's own database handle, for reading its tables in the
// same process while it is open: DuckDB refuses a second handle on the file
// opened with other settings. Statements on it bypass the pinned thread;
// the result tables are written only by Commit.
func (d *Warehouse) DB() *sql.DB { return d.db }

// Close releases the database; the file is complete after each commit.
func (d *Warehouse) Close() error {
	first := false
	d.closeOnce.Do(func() { first = true; close(d.closed) })
	if !first {
		return nil
	}
	<-d.done
	werr := d.w.Close()
	if err := d.db.Close(); err != nil {
		return fmt.Errorf("close duckdb: %w", err)
	}
	if werr != nil && !errors.Is(werr, sql.ErrConnDone) {
		return fmt.Errorf("close duckdb: %w", werr)
	}
	return nil
}

// rawConn runs f with the writer's driver connection, for the Appender.
func (d *Warehouse) rawConn(f func(driver.Conn) error) error {
	return d.w.Raw(func(c any) error {
		dc, ok := c.(driver.Conn)
		if !ok {
			return fmt.Errorf("duckdb: unexpected driver connection %T", c)
		}
		return f(dc)
	})
}

// appendStage appends rows to the staging table in bulk.
func (d *Warehouse) appendStage(rows []loader.Row) error {
	return d.rawConn(func(dc driver.Conn) error {
		a, err := duckdbgo.NewAppender(dc, "temp", "main", stageTable)
		if err != nil {
			return fmt.Errorf("stage appender: %w", err)
		}
		cols := loader.StageColumns()
		for _, r := range rows {
			if err := a.AppendRow(stageValues(cols, r)...); err != nil {
				_ = a.Close() // the row's error is the one to report
				return fmt.Errorf("stage row %q: %w", r.ID, err)
			}
		}
		if err := a.Close(); err != nil {
			return fmt.Errorf("stage rows: %w", err)
		}
		return nil
	})
}

// stageValues is r's values in the order of cols, the staging table's.
func stageValues(cols []loader.Column, r loader.Row) []driver.Value {
	v := make([]driver.Value, len(cols))
	for i, c := range cols {
		v[i] = c.Value(r)
	}
	return v
}

// Commit stages rows with the Appender, then merges them in one
// transaction, so a crash leaves either all of them or none. Every merge
// statement is bounded by the batch's smallest and largest ID: the pipeline
// writes in roughly ascending order, so the bound lets DuckDB skip most row
// groups instead of probing the whole table.
func (d *Warehouse) Commit(ctx context.Context, rows []loader.Row) error {
	rows = lastPerID(rows)
	if len(rows) == 0 {
		return nil
	}
	for _, r := range rows {
		if err := r.Validate(); err != nil {
			return fmt.Errorf("commit: row %q: %w", r.ID, err)
		}
	}
	return d.call(ctx, func() error { return d.commit(ctx, rows) })
}

func (d *Warehouse) commit(ctx context.Context, rows []loader.Row) error {
	create := fmt.Sprintf("CREATE OR REPLACE TEMP TABLE %q (%s)", stageTable, columnDefs(loader.StageColumns(), duckDBTypes))
	if _, err := d.w.ExecContext(ctx, create); err != nil {
		return fmt.Errorf("commit: create staging table: %w", err)
	}
	defer d.dropStage()
	if err := d.appendStage(rows); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	if err := d.merge(ctx, rows); err != nil {
		return fmt.Errorf("commit %d rows: %w", len(rows), err)
	}
	return nil
}

// dropStage frees the staging table, even when the commit was cancelled.
func (d *Warehouse) dropStage() {
	_, _ = d.w.ExecContext(context.Background(), fmt.Sprintf("DROP TABLE IF EXISTS temp.%q", stageTable))
}

func (d *Warehouse) merge(ctx context.Context, rows []loader.Row) (err error) {
	lo, hi := rows[0].ID, rows[0].ID
	var kinds [4]bool // found, not found or no location, failed, any resolved
	for _, r := range rows {
		lo, hi = min(lo, r.ID), max(hi, r.ID)
		switch r.Outcome {
		case loader.OutcomeFound:
			kinds[0], kinds[3] = true, true
		case loader.OutcomeFailed:
			kinds[2] = true
		default:
			kinds[1], kinds[3] = true, true
		}
	}
	tx, err := d.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	for _, s := range d.mergeStatements(kinds) {
		var args []any
		if strings.Contains(s, "$1") {
			args = []any{lo, hi}
		}
		if _, err := tx.ExecContext(ctx, s, args...); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// mergeStatements are the statements one commit runs, skipping those the
// batch has no rows for. Those that mention $1 and $2 take the batch's ID
// range.
func (d *Warehouse) mergeStatements(kinds [4]bool) []string {
	found, missed, failed, resolved := kinds[0], kinds[1], kinds[2], kinds[3]
	stage := fmt.Sprintf("%q", stageTable)
	inStage := func(cond string) string {
		return fmt.Sprintf(`"ID" BETWEEN $1 AND $2 AND "ID" IN (SELECT "ID" FROM %s WHERE %s)`, stage, cond)
	}
	t, m, f := d.tables.Target, d.tables.Misses(), d.tables.Failures()
	var s []string
	if failed {
		// A repeated failure counts its attempts across runs.
		s = append(s, fmt.Sprintf(`UPDATE %s AS st SET "ATTEMPTS" = f."ATTEMPTS" + 1 FROM %s AS f
WHERE st."ID" = f."ID" AND st."OUTCOME" = 'failed' AND f."ID" BETWEEN $1 AND $2`, stage, f))
	}
	if resolved {
		// A new answer replaces the old one, whichever table held it; a
		// failure leaves the last good answer in place.
		s = append(s,
			fmt.Sprintf(`DELETE FROM %s WHERE %s`, t, inStage(`"OUTCOME" <> 'failed'`)),
			fmt.Sprintf(`DELETE FROM %s WHERE %s`, m, inStage(`"OUTCOME" <> 'failed'`)))
	}
	// Each table takes its own columns from the stage, by name.
	insert := func(into loader.Ident, cols []loader.Column, where string) string {
		list := loader.ColumnList(cols, "")
		return fmt.Sprintf(`INSERT INTO %s (%s) SELECT %s FROM %s WHERE "OUTCOME" %s`, into, list, list, stage, where)
	}
	if found {
		s = append(s, insert(t, loader.TargetColumns(), "= 'found'"))
	}
	if missed {
		s = append(s, insert(m, loader.MissColumns(), "IN ('not_found', 'no_location')"))
	}
	s = append(s, fmt.Sprintf(`DELETE FROM %s WHERE %s`, f, inStage("true")))
	if failed {
		s = append(s, insert(f, loader.FailureColumns(), "= 'failed'"))
	}
	return s
}

// lastPerID keeps the last row of each ID, in first-seen order, so one
// commit never writes an ID twice.
func lastPerID(rows []loader.Row) []loader.Row {
	idx := make(map[string]int, len(rows))
	out := make([]loader.Row, 0, len(rows))
	for _, r := range rows {
		if i, ok := idx[r.ID]; ok {
			out[i] = r
			continue
		}
		idx[r.ID] = len(out)
		out = append(out, r)
	}
	return out
}
