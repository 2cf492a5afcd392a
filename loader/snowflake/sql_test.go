package snowflake

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	sf "github.com/snowflakedb/gosnowflake"

	"github.com/snowgate/snowgate/loader"
)

func mustTables(t *testing.T, source, idCol, target string) tables {
	t.Helper()
	lt, err := loader.NewTables(source, idCol, target)
	if err != nil {
		t.Fatalf("loader.NewTables(%q, %q, %q): %v", source, idCol, target, err)
	}
	tb, err := newTables(lt)
	if err != nil {
		t.Fatalf("newTables(%q, %q, %q): %v", source, idCol, target, err)
	}
	return tb
}

func mustIdent(t *testing.T, s string) loader.Ident {
	t.Helper()
	id, err := loader.ParseIdent(s)
	if err != nil {
		t.Fatalf("ParseIdent(%q): %v", s, err)
	}
	return id
}

// allSQL is every statement text the warehouse can send for tb.
func allSQL(tb tables) []string {
	out := append(tb.setupSQL(), tb.createStagingSQL(), tb.truncateStagingSQL(), tb.insertStagingSQL())
	out = append(out, tb.mergeSQL()...)
	for _, sel := range []loader.Selection{{}, {RefreshOlderThan: time.Hour}, {RetryFailed: true}} {
		out = append(out, tb.pendingSQL(sel, "", 500), tb.pendingSQL(sel, "K", 500), tb.countSQL(sel))
	}
	return out
}

func TestIdentifiersAreQuotedInSQL(t *testing.T) {
	tests := []struct {
		name                  string
		source, idCol, target string
		want                  []string // fragments that must appear
	}{
		{
			name: "defaults", source: "MASTER_TABLE", idCol: "ID", target: "STANDARDIZED_LOCATIONS",
			want: []string{`FROM "MASTER_TABLE" s`, `TO_VARCHAR(s."ID")`, `"STANDARDIZED_LOCATIONS_MISSES"`, `"STANDARDIZED_LOCATIONS_FAILURES"`},
		},
		{
			name: "qualified and lower case", source: "analytics.raw.master", idCol: "entity_id", target: "analytics.out.locations",
			want: []string{
				`FROM "ANALYTICS"."RAW"."MASTER" s`, `TO_VARCHAR(s."ENTITY_ID")`, `s."ENTITY_ID" IS NOT NULL`,
				`MERGE INTO "ANALYTICS"."OUT"."LOCATIONS" t`, `"ANALYTICS"."OUT"."LOCATIONS_MISSES"`,
				`"ANALYTICS"."OUT"."LOCATIONS_FAILURES"`, `"ANALYTICS"."OUT"."LOCATIONS_SNOWGATE_STAGING"`,
			},
		},
		{
			name: "dollar and digits", source: "src$1", idCol: "_id2", target: "t$out",
			want: []string{`FROM "SRC$1" s`, `s."_ID2"`, `"T$OUT_SNOWGATE_STAGING"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stmts := strings.Join(allSQL(mustTables(t, tt.source, tt.idCol, tt.target)), "\n")
			for _, frag := range tt.want {
				if !strings.Contains(stmts, frag) {
					t.Errorf("got no %q in the statements:\n%s", frag, stmts)
				}
			}
			if strings.Contains(stmts, "OFFSET") {
				t.Error("got OFFSET in a statement; want keyset pagination only")
			}
		})
	}
}

func TestHostileNamesRejected(t *testing.T) {
	// Names reach this package only as loader.Ident, which refuses anything
	// but plain identifiers; these are the flag values an attacker would try.
	for _, s := range []string{
		`MASTER_TABLE"; DROP TABLE X; --`, `a b`, `"QUOTED"`, `t;`, `1TABLE`, `x--`, `a..b`, `a.b.c.d`,
		"tab\x00le", "tab\nle", `t'`, `ta/*c*/ble`, `名前`, strings.Repeat("A", 256),
	} {
		if id, err := loader.ParseIdent(s); err == nil {
			t.Errorf("ParseIdent(%q) = %s; want an error", s, id)
		}
	}

	long := strings.Repeat("T", 255-len(suffixStaging)+1)
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"qualified id column", Config{Tables: loader.Tables{IDColumn: mustIdent(t, "s.id")}}, "must be a plain column name"},
		{"target too long for its derived tables", Config{Tables: loader.Tables{Target: mustIdent(t, long)}}, "too long"},
		{"source file", Config{Tables: loader.Tables{SourceFile: "ids.parquet"}}, "DuckDB feature"},
		{"negative insert rows", Config{InsertRows: -1}, "negative"},
	}
	db := sql.OpenDB(nilConnector{}) // never connected: New only validates
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := New(db, tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New = %v, %v; want an error containing %q", w, err, tt.want)
			}
		})
	}
	if _, err := New(nil, Config{}); err == nil {
		t.Error("New(nil) succeeded; want an error")
	}
}

func TestSelectionSQL(t *testing.T) {
	tb := mustTables(t, "MASTER_TABLE", "ID", "STANDARDIZED_LOCATIONS")
	now := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name      string
		sel       loader.Selection
		want      []string
		notWant   []string
		wantBinds []any // after the cursor
	}{
		{
			name:    "incremental",
			sel:     loader.Selection{},
			want:    []string{`FROM "MASTER_TABLE" s`, `NOT EXISTS (SELECT 1 FROM "STANDARDIZED_LOCATIONS_FAILURES" x WHERE x."ID" = COLLATE(TO_VARCHAR(s."ID"), 'utf8'))`},
			notWant: []string{`"RESOLVED_AT" >= ?`},
		},
		{
			name: "refresh older than a day",
			sel:  loader.Selection{RefreshOlderThan: 24 * time.Hour, Now: now},
			want: []string{
				`FROM "STANDARDIZED_LOCATIONS" x WHERE x."ID" = COLLATE(TO_VARCHAR(s."ID"), 'utf8') AND x."RESOLVED_AT" >= ?)`,
				`FROM "STANDARDIZED_LOCATIONS_MISSES" x WHERE x."ID" = COLLATE(TO_VARCHAR(s."ID"), 'utf8') AND x."RESOLVED_AT" >= ?)`,
			},
			wantBinds: []any{now.Add(-24 * time.Hour), now.Add(-24 * time.Hour)},
		},
		{
			name:    "retry failed",
			sel:     loader.Selection{RetryFailed: true, RefreshOlderThan: time.Hour, Now: now},
			want:    []string{`SELECT "ID" FROM "STANDARDIZED_LOCATIONS_FAILURES" WHERE COLLATE("ID", 'utf8') > ? ORDER BY COLLATE("ID", 'utf8') LIMIT 7`},
			notWant: []string{`MASTER_TABLE`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := tb.pendingSQL(tt.sel, "K", 7)
			if first := tb.pendingSQL(tt.sel, "", 7); !strings.Contains(first, `>= ?`) {
				t.Errorf("first page query has no >= (an empty-string ID would be skipped):\n%s", first)
			}
			for _, frag := range tt.want {
				if !strings.Contains(q, frag) {
					t.Errorf("got no %q in\n%s", frag, q)
				}
			}
			for _, frag := range tt.notWant {
				if strings.Contains(q, frag) {
					t.Errorf("got %q in\n%s", frag, q)
				}
			}
			if got, want := strings.Count(q, "?"), 1+len(tt.wantBinds); got != want {
				t.Errorf("got %d placeholders; want %d", got, want)
			}
			if got, want := strings.Count(tb.countSQL(tt.sel), "?"), len(tt.wantBinds); got != want {
				t.Errorf("count query has %d placeholders; want %d", got, want)
			}
			binds := cutoffArgs(tt.sel)
			if len(binds) != len(tt.wantBinds) {
				t.Fatalf("got binds %v; want %v", binds, tt.wantBinds)
			}
			for i := range binds {
				if !binds[i].(time.Time).Equal(tt.wantBinds[i].(time.Time)) {
					t.Errorf("bind %d: got %v; want %v", i, binds[i], tt.wantBinds[i])
				}
			}
		})
	}
}

// TestKeysetCollation checks that the keyset query compares, sorts, dedupes
// and joins IDs in 'utf8' (code point, so Go's byte order) whatever
// collation the columns or the account default to: the whole page query
// exactly, then that no bare TO_VARCHAR or bare failures ID is compared
// anywhere in any selection's page and count queries.
func TestKeysetCollation(t *testing.T) {
	tb := mustTables(t, "MASTER_TABLE", "ID", "STANDARDIZED_LOCATIONS")
	const id = `COLLATE(TO_VARCHAR(s."ID"), 'utf8')`
	want := `SELECT DISTINCT ` + id + ` AS "ID" FROM "MASTER_TABLE" s WHERE s."ID" IS NOT NULL AND ` + id + ` > ?` +
		` AND NOT EXISTS (SELECT 1 FROM "STANDARDIZED_LOCATIONS" x WHERE x."ID" = ` + id + `)` +
		` AND NOT EXISTS (SELECT 1 FROM "STANDARDIZED_LOCATIONS_MISSES" x WHERE x."ID" = ` + id + `)` +
		` AND NOT EXISTS (SELECT 1 FROM "STANDARDIZED_LOCATIONS_FAILURES" x WHERE x."ID" = ` + id + `)` +
		` ORDER BY 1 LIMIT 500`
	if got := tb.pendingSQL(loader.Selection{}, "K", 500); got != want {
		t.Errorf("page query:\ngot  %s\nwant %s", got, want)
	}
	wantCount := `SELECT COUNT(DISTINCT ` + id + `) FROM "MASTER_TABLE" s WHERE s."ID" IS NOT NULL` + want[strings.Index(want, " AND NOT EXISTS"):strings.Index(want, " ORDER BY")]
	if got := tb.countSQL(loader.Selection{}); got != wantCount {
		t.Errorf("count query:\ngot  %s\nwant %s", got, wantCount)
	}
	for _, sel := range []loader.Selection{{}, {RefreshOlderThan: time.Hour}, {RetryFailed: true}} {
		for _, q := range []string{tb.pendingSQL(sel, "", 500), tb.pendingSQL(sel, "K", 500), tb.countSQL(sel)} {
			if bare, all := strings.Count(q, "TO_VARCHAR("), strings.Count(q, "COLLATE(TO_VARCHAR("); bare != all {
				t.Errorf("%d of %d TO_VARCHAR calls lack COLLATE in\n%s", bare-all, bare, q)
			}
			if strings.Contains(q, `WHERE "ID"`) || strings.Contains(q, `ORDER BY "ID"`) {
				t.Errorf("a failures ID is compared without COLLATE in\n%s", q)
			}
		}
	}
}

// nilConnector is a connector that never connects, for tests of validation
// that must fail before any connection.
type nilConnector struct{}

func (nilConnector) Connect(context.Context) (driver.Conn, error) {
	return nil, errors.New("nilConnector: not connected")
}
func (nilConnector) Driver() driver.Driver { return sf.SnowflakeDriver{} }

// TestCommitCollation checks that every statement of a commit matches IDs in
// 'utf8' on both sides, so that under a case-insensitive collation of the
// result tables (or of the account's DEFAULT_DDL_COLLATION, which the
// staging table gets too) "abc" and "ABC" stay two rows: the whole failures
// MERGE and one DELETE exactly, then that no statement compares a bare ID.
func TestCommitCollation(t *testing.T) {
	tb := mustTables(t, "MASTER_TABLE", "ID", "STANDARDIZED_LOCATIONS")
	const stage = `"STANDARDIZED_LOCATIONS_SNOWGATE_STAGING"`
	stmts := tb.mergeSQL()
	wantMerge := `MERGE INTO "STANDARDIZED_LOCATIONS_FAILURES" t USING (SELECT "ID", "REASON", "RESOLVED_AT" FROM ` + stage +
		` WHERE "OUTCOME" = 'failed') s ON COLLATE(t."ID", 'utf8') = COLLATE(s."ID", 'utf8')` +
		` WHEN MATCHED THEN UPDATE SET "REASON" = s."REASON", "FAILED_AT" = s."RESOLVED_AT", "ATTEMPTS" = t."ATTEMPTS" + 1` +
		` WHEN NOT MATCHED THEN INSERT ("ID", "REASON", "FAILED_AT", "ATTEMPTS") VALUES (s."ID", s."REASON", s."RESOLVED_AT", 1)`
	wantDelete := `DELETE FROM "STANDARDIZED_LOCATIONS" WHERE COLLATE("ID", 'utf8') IN (SELECT COLLATE("ID", 'utf8') FROM ` + stage +
		` WHERE "OUTCOME" IN ('not_found', 'no_location'))`
	if !slices.Contains(stmts, wantMerge) {
		t.Errorf("got no failures MERGE\n%s\namong\n%s", wantMerge, strings.Join(stmts, "\n"))
	}
	if !slices.Contains(stmts, wantDelete) {
		t.Errorf("got no target DELETE\n%s\namong\n%s", wantDelete, strings.Join(stmts, "\n"))
	}
	merges, deletes := 0, 0
	for _, q := range stmts {
		switch {
		case strings.HasPrefix(q, "MERGE INTO "):
			merges++
			if !strings.Contains(q, ` ON COLLATE(t."ID", 'utf8') = COLLATE(s."ID", 'utf8') WHEN `) {
				t.Errorf("MERGE does not match IDs in 'utf8' on both sides:\n%s", q)
			}
		case strings.HasPrefix(q, "DELETE FROM "):
			deletes++
			if !strings.Contains(q, ` WHERE COLLATE("ID", 'utf8') IN (SELECT COLLATE("ID", 'utf8') FROM `+stage+` WHERE `) {
				t.Errorf("DELETE does not match IDs in 'utf8' on both sides:\n%s", q)
			}
		}
		for _, bare := range []string{`t."ID" =`, `= s."ID"`, `WHERE "ID" IN`, `SELECT "ID" FROM ` + stage} {
			if strings.Contains(q, bare) {
				t.Errorf("got a bare ID comparison %q in\n%s", bare, q)
			}
		}
	}
	if merges != 3 || deletes != 3 {
		t.Errorf("got %d MERGEs and %d DELETEs; want 3 and 3", merges, deletes)
	}
}
