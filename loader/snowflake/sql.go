package snowflake

import (
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"

	"github.com/snowgate/snowgate/loader"
)

// The loader's column names this package writes into statements itself,
// quoted like every loader.Ident.
const (
	colID         = `"` + loader.ColID + `"`
	colOutcome    = `"` + loader.ColOutcome + `"`
	colAttempts   = `"` + loader.ColAttempts + `"`
	colResolvedAt = `"` + loader.ColResolvedAt + `"`

	maxIdentPartSize = 255
	// suffixStaging names the session's temporary staging table after the
	// target, so it lives in the target's schema.
	suffixStaging = "_SNOWGATE_STAGING"
)

// sfTypes spells the loader's column types in Snowflake SQL.
var sfTypes = loader.TypeNames{
	loader.TypeText: "VARCHAR", loader.TypeFloat: "FLOAT",
	loader.TypeInt: "NUMBER(10,0)", loader.TypeTimestamp: "TIMESTAMP_NTZ",
}

// locationCols are the target's data columns: all but its ID and
// RESOLVED_AT, in the target's order.
func locationCols() []loader.Column {
	var out []loader.Column
	for _, c := range loader.TargetColumns() {
		if c.Name != loader.ColID && c.Name != loader.ColResolvedAt {
			out = append(out, c)
		}
	}
	return out
}

// stagingCols is the staging table's columns, picked by name from the
// loader's staging columns, which is also the order of the bulk insert's
// binds (see columns.args). A failure's FAILED_AT and ATTEMPTS are not
// staged: the failures MERGE takes the first from RESOLVED_AT and counts the
// second itself.
func stagingCols() []loader.Column {
	names := []string{loader.ColID, loader.ColOutcome}
	names = append(names, loader.Names(locationCols())...)
	names = append(names, loader.ColReason, loader.ColResolvedAt)
	return loader.Pick(loader.StageColumns(), names...)
}

func quoted(cols []loader.Column) []string {
	out := make([]string, len(cols))
	for i, c := range cols {
		out[i] = `"` + c.Name + `"`
	}
	return out
}

// tables holds the validated names every statement is built from.
type tables struct {
	source, idCol, target, misses, failures, staging loader.Ident
}

func newTables(lt loader.Tables) (tables, error) {
	switch {
	case lt.SourceFile != "":
		return tables{}, fmt.Errorf("a source file (%s) is a DuckDB feature; on Snowflake load it into a table first", lt.SourceFile)
	case lt.Source.String() == "" || lt.IDColumn.String() == "" || lt.Target.String() == "":
		return tables{}, errors.New("source table, id column and target table must all be set (use loader.NewTables)")
	case lt.IDColumn.String() != `"`+lt.IDColumn.Name()+`"`:
		return tables{}, fmt.Errorf("id column %s must be a plain column name, not qualified", lt.IDColumn)
	case len(lt.Target.Name())+len(suffixStaging) > maxIdentPartSize:
		return tables{}, fmt.Errorf("target table name %s is too long to derive its %s table (max %d bytes)",
			lt.Target, suffixStaging, maxIdentPartSize-len(suffixStaging))
	}
	return tables{
		source:   lt.Source,
		idCol:    lt.IDColumn,
		target:   lt.Target,
		misses:   lt.Misses(),
		failures: lt.Failures(),
		staging:  lt.Target.WithSuffix(suffixStaging),
	}, nil
}

// setupSQL creates the target, misses and failures tables when missing (the
// loader's shared column definitions, with their NOT NULLs; Snowflake
// records but does not enforce the primary key), and adds RESOLVED_AT to a
// target that predates it: the original job's table had only the location
// columns. Setup runs it only after checkSource.
func (t tables) setupSQL() []string {
	return []string{
		loader.CreateTableSQL(t.target, loader.TargetColumns(), sfTypes),
		fmt.Sprintf("ALTER TABLE %s ADD COLUMN IF NOT EXISTS %s TIMESTAMP_NTZ", t.target, colResolvedAt),
		loader.CreateTableSQL(t.misses, loader.MissColumns(), sfTypes),
		loader.CreateTableSQL(t.failures, loader.FailureColumns(), sfTypes),
	}
}

// ColumnTypes spells the loader's column types the way the setup DDL does,
// for checking documents (sql/tables.sql) against it.
func ColumnTypes() loader.TypeNames { return maps.Clone(sfTypes) }

// sessionSQL names the session's database, schema and role: an unqualified
// source name resolves in the first two, and INFORMATION_SCHEMA shows what
// the role may see.
const sessionSQL = "SELECT CURRENT_DATABASE(), CURRENT_SCHEMA(), CURRENT_ROLE()"

// sourceColumnsSQL lists, in order, the columns of table ?2 in schema ?1 of
// database db; no row means no such table that the role can see. Names are
// bound, and compared exactly: the loader quotes every identifier.
func sourceColumnsSQL(db string) string {
	return "SELECT COLUMN_NAME FROM " + quoteName(db) +
		".INFORMATION_SCHEMA.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION"
}

// schemaTablesSQL lists the tables and views of schema ?1 in database db,
// for the error that says the source is not among them.
func schemaTablesSQL(db string) string {
	return "SELECT TABLE_NAME FROM " + quoteName(db) + ".INFORMATION_SCHEMA.TABLES WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME"
}

// quoteName quotes a name that may come from the session (CURRENT_DATABASE)
// rather than from a validated loader.Ident.
func quoteName(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// createStagingSQL creates the session's staging table. TEMPORARY: it lives
// and dies with the pinned session, costs no Fail-safe storage and is never
// seen by another session.
func (t tables) createStagingSQL() string {
	defs := make([]string, 0, len(stagingCols()))
	for _, c := range stagingCols() {
		defs = append(defs, fmt.Sprintf(`"%s" %s`, c.Name, sfTypes[c.Type]))
	}
	return fmt.Sprintf("CREATE TEMPORARY TABLE IF NOT EXISTS %s (%s)", t.staging, strings.Join(defs, ", "))
}

func (t tables) truncateStagingSQL() string {
	return "TRUNCATE TABLE " + t.staging.String()
}

// insertStagingSQL is the bulk insert: every ? is bound to a whole column
// array, so one statement carries a whole chunk of rows.
func (t tables) insertStagingSQL() string {
	cols := quoted(stagingCols())
	marks := strings.TrimSuffix(strings.Repeat("?, ", len(cols)), ", ")
	return fmt.Sprintf("INSERT INTO %s (%s) VALUES (%s)", t.staging, strings.Join(cols, ", "), marks)
}

// sqlString quotes one of this package's own constants (an outcome name) as a
// SQL string literal; user input is always bound, never passed here.
func sqlString(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func missOutcomes() string {
	return sqlString(string(loader.OutcomeNotFound)) + ", " + sqlString(string(loader.OutcomeNoLocation))
}

// mergeSQL is the body of the commit transaction, in order: upsert found rows
// into the target, misses into the misses table, failures into the failures
// table (counting attempts), then remove each ID from the tables its new
// outcome contradicts, so an ID is in at most one of target and misses and
// leaves the failures table once it resolves.
func (t tables) mergeSQL() []string {
	found := "= " + sqlString(string(loader.OutcomeFound))
	missed := "IN (" + missOutcomes() + ")"
	failed := "= " + sqlString(string(loader.OutcomeFailed))
	targetCols := quoted(loader.TargetColumns())
	missCols := quoted(loader.MissColumns())
	return []string{
		t.merge(mergeSpec{into: t.target, where: found, cols: targetCols, src: targetCols}),
		t.merge(mergeSpec{into: t.misses, where: missed, cols: missCols, src: missCols}),
		t.merge(mergeSpec{into: t.failures, where: failed,
			cols:    quoted(loader.Pick(loader.FailureColumns(), loader.ColID, loader.ColReason, loader.ColFailedAt)),
			src:     quoted(loader.Pick(loader.StageColumns(), loader.ColID, loader.ColReason, loader.ColResolvedAt)),
			counter: colAttempts}),
		t.deleteStaged(t.failures, "<> "+sqlString(string(loader.OutcomeFailed))),
		t.deleteStaged(t.misses, found),
		t.deleteStaged(t.target, missed),
	}
}

// mergeSpec describes one MERGE from the staging table.
type mergeSpec struct {
	into  loader.Ident
	where string   // condition on the staging OUTCOME column
	cols  []string // columns of into, ID first
	src   []string // staging columns feeding cols, in the same order
	// counter, if set, is a column that starts at 1 and grows by one on
	// every match.
	counter string
}

// merge builds MERGE INTO m.into USING (staged rows) ON ID: matched rows get
// every non-key column updated, new rows are inserted. The staging table
// holds each ID once (Commit dedupes byte for byte), so the MERGE is
// deterministic. ID is matched in idCollation on both sides, as the keyset
// reads it: under a result table's own collation (a DEFAULT_DDL_COLLATION
// such as 'en-ci' applies to the staging table too) "abc" and "ABC" would
// be one row, and the MERGE would overwrite one with the other. COLLATE in
// the statement, rather than in the DDL, also covers result tables that
// already exist with another collation, which CREATE IF NOT EXISTS leaves
// as they are.
func (t tables) merge(m mergeSpec) string {
	var set, ins, vals []string
	for i, c := range m.cols {
		ins = append(ins, c)
		vals = append(vals, "s."+m.src[i])
		if i > 0 {
			set = append(set, c+" = s."+m.src[i])
		}
	}
	if m.counter != "" {
		set = append(set, m.counter+" = t."+m.counter+" + 1")
		ins = append(ins, m.counter)
		vals = append(vals, "1")
	}
	return fmt.Sprintf("MERGE INTO %s t USING (SELECT %s FROM %s WHERE %s %s) s ON %s = %s"+
		" WHEN MATCHED THEN UPDATE SET %s WHEN NOT MATCHED THEN INSERT (%s) VALUES (%s)",
		m.into, strings.Join(m.src, ", "), t.staging, colOutcome, m.where, collated("t."+colID), collated("s."+colID),
		strings.Join(set, ", "), strings.Join(ins, ", "), strings.Join(vals, ", "))
}

// deleteStaged deletes from tbl the staged IDs whose outcome matches where.
// Both sides of the match are in idCollation, like the MERGEs.
func (t tables) deleteStaged(tbl loader.Ident, where string) string {
	return fmt.Sprintf("DELETE FROM %s WHERE %s IN (SELECT %s FROM %s WHERE %s %s)",
		tbl, collated(colID), collated(colID), t.staging, colOutcome, where)
}

// pendingSQL is the keyset page query: distinct source IDs as VARCHAR, above
// the bound cursor, that no table already accounts for, ascending, limit
// rows. It never uses OFFSET, so every page costs the same. The first page
// (after == "") uses >= so that an empty-string ID is read too, like the
// DuckDB warehouse does; the pipeline records it as invalid. The limit is an
// int formatted here, not user text. ORDER BY 1 sorts by the selected
// expression, which carries idCollation, like the comparison with the cursor.
func (t tables) pendingSQL(sel loader.Selection, after string, limit int) string {
	op := ">"
	if after == "" {
		op = ">="
	}
	if sel.RetryFailed {
		id := collated(colID)
		return fmt.Sprintf("SELECT %s FROM %s WHERE %s %s ? ORDER BY %s LIMIT %s",
			colID, t.failures, id, op, id, strconv.Itoa(limit))
	}
	return fmt.Sprintf("SELECT DISTINCT %s AS %s FROM %s s WHERE %s AND %s %s ?%s ORDER BY 1 LIMIT %s",
		t.sourceID(), colID, t.source, t.notNull(), t.sourceID(), op, t.notAccounted(sel), strconv.Itoa(limit))
}

// countSQL counts what pendingSQL would page through.
func (t tables) countSQL(sel loader.Selection) string {
	if sel.RetryFailed {
		return fmt.Sprintf("SELECT COUNT(*) FROM %s", t.failures)
	}
	return fmt.Sprintf("SELECT COUNT(DISTINCT %s) FROM %s s WHERE %s%s",
		t.sourceID(), t.source, t.notNull(), t.notAccounted(sel))
}

// idCollation is the collation of every keyset comparison, sort, DISTINCT
// and join on IDs. 'utf8' compares by code point, which for UTF-8 text is
// byte order: Go's string order, the order the cursor advances in. Under a
// column's or the account's default collation (DEFAULT_DDL_COLLATION, e.g.
// 'en-ci') "abc" and "ABC" would be one ID and the sort would disagree with
// the cursor, so pages could skip or repeat IDs. It is applied with the
// COLLATE function, the highest precedence, so it wins over any column's
// collation. An empty specification would not: it ranks below a column's.
const idCollation = "'utf8'"

func collated(expr string) string { return "COLLATE(" + expr + ", " + idCollation + ")" }

// sourceID is the source ID as text: the column may be any type, and the
// keyset order, the comparison with the cursor and the joins are all on the
// same VARCHAR form, in idCollation.
func (t tables) sourceID() string { return collated("TO_VARCHAR(s." + t.idCol.String() + ")") }

func (t tables) notNull() string { return "s." + t.idCol.String() + " IS NOT NULL" }

// notAccounted excludes IDs already in the target, the misses or the
// failures (failures are replayed only by RetryFailed). With
// RefreshOlderThan, target and misses rows resolved before the bound cutoff
// (and rows without a resolved-at time) count as not accounted for.
func (t tables) notAccounted(sel loader.Selection) string {
	fresh := ""
	if sel.RefreshOlderThan > 0 {
		fresh = " AND x." + colResolvedAt + " >= ?"
	}
	var b strings.Builder
	for _, tbl := range []loader.Ident{t.target, t.misses} {
		fmt.Fprintf(&b, " AND NOT EXISTS (SELECT 1 FROM %s x WHERE x.%s = %s%s)", tbl, colID, t.sourceID(), fresh)
	}
	fmt.Fprintf(&b, " AND NOT EXISTS (SELECT 1 FROM %s x WHERE x.%s = %s)", t.failures, colID, t.sourceID())
	return b.String()
}
