package loader

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/snowgate/snowgate/cache"
	"github.com/snowgate/snowgate/locapi"
)

// TestViaResolveEachStreamsInBatches streams IDs through one ResolveEach:
// every ID gets one answer, batches stay within BatchSize and InFlight,
// and an invalid ID is answered without a request.
func TestViaResolveEachStreamsInBatches(t *testing.T) {
	g, srv := newFakeGateway(t)
	v, err := NewVia(srv.URL, ViaConfig{BatchSize: 20, InFlight: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	var sent []string
	for i := range 300 {
		sent = append(sent, fmt.Sprintf("%s%d", []string{"a", "nf", "nl", "err"}[i%4], i))
	}
	sent = append(sent, "bad\x01id")
	ids := make(chan string)
	go func() {
		defer close(ids)
		for _, id := range sent {
			ids <- id
		}
	}()
	var mu sync.Mutex
	got := map[string]cache.Outcome{}
	answers := 0
	v.ResolveEach(t.Context(), ids, func(id string, o cache.Outcome) {
		mu.Lock()
		defer mu.Unlock()
		got[id] = o
		answers++
	})
	if answers != len(sent) || len(got) != len(sent) {
		t.Fatalf("answers = %d for %d distinct IDs; want %d for %d", answers, len(got), len(sent), len(sent))
	}
	for _, id := range sent[:300] {
		o := got[id]
		var want locapi.Status
		switch id[0] {
		case 'a':
			want = locapi.Found
		case 'n':
			want = map[byte]locapi.Status{'f': locapi.NotFound, 'l': locapi.NoLocation}[id[1]]
		case 'e':
			if o.Err == nil {
				t.Errorf("%s: got %+v; want an error", id, o.Entry)
			}
			continue
		}
		if o.Err != nil || o.Status != want {
			t.Errorf("%s: got %+v, %v; want %v", id, o.Entry, o.Err, want)
		}
	}
	if o := got["bad\x01id"]; !errors.Is(o.Err, locapi.ErrInvalidID) {
		t.Errorf("invalid ID: err = %v; want %v", o.Err, locapi.ErrInvalidID)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	rows := 0
	for _, n := range g.sizes {
		if n > 20 {
			t.Errorf("a batch of %d IDs; want at most 20", n)
		}
		rows += n
	}
	if rows != 300 || g.maxInFlight > 2 {
		t.Errorf("gateway saw %d rows, %d requests at once; want 300 rows, at most 2 at once", rows, g.maxInFlight)
	}
}

// TestViaResolveEachStopsWithCtx cancels the stream while its batches are
// held at the gateway: every ID taken is answered with ctx's error before
// ResolveEach returns, and no answer comes after.
func TestViaResolveEachStopsWithCtx(t *testing.T) {
	g, srv := newFakeGateway(t)
	held := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	g.answer = func(w http.ResponseWriter, rows [][2]any) {
		once.Do(func() { close(held) })
		<-release
		writeAnswer(w, rows)
	}
	defer close(release)
	v, err := NewVia(srv.URL, ViaConfig{BatchSize: 5, InFlight: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	ids := make(chan string, 100)
	for i := range 100 {
		ids <- fmt.Sprintf("a%d", i)
	}
	ctx, cancel := context.WithCancel(t.Context())
	var answered atomic.Int64
	var returned atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		v.ResolveEach(ctx, ids, func(id string, o cache.Outcome) {
			if returned.Load() {
				t.Errorf("fn(%s) called after ResolveEach returned", id)
			}
			if !errors.Is(o.Err, context.Canceled) {
				t.Errorf("%s: err = %v; want %v", id, o.Err, context.Canceled)
			}
			answered.Add(1)
		})
		returned.Store(true)
	}()
	<-held
	cancel()
	<-done
	taken := int64(100 - len(ids))
	if answered.Load() != taken || taken < 5 {
		t.Errorf("answered %d of %d IDs taken; want all of them, and at least the held batch of 5", answered.Load(), taken)
	}
}
