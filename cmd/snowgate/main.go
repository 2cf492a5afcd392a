// Command snowgate enriches warehouse rows through a rate-limited location
// API: a Snowflake external-function service (serve), a resumable backfill
// loader (backfill), a provider simulator (sim) and a one-command local demo
// (demo).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"syscall"

	"github.com/gin-gonic/gin"

	"github.com/snowgate/snowgate/cluster"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

type command struct {
	name     string
	synopsis string
	run      func(ctx context.Context, args []string, stdout io.Writer, logger *slog.Logger) error
}

// commands lists the commands in usage order. The warehouse commands
// (commands_full.go) link DuckDB, gosnowflake and a plotting library; a
// slim build (-tags slim, commands_slim.go) leaves them out.
func commands() []command {
	return slices.Concat([]command{
		{"serve", "Serve the Snowflake external function (POST batches of IDs, get locations).", runServe},
	}, warehouseCommands(), []command{
		{"sim", "Serve a SIMULATED location provider for trials and tests.", runSim},
		{"healthcheck", "Exit 0 if the local server answers /healthz (for container health checks).", runHealthcheck},
		{"version", "Print the version.", runVersion},
	})
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: logLevel(os.Getenv("SNOWGATE_LOG_LEVEL"))}))
	// gin and go-redis each keep one process-wide setting, so the process
	// sets them once: gin's debug lines off stdout, go-redis's into our log.
	gin.SetMode(gin.ReleaseMode)
	cluster.SetLibraryLogger(logger)
	err := run(ctx, os.Args[1:], os.Stdout, logger)
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.Is(err, errUsage):
		fmt.Fprintln(os.Stderr, "snowgate:", err)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "snowgate:", err)
		os.Exit(1)
	}
}

var errUsage = errors.New("usage")

func run(ctx context.Context, args []string, stdout io.Writer, logger *slog.Logger) error {
	if len(args) == 0 && inLambda() {
		args = []string{"serve"} // Lambda starts a bootstrap binary with no arguments
	}
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" || args[0] == "-help" {
		usage(stdout)
		return nil
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, args[1:], stdout, logger.With("cmd", c.name))
		}
	}
	usage(stdout)
	return fmt.Errorf("%w: unknown command %q", errUsage, args[0])
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "snowgate: enrich warehouse rows through a rate-limited location API, from SQL.")
	fmt.Fprintln(w, "\nUsage: snowgate <command> [flags]   (snowgate <command> --help for its flags)")
	fmt.Fprintln(w, "\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-12s %s\n", c.name, c.synopsis)
	}
}

func runVersion(_ context.Context, _ []string, stdout io.Writer, _ *slog.Logger) error {
	rev := ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				rev = " " + s.Value
			}
		}
	}
	_, err := fmt.Fprintf(stdout, "snowgate %s%s\n", version, rev)
	return err
}

func logLevel(s string) slog.Level {
	var l slog.Level
	if l.UnmarshalText([]byte(s)) != nil {
		return slog.LevelInfo
	}
	return l
}
