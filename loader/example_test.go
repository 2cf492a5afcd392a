package loader_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"

	_ "github.com/duckdb/duckdb-go/v2"

	"github.com/snowgate/snowgate/cache"
	"github.com/snowgate/snowgate/loader"
	"github.com/snowgate/snowgate/loader/duckdb"
	"github.com/snowgate/snowgate/locapi"
)

// A backfill of a small DuckDB table through a resolver. In production the
// resolver is a *cache.Resolver over a *locapi.Client, or a *loader.Via.
func Example() {
	dir, _ := os.MkdirTemp("", "snowgate-example")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "example.duckdb")

	db, _ := sql.Open("duckdb", path)
	_, _ = db.Exec(`CREATE TABLE MASTER_TABLE AS SELECT * FROM (VALUES (1), (2), (2), (3)) v(ID)`)
	db.Close()

	tables, err := loader.NewTables("master_table", "id", "standardized_locations")
	if err != nil {
		fmt.Println(err)
		return
	}
	wh, err := duckdb.Open(context.Background(), path, tables)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer wh.Close()
	res := loader.ResolverFunc(func(ctx context.Context, id string) cache.Outcome {
		if id == "3" {
			return cache.Outcome{Entry: &cache.Entry{Status: locapi.NotFound}}
		}
		label := "entity " + id
		return cache.Outcome{Entry: &cache.Entry{Status: locapi.Found, Record: &locapi.Record{ID: id, Label: &label}}}
	})
	l, err := loader.New(wh, res, loader.Config{}, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	for range 2 {
		sum, err := l.Run(context.Background())
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("pending %d, found %d, not found %d\n", sum.Pending, sum.Found, sum.NotFound)
	}
	// Output:
	// pending 3, found 2, not found 1
	// pending 0, found 0, not found 0
}
