package snowflake

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	sf "github.com/snowflakedb/gosnowflake"
)

// envVars are the variables ConfigFromEnv reads when SNOWFLAKE_DSN is not
// set, in the order IgnoredByDSN reports them.
var envVars = []string{
	"SNOWFLAKE_ACCOUNT", "SNOWFLAKE_USER", "SNOWFLAKE_PASSWORD", "SNOWFLAKE_DATABASE",
	"SNOWFLAKE_SCHEMA", "SNOWFLAKE_WAREHOUSE", "SNOWFLAKE_ROLE", "SNOWFLAKE_AUTHENTICATOR",
	"SNOWFLAKE_PRIVATE_KEY_PATH", "SNOWFLAKE_TOKEN", "SNOWFLAKE_TOKEN_FILE_PATH",
	"SNOWFLAKE_HOST", "SNOWFLAKE_PORT", "SNOWFLAKE_PROTOCOL",
}

// ConfigFromEnv builds the driver configuration from the environment, read
// through getenv (os.Getenv in production).
//
// SNOWFLAKE_DSN, when set, is parsed as a gosnowflake DSN and every other
// variable is ignored (IgnoredByDSN names those that are set, for a
// warning); the DSN must carry a warehouse parameter. Otherwise:
//
//	SNOWFLAKE_ACCOUNT        required (e.g. myorg-myaccount)
//	SNOWFLAKE_WAREHOUSE      required: every page query needs one running
//	SNOWFLAKE_USER           required except for oauth
//	SNOWFLAKE_DATABASE, SNOWFLAKE_SCHEMA, SNOWFLAKE_ROLE
//	SNOWFLAKE_AUTHENTICATOR  snowflake_jwt (key pair, the default),
//	                         programmatic_access_token, oauth,
//	                         externalbrowser, snowflake (password)
//	SNOWFLAKE_PRIVATE_KEY_PATH  PEM RSA key, PKCS#8 or PKCS#1, unencrypted,
//	                         for snowflake_jwt
//	SNOWFLAKE_TOKEN or SNOWFLAKE_TOKEN_FILE_PATH  for oauth and
//	                         programmatic_access_token
//	SNOWFLAKE_PASSWORD       for snowflake; chosen without an authenticator
//	                         only when no key path is set
//	SNOWFLAKE_HOST, SNOWFLAKE_PORT, SNOWFLAKE_PROTOCOL  optional overrides
//	                         (private link, proxies)
//
// Missing or contradictory settings are reported by name; errors never
// contain a secret's value.
func ConfigFromEnv(getenv func(string) string) (sf.Config, error) {
	if dsn := getenv("SNOWFLAKE_DSN"); dsn != "" {
		return configFromDSN(dsn)
	}
	dc := sf.Config{
		Account:       getenv("SNOWFLAKE_ACCOUNT"),
		User:          getenv("SNOWFLAKE_USER"),
		Password:      getenv("SNOWFLAKE_PASSWORD"),
		Database:      getenv("SNOWFLAKE_DATABASE"),
		Schema:        getenv("SNOWFLAKE_SCHEMA"),
		Warehouse:     getenv("SNOWFLAKE_WAREHOUSE"),
		Role:          getenv("SNOWFLAKE_ROLE"),
		Host:          getenv("SNOWFLAKE_HOST"),
		Protocol:      getenv("SNOWFLAKE_PROTOCOL"),
		Token:         getenv("SNOWFLAKE_TOKEN"),
		TokenFilePath: getenv("SNOWFLAKE_TOKEN_FILE_PATH"),
		Params:        map[string]*string{},
	}
	switch {
	case dc.Account == "":
		return sf.Config{}, errors.New("snowflake: set SNOWFLAKE_DSN or SNOWFLAKE_ACCOUNT")
	case dc.Warehouse == "":
		return sf.Config{}, errors.New("snowflake: set SNOWFLAKE_WAREHOUSE: the loader's queries need a virtual warehouse")
	}
	if p := getenv("SNOWFLAKE_PORT"); p != "" {
		port, err := strconv.Atoi(p)
		if err != nil || port <= 0 || port > 65535 {
			return sf.Config{}, fmt.Errorf("snowflake: SNOWFLAKE_PORT %q is not a port number", p)
		}
		dc.Port = port
	}
	if err := setAuth(&dc, getenv("SNOWFLAKE_AUTHENTICATOR"), getenv("SNOWFLAKE_PRIVATE_KEY_PATH")); err != nil {
		return sf.Config{}, fmt.Errorf("snowflake: %w", err)
	}
	return dc, nil
}

// IgnoredByDSN names the SNOWFLAKE_* variables that are set but not read
// because SNOWFLAKE_DSN is set; nil when SNOWFLAKE_DSN is not set. It is a
// warning, not an error: Snowpark Container Services sets SNOWFLAKE_ACCOUNT,
// _HOST, _DATABASE and _SCHEMA in every container, so a DSN given there
// always comes with variables its user never chose.
func IgnoredByDSN(getenv func(string) string) []string {
	if getenv("SNOWFLAKE_DSN") == "" {
		return nil
	}
	var set []string
	for _, name := range envVars {
		if getenv(name) != "" {
			set = append(set, name)
		}
	}
	return set
}

// configFromDSN parses SNOWFLAKE_DSN. Errors never quote the DSN, which
// may hold a password.
func configFromDSN(dsn string) (sf.Config, error) {
	dc, err := sf.ParseDSN(dsn)
	if err != nil {
		return sf.Config{}, fmt.Errorf("snowflake: parse SNOWFLAKE_DSN: %w", err)
	}
	if dc.Warehouse == "" {
		return sf.Config{}, errors.New("snowflake: SNOWFLAKE_DSN has no warehouse parameter: add warehouse=<name> (SNOWFLAKE_WAREHOUSE is not read when SNOWFLAKE_DSN is set)")
	}
	if dc.TokenFilePath != "" {
		// ParseDSN has already read the file into Token; the driver refuses
		// a configuration with both set, so keep the token it read.
		dc.Token, dc.TokenFilePath = strings.TrimSpace(dc.Token), ""
	}
	return *dc, nil
}

// setAuth picks the authenticator and checks it has what it needs. Without
// SNOWFLAKE_AUTHENTICATOR it is key pair, unless only a password is set:
// service users (TYPE = SERVICE) cannot sign in with a password at all.
func setAuth(dc *sf.Config, name, keyPath string) error {
	name = strings.ToLower(strings.TrimSpace(name))
	if name == "" {
		name = "snowflake_jwt"
		if keyPath == "" && dc.Password != "" {
			name = "snowflake"
		}
	}
	hasToken := dc.Token != "" || dc.TokenFilePath != ""
	if dc.Token != "" && dc.TokenFilePath != "" {
		return errors.New("set only one of SNOWFLAKE_TOKEN and SNOWFLAKE_TOKEN_FILE_PATH")
	}
	switch name {
	case "snowflake_jwt":
		return setKeyPair(dc, keyPath)
	case "programmatic_access_token":
		dc.Authenticator = sf.AuthTypePat
		if dc.User == "" || !hasToken {
			return errors.New("programmatic access token authentication needs SNOWFLAKE_USER and SNOWFLAKE_TOKEN or SNOWFLAKE_TOKEN_FILE_PATH")
		}
		return readTokenFile(dc)
	case "oauth":
		dc.Authenticator = sf.AuthTypeOAuth
		if !hasToken {
			return errors.New("oauth authentication needs SNOWFLAKE_TOKEN or SNOWFLAKE_TOKEN_FILE_PATH")
		}
		return checkTokenFile(dc.TokenFilePath)
	case "snowflake":
		dc.Authenticator = sf.AuthTypeSnowflake
		return need(dc.User != "" && dc.Password != "", "password authentication needs SNOWFLAKE_USER and SNOWFLAKE_PASSWORD (service users cannot use a password: prefer SNOWFLAKE_PRIVATE_KEY_PATH)")
	case "externalbrowser":
		dc.Authenticator = sf.AuthTypeExternalBrowser
		return nil
	}
	return fmt.Errorf("SNOWFLAKE_AUTHENTICATOR %q is not one of snowflake_jwt, programmatic_access_token, oauth, externalbrowser, snowflake", name)
}

func setKeyPair(dc *sf.Config, keyPath string) error {
	dc.Authenticator = sf.AuthTypeJwt
	if dc.User == "" || keyPath == "" {
		return errors.New("key-pair authentication (the default) needs SNOWFLAKE_USER and SNOWFLAKE_PRIVATE_KEY_PATH; for another method set SNOWFLAKE_AUTHENTICATOR")
	}
	key, err := readPrivateKey(keyPath)
	if err != nil {
		return fmt.Errorf("SNOWFLAKE_PRIVATE_KEY_PATH: %w", err)
	}
	dc.PrivateKey = key
	return nil
}

// readTokenFile moves a programmatic access token from its file into
// dc.Token: gosnowflake v1.19.1 checks for a Token (or Password) before it
// ever reads TokenFilePath for this authenticator, so a file alone fails
// with error 260016. The token is read once, at start; a PAT lives for
// days, longer than a backfill.
func readTokenFile(dc *sf.Config) error {
	if dc.TokenFilePath == "" {
		return nil
	}
	b, err := os.ReadFile(dc.TokenFilePath)
	if err != nil {
		return fmt.Errorf("SNOWFLAKE_TOKEN_FILE_PATH: %w", err)
	}
	tok := strings.TrimSpace(string(b)) // a file written by echo ends in a newline
	if tok == "" {
		return errors.New("SNOWFLAKE_TOKEN_FILE_PATH: the file is empty")
	}
	dc.Token, dc.TokenFilePath = tok, ""
	return nil
}

// checkTokenFile only checks that an OAuth token file can be read: the
// driver reads it again at every login, which keeps a token that is
// replaced in place (as Snowpark Container Services does) current.
func checkTokenFile(path string) error {
	if path == "" {
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("SNOWFLAKE_TOKEN_FILE_PATH: %w", err)
	}
	return f.Close()
}

func need(ok bool, msg string) error {
	if ok {
		return nil
	}
	return errors.New(msg)
}

// readPrivateKey reads an unencrypted RSA key in PEM, PKCS#8 or PKCS#1.
func readPrivateKey(path string) (*rsa.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(b)
	switch {
	case block == nil:
		return nil, errors.New("no PEM block found")
	case block.Type == "ENCRYPTED PRIVATE KEY":
		return nil, errors.New("the key is encrypted; decrypt it first (openssl pkcs8 -topk8 -nocrypt)")
	case block.Type == "RSA PRIVATE KEY":
		return x509.ParsePKCS1PrivateKey(block.Bytes)
	case block.Type != "PRIVATE KEY":
		return nil, fmt.Errorf("PEM block %q is not a private key", block.Type)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("key is %T; Snowflake key-pair authentication needs RSA", k)
	}
	return rk, nil
}
