package snowflake

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
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
	base := map[string]string{"SNOWFLAKE_ACCOUNT": "myorg-acct", "SNOWFLAKE_USER": "loader"}
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
			name: "key pair, PKCS#1, explicit authenticator",
			env:  with("SNOWFLAKE_AUTHENTICATOR", "SNOWFLAKE_JWT", "SNOWFLAKE_PRIVATE_KEY_PATH", pkcs1Path),
			check: func(t *testing.T, c sf.Config) {
				if c.Authenticator != sf.AuthTypeJwt || c.PrivateKey == nil || !c.PrivateKey.Equal(key) {
					t.Errorf("got authenticator %v; want SNOWFLAKE_JWT with the file's key", c.Authenticator)
				}
			},
		},
		{
			name: "oauth token",
			env:  map[string]string{"SNOWFLAKE_ACCOUNT": "a", "SNOWFLAKE_AUTHENTICATOR": "oauth", "SNOWFLAKE_TOKEN": "tok"},
			check: func(t *testing.T, c sf.Config) {
				if c.Authenticator != sf.AuthTypeOAuth || c.Token != "tok" {
					t.Errorf("got authenticator %v token %q; want OAUTH tok", c.Authenticator, c.Token)
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
		{name: "password missing", env: with(), wantErr: "needs SNOWFLAKE_USER and SNOWFLAKE_PASSWORD"},
		{name: "key pair without key", env: with("SNOWFLAKE_AUTHENTICATOR", "snowflake_jwt"), wantErr: "SNOWFLAKE_PRIVATE_KEY_PATH"},
		{name: "encrypted key", env: with("SNOWFLAKE_PRIVATE_KEY_PATH", encPath), wantErr: "encrypted"},
		{name: "key file missing", env: with("SNOWFLAKE_PRIVATE_KEY_PATH", filepath.Join(t.TempDir(), "none")), wantErr: "SNOWFLAKE_PRIVATE_KEY_PATH"},
		{name: "oauth without token", env: with("SNOWFLAKE_AUTHENTICATOR", "oauth"), wantErr: "SNOWFLAKE_TOKEN"},
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

// TestOpenConfigFromEnv logs in to the stand-in with a configuration built
// from the variables, not a DSN.
func TestOpenConfigFromEnv(t *testing.T) {
	s := newStandin(t, inlineThreshold)
	hostPort := strings.TrimPrefix(s.srv.URL, "http://")
	host, port, _ := strings.Cut(hostPort, ":")
	env := map[string]string{
		"SNOWFLAKE_ACCOUNT": "standin", "SNOWFLAKE_USER": "envuser", "SNOWFLAKE_PASSWORD": "envpw",
		"SNOWFLAKE_DATABASE": "TESTDB", "SNOWFLAKE_SCHEMA": "PUBLIC",
		"SNOWFLAKE_HOST": host, "SNOWFLAKE_PORT": port, "SNOWFLAKE_PROTOCOL": "http",
	}
	dc, err := ConfigFromEnv(func(k string) string { return env[k] })
	if err != nil {
		t.Fatalf("ConfigFromEnv: %v", err)
	}
	dc.DisableTelemetry = true
	w, err := OpenConfig(testCtx(t), dc, Config{})
	if err != nil {
		t.Fatalf("OpenConfig: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.logins) != 1 {
		t.Fatalf("got %d logins; want 1", len(s.logins))
	}
	if d := s.logins[0].Data; d.AccountName != "standin" || d.LoginName != "envuser" || d.Password != "envpw" {
		t.Errorf("got login %s/%s/%s; want standin/envuser/envpw", d.AccountName, d.LoginName, d.Password)
	}
}
