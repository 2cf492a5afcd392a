package snowflake

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	sf "github.com/snowflakedb/gosnowflake"
)

func writeKey(t *testing.T, blockType string, der []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "key.p8")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: blockType, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// writeToken writes a token file the way an operator would (echo adds the
// newline), with the owner-only mode gosnowflake insists on.
func writeToken(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestConfigFromEnv(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8Path := writeKey(t, "PRIVATE KEY", pkcs8)
	pkcs1Path := writeKey(t, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(key))
	encPath := writeKey(t, "ENCRYPTED PRIVATE KEY", []byte("opaque"))
	patPath := writeToken(t, "pat-secret\n")
	emptyPath := writeToken(t, " \n")
	missingPath := filepath.Join(t.TempDir(), "none")
	base := map[string]string{"SNOWFLAKE_ACCOUNT": "myorg-acct", "SNOWFLAKE_USER": "loader", "SNOWFLAKE_WAREHOUSE": "LOAD_WH"}
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	wantAuth := func(want sf.AuthType) func(t *testing.T, c sf.Config) {
		return func(t *testing.T, c sf.Config) {
			if c.Authenticator != want {
				t.Errorf("got authenticator %v; want %v", c.Authenticator, want)
			}
		}
	}
	tests := []struct {
		name    string
		env     map[string]string
		check   func(t *testing.T, c sf.Config)
		wantErr string
	}{
		{
			name: "DSN wins over the variables",
			env:  with("SNOWFLAKE_DSN", "u:pw@acct2/db/sch?warehouse=wh&role=r", "SNOWFLAKE_ACCOUNT", "ignored"),
			check: func(t *testing.T, c sf.Config) {
				if c.Account != "acct2" || c.User != "u" || c.Database != "db" || c.Schema != "sch" || c.Warehouse != "wh" || c.Role != "r" {
					t.Errorf("got %s/%s/%s/%s/%s/%s; want acct2/u/db/sch/wh/r", c.Account, c.User, c.Database, c.Schema, c.Warehouse, c.Role)
				}
			},
		},
		{
			name: "DSN token file is read once",
			env: map[string]string{"SNOWFLAKE_DSN": "u@acct/db/sch?warehouse=wh&authenticator=programmatic_access_token&tokenFilePath=" +
				url.QueryEscape(patPath)},
			check: func(t *testing.T, c sf.Config) {
				if c.Authenticator != sf.AuthTypePat || c.Token != "pat-secret" || c.TokenFilePath != "" {
					t.Errorf("got authenticator %v, token %q, file %q; want PAT, pat-secret, no file", c.Authenticator, c.Token, c.TokenFilePath)
				}
			},
		},
		{
			name: "password",
			env: with("SNOWFLAKE_PASSWORD", "pw", "SNOWFLAKE_DATABASE", "DB", "SNOWFLAKE_SCHEMA", "S",
				"SNOWFLAKE_WAREHOUSE", "WH", "SNOWFLAKE_ROLE", "R"),
			check: func(t *testing.T, c sf.Config) {
				if c.Authenticator != sf.AuthTypeSnowflake || c.Password != "pw" || c.Database != "DB" || c.Schema != "S" || c.Warehouse != "WH" || c.Role != "R" {
					t.Errorf("got authenticator %v, db %s, schema %s, wh %s, role %s", c.Authenticator, c.Database, c.Schema, c.Warehouse, c.Role)
				}
			},
		},
		{
			name: "key pair by key path (PKCS#8)",
			env:  with("SNOWFLAKE_PRIVATE_KEY_PATH", pkcs8Path),
			check: func(t *testing.T, c sf.Config) {
				if c.Authenticator != sf.AuthTypeJwt || c.PrivateKey == nil || !c.PrivateKey.Equal(key) {
					t.Errorf("got authenticator %v, key set %v; want SNOWFLAKE_JWT with the file's key", c.Authenticator, c.PrivateKey != nil)
				}
			},
		},
		{
			name:  "key path wins over a password",
			env:   with("SNOWFLAKE_PRIVATE_KEY_PATH", pkcs8Path, "SNOWFLAKE_PASSWORD", "pw"),
			check: wantAuth(sf.AuthTypeJwt),
		},
		{
			name: "key pair, PKCS#1, explicit authenticator",
			env:  with("SNOWFLAKE_AUTHENTICATOR", "SNOWFLAKE_JWT", "SNOWFLAKE_PRIVATE_KEY_PATH", pkcs1Path),
			check: func(t *testing.T, c sf.Config) {
				if c.Authenticator != sf.AuthTypeJwt || c.PrivateKey == nil || !c.PrivateKey.Equal(key) {
					t.Errorf("got authenticator %v; want SNOWFLAKE_JWT with the file's key", c.Authenticator)
				}
			},
		},
		{
			name: "programmatic access token from a file",
			env:  with("SNOWFLAKE_AUTHENTICATOR", "programmatic_access_token", "SNOWFLAKE_TOKEN_FILE_PATH", patPath),
			check: func(t *testing.T, c sf.Config) {
				if c.Authenticator != sf.AuthTypePat || c.Token != "pat-secret" || c.TokenFilePath != "" {
					t.Errorf("got authenticator %v, token %q, file %q; want PAT, pat-secret, no file", c.Authenticator, c.Token, c.TokenFilePath)
				}
			},
		},
		{
			name: "programmatic access token inline",
			env:  with("SNOWFLAKE_AUTHENTICATOR", "programmatic_access_token", "SNOWFLAKE_TOKEN", "tok"),
			check: func(t *testing.T, c sf.Config) {
				if c.Authenticator != sf.AuthTypePat || c.Token != "tok" {
					t.Errorf("got authenticator %v token %q; want PAT tok", c.Authenticator, c.Token)
				}
			},
		},
		{
			name: "oauth token",
			env:  map[string]string{"SNOWFLAKE_ACCOUNT": "a", "SNOWFLAKE_WAREHOUSE": "W", "SNOWFLAKE_AUTHENTICATOR": "oauth", "SNOWFLAKE_TOKEN": "tok"},
			check: func(t *testing.T, c sf.Config) {
				if c.Authenticator != sf.AuthTypeOAuth || c.Token != "tok" {
					t.Errorf("got authenticator %v token %q; want OAUTH tok", c.Authenticator, c.Token)
				}
			},
		},
		{
			name: "oauth token file stays a file (the driver re-reads it at each login)",
			env:  with("SNOWFLAKE_AUTHENTICATOR", "oauth", "SNOWFLAKE_TOKEN_FILE_PATH", patPath),
			check: func(t *testing.T, c sf.Config) {
				if c.Authenticator != sf.AuthTypeOAuth || c.Token != "" || c.TokenFilePath != patPath {
					t.Errorf("got authenticator %v, token %q, file %q; want OAUTH, no token, %s", c.Authenticator, c.Token, c.TokenFilePath, patPath)
				}
			},
		},
		{
			name: "external browser, host override",
			env:  with("SNOWFLAKE_AUTHENTICATOR", "externalbrowser", "SNOWFLAKE_HOST", "acct.privatelink.snowflakecomputing.com", "SNOWFLAKE_PORT", "8443"),
			check: func(t *testing.T, c sf.Config) {
				if c.Authenticator != sf.AuthTypeExternalBrowser || c.Port != 8443 || !strings.HasPrefix(c.Host, "acct.privatelink") {
					t.Errorf("got authenticator %v host %s port %d", c.Authenticator, c.Host, c.Port)
				}
			},
		},
		{name: "nothing set", env: map[string]string{}, wantErr: "set SNOWFLAKE_DSN or SNOWFLAKE_ACCOUNT"},
		{name: "no warehouse", env: map[string]string{"SNOWFLAKE_ACCOUNT": "a", "SNOWFLAKE_USER": "u", "SNOWFLAKE_PASSWORD": "hunter2"}, wantErr: "set SNOWFLAKE_WAREHOUSE"},
		{
			name:    "DSN without warehouse, even with SNOWFLAKE_WAREHOUSE set",
			env:     with("SNOWFLAKE_DSN", "u:hunter2@acct/db/sch?role=r"),
			wantErr: "SNOWFLAKE_DSN has no warehouse parameter",
		},
		{name: "no credentials: key pair is the default", env: with(), wantErr: "key-pair authentication (the default) needs SNOWFLAKE_USER and SNOWFLAKE_PRIVATE_KEY_PATH"},
		{name: "password authenticator without password", env: with("SNOWFLAKE_AUTHENTICATOR", "snowflake"), wantErr: "needs SNOWFLAKE_USER and SNOWFLAKE_PASSWORD"},
		{name: "key pair without key", env: with("SNOWFLAKE_AUTHENTICATOR", "snowflake_jwt", "SNOWFLAKE_PASSWORD", "hunter2"), wantErr: "SNOWFLAKE_PRIVATE_KEY_PATH"},
		{name: "encrypted key", env: with("SNOWFLAKE_PRIVATE_KEY_PATH", encPath), wantErr: "encrypted"},
		{name: "key file missing", env: with("SNOWFLAKE_PRIVATE_KEY_PATH", missingPath), wantErr: "SNOWFLAKE_PRIVATE_KEY_PATH"},
		{name: "oauth without token", env: with("SNOWFLAKE_AUTHENTICATOR", "oauth"), wantErr: "SNOWFLAKE_TOKEN"},
		{name: "oauth token file missing", env: with("SNOWFLAKE_AUTHENTICATOR", "oauth", "SNOWFLAKE_TOKEN_FILE_PATH", missingPath), wantErr: "SNOWFLAKE_TOKEN_FILE_PATH"},
		{name: "PAT without token", env: with("SNOWFLAKE_AUTHENTICATOR", "programmatic_access_token"), wantErr: "SNOWFLAKE_TOKEN or SNOWFLAKE_TOKEN_FILE_PATH"},
		{name: "PAT token file missing", env: with("SNOWFLAKE_AUTHENTICATOR", "programmatic_access_token", "SNOWFLAKE_TOKEN_FILE_PATH", missingPath), wantErr: "SNOWFLAKE_TOKEN_FILE_PATH"},
		{name: "PAT token file empty", env: with("SNOWFLAKE_AUTHENTICATOR", "programmatic_access_token", "SNOWFLAKE_TOKEN_FILE_PATH", emptyPath), wantErr: "empty"},
		{name: "two tokens", env: with("SNOWFLAKE_AUTHENTICATOR", "oauth", "SNOWFLAKE_TOKEN", "a", "SNOWFLAKE_TOKEN_FILE_PATH", "/x"), wantErr: "only one"},
		{name: "unknown authenticator", env: with("SNOWFLAKE_AUTHENTICATOR", "okta-ish", "SNOWFLAKE_PASSWORD", "hunter2"), wantErr: "is not one of"},
		{name: "bad port", env: with("SNOWFLAKE_PASSWORD", "hunter2", "SNOWFLAKE_PORT", "99999"), wantErr: "not a port number"},
		{name: "bad DSN", env: map[string]string{"SNOWFLAKE_DSN": "u:hunter2@/db"}, wantErr: "parse SNOWFLAKE_DSN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ConfigFromEnv(func(k string) string { return tt.env[k] })
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v; want one containing %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "hunter2") {
					t.Errorf("error %q reveals the password", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ConfigFromEnv: %v", err)
			}
			tt.check(t, c)
		})
	}
}

// TestEnvVarsListed keeps envVars, which IgnoredByDSN reports from, in step
// with the variables ConfigFromEnv really reads.
func TestEnvVarsListed(t *testing.T) {
	listed := map[string]bool{}
	for _, name := range envVars {
		listed[name] = true
	}
	read := map[string]bool{}
	getenv := func(k string) string {
		read[k] = true
		return map[string]string{"SNOWFLAKE_ACCOUNT": "a", "SNOWFLAKE_WAREHOUSE": "w", "SNOWFLAKE_USER": "u", "SNOWFLAKE_PASSWORD": "p"}[k]
	}
	if _, err := ConfigFromEnv(getenv); err != nil {
		t.Fatalf("ConfigFromEnv: %v", err)
	}
	for name := range read {
		if name != "SNOWFLAKE_DSN" && !listed[name] {
			t.Errorf("ConfigFromEnv reads %s, which envVars does not list", name)
		}
	}
	for name := range listed {
		if !read[name] {
			t.Errorf("envVars lists %s, which ConfigFromEnv does not read", name)
		}
	}
}

func TestIgnoredByDSN(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want []string
	}{
		{"no DSN", map[string]string{"SNOWFLAKE_ROLE": "R"}, nil},
		{"DSN alone", map[string]string{"SNOWFLAKE_DSN": "u@a/db?warehouse=w"}, nil},
		{
			"DSN beside variables",
			map[string]string{"SNOWFLAKE_DSN": "u@a/db?warehouse=w", "SNOWFLAKE_ROLE": "R", "SNOWFLAKE_PASSWORD": "hunter2", "SNOWFLAKE_WAREHOUSE": "W", "SNOWFLAKE_OTHER": "x"},
			[]string{"SNOWFLAKE_PASSWORD", "SNOWFLAKE_WAREHOUSE", "SNOWFLAKE_ROLE"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := IgnoredByDSN(func(k string) string { return tt.env[k] })
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %v; want %v", got, tt.want)
			}
		})
	}
}

// TestOpenConfigFromEnv logs in to the stand-in with configurations built
// by ConfigFromEnv, and checks what the driver sent: a token read from a
// file reaches the login request (gosnowflake alone fails with 260016).
func TestOpenConfigFromEnv(t *testing.T) {
	s := newStandin(t, inlineThreshold)
	hostPort := strings.TrimPrefix(s.srv.URL, "http://")
	host, port, _ := strings.Cut(hostPort, ":")
	patPath := writeToken(t, "pat-secret\n")
	at := map[string]string{
		"SNOWFLAKE_ACCOUNT": "standin", "SNOWFLAKE_DATABASE": "TESTDB", "SNOWFLAKE_SCHEMA": "PUBLIC", "SNOWFLAKE_WAREHOUSE": "WH",
		"SNOWFLAKE_HOST": host, "SNOWFLAKE_PORT": port, "SNOWFLAKE_PROTOCOL": "http",
	}
	with := func(kv ...string) map[string]string {
		m := maps.Clone(at)
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	tests := []struct {
		name                           string
		env                            map[string]string
		user, password, auth, tokenOut string
	}{
		{"password", with("SNOWFLAKE_USER", "envuser", "SNOWFLAKE_PASSWORD", "envpw"), "envuser", "envpw", "", ""}, // password logins name no authenticator
		{
			"programmatic access token file",
			with("SNOWFLAKE_USER", "patuser", "SNOWFLAKE_AUTHENTICATOR", "programmatic_access_token", "SNOWFLAKE_TOKEN_FILE_PATH", patPath),
			"patuser", "", "PROGRAMMATIC_ACCESS_TOKEN", "pat-secret",
		},
		{
			"DSN with a token file",
			map[string]string{"SNOWFLAKE_DSN": "dsnuser@" + hostPort + "/TESTDB/PUBLIC?account=standin&protocol=http&warehouse=WH" +
				"&authenticator=programmatic_access_token&tokenFilePath=" + url.QueryEscape(patPath)},
			"dsnuser", "", "PROGRAMMATIC_ACCESS_TOKEN", "pat-secret",
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dc, err := ConfigFromEnv(func(k string) string { return tt.env[k] })
			if err != nil {
				t.Fatalf("ConfigFromEnv: %v", err)
			}
			dc.DisableTelemetry = true //nolint:staticcheck // SA1019: the stand-in serves no telemetry, and the session parameter meant to replace this field is not in the driver yet
			w, err := OpenConfig(testCtx(t), dc, Config{})
			if err != nil {
				t.Fatalf("OpenConfig: %v", err)
			}
			if err := w.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
			s.mu.Lock()
			defer s.mu.Unlock()
			if len(s.logins) != i+1 {
				t.Fatalf("got %d logins in all; want %d", len(s.logins), i+1)
			}
			d := s.logins[i].Data
			if d.AccountName != "standin" || d.LoginName != tt.user || d.Password != tt.password || d.Authenticator != tt.auth || d.Token != tt.tokenOut {
				t.Errorf("got login %s/%s/%q/%s/%q; want standin/%s/%q/%s/%q",
					d.AccountName, d.LoginName, d.Password, d.Authenticator, d.Token, tt.user, tt.password, tt.auth, tt.tokenOut)
			}
		})
	}
}
