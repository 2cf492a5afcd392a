package gateway

import (
	"bytes"
	stdgzip "compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/klauspost/compress/gzip"

	"github.com/snowgate/snowgate/cache"
	"github.com/snowgate/snowgate/locapi"
)

// gunzipStd inflates with the standard library's decoder, not the one the
// gateway reads requests with, so the two encoders' streams are checked by
// a decoder neither was written against.
func gunzipStd(t testing.TB, gz []byte) []byte {
	t.Helper()
	zr, err := stdgzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatalf("gzip header: %v", err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("inflating: %v", err)
	}
	return out
}

// mixedResolver answers ids by their first letter: F found (a full
// record), N not found, L no location, E an error, W a found record whose
// JSON is not shaped as EncodeRecord makes them.
type mixedResolver struct{ entries map[string]*cache.Entry }

func newMixed(t testing.TB, ids []string) *mixedResolver {
	m := &mixedResolver{entries: map[string]*cache.Entry{}}
	for i, id := range ids {
		switch id[0] {
		case 'F':
			rec := hotRecord(id, i)
			if i%3 == 0 {
				rec.Label, rec.Latitude = nil, nil // nulls between the keys
			}
			js, err := EncodeRecord(rec)
			if err != nil {
				t.Fatal(err)
			}
			m.entries[id] = &cache.Entry{Status: locapi.Found, Record: rec, JSON: js}
		case 'W':
			m.entries[id] = &cache.Entry{Status: locapi.Found, Record: &locapi.Record{ID: id},
				JSON: []byte(`{"other":"shape \"` + id + `\"","id":1}`)}
		case 'N':
			m.entries[id] = &cache.Entry{Status: locapi.NotFound}
		case 'L':
			m.entries[id] = &cache.Entry{Status: locapi.NoLocation, Record: &locapi.Record{ID: id}}
		}
	}
	return m
}

func (m *mixedResolver) ResolveMany(_ context.Context, ids []string) ([]cache.Outcome, cache.Stats) {
	out := make([]cache.Outcome, len(ids))
	for i, id := range ids {
		if e := m.entries[id]; e != nil {
			out[i] = cache.Outcome{Entry: e, Hit: true}
		} else {
			out[i] = cache.Outcome{Err: fmt.Errorf("lookup of %s failed", id)}
		}
	}
	return out, cache.Stats{Distinct: len(ids)}
}

// TestGzipFastInflates: the fast encoder's answers inflate, with a decoder
// of another library, to exactly the plain answer, whatever the rows are:
// found records with and without nulls, other outcomes between them,
// records of another shape, a gap wider than deflate's window between two
// records, and records sent a second time from their kept form.
func TestGzipFastInflates(t *testing.T) {
	long := strings.Repeat("x", 600)
	cases := map[string][]string{
		"found only":    idsOf("F", 300),
		"mixed":         interleave(idsOf("F", 200), idsOf("N", 50), idsOf("L", 50), idsOf("E", 20), idsOf("W", 10)),
		"beyond window": append(append(idsOf("F", 3), idsOf("N"+long, 80)...), idsOf("F", 3)...),
		"one row":       {"F0"},
		"no found":      interleave(idsOf("N", 10), idsOf("E", 10)),
		"unicode":       {"F\u00e9", "F\u6771\u4eac", "F\"quote\\", "F\u2028"},
	}
	for name, ids := range cases {
		t.Run(name, func(t *testing.T) {
			s := newServer(t, newMixed(t, ids), Config{NotFound: NotFoundObject, OnRowError: RowErrorObject})
			for range 2 { // the second time, every record is packed already
				res := s.resolveLocation(context.Background(), batchOf(ids), snowflakeProto, false)
				if res.status != 200 {
					t.Fatalf("status %d: %s", res.status, res.body)
				}
				if !json.Valid(res.body) {
					t.Fatalf("plain answer is not JSON: %.200s", res.body)
				}
				for _, sparse := range []bool{false, true} {
					in := res
					if sparse {
						in = s.resolveLocation(context.Background(), batchOf(ids), snowflakeProto, true)
					}
					gz := gzipFast(in.body, in.spans, in.sparse, nil)
					if got := gunzipStd(t, gz); !bytes.Equal(got, res.body) {
						t.Fatalf("sparse %v: inflated answer differs from the plain one:\n got %.300q\nwant %.300q", sparse, got, res.body)
					}
				}
			}
		})
	}
}

func idsOf(prefix string, n ...int) []string {
	count := 1
	if len(n) > 0 {
		count = n[0]
	}
	out := make([]string, count)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return out
}

// interleave deals the lists' IDs out in turn.
func interleave(lists ...[]string) []string {
	var out []string
	for i := 0; ; i++ {
		added := false
		for _, l := range lists {
			if i < len(l) {
				out, added = append(out, l[i]), true
			}
		}
		if !added {
			return out
		}
	}
}

func batchOf(ids []string) *batch {
	b := newBatch(len(ids))
	for i, id := range ids {
		b.add(int64(i), id, idText, nil)
	}
	return b
}

// FuzzGzipFast: for any record text (shaped as EncodeRecord's or not) and
// any bytes around it, the stream inflates to exactly the answer.
func FuzzGzipFast(f *testing.F) {
	js, _ := EncodeRecord(hotRecord("Q1", 1))
	f.Add([]byte(`{"data":[[0,`), js, []byte(`],[1,null]]}`))
	f.Add([]byte(``), []byte(`{"id":"a","label":"x,\"label\":"}`), []byte(`]`))
	f.Add([]byte(`[`), []byte(`{"id":`), []byte{0xff, 0, 1})
	f.Fuzz(func(t *testing.T, pre, rec, post []byte) {
		var body []byte
		var spans []span
		entry := &cache.Entry{JSON: rec}
		for i := range 3 {
			body = append(body, pre...)
			spans = append(spans, span{at: len(body), memo: &entry.Memo, js: rec})
			body = append(body, rec...)
			if i == 1 {
				body = append(body, post...)
			}
		}
		if got := gunzipStd(t, gzipFast(body, spans, false, nil)); !bytes.Equal(got, body) {
			t.Fatalf("inflated %q; want %q", got, body)
		}
	})
}

// BenchmarkAnswerGzip compresses one 4,096-row answer of simulator records
// (BenchmarkServeHTTP's) with the gateway's encoder and with klauspost's
// BestSpeed, which it replaced: time per answer and the compression ratio.
func BenchmarkAnswerGzip(b *testing.B) {
	ld := newHTTPLoad(b, false)
	s := newServer(b, ld.res, Config{})
	bt, _, err := parseBatch(ld.bodies[0].Body, 1)
	if err != nil {
		b.Fatal(err)
	}
	res := s.resolveLocation(context.Background(), bt, snowflakeProto, false)
	sp := s.resolveLocation(context.Background(), bt, snowflakeProto, true)
	b.Run("gateway", func(b *testing.B) {
		var out []byte
		b.SetBytes(int64(len(res.body)))
		for b.Loop() {
			out = gzipFast(sp.body, sp.spans, true, out[:0])
		}
		if !bytes.Equal(gunzipStd(b, out), res.body) {
			b.Fatal("the answer does not inflate to itself")
		}
		b.ReportMetric(float64(len(res.body))/float64(len(out)), "ratio")
	})
	b.Run("best-speed", func(b *testing.B) {
		zw, _ := gzip.NewWriterLevel(nil, gzip.BestSpeed)
		var buf bytes.Buffer
		b.SetBytes(int64(len(res.body)))
		for b.Loop() {
			buf.Reset()
			zw.Reset(&buf)
			_, _ = zw.Write(res.body)
			_ = zw.Close()
		}
		b.ReportMetric(float64(len(res.body))/float64(buf.Len()), "ratio")
	})
}

// TestCRCCombine: the checksum of a||b made from the checksums of a and b
// is hash/crc32's, for lengths around every power of two gzipFast meets.
func TestCRCCombine(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 2, 3, 7, 8, 9, 63, 64, 65, 255, 256, 1000, 4096, 70000} {
		a, b := make([]byte, rng.IntN(300)), make([]byte, n)
		for i := range a {
			a[i] = byte(rng.Uint32())
		}
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		got := crcCombine(crc32.ChecksumIEEE(a), crc32.ChecksumIEEE(b), crcPow(len(b)))
		if want := crc32.ChecksumIEEE(append(a, b...)); got != want {
			t.Fatalf("len(a) %d, len(b) %d: combined %08x; want %08x", len(a), n, got, want)
		}
	}
}

// TestPackedOnceAcrossGoroutines: answers encoded at once from the same
// cached records pack each record once, share that form, and each
// inflates to its answer (run with -race).
func TestPackedOnceAcrossGoroutines(t *testing.T) {
	js, err := EncodeRecord(hotRecord("Q7", 7))
	if err != nil {
		t.Fatal(err)
	}
	entry := &cache.Entry{Status: locapi.Found, JSON: js}
	body := []byte(`{"data":[[0,],[1,]]}`)
	spans := []span{{at: 12, memo: &entry.Memo, js: js}, {at: 17, memo: &entry.Memo, js: js}}
	want := []byte(`{"data":[[0,` + string(js) + `],[1,` + string(js) + `]]}`)
	const n = 8
	outs := make([][]byte, n)
	packed := make([]*packedRecord, n)
	var wg sync.WaitGroup
	for g := range n {
		wg.Go(func() {
			sp := append([]span(nil), spans...)
			outs[g] = gzipFast(body, sp, true, nil)
			packed[g] = sp[0].packed
		})
	}
	wg.Wait()
	for g := range n {
		if packed[g] != packed[0] || packed[g] != packedOf(spans[0]) {
			t.Fatalf("goroutine %d used packed form %p; want the one kept, %p", g, packed[g], packed[0])
		}
		if got := gunzipStd(t, outs[g]); !bytes.Equal(got, want) {
			t.Fatalf("goroutine %d: inflated %q; want %q", g, got, want)
		}
	}
}
