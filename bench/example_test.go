package bench_test

import (
	"context"
	"errors"
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
	if err := rep.WriteText(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	f, err := os.Create("bench.svg")
	if err == nil {
		// A chart cut short by a full disk shows up at Close.
		err = errors.Join(bench.WritePlot(f, rep), f.Close())
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench: plot:", err)
		os.Exit(1)
	}
	if err := rep.Err(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}
