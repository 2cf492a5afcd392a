package extfunc_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/snowgate/snowgate/extfunc"
)

// A client of an external-function service: encode a batch, post it (with
// retries and polling, as Snowflake would), check the answer.
func ExampleClient_Post() {
	// A service that upper-cases its one argument and is busy at first.
	busy := true
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if busy {
			busy = false
			w.Header().Set("Retry-After", "0")
			http.Error(w, "busy", http.StatusTooManyRequests)
			return
		}
		body, _ := io.ReadAll(r.Body)
		var req struct{ Data [][2]any }
		_ = json.Unmarshal(body, &req)
		for i := range req.Data {
			req.Data[i][1] = strings.ToUpper(req.Data[i][1].(string))
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"data": req.Data})
	}))
	defer srv.Close()

	c, err := extfunc.New(srv.URL+"/shout", extfunc.Config{
		Function: extfunc.Function{Name: "SHOUT", Signature: "(S VARCHAR)", ReturnType: "VARCHAR"},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	ids := []string{"warsaw", "toronto"}
	body, err := extfunc.EncodeColumn(ids)
	if err != nil {
		fmt.Println(err)
		return
	}
	answer, stats, err := c.Post(context.Background(), extfunc.Batch{QueryID: "q1", BatchID: "q1:0", Body: body})
	if err != nil {
		fmt.Println(err)
		return
	}
	values, err := extfunc.DecodeResponse(answer, len(ids))
	if err != nil {
		fmt.Println(err)
		return
	}
	for i, v := range values {
		fmt.Printf("%s -> %s\n", ids[i], v)
	}
	fmt.Printf("requests %d, throttled %d\n", stats.Requests, stats.Throttled)
	// Output:
	// warsaw -> "WARSAW"
	// toronto -> "TORONTO"
	// requests 2, throttled 1
}
