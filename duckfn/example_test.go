package duckfn_test

import (
	"context"
	"database/sql"
	"fmt"

	_ "github.com/duckdb/duckdb-go/v2"

	"github.com/snowgate/snowgate/duckfn"
	"github.com/snowgate/snowgate/locapi"
	"github.com/snowgate/snowgate/sim"
	"github.com/snowgate/snowgate/stack"
)

// A DuckDB session with resolve_location, answered by a simulated
// provider: 404 for every ID, so only the not-found object shows.
func ExampleRegister() {
	provider, err := sim.Start(sim.Config{NotFoundRatio: 1})
	if err != nil {
		panic(err)
	}
	defer provider.Close()
	parts, err := stack.New(stack.Config{
		Provider: locapi.Config{URL: provider.URL + sim.EntitiesPath + "{id}?select=id,label,location"},
	}, nil)
	if err != nil {
		panic(err)
	}
	defer parts.Close()

	ctx := context.Background()
	db, err := sql.Open("duckdb", "") // in memory
	if err != nil {
		panic(err)
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		panic(err)
	}
	defer conn.Close()
	if err := duckfn.Register(ctx, conn, parts.Resolver, duckfn.Options{NotFoundObject: true}); err != nil {
		panic(err)
	}
	rows, err := conn.QueryContext(ctx, `SELECT id, resolve_location(id)->>'status' FROM (VALUES ('Q1'), (NULL)) t(id) ORDER BY id`)
	if err != nil {
		panic(err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, status sql.NullString
		if err := rows.Scan(&id, &status); err != nil {
			panic(err)
		}
		fmt.Println(id.String, id.Valid, status.String, status.Valid)
	}
	// Output:
	// Q1 true not_found true
	//  false  false
}
