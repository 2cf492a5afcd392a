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

// ConfigFromEnv builds the driver configuration from the environment, read
// through getenv (os.Getenv in production).
//
// SNOWFLAKE_DSN, when set, is parsed as a gosnowflake DSN and every other
// variable is ignored. Otherwise:
//
//	SNOWFLAKE_ACCOUNT        required (e.g. myorg-myaccount)
//	SNOWFLAKE_USER           required except for oauth
//	SNOWFLAKE_DATABASE, SNOWFLAKE_SCHEMA, SNOWFLAKE_WAREHOUSE, SNOWFLAKE_ROLE
//	SNOWFLAKE_AUTHENTICATOR  snowflake (password, the default),
//	                         snowflake_jwt (key pair; the default when a key
//	                         path is set), oauth, externalbrowser,
//	                         programmatic_access_token
//	SNOWFLAKE_PASSWORD       for snowflake
//	SNOWFLAKE_PRIVATE_KEY_PATH  PEM RSA key, PKCS#8 or PKCS#1, unencrypted,
//	                         for snowflake_jwt
//	SNOWFLAKE_TOKEN or SNOWFLAKE_TOKEN_FILE_PATH  for oauth and
//	                         programmatic_access_token
//	SNOWFLAKE_HOST, SNOWFLAKE_PORT, SNOWFLAKE_PROTOCOL  optional overrides
//	                         (private link, proxies)
//
// Missing or contradictory settings are reported by name; errors never
// contain a secret's value.
func ConfigFromEnv(getenv func(string) string) (sf.Config, error) {
	if dsn := getenv("SNOWFLAKE_DSN"); dsn != "" {
		dc, err := sf.ParseDSN(dsn)
		if err != nil {
			return sf.Config{}, fmt.Errorf("snowflake: parse SNOWFLAKE_DSN: %w", err)
		}
		return *dc, nil
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
	if dc.Account == "" {
		return sf.Config{}, errors.New("snowflake: set SNOWFLAKE_DSN or SNOWFLAKE_ACCOUNT")
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

// setAuth picks the authenticator and checks it has what it needs.
func setAuth(dc *sf.Config, name, keyPath string) error {
	name = strings.ToLower(strings.TrimSpace(name))
	if name == "" && keyPath != "" {
		name = "snowflake_jwt"
	}
	hasToken := dc.Token != "" || dc.TokenFilePath != ""
	if dc.Token != "" && dc.TokenFilePath != "" {
		return errors.New("set only one of SNOWFLAKE_TOKEN and SNOWFLAKE_TOKEN_FILE_PATH")
	}
	switch name {
	case "", "snowflake":
		dc.Authenticator = sf.AuthTypeSnowflake
		return need(dc.User != "" && dc.Password != "", "password authentication needs SNOWFLAKE_USER and SNOWFLAKE_PASSWORD")
	case "snowflake_jwt":
		dc.Authenticator = sf.AuthTypeJwt
		if dc.User == "" || keyPath == "" {
			return errors.New("key-pair authentication needs SNOWFLAKE_USER and SNOWFLAKE_PRIVATE_KEY_PATH")
		}
		key, err := readPrivateKey(keyPath)
		if err != nil {
			return fmt.Errorf("SNOWFLAKE_PRIVATE_KEY_PATH: %w", err)
		}
		dc.PrivateKey = key
		return nil
	case "oauth":
		dc.Authenticator = sf.AuthTypeOAuth
		return need(hasToken, "oauth authentication needs SNOWFLAKE_TOKEN or SNOWFLAKE_TOKEN_FILE_PATH")
	case "programmatic_access_token":
		dc.Authenticator = sf.AuthTypePat
		return need(dc.User != "" && hasToken, "programmatic access token authentication needs SNOWFLAKE_USER and SNOWFLAKE_TOKEN or SNOWFLAKE_TOKEN_FILE_PATH")
	case "externalbrowser":
		dc.Authenticator = sf.AuthTypeExternalBrowser
		return nil
	}
	return fmt.Errorf("SNOWFLAKE_AUTHENTICATOR %q is not one of snowflake, snowflake_jwt, oauth, externalbrowser, programmatic_access_token", name)
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
