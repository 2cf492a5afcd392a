package gateway_test

import (
	"context"
	"fmt"
	"log"
	"net/http/httptest"
	"strings"

	"github.com/snowgate/snowgate/cache"
	"github.com/snowgate/snowgate/gateway"
	"github.com/snowgate/snowgate/locapi"
)

func ExampleNew() {
	// In production the resolver is a *cache.Resolver over a locapi.Client.
	res := gateway.ResolverFunc(func(_ context.Context, ids []string) ([]cache.Outcome, cache.Stats) {
		outs := make([]cache.Outcome, len(ids))
		for i, id := range ids {
			outs[i].Entry = &cache.Entry{Status: locapi.Found, JSON: []byte(`{"id":"` + id + `"}`)}
		}
		return outs, cache.Stats{IDs: len(ids)}
	})
	s, err := gateway.New(res, gateway.Config{}, nil)
	if err != nil {
		log.Fatal(err)
	}
	// An example has no test context; nothing here outlives main.
	req := httptest.NewRequestWithContext(context.Background(), "POST", "/resolve_location", strings.NewReader(`{"data":[[0,"Q1"],[1,null]]}`))
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, req)
	fmt.Println(w.Code, w.Body.String())
	// Output: 200 {"data":[[0,{"id":"Q1"}],[1,null]]}
}
