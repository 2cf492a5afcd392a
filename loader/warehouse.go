// Package loader is the backfill pipeline: IDs stream out of a warehouse
// table, through the shared resolver, into the target table, in bulk,
// resumably and idempotently.
package loader

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/snowgate/snowgate/locapi"
)

// Outcome names what became of one ID; it is the value stored in the
// warehouse's outcome column.
type Outcome string

const (
	OutcomeFound      Outcome = "found"
	OutcomeNotFound   Outcome = "not_found"
	OutcomeNoLocation Outcome = "no_location"
	OutcomeFailed     Outcome = "failed"
)

// Row is one resolved ID, as the pipeline hands it to the warehouse.
type Row struct {
	ID      string
	Outcome Outcome
	// Record is set when Outcome is OutcomeFound.
	Record *locapi.Record
	// Reason is a short text when Outcome is OutcomeFailed.
	Reason     string
	ResolvedAt time.Time
}

// Selection says which source IDs still need resolving.
type Selection struct {
	// RefreshOlderThan, when positive, also selects IDs resolved (found, not
	// found or no location) longer ago than this before Now.
	RefreshOlderThan time.Duration
	// RetryFailed selects only the IDs in the failures table.
	RetryFailed bool
	Now         time.Time
}

// Warehouse is where IDs come from and results go. DuckDB and Snowflake
// implement it; the pipeline knows nothing else about them.
type Warehouse interface {
	// Setup checks that the source table (or file) and its ID column exist,
	// then creates the target, outcome and failure tables when missing. When
	// the source is not there it creates nothing and returns a
	// *SourceError.
	Setup(ctx context.Context) error
	// CountPending counts the distinct source IDs that sel selects.
	CountPending(ctx context.Context, sel Selection) (int64, error)
	// Pending returns, in ascending order, up to limit distinct source IDs
	// greater than after (keyset pagination; "" starts at the beginning)
	// that sel selects. A short page is fine; the loader stops at an empty
	// one. With after "" an implementation may include the empty ID; the
	// loader never sends an ID twice either way.
	Pending(ctx context.Context, after string, limit int, sel Selection) ([]string, error)
	// Commit stores rows in one transaction, idempotently: found rows are
	// merged into the target by ID, not found and no location are recorded
	// as outcomes, failed rows go to the failures table with their reason,
	// and an ID that now succeeded leaves the failures table.
	Commit(ctx context.Context, rows []Row) error
	Close() error
}

// SourceKind says which part of the source a SourceError is about.
type SourceKind int

const (
	SourceTable  SourceKind = iota // the source table is not there
	SourceColumn                   // the source has no such ID column
	SourceFile                     // the source file is missing or unreadable
)

// SourceError reports a source that is not what the backfill was told: a
// missing table, ID column or file. The warehouse has created nothing by
// then, and the fix is in the configuration, not in a retry. The message is
// one line naming what was looked for and what was found instead.
type SourceError struct {
	Kind SourceKind
	Msg  string
}

func (e *SourceError) Error() string { return e.Msg }

// NameList joins names for a SourceError: at most limit of them and how
// many more there are, or "none".
func NameList(names []string, limit int) string {
	switch {
	case len(names) == 0:
		return "none"
	case len(names) > limit:
		return fmt.Sprintf("%s and %d more", strings.Join(names[:limit], ", "), len(names)-limit)
	}
	return strings.Join(names, ", ")
}

// Validate reports a row no warehouse could store faithfully; every
// Column's Value relies on it. The error does not name the row: the caller
// knows how to.
func (r Row) Validate() error {
	switch r.Outcome {
	case OutcomeFound:
		if r.Record == nil {
			return errors.New("found without a record")
		}
	case OutcomeNotFound, OutcomeNoLocation:
	case OutcomeFailed:
		if r.Reason == "" {
			return errors.New("failed without a reason")
		}
	default:
		return fmt.Errorf("unknown outcome %q", r.Outcome)
	}
	if r.ResolvedAt.IsZero() {
		return errors.New("no resolved-at time")
	}
	return nil
}
