package snowflake

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/snowgate/snowgate/loader"
	"github.com/snowgate/snowgate/locapi"
)

// inlineThreshold is a CLIENT_STAGE_ARRAY_BINDING_THRESHOLD high enough that
// the driver sends every array bind inline in the query request.
const inlineThreshold = 10_000_000

func openStandin(t *testing.T, s *standin, cfg Config) *Warehouse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	w, err := Open(ctx, s.dsn(), cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := w.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return w
}

// testCtx bounds a test that would otherwise hang on a stuck stand-in. It
// is no speed check: under -race beside other packages' tests the
// 100,000-row commit alone took 30 s, so the bound is generous.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// since returns the statements recorded after the first n.
func since(s *standin, n int) []stmt { return s.statements()[n:] }

func ptr[T any](v T) *T { return &v }

var resolvedBase = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// testRows makes n rows in which every chunk of the bulk insert holds every
// outcome, nulls in nullable columns, and one non-ASCII label.
func testRows(n int) []loader.Row {
	rows := make([]loader.Row, n)
	for i := range rows {
		id := fmt.Sprintf("ID%06d", i)
		r := loader.Row{ID: id, ResolvedAt: resolvedBase.Add(time.Duration(i) * time.Millisecond)}
		switch i % 20 {
		case 0:
			r.Outcome = loader.OutcomeNotFound
		case 1:
			r.Outcome = loader.OutcomeNoLocation
			r.Record = &locapi.Record{ID: id, Label: ptr("no-loc " + id)}
		case 2:
			r.Outcome = loader.OutcomeFailed
			r.Reason = "provider: 503 after 4 attempts"
		default:
			r.Outcome = loader.OutcomeFound
			r.Record = &locapi.Record{
				ID: id, Label: ptr("Label " + id), GeoLabel: ptr("Geo, \"quoted\""),
				CityLabel: ptr("Kraków"), PostalCode: ptr(strconv.Itoa(10000 + i)),
				CountryLabel: ptr("PL"), Latitude: ptr(50 + float64(i)/1e6), Longitude: ptr(-19.5),
				StreetAddress: ptr("Main St " + strconv.Itoa(i)),
			}
			if i%7 == 0 {
				r.Record.StreetAddress = nil
				r.Record.Latitude = nil
			}
		}
		rows[i] = r
	}
	return rows
}

// wantColumns is the staging bind of row r, column by column, as the driver
// renders it (nil for SQL NULL).
func wantColumns(r loader.Row) []*string {
	s := func(p *string) *string { return p }
	f := func(p *float64) *string {
		if p == nil {
			return nil
		}
		return ptr(strconv.FormatFloat(*p, 'g', -1, 64))
	}
	cols := make([]*string, len(stagingCols()))
	cols[0], cols[1] = ptr(r.ID), ptr(string(r.Outcome))
	if rec := r.Record; rec != nil {
		switch r.Outcome {
		case loader.OutcomeFound:
			copy(cols[2:10], []*string{s(rec.Label), s(rec.GeoLabel), s(rec.CityLabel), s(rec.PostalCode),
				s(rec.CountryLabel), f(rec.Latitude), f(rec.Longitude), s(rec.StreetAddress)})
		case loader.OutcomeNoLocation:
			cols[2] = rec.Label
		}
	}
	if r.Outcome == loader.OutcomeFailed {
		cols[10] = ptr(r.Reason)
	}
	cols[11] = ptr(strconv.FormatInt(r.ResolvedAt.UnixNano(), 10))
	return cols
}

// wantInsertTypes are the bind types of a chunk that has every outcome.
var wantInsertTypes = []string{"TEXT", "TEXT", "TEXT", "TEXT", "TEXT", "TEXT", "TEXT", "REAL", "REAL", "TEXT", "TEXT", "TIMESTAMP_NTZ"}

func deref(p *string) string {
	if p == nil {
		return "<NULL>"
	}
	return *p
}

// TestStandinBackfill is acceptance 7: the warehouse drives the real
// gosnowflake driver against the stand-in through Setup, the keyset cursor
// and a 100,000-row Commit, and the statements and typed binds that reach
// "Snowflake" are checked one by one.
func TestStandinBackfill(t *testing.T) {
	s := newStandin(t, inlineThreshold)
	w := openStandin(t, s, Config{})
	ctx := testCtx(t)

	t.Run("login", func(t *testing.T) {
		s.mu.Lock()
		logins := append([]loginRequest(nil), s.logins...)
		s.mu.Unlock()
		if len(logins) != 1 {
			t.Fatalf("got %d logins after Open; want 1 (the pinned commit session)", len(logins))
		}
		d := logins[0].Data
		if d.AccountName != "standin" || d.LoginName != "tester" || d.Password != "s3cret" {
			t.Errorf("got login account=%q user=%q password=%q; want standin, tester, s3cret", d.AccountName, d.LoginName, d.Password)
		}
	})

	t.Run("setup", func(t *testing.T) {
		n := len(s.statements())
		if err := w.Setup(ctx); err != nil {
			t.Fatalf("Setup: %v", err)
		}
		got := since(s, n)
		want := []string{
			`SELECT CURRENT_DATABASE(), CURRENT_SCHEMA(), CURRENT_ROLE()`,
			`SELECT COLUMN_NAME FROM "TESTDB".INFORMATION_SCHEMA.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION`,
			`CREATE TABLE IF NOT EXISTS "STANDARDIZED_LOCATIONS" ("ID" VARCHAR NOT NULL PRIMARY KEY, "LABEL" VARCHAR, "GEO_LABEL" VARCHAR, "CITY_LABEL" VARCHAR, "POSTAL_CODE" VARCHAR, "COUNTRY_LABEL" VARCHAR, "LATITUDE" FLOAT, "LONGITUDE" FLOAT, "STREET_ADDRESS" VARCHAR, "RESOLVED_AT" TIMESTAMP_NTZ)`,
			`ALTER TABLE "STANDARDIZED_LOCATIONS" ADD COLUMN IF NOT EXISTS "RESOLVED_AT" TIMESTAMP_NTZ`,
			`CREATE TABLE IF NOT EXISTS "STANDARDIZED_LOCATIONS_MISSES" ("ID" VARCHAR NOT NULL PRIMARY KEY, "OUTCOME" VARCHAR NOT NULL, "LABEL" VARCHAR, "RESOLVED_AT" TIMESTAMP_NTZ NOT NULL)`,
			`CREATE TABLE IF NOT EXISTS "STANDARDIZED_LOCATIONS_FAILURES" ("ID" VARCHAR NOT NULL PRIMARY KEY, "REASON" VARCHAR NOT NULL, "ATTEMPTS" NUMBER(10,0) NOT NULL, "FAILED_AT" TIMESTAMP_NTZ NOT NULL)`,
		}
		if len(got) != len(want) {
			t.Fatalf("got %d setup statements; want %d", len(got), len(want))
		}
		for i := range want {
			if got[i].SQL != want[i] {
				t.Errorf("setup statement %d:\ngot  %s\nwant %s", i, got[i].SQL, want[i])
			}
		}
		if b := got[1].Bindings; len(b) != 2 || b["1"].scalar(t) != "PUBLIC" || b["2"].scalar(t) != "MASTER_TABLE" {
			t.Errorf("source check binds %v; want PUBLIC, MASTER_TABLE", b)
		}
	})

	t.Run("keyset cursor", func(t *testing.T) { testKeyset(t, ctx, s, w) })
	t.Run("commit 100000 rows in bulk", func(t *testing.T) { testBulkCommit(t, ctx, s, w) })
	t.Run("second commit reuses the staging table and dedupes", func(t *testing.T) {
		n := len(s.statements())
		rows := testRows(3)
		rows = append(rows, loader.Row{ID: rows[0].ID, Outcome: loader.OutcomeFailed, Reason: "last wins", ResolvedAt: resolvedBase})
		if err := w.Commit(ctx, rows); err != nil {
			t.Fatalf("Commit: %v", err)
		}
		got := since(s, n)
		if len(got) == 0 || !strings.HasPrefix(got[0].SQL, "TRUNCATE TABLE ") {
			t.Fatalf("got first statement %q; want TRUNCATE (the temporary table is created once per session)", got[0].SQL)
		}
		ins := got[1]
		ids := ins.Bindings["1"].strings(t)
		outcomes := ins.Bindings["2"].strings(t)
		if len(ids) != 3 {
			t.Fatalf("got %d staged rows; want 3 (4 rows, one ID twice)", len(ids))
		}
		for i, id := range ids {
			if *id == rows[0].ID && *outcomes[i] != string(loader.OutcomeFailed) {
				t.Errorf("got outcome %s for the duplicated ID; want the last row's %s", *outcomes[i], loader.OutcomeFailed)
			}
		}
	})
}

func testKeyset(t *testing.T, ctx context.Context, s *standin, w *Warehouse) {
	var src []string
	for i := 25; i > 0; i-- {
		src = append(src, fmt.Sprintf("K%03d", i))
	}
	s.setSource(src, 25)
	n := len(s.statements())

	count, err := w.CountPending(ctx, loader.Selection{})
	if err != nil || count != 25 {
		t.Fatalf("CountPending = %d, %v; want 25, nil", count, err)
	}
	var got []string
	after := ""
	for page := 0; ; page++ {
		ids, err := w.Pending(ctx, after, 10, loader.Selection{})
		if err != nil {
			t.Fatalf("Pending page %d: %v", page, err)
		}
		if len(ids) == 0 {
			break
		}
		got = append(got, ids...)
		after = ids[len(ids)-1]
		if page > 5 {
			t.Fatal("the cursor does not advance")
		}
	}
	if len(got) != 25 || got[0] != "K001" || got[24] != "K025" {
		t.Errorf("got %d IDs %v...; want K001..K025 in order", len(got), got[:min(3, len(got))])
	}

	stmts := since(s, n)
	if len(stmts) != 5 { // count + 3 pages + the empty page
		t.Fatalf("got %d statements; want 5", len(stmts))
	}
	wantCursor := []string{"", "K010", "K020", "K025"}
	for i, st := range stmts[1:] {
		cmp := `COLLATE(TO_VARCHAR(s."ID"), 'utf8') > ?`
		if i == 0 {
			cmp = `COLLATE(TO_VARCHAR(s."ID"), 'utf8') >= ?` // the first page includes an empty-string ID
		}
		for _, frag := range []string{
			`SELECT DISTINCT COLLATE(TO_VARCHAR(s."ID"), 'utf8') AS "ID" FROM "MASTER_TABLE" s`,
			cmp,
			`NOT EXISTS (SELECT 1 FROM "STANDARDIZED_LOCATIONS" x WHERE x."ID" = COLLATE(TO_VARCHAR(s."ID"), 'utf8'))`,
			`NOT EXISTS (SELECT 1 FROM "STANDARDIZED_LOCATIONS_MISSES" x`,
			`NOT EXISTS (SELECT 1 FROM "STANDARDIZED_LOCATIONS_FAILURES" x`,
			` ORDER BY 1 LIMIT 10`,
		} {
			if !strings.Contains(st.SQL, frag) {
				t.Errorf("page query %d lacks %q:\n%s", i, frag, st.SQL)
			}
		}
		if strings.Contains(strings.ToUpper(st.SQL), "OFFSET") {
			t.Errorf("page query %d uses OFFSET: %s", i, st.SQL)
		}
		b, ok := st.Bindings["1"]
		if len(st.Bindings) != 1 || !ok || b.Type != "TEXT" || b.scalar(t) != wantCursor[i] {
			t.Errorf("page query %d binds %v; want one TEXT bind %q", i, st.Bindings, wantCursor[i])
		}
	}
}

func testBulkCommit(t *testing.T, ctx context.Context, s *standin, w *Warehouse) {
	const total = 100_000
	rows := testRows(total)
	n := len(s.statements())
	start := time.Now()
	if err := w.Commit(ctx, rows); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	t.Logf("Commit of %d rows through gosnowflake took %v", total, time.Since(start))
	got := since(s, n)

	chunks := (total + DefaultInsertRows - 1) / DefaultInsertRows
	var want []string
	want = append(want, `CREATE TEMPORARY TABLE IF NOT EXISTS "STANDARDIZED_LOCATIONS_SNOWGATE_STAGING" (`,
		`TRUNCATE TABLE "STANDARDIZED_LOCATIONS_SNOWGATE_STAGING"`)
	for range chunks {
		want = append(want, `INSERT INTO "STANDARDIZED_LOCATIONS_SNOWGATE_STAGING" ("ID", "OUTCOME", "LABEL", "GEO_LABEL", "CITY_LABEL", "POSTAL_CODE", "COUNTRY_LABEL", "LATITUDE", "LONGITUDE", "STREET_ADDRESS", "REASON", "RESOLVED_AT") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	}
	want = append(want, "BEGIN",
		`MERGE INTO "STANDARDIZED_LOCATIONS" t USING (SELECT "ID", "LABEL", `,
		`MERGE INTO "STANDARDIZED_LOCATIONS_MISSES" t USING (SELECT "ID", "OUTCOME", "LABEL", "RESOLVED_AT" FROM "STANDARDIZED_LOCATIONS_SNOWGATE_STAGING" WHERE "OUTCOME" IN ('not_found', 'no_location')) s ON COLLATE(t."ID", 'utf8') = COLLATE(s."ID", 'utf8')`,
		`MERGE INTO "STANDARDIZED_LOCATIONS_FAILURES" t USING (SELECT "ID", "REASON", "RESOLVED_AT" FROM "STANDARDIZED_LOCATIONS_SNOWGATE_STAGING" WHERE "OUTCOME" = 'failed') s ON COLLATE(t."ID", 'utf8') = COLLATE(s."ID", 'utf8')`,
		`DELETE FROM "STANDARDIZED_LOCATIONS_FAILURES" WHERE COLLATE("ID", 'utf8') IN (SELECT COLLATE("ID", 'utf8') FROM "STANDARDIZED_LOCATIONS_SNOWGATE_STAGING" WHERE "OUTCOME" <> 'failed')`,
		`DELETE FROM "STANDARDIZED_LOCATIONS_MISSES" WHERE COLLATE("ID", 'utf8') IN (SELECT COLLATE("ID", 'utf8') FROM "STANDARDIZED_LOCATIONS_SNOWGATE_STAGING" WHERE "OUTCOME" = 'found')`,
		`DELETE FROM "STANDARDIZED_LOCATIONS" WHERE COLLATE("ID", 'utf8') IN (SELECT COLLATE("ID", 'utf8') FROM "STANDARDIZED_LOCATIONS_SNOWGATE_STAGING" WHERE "OUTCOME" IN ('not_found', 'no_location'))`,
		"COMMIT")
	if len(got) != len(want) {
		for _, st := range got {
			t.Logf("sent: %.120s", st.SQL)
		}
		t.Fatalf("got %d statements for %d rows; want %d", len(got), total, len(want))
	}
	for i := range want {
		if !strings.HasPrefix(got[i].SQL, want[i]) {
			t.Errorf("statement %d:\ngot  %.300s\nwant %s...", i, got[i].SQL, want[i])
		}
	}
	merge := got[3+chunks].SQL
	for _, frag := range []string{
		`WHERE "OUTCOME" = 'found') s ON COLLATE(t."ID", 'utf8') = COLLATE(s."ID", 'utf8') WHEN MATCHED THEN UPDATE SET "LABEL" = s."LABEL"`,
		`"RESOLVED_AT" = s."RESOLVED_AT" WHEN NOT MATCHED THEN INSERT ("ID", "LABEL"`,
	} {
		if !strings.Contains(merge, frag) {
			t.Errorf("target MERGE lacks %q:\n%s", frag, merge)
		}
	}
	if !strings.Contains(got[5+chunks].SQL, `"ATTEMPTS" = t."ATTEMPTS" + 1`) {
		t.Errorf("failures MERGE does not count attempts:\n%s", got[5+chunks].SQL)
	}
	check := newRowChecker(rows)
	for _, ins := range got[2 : 2+chunks] {
		check.inline(t, ins)
	}
	check.done(t)
}

// rowChecker checks the bulk inserts carry every row exactly once, with the
// right types and values, whichever way the driver sent each chunk.
type rowChecker struct {
	rows []loader.Row
	byID map[string]int
	seen map[string]bool
}

func newRowChecker(rows []loader.Row) *rowChecker {
	c := &rowChecker{rows: rows, byID: make(map[string]int, len(rows)), seen: make(map[string]bool, len(rows))}
	for i, r := range rows {
		c.byID[r.ID] = i
	}
	return c
}

// row checks one staged row, cols[j] being column j as the driver rendered
// it; want adjusts the expected values to the path the row took.
func (c *rowChecker) row(t *testing.T, cols []*string, want func([]*string)) {
	t.Helper()
	id := deref(cols[0])
	i, ok := c.byID[id]
	if !ok || c.seen[id] {
		t.Fatalf("staged ID %q unknown or sent twice", id)
	}
	c.seen[id] = true
	exp := wantColumns(c.rows[i])
	want(exp)
	for j := range cols {
		if deref(cols[j]) != deref(exp[j]) {
			t.Errorf("row %s column %s: got %q; want %q", id, stagingCols()[j].Name, deref(cols[j]), deref(exp[j]))
		}
	}
}

// inline checks a bulk INSERT whose array binds went inline: typed, at most
// DefaultInsertRows values each.
func (c *rowChecker) inline(t *testing.T, ins stmt) {
	t.Helper()
	if len(ins.Bindings) != len(stagingCols()) || ins.BindStage != "" {
		t.Fatalf("insert has %d bindings, bind stage %q; want %d inline array binds", len(ins.Bindings), ins.BindStage, len(stagingCols()))
	}
	cols := make([][]*string, len(stagingCols()))
	for j := range cols {
		b := ins.Bindings[strconv.Itoa(j+1)]
		if b.Type != wantInsertTypes[j] {
			t.Errorf("bind %d (%s) has type %s; want %s", j+1, stagingCols()[j].Name, b.Type, wantInsertTypes[j])
		}
		cols[j] = b.strings(t)
		if len(cols[j]) != len(cols[0]) || len(cols[j]) > DefaultInsertRows {
			t.Fatalf("bind %d has %d values; want %d, at most %d", j+1, len(cols[j]), len(cols[0]), DefaultInsertRows)
		}
	}
	row := make([]*string, len(cols))
	for k := range cols[0] {
		for j := range cols {
			row[j] = cols[j][k]
		}
		c.row(t, row, func([]*string) {})
	}
}

// csv checks a CSV file the driver uploaded to the bind stage. Its stream
// format writes timestamps as text and NULL as an empty field (the fixture
// has no empty strings, so "" means NULL here).
func (c *rowChecker) csv(t *testing.T, file []byte) {
	t.Helper()
	recs, err := csv.NewReader(bytes.NewReader(file)).ReadAll()
	if err != nil {
		t.Fatalf("uploaded CSV: %v", err)
	}
	for _, rec := range recs {
		if len(rec) != len(stagingCols()) {
			t.Fatalf("CSV record has %d fields; want %d: %q", len(rec), len(stagingCols()), rec)
		}
		row := make([]*string, len(rec))
		for j, v := range rec {
			if v != "" {
				row[j] = &rec[j]
			}
		}
		i := c.byID[rec[0]]
		c.row(t, row, func(exp []*string) {
			exp[11] = ptr(c.rows[i].ResolvedAt.UTC().Format("2006-01-02 15:04:05.999999999"))
		})
	}
}

func (c *rowChecker) done(t *testing.T) {
	t.Helper()
	if len(c.seen) != len(c.rows) {
		t.Errorf("got %d distinct rows staged; want %d", len(c.seen), len(c.rows))
	}
}

// snowflakeDefaultThreshold is CLIENT_STAGE_ARRAY_BINDING_THRESHOLD's default
// on Snowflake accounts: from this many bound values (rows x columns) on,
// gosnowflake uploads array binds to a stage.
const snowflakeDefaultThreshold = 65280

// TestStandinStageUpload runs the 100,000-row Commit at Snowflake's default
// threshold, so every chunk takes gosnowflake's stage path: a temporary
// stage, an encrypted CSV upload (to the stand-in's emulated GCS bucket) and
// an INSERT that binds the stage instead of values. The uploads are
// decrypted and must hold every row exactly once.
func TestStandinStageUpload(t *testing.T) {
	s := newStandin(t, snowflakeDefaultThreshold)
	w := openStandin(t, s, Config{})
	ctx := testCtx(t)
	const total = 100_000
	rows := testRows(total)
	start := time.Now()
	if err := w.Commit(ctx, rows); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	t.Logf("Commit of %d rows through gosnowflake's stage upload took %v", total, time.Since(start))

	got := s.statements()
	check := newRowChecker(rows)
	next := 2 // after CREATE TEMPORARY TABLE and TRUNCATE
	staged := 0
	for lo := 0; lo < total; lo += DefaultInsertRows {
		n := min(DefaultInsertRows, total-lo)
		if n*len(stagingCols()) < snowflakeDefaultThreshold {
			// A chunk under the threshold still goes inline.
			check.inline(t, got[next])
			next++
			continue
		}
		if len(got) < next+4 {
			t.Fatalf("got %d statements; want a stage, two PUTs and an INSERT at %d", len(got), next)
		}
		stage, put1, put2, ins := got[next], got[next+1], got[next+2], got[next+3]
		next += 4
		staged++
		if !strings.HasPrefix(stage.SQL, "CREATE OR REPLACE TEMPORARY STAGE SYSTEM$BIND") {
			t.Errorf("rows %d+: got %q; want the driver's bind stage", lo, stage.SQL)
		}
		m := putRE.FindStringSubmatch(put1.SQL)
		if m == nil || put2.SQL != put1.SQL || !strings.HasPrefix(m[2], "@SYSTEM$BIND/") {
			t.Fatalf("rows %d+: got %q, %q; want two PUTs to @SYSTEM$BIND/...", lo, put1.SQL, put2.SQL)
		}
		if !strings.HasPrefix(ins.SQL, `INSERT INTO "STANDARDIZED_LOCATIONS_SNOWGATE_STAGING" (`) || ins.BindStage != m[2] || len(ins.Bindings) != 0 {
			t.Fatalf("rows %d+: got %.60q binding stage %q with %d inline binds; want the INSERT binding %s only",
				lo, ins.SQL, ins.BindStage, len(ins.Bindings), m[2])
		}
		objs := s.stageObjects(m[2])
		if len(objs) == 0 {
			t.Fatalf("rows %d+: nothing uploaded to %s", lo, m[2])
		}
		for _, o := range objs {
			check.csv(t, s.plaintext(t, o))
		}
	}
	check.done(t)
	if staged == 0 {
		t.Error("no chunk took the stage path")
	}
	if len(got) != next+8 || got[next].SQL != "BEGIN" || got[len(got)-1].SQL != "COMMIT" {
		t.Errorf("got %d statements, then %q ... %q; want %d, BEGIN ... COMMIT", len(got), got[next].SQL, got[len(got)-1].SQL, next+8)
	}
	t.Logf("%d rows: %d statements, %d chunks through the stage", total, len(got), staged)
}

// TestStandinSetupChecksSource runs Setup against catalogs in which the
// source is wrong, and right: a wrong one is a *loader.SourceError naming
// what was looked for and what is there, and no CREATE (or ALTER) reaches
// Snowflake.
func TestStandinSetupChecksSource(t *testing.T) {
	tests := []struct {
		name     string
		source   string
		catalog  map[string][]string
		session  [3]*string
		fail     string // failPrefix
		wantKind loader.SourceKind
		wantErr  string // "" means Setup succeeds
	}{
		{name: "source table missing", catalog: map[string][]string{"TESTDB.PUBLIC.OTHER": {"ID"}, "TESTDB.PUBLIC.STANDARDIZED_LOCATIONS": {"ID"}},
			wantKind: loader.SourceTable,
			wantErr:  "source table TESTDB.PUBLIC.MASTER_TABLE not found (or not visible to role LOADER); tables in TESTDB.PUBLIC: OTHER, STANDARDIZED_LOCATIONS"},
		{name: "empty schema", catalog: map[string][]string{}, wantKind: loader.SourceTable,
			wantErr: "tables in TESTDB.PUBLIC: none"},
		{name: "id column missing", catalog: map[string][]string{"TESTDB.PUBLIC.MASTER_TABLE": {"ENTITY_ID", "NAME"}},
			wantKind: loader.SourceColumn, wantErr: "column ID not in TESTDB.PUBLIC.MASTER_TABLE; its columns: ENTITY_ID, NAME"},
		{name: "id column in another case", catalog: map[string][]string{"TESTDB.PUBLIC.MASTER_TABLE": {"id"}},
			wantKind: loader.SourceColumn, wantErr: "column ID not in TESTDB.PUBLIC.MASTER_TABLE; its columns: id"},
		{name: "no current schema", session: [3]*string{ptr("TESTDB"), nil, ptr("LOADER")},
			wantKind: loader.SourceTable, wantErr: "source table MASTER_TABLE: the session has no current database or schema"},
		{name: "database missing", source: "nodb.raw.ids", fail: `SELECT COLUMN_NAME FROM "NODB"`,
			wantKind: loader.SourceTable, wantErr: "source table NODB.RAW.IDS not found: database NODB does not exist"},
		{name: "schema-qualified source", source: "raw.ids", catalog: map[string][]string{"TESTDB.RAW.IDS": {"ID"}}},
		{name: "fully qualified source", source: "otherdb.raw.ids", catalog: map[string][]string{"OTHERDB.RAW.IDS": {"X", "ID"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStandin(t, inlineThreshold)
			s.mu.Lock()
			if tt.catalog != nil {
				s.catalog = tt.catalog
			}
			if tt.session != [3]*string{} {
				s.session = tt.session
			}
			s.failPrefix = tt.fail
			s.mu.Unlock()
			lt, err := loader.NewTables(tt.source, "", "")
			if err != nil {
				t.Fatal(err)
			}
			w := openStandin(t, s, Config{Tables: lt})
			err = w.Setup(testCtx(t))
			var ddl []string
			for _, st := range s.statements() {
				if u := strings.ToUpper(st.SQL); strings.Contains(u, "CREATE") || strings.Contains(u, "ALTER") {
					ddl = append(ddl, st.SQL)
				}
			}
			if tt.wantErr == "" {
				if err != nil || len(ddl) != 4 {
					t.Fatalf("Setup = %v with %d DDL statements; want nil and 4", err, len(ddl))
				}
				return
			}
			var se *loader.SourceError
			if !errors.As(err, &se) || se.Kind != tt.wantKind || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Setup = %v; want a *loader.SourceError of kind %d containing %q", err, tt.wantKind, tt.wantErr)
			}
			if len(ddl) != 0 {
				t.Errorf("sent %q; want no DDL when the source is wrong", ddl)
			}
		})
	}
}
