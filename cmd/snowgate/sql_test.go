//go:build !slim

package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/csv"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/snowgate/snowgate/gateway"
	"github.com/snowgate/snowgate/locapi"
	"github.com/snowgate/snowgate/sim"
)

// sqlSim starts a simulator and returns it with the --upstream-url of it.
func sqlSim(t *testing.T, cfg sim.Config) (*sim.Running, []string) {
	t.Helper()
	s, err := sim.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, []string{"--upstream-url", s.URL + sim.EntitiesPath + "{id}?select=id,label,location"}
}

func runSQLArgs(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := run(context.Background(), append([]string{"sql"}, args...), &out, slog.New(slog.DiscardHandler))
	return out.String(), err
}

func TestSQLExitCodes(t *testing.T) {
	cleanEnv(t)
	_, up := sqlSim(t, sim.Config{Seed: 1})
	script := filepath.Join(t.TempDir(), "ok.sql")
	if err := os.WriteFile(script, []byte("-- only a comment;\nSELECT 1 AS one;"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		args  []string
		usage bool   // exit 2
		want  string // in the error; "" = success
	}{
		{"query", []string{"SELECT 1"}, false, ""},
		{"file", []string{"--file", script}, false, ""},
		{"no SQL", nil, true, "sql: no SQL"},
		{"only comments", []string{"/* nothing */ ; -- here"}, true, "sql: no SQL"},
		{"unreadable file", []string{"--file", filepath.Join(t.TempDir(), "absent.sql")}, true, "sql: --file: open"},
		{"bad format", []string{"--format", "xml", "SELECT 1"}, true, `sql: --format "xml": want auto, table, csv or json`},
		{"bad warehouse", []string{"--warehouse", "snowflake", "SELECT 1"}, true, `sql: --warehouse "snowflake"`},
		{"bad rate", []string{"--rate", "-1", "SELECT 1"}, true, "sql: --rate -1"},
		{"flag after the SQL", []string{"SELECT 1", "--format", "csv"}, true, "sql: --format comes after the SQL"},
		{"a comment is SQL", []string{"SELECT 1", "-- format"}, false, ""},
		{"SQL error", []string{"SELECT 1; SELEC 2"}, false, `sql: statement 2 (SELEC 2): Parser Error: syntax error at or near "SELEC"`},
		{"missing table", []string{"SELECT * FROM nowhere"}, false, "sql: statement 1 (SELECT * FROM nowhere): Catalog Error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := runSQLArgs(t, append(append([]string{}, up...), tc.args...)...)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("got %v; want success", err)
			case tc.want == "":
				return
			case err == nil:
				t.Fatalf("got success; want an error with %q", tc.want)
			case errors.Is(err, errUsage) != tc.usage:
				t.Errorf("got %v, usage error %v; want usage error %v", err, errors.Is(err, errUsage), tc.usage)
			case !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n"):
				t.Errorf("got %q; want one line with %q", err, tc.want)
			}
		})
	}
}

// sqlWant is the gateway's value for a found ID, from the simulator.
func sqlWant(t *testing.T, s *sim.Running, id string) map[string]any {
	t.Helper()
	kind, body := s.Expected(id)
	if kind != sim.Found {
		t.Fatalf("%s is %v in the simulator; want found", id, kind)
	}
	var e sim.Entity
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatal(err)
	}
	v := func(p any) any {
		b, err := json.Marshal(p)
		var x any
		if err == nil {
			err = json.Unmarshal(b, &x)
		}
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	l := e.Location
	return map[string]any{
		"id": e.ID, "label": v(e.Label), "geo_label": v(l.GeoLabel), "street_address": v(l.StreetAddress),
		"city_label": v(l.CityLabel), "postal_code": v(l.PostalCode), "country_label": v(l.CountryLabel),
		"latitude": v(l.Latitude), "longitude": v(l.Longitude),
	}
}

// sqlWantText is the gateway's VARIANT text for a found ID.
func sqlWantText(t *testing.T, s *sim.Running, id string) string {
	t.Helper()
	_, body := s.Expected(id)
	var e sim.Entity
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatal(err)
	}
	l := e.Location
	js, err := gateway.EncodeRecord(&locapi.Record{ID: e.ID, Label: e.Label, GeoLabel: l.GeoLabel,
		StreetAddress: l.StreetAddress, CityLabel: l.CityLabel, PostalCode: l.PostalCode,
		CountryLabel: l.CountryLabel, Latitude: l.Latitude, Longitude: l.Longitude})
	if err != nil {
		t.Fatal(err)
	}
	return string(js)
}

func TestSQLFormats(t *testing.T) {
	cleanEnv(t)
	s, up := sqlSim(t, sim.Config{Seed: 1})
	const q = `SELECT 'a,b' AS x, NULL AS n, resolve_location('Q000001') AS r`
	want := sqlWant(t, s, "Q000001")

	out, err := runSQLArgs(t, append(up, "--format", "csv", q)...)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil || len(recs) != 2 || !reflect.DeepEqual(recs[0], []string{"x", "n", "r"}) || recs[1][0] != "a,b" || recs[1][1] != "" {
		t.Fatalf("csv: got %q (%v); want a header and one row", out, err)
	}
	var r map[string]any
	if err := json.Unmarshal([]byte(recs[1][2]), &r); err != nil || !reflect.DeepEqual(r, want) {
		t.Errorf("csv: r = %s; want %v", recs[1][2], want)
	}
	// Byte for byte the gateway's VARIANT, keys in its order, though the
	// driver hands the value decoded.
	if text := sqlWantText(t, s, "Q000001"); recs[1][2] != text {
		t.Errorf("csv: r = %s; want the gateway's text %s", recs[1][2], text)
	}

	out, err = runSQLArgs(t, append(up, "--format", "json", q)...)
	if err != nil {
		t.Fatal(err)
	}
	var row struct {
		X string         `json:"x"`
		N *string        `json:"n"`
		R map[string]any `json:"r"`
	}
	if err := json.Unmarshal([]byte(out), &row); err != nil || row.X != "a,b" || row.N != nil || !reflect.DeepEqual(row.R, want) {
		t.Errorf("json: got %q (%v); want one object with x, a null n and the record", out, err)
	}
	if want := `{"x":"a,b","n":null,"r":` + sqlWantText(t, s, "Q000001") + "}\n"; out != want {
		t.Errorf("json: got %q; want the keys in column order and the record as the gateway writes it, %q", out, want)
	}
	// Other JSON keeps json.Marshal's form: keys sorted, HTML escaped.
	out, err = runSQLArgs(t, "--format", "csv", `SELECT '{"b":[1,{"z":"<&>","a":null}],"a":2.5}'::JSON AS j`)
	if want := "j\n" + `"{""a"":2.5,""b"":[1,{""a"":null,""z"":""\u003c\u0026\u003e""}]}"` + "\n"; err != nil || out != want {
		t.Errorf("other JSON: got %q (%v); want %q", out, err, want)
	}

	out, err = runSQLArgs(t, append(up, "--format", "table", "SELECT 'abc' AS long_name, NULL AS n UNION ALL SELECT 'z', 2 ORDER BY 1")...)
	if err != nil {
		t.Fatal(err)
	}
	wantTable := "long_name  n\n---------  ----\nabc        NULL\nz          2\n(2 rows)\n"
	if out != wantTable {
		t.Errorf("table: got\n%s\nwant\n%s", out, wantTable)
	}
	// Padded in terminal columns: 東京 takes four, e plus a combining
	// acute accent one.
	out, err = runSQLArgs(t, "--format", "table", "SELECT '東京' AS city, 'x' AS k UNION ALL SELECT 'Paris', 'y' UNION ALL SELECT 'Le\u0301on', 'z' ORDER BY k")
	if err != nil {
		t.Fatal(err)
	}
	wantTable = "city   k\n-----  -\n東京   x\nParis  y\nLe\u0301on   z\n(3 rows)\n"
	if out != wantTable {
		t.Errorf("table of wide text: got\n%s\nwant\n%s", out, wantTable)
	}
}

// Several arguments, several statements in one: in order, one connection,
// and only the queries print.
func TestSQLStatementsInOrder(t *testing.T) {
	cleanEnv(t)
	_, up := sqlSim(t, sim.Config{Seed: 1})
	out, err := runSQLArgs(t, append(up, "--format", "csv",
		"CREATE TEMP TABLE t AS SELECT 1 AS a; INSERT INTO t VALUES (2); SELECT sum(a) AS s FROM t",
		"INSERT INTO t VALUES (length('a;b') + 1) -- a ; in a comment", "SELECT count(*) AS c FROM t")...)
	if err != nil {
		t.Fatal(err)
	}
	if want := "s\n3\n\nc\n3\n"; out != want {
		t.Errorf("got %q; want %q", out, want)
	}
}

func TestSplitStatements(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"SELECT 1", []string{"SELECT 1"}},
		{"SELECT 1; SELECT 2;", []string{"SELECT 1", "SELECT 2"}},
		{"SELECT ';' AS \"a;b\"; SELECT 'it''s;'", []string{`SELECT ';' AS "a;b"`, `SELECT 'it''s;'`}},
		{"-- c;\nSELECT 1 /* ; */; /* only */ ;", []string{"-- c;\nSELECT 1 /* ; */"}},
		{"SELECT $$a;b$$; SELECT $t$x;$t$", []string{"SELECT $$a;b$$", "SELECT $t$x;$t$"}},
		{"SELECT 'unterminated;", []string{"SELECT 'unterminated;"}},
		{" ; ;\n", nil},
	} {
		if got := splitStatements(tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("splitStatements(%q) = %q; want %q", tc.in, got, tc.want)
		}
	}
}

// The examples file runs as it is, and what it stores is what the
// simulator holds; every distinct ID costs one request over all its
// statements.
func TestSQLExamplesFile(t *testing.T) {
	cleanEnv(t)
	s, up := sqlSim(t, sim.Config{Seed: 1, NotFoundRatio: 0.05, NoLocationRatio: 0.05})
	db := filepath.Join(t.TempDir(), "ex.duckdb")
	out, err := runSQLArgs(t, append(up, "--warehouse", "duckdb:"+db, "--format", "json",
		"--file", filepath.Join("..", "..", "sql", "duckdb", "examples.sql"))...)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 1+5+10+1 {
		t.Fatalf("got %d result rows; want 17 (1 + 5 + 10 + 1):\n%s", len(lines), out)
	}
	if n := s.Total(); n != 200 {
		t.Errorf("provider got %d requests; want 200, one per distinct ID", n)
	}
	conn, err := sql.Open("duckdb", db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rows, err := conn.QueryContext(t.Context(), `SELECT ID, CITY_LABEL, LATITUDE FROM EXAMPLE_LOCATIONS`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	located := 0
	for rows.Next() {
		var id string
		var city *string
		var lat *float64
		if err := rows.Scan(&id, &city, &lat); err != nil {
			t.Fatal(err)
		}
		w := sqlWant(t, s, id)
		if !reflect.DeepEqual(anyOf(city), w["city_label"]) || !reflect.DeepEqual(anyOf(lat), w["latitude"]) {
			t.Errorf("%s: got %v, %v; want %v, %v", id, anyOf(city), anyOf(lat), w["city_label"], w["latitude"])
		}
		located++
	}
	found := 0
	for i := 1; i <= 200; i++ {
		if k, _ := s.Expected(sqlID(i)); k == sim.Found {
			found++
		}
	}
	if located != found {
		t.Errorf("EXAMPLE_LOCATIONS has %d rows; the simulator finds %d of the 200 IDs", located, found)
	}
	var summary struct {
		Source  int `json:"source_ids"`
		Located int `json:"located"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &summary); err != nil || summary.Source != 200 || summary.Located != found {
		t.Errorf("summary %s (%v); want 200 source IDs, %d located", lines[len(lines)-1], err, found)
	}
}

func sqlID(i int) string { return "Q" + strings.Repeat("0", 6-len(itoa(i))) + itoa(i) }

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

func anyOf[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

// syncBuffer is a bytes.Buffer the progress goroutine and the test share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestSQLProgress(t *testing.T) {
	var rows atomic.Int64
	provider := func() (int64, int64) { return 7, 9 }
	var off syncBuffer
	stop := newSQLProgress(&off, "auto", &rows, provider).start(1) // not a terminal: off
	stop()
	if off.String() != "" {
		t.Errorf("auto off a terminal printed %q", off.String())
	}
	var on syncBuffer
	p := newSQLProgress(&on, "on", &rows, provider)
	rows.Add(100) // before start: not this statement's
	stop = p.start(2)
	rows.Add(2048)
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(on.String(), "\n") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	line, _, _ := strings.Cut(on.String(), "\n")
	if !strings.HasPrefix(line, "statement 2: ") || !strings.Contains(line, ", 2048 rows answered, 0 IDs looked up, 0 provider requests (0/s)") {
		t.Errorf("got %q; want a line for statement 2 with 2048 rows and the provider's growth since the start", line)
	}
}
