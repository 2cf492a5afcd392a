package bench_test

import (
	"context"
	"fmt"
	"os"

	"github.com/snowgate/snowgate/bench"
)

// Run the CI preset with the loader in this process, print the tables and
// draw the chart; a wrong row makes the program fail.
func ExampleRun() {
	cfg := bench.Quick()
	cfg.BackfillRows = 2000 // a smaller backfill than the preset's
	rep, err := bench.Run(context.Background(), cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	rep.WriteText(os.Stdout)
	if f, err := os.Create("bench.svg"); err == nil {
		bench.WritePlot(f, rep)
		f.Close()
	}
	if err := rep.Err(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}
