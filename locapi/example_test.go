package locapi_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/snowgate/snowgate/locapi"
)

func ExampleClient_Lookup() {
	provider := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := strings.TrimPrefix(r.URL.Path, "/api/v2/entities/")
		if id != "a/b" {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		fmt.Fprintf(w, `{"id":%q,"label":"Depot","location":{"cityLabel":"Kraków","latitude":50.06,"longitude":null}}`, id)
	}))
	defer provider.Close()

	c, err := locapi.New(locapi.Config{
		URL:  provider.URL + "/api/v2/entities/{id}?select=id,label,location",
		Rate: 50, // requests/s, shared by every Lookup of this client
	}, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()

	ctx := context.Background()
	res, err := c.Lookup(ctx, "a/b") // sent as /api/v2/entities/a%2Fb
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(res.Status, *res.Record.CityLabel, *res.Record.Latitude, res.Record.Longitude == nil)

	res, _ = c.Lookup(ctx, "nope")
	fmt.Println(res.Status)

	_, err = c.Lookup(ctx, "..")
	fmt.Println(errors.Is(err, locapi.ErrInvalidID))
	// Output:
	// found Kraków 50.06 true
	// not_found
	// true
}
