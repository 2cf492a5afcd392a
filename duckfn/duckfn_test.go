package duckfn_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	_ "github.com/duckdb/duckdb-go/v2"

	"github.com/snowgate/snowgate/duckfn"
	"github.com/snowgate/snowgate/locapi"
	"github.com/snowgate/snowgate/sim"
	"github.com/snowgate/snowgate/stack"
)

// env is a simulator, the resolver stack in front of it and an in-memory
// DuckDB with the function registered.
type env struct {
	sim *sim.Running
	db  *sql.DB
}

func newEnv(t *testing.T, sc sim.Config, opt duckfn.Options) *env {
	t.Helper()
	return newEnvWith(t, sc, opt, 0, nil)
}

// newEnvWith is newEnv with the client paced at rate (0: unlimited) and,
// unless wrap is nil, the function registered on wrap of the resolver.
func newEnvWith(t *testing.T, sc sim.Config, opt duckfn.Options, rate float64, wrap func(duckfn.Resolver) duckfn.Resolver) *env {
	t.Helper()
	s, err := sim.Start(sc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	p, err := stack.New(stack.Config{
		Provider: locapi.Config{URL: s.URL + sim.EntitiesPath + "{id}?select=id,label,location", Rate: rate, Timeout: time.Minute},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var res duckfn.Resolver = p.Resolver
	if wrap != nil {
		res = wrap(res)
	}
	if err := duckfn.Register(context.Background(), conn, res, opt); err != nil {
		t.Fatal(err)
	}
	return &env{sim: s, db: db}
}

// exec runs statements that return no rows the test reads.
func (e *env) exec(t *testing.T, query string) {
	t.Helper()
	if _, err := e.db.ExecContext(t.Context(), query); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

// answers runs a query of (id text, answer text) rows.
func (e *env) answers(t *testing.T, query string) map[string]*string {
	t.Helper()
	rows, err := e.db.QueryContext(t.Context(), query)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	defer rows.Close()
	got := map[string]*string{}
	for rows.Next() {
		var id sql.NullString
		var v *string
		if err := rows.Scan(&id, &v); err != nil {
			t.Fatal(err)
		}
		key := id.String
		if !id.Valid {
			key = nullKey
		}
		got[key] = v
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return got
}

// nullKey stands for a NULL ID in answers: no valid ID holds a NUL byte.
const nullKey = "\x00NULL"

// want is the gateway's answer for id, built from the simulator's record:
// nil when the answer is NULL.
func (e *env) want(t *testing.T, id string) map[string]any {
	t.Helper()
	if locapi.ValidateID(id, 0) != nil {
		return nil
	}
	kind, body := e.sim.Expected(id)
	if kind != sim.Found {
		return nil
	}
	var ent sim.Entity
	if err := json.Unmarshal(body, &ent); err != nil {
		t.Fatal(err)
	}
	m := map[string]any{"id": ent.ID, "label": ptr(ent.Label)}
	l := ent.Location
	for k, v := range map[string]any{
		"geo_label": ptr(l.GeoLabel), "street_address": ptr(l.StreetAddress), "city_label": ptr(l.CityLabel),
		"postal_code": ptr(l.PostalCode), "country_label": ptr(l.CountryLabel),
		"latitude": ptr(l.Latitude), "longitude": ptr(l.Longitude),
	} {
		m[k] = v
	}
	return m
}

func ptr[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

// check compares every answer with the simulator's record.
func (e *env) check(t *testing.T, got map[string]*string) (found int) {
	t.Helper()
	for id, v := range got {
		want := e.want(t, id)
		if want == nil {
			if v != nil {
				t.Errorf("%q: got %s; want NULL", id, *v)
			}
			continue
		}
		if v == nil {
			t.Errorf("%q: got NULL; want %v", id, want)
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(*v), &m); err != nil {
			t.Fatalf("%q: %v in %s", id, err, *v)
		}
		if !reflect.DeepEqual(m, want) {
			t.Errorf("%q: got %v; want %v", id, m, want)
		}
		found++
	}
	return found
}

var mixed = sim.Config{Seed: 1, NotFoundRatio: 0.2, NoLocationRatio: 0.2}

func TestRecordsMatchSimulator(t *testing.T) {
	e := newEnv(t, mixed, duckfn.Options{})
	e.exec(t, `CREATE TABLE ids AS SELECT 'Q' || lpad(i::VARCHAR, 6, '0') AS id FROM range(300) t(i)`)
	e.exec(t, `INSERT INTO ids VALUES (NULL), (''), ('.'), ('a' || chr(1)), (repeat('x', 300))`)
	got := e.answers(t, `SELECT id, resolve_location(id)::VARCHAR FROM ids`)
	if len(got) != 305 {
		t.Fatalf("got %d rows; want 305", len(got))
	}
	if found := e.check(t, got); found == 0 || found == 300 {
		t.Errorf("got %d found of 300; want some found and some not", found)
	}
	if n := e.sim.Total(); n != 300 {
		t.Errorf("provider got %d requests; want 300 (one per valid ID)", n)
	}
}

func TestJSONOperators(t *testing.T) {
	e := newEnv(t, sim.Config{Seed: 1}, duckfn.Options{})
	var city, want sql.NullString
	if err := e.db.QueryRowContext(t.Context(), `SELECT resolve_location('Q000001')->>'city_label'`).Scan(&city); err != nil {
		t.Fatal(err)
	}
	_, body := e.sim.Expected("Q000001")
	var ent sim.Entity
	if err := json.Unmarshal(body, &ent); err != nil {
		t.Fatal(err)
	}
	if c := ent.Location.CityLabel; c != nil {
		want = sql.NullString{String: *c, Valid: true}
	}
	if city != want {
		t.Errorf("city_label: got %v; want %v", city, want)
	}
	var typ string
	if err := e.db.QueryRowContext(t.Context(), `SELECT typeof(resolve_location('Q000001'))`).Scan(&typ); err != nil {
		t.Fatal(err)
	}
	if typ != "JSON" {
		t.Errorf("typeof: got %s; want JSON", typ)
	}
}

func TestIntegerIDs(t *testing.T) {
	e := newEnv(t, mixed, duckfn.Options{})
	for _, typ := range []string{"INTEGER", "BIGINT", "UBIGINT", "HUGEINT"} {
		got := e.answers(t, fmt.Sprintf(
			`SELECT i::VARCHAR, resolve_location(i::%s)::VARCHAR FROM range(1000, 1100) t(i)`, typ))
		if len(got) != 100 {
			t.Fatalf("%s: got %d rows; want 100", typ, len(got))
		}
		e.check(t, got)
	}
	if n := e.sim.Total(); n != 100 {
		t.Errorf("provider got %d requests; want 100: the same decimal text whatever the type", n)
	}
}

func TestFiles(t *testing.T) {
	e := newEnv(t, mixed, duckfn.Options{})
	dir := t.TempDir()
	for _, format := range []string{"parquet", "csv"} {
		path := filepath.Join(dir, "ids."+format)
		e.exec(t, fmt.Sprintf(`COPY (SELECT 'F' || i AS id FROM range(200) t(i)) TO '%s' (FORMAT %s)`, path, format))
		got := e.answers(t, fmt.Sprintf(`SELECT id, resolve_location(id)::VARCHAR FROM '%s'`, path))
		if len(got) != 200 {
			t.Fatalf("%s: got %d rows; want 200", format, len(got))
		}
		e.check(t, got)
	}
	if n := e.sim.Total(); n != 200 {
		t.Errorf("provider got %d requests; want 200 (the second file hits the cache)", n)
	}
}

// Duplicates spread over many chunks are fetched once each, and a second
// run of the statement is answered from the cache alone.
func TestCallsAreDistinctIDs(t *testing.T) {
	e := newEnv(t, mixed, duckfn.Options{})
	const rows, distinct = 20_000, 3_000
	e.exec(t, fmt.Sprintf(`CREATE TABLE dup AS SELECT 'D' || (i * 7919 %% %d) AS id FROM range(%d) t(i)`, distinct, rows))
	q := `SELECT count(*), count(resolve_location(id)) FROM dup`
	var n, answered int
	if err := e.db.QueryRowContext(t.Context(), q).Scan(&n, &answered); err != nil {
		t.Fatal(err)
	}
	if n != rows || answered == 0 {
		t.Fatalf("got %d rows, %d answered; want %d rows, some answered", n, answered, rows)
	}
	if calls := e.sim.Total(); calls != distinct {
		t.Errorf("first run: provider got %d requests; want %d, one per distinct ID", calls, distinct)
	}
	var again int
	if err := e.db.QueryRowContext(t.Context(), q).Scan(&n, &again); err != nil {
		t.Fatal(err)
	}
	if calls := e.sim.Total(); calls != distinct || again != answered {
		t.Errorf("second run: %d requests in all, %d answered; want %d and %d", calls, again, distinct, answered)
	}
}

func TestNotFoundAndErrorObjects(t *testing.T) {
	e := newEnv(t, sim.Config{Seed: 1, NotFoundRatio: 0.5, PermanentFailRatio: 0.5},
		duckfn.Options{Name: "loc", NotFoundObject: true, OnRowError: duckfn.RowErrorObject})
	got := e.answers(t, `SELECT id, loc(id)::VARCHAR FROM (VALUES ('Q1'), ('Q2'), ('Q3'), ('Q4'), ('Q5'), ('Q6'), (''), (NULL)) t(id)`)
	kinds := map[sim.Kind]int{}
	for id, v := range got {
		kind, _ := e.sim.Expected(id)
		var want string
		switch {
		case id == nullKey:
			want = "<nil>" // NULL in, NULL out, whatever the options
		case id == "":
			want = `{"error":"invalid id: empty"}`
		case kind == sim.NotFound:
			want = fmt.Sprintf(`{"found":false,"id":%q,"status":"not_found"}`, id)
		default:
			want = `{"error":"lookup failed"}`
		}
		kinds[kind]++
		if s := fmt.Sprint(deref(v)); s != want {
			t.Errorf("%q: got %s; want %s", id, s, want)
		}
	}
	if len(got) != 8 || kinds[sim.NotFound] == 0 || kinds[sim.PermanentFail] == 0 {
		t.Errorf("got %d rows of kinds %v; want 8, both kinds", len(got), kinds)
	}
}

func deref(p *string) any {
	if p == nil {
		return nil
	}
	return *p
}

func TestFailAbortsWithReason(t *testing.T) {
	e := newEnv(t, sim.Config{Seed: 1}, duckfn.Options{OnRowError: duckfn.RowErrorFail})
	var v sql.NullString
	err := e.db.QueryRowContext(t.Context(), `SELECT resolve_location(x)::VARCHAR FROM (VALUES ('Q1'), ('')) t(x)`).Scan(&v)
	if err == nil || !strings.Contains(err.Error(), `resolve_location(""): invalid id: empty`) {
		t.Errorf("got %v; want the statement failed naming the empty ID", err)
	}
}

func TestRegisterRefusesBadOptions(t *testing.T) {
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	p, err := stack.New(stack.Config{Provider: locapi.Config{URL: "http://127.0.0.1:1/{id}"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := duckfn.Register(context.Background(), conn, p.Resolver, duckfn.Options{OnRowError: "ignore"}); err == nil {
		t.Error("OnRowError ignore: got no error")
	}
	if err := duckfn.Register(context.Background(), conn, nil, duckfn.Options{}); err == nil {
		t.Error("nil resolver: got no error")
	}
}

// Cancelling the statement's context ends the statement, and with it the
// provider calls: only the lookups already sent finish.
func TestCancelStopsCalls(t *testing.T) {
	e := newEnv(t, sim.Config{Seed: 1, Latency: 500 * time.Millisecond}, duckfn.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		var n int
		done <- e.db.QueryRowContext(ctx, `SELECT count(resolve_location('C' || i)) FROM range(100000) t(i)`).Scan(&n)
	}()
	for e.sim.Total() == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("query ended without an error after its context was cancelled")
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("query still running 2 minutes after its context was cancelled")
	}
	// The lookups in flight finish on their own (detached) context; then
	// nothing more is sent.
	deadline := time.Now().Add(2 * time.Minute)
	for e.sim.InFlight() > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	settled := e.sim.Total()
	time.Sleep(time.Second)
	if n := e.sim.Total(); n != settled || n >= 100_000 {
		t.Errorf("provider requests: %d, then %d a second later; want no growth, far below 100,000", settled, n)
	}
}
