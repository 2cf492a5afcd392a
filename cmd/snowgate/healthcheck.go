package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// newHealthcheckFlags declares healthcheck's flags.
func newHealthcheckFlags(stdout io.Writer) (fs *flag.FlagSet, listen *string, timeout *time.Duration) {
	fs = newFlagSet("healthcheck", "Exit 0 if the server on --listen answers /healthz with 200.", stdout)
	listen = fs.String("listen", ":8080", "the address `snowgate serve` listens on")
	timeout = new(time.Duration)
	// A container runtime's own health-check timeout is seconds to a minute.
	numVar(fs, timeout, "timeout", 3*time.Second, between(time.Millisecond, 10*time.Minute), "how long to wait for the answer")
	return fs, listen, timeout
}

// runHealthcheck lets a container image with no shell or curl check itself:
// HEALTHCHECK CMD ["snowgate", "healthcheck"].
func runHealthcheck(ctx context.Context, args []string, stdout io.Writer, _ *slog.Logger) error {
	fs, listen, timeout := newHealthcheckFlags(stdout)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	host, port, err := net.SplitHostPort(*listen)
	if err != nil {
		return usagef("healthcheck: --listen %q: %v", *listen, err)
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	url := "http://" + net.JoinHostPort(host, port) + "/healthz"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: %s answered %s", url, resp.Status)
	}
	fmt.Fprintln(stdout, "ok")
	return nil
}
