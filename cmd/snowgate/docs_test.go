//go:build !slim

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/snowgate/snowgate/cache"
	"github.com/snowgate/snowgate/gateway"
	"github.com/snowgate/snowgate/loader"
	"github.com/snowgate/snowgate/loader/snowflake"
	"github.com/snowgate/snowgate/locapi"
)

// These tests keep the documents an admin copies from (README.md, sql/,
// deploy/) in step with the real flags, defaults, paths and metrics.

type flagDoc struct{ env, def string }

var helpLine = regexp.MustCompile(`^  --([a-z0-9-]+)  \[(SNOWGATE_[A-Z0-9_]+)\](?: \(default (.*)\))?$`)

// flagsOf runs `snowgate CMD --help` and reads its flag list.
func flagsOf(t *testing.T, cmd string) map[string]flagDoc {
	t.Helper()
	var out bytes.Buffer
	err := run(context.Background(), []string{cmd, "--help"}, &out, slog.New(slog.DiscardHandler))
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("snowgate %s --help: got %v; want flag.ErrHelp", cmd, err)
	}
	flags := map[string]flagDoc{}
	for _, line := range strings.Split(out.String(), "\n") {
		if m := helpLine.FindStringSubmatch(line); m != nil {
			flags[m[1]] = flagDoc{env: m[2], def: m[3]}
		}
	}
	if len(flags) == 0 {
		t.Fatalf("snowgate %s --help lists no flags:\n%s", cmd, out.String())
	}
	return flags
}

// commandsWithFlags are the subcommands whose flags the README documents.
var commandsWithFlags = []string{"serve", "backfill", "sql", "sim", "demo", "bench", "healthcheck"}

// TestReadmeFlagTables checks every flag of every command against the
// README's tables, both ways: no flag undocumented, no documented flag
// missing, env twin and default as the binary says.
func TestReadmeFlagTables(t *testing.T) {
	readme := readFile(t, "../../README.md")
	row := regexp.MustCompile("(?m)^\\| `--([a-z0-9-]+)` \\| `(SNOWGATE_[A-Z0-9_]+)` \\| `?([^|`]*)`? \\|")
	documented := map[string]map[string]flagDoc{}
	section := ""
	for _, line := range strings.Split(readme, "\n") {
		if strings.HasPrefix(line, "#### `snowgate ") {
			section = strings.TrimSuffix(strings.TrimPrefix(line, "#### `snowgate "), "`")
			documented[section] = map[string]flagDoc{}
		}
		if m := row.FindStringSubmatch(line); m != nil && section != "" {
			documented[section][m[1]] = flagDoc{env: m[2], def: strings.TrimSpace(m[3])}
		}
	}
	for _, cmd := range commandsWithFlags {
		t.Run(cmd, func(t *testing.T) {
			real, doc := flagsOf(t, cmd), documented[cmd]
			if doc == nil {
				t.Fatalf("README has no \"#### `snowgate %s`\" flag table", cmd)
			}
			for name, f := range real {
				d, ok := doc[name]
				switch {
				case !ok:
					t.Errorf("--%s is not in the README's table", name)
				case d != f:
					t.Errorf("--%s: README says %+v; the binary says %+v", name, d, f)
				}
			}
			for name := range doc {
				if _, ok := real[name]; !ok {
					t.Errorf("README documents --%s, which snowgate %s does not have", name, cmd)
				}
			}
		})
	}
}

// TestSQLMatchesFlags checks that what sql/ tells an admin to pass exists.
func TestSQLMatchesFlags(t *testing.T) {
	flags, envs := map[string]bool{}, map[string]bool{
		"SNOWGATE_AUTH_SECRET": true, "SNOWGATE_UPSTREAM_TOKEN": true, "SNOWGATE_LOG_LEVEL": true,
	}
	for _, cmd := range commandsWithFlags {
		for name, f := range flagsOf(t, cmd) {
			flags[name], envs[f.env] = true, true
		}
	}
	serve := flagsOf(t, "serve")
	docker := otherToolFlags // flags of docker, gcloud, az, snow, redis-server (sqlscripts_test.go)
	files, err := filepath.Glob("../../sql/*/*.sql")
	if err != nil {
		t.Fatal(err)
	}
	top, _ := filepath.Glob("../../sql/*.sql")
	files = append(files, top...)
	if len(files) < 6 {
		t.Fatalf("found %d SQL files; want tables, examples and one per deployment path", len(files))
	}
	flagRef := regexp.MustCompile(`(?:^|[\s'"(])--([a-z][a-z0-9-]+)`)
	envRef := regexp.MustCompile(`\bSNOWGATE_[A-Z0-9_]+\b`)
	custom := regexp.MustCompile(`(?is)HEADERS\s*=\s*\(\s*'([a-z0-9-]+)'`)
	for _, f := range files {
		text := readFile(t, f)
		name := strings.TrimPrefix(f, "../../")
		for _, m := range flagRef.FindAllStringSubmatch(text, -1) {
			if !flags[m[1]] && !docker[m[1]] {
				t.Errorf("%s mentions --%s, which no snowgate command has", name, m[1])
			}
		}
		for _, e := range envRef.FindAllString(text, -1) {
			if !envs[e] {
				t.Errorf("%s mentions %s, which snowgate does not read", name, e)
			}
		}
		for _, m := range custom.FindAllStringSubmatch(text, -1) {
			if !strings.Contains(text, "sf-custom-"+strings.ToLower(m[1])) {
				t.Errorf("%s sends header %q but never tells the gateway --auth-header sf-custom-%s", name, m[1], m[1])
			}
		}
		snowflakeScript := !strings.HasPrefix(name, "sql/redshift/") && !strings.HasPrefix(name, "sql/bigquery/")
		if snowflakeScript && (strings.Contains(name, "/") && strings.Contains(name, "external_function") || strings.Contains(name, "spcs")) {
			if !strings.Contains(text, serve["path"].def) {
				t.Errorf("%s does not route to the gateway's default path %s", name, serve["path"].def)
			}
			if !regexp.MustCompile(`(?i)resolve_location\s*\(\s*id\s+VARCHAR\s*\)\s*RETURNS\s+VARIANT`).MatchString(text) {
				t.Errorf("%s does not create resolve_location(id VARCHAR) RETURNS VARIANT", name)
			}
		}
	}
}

// TestTablesSQLMatchesLoader checks that sql/tables.sql creates the three
// result tables exactly as the loader does on Snowflake, both ways: the same
// columns in the same order, each with the same type, NOT NULL and primary
// key, and no column the loader does not define.
func TestTablesSQLMatchesLoader(t *testing.T) {
	text := readFile(t, "../../sql/tables.sql")
	types := snowflake.ColumnTypes()
	for _, tb := range []struct {
		name string
		cols []loader.Column
	}{
		{loader.DefaultTargetTable, loader.TargetColumns()},
		{loader.DefaultTargetTable + loader.MissesSuffix, loader.MissColumns()},
		{loader.DefaultTargetTable + loader.FailuresSuffix, loader.FailureColumns()},
	} {
		t.Run(tb.name, func(t *testing.T) {
			want := make([]columnDef, len(tb.cols))
			for i, c := range tb.cols {
				want[i] = columnDef{Name: c.Name, Type: normType(types[c.Type]), NotNull: c.NotNull || c.Key, Key: c.Key}
			}
			// The DDL the loader sends must parse to its definitions too, or
			// the document would be checked against something never sent.
			id, err := loader.ParseIdent(tb.name)
			if err != nil {
				t.Fatal(err)
			}
			gen, err := parseCreateTable(loader.CreateTableSQL(id, tb.cols, types), tb.name)
			if err != nil || !slices.Equal(gen, want) {
				t.Fatalf("the loader's DDL parses as %+v, %v; want %+v", gen, err, want)
			}
			doc, err := parseCreateTable(text, tb.name)
			if err != nil {
				t.Fatalf("sql/tables.sql: %v", err)
			}
			diffColumns(t, doc, want)
		})
	}
}

// columnDef is one column as a CREATE TABLE statement declares it.
type columnDef struct {
	Name, Type   string
	NotNull, Key bool
}

// diffColumns reports every difference between the document's columns and
// the loader's, by name, then their order.
func diffColumns(t *testing.T, doc, want []columnDef) {
	t.Helper()
	index := func(cols []columnDef, name string) int {
		return slices.IndexFunc(cols, func(c columnDef) bool { return c.Name == name })
	}
	for _, w := range want {
		switch i := index(doc, w.Name); {
		case i < 0:
			t.Errorf("sql/tables.sql lacks column %s (%+v)", w.Name, w)
		case doc[i] != w:
			t.Errorf("sql/tables.sql declares %+v; the loader %+v", doc[i], w)
		}
	}
	for _, d := range doc {
		if index(want, d.Name) < 0 {
			t.Errorf("sql/tables.sql declares column %s, which the loader does not define", d.Name)
		}
	}
	if !t.Failed() && !slices.Equal(doc, want) {
		t.Errorf("sql/tables.sql orders the columns %v; the loader %v", columnNames(doc), columnNames(want))
	}
}

func columnNames(cols []columnDef) []string {
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.Name
	}
	return names
}

// normType spells a type without blanks: NUMBER(10, 0) is NUMBER(10,0).
func normType(s string) string { return strings.Join(strings.Fields(strings.ToUpper(s)), "") }

var (
	sqlLineComment = regexp.MustCompile(`--[^\n]*`)
	tableKey       = regexp.MustCompile(`(?i)^(?:CONSTRAINT\s+\S+\s+)?PRIMARY\s+KEY\s*\(([^)]*)\)$`)
	columnHead     = regexp.MustCompile(`^("[^"]+"|[A-Za-z_][A-Za-z0-9_$]*)\s+([A-Za-z_][A-Za-z0-9_]*(?:\s*\([^)]*\))?)\s*(.*)$`)
	columnClause   = regexp.MustCompile(`(?i)^(NOT\s+NULL|NULL|PRIMARY\s+KEY)\s*`)
)

// parseCreateTable finds the one CREATE TABLE of table in text and returns
// its columns. It knows the clauses the loader writes (NOT NULL, NULL,
// PRIMARY KEY, inline or as a table constraint); any other is an error.
func parseCreateTable(text, table string) ([]columnDef, error) {
	text = sqlLineComment.ReplaceAllString(text, "")
	head := regexp.MustCompile(`(?is)\bCREATE\s+(?:OR\s+REPLACE\s+)?TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?(?:"?[A-Za-z0-9_$<>]+"?\.)*"?` +
		table + `"?\s*\(`)
	found := head.FindAllStringIndex(text, -1)
	if len(found) != 1 {
		return nil, fmt.Errorf("%d CREATE TABLE statements of %s; want 1", len(found), table)
	}
	body, err := parenBody(text[found[0][1]:])
	if err != nil {
		return nil, fmt.Errorf("%s: %w", table, err)
	}
	var cols []columnDef
	var keys []string
	for _, def := range splitTopLevel(body) {
		def = strings.Join(strings.Fields(def), " ")
		if m := tableKey.FindStringSubmatch(def); m != nil {
			keys = append(keys, strings.Split(m[1], ",")...)
			continue
		}
		c, err := parseColumn(def)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", table, err)
		}
		cols = append(cols, c)
	}
	for _, k := range keys {
		i := slices.IndexFunc(cols, func(c columnDef) bool { return c.Name == unquoteName(strings.TrimSpace(k)) })
		if i < 0 {
			return nil, fmt.Errorf("%s: primary key on unknown column %s", table, k)
		}
		cols[i].Key = true
	}
	return cols, nil
}

func parseColumn(def string) (columnDef, error) {
	m := columnHead.FindStringSubmatch(def)
	if m == nil {
		return columnDef{}, fmt.Errorf("cannot read column definition %q", def)
	}
	c := columnDef{Name: unquoteName(m[1]), Type: normType(m[2])}
	for rest := m[3]; rest != ""; {
		cl := columnClause.FindStringSubmatch(rest)
		if cl == nil {
			return columnDef{}, fmt.Errorf("column %s: unexpected %q (the loader writes only NOT NULL and PRIMARY KEY)", c.Name, rest)
		}
		switch strings.Join(strings.Fields(strings.ToUpper(cl[1])), " ") {
		case "NOT NULL":
			c.NotNull = true
		case "PRIMARY KEY":
			c.Key = true
		}
		rest = rest[len(cl[0]):]
	}
	return c, nil
}

// unquoteName is a column name as Snowflake stores it: a quoted name as
// written, an unquoted one in upper case.
func unquoteName(s string) string {
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		return s[1 : len(s)-1]
	}
	return strings.ToUpper(s)
}

// parenBody is the text before the parenthesis that closes one already
// opened, skipping quoted text.
func parenBody(s string) (string, error) {
	depth, quote := 1, byte(0)
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '(':
			depth++
		case c == ')':
			if depth--; depth == 0 {
				return s[:i], nil
			}
		}
	}
	return "", errors.New("unclosed column list")
}

// splitTopLevel splits a column list at the commas outside parentheses and
// quotes (NUMBER(10,0) is one type).
func splitTopLevel(s string) []string {
	var parts []string
	depth, quote, start := 0, byte(0), 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '(':
			depth++
		case c == ')':
			depth--
		case c == ',' && depth == 0:
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	if strings.TrimSpace(s[start:]) != "" {
		parts = append(parts, s[start:])
	}
	return parts
}

// TestDeployMetricsExist checks that every metric the alert rules and the
// dashboard query is one snowgate registers.
func TestDeployMetricsExist(t *testing.T) {
	reg := &recordingRegisterer{Registry: prometheus.NewRegistry()}
	client, err := locapi.New(locapi.Config{URL: "http://127.0.0.1:1/e/{id}"}, reg)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	res, err := cache.New(client, cache.Config{}, reg)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	if _, err := gateway.New(res, gateway.Config{}, reg); err != nil {
		t.Fatal(err)
	}
	known := reg.names()

	var rules struct {
		Groups []struct {
			Rules []struct{ Alert, Expr string }
		}
	}
	if err := yaml.Unmarshal([]byte(readFile(t, "../../deploy/alerts.yaml")), &rules); err != nil {
		t.Fatalf("deploy/alerts.yaml: %v", err)
	}
	var exprs []string
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" || r.Expr == "" {
				t.Errorf("alert rule %+v lacks a name or an expression", r)
			}
			exprs = append(exprs, r.Expr)
		}
	}
	if len(exprs) < 3 {
		t.Fatalf("deploy/alerts.yaml has %d rules; want at least 3", len(exprs))
	}
	var dash map[string]any
	dashText := readFile(t, "../../deploy/grafana-dashboard.json")
	if err := json.Unmarshal([]byte(dashText), &dash); err != nil {
		t.Fatalf("deploy/grafana-dashboard.json: %v", err)
	}
	metric := regexp.MustCompile(`snowgate_[a-z_]+`)
	for _, m := range metric.FindAllString(strings.Join(exprs, "\n")+dashText, -1) {
		base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(m, "_bucket"), "_count"), "_sum")
		if !known[base] {
			t.Errorf("deploy/ queries %s, which snowgate does not export (it has %v)", m, sortedKeys(known))
		}
	}
}

// recordingRegisterer remembers the metric names registered through it,
// including vectors that have no series yet.
type recordingRegisterer struct {
	*prometheus.Registry
	collectors []prometheus.Collector
}

func (r *recordingRegisterer) Register(c prometheus.Collector) error {
	r.collectors = append(r.collectors, c)
	return r.Registry.Register(c)
}

func (r *recordingRegisterer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

func (r *recordingRegisterer) names() map[string]bool {
	fq := regexp.MustCompile(`fqName: "([a-z_]+)"`)
	names := map[string]bool{}
	for _, c := range r.collectors {
		ch := make(chan *prometheus.Desc, 16)
		go func() { c.Describe(ch); close(ch) }()
		for d := range ch {
			if m := fq.FindStringSubmatch(d.String()); m != nil {
				names[m[1]] = true
			}
		}
	}
	return names
}

func sortedKeys(m map[string]bool) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
