package main

import (
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"
)

// These tests read the deployment scripts in sql/ the way an admin runs
// them, statement by statement, and stop at what a real account would stop
// at: a SELECT with no warehouse, a role nobody created, a service that
// cannot be created twice, a header the gateway does not check, a service
// specification that does not fit `snowgate serve`.

// otherToolFlags are the flags of the other programs the scripts show
// (aws, docker, snow, gcloud, az, redis-server), so that TestSQLMatchesFlags does
// not take them for snowgate's.
var otherToolFlags = map[string]bool{
	// aws (Redshift)
	"cluster-identifier": true, "add-iam-roles": true, "namespace-name": true, "iam-roles": true,
	// docker
	"platform": true, "build-arg": true, "password-stdin": true,
	// snow (Snowflake CLI)
	"connection": true, "role": true, "format": true,
	// gcloud
	"project": true, "data-file": true, "member": true, "region": true, "image": true,
	"port": true, "service-account": true, "ingress": true, "no-allow-unauthenticated": true,
	"max-instances": true, "set-env-vars": true, "set-secrets": true, "update-secrets": true,
	"api": true, "openapi-spec": true, "backend-auth-service-account": true, "location": true,
	"api-config": true,
	// az
	"resource-group": true, "service-name": true, "api-id": true, "display-name": true,
	"service-url": true, "protocols": true, "subscription-required": true, "operation-id": true,
	"method": true, "url-template": true, "name": true, "query": true, "output": true,
	// redis-server
	"requirepass": true, "save": true, "appendonly": true, "maxmemory": true, "maxmemory-policy": true,
}

// sqlStmt is one statement of a script, its comments blanked out.
type sqlStmt struct {
	text string
	line int
}

// splitSQL cuts a script into statements at semicolons outside quotes,
// $$ blocks and -- comments. Comments become spaces; quoted text and $$
// blocks are kept as they are.
func splitSQL(src string) []sqlStmt {
	var stmts []sqlStmt
	var cur strings.Builder
	line, start := 1, 0
	flush := func() {
		if s := strings.TrimSpace(cur.String()); s != "" {
			stmts = append(stmts, sqlStmt{text: s, line: start})
		}
		cur.Reset()
		start = 0
	}
	for i := 0; i < len(src); i++ {
		c := src[i]
		switch {
		case strings.HasPrefix(src[i:], "--"):
			for i < len(src) && src[i] != '\n' {
				i++
			}
			i-- // the newline is handled as ordinary text
			cur.WriteByte(' ')
			continue
		case strings.HasPrefix(src[i:], "$$"), c == '\'':
			end := "$$"
			if c == '\'' {
				end = "'"
			}
			j := strings.Index(src[i+len(end):], end)
			if j < 0 {
				j = len(src) - i - len(end)
			}
			span := src[i : i+len(end)+j+len(end)]
			if start == 0 {
				start = line
			}
			cur.WriteString(span)
			line += strings.Count(span, "\n")
			i += len(span) - 1
			continue
		case c == ';':
			flush()
			continue
		case c == '\n':
			line++
		case start == 0 && c != ' ' && c != '\t' && c != '\r':
			start = line
		}
		cur.WriteByte(c)
	}
	flush()
	return stmts
}

// sqlScript is one file of sql/, by its path in the repository.
type sqlScript struct{ name, text string }

// deployScripts are the scripts an admin runs for the four deployment paths
// and the examples, in a fixed order. sql/tables.sql has its own tests and
// its own author.
func deployScripts(t *testing.T) []sqlScript {
	t.Helper()
	files, err := filepath.Glob("../../sql/*/*.sql")
	if err != nil {
		t.Fatal(err)
	}
	// sql/duckdb/, sql/bigquery/ and sql/redshift/ hold other engines'
	// scripts, not Snowflake's: their own tests read them.
	files = slices.DeleteFunc(files, func(f string) bool {
		for _, other := range []string{"duckdb", "bigquery", "redshift"} {
			if strings.HasPrefix(f, "../../sql/"+other+"/") {
				return true
			}
		}
		return false
	})
	files = append(files, "../../sql/examples.sql")
	sort.Strings(files)
	var scripts []sqlScript
	for _, f := range files {
		scripts = append(scripts, sqlScript{strings.TrimPrefix(f, "../../"), readFile(t, f)})
	}
	for _, want := range []string{"sql/aws/external_function.sql", "sql/azure/external_function.sql",
		"sql/gcp/external_function.sql", "sql/spcs/service.sql", "sql/examples.sql"} {
		if !slices.ContainsFunc(scripts, func(s sqlScript) bool { return s.name == want }) {
			t.Fatalf("%s is missing", want)
		}
	}
	return scripts
}

var (
	useRole      = regexp.MustCompile(`(?is)^USE\s+ROLE\s+(\S+)$`)
	useWarehouse = regexp.MustCompile(`(?is)^USE\s+WAREHOUSE\s+(\S+)$`)
	createRole   = regexp.MustCompile(`(?is)^CREATE\s+ROLE\s+IF\s+NOT\s+EXISTS\s+(\S+)`)
	grantRole    = regexp.MustCompile(`(?is)^GRANT\s+ROLE\s+(\S+)\s+TO\s+(?:ROLE|USER)\s+\S+$`)
	grantWHUsage = regexp.MustCompile(`(?is)^GRANT\s+USAGE\s+ON\s+WAREHOUSE\s+(\S+)\s+TO\s+ROLE\s+(\S+)$`)
	// needsWarehouse are the statements Snowflake runs on a warehouse.
	needsWarehouse = regexp.MustCompile(`(?is)^(?:SELECT|WITH|INSERT|MERGE|UPDATE|DELETE)\b|^CREATE\b[^(]*\bTABLE\b.*\bAS\s+SELECT\b`)
	// systemRoles exist in every account; every other role must be created.
	systemRoles = map[string]bool{"ACCOUNTADMIN": true, "SECURITYADMIN": true, "USERADMIN": true,
		"SYSADMIN": true, "ORGADMIN": true, "PUBLIC": true}
	// privilegedRoles may not own a service.
	privilegedRoles = map[string]bool{"ACCOUNTADMIN": true, "SECURITYADMIN": true, "ORGADMIN": true}
)

// TestSQLScriptsSelectWithWarehouse: every statement that needs a warehouse
// runs after a USE WAREHOUSE issued under the current role, by a role the
// script granted USAGE on that warehouse (ACCOUNTADMIN is assumed to have
// it; a script without USE ROLE runs as the caller's own role).
func TestSQLScriptsSelectWithWarehouse(t *testing.T) {
	for _, sc := range deployScripts(t) {
		name, text := sc.name, sc.text
		role, haveWH, granted := "", false, map[string]bool{}
		for _, s := range splitSQL(text) {
			switch m := [][]string{useRole.FindStringSubmatch(s.text), useWarehouse.FindStringSubmatch(s.text),
				grantWHUsage.FindStringSubmatch(s.text)}; {
			case m[0] != nil:
				role, haveWH = m[0][1], false
			case m[1] != nil:
				if role != "" && role != "ACCOUNTADMIN" && !granted[m[1][1]+" "+role] {
					t.Errorf("%s:%d: USE WAREHOUSE %s as %s, which the script never granted USAGE on it", name, s.line, m[1][1], role)
				}
				haveWH = true
			case m[2] != nil:
				granted[m[2][1]+" "+m[2][2]] = true
			case needsWarehouse.MatchString(s.text) && !haveWH:
				t.Errorf("%s:%d: %q runs with no USE WAREHOUSE since USE ROLE %s (\"No active warehouse selected\")",
					name, s.line, firstWords(s.text), role)
			}
		}
	}
}

// TestSQLScriptsRolesExist: a script may USE ROLE only a system role or one
// it created and granted (to a user or a role) before; no service is owned
// by a privileged role.
func TestSQLScriptsRolesExist(t *testing.T) {
	createService := regexp.MustCompile(`(?is)^CREATE\s+(?:OR\s+REPLACE\s+)?SERVICE\b`)
	for _, sc := range deployScripts(t) {
		name, text := sc.name, sc.text
		role, created, granted := "", map[string]bool{}, map[string]bool{}
		for _, s := range splitSQL(text) {
			if m := createRole.FindStringSubmatch(s.text); m != nil {
				created[m[1]] = true
			}
			if m := grantRole.FindStringSubmatch(s.text); m != nil {
				granted[m[1]] = true
			}
			if m := useRole.FindStringSubmatch(s.text); m != nil {
				role = m[1]
				if !systemRoles[strings.ToUpper(role)] && (!created[role] || !granted[role]) {
					t.Errorf("%s:%d: USE ROLE %s, which the script has not created (CREATE ROLE IF NOT EXISTS) and granted (GRANT ROLE ... TO USER/ROLE) before",
						name, s.line, role)
				}
			}
			if createService.MatchString(s.text) && (role == "" || privilegedRoles[strings.ToUpper(role)]) {
				t.Errorf("%s:%d: a service created as %q: its owner must be a custom role, never ACCOUNTADMIN, SECURITYADMIN or ORGADMIN",
					name, s.line, role)
			}
		}
	}
}

// TestSQLScriptsRerun: a script can run twice. CREATE SERVICE fails on an
// existing service unless IF NOT EXISTS, so the script must also show how
// to change one (ALTER SERVICE ... FROM SPECIFICATION). A bare BEGIN opens a
// Snowflake Scripting block, not a transaction. RESULT_SCAN(LAST_QUERY_ID())
// reads the statement just before it, which must be the SHOW or DESCRIBE.
func TestSQLScriptsRerun(t *testing.T) {
	service := regexp.MustCompile(`(?is)^CREATE\s+(?:OR\s+REPLACE\s+)?SERVICE\s+(IF\s+NOT\s+EXISTS\s+)?(\w+)`)
	lastResult := regexp.MustCompile(`(?is)RESULT_SCAN\s*\(\s*LAST_QUERY_ID\s*\(\s*\)\s*\)`)
	showOrDescribe := regexp.MustCompile(`(?is)^(?:SHOW|DESCRIBE|DESC)\b`)
	for _, sc := range deployScripts(t) {
		name, text := sc.name, sc.text
		stmts := splitSQL(text)
		for i, s := range stmts {
			if m := service.FindStringSubmatch(s.text); m != nil {
				if m[1] == "" {
					t.Errorf("%s:%d: CREATE SERVICE %s without IF NOT EXISTS fails when the script runs again", name, s.line, m[2])
				}
				alter := regexp.MustCompile(`(?i)ALTER\s+SERVICE\s+` + m[2] + `\s+FROM\s+SPECIFICATION`)
				if !alter.MatchString(text) && !strings.Contains(text, "(and the same for "+m[2]+")") {
					t.Errorf("%s: creates service %s but never shows ALTER SERVICE %s FROM SPECIFICATION for changes", name, m[2], m[2])
				}
			}
			if strings.EqualFold(strings.TrimSpace(s.text), "BEGIN") {
				t.Errorf("%s:%d: a bare BEGIN starts a Snowflake Scripting block; write BEGIN TRANSACTION", name, s.line)
			}
			if lastResult.MatchString(s.text) && (i == 0 || !showOrDescribe.MatchString(stmts[i-1].text)) {
				t.Errorf("%s:%d: RESULT_SCAN(LAST_QUERY_ID()) does not follow a SHOW or DESCRIBE directly", name, s.line)
			}
		}
	}
}

var (
	placeholder = regexp.MustCompile(`<([A-Za-z][A-Za-z0-9_]*)>`)
	listEntry   = regexp.MustCompile(`(?m)^--\s+((?:<[A-Za-z][A-Za-z0-9_]*>(?:,\s*)?)+)`)
)

// TestSQLScriptsPlaceholdersListed: every <placeholder> a script uses is
// listed in its header (the leading comment block), and every one listed
// is used. XML tags in the comments (<audience>...</audience>) are not
// placeholders.
func TestSQLScriptsPlaceholdersListed(t *testing.T) {
	for _, sc := range deployScripts(t) {
		name, text := sc.name, sc.text
		lines := strings.Split(text, "\n")
		n := 0
		for n < len(lines) && (strings.HasPrefix(lines[n], "--") || strings.TrimSpace(lines[n]) == "") {
			n++
		}
		header, body := strings.Join(lines[:n], "\n"), strings.Join(lines[n:], "\n")
		listed, used := names(header, text), names(body, text)
		for p := range used {
			if !listed[p] {
				t.Errorf("%s uses <%s>, which its header does not list", name, p)
			}
		}
		// An entry of the list (a line that starts with placeholders) names
		// something the script uses; a placeholder inside an entry's
		// description may only show a value's form.
		for _, m := range listEntry.FindAllStringSubmatch(header, -1) {
			for p := range names(m[1], text) {
				if !used[p] {
					t.Errorf("%s lists <%s> in its header but never uses it", name, p)
				}
			}
		}
		if len(used) == 0 {
			t.Errorf("%s uses no placeholders; the check read nothing", name)
		}
	}
}

// names are the placeholders in s that are not XML elements of whole.
func names(s, whole string) map[string]bool {
	found := map[string]bool{}
	for _, m := range placeholder.FindAllStringSubmatch(s, -1) {
		if !strings.Contains(whole, "</"+m[1]+">") {
			found[m[1]] = true
		}
	}
	return found
}

// TestAuthHeaderMatchesSQL: the function's HEADERS = ('x' = ...) arrives as
// sf-custom-x, so that is the header every serve command in the scripts, the
// README and deploy/kubernetes.yaml must check. One name for all of them.
func TestAuthHeaderMatchesSQL(t *testing.T) {
	headers := regexp.MustCompile(`(?i)\bHEADERS\s*=\s*\(\s*'([^']*)'\s*=`)
	// A header name has a hyphen; prose ("--auth-header is not ...") has none.
	gatewaySide := regexp.MustCompile(`(?:--auth-header[ =]|SNOWGATE_AUTH_HEADER[=:] *)"?([A-Za-z0-9_]+-[A-Za-z0-9_-]+)`)
	want := ""
	sources := []sqlScript{{"README.md", deploySection(t)}}
	for _, sc := range deployScripts(t) {
		name, text := sc.name, sc.text
		sources = append(sources, sc)
		for _, m := range headers.FindAllStringSubmatch(text, -1) {
			got := "sf-custom-" + strings.ToLower(m[1])
			if want == "" {
				want = got
			}
			if got != want {
				t.Errorf("%s: HEADERS = ('%s' = ...) arrives as %s; the other scripts send %s", name, m[1], got, want)
			}
		}
	}
	if want == "" {
		t.Fatal("no script declares HEADERS = ('...' = ...): nothing carries the shared secret")
	}
	checked := 0
	for _, src := range sources {
		name, text := src.name, src.text
		for _, m := range gatewaySide.FindAllStringSubmatch(text, -1) {
			checked++
			if m[1] != want {
				t.Errorf("%s tells the gateway to check %s; the function sends %s, so every call gets 401", name, m[1], want)
			}
		}
	}
	if got := manifestEnv(t)["SNOWGATE_AUTH_HEADER"]; got != want {
		t.Errorf("deploy/kubernetes.yaml: SNOWGATE_AUTH_HEADER=%q; the function sends %s, so every call gets 401", got, want)
	}
	if checked < 4 {
		t.Errorf("found %d gateway-side header settings in sql/ and README.md; want one per proxy script and the README", checked)
	}
}

// TestSQLScriptsSayHowToRotate: the secret in HEADERS stays in query history,
// so every script that sends it says so and shows how to replace it.
func TestSQLScriptsSayHowToRotate(t *testing.T) {
	alter := regexp.MustCompile(`(?is)ALTER\s+FUNCTION\s+resolve_location\s*\(\s*VARCHAR\s*\)\s+SET\s+HEADERS\s*=`)
	commentMark := regexp.MustCompile(`(?m)^--`)
	for _, sc := range deployScripts(t) {
		name, text := sc.name, sc.text
		if !strings.Contains(text, "HEADERS = ('") {
			continue
		}
		text = commentMark.ReplaceAllString(text, "")
		if !strings.Contains(text, "query history") || !alter.MatchString(text) || !strings.Contains(text, "SNOWGATE_AUTH_SECRET") {
			t.Errorf("%s sends a secret in HEADERS but does not say it stays in query history and how to rotate it (ALTER FUNCTION resolve_location(VARCHAR) SET HEADERS, SNOWGATE_AUTH_SECRET)", name)
		}
	}
	if s := deploySection(t); !strings.Contains(s, "query history") || !strings.Contains(s, "SET HEADERS") {
		t.Error("README's deployment section does not warn that the HEADERS secret stays in query history, or how to rotate it")
	}
}

// deploySection is README.md's "## Deploying to Snowflake", up to the next
// second-level heading.
func deploySection(t *testing.T) string {
	t.Helper()
	readme := readFile(t, "../../README.md")
	i := strings.Index(readme, "\n## Deploying to Snowflake\n")
	if i < 0 {
		t.Fatal("README.md has no \"## Deploying to Snowflake\" section")
	}
	s := readme[i+1:]
	if j := strings.Index(s[3:], "\n## "); j >= 0 {
		s = s[:j+3]
	}
	return s
}

// manifestEnv is the snowgate container's plain environment in
// deploy/kubernetes.yaml.
func manifestEnv(t *testing.T) map[string]string {
	t.Helper()
	var dep k8sDeployment
	find(t, manifest(t), "Deployment", "snowgate", &dep)
	env := map[string]string{}
	for _, c := range dep.Spec.Template.Spec.Containers {
		for _, e := range c.Env {
			env[e.Name] = e.Value
		}
	}
	return env
}

// firstWords shortens a statement for a message.
func firstWords(s string) string {
	f := strings.Fields(s)
	if len(f) > 4 {
		f = f[:4]
	}
	return strings.Join(f, " ") + " ..."
}

// spcsSpec is the part of a Snowpark Container Services specification these
// tests read.
type spcsSpec struct {
	Spec struct {
		Containers []spcsContainer `yaml:"containers"`
		Endpoints  []struct {
			Name     string `yaml:"name"`
			Port     int    `yaml:"port"`
			Public   bool   `yaml:"public"`
			Protocol string `yaml:"protocol"`
		} `yaml:"endpoints"`
	} `yaml:"spec"`
	ServiceRoles []struct {
		Name      string   `yaml:"name"`
		Endpoints []string `yaml:"endpoints"`
	} `yaml:"serviceRoles"`
}

type spcsContainer struct {
	Name    string            `yaml:"name"`
	Image   string            `yaml:"image"`
	Args    []string          `yaml:"args"`
	Env     map[string]string `yaml:"env"`
	Secrets []struct {
		SnowflakeSecret struct {
			ObjectName string `yaml:"objectName"`
		} `yaml:"snowflakeSecret"`
		SecretKeyRef string `yaml:"secretKeyRef"`
		EnvVarName   string `yaml:"envVarName"`
	} `yaml:"secrets"`
	ReadinessProbe *struct {
		Port int    `yaml:"port"`
		Path string `yaml:"path"`
	} `yaml:"readinessProbe"`
}

// spcsService is one CREATE SERVICE of sql/spcs/service.sql.
type spcsService struct {
	name, pool   string
	maxInstances int
	spec         spcsSpec
}

// spcsScript holds what sql/spcs/service.sql creates, by kind and name.
type spcsScript struct {
	text     string
	services map[string]spcsService
	secrets  map[string]string // name -> SECRET_STRING
	created  map[string]bool   // "POOL snowgate_pool", "REPOSITORY snowgate_repo"
}

func readSPCS(t *testing.T) spcsScript {
	t.Helper()
	sc := spcsScript{text: readFile(t, "../../sql/spcs/service.sql"), services: map[string]spcsService{},
		secrets: map[string]string{}, created: map[string]bool{}}
	service := regexp.MustCompile(`(?is)^CREATE\s+SERVICE\s+(?:IF\s+NOT\s+EXISTS\s+)?(\w+)\s+IN\s+COMPUTE\s+POOL\s+(\w+)\s+FROM\s+SPECIFICATION\s+\$\$(.*)\$\$(.*)$`)
	secret := regexp.MustCompile(`(?is)^CREATE\s+(?:OR\s+REPLACE\s+)?SECRET\s+(?:IF\s+NOT\s+EXISTS\s+)?(\w+)\s.*\bSECRET_STRING\s*=\s*'([^']*)'`)
	other := regexp.MustCompile(`(?is)^CREATE\s+(?:OR\s+REPLACE\s+)?(COMPUTE\s+POOL|IMAGE\s+REPOSITORY)\s+(?:IF\s+NOT\s+EXISTS\s+)?(\w+)`)
	maxInst := regexp.MustCompile(`(?i)\bMAX_INSTANCES\s*=\s*(\d+)`)
	for _, s := range splitSQL(sc.text) {
		if m := service.FindStringSubmatch(s.text); m != nil {
			svc := spcsService{name: m[1], pool: m[2]}
			if err := yaml.Unmarshal([]byte(m[3]), &svc.spec); err != nil {
				t.Fatalf("sql/spcs/service.sql:%d: the specification of %s is not valid YAML: %v", s.line, m[1], err)
			}
			if n := maxInst.FindStringSubmatch(m[4]); n != nil {
				svc.maxInstances, _ = strconv.Atoi(n[1])
			}
			sc.services[m[1]] = svc
		}
		if m := secret.FindStringSubmatch(s.text); m != nil {
			sc.secrets[m[1]] = m[2]
		}
		if m := other.FindStringSubmatch(s.text); m != nil {
			sc.created[strings.Fields(strings.ToUpper(m[1]))[0]+" "+m[2]] = true
		}
	}
	if len(sc.services) == 0 {
		t.Fatal("sql/spcs/service.sql creates no service")
	}
	return sc
}

// TestSPCSServicesMatchServe checks the service specifications in
// sql/spcs/service.sql against the real serve flags and against what the
// script creates: images from the account's own repository, secrets and
// pools that exist, ports that agree.
func TestSPCSServicesMatchServe(t *testing.T) {
	sc := readSPCS(t)
	for _, svc := range sc.services {
		if !sc.created["COMPUTE "+svc.pool] {
			t.Errorf("service %s runs in compute pool %s, which the script does not create", svc.name, svc.pool)
		}
		if svc.maxInstances < 1 {
			t.Errorf("service %s: no MAX_INSTANCES", svc.name)
		}
		for _, c := range svc.spec.Spec.Containers {
			checkSPCSContainer(t, sc, svc, c)
		}
	}
	svc, ok := sc.services["snowgate_service"]
	if !ok {
		t.Fatal("sql/spcs/service.sql does not create snowgate_service")
	}
	checkSPCSSnowgate(t, sc, svc)
}

// checkSPCSContainer: SPCS runs only images from the account's repositories,
// and a secret the specification names must exist.
func checkSPCSContainer(t *testing.T, sc spcsScript, svc spcsService, c spcsContainer) {
	t.Helper()
	parts := strings.Split(strings.TrimPrefix(c.Image, "/"), "/")
	if !strings.HasPrefix(c.Image, "/<database>/<schema>/") || len(parts) != 4 || !sc.created["IMAGE "+parts[2]] {
		t.Errorf("%s/%s: image %q is not in an image repository the script creates (/<database>/<schema>/<repo>/<image>)",
			svc.name, c.Name, c.Image)
	} else if !strings.Contains(sc.text, "docker push <repository_url>/"+parts[3]) {
		t.Errorf("%s/%s: the script never shows pushing %s to the repository", svc.name, c.Name, parts[3])
	}
	for _, s := range c.Secrets {
		if _, ok := sc.secrets[s.SnowflakeSecret.ObjectName]; !ok || s.SecretKeyRef != "secret_string" || s.EnvVarName == "" {
			t.Errorf("%s/%s: secret %+v is not a GENERIC_STRING secret the script creates, mapped to a variable", svc.name, c.Name, s)
		}
	}
}

// checkSPCSSnowgate: the snowgate container's environment is what serve
// accepts, its port is the endpoint the function calls, and a shared Redis
// is a service of the script reached on its TCP endpoint.
func checkSPCSSnowgate(t *testing.T, sc spcsScript, svc spcsService) {
	t.Helper()
	var c *spcsContainer
	for i := range svc.spec.Spec.Containers {
		if args := svc.spec.Spec.Containers[i].Args; len(args) > 0 && args[0] == "serve" {
			c = &svc.spec.Spec.Containers[i]
		}
	}
	if c == nil {
		t.Fatal("snowgate_service has no container running serve")
	}
	fs, _ := newServeFlags(io.Discard)
	env := map[string]string{}
	for k, v := range c.Env {
		env[k] = v
		f := fs.Lookup(strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(k, "SNOWGATE_"), "_", "-")))
		switch {
		case envOnly[k]:
		case f == nil || envName(f.Name) != k:
			t.Errorf("snowgate_service: %s is not the environment twin of any serve flag", k)
		case !placeholder.MatchString(v) || strings.Contains(v, "://"):
			if err := fs.Set(f.Name, v); err != nil {
				t.Errorf("snowgate_service: %s=%q: serve rejects it: %v", k, v, err)
			}
		}
	}
	for _, s := range c.Secrets {
		env[s.EnvVarName] = sc.secrets[s.SnowflakeSecret.ObjectName]
		if f := fs.Lookup(strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(s.EnvVarName, "SNOWGATE_"), "_", "-"))); !envOnly[s.EnvVarName] && (f == nil || envName(f.Name) != s.EnvVarName) {
			t.Errorf("snowgate_service: secret variable %s is nothing serve reads", s.EnvVarName)
		}
	}
	checkSPCSEndpoint(t, sc, svc, c, fs.Lookup("listen").Value.String(), fs.Lookup("path").Value.String())
	u := env["SNOWGATE_REDIS_URL"]
	if u == "" && svc.maxInstances > 1 {
		t.Errorf("snowgate_service: %d instances without SNOWGATE_REDIS_URL keep %d provider budgets, caches and async stores", svc.maxInstances, svc.maxInstances)
	}
	if u != "" {
		share, err := strconv.ParseFloat(fs.Lookup("redis-local-share").Value.String(), 64)
		if err != nil {
			t.Fatal(err)
		}
		if share*float64(svc.maxInstances) > 1 {
			t.Errorf("snowgate_service: --redis-local-share %v with MAX_INSTANCES = %d: together they would pass the provider's rate while Redis is down",
				share, svc.maxInstances)
		}
		checkSPCSRedis(t, sc, u)
	}
}

// checkSPCSEndpoint: --listen's port is the endpoint the function names and
// the readiness probe's; --path is the function's AS path; the service role
// the analyst is granted opens that endpoint.
func checkSPCSEndpoint(t *testing.T, sc spcsScript, svc spcsService, c *spcsContainer, listen, path string) {
	t.Helper()
	fn := regexp.MustCompile(`(?is)CREATE\s+(?:OR\s+REPLACE\s+)?FUNCTION\s+resolve_location\s*\(.*?\bSERVICE\s*=\s*(\w+)\s+ENDPOINT\s*=\s*(\w+).*?\bAS\s+'([^']*)'`).
		FindStringSubmatch(sc.text)
	if fn == nil {
		t.Fatal("sql/spcs/service.sql creates no service function resolve_location with SERVICE, ENDPOINT and AS")
	}
	_, port, err := net.SplitHostPort(listen)
	if err != nil {
		t.Fatalf("--listen %q: %v", listen, err)
	}
	if fn[1] != svc.name || fn[3] != path {
		t.Errorf("the function calls service %s at %s; want %s at --path %s", fn[1], fn[3], svc.name, path)
	}
	found := false
	for _, e := range svc.spec.Spec.Endpoints {
		if e.Name == fn[2] {
			found = true
			if strconv.Itoa(e.Port) != port || !strings.EqualFold(e.Protocol, "HTTP") || e.Public {
				t.Errorf("endpoint %s: port %d %s public=%v; want private HTTP on --listen's port %s", e.Name, e.Port, e.Protocol, e.Public, port)
			}
		}
	}
	if !found {
		t.Errorf("the function calls endpoint %s, which snowgate_service does not declare", fn[2])
	}
	if p := c.ReadinessProbe; p == nil || strconv.Itoa(p.Port) != port || p.Path != "/readyz" {
		t.Errorf("snowgate_service readinessProbe %+v; want /readyz on port %s", p, port)
	}
	for _, r := range svc.spec.ServiceRoles {
		grant := "GRANT SERVICE ROLE " + svc.name + "!" + r.Name + " TO ROLE <analyst_role>"
		if len(r.Endpoints) != 1 || r.Endpoints[0] != fn[2] || !strings.Contains(sc.text, grant) {
			t.Errorf("service role %s opens %v and must be granted with %q", r.Name, r.Endpoints, grant)
		}
	}
}

// checkSPCSRedis: the Redis URL snowgate gets points at a Redis service of
// the script (by its DNS name, underscores as hyphens) on that service's
// TCP endpoint, with a password, and Redis reads the same secret.
func checkSPCSRedis(t *testing.T, sc spcsScript, raw string) {
	t.Helper()
	// Placeholders are not valid in a URL's user information: parse a sample.
	u, err := url.Parse(placeholder.ReplaceAllString(raw, "p"))
	if err != nil || u.Scheme != "redis" {
		t.Fatalf("SNOWGATE_REDIS_URL %q is not a redis:// URL: %v", raw, err)
	}
	if _, ok := u.User.Password(); !ok {
		t.Errorf("SNOWGATE_REDIS_URL %q carries no password", raw)
	}
	host := strings.SplitN(u.Hostname(), ".", 2)[0]
	redis, ok := sc.services[strings.ReplaceAll(host, "-", "_")]
	if !ok {
		t.Fatalf("SNOWGATE_REDIS_URL points at %s, which is no service of the script", u.Host)
	}
	tcp := false
	for _, e := range redis.spec.Spec.Endpoints {
		tcp = tcp || (strings.EqualFold(e.Protocol, "TCP") && strconv.Itoa(e.Port) == u.Port() && !e.Public)
	}
	if !tcp {
		t.Errorf("service %s has no private TCP endpoint on port %s", redis.name, u.Port())
	}
	shared := false
	for _, c := range redis.spec.Spec.Containers {
		for _, s := range c.Secrets {
			shared = shared || sc.secrets[s.SnowflakeSecret.ObjectName] == raw
		}
	}
	if !shared {
		t.Errorf("service %s does not read the secret holding SNOWGATE_REDIS_URL, so its password can differ", redis.name)
	}
	for _, want := range []string{"SHOW SERVICES LIKE '" + redis.name + "'", "SHOW ENDPOINTS IN SERVICE " + redis.name} {
		if !strings.Contains(sc.text, want) {
			t.Errorf("sql/spcs/service.sql never runs %s to show the Redis DNS name and endpoint", want)
		}
	}
}

// TestDockerfileBaseImagesPinnable: every FROM is an image ARG with a digest
// slot beside it (${X}${X_DIGEST:+@}${X_DIGEST}), a digest once filled in is
// a sha256 one, the README says how to fill the slots, and the Go image's
// release is the one go.mod names (an older one stops the build).
func TestDockerfileBaseImagesPinnable(t *testing.T) {
	text := readFile(t, "../../Dockerfile")
	args := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^ARG\s+([A-Z_]+)=(\S*)\s*$`).FindAllStringSubmatch(text, -1) {
		args[m[1]] = m[2]
	}
	slot := regexp.MustCompile(`^\$\{([A-Z_]+)\}\$\{([A-Z_]+):\+@\}\$\{([A-Z_]+)\}$`)
	digest := regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
	readme := readFile(t, "../../README.md")
	froms := regexp.MustCompile(`(?m)^FROM\s+(\S+)`).FindAllStringSubmatch(text, -1)
	if len(froms) < 2 {
		t.Fatalf("Dockerfile has %d FROM lines; want the build and the runtime stage", len(froms))
	}
	for _, m := range froms {
		s := slot.FindStringSubmatch(m[1])
		if s == nil || s[2] != s[1]+"_DIGEST" || s[3] != s[2] {
			t.Errorf("FROM %s: want ${X}${X_DIGEST:+@}${X_DIGEST}, a tag and a digest slot", m[1])
			continue
		}
		image, ok := args[s[1]]
		d, dok := args[s[2]]
		last := image[strings.LastIndex(image, "/")+1:]
		switch {
		case !ok || !dok:
			t.Errorf("FROM %s: ARG %s and ARG %s need defaults before the first FROM", m[1], s[1], s[2])
		case strings.Contains(image, "@") || !strings.Contains(last, ":"):
			t.Errorf("ARG %s=%s: want name:tag, with the digest in %s", s[1], image, s[2])
		case d != "" && !digest.MatchString(d):
			t.Errorf("ARG %s=%s: want empty or sha256:<64 hex digits>", s[2], d)
		case !strings.Contains(readme, s[2]):
			t.Errorf("README.md does not say how to fill %s", s[2])
		}
	}
	goMod := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindStringSubmatch(readFile(t, "../../go.mod"))
	tag := regexp.MustCompile(`^golang:(\d+\.\d+)\b`).FindStringSubmatch(args["GO_IMAGE"])
	if goMod == nil || tag == nil || tag[1] != goMod[1] {
		t.Errorf("ARG GO_IMAGE=%s builds with another Go release than go.mod's %v", args["GO_IMAGE"], goMod)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
