package sim

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// serve sends one request straight to the handler; target is the raw
// request URI, parsed exactly as the HTTP server parses it.
func serve(s *Server, method, target string, header http.Header) *httptest.ResponseRecorder {
	r := httptest.NewRequestWithContext(context.Background(), method, target, nil) // a handler call, nothing to cancel
	for k, v := range header {
		r.Header[k] = v
	}
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	return w
}

func TestPathDecoding(t *testing.T) {
	tests := []struct {
		name   string
		target string
		status int
		id     string // the ID the simulator must have seen, for 200s
	}{
		{"plain", "/api/v2/entities/WH-1?select=id,label,location", 200, "WH-1"},
		{"no query", "/api/v2/entities/WH-1", 200, "WH-1"},
		{"escaped slash", "/api/v2/entities/a%2Fb?select=id,label,location", 200, "a/b"},
		{"dot dot escaped", "/api/v2/entities/..%2F..%2Fadmin?select=id,label,location", 200, "../../admin"},
		{"query chars", "/api/v2/entities/x%3Fy=1%23z?select=id,label,location", 200, "x?y=1#z"},
		{"escaped percent", "/api/v2/entities/%252F?select=id,label,location", 200, "%2F"},
		{"space", "/api/v2/entities/a%20b", 200, "a b"},
		{"plus stays plus", "/api/v2/entities/a+b", 200, "a+b"},
		{"unicode", "/api/v2/entities/Z%C3%BCrich%20%E6%9D%B1%E4%BA%AC", 200, "Zürich 東京"},
		{"escaped dots are an id", "/api/v2/entities/%2E%2E", 200, ".."},
		{"raw slash is two segments", "/api/v2/entities/a/b", 404, ""},
		{"raw dot dot", "/api/v2/entities/..", 404, ""},
		{"raw dot", "/api/v2/entities/.", 404, ""},
		{"empty id", "/api/v2/entities/", 404, ""},
		{"collection", "/api/v2/entities", 404, ""},
		{"other route", "/api/v2/other/x", 404, ""},
		{"root", "/", 404, ""},
		{"trailing slash", "/api/v2/entities/x/", 404, ""},
		{"escaped NUL", "/api/v2/entities/a%00b", 400, ""},
		{"escaped newline", "/api/v2/entities/a%0Ab", 400, ""},
		{"invalid UTF-8", "/api/v2/entities/%FF", 400, ""},
		{"unknown select field", "/api/v2/entities/x?select=id,secret", 400, ""},
		{"empty select", "/api/v2/entities/x?select=", 400, ""},
		{"bad query escape", "/api/v2/entities/x?select=%zz", 400, ""},
		{"other params ignored", "/api/v2/entities/x?select=id,label,location&lang=de", 200, "x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustNew(t, Config{})
			w := serve(s, "GET", tt.target, nil)
			if w.Code != tt.status {
				t.Fatalf("status: got %d; want %d (body %s)", w.Code, tt.status, w.Body)
			}
			if got := w.Header().Get("X-Snowgate-Simulator"); got != "true" {
				t.Errorf("X-Snowgate-Simulator: got %q; want true", got)
			}
			if !json.Valid(w.Body.Bytes()) {
				t.Errorf("body is not JSON: %s", w.Body)
			}
			if tt.status == 400 && !strings.Contains(tt.target, "?") { // a rejected id, not a bad select
				if _, want := s.Expected("\x00"); w.Body.String() != string(want) {
					t.Errorf("body of a rejected id: got %s; want Expected's %s", w.Body, want)
				}
			}
			if tt.status != 200 {
				if s.Admitted() != 0 {
					t.Errorf("Admitted: got %d; want 0 for a rejected request", s.Admitted())
				}
				return
			}
			var e entity
			if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.ID != tt.id {
				t.Errorf("id in body: got %q (%v); want %q", e.ID, err, tt.id)
			}
			if got := s.Requests(tt.id); got != 1 {
				t.Errorf("Requests(%q): got %d; want 1", tt.id, got)
			}
		})
	}
}

func TestAnswersMatchExpected(t *testing.T) {
	s := mustNew(t, Config{NotFoundRatio: 0.25, NoLocationRatio: 0.25, PermanentFailRatio: 0.25})
	for _, k := range []Kind{Found, NotFound, NoLocation, PermanentFail} {
		t.Run(k.String(), func(t *testing.T) {
			s.Reset()
			id := idOfKind(t, s, k, "Kraków/ü")
			w := serve(s, "GET", EntityURL("", id), http.Header{"Accept": {"application/json"}})
			wantKind, wantBody := s.Expected(id)
			if w.Code != wantKind.HTTPStatus() {
				t.Errorf("status: got %d; want %d", w.Code, wantKind.HTTPStatus())
			}
			if got := w.Body.String(); got != string(wantBody) {
				t.Errorf("body:\ngot  %s\nwant %s", got, wantBody)
			}
			if got, want := w.Header().Get("Content-Type"), "application/json; charset=utf-8"; got != want {
				t.Errorf("Content-Type: got %q; want %q", got, want)
			}
			if got := s.Status(w.Code); got != 1 {
				t.Errorf("Status(%d): got %d; want 1", w.Code, got)
			}
		})
	}
}

func TestSelectProjects(t *testing.T) {
	s := mustNew(t, Config{})
	tests := []struct {
		query string
		keys  []string
	}{
		{"select=id", []string{"id"}},
		{"select=id,label", []string{"id", "label"}},
		{"select=location,id", []string{"id", "location"}},
		{"select=id&select=label", []string{"id", "label"}},
		{"select=%20id%20,label", []string{"id", "label"}},
		{"select=id,label,location", []string{"id", "label", "location"}},
		{"", []string{"id", "label", "location"}},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			w := serve(s, "GET", "/api/v2/entities/WH-7?"+tt.query, nil)
			var m map[string]json.RawMessage
			if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
				t.Fatalf("decode %s: %v", w.Body, err)
			}
			var keys []string
			for _, k := range []string{"id", "label", "location"} {
				if _, ok := m[k]; ok {
					keys = append(keys, k)
				}
			}
			if got, want := strings.Join(keys, ","), strings.Join(tt.keys, ","); got != want || len(m) != len(tt.keys) {
				t.Errorf("keys: got %v; want %s", m, want)
			}
		})
	}
}

func TestMethodsAuthAccept(t *testing.T) {
	const target = "/api/v2/entities/WH-1?select=id,label,location"
	tests := []struct {
		name   string
		method string
		header http.Header
		status int
		check  string // header that must be set
	}{
		{"good token", "GET", http.Header{"Authorization": {"Bearer s3cret"}}, 200, ""},
		{"lower-case scheme", "GET", http.Header{"Authorization": {"bearer s3cret"}}, 200, ""},
		{"HEAD", "HEAD", http.Header{"Authorization": {"Bearer s3cret"}}, 200, ""},
		{"no token", "GET", nil, 401, "WWW-Authenticate"},
		{"wrong token", "GET", http.Header{"Authorization": {"Bearer nope"}}, 401, "WWW-Authenticate"},
		{"token prefix", "GET", http.Header{"Authorization": {"Bearer s3cre"}}, 401, "WWW-Authenticate"},
		{"basic scheme", "GET", http.Header{"Authorization": {"Basic s3cret"}}, 401, "WWW-Authenticate"},
		{"POST", "POST", http.Header{"Authorization": {"Bearer s3cret"}}, 405, "Allow"},
		{"DELETE", "DELETE", nil, 405, "Allow"},
		{"accept xml", "GET", http.Header{"Authorization": {"Bearer s3cret"}, "Accept": {"application/xml"}}, 406, ""},
		{"accept any", "GET", http.Header{"Authorization": {"Bearer s3cret"}, "Accept": {"text/html, */*;q=0.1"}}, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustNew(t, Config{Token: "s3cret"})
			w := serve(s, tt.method, target, tt.header)
			if w.Code != tt.status {
				t.Fatalf("status: got %d; want %d (%s)", w.Code, tt.status, w.Body)
			}
			if tt.check != "" && w.Header().Get(tt.check) == "" {
				t.Errorf("header %s missing; got %v", tt.check, w.Header())
			}
			if strings.Contains(w.Body.String(), "s3cret") {
				t.Errorf("body leaks the token: %s", w.Body)
			}
		})
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"negative ratio", Config{NotFoundRatio: -0.1}},
		{"ratio above one", Config{ErrorRate: 1.5}},
		{"ID ratios sum above one", Config{NotFoundRatio: 0.6, NoLocationRatio: 0.6}},
		{"fault rates sum above one", Config{ErrorRate: 0.5, HangRate: 0.3, SlowRate: 0.3}},
		{"negative rate", Config{Rate: -1}},
		{"infinite rate", Config{Rate: posInf()}},
		{"negative latency", Config{Latency: -1}},
		{"negative burst", Config{Rate: 10, Burst: -1}},
		{"negative max paths", Config{MaxPaths: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.cfg); err == nil {
				t.Errorf("New(%+v): got nil error; want one", tt.cfg)
			}
		})
	}
	t.Run("NaN", func(t *testing.T) {
		var zero float64
		if _, err := New(Config{HangRate: zero / zero}); err == nil {
			t.Error("New with NaN HangRate: got nil error; want one")
		}
	})
}

func posInf() float64 { var zero float64; return 1 / zero }

func FuzzServeHTTP(f *testing.F) {
	for _, p := range []string{"WH-1", "a%2Fb", "..%2F..", "%FF", "a/b", "%zz", "", "x?select=id", "%2E"} {
		f.Add(p)
	}
	s := mustNew(f, Config{NotFoundRatio: 0.2, NoLocationRatio: 0.2})
	f.Fuzz(func(t *testing.T, suffix string) {
		target := EntitiesPath + suffix
		r, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://sim"+target, nil)
		if err != nil {
			return // not a URL any client could send
		}
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		switch w.Code {
		case 200, 400, 404:
		default:
			t.Fatalf("%q: status %d; want 200, 400 or 404", target, w.Code)
		}
		if !json.Valid(w.Body.Bytes()) {
			t.Fatalf("%q: body not JSON: %s", target, w.Body)
		}
		if w.Code == 200 {
			var e entity
			if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil {
				t.Fatal(err)
			}
			seg := strings.TrimPrefix(r.URL.EscapedPath(), EntitiesPath)
			if strings.Contains(seg, "/") || e.ID == "" {
				t.Fatalf("%q: answered 200 for id %q from segment %q", target, e.ID, seg)
			}
		}
	})
}
