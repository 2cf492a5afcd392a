package snowflake

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/snowgate/snowgate/loader"
)

// Commit stores rows: bulk-insert them into the session's staging table, then
// apply them to the target, misses and failures tables in one transaction.
//
// The staging insert runs before BEGIN on purpose. Above the array-binding
// threshold gosnowflake creates a temporary stage (DDL, which in Snowflake
// commits any open transaction) and PUTs the binds there; outside the
// transaction that cannot split it. Nothing outside the temporary staging
// table changes until the MERGEs, and those commit or roll back together.
// Every statement is keyed on ID, so re-running a commit (after a crash that
// lost its acknowledgement) creates no duplicates; only a failure's ATTEMPTS
// counts the replay.
func (w *Warehouse) Commit(ctx context.Context, rows []loader.Row) error {
	if len(rows) == 0 {
		return nil
	}
	cols, err := newColumns(rows)
	if err != nil {
		return fmt.Errorf("snowflake: commit: %w", err)
	}
	select {
	case w.session <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("snowflake: commit: %w", ctx.Err())
	}
	defer func() { <-w.session }()

	conn, err := w.pinned(ctx)
	if err == nil {
		err = w.commitOn(ctx, conn, cols)
	}
	if err != nil {
		if isBadConn(err) {
			w.unpin()
		}
		// The next commit re-runs CREATE ... IF NOT EXISTS: cheap, and right
		// if the session was replaced and its temporary table is gone.
		w.staged = false
		return fmt.Errorf("snowflake: commit %d rows to %s: %w", cols.len(), w.t.target, err)
	}
	return nil
}

// pinned returns the commit session, opening it and creating its staging
// table when needed. The caller holds w.session.
func (w *Warehouse) pinned(ctx context.Context) (*sql.Conn, error) {
	if w.conn == nil {
		conn, err := w.db.Conn(ctx)
		if err != nil {
			return nil, err
		}
		w.conn, w.staged = conn, false
	}
	if !w.staged {
		if _, err := w.conn.ExecContext(ctx, w.t.createStagingSQL()); err != nil {
			return nil, fmt.Errorf("create staging table: %w", err)
		}
		w.staged = true
	}
	return w.conn, nil
}

// unpin drops a broken commit session. The caller holds w.session.
func (w *Warehouse) unpin() {
	if w.conn != nil {
		_ = w.conn.Close() // already broken; its error says nothing new
		w.conn = nil
	}
	w.staged = false
}

func (w *Warehouse) commitOn(ctx context.Context, conn *sql.Conn, cols *columns) error {
	// Leftovers of a commit that failed after its insert must not be merged.
	if _, err := conn.ExecContext(ctx, w.t.truncateStagingSQL()); err != nil {
		return fmt.Errorf("truncate staging: %w", err)
	}
	insert := w.t.insertStagingSQL()
	for lo := 0; lo < cols.len(); lo += w.insertRows {
		hi := min(lo+w.insertRows, cols.len())
		if _, err := conn.ExecContext(ctx, insert, cols.args(lo, hi)...); err != nil {
			return fmt.Errorf("bulk insert rows %d-%d into staging: %w", lo, hi, err)
		}
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	for _, q := range w.t.mergeSQL() {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return errors.Join(fmt.Errorf("merge: %w", err), rollback(tx))
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

func rollback(tx *sql.Tx) error {
	if err := tx.Rollback(); err != nil && !errors.Is(err, sql.ErrTxDone) {
		return fmt.Errorf("rollback: %w", err)
	}
	return nil
}
