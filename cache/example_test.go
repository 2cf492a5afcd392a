package cache_test

import (
	"context"
	"fmt"

	"github.com/snowgate/snowgate/cache"
	"github.com/snowgate/snowgate/locapi"
)

func ExampleResolver_ResolveMany() {
	// A stand-in provider; in snowgate this is a *locapi.Client.
	provider := cache.LookupFunc(func(ctx context.Context, id string) (locapi.Result, error) {
		if err := locapi.ValidateID(id, 0); err != nil {
			return locapi.Result{}, err
		}
		if id == "W404" {
			return locapi.Result{Status: locapi.NotFound}, nil
		}
		city := "Warsaw"
		return locapi.Result{Status: locapi.Found, Record: &locapi.Record{ID: id, CityLabel: &city}}, nil
	})
	r, err := cache.New(provider, cache.Config{}, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer r.Close()

	ctx := context.Background()
	for _, batch := range [][]string{{"W1", "W404", "W1", ""}, {"W1", "W404"}} {
		out, st := r.ResolveMany(ctx, batch)
		for i, o := range out {
			switch {
			case o.Err != nil:
				fmt.Printf("%q: error: %v\n", batch[i], o.Err)
			case o.JSON != nil:
				fmt.Printf("%q: %v hit=%v %s\n", batch[i], o.Status, o.Hit, o.JSON)
			default:
				fmt.Printf("%q: %v hit=%v\n", batch[i], o.Status, o.Hit)
			}
		}
		fmt.Printf("%+v\n", st)
	}
	// Output:
	// "W1": found hit=false {"id":"W1","label":null,"geo_label":null,"street_address":null,"city_label":"Warsaw","postal_code":null,"country_label":null,"latitude":null,"longitude":null}
	// "W404": not_found hit=false
	// "W1": found hit=false {"id":"W1","label":null,"geo_label":null,"street_address":null,"city_label":"Warsaw","postal_code":null,"country_label":null,"latitude":null,"longitude":null}
	// "": error: invalid id: empty
	// {IDs:4 Distinct:3 Hits:0 L2Hits:0 Coalesced:0 Fetched:2 Invalid:1 Abandoned:0 Requests:0 Failed:1}
	// "W1": found hit=true {"id":"W1","label":null,"geo_label":null,"street_address":null,"city_label":"Warsaw","postal_code":null,"country_label":null,"latitude":null,"longitude":null}
	// "W404": not_found hit=true
	// {IDs:2 Distinct:2 Hits:2 L2Hits:0 Coalesced:0 Fetched:0 Invalid:0 Abandoned:0 Requests:0 Failed:0}
}
