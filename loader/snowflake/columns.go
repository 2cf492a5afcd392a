package snowflake

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	sf "github.com/snowflakedb/gosnowflake"

	"github.com/snowgate/snowgate/loader"
)

// maxReasonLen caps a failure reason: it is a diagnostic, not a payload.
const maxReasonLen = 1000

// columns is a batch of rows turned column-wise, the shape array binding
// wants: one slice per staging column, all of the same length. Nullable
// columns are []any holding a value or nil (SQL NULL).
type columns struct {
	id, outcome []string
	location    [][]any // one per locationCols
	reason      []any
	resolvedAt  []time.Time
}

// newColumns validates rows and transposes them. An ID appearing more than
// once keeps its last row: the MERGEs need each ID once in the staging table.
func newColumns(rows []loader.Row) (*columns, error) {
	last := make(map[string]int, len(rows))
	for i, r := range rows {
		if err := checkRow(r); err != nil {
			return nil, fmt.Errorf("row %d (id %q): %w", i, r.ID, err)
		}
		last[r.ID] = i
	}
	c := &columns{}
	c.grow(len(last))
	for i, r := range rows {
		if last[r.ID] == i {
			c.add(r)
		}
	}
	return c, nil
}

// checkRow refuses what no warehouse could store faithfully (the rules of
// the DuckDB warehouse), and IDs Snowflake would store differently.
func checkRow(r loader.Row) error {
	if !utf8.ValidString(r.ID) {
		// Snowflake VARCHAR is UTF-8; the driver would silently replace the
		// bad bytes and store a different ID.
		return errors.New("id is not valid UTF-8")
	}
	switch r.Outcome {
	case loader.OutcomeFound:
		if r.Record == nil {
			return fmt.Errorf("outcome %s without a record", r.Outcome)
		}
	case loader.OutcomeNotFound, loader.OutcomeNoLocation:
	case loader.OutcomeFailed:
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

func (c *columns) grow(n int) {
	c.id = make([]string, 0, n)
	c.outcome = make([]string, 0, n)
	c.location = make([][]any, len(locationCols()))
	for i := range c.location {
		c.location[i] = make([]any, 0, n)
	}
	c.reason = make([]any, 0, n)
	c.resolvedAt = make([]time.Time, 0, n)
}

func (c *columns) add(r loader.Row) {
	c.id = append(c.id, r.ID)
	c.outcome = append(c.outcome, string(r.Outcome))
	loc := make([]any, len(c.location))
	switch {
	case r.Outcome == loader.OutcomeFound:
		// TargetValues is ID, the location columns, RESOLVED_AT.
		copy(loc, loader.TargetValues(r)[1:])
	case r.Outcome != loader.OutcomeFailed && r.Record != nil && r.Record.Label != nil:
		loc[0] = *r.Record.Label // a no-location entity still has its label
	}
	for i, v := range loc {
		if s, ok := v.(string); ok {
			v = strings.ToValidUTF8(s, "\uFFFD")
		}
		c.location[i] = append(c.location[i], v)
	}
	var reason any
	if r.Outcome == loader.OutcomeFailed {
		reason = shorten(r.Reason)
	}
	c.reason = append(c.reason, reason)
	// UTC: the inline bind sends epoch nanoseconds but the stage upload
	// formats wall-clock text, and both must mean the same TIMESTAMP_NTZ.
	c.resolvedAt = append(c.resolvedAt, r.ResolvedAt.UTC())
}

func shorten(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= maxReasonLen {
		return s
	}
	cut := maxReasonLen
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

func (c *columns) len() int { return len(c.id) }

// args returns the bind arguments of insertStagingSQL for rows [lo, hi), in
// the order of stagingCols. Each is a gosnowflake array bind: one ? carries a
// whole column. The driver sends the arrays inline in the query request, or,
// at or above the session's CLIENT_STAGE_ARRAY_BINDING_THRESHOLD (rows x
// columns), uploads them as CSV to a temporary stage and binds the stage.
func (c *columns) args(lo, hi int) []any {
	id, outcome := c.id[lo:hi], c.outcome[lo:hi]
	args := []any{sf.Array(&id), sf.Array(&outcome)}
	for i := range c.location {
		col := c.location[i][lo:hi]
		args = append(args, sf.Array(&col))
	}
	reason, at := c.reason[lo:hi], c.resolvedAt[lo:hi]
	return append(args, sf.Array(&reason), sf.Array(&at, sf.TimestampNTZType))
}
