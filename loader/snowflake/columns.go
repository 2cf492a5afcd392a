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
// wants: one slice per staging column (stagingCols), all of the same length.
type columns struct {
	cols []loader.Column
	data []column // one per cols
	n    int
}

// column holds one staging column's values in the one of its slices that
// gosnowflake binds with the right type: strs for ID and OUTCOME, which a
// staged row always has, times for timestamps (TIMESTAMP_NTZ), vals for the
// rest, a value or nil (SQL NULL).
type column struct {
	strs  []string
	times []time.Time
	vals  []any
}

type bindKind int

const (
	bindVals bindKind = iota
	bindStrs
	bindTimes
)

func kindOf(c loader.Column) bindKind {
	switch {
	case c.Type == loader.TypeTimestamp:
		return bindTimes
	case c.Name == loader.ColID || c.Name == loader.ColOutcome:
		return bindStrs
	}
	return bindVals
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

// checkRow refuses what no warehouse could store faithfully (the loader's
// rules), and IDs Snowflake would store differently.
func checkRow(r loader.Row) error {
	if !utf8.ValidString(r.ID) {
		// Snowflake VARCHAR is UTF-8; the driver would silently replace the
		// bad bytes and store a different ID.
		return errors.New("id is not valid UTF-8")
	}
	return r.Validate()
}

func (c *columns) grow(n int) {
	c.cols = stagingCols()
	c.data = make([]column, len(c.cols))
	for i, col := range c.cols {
		switch kindOf(col) {
		case bindStrs:
			c.data[i].strs = make([]string, 0, n)
		case bindTimes:
			c.data[i].times = make([]time.Time, 0, n)
		default:
			c.data[i].vals = make([]any, 0, n)
		}
	}
}

// add appends r's value of every staging column, by the column's own
// accessor. Text other than the ID is made valid UTF-8, which Snowflake
// VARCHAR requires, and a failure reason is capped.
func (c *columns) add(r loader.Row) {
	for i, col := range c.cols {
		v := col.Value(r)
		d := &c.data[i]
		switch kindOf(col) {
		case bindStrs:
			d.strs = append(d.strs, v.(string))
		case bindTimes:
			// UTC (as Value gives it): the inline bind sends epoch
			// nanoseconds but the stage upload formats wall-clock text,
			// and both must mean the same TIMESTAMP_NTZ.
			d.times = append(d.times, v.(time.Time))
		default:
			if s, ok := v.(string); ok {
				if col.Name == loader.ColReason {
					v = shorten(s)
				} else {
					v = strings.ToValidUTF8(s, "\uFFFD")
				}
			}
			d.vals = append(d.vals, v)
		}
	}
	c.n++
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

func (c *columns) len() int { return c.n }

// args returns the bind arguments of insertStagingSQL for rows [lo, hi), in
// the order of stagingCols. Each is a gosnowflake array bind: one ? carries a
// whole column. The driver sends the arrays inline in the query request, or,
// at or above the session's CLIENT_STAGE_ARRAY_BINDING_THRESHOLD (rows x
// columns), uploads them as CSV to a temporary stage and binds the stage.
func (c *columns) args(lo, hi int) []any {
	args := make([]any, len(c.cols))
	for i, col := range c.cols {
		d := c.data[i]
		switch kindOf(col) {
		case bindStrs:
			s := d.strs[lo:hi]
			args[i] = sf.Array(&s)
		case bindTimes:
			t := d.times[lo:hi]
			args[i] = sf.Array(&t, sf.TimestampNTZType)
		default:
			v := d.vals[lo:hi]
			args[i] = sf.Array(&v)
		}
	}
	return args
}
