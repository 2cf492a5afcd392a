package loader

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/snowgate/snowgate/locapi"
)

func TestNewTablesRejectsHostileNames(t *testing.T) {
	tests := []struct {
		name                     string
		source, idColumn, target string
		wantErr                  string
	}{
		{"injection in source", `MASTER_TABLE; DROP TABLE X`, "", "", "source table"},
		{"quote in source", `MASTER"TABLE`, "", "", "source table"},
		{"comment in target", "", "", "T--", "target table"},
		{"space in column", "", "ID x", "", "id column"},
		{"leading digit", "1TABLE", "", "", "source table"},
		{"four parts", "a.b.c.d", "", "", "source table"},
		{"empty part", "a..b", "", "", "source table"},
		{"qualified column", "", "T.ID", "", "id column"},
		{"unicode", "TÄBLE", "", "", "source table"},
		{"paren in target", "", "", "x()", "target table"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewTables(tt.source, tt.idColumn, tt.target)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("NewTables(%q, %q, %q) error = %v; want one mentioning %q", tt.source, tt.idColumn, tt.target, err, tt.wantErr)
			}
		})
	}
}

func TestNewTablesNames(t *testing.T) {
	tb, err := NewTables("db.public.master", "entity_id", "out")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ got, want string }{
		{tb.Source.String(), `"DB"."PUBLIC"."MASTER"`},
		{tb.IDColumn.String(), `"ENTITY_ID"`},
		{tb.Misses().String(), `"OUT_MISSES"`},
		{tb.Failures().String(), `"OUT_FAILURES"`},
	} {
		if c.got != c.want {
			t.Errorf("got %s; want %s", c.got, c.want)
		}
	}
}

// schemaRows are rows of every outcome, the kind of each table stores.
func schemaRows() map[Outcome]Row {
	at := time.Date(2025, 3, 1, 13, 0, 0, 0, time.FixedZone("CET", 3600))
	label, city, lat := "Kraków Główny", "Kraków", 50.06
	return map[Outcome]Row{
		OutcomeFound: {ID: "f1", Outcome: OutcomeFound, ResolvedAt: at,
			Record: &locapi.Record{ID: "f1", Label: &label, CityLabel: &city, Latitude: &lat}},
		OutcomeNotFound:   {ID: "nf1", Outcome: OutcomeNotFound, ResolvedAt: at},
		OutcomeNoLocation: {ID: "nl1", Outcome: OutcomeNoLocation, ResolvedAt: at, Record: &locapi.Record{ID: "nl1", Label: &label}},
		OutcomeFailed:     {ID: "x1", Outcome: OutcomeFailed, Reason: "503 after 4 attempts", ResolvedAt: at},
	}
}

// TestColumnValues checks each table's columns by name: what a row of each
// outcome gives them, and that a NOT NULL column has a value for every row
// its table stores.
func TestColumnValues(t *testing.T) {
	rows := schemaRows()
	utc := rows[OutcomeFound].ResolvedAt.UTC()
	tables := []struct {
		name     string
		cols     []Column
		outcomes []Outcome
		want     map[Outcome]map[string]any // by column name; a name left out must be nil
	}{
		{"target", TargetColumns(), []Outcome{OutcomeFound}, map[Outcome]map[string]any{
			OutcomeFound: {"ID": "f1", "LABEL": "Kraków Główny", "CITY_LABEL": "Kraków", "LATITUDE": 50.06, "RESOLVED_AT": utc},
		}},
		{"misses", MissColumns(), []Outcome{OutcomeNotFound, OutcomeNoLocation}, map[Outcome]map[string]any{
			OutcomeNotFound:   {"ID": "nf1", "OUTCOME": "not_found", "RESOLVED_AT": utc},
			OutcomeNoLocation: {"ID": "nl1", "OUTCOME": "no_location", "LABEL": "Kraków Główny", "RESOLVED_AT": utc},
		}},
		{"failures", FailureColumns(), []Outcome{OutcomeFailed}, map[Outcome]map[string]any{
			OutcomeFailed: {"ID": "x1", "REASON": "503 after 4 attempts", "ATTEMPTS": int64(1), "FAILED_AT": utc},
		}},
	}
	for _, tb := range tables {
		t.Run(tb.name, func(t *testing.T) {
			if keys := slices.DeleteFunc(slices.Clone(tb.cols), func(c Column) bool { return !c.Key }); len(keys) != 1 || keys[0].Name != ColID {
				t.Errorf("got key columns %v; want ID alone", Names(keys))
			}
			for _, o := range tb.outcomes {
				for _, c := range tb.cols {
					got, want := c.Value(rows[o]), tb.want[o][c.Name]
					if got != want {
						t.Errorf("%s row: %s = %#v; want %#v", o, c.Name, got, want)
					}
					if (c.NotNull || c.Key) && got == nil {
						t.Errorf("%s row: NOT NULL column %s has no value", o, c.Name)
					}
				}
			}
		})
	}
	// A row of another outcome gives a table's data columns nothing that
	// could be mistaken for its own.
	for _, c := range TargetColumns()[1:] {
		if c.Name == ColResolvedAt {
			continue
		}
		for _, o := range []Outcome{OutcomeNotFound, OutcomeFailed} {
			if v := c.Value(rows[o]); v != nil {
				t.Errorf("%s row: target column %s = %#v; want nil", o, c.Name, v)
			}
		}
	}
}

func TestStageColumns(t *testing.T) {
	stage := StageColumns()
	names := Names(stage)
	want := []string{"ID", "LABEL", "GEO_LABEL", "CITY_LABEL", "POSTAL_CODE", "COUNTRY_LABEL", "LATITUDE", "LONGITUDE",
		"STREET_ADDRESS", "RESOLVED_AT", "OUTCOME", "REASON", "ATTEMPTS", "FAILED_AT"}
	if !slices.Equal(names, want) {
		t.Fatalf("staging columns %v; want %v", names, want)
	}
	for _, c := range stage {
		if c.NotNull || c.Key {
			t.Errorf("staging column %s is NOT NULL or a key; want nullable: it holds rows of every outcome", c.Name)
		}
	}
	// Every table's column is staged with the same type and value, so a
	// table can take its columns from the stage by name.
	for _, cols := range [][]Column{TargetColumns(), MissColumns(), FailureColumns()} {
		for i, s := range Pick(stage, Names(cols)...) {
			for _, r := range schemaRows() {
				if s.Type != cols[i].Type || s.Value(r) != cols[i].Value(r) {
					t.Errorf("staged %s (type %d) = %#v; the table's (type %d) = %#v", s.Name, s.Type, s.Value(r), cols[i].Type, cols[i].Value(r))
				}
			}
		}
	}
}

func TestPickPanicsOnAnUnknownName(t *testing.T) {
	defer func() {
		if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "no column NOPE") {
			t.Fatalf("recovered %v; want a panic naming NOPE", r)
		}
	}()
	Pick(MissColumns(), ColID, "NOPE")
}
