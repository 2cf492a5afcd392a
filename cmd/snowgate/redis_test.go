//go:build !slim

package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/snowgate/snowgate/cluster/redistest"
	"github.com/snowgate/snowgate/sim"
)

func TestRedisFlags(t *testing.T) {
	for _, cmd := range []string{"serve", "backfill"} {
		t.Run(cmd, func(t *testing.T) {
			var out bytes.Buffer
			err := run(context.Background(), []string{cmd, "--help"}, &out, slog.New(slog.DiscardHandler))
			if !errors.Is(err, flag.ErrHelp) {
				t.Fatalf("got %v; want flag.ErrHelp", err)
			}
			for _, name := range []string{"redis-url", "redis-prefix", "redis-local-share"} {
				if !strings.Contains(out.String(), "--"+name+"  ["+envName(name)+"]") {
					t.Errorf("snowgate %s --help lacks --%s with %s", cmd, name, envName(name))
				}
			}
		})
	}
}

func TestRedisSettingsRejected(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"share of zero", []string{"--redis-url", "redis://127.0.0.1:1", "--redis-local-share", "0"}, "--redis-local-share 0"},
		{"share above one", []string{"--redis-url", "redis://127.0.0.1:1", "--redis-local-share", "1.5"}, "--redis-local-share 1.5"},
		{"not a redis URL", []string{"--redis-url", "http://user:s3cret@127.0.0.1:1"}, "--redis-url"},
		{"bad database", []string{"--redis-url", "redis://:s3cret@127.0.0.1:1/x"}, "invalid database"},
		{"no rate to share", []string{"--redis-url", "redis://127.0.0.1:1", "--rate", "0"}, "shared budget needs a rate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("SNOWGATE_AUTH_SECRET", "")
			err := runServe(context.Background(), append(tt.args, "--listen", "127.0.0.1:0"), io.Discard, slog.New(slog.DiscardHandler))
			if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "s3cret") {
				t.Fatalf("got %v; want an error naming %q, without the password", err, tt.want)
			}
		})
	}
}

// TestServeReplicasShareRedis runs two `snowgate serve` replicas given the
// same SNOWGATE_REDIS_URL: a batch that goes asynchronous on one is
// answered by a poll to the other.
func TestServeReplicasShareRedis(t *testing.T) {
	rds := redistest.Start(t)
	rs, err := sim.Start(sim.Config{Rate: 200})
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	t.Setenv("SNOWGATE_AUTH_SECRET", "")
	t.Setenv("SNOWGATE_REDIS_URL", rds.URL)
	args := []string{"--listen", "127.0.0.1:0", "--rate", "200", "--burst", "20", "--async", "--batch-timeout", "100ms",
		"--redis-prefix", "servetest:", "--upstream-url", rs.URL + sim.EntitiesPath + "{id}?select=id,label,location"}
	ctx, cancel := context.WithCancel(context.Background())
	var urls []string
	var dones []chan error
	for range 2 {
		out := &lineWriter{lines: make(chan string, 8)}
		done := make(chan error, 1)
		go func() { done <- runServe(ctx, args, out, slog.New(slog.DiscardHandler)) }()
		select {
		case line := <-out.lines:
			addr := strings.TrimSuffix(strings.Fields(strings.SplitN(line, "listening on ", 2)[1])[0], ",")
			urls = append(urls, "http://"+addr)
		case err := <-done:
			cancel()
			t.Fatalf("runServe ended early: %v", err)
		}
		dones = append(dones, done)
	}
	defer func() {
		cancel()
		for _, done := range dones {
			if err := <-done; err != nil {
				t.Errorf("runServe after cancel: %v", err)
			}
		}
	}()

	var body strings.Builder
	body.WriteString(`{"data":[`)
	for i := range 100 {
		if i > 0 {
			body.WriteByte(',')
		}
		fmt.Fprintf(&body, `[%d,"R%d"]`, i, i)
	}
	body.WriteString(`]}`)
	code, _ := request(t, http.MethodPost, urls[0]+"/resolve_location", body.String())
	if code != http.StatusAccepted {
		t.Fatalf("POST to replica 1: got %d; want 202", code)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, got := request(t, http.MethodGet, urls[1]+"/resolve_location", "")
		if code == http.StatusOK {
			if !strings.HasPrefix(got, `{"data":[[0,{"id":"R0",`) || !strings.Contains(got, `[99,{"id":"R99",`) {
				t.Fatalf("poll of replica 2: got %.200s; want R0..R99's records", got)
			}
			break
		}
		if code != http.StatusAccepted || time.Now().After(deadline) {
			t.Fatalf("poll of replica 2: got %d %q; want 202 until 200", code, got)
		}
		time.Sleep(50 * time.Millisecond) // Snowflake's polling interval, shortened
	}
	_, metrics := request(t, http.MethodGet, urls[1]+"/metrics", "")
	for _, want := range []string{"snowgate_redis_up 1", `snowgate_cache_l2_requests_total{result="hit"}`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("replica 2's /metrics lacks %s", want)
		}
	}
}

// request sends one request with the batch id every test batch here uses.
func request(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("sf-external-function-query-batch-id", "01b0serve-redis:1:1:0:0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}
