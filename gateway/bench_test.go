package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/snowgate/snowgate/cache"
	"github.com/snowgate/snowgate/locapi"
)

const hotRows = 4096

// hotResolver is a cache where every ID is a hit: the gateway's own cost is
// what is measured.
type hotResolver map[string]*cache.Entry

func (h hotResolver) ResolveMany(_ context.Context, ids []string) ([]cache.Outcome, cache.Stats) {
	outs := make([]cache.Outcome, len(ids))
	for i, id := range ids {
		outs[i] = cache.Outcome{Entry: h[id], Hit: true}
	}
	return outs, cache.Stats{IDs: len(ids), Distinct: len(ids), Hits: len(ids)}
}

// hotBatch returns a 4,096-row body of short VARCHAR IDs (the shape
// Snowflake sends) and a resolver holding a full record for each.
func hotBatch(tb testing.TB) ([]byte, hotResolver) {
	res := hotResolver{}
	ids := make([]string, hotRows)
	for i := range ids {
		id := fmt.Sprintf("Q%07d", i*7919)
		ids[i] = id
		rec := hotRecord(id, i)
		js, err := json.Marshal(rec)
		if err != nil {
			tb.Fatal(err)
		}
		res[id] = &cache.Entry{Status: locapi.Found, Record: rec, JSON: js}
	}
	return []byte(batchBody(ids)), res
}

// hotRecord is the full record of entity n: every field set, as most are.
func hotRecord(id string, n int) *locapi.Record {
	s := func(v string) *string { return &v }
	lat, lon := 52.2297+float64(n%10000)/1e4, 21.0122-float64(n%10000)/1e4
	return &locapi.Record{ID: id, Label: s("Entity " + id), GeoLabel: s("Warsaw, Masovian Voivodeship"),
		StreetAddress: s(fmt.Sprintf("ul. Marszałkowska %d", n%300)), CityLabel: s("Warsaw"),
		PostalCode: s("00-001"), CountryLabel: s("Poland"), Latitude: &lat, Longitude: &lon}
}

// countingWriter is a ResponseWriter that only counts, so the benchmark
// measures the server, not a recorder's buffer growth.
type countingWriter struct {
	h    http.Header
	code int
	n    int
}

func (w *countingWriter) Header() http.Header         { return w.h }
func (w *countingWriter) WriteHeader(code int)        { w.code = code }
func (w *countingWriter) Write(p []byte) (int, error) { w.n += len(p); return len(p), nil }

func benchHandler(b *testing.B, h http.Handler, body []byte, headers map[string]string) {
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	w := &countingWriter{h: http.Header{}}
	for b.Loop() {
		req := httptest.NewRequestWithContext(b.Context(), http.MethodPost, defaultPath, bytes.NewReader(body))
		for k, v := range headers {
			req.Header.Set(k, v)
		}
		clear(w.h)
		w.code, w.n = 0, 0
		h.ServeHTTP(w, req)
		if w.code != http.StatusOK || w.n == 0 {
			b.Fatalf("got %d with %d bytes; want 200 with an answer", w.code, w.n)
		}
	}
	b.ReportMetric(float64(b.N)*hotRows/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkServeHot: a 4,096-row batch whose IDs are all cached, through the
// gin engine in process; "naive" is the same work done the obvious way with
// encoding/json, for the ratio.
func BenchmarkServeHot(b *testing.B) {
	body, res := hotBatch(b)
	s := newServer(b, res, Config{})
	b.Run("gateway", func(b *testing.B) { benchHandler(b, s.Handler(), body, nil) })
	b.Run("gateway-gzip", func(b *testing.B) {
		benchHandler(b, s.Handler(), body, map[string]string{"Accept-Encoding": "gzip"})
	})
	b.Run("naive", func(b *testing.B) {
		e := gin.New()
		e.POST(defaultPath, naiveHandler(res))
		benchHandler(b, e, body, nil)
	})
}

// naiveHandler decodes into [][]json.RawMessage and encodes a
// map[string]any per row: the baseline BenchmarkServeHot is compared with.
func naiveHandler(res Resolver) gin.HandlerFunc {
	return func(c *gin.Context) {
		var req struct {
			Data [][]json.RawMessage `json:"data"`
		}
		dec := json.NewDecoder(c.Request.Body)
		dec.UseNumber()
		if err := dec.Decode(&req); err != nil {
			c.String(http.StatusBadRequest, err.Error())
			return
		}
		rows := make([]json.Number, len(req.Data))
		ids := make([]string, len(req.Data))
		for i, r := range req.Data {
			var id any
			if len(r) != 2 || json.Unmarshal(r[0], &rows[i]) != nil || json.Unmarshal(r[1], &id) != nil {
				c.String(http.StatusBadRequest, "bad row")
				return
			}
			ids[i] = fmt.Sprint(id)
		}
		outs, _ := res.ResolveMany(c, ids)
		data := make([]any, len(outs))
		for i, o := range outs {
			var v any
			if o.Entry != nil && o.Status == locapi.Found {
				r := o.Record
				v = map[string]any{"id": r.ID, "label": r.Label, "geo_label": r.GeoLabel,
					"street_address": r.StreetAddress, "city_label": r.CityLabel, "postal_code": r.PostalCode,
					"country_label": r.CountryLabel, "latitude": r.Latitude, "longitude": r.Longitude}
			}
			data[i] = []any{rows[i], v}
		}
		c.Header("Content-Type", "application/json")
		c.Status(http.StatusOK)
		if err := json.NewEncoder(c.Writer).Encode(map[string]any{"data": data}); err != nil {
			_ = c.Error(err) // gin keeps it on the context; the return is only for chaining
		}
	}
}

// TestNaiveAgrees keeps the baseline honest: it answers the same values.
func TestNaiveAgrees(t *testing.T) {
	body, res := hotBatch(t)
	e := gin.New()
	e.POST(defaultPath, naiveHandler(res))
	naive := do(t, e, request{raw: body})
	fast := do(t, newServer(t, res, Config{}).Handler(), request{raw: body})
	var a, b any
	if err := json.Unmarshal(naive.Body.Bytes(), &a); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(fast.Body.Bytes(), &b); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Fatal("naive and gateway answers differ")
	}
}
