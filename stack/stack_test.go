package stack

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/snowgate/snowgate/cache"
	"github.com/snowgate/snowgate/cluster"
	"github.com/snowgate/snowgate/cluster/redistest"
	"github.com/snowgate/snowgate/locapi"
)

// provider is a fake location API that counts requests and the most it
// had in flight at once.
type provider struct {
	srv                   *httptest.Server
	requests, now, inPeak atomic.Int64
}

func newProvider(t *testing.T) *provider {
	p := &provider{}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.requests.Add(1)
		n := p.now.Add(1)
		defer p.now.Add(-1)
		for m := p.inPeak.Load(); n > m && !p.inPeak.CompareAndSwap(m, n); m = p.inPeak.Load() {
		}
		time.Sleep(5 * time.Millisecond) // lets requests overlap, so the cap is what holds them back
		id := strings.TrimPrefix(r.URL.Path, "/api/v2/entities/")
		fmt.Fprintf(w, `{"id": %q, "label": "L %s", "location": {"cityLabel": "C"}}`, id, id)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *provider) url() string { return p.srv.URL + "/api/v2/entities/{id}" }

func TestNewRejectsASecondConcurrency(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"provider's", Config{Provider: locapi.Config{URL: "http://127.0.0.1:1/{id}", Concurrency: 8}}, "Config.Concurrency"},
		{"cache's", Config{Provider: locapi.Config{URL: "http://127.0.0.1:1/{id}"}, Cache: cache.Config{Concurrency: 8}}, "Config.Concurrency"},
		{"negative", Config{Provider: locapi.Config{URL: "http://127.0.0.1:1/{id}"}, Concurrency: -1}, "negative"},
		{"no URL", Config{}, "provider client"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := New(tt.cfg, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				if p != nil {
					p.Close()
				}
				t.Fatalf("New: got %v; want an error naming %q", err, tt.want)
			}
		})
	}
}

// TestConcurrencyBoundsProviderAndStream resolves a stream of distinct IDs
// and checks the one setting holds the provider's requests in flight.
func TestConcurrencyBoundsProviderAndStream(t *testing.T) {
	prov := newProvider(t)
	const conc = 3
	p, err := New(Config{Provider: locapi.Config{URL: prov.url()}, Concurrency: conc}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ids := make(chan string)
	go func() {
		defer close(ids)
		for i := range 40 {
			ids <- fmt.Sprintf("Q%d", i)
		}
	}()
	var mu sync.Mutex
	found := 0
	p.Resolver.ResolveEach(t.Context(), ids, func(id string, o cache.Outcome) {
		if o.Err != nil || o.Status != locapi.Found || o.Record.ID != id {
			t.Errorf("%s: got %+v, %v; want found with its ID", id, o.Entry, o.Err)
		}
		mu.Lock()
		found++
		mu.Unlock()
	})
	if found != 40 || prov.requests.Load() != 40 {
		t.Errorf("found %d with %d requests; want 40 and 40", found, prov.requests.Load())
	}
	if peak := prov.inPeak.Load(); peak > conc {
		t.Errorf("requests in flight at most %d; want at most %d", peak, conc)
	}
	if s := p.Client.Stats(); s.Requests != 40 {
		t.Errorf("client counted %d requests; want 40", s.Requests)
	}
}

func TestBadRedisURLIsTypedAndHidesThePassword(t *testing.T) {
	_, err := New(Config{Provider: locapi.Config{URL: "http://127.0.0.1:1/{id}", Rate: 10},
		RedisURL: "http://user:s3cret@127.0.0.1:1"}, nil)
	var ue *RedisURLError
	if !errors.As(err, &ue) || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("got %v; want a *RedisURLError without the password", err)
	}
}

// TestRedisSharesTheCache builds two stacks on one Redis: what one
// resolved, the other answers from the shared L2 with no provider request.
func TestRedisSharesTheCache(t *testing.T) {
	rds := redistest.Start(t)
	prov := newProvider(t)
	build := func() *Parts {
		p, err := New(Config{Provider: locapi.Config{URL: prov.url(), Rate: 1000, Burst: 10},
			RedisURL: rds.URL, Redis: cluster.Config{Prefix: "stacktest:", Timeout: 10 * time.Second}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		return p
	}
	a, b := build(), build()
	if a.Shared == nil || b.Shared == nil {
		t.Fatal("Shared is nil with RedisURL set")
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute) // a hang guard, not a speed check
	defer cancel()
	if o := a.Resolver.Resolve(ctx, "Q1"); o.Err != nil || o.Hit {
		t.Fatalf("first stack: got hit %v, %v; want fetched", o.Hit, o.Err)
	}
	if o := b.Resolver.Resolve(ctx, "Q1"); o.Err != nil || !o.Hit || prov.requests.Load() != 1 {
		t.Fatalf("second stack: got hit %v, %v after %d requests; want a hit from Redis after 1", o.Hit, o.Err, prov.requests.Load())
	}
}
