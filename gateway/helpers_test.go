package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/snowgate/snowgate/cache"
	"github.com/snowgate/snowgate/locapi"
)

// errProvider stands for a provider failure after retries.
var errProvider = errors.New("provider answered 503")

// fakeResolver answers from a fixed table: IDs in found are Found, IDs
// starting with "fail" fail, "noloc" has no location, anything else is not
// found; invalid IDs get locapi.ValidateID's error, like the real one.
type fakeResolver struct {
	found map[string]*cache.Entry
	// entered, if set, gets the IDs of each call as it starts.
	entered chan []string
	// release, if set, holds every call until it is closed or ctx ends.
	release chan struct{}

	mu    sync.Mutex // guards the counts
	calls int
	ids   []string // every ID ever passed, in order
}

func newFake(ids ...string) *fakeResolver {
	f := &fakeResolver{found: map[string]*cache.Entry{}}
	for _, id := range ids {
		f.found[id] = foundEntry(id)
	}
	return f
}

func foundEntry(id string) *cache.Entry {
	label, city := "Label "+id, "Warsaw"
	lat, lon := 52.23, 21.01
	rec := &locapi.Record{ID: id, Label: &label, CityLabel: &city, Latitude: &lat, Longitude: &lon}
	js, err := json.Marshal(rec)
	if err != nil {
		panic(err)
	}
	return &cache.Entry{Status: locapi.Found, Record: rec, JSON: js}
}

func (f *fakeResolver) ResolveMany(ctx context.Context, ids []string) ([]cache.Outcome, cache.Stats) {
	f.mu.Lock()
	f.calls++
	f.ids = append(f.ids, ids...)
	f.mu.Unlock()
	if f.entered != nil {
		f.entered <- ids
	}
	if f.release != nil {
		select {
		case <-f.release:
		case <-ctx.Done():
		}
	}
	outs := make([]cache.Outcome, len(ids))
	seen := map[string]bool{}
	for i, id := range ids {
		seen[id] = true
		if err := locapi.ValidateID(id, 0); err != nil {
			outs[i].Err = fmt.Errorf("resolve %q: %w", id, err)
			continue
		}
		if ctx.Err() != nil {
			outs[i].Err = fmt.Errorf("resolve: %w", ctx.Err())
			continue
		}
		switch e := f.found[id]; {
		case e != nil:
			outs[i] = cache.Outcome{Entry: e, Hit: true}
		case strings.HasPrefix(id, "fail"):
			outs[i].Err = errProvider
		case id == "noloc":
			outs[i].Entry = &cache.Entry{Status: locapi.NoLocation, Record: &locapi.Record{ID: id}}
		default:
			outs[i].Entry = &cache.Entry{Status: locapi.NotFound}
		}
	}
	return outs, cache.Stats{IDs: len(ids), Distinct: len(seen), Hits: len(seen)}
}

func (f *fakeResolver) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

func (f *fakeResolver) seenIDs() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.ids...)
}

func newServer(t testing.TB, res Resolver, cfg Config) *Server {
	t.Helper()
	s, err := New(res, cfg, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

// request describes one call to the handler.
type request struct {
	method  string // default POST
	path    string // default /resolve_location
	body    string
	headers map[string]string
	raw     []byte // body bytes, used instead of body when set
}

func (r request) build(ctx context.Context) *http.Request {
	method, path := r.method, r.path
	if method == "" {
		method = http.MethodPost
	}
	if path == "" {
		path = defaultPath
	}
	body := r.raw
	if body == nil {
		body = []byte(r.body)
	}
	var rd io.Reader
	if method != http.MethodGet {
		rd = bytes.NewReader(body)
	}
	req := httptest.NewRequestWithContext(ctx, method, path, rd)
	for k, v := range r.headers {
		req.Header.Set(k, v)
	}
	return req
}

// do runs r through h in process.
func do(t testing.TB, h http.Handler, r request) *httptest.ResponseRecorder {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r.build(context.Background()))
	return w
}

// rowsOf parses an answer into row number -> raw value, checking its shape.
func rowsOf(t testing.TB, body []byte) ([]int64, []string) {
	t.Helper()
	var resp struct {
		Data [][]json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		t.Fatalf("answer is not JSON: %v: %.200s", err, body)
	}
	rows := make([]int64, len(resp.Data))
	vals := make([]string, len(resp.Data))
	for i, r := range resp.Data {
		if len(r) != 2 {
			t.Fatalf("answer row %d has %d elements; want 2", i, len(r))
		}
		if err := json.Unmarshal(r[0], &rows[i]); err != nil {
			t.Fatalf("answer row %d number %s: %v", i, r[0], err)
		}
		vals[i] = string(r[1])
	}
	return rows, vals
}

// batchBody builds {"data":[[0,"id0"],...]} from ids.
func batchBody(ids []string) string {
	var sb strings.Builder
	sb.WriteString(`{"data":[`)
	for i, id := range ids {
		if i > 0 {
			sb.WriteByte(',')
		}
		js, _ := json.Marshal(id)
		fmt.Fprintf(&sb, "[%d,%s]", i, js)
	}
	sb.WriteString("]}")
	return sb.String()
}

// syncBuffer is an io.Writer safe for concurrent log handlers.
type syncBuffer struct {
	mu  sync.Mutex // guards buf
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func debugLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
