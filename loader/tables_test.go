package loader

import (
	"strings"
	"testing"
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
