package snowflake

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"slices"
	"strings"

	sf "github.com/snowflakedb/gosnowflake"

	"github.com/snowgate/snowgate/loader"
)

// DefaultInsertRows is Config.InsertRows when zero.
const DefaultInsertRows = 16384

// Config names the tables and tunes the bulk insert. Zero values are the
// documented defaults.
type Config struct {
	// Tables names the source, its ID column and the target; the misses
	// and failures tables sit beside the target, and so does the session's
	// temporary <TARGET>_SNOWGATE_STAGING. A zero name takes the default of
	// loader.NewTables: MASTER_TABLE, ID, STANDARDIZED_LOCATIONS. SourceFile
	// is a DuckDB feature and is refused.
	Tables loader.Tables
	// InsertRows caps the rows of one bulk INSERT, which bounds the driver's
	// memory (it renders every bound value as a string); default
	// DefaultInsertRows.
	InsertRows int
}

// Warehouse is loader.Warehouse on Snowflake.
//
// Reads (Setup, CountPending, Pending) use the pool. Commits run on one
// pinned session, because the staging table is TEMPORARY and so exists only
// in the session that created it.
type Warehouse struct {
	db         *sql.DB
	t          tables
	insertRows int

	// session is a one-slot semaphore owning conn and staged: commits are
	// serialized on the one pinned session, and a caller whose ctx ends
	// while waiting gives up instead of blocking.
	session chan struct{}
	conn    *sql.Conn
	staged  bool // the staging table exists in conn's session
}

var _ loader.Warehouse = (*Warehouse)(nil)

// Open connects with a gosnowflake DSN (the SNOWFLAKE_DSN form,
// user[:password]@account/database/schema?warehouse=...&role=...&authenticator=...).
// Errors never quote the DSN, which may hold a password.
func Open(ctx context.Context, dsn string, cfg Config) (*Warehouse, error) {
	dc, err := sf.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("snowflake: parse DSN: %w", err)
	}
	return OpenConfig(ctx, *dc, cfg)
}

// OpenConfig connects with a gosnowflake.Config (see ConfigFromEnv). It logs
// in once, pinning the session commits will use, so bad credentials fail
// here rather than at the first commit.
func OpenConfig(ctx context.Context, dc sf.Config, cfg Config) (*Warehouse, error) {
	if dc.Application == "" {
		dc.Application = "snowgate"
	}
	db := sql.OpenDB(sf.NewConnector(sf.SnowflakeDriver{}, dc))
	// One pinned session for commits, two for the reader's page and count
	// queries; each is a Snowflake login, so keep them few.
	db.SetMaxOpenConns(3)
	db.SetMaxIdleConns(3)
	w, err := New(db, cfg)
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("snowflake: connect: %w", err)
	}
	w.conn = conn
	return w, nil
}

// New wraps an open *sql.DB of the gosnowflake driver (the bulk insert uses
// its array binds, so no other driver will do). Close closes db.
func New(db *sql.DB, cfg Config) (*Warehouse, error) {
	if db == nil {
		return nil, errors.New("snowflake: nil *sql.DB")
	}
	t, err := newTables(withDefaults(cfg.Tables))
	if err != nil {
		return nil, fmt.Errorf("snowflake: %w", err)
	}
	if cfg.InsertRows < 0 {
		return nil, fmt.Errorf("snowflake: InsertRows %d is negative", cfg.InsertRows)
	}
	if cfg.InsertRows == 0 {
		cfg.InsertRows = DefaultInsertRows
	}
	return &Warehouse{
		db: db, t: t, insertRows: cfg.InsertRows,
		session: make(chan struct{}, 1),
	}, nil
}

// withDefaults fills the names lt leaves zero.
func withDefaults(lt loader.Tables) loader.Tables {
	def, err := loader.NewTables("", "", "")
	if err != nil {
		return lt // the defaults are constants; newTables reports what is missing
	}
	for _, f := range []struct{ id, def *loader.Ident }{
		{&lt.Source, &def.Source}, {&lt.IDColumn, &def.IDColumn}, {&lt.Target, &def.Target},
	} {
		if f.id.String() == "" {
			*f.id = *f.def
		}
	}
	return lt
}

// Setup checks that the source table and its ID column exist, then creates
// the target, misses and failures tables when missing. A wrong source is a
// *loader.SourceError, and nothing is created.
func (w *Warehouse) Setup(ctx context.Context) error {
	if err := w.checkSource(ctx); err != nil {
		return err
	}
	for _, q := range w.t.setupSQL() {
		if _, err := w.db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("snowflake: setup %s: %w", w.t.target, err)
		}
	}
	return nil
}

// errObjectMissing is Snowflake's error number for an object that does not
// exist or that the role may not see ("002003").
const errObjectMissing = 2003

// maxListed caps the names a source error lists.
const maxListed = 20

// checkSource looks the source table and its ID column up in
// INFORMATION_SCHEMA. INFORMATION_SCHEMA shows only what the role may see,
// which is also all the loader could read.
func (w *Warehouse) checkSource(ctx context.Context) error {
	db, schema, role, err := w.sourceSchema(ctx)
	if err != nil {
		return err
	}
	table := w.t.source.Name()
	name := db + "." + schema + "." + table
	cols, err := w.names(ctx, sourceColumnsSQL(db), schema, table)
	var sfe *sf.SnowflakeError
	if errors.As(err, &sfe) && sfe.Number == errObjectMissing {
		return &loader.SourceError{Kind: loader.SourceTable, Msg: fmt.Sprintf(
			"source table %s not found: database %s does not exist (or is not visible to role %s)", name, db, role)}
	} else if err != nil {
		return fmt.Errorf("snowflake: setup: columns of %s: %w", name, err)
	}
	if len(cols) == 0 {
		tables, err := w.names(ctx, schemaTablesSQL(db), schema)
		if err != nil {
			return fmt.Errorf("snowflake: setup: tables of %s.%s: %w", db, schema, err)
		}
		return &loader.SourceError{Kind: loader.SourceTable, Msg: fmt.Sprintf(
			"source table %s not found (or not visible to role %s); tables in %s.%s: %s",
			name, role, db, schema, loader.NameList(tables, maxListed))}
	}
	if !slices.Contains(cols, w.t.idCol.Name()) {
		return &loader.SourceError{Kind: loader.SourceColumn, Msg: fmt.Sprintf("column %s not in %s; its columns: %s",
			w.t.idCol.Name(), name, loader.NameList(cols, maxListed))}
	}
	return nil
}

// sourceSchema is the database and schema the source name resolves in: its
// own qualification, or the session's current ones, as Snowflake resolves
// it. role is the session's role, for the error messages.
func (w *Warehouse) sourceSchema(ctx context.Context) (db, schema, role string, err error) {
	var curDB, curSchema, curRole sql.NullString
	if err := w.db.QueryRowContext(ctx, sessionSQL).Scan(&curDB, &curSchema, &curRole); err != nil {
		return "", "", "", fmt.Errorf("snowflake: setup: %w", err)
	}
	parts := w.t.source.Parts()
	db, schema = curDB.String, curSchema.String
	switch len(parts) {
	case 3:
		db, schema = parts[0], parts[1]
	case 2:
		schema = parts[0]
	}
	if db == "" || schema == "" {
		return "", "", "", &loader.SourceError{Kind: loader.SourceTable, Msg: fmt.Sprintf("source table %s: the session has "+
			"no current database or schema; qualify it as DATABASE.SCHEMA.TABLE or connect with a database and schema",
			strings.Join(parts, "."))}
	}
	return db, schema, curRole.String, nil
}

// names runs q, which selects one text column, and returns its values.
func (w *Warehouse) names(ctx context.Context, q string, args ...any) ([]string, error) {
	rows, err := w.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// CountPending counts the distinct source IDs sel selects.
func (w *Warehouse) CountPending(ctx context.Context, sel loader.Selection) (int64, error) {
	var n int64
	err := w.db.QueryRowContext(ctx, w.t.countSQL(sel), cutoffArgs(sel)...).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("snowflake: count pending in %s: %w", w.t.source, err)
	}
	return n, nil
}

// Pending returns the next keyset page: up to limit distinct IDs above after,
// ascending in their VARCHAR form.
func (w *Warehouse) Pending(ctx context.Context, after string, limit int, sel loader.Selection) ([]string, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("snowflake: pending: limit %d is not positive", limit)
	}
	args := append([]any{after}, cutoffArgs(sel)...)
	rows, err := w.db.QueryContext(ctx, w.t.pendingSQL(sel, after, limit), args...)
	if err != nil {
		return nil, fmt.Errorf("snowflake: pending from %s: %w", w.t.source, err)
	}
	defer rows.Close()
	ids := make([]string, 0, limit)
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("snowflake: pending from %s: %w", w.t.source, err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("snowflake: pending from %s: %w", w.t.source, err)
	}
	return ids, nil
}

// cutoffArgs binds the refresh cutoff once for the target and once for the
// misses (see tables.notAccounted).
func cutoffArgs(sel loader.Selection) []any {
	cutoff, ok := sel.Cutoff()
	if sel.RetryFailed || !ok {
		return nil
	}
	return []any{cutoff, cutoff}
}

// Close ends the pinned session and the pool. It waits for a running Commit,
// which its own ctx bounds.
func (w *Warehouse) Close() error {
	w.session <- struct{}{}
	defer func() { <-w.session }()
	var errConn error
	if w.conn != nil {
		errConn = w.conn.Close()
		w.conn = nil
	}
	return errors.Join(errConn, w.db.Close())
}

// isBadConn reports errors after which the pinned session cannot be trusted
// (and its temporary staging table may be gone).
func isBadConn(err error) bool {
	return errors.Is(err, driver.ErrBadConn) || errors.Is(err, sql.ErrConnDone)
}
