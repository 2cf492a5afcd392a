//go:build !slim

package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/snowgate/snowgate/gateway"
	"github.com/snowgate/snowgate/locapi"
	"github.com/snowgate/snowgate/sim"
	"github.com/snowgate/snowgate/stack"
)

// TestBackfillViaBadURL checks a --via URL the client cannot use is one
// usage line naming --via, found before the warehouse is touched.
func TestBackfillViaBadURL(t *testing.T) {
	for _, u := range []string{"http://", "https:///path", "http://%zz/x", "ftp://x", "127.0.0.1:8080/resolve_location"} {
		t.Run(u, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "x.duckdb")
			err := runBackfill(context.Background(), []string{"--warehouse", "duckdb:" + path, "--via", u}, &bytes.Buffer{},
				slog.New(slog.DiscardHandler))
			if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), "--via") || strings.Contains(err.Error(), "extfunc") ||
				strings.Contains(err.Error(), "\n") {
				t.Fatalf("got %v; want one usage line naming --via", err)
			}
			if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the warehouse file exists (%v); want nothing created for a bad flag", err)
			}
		})
	}
}

// TestBackfillViaSummaryHasGatewayFigures runs a backfill through a
// gateway: its summary gives the gateway's figures, the ones it can know,
// and no provider figures, which only the gateway has.
func TestBackfillViaSummaryHasGatewayFigures(t *testing.T) {
	s, err := sim.Start(sim.Config{NotFoundRatio: 0.1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	p, err := stack.New(stack.Config{Provider: locapi.Config{URL: s.URL + sim.EntitiesPath + "{id}?select=id,label,location"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	gw, err := gateway.New(p.Resolver, gateway.Config{OnRowError: gateway.RowErrorObject, NotFound: gateway.NotFoundObject}, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gw.Handler())
	defer srv.Close()
	path := newBackfillDB(t, testIDs(120))
	var out bytes.Buffer
	args := []string{"--warehouse", "duckdb:" + path, "--via", srv.URL + "/resolve_location", "--via-batch-size", "50", "--progress", "none"}
	if err := runBackfill(context.Background(), args, &out, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	line := out.String()
	m := regexp.MustCompile(`; gateway batches (\d+), retries 0, 429s 0\n`).FindStringSubmatch(line)
	if !strings.Contains(line, "120 of 120 pending IDs committed") || m == nil || strings.Contains(line, "provider") {
		t.Fatalf("summary %q; want 120 committed, gateway batches, retries 0, 429s 0, no provider figures", line)
	}
	// A batch leaves full or when its linger passes, so a slow read may
	// split them further; never fewer than 120/50.
	if n, _ := strconv.Atoi(m[1]); n < 3 || n > 120 {
		t.Errorf("gateway batches %d; want 3 to 120", n)
	}
}
