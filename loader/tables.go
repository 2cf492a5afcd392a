package loader

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/snowgate/snowgate/locapi"
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

// Column is one column of a table the loader writes, with the value a row
// gives it. These definitions are the one truth for every warehouse's DDL,
// staging table and merge statements, which name columns and never count
// them, and for sql/tables.sql, which a test compares with them column by
// column.
type Column struct {
	Name string // upper case, quoted when written
	Type ColumnType
	// NotNull columns are written on every row the loader stores.
	NotNull bool
	// Key is the primary key (and NOT NULL). The loader keeps it unique
	// itself, by merging on it; DuckDB also enforces it, Snowflake only
	// records it.
	Key bool
	// Value is the column's value for a valid row: a string, float64,
	// int64 or time.Time in UTC, or nil for SQL NULL. It is defined for
	// rows of every outcome, as a staging table holding them all needs; a
	// table stores only the rows of its own outcomes.
	Value func(Row) any
}

// Column names the warehouses refer to in their statements.
const (
	ColID         = "ID"
	ColOutcome    = "OUTCOME"
	ColReason     = "REASON"
	ColAttempts   = "ATTEMPTS"
	ColFailedAt   = "FAILED_AT"
	ColResolvedAt = "RESOLVED_AT"
)

func idColumn() Column {
	return Column{Name: ColID, Type: TypeText, NotNull: true, Key: true, Value: func(r Row) any { return r.ID }}
}

// labelColumn is the entity's label: a found record's, or a no-location
// answer's, which has a label and nothing else.
func labelColumn() Column {
	return Column{Name: "LABEL", Type: TypeText, Value: func(r Row) any {
		if r.Outcome == OutcomeFailed || r.Record == nil {
			return nil
		}
		return str(r.Record.Label)
	}}
}

// locationColumn is a location field of a found record.
func locationColumn(name string, t ColumnType, field func(*locapi.Record) any) Column {
	return Column{Name: name, Type: t, Value: func(r Row) any {
		if r.Outcome != OutcomeFound || r.Record == nil {
			return nil
		}
		return field(r.Record)
	}}
}

func resolvedAt(name string, notNull bool) Column {
	return Column{Name: name, Type: TypeTimestamp, NotNull: notNull, Value: func(r Row) any { return r.ResolvedAt.UTC() }}
}

// TargetColumns are the target's columns. ID is the key. Location fields
// are NULL when the provider left them out. RESOLVED_AT is nullable
// although the loader always writes it: a target made by the original job
// lacks the column, and adding it to a table that has rows gives those rows
// NULL.
func TargetColumns() []Column {
	text := func(name string, field func(*locapi.Record) *string) Column {
		return locationColumn(name, TypeText, func(rec *locapi.Record) any { return str(field(rec)) })
	}
	float := func(name string, field func(*locapi.Record) *float64) Column {
		return locationColumn(name, TypeFloat, func(rec *locapi.Record) any { return num(field(rec)) })
	}
	return []Column{
		idColumn(), labelColumn(),
		text("GEO_LABEL", func(r *locapi.Record) *string { return r.GeoLabel }),
		text("CITY_LABEL", func(r *locapi.Record) *string { return r.CityLabel }),
		text("POSTAL_CODE", func(r *locapi.Record) *string { return r.PostalCode }),
		text("COUNTRY_LABEL", func(r *locapi.Record) *string { return r.CountryLabel }),
		float("LATITUDE", func(r *locapi.Record) *float64 { return r.Latitude }),
		float("LONGITUDE", func(r *locapi.Record) *float64 { return r.Longitude }),
		text("STREET_ADDRESS", func(r *locapi.Record) *string { return r.StreetAddress }),
		resolvedAt(ColResolvedAt, false),
	}
}

// MissColumns are the misses table's columns. OUTCOME is "not_found" or
// "no_location"; LABEL is the entity's label of a no-location answer.
func MissColumns() []Column {
	return []Column{
		idColumn(),
		{Name: ColOutcome, Type: TypeText, NotNull: true, Value: func(r Row) any { return string(r.Outcome) }},
		labelColumn(),
		resolvedAt(ColResolvedAt, true),
	}
}

// FailureColumns are the failures table's columns. ATTEMPTS counts the runs
// that failed on the ID: a row gives 1, and a merge adds the attempts
// already recorded. REASON is never NULL: every warehouse refuses a failed
// row without one.
func FailureColumns() []Column {
	return []Column{
		idColumn(),
		{Name: ColReason, Type: TypeText, NotNull: true, Value: func(r Row) any {
			if r.Outcome != OutcomeFailed {
				return nil
			}
			return r.Reason
		}},
		{Name: ColAttempts, Type: TypeInt, NotNull: true, Value: func(Row) any { return int64(1) }},
		resolvedAt(ColFailedAt, true),
	}
}

// StageColumns are the columns of the three tables, each name once (the
// first table's definition, in the order target, misses, failures), all
// nullable: a staging table holding rows of every outcome, from which each
// table takes its own columns by name.
func StageColumns() []Column {
	var out []Column
	seen := map[string]bool{}
	for _, cols := range [][]Column{TargetColumns(), MissColumns(), FailureColumns()} {
		for _, c := range cols {
			if !seen[c.Name] {
				seen[c.Name] = true
				c.NotNull, c.Key = false, false
				out = append(out, c)
			}
		}
	}
	return out
}

// Pick returns the columns of cols with the given names, in the order of
// names. The names are the program's own constants, so one that is not
// there is a bug, and Pick panics naming it.
func Pick(cols []Column, names ...string) []Column {
	out := make([]Column, 0, len(names))
	for _, n := range names {
		i := slices.IndexFunc(cols, func(c Column) bool { return c.Name == n })
		if i < 0 {
			panic(fmt.Sprintf("loader: no column %s among %v", n, Names(cols)))
		}
		out = append(out, cols[i])
	}
	return out
}

// Names are cols' names.
func Names(cols []Column) []string {
	out := make([]string, len(cols))
	for i, c := range cols {
		out[i] = c.Name
	}
	return out
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
