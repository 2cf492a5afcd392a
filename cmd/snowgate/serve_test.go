package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/snowgate/snowgate/sim"
)

func TestServeHelpListsEveryFlag(t *testing.T) {
	var out bytes.Buffer
	err := runServe(context.Background(), []string{"--help"}, &out, slog.New(slog.DiscardHandler))
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("got %v; want flag.ErrHelp", err)
	}
	for _, name := range []string{"listen", "path", "on-row-error", "not-found", "max-body", "max-response",
		"batch-timeout", "async", "async-timeout", "result-ttl", "max-inflight-rows", "auth-header",
		"shutdown-timeout", "upstream-url", "rate", "burst", "upstream-concurrency", "upstream-timeout",
		"cache-size", "cache-ttl", "negative-ttl"} {
		if !strings.Contains(out.String(), "--"+name+"  ["+envName(name)+"]") {
			t.Errorf("help lacks --%s with %s", name, envName(name))
		}
	}
	if !strings.Contains(out.String(), "SNOWGATE_AUTH_SECRET") {
		t.Error("help does not say where the auth secret comes from")
	}
}

func TestServeAuthSettings(t *testing.T) {
	tests := []struct {
		name, secret string
		args         []string
		want         string
	}{
		{"header without secret", "", []string{"--auth-header", "sf-custom-key"}, "needs SNOWGATE_AUTH_SECRET"},
		{"secret without header", "s3cret", nil, "--auth-header is not"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("SNOWGATE_AUTH_SECRET", tt.secret)
			err := runServe(context.Background(), tt.args, io.Discard, slog.New(slog.DiscardHandler))
			if err == nil || !strings.Contains(err.Error(), tt.want) || (tt.secret != "" && strings.Contains(err.Error(), tt.secret)) {
				t.Fatalf("got %v; want an error containing %q and no secret", err, tt.want)
			}
		})
	}
}

// lineWriter hands each complete line written to it to a channel.
type lineWriter struct {
	mu    sync.Mutex // guards buf
	buf   []byte
	lines chan string
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		select {
		case w.lines <- string(w.buf[:i]):
		default:
		}
		w.buf = w.buf[i+1:]
	}
}

func TestServeRunsAndDrains(t *testing.T) {
	rs, err := sim.Start(sim.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	t.Setenv("SNOWGATE_AUTH_SECRET", "")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &lineWriter{lines: make(chan string, 8)}
	done := make(chan error, 1)
	go func() {
		done <- runServe(ctx, []string{"--listen", "127.0.0.1:0", "--rate", "0",
			"--upstream-url", rs.URL + sim.EntitiesPath + "{id}?select=id,label,location"}, out, slog.New(slog.DiscardHandler))
	}()
	var addr string
	select {
	case line := <-out.lines:
		addr = strings.TrimSuffix(strings.Fields(strings.SplitN(line, "listening on ", 2)[1])[0], ",")
	case err := <-done:
		t.Fatalf("runServe ended early: %v", err)
	}
	base := "http://" + addr
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, base+"/resolve_location", strings.NewReader(`{"data":[[0,"A1"],[1,null]]}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(string(body), `{"data":[[0,{"id":"A1",`) || !strings.HasSuffix(string(body), `[1,null]]}`) {
		t.Fatalf("got %d %s; want 200 with A1's record and a null", resp.StatusCode, body)
	}
	if req, err = http.NewRequestWithContext(t.Context(), http.MethodGet, base+"/metrics", nil); err != nil {
		t.Fatal(err)
	}
	if resp, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`snowgate_gateway_batches_total{outcome="ok",protocol="snowflake"} 1`, "go_goroutines", "process_"} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("runServe after cancel: %v; want nil", err)
	}
}
