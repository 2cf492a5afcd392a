package loader

import (
	"fmt"
	"strings"
	"time"
)

// Default table and column names, as the original job used them.
const (
	DefaultSourceTable = "MASTER_TABLE"
	DefaultIDColumn    = "ID"
	DefaultTargetTable = "STANDARDIZED_LOCATIONS"
)

// Suffixes of the tables derived from the target's name.
const (
	MissesSuffix   = "_MISSES"
	FailuresSuffix = "_FAILURES"
)

// Tables names the tables one backfill reads and writes. Every name is an
// Ident, so it is validated and quoted before it reaches SQL.
type Tables struct {
	// Source holds the IDs to resolve, in the column IDColumn (VARCHAR or an
	// integer type; it is read as VARCHAR).
	Source   Ident
	IDColumn Ident
	// Target receives found records; the misses and failures tables are
	// named after it (see Misses and Failures).
	Target Ident
	// SourceFile, when set, replaces Source with a CSV or Parquet file
	// (chosen by its extension). Only DuckDB supports it; other warehouses
	// reject it.
	SourceFile string
}

// NewTables validates the three names. An empty name takes its default.
func NewTables(source, idColumn, target string) (Tables, error) {
	var t Tables
	var err error
	if t.Source, err = parseOr(source, DefaultSourceTable, "source table"); err != nil {
		return Tables{}, err
	}
	if t.IDColumn, err = parseOr(idColumn, DefaultIDColumn, "id column"); err != nil {
		return Tables{}, err
	}
	if len(t.IDColumn.parts) != 1 {
		return Tables{}, fmt.Errorf("id column %q: must be a bare column name, not qualified", idColumn)
	}
	if t.Target, err = parseOr(target, DefaultTargetTable, "target table"); err != nil {
		return Tables{}, err
	}
	return t, nil
}

func parseOr(s, def, what string) (Ident, error) {
	if s == "" {
		s = def
	}
	id, err := ParseIdent(s)
	if err != nil {
		return Ident{}, fmt.Errorf("%s: %w", what, err)
	}
	return id, nil
}

// Misses is the table of IDs resolved as not found or without a location.
func (t Tables) Misses() Ident { return t.Target.WithSuffix(MissesSuffix) }

// Failures is the table of IDs that still failed after the resolver's
// retries.
func (t Tables) Failures() Ident { return t.Target.WithSuffix(FailuresSuffix) }

// Validate reports a zero Tables, which would otherwise panic in Ident.Name.
func (t Tables) Validate() error {
	if len(t.Source.parts) == 0 && t.SourceFile == "" {
		return fmt.Errorf("tables: source table not set")
	}
	if len(t.IDColumn.parts) == 0 || len(t.Target.parts) == 0 {
		return fmt.Errorf("tables: id column or target table not set (use NewTables)")
	}
	return nil
}

// ColumnType is a column's type, spelled per warehouse by a TypeNames.
type ColumnType int

const (
	TypeText ColumnType = iota
	TypeFloat
	TypeInt
	TypeTimestamp
)

// TypeNames spells each ColumnType in one warehouse's SQL dialect.
type TypeNames map[ColumnType]string

// Column is one column of a table the loader writes. These definitions are
// the one truth for every warehouse's DDL and for sql/tables.sql, which a
// test compares with them column by column.
type Column struct {
	Name string // upper case, quoted when written
	Type ColumnType
	// NotNull columns are written on every row the loader stores.
	NotNull bool
	// Key is the primary key (and NOT NULL). The loader keeps it unique
	// itself, by merging on it; DuckDB also enforces it, Snowflake only
	// records it.
	Key bool
}

func keyColumn(name string) Column {
	return Column{Name: name, Type: TypeText, NotNull: true, Key: true}
}

func notNull(name string, t ColumnType) Column { return Column{Name: name, Type: t, NotNull: true} }

func nullable(name string, t ColumnType) Column { return Column{Name: name, Type: t} }

// TargetColumns are the target's columns, in the order of TargetValues.
// ID is the key. Location fields are NULL when the provider left them out.
// RESOLVED_AT is nullable although the loader always writes it: a target
// made by the original job lacks the column, and adding it to a table that
// has rows gives those rows NULL.
func TargetColumns() []Column {
	return []Column{
		keyColumn("ID"), nullable("LABEL", TypeText), nullable("GEO_LABEL", TypeText),
		nullable("CITY_LABEL", TypeText), nullable("POSTAL_CODE", TypeText), nullable("COUNTRY_LABEL", TypeText),
		nullable("LATITUDE", TypeFloat), nullable("LONGITUDE", TypeFloat), nullable("STREET_ADDRESS", TypeText),
		nullable("RESOLVED_AT", TypeTimestamp),
	}
}

// MissColumns are the misses table's columns, in the order of MissValues.
// OUTCOME is "not_found" or "no_location"; LABEL is the entity's label of a
// no-location answer.
func MissColumns() []Column {
	return []Column{keyColumn("ID"), notNull("OUTCOME", TypeText), nullable("LABEL", TypeText), notNull("RESOLVED_AT", TypeTimestamp)}
}

// FailureColumns are the failures table's columns, in the order of
// FailureValues. ATTEMPTS counts the runs that failed on the ID. REASON is
// never NULL: every warehouse refuses a failed row without one.
func FailureColumns() []Column {
	return []Column{keyColumn("ID"), notNull("REASON", TypeText), notNull("ATTEMPTS", TypeInt), notNull("FAILED_AT", TypeTimestamp)}
}

// CreateTableSQL is the CREATE TABLE IF NOT EXISTS statement for table with
// cols, with their NOT NULLs and primary key.
func CreateTableSQL(table Ident, cols []Column, types TypeNames) string {
	var b strings.Builder
	fmt.Fprintf(&b, "CREATE TABLE IF NOT EXISTS %s (", table)
	for i, c := range cols {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%q %s", c.Name, types[c.Type])
		if c.NotNull || c.Key {
			b.WriteString(" NOT NULL")
		}
		if c.Key {
			b.WriteString(" PRIMARY KEY")
		}
	}
	b.WriteString(")")
	return b.String()
}

// ColumnList is cols' names quoted and comma-separated, each prefixed by
// alias and a dot when alias is not empty.
func ColumnList(cols []Column, alias string) string {
	names := make([]string, len(cols))
	for i, c := range cols {
		if alias != "" {
			names[i] = fmt.Sprintf("%s.%q", alias, c.Name)
		} else {
			names[i] = fmt.Sprintf("%q", c.Name)
		}
	}
	return strings.Join(names, ", ")
}

// TargetValues is a found row's values in TargetColumns order; absent
// fields are nil (SQL NULL).
func TargetValues(r Row) []any {
	v := make([]any, 0, 10)
	v = append(v, r.ID)
	rec := r.Record
	if rec == nil {
		return append(v, nil, nil, nil, nil, nil, nil, nil, nil, r.ResolvedAt.UTC())
	}
	return append(v, str(rec.Label), str(rec.GeoLabel), str(rec.CityLabel), str(rec.PostalCode),
		str(rec.CountryLabel), num(rec.Latitude), num(rec.Longitude), str(rec.StreetAddress), r.ResolvedAt.UTC())
}

// MissValues is a not-found or no-location row's values in MissColumns
// order.
func MissValues(r Row) []any {
	var label any
	if r.Record != nil {
		label = str(r.Record.Label)
	}
	return []any{r.ID, string(r.Outcome), label, r.ResolvedAt.UTC()}
}

// FailureValues is a failed row's values in FailureColumns order, counting
// this failure as attempt 1; a merge adds the attempts already recorded.
func FailureValues(r Row) []any {
	return []any{r.ID, r.Reason, int64(1), r.ResolvedAt.UTC()}
}

// str and num turn optional fields into driver values, nil for NULL.
func str(p *string) any {
	if p == nil {
		return nil
	}
	return *p
}

func num(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}

// Cutoff is the resolved-at time before which sel re-selects a resolved ID,
// and false when sel does not refresh.
func (sel Selection) Cutoff() (time.Time, bool) {
	if sel.RefreshOlderThan <= 0 {
		return time.Time{}, false
	}
	now := sel.Now
	if now.IsZero() {
		now = time.Now()
	}
	return now.Add(-sel.RefreshOlderThan).UTC(), true
}
