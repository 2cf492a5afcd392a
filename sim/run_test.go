package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func mustStart(t testing.TB, cfg Config) *Running {
	t.Helper()
	rs, err := Start(cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := rs.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return rs
}

// mustServe serves an already built Server, for tests that set hooks.
func mustServe(t testing.TB, s *Server) *Running {
	t.Helper()
	rs, err := serveOn("127.0.0.1:0", s)
	if err != nil {
		t.Fatalf("serve: %v", err)
	}
	t.Cleanup(func() { rs.Close() })
	return rs
}

func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, resp.Body) // only to reuse the connection
	resp.Body.Close()
}

// getWith sends a GET that ends with ctx.
func getWith(ctx context.Context, c *http.Client, url string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	return c.Do(req)
}

func get(t *testing.T, rs *Running, url string) (int, []byte) {
	t.Helper()
	resp, err := getWith(t.Context(), rs.Client(), url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read %s: %v", url, err)
	}
	return resp.StatusCode, body
}

// TestHostileIDsEndToEnd sends IDs that break naive URL building through a
// real connection and checks the raw request path the simulator saw.
func TestHostileIDsEndToEnd(t *testing.T) {
	rs := mustStart(t, Config{RecordPaths: true})
	tests := []struct {
		id      string
		rawPath string
	}{
		{"../../admin", "/api/v2/entities/..%2F..%2Fadmin"},
		{"a/b", "/api/v2/entities/a%2Fb"},
		{"x?y=1#z", "/api/v2/entities/x%3Fy=1%23z"},
		{"%2F", "/api/v2/entities/%252F"},
		{"with space", "/api/v2/entities/with%20space"},
		{"Łódź/東京", "/api/v2/entities/%C5%81%C3%B3d%C5%BA%2F%E6%9D%B1%E4%BA%AC"},
		{strings.Repeat("é", 5000), "/api/v2/entities/" + strings.Repeat("%C3%A9", 5000)},
	}
	for _, tt := range tests {
		name := tt.id
		if len(name) > 20 {
			name = fmt.Sprintf("%d bytes", len(name))
		}
		t.Run(name, func(t *testing.T) {
			rs.Reset()
			code, body := get(t, rs, rs.EntityURL(tt.id))
			_, want := rs.Expected(tt.id)
			if code != 200 || !bytes.Equal(body, want) {
				t.Errorf("got %d %.80s; want 200 %.80s", code, body, want)
			}
			paths := rs.Paths()
			if len(paths) != 1 || paths[0] != tt.rawPath+"?select=id,label,location" {
				t.Errorf("raw request URI: got %.120q; want %.120q", paths, tt.rawPath)
			}
			if got := rs.Requests(tt.id); got != 1 {
				t.Errorf("Requests: got %d; want 1", got)
			}
		})
	}
}

func TestPathsRing(t *testing.T) {
	tests := []struct {
		name     string
		cfg      Config
		requests int
		want     []string
	}{
		{"off", Config{}, 3, nil},
		{"below capacity", Config{RecordPaths: true, MaxPaths: 3}, 2, []string{"/api/v2/entities/0", "/api/v2/entities/1"}},
		{"wraps, oldest first", Config{RecordPaths: true, MaxPaths: 3}, 5,
			[]string{"/api/v2/entities/2", "/api/v2/entities/3", "/api/v2/entities/4"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustNew(t, tt.cfg)
			for i := range tt.requests {
				serve(s, "GET", fmt.Sprint(EntitiesPath, i), nil)
			}
			if got := s.Paths(); !slices.Equal(got, tt.want) {
				t.Errorf("Paths: got %q; want %q", got, tt.want)
			}
		})
	}
}

// TestConcurrentCounters runs many clients at once (meant for -race) and
// checks that every count adds up.
func TestConcurrentCounters(t *testing.T) {
	rs := mustStart(t, Config{NotFoundRatio: 0.2, NoLocationRatio: 0.2, ErrorRate: 0.1, Latency: time.Millisecond, RecordPaths: true})
	const goroutines, perG, distinct = 8, 100, 50
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := range goroutines {
		wg.Go(func() {
			for i := range perG {
				resp, err := getWith(t.Context(), rs.Client(), rs.EntityURL(fmt.Sprint("id-", (g*perG+i)%distinct)))
				if err != nil {
					errs <- err
					return
				}
				drain(resp)
			}
			_ = rs.Stats() // readers race with writers too
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	const n = goroutines * perG
	sum := 0
	for i := range distinct {
		sum += rs.Requests(fmt.Sprint("id-", i))
	}
	st := rs.Stats()
	byStatus := 0
	for _, c := range st.ByStatus {
		byStatus += c
	}
	perSecond := 0
	for _, c := range rs.PerSecond() {
		perSecond += c
	}
	checks := []struct {
		name      string
		got, want int
	}{
		{"Total", st.Total, n}, {"sum of Requests", sum, n}, {"Admitted", st.Admitted, n},
		{"sum of ByStatus", byStatus, n}, {"sum of PerSecond", perSecond, n},
		{"Paths", len(rs.Paths()), n},
		{"Faults", st.Faults, st.ByStatus[500] + st.ByStatus[502] + st.ByStatus[503]},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %d; want %d", c.name, c.got, c.want)
		}
	}
}

func TestRunningServesAndShutsDown(t *testing.T) {
	rs, err := Start(Config{Token: "t0k"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(rs.URL, "http://127.0.0.1:") || strings.HasSuffix(rs.URL, "/") {
		t.Errorf("URL: got %q; want http://127.0.0.1:PORT", rs.URL)
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, rs.EntityURL("WH-1"), nil)
	req.Header.Set("Authorization", "Bearer t0k")
	resp, err := rs.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var e entity
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil || resp.StatusCode != 200 || e.ID != "WH-1" {
		t.Errorf("got %d %+v (%v); want 200 and WH-1", resp.StatusCode, e, err)
	}
	resp.Body.Close()
	if err := rs.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	within(t, "Done after Close", rs.Done())
	if err := rs.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if resp, err := getWith(t.Context(), http.DefaultClient, rs.EntityURL("WH-1")); err == nil {
		resp.Body.Close()
		t.Error("GET after Close: got nil error; want connection refused")
	}
}

func TestListenRejectsBadAddress(t *testing.T) {
	if _, err := Listen("127.0.0.1:-1", Config{}); err == nil {
		t.Error("Listen on a bad port: got nil error; want one")
	}
	if _, err := Listen("127.0.0.1:0", Config{Rate: -1}); err == nil {
		t.Error("Listen with a bad config: got nil error; want one")
	}
}

func ExampleStart() {
	rs, err := Start(Config{Seed: 1, NotFoundRatio: 0.1})
	if err != nil {
		panic(err)
	}
	defer rs.Close()
	for _, id := range []string{"WH-2", "a/b"} {
		req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, rs.EntityURL(id), nil)
		if err != nil {
			panic(err)
		}
		resp, err := rs.Client().Do(req)
		if err != nil {
			panic(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		kind, want := rs.Expected(id)
		fmt.Println(id, resp.StatusCode, kind, bytes.Equal(body, want), rs.Requests(id))
	}
	// Output:
	// WH-2 200 found true 1
	// a/b 404 not_found true 1
}
