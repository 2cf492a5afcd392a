package loader_test

import (
	"context"
	"database/sql"
	"errors"
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
	ctx := context.Background() // a program's whole life: nothing to cut it short
	dir, err := os.MkdirTemp("", "snowgate-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer func() {
		if err := os.RemoveAll(dir); err != nil {
			fmt.Println(err)
		}
	}()
	path := filepath.Join(dir, "example.duckdb")

	if err := writeMaster(ctx, path); err != nil {
		fmt.Println(err)
		return
	}

	tables, err := loader.NewTables("master_table", "id", "standardized_locations")
	if err != nil {
		fmt.Println(err)
		return
	}
	wh, err := duckdb.Open(ctx, path, tables)
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
		sum, err := l.Run(ctx)
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

// writeMaster makes the example's MASTER_TABLE, with a repeated ID.
func writeMaster(ctx context.Context, path string) error {
	db, err := sql.Open("duckdb", path)
	if err != nil {
		return err
	}
	_, err = db.ExecContext(ctx, `CREATE TABLE MASTER_TABLE AS SELECT * FROM (VALUES (1), (2), (2), (3)) v(ID)`)
	// The table is on disk once Close returns: the warehouse opens the file next.
	return errors.Join(err, db.Close())
}
