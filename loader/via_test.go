package loader

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/snowgate/snowgate/cache"
	"github.com/snowgate/snowgate/extfunc"
	"github.com/snowgate/snowgate/locapi"
)

// fakeGateway speaks the external-function protocol minimally. Values by ID
// prefix: "nf" null, "nl" a no-location object, "nfo" a not-found object,
// "err" an error value; anything else a record labelled "L-<id>".
type fakeGateway struct {
	t *testing.T
	// failFirst answers the first POST of every batch with this status.
	failFirst int
	// async answers every first POST 202 and the first poll 202 too.
	async bool
	// answer, when set, replaces the normal answer to a POST.
	answer func(w http.ResponseWriter, rows [][2]any)
	// bothInFlight is closed when two requests are in flight at once; the
	// first request waits for it, proving batches overlap.
	bothInFlight chan struct{}

	mu          sync.Mutex
	posts       map[string]int // guarded by mu: POSTs per batch id
	polls       map[string]int // guarded by mu: GETs per batch id
	pending     map[string][][2]any
	sizes       []int
	inFlight    int
	maxInFlight int
}

func newFakeGateway(t *testing.T) (*fakeGateway, *httptest.Server) {
	g := &fakeGateway{t: t, posts: map[string]int{}, polls: map[string]int{}, pending: map[string][][2]any{}}
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	return g, srv
}

func (g *fakeGateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("sf-external-function-format") != "json" || r.Header.Get("sf-external-function-format-version") != "1.0" {
		http.Error(w, "unsupported format", http.StatusBadRequest)
		return
	}
	id := r.Header.Get("sf-external-function-query-batch-id")
	if id == "" {
		http.Error(w, "missing batch id", http.StatusBadRequest)
		return
	}
	g.mu.Lock()
	g.inFlight++
	g.maxInFlight = max(g.maxInFlight, g.inFlight)
	wait := g.bothInFlight
	if wait != nil && g.inFlight >= 2 {
		close(g.bothInFlight)
		g.bothInFlight, wait = nil, nil
	}
	g.mu.Unlock()
	defer func() { g.mu.Lock(); g.inFlight--; g.mu.Unlock() }()
	if wait != nil {
		<-wait
	}
	if r.Method == http.MethodGet {
		g.poll(w, id)
		return
	}
	var req struct {
		Data [][2]any `json:"data"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, "bad json", http.StatusBadRequest)
		return
	}
	g.mu.Lock()
	g.posts[id]++
	n := g.posts[id]
	if n == 1 {
		g.sizes = append(g.sizes, len(req.Data))
	}
	g.mu.Unlock()
	switch {
	case n == 1 && g.failFirst != 0:
		w.Header().Set("Retry-After", "0")
		http.Error(w, "try again", g.failFirst)
	case g.answer != nil:
		g.answer(w, req.Data)
	case g.async:
		g.mu.Lock()
		g.pending[id] = req.Data
		g.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	default:
		writeAnswer(w, req.Data)
	}
}

func (g *fakeGateway) poll(w http.ResponseWriter, id string) {
	g.mu.Lock()
	g.polls[id]++
	n, rows, ok := g.polls[id], g.pending[id], g.pending[id] != nil
	g.mu.Unlock()
	switch {
	case !ok:
		http.Error(w, "unknown batch", http.StatusNotFound)
	case n < 2:
		w.WriteHeader(http.StatusAccepted)
	default:
		writeAnswer(w, rows)
	}
}

func writeAnswer(w http.ResponseWriter, rows [][2]any) {
	out := make([][2]any, len(rows))
	for i, row := range rows {
		id, _ := row[1].(string)
		out[i] = [2]any{row[0], gatewayValue(id)}
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"data": out})
}

func gatewayValue(id string) any {
	switch {
	case strings.HasPrefix(id, "nfo"):
		return map[string]any{"found": false, "id": id, "status": "not_found"}
	case strings.HasPrefix(id, "nf"):
		return nil
	case strings.HasPrefix(id, "nl"):
		return map[string]any{"found": false, "id": id, "status": "no_location", "label": "L-" + id}
	case strings.HasPrefix(id, "err"):
		return map[string]any{"error": "provider answered 500 after 8 attempts"}
	}
	return FakeRecord(id)
}

// wantVia is what Via should make of gatewayValue(id), as a string.
func wantVia(id string) string {
	switch {
	case strings.HasPrefix(id, "nfo"), strings.HasPrefix(id, "nf"):
		return "not_found"
	case strings.HasPrefix(id, "nl"):
		return "no_location L-" + id
	case strings.HasPrefix(id, "err"):
		return "error: via: gateway: provider answered 500 after 8 attempts"
	}
	return "found L-" + id
}

func describe(o cache.Outcome) string {
	switch {
	case o.Err != nil:
		return "error: " + o.Err.Error()
	case o.Entry == nil:
		return "nil"
	case o.Status == locapi.Found && o.Record != nil && o.Record.Label != nil:
		return "found " + *o.Record.Label
	case o.Status == locapi.NoLocation && o.Record != nil && o.Record.Label != nil:
		return "no_location " + *o.Record.Label
	}
	return o.Status.String()
}

func resolveAll(v Resolver, ids []string) []cache.Outcome {
	out := make([]cache.Outcome, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Go(func() { out[i] = v.Resolve(context.Background(), id) })
	}
	wg.Wait()
	return out
}

func TestViaBatchesRetriesAndPolls(t *testing.T) {
	tests := []struct {
		name        string
		failFirst   int
		async       bool
		wantPosts   int
		wantRetries bool
	}{
		{"plain", 0, false, 1, false},
		{"503 then retried with the same batch id", http.StatusServiceUnavailable, false, 2, true},
		{"429 then retried with the same batch id", http.StatusTooManyRequests, false, 2, true},
		{"accepted then polled", 0, true, 1, false},
	}
	prefixes := []string{"a", "nf", "nfo", "nl", "err"}
	var ids []string
	for i := range 1000 {
		ids = append(ids, fmt.Sprintf("%s%04d", prefixes[i%len(prefixes)], i))
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, srv := newFakeGateway(t)
			g.failFirst, g.async = tt.failFirst, tt.async
			g.bothInFlight = make(chan struct{})
			v, err := NewVia(srv.URL, ViaConfig{BatchSize: 64, InFlight: 4})
			if err != nil {
				t.Fatal(err)
			}
			defer v.Close()
			for i, o := range resolveAll(v, ids) {
				if got, want := describe(o), wantVia(ids[i]); got != want {
					t.Fatalf("Resolve(%q) = %s; want %s", ids[i], got, want)
				}
			}
			g.mu.Lock()
			defer g.mu.Unlock()
			total := 0
			for _, n := range g.sizes {
				if n > 64 || n < 1 {
					t.Errorf("batch of %d IDs; want 1..64", n)
				}
				total += n
			}
			if total != len(ids) || len(g.posts) != len(g.sizes) {
				t.Errorf("%d IDs in %d batch ids (%d batches); want %d IDs, one id per batch", total, len(g.posts), len(g.sizes), len(ids))
			}
			for id, n := range g.posts {
				if n != tt.wantPosts {
					t.Errorf("batch %s posted %d times; want %d", id, n, tt.wantPosts)
				}
			}
			if g.maxInFlight < 2 || g.maxInFlight > 4 {
				t.Errorf("max batches in flight = %d; want 2..4", g.maxInFlight)
			}
			if s := v.Stats(); s.Batches != int64(len(g.sizes)) || (s.Retries > 0) != tt.wantRetries {
				t.Errorf("stats = %+v; want %d batches, retries %v", s, len(g.sizes), tt.wantRetries)
			}
		})
	}
}

func TestViaFailsWholeBatchClearly(t *testing.T) {
	tests := []struct {
		name    string
		answer  func(w http.ResponseWriter, rows [][2]any)
		wantErr string
	}{
		{"400 shows the body", func(w http.ResponseWriter, _ [][2]any) {
			http.Error(w, "auth header missing", http.StatusBadRequest)
		}, "status 400: auth header missing"},
		{"always 503", func(w http.ResponseWriter, _ [][2]any) {
			w.Header().Set("Retry-After", "0")
			http.Error(w, "overloaded", http.StatusServiceUnavailable)
		}, "gave up after 3 attempts: status 503: overloaded"},
		{"too few rows", func(w http.ResponseWriter, rows [][2]any) { writeAnswer(w, rows[:len(rows)-1]) }, "Function received the wrong number of rows: 2 rows answered for 3 sent"},
		{"rows out of order", func(w http.ResponseWriter, rows [][2]any) {
			rows = append([][2]any(nil), rows...)
			rows[0], rows[1] = rows[1], rows[0]
			writeAnswer(w, rows)
		}, "Row numbers out of order"},
		{"not json", func(w http.ResponseWriter, _ [][2]any) { fmt.Fprint(w, "<html>") }, "Error parsing JSON: Invalid response"},
		{"not an object value", func(w http.ResponseWriter, rows [][2]any) {
			out := make([][2]any, len(rows))
			for i := range rows {
				out[i] = [2]any{i, 42}
			}
			_ = json.NewEncoder(w).Encode(map[string]any{"data": out})
		}, "row value 42"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, srv := newFakeGateway(t)
			g.answer = tt.answer
			v, err := NewVia(srv.URL, ViaConfig{BatchSize: 10, MaxAttempts: 3})
			if err != nil {
				t.Fatal(err)
			}
			defer v.Close()
			for _, o := range resolveAll(v, []string{"a1", "a2", "a3"}) {
				if o.Err == nil || !strings.Contains(o.Err.Error(), tt.wantErr) {
					t.Fatalf("outcome = %s; want an error mentioning %q", describe(o), tt.wantErr)
				}
			}
		})
	}
}

func TestViaRejectsWithoutARequest(t *testing.T) {
	g, srv := newFakeGateway(t)
	v, err := NewVia(srv.URL, ViaConfig{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name string
		ctx  context.Context
		id   string
		want error
	}{
		{"empty id", context.Background(), "", locapi.ErrInvalidID},
		{"control character", context.Background(), "a\x01", locapi.ErrInvalidID},
		{"cancelled caller", ctx, "a1", context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if o := v.Resolve(tt.ctx, tt.id); !errors.Is(o.Err, tt.want) {
				t.Fatalf("Resolve(%q) error = %v; want %v", tt.id, o.Err, tt.want)
			}
		})
	}
	v.Close()
	if o := v.Resolve(context.Background(), "a1"); !errors.Is(o.Err, errViaClosed) {
		t.Fatalf("Resolve after Close error = %v; want %v", o.Err, errViaClosed)
	}
	if len(g.posts) != 0 {
		t.Fatalf("requests sent = %d; want 0", len(g.posts))
	}
	if _, err := NewVia("ftp://x", ViaConfig{}); err == nil {
		t.Fatal("NewVia(ftp://x): got nil error; want one")
	}
}

// FuzzViaAnswer checks that an answer the protocol's decoder accepts gives
// exactly n values, and that no value makes viaOutcome panic.
func FuzzViaAnswer(f *testing.F) {
	f.Add([]byte(`{"data":[[0,{"id":"a","label":"x"}],[1,null]]}`), 2)
	f.Add([]byte(`{"data":[[0,{"City":"Warsaw","latitude":52.23,"longitude":21.01}],[1,{"City":"Toronto","latitude":43.65,"longitude":-79.38}]]}`), 2)
	f.Add([]byte(`{"data":[[1,null],[0,null]]}`), 2)
	f.Add([]byte(`{"data":[[0,{"error":"boom"}]], "extra": 1}`), 1)
	f.Add([]byte(`{"data":[[0]]}`), 1)
	f.Fuzz(func(t *testing.T, data []byte, n int) {
		if n < 0 || n > 1000 {
			return
		}
		values, err := extfunc.DecodeResponse(data, n)
		if err != nil {
			return
		}
		if len(values) != n {
			t.Fatalf("decoded %d values; want %d", len(values), n)
		}
		for _, v := range values {
			_ = viaOutcome(v) // must not panic on any value
		}
	})
}
