package main

import (
	"errors"
	"io"
	"strings"
	"testing"
)

// TestServeRoutesRefused: routes that cannot be served together are a
// usage error (exit 2) naming the flags, found before anything starts.
func TestServeRoutesRefused(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--bigquery-path", "/v1/bq"}, `--bigquery-path "/v1/bq": under --rest-prefix "/v1"`},
		{[]string{"--rest-prefix", "v1"}, `--rest-prefix "v1": want an absolute URL`},
		{[]string{"--bigquery-path", "/resolve_location"}, `--bigquery-path "/resolve_location": already --path`},
		{[]string{"--path", "", "--bigquery-path", "", "--rest-prefix", ""}, "no protocol served: set --path, --bigquery-path or --rest-prefix"},
	} {
		_, err := parseServe(c.args, io.Discard)
		var ue *usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("serve %q: got %v; want one usage line with %q", c.args, err, c.want)
		}
	}
	sf, err := parseServe([]string{"--path", "", "--rest-prefix", ""}, io.Discard)
	if err != nil || !sf.cfg.NoSnowflake || sf.cfg.BigQueryPath == "" {
		t.Fatalf("BigQuery alone: %v (NoSnowflake %v); want it accepted", err, sf != nil && sf.cfg.NoSnowflake)
	}
}
