package snowflake_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/snowgate/snowgate/loader"
	"github.com/snowgate/snowgate/loader/snowflake"
)

// Open a warehouse from SNOWFLAKE_DSN or the SNOWFLAKE_* variables and page
// through the IDs still to resolve. It needs a live account, so it is
// compiled but not run.
func Example() {
	ctx := context.Background()
	dc, err := snowflake.ConfigFromEnv(os.Getenv)
	if err != nil {
		log.Fatal(err)
	}
	tables, err := loader.NewTables("MASTER_TABLE", "ID", "STANDARDIZED_LOCATIONS")
	if err != nil {
		log.Fatal(err)
	}
	w, err := snowflake.OpenConfig(ctx, dc, snowflake.Config{Tables: tables})
	if err != nil {
		log.Fatal(err)
	}
	defer w.Close()
	if err := w.Setup(ctx); err != nil {
		log.Fatal(err)
	}
	ids, err := w.Pending(ctx, "", 1000, loader.Selection{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(ids), "IDs in the first page")
}
