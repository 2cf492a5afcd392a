package bench

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"

	duckdb "github.com/duckdb/duckdb-go/v2"
)

// Tables the bench makes in its DuckDB file. MASTER_TABLE is the loader's
// default source; the loader's own tables sit beside them.
const (
	masterTable   = "MASTER_TABLE"
	gatewayTable  = "GATEWAY_ROWS"
	baselineTable = "BASELINE_LOCATIONS"
	// backfillPrefix and backfillDigits make the backfill IDs, B000000042:
	// fixed width, so their text order is their numeric order.
	backfillPrefix = "B"
	backfillDigits = 9
)

// The DuckDB file is opened briefly by each step: a DuckDB file is locked
// by the process holding it, and the loader may be another process.
func openDuck(path string) (*sql.DB, error) {
	db, err := sql.Open("duckdb", path)
	if err != nil {
		return nil, fmt.Errorf("open duckdb: %w", err)
	}
	return db, nil
}

// makeMaster replaces MASTER_TABLE with n distinct IDs, in ascending order.
func makeMaster(ctx context.Context, path string, n int) error {
	db, err := openDuck(path)
	if err != nil {
		return err
	}
	defer func() { _ = db.Close() }() // checked below on success
	_, err = db.ExecContext(ctx, fmt.Sprintf(`CREATE OR REPLACE TABLE %s AS
		SELECT '%s' || lpad(i::VARCHAR, %d, '0') AS ID FROM range(?) t(i)`, masterTable, backfillPrefix, backfillDigits), n)
	if err != nil {
		return fmt.Errorf("create %s: %w", masterTable, err)
	}
	return db.Close()
}

// writeIDs replaces table with one ID column holding ids in order.
func writeIDs(ctx context.Context, path, table string, ids []string) error {
	db, err := openDuck(path)
	if err != nil {
		return err
	}
	defer func() { _ = db.Close() }() // checked below on success
	if _, err := db.ExecContext(ctx, fmt.Sprintf("CREATE OR REPLACE TABLE %s (ID VARCHAR)", table)); err != nil {
		return fmt.Errorf("create %s: %w", table, err)
	}
	err = appendRows(ctx, db, table, len(ids), func(i int) []driver.Value { return []driver.Value{ids[i]} })
	if err != nil {
		return err
	}
	return db.Close()
}

// appendRows appends n rows to table with DuckDB's Appender, in bulk.
func appendRows(ctx context.Context, db *sql.DB, table string, n int, row func(int) []driver.Value) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	// The Appender's Close below flushes the rows; the connection only goes
	// back to the pool.
	defer func() { _ = conn.Close() }()
	return conn.Raw(func(c any) error {
		dc, ok := c.(driver.Conn)
		if !ok {
			return fmt.Errorf("duckdb: unexpected driver connection %T", c)
		}
		a, err := duckdb.NewAppenderFromConn(dc, "", table)
		if err != nil {
			return fmt.Errorf("appender for %s: %w", table, err)
		}
		for i := range n {
			if err := a.AppendRow(row(i)...); err != nil {
				_ = a.Close() // the append's error is the one to report
				return fmt.Errorf("append to %s: %w", table, err)
			}
		}
		if err := a.Close(); err != nil {
			return fmt.Errorf("append to %s: %w", table, err)
		}
		return nil
	})
}
