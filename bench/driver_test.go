package bench

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/snowgate/snowgate/sim"
)

// testOracle knows the IDs T0..T(n-1) of a simulator with every kind of ID.
func testOracle(t testing.TB, n int) (*oracle, []string) {
	t.Helper()
	s, err := sim.New(sim.Config{NotFoundRatio: 0.2, NoLocationRatio: 0.2, PermanentFailRatio: 0.1})
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("T%04d", i)
	}
	o, err := newOracle(s, ids)
	if err != nil {
		t.Fatal(err)
	}
	return o, ids
}

func mustSFClient(t testing.TB, url string, o *oracle) *sfClient {
	t.Helper()
	d, err := newSFClient(url, 1, o)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// rightAnswer is what a correct gateway answers for ids.
func rightAnswer(o *oracle, ids []string) [][]any {
	rows := make([][]any, len(ids))
	for i, id := range ids {
		kind, rec, _ := o.truth(id)
		v := json.RawMessage(`{"error":"lookup failed"}`)
		if b := gatewayValue(id, kind, rec); b != nil {
			v = b
		}
		rows[i] = []any{i, v}
	}
	return rows
}

// seen is one request the fake gateway received.
type seen struct {
	method, batchID string
	rows            int // rows in the (gunzipped) body; -1 without a body
}

// fakeGateway answers the n-th request with script(n, ids of the batch).
func fakeGateway(t *testing.T, script func(n int, ids []string) (int, any)) (*httptest.Server, func() []seen) {
	var mu sync.Mutex
	var log []seen
	var ids []string // of the last POST
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := seen{method: r.Method, batchID: r.Header.Get("sf-external-function-query-batch-id"), rows: -1}
		if r.Method == http.MethodPost {
			var body struct {
				Data [][2]any `json:"data"`
			}
			zr, err := gzip.NewReader(r.Body)
			if err == nil {
				err = json.NewDecoder(zr).Decode(&body)
			}
			if err != nil || r.Header.Get("Content-Encoding") != "gzip" {
				t.Errorf("POST body: %v (Content-Encoding %q); want gzip JSON", err, r.Header.Get("Content-Encoding"))
			}
			mu.Lock()
			ids = ids[:0]
			for _, row := range body.Data {
				id, _ := row[1].(string)
				ids = append(ids, id)
			}
			mu.Unlock()
			s.rows = len(body.Data)
		}
		mu.Lock()
		log = append(log, s)
		n, cur := len(log)-1, append([]string(nil), ids...)
		mu.Unlock()
		status, v := script(n, cur)
		var answer []byte
		if v != nil {
			var err error
			if answer, err = json.Marshal(map[string]any{"data": v}); err != nil {
				t.Errorf("fake gateway: answer %v: %v", v, err)
			}
		}
		w.WriteHeader(status)
		_, _ = w.Write(answer) // a client that hung up sees it in its own error
	}))
	t.Cleanup(srv.Close)
	return srv, func() []seen { mu.Lock(); defer mu.Unlock(); return append([]seen(nil), log...) }
}

func TestDriverProtocol(t *testing.T) {
	o, ids := testOracle(t, 40)
	tests := []struct {
		name   string
		script func(n int, ids []string) (int, any)
		want   []string // method of each request
		tries  [4]int64
	}{
		{"answered at once", func(int, []string) (int, any) { return 200, nil }, []string{"POST"}, [4]int64{}},
		{"429 and 503 retried with the same batch id",
			func(n int, _ []string) (int, any) { return []int{429, 503, 200}[n], nil },
			[]string{"POST", "POST", "POST"}, [4]int64{tryGateway429: 1, try5xx: 1}},
		{"202 polled until done",
			func(n int, _ []string) (int, any) { return []int{202, 202, 503, 200}[n], nil },
			[]string{"POST", "GET", "GET", "GET"}, [4]int64{try5xx: 1, tryAccepted: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, log := fakeGateway(t, func(n int, got []string) (int, any) {
				status, _ := tt.script(n, got)
				if status == 200 {
					return 200, rightAnswer(o, ids)
				}
				return status, nil
			})
			d := mustSFClient(t, srv.URL, o)
			defer d.close()
			p := d.run(context.Background(), "q1", [][]string{ids}, 1)
			if p.right.Load() != int64(len(ids)) || p.wrong.Load()+p.failed.Load()+p.missing.Load() != 0 {
				t.Errorf("rows: got right %d, wrong %d, failed %d, missing %d; want all %d right (%v)",
					p.right.Load(), p.wrong.Load(), p.failed.Load(), p.missing.Load(), len(ids), p.examples)
			}
			var methods []string
			for _, s := range log() {
				methods = append(methods, s.method)
				if s.batchID != "q1:1:1:0:0" {
					t.Errorf("batch id: got %q; want q1:1:1:0:0 on every request", s.batchID)
				}
				if (s.method == "GET") != (s.rows == -1) || s.method == "POST" && s.rows != len(ids) {
					t.Errorf("%s carried %d rows; want %d on POST, no body on GET", s.method, s.rows, len(ids))
				}
			}
			if strings.Join(methods, ",") != strings.Join(tt.want, ",") {
				t.Errorf("requests: got %v; want %v", methods, tt.want)
			}
			for i := range tt.tries {
				if got := p.tries[i].Load(); got != tt.tries[i] {
					t.Errorf("tries[%d]: got %d; want %d", i, got, tt.tries[i])
				}
			}
		})
	}
}

func TestDriverJudgesAnswers(t *testing.T) {
	o, ids := testOracle(t, 40)
	foundAt, failAt := -1, -1
	for i, id := range ids {
		switch o.want[id].kind {
		case sim.Found:
			foundAt = i
		case sim.PermanentFail:
			failAt = i
		}
	}
	if foundAt < 0 || failAt < 0 {
		t.Fatal("the test IDs lack a found or an always-failing ID")
	}
	n := int64(len(ids))
	tests := []struct {
		name                          string
		status                        int
		edit                          func([][]any) any
		right, failed, wrong, missing int64
	}{
		{"right", 200, func(r [][]any) any { return r }, n, 0, 0, 0},
		{"a row short", 200, func(r [][]any) any { return r[1:] }, 0, 0, n, 0},
		{"rows swapped", 200, func(r [][]any) any { r[0][0], r[1][0] = 1, 0; return r }, n - 2, 0, 2, 0},
		{"a wrong label", 200, func(r [][]any) any {
			r[foundAt][1] = json.RawMessage(strings.Replace(string(r[foundAt][1].(json.RawMessage)), `"label":"`, `"label":"X`, 1))
			return r
		}, n - 1, 0, 1, 0},
		{"an error value for a found ID", 200, func(r [][]any) any { r[foundAt][1] = map[string]string{"error": "lookup failed"}; return r }, n - 1, 1, 0, 0},
		{"null for an ID that always fails", 200, func(r [][]any) any { r[failAt][1] = nil; return r }, n - 1, 0, 1, 0},
		{"400 fails the batch", 400, func(r [][]any) any { return nil }, 0, 0, 0, n},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, _ := fakeGateway(t, func(int, []string) (int, any) { return tt.status, tt.edit(rightAnswer(o, ids)) })
			d := mustSFClient(t, srv.URL, o)
			defer d.close()
			p := d.run(context.Background(), "q", [][]string{ids}, 1)
			got := [4]int64{p.right.Load(), p.failed.Load(), p.wrong.Load(), p.missing.Load()}
			if want := [4]int64{tt.right, tt.failed, tt.wrong, tt.missing}; got != want {
				t.Errorf("right, failed, wrong, missing: got %v; want %v (%v)", got, want, p.examples)
			}
		})
	}
}

func TestEncodeIsGzipJSON(t *testing.T) {
	d := mustSFClient(t, "http://127.0.0.1:1", nil)
	ids := []string{"a", `q"uote`, "ünï", "x/y"}
	body, err := d.encode(ids)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(zr)
	var got struct {
		Data [][2]any `json:"data"`
	}
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatalf("body %s: %v", raw, err)
	}
	for i, row := range got.Data {
		if row[0] != float64(i) || row[1] != ids[i] {
			t.Errorf("row %d: got %v; want [%d %q]", i, row, i, ids[i])
		}
	}
}

// FuzzCheck feeds the answer decoder anything: every row of the batch must
// be judged exactly once, and nothing may panic.
func FuzzCheck(f *testing.F) {
	for _, seed := range []string{
		`{"data":[[0,null],[1,{"error":"x"}],[2,{"found":false,"id":"T0002","status":"not_found"}]]}`,
		`{"data":[[0,1],[1,2]]}`, `{"data":[[2,1],[1,2],[0]]}`, `{"data":null}`, `[]`, ``, `{"data":[[0,{"id":"T0000"`,
	} {
		f.Add([]byte(seed))
	}
	o, ids := testOracle(f, 3)
	d := mustSFClient(f, "http://127.0.0.1:1", o)
	f.Fuzz(func(t *testing.T, body []byte) {
		p := newPass("fuzz")
		d.check(p, "fuzz:1", ids, body)
		if got := p.right.Load() + p.failed.Load() + p.wrong.Load(); got != int64(len(ids)) {
			t.Errorf("rows judged: got %d; want %d", got, len(ids))
		}
	})
}
