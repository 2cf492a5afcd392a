package cluster_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/snowgate/snowgate/cluster"
	"github.com/snowgate/snowgate/sim"
)

// The rate tests run the simulator in a child process (this test binary
// again), as a real provider runs apart from its clients: in this process
// its handlers would queue behind the goroutines of four clients and three
// gateways, and it would count that scheduling delay as bursts the clients
// never sent.

const simChildEnv = "SNOWGATE_CLUSTER_SIM_CHILD" // the JSON childConfig; set only in a child

func TestMain(m *testing.M) {
	if cfg := os.Getenv(simChildEnv); cfg != "" {
		if err := simChildMain(cfg, os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "sim child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	cluster.SetLibraryLogger(slog.New(slog.DiscardHandler)) // the outage tests make it chatty
	gin.SetMode(gin.ReleaseMode)                            // as main does: the gateways here would print gin's debug lines
	os.Exit(m.Run())
}

// childConfig is the part of sim.Config a child is given.
type childConfig struct {
	Rate                           float64
	Latency, Jitter                time.Duration
	NotFoundRatio, NoLocationRatio float64
}

func (c childConfig) sim() sim.Config {
	return sim.Config{Rate: c.Rate, Latency: c.Latency, Jitter: c.Jitter,
		NotFoundRatio: c.NotFoundRatio, NoLocationRatio: c.NoLocationRatio}
}

// simStats is what a child reports at /_stats.
type simStats struct {
	PerSecond   []int // admitted per second since the last reset
	MaxInSecond int   // most admitted in any 1-second window
	Limited     int   // answered 429
	Total       int
	// Stall is the longest the child's clock ticks came late since the
	// last reset: how long the machine left the simulator without CPU.
	Stall time.Duration
}

// simChildMain serves the simulator and its /_stats and /_reset controls
// until stdin closes (the parent ended or stopped it).
func simChildMain(cfgJSON string, stdin io.Reader, stdout io.Writer) error {
	var cc childConfig
	if err := json.Unmarshal([]byte(cfgJSON), &cc); err != nil {
		return err
	}
	s, err := sim.New(cc.sim())
	if err != nil {
		return err
	}
	var stall stallMeter
	go stall.run(nil)
	mux := http.NewServeMux()
	mux.Handle(sim.EntitiesPath, s)
	mux.HandleFunc("GET /_stats", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(simStats{PerSecond: s.PerSecond(), MaxInSecond: s.MaxInWindow(time.Second),
			Limited: s.Status(http.StatusTooManyRequests), Total: s.Total(), Stall: stall.max()})
	})
	mux.HandleFunc("POST /_reset", func(http.ResponseWriter, *http.Request) { s.Reset(); stall.reset() })
	var lc net.ListenConfig
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0") // the child's life is its stdin's
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }() // ends with Close below; the parent sees any failure as refused requests
	fmt.Fprintf(stdout, "listening http://%s\n", ln.Addr())
	_, _ = io.Copy(io.Discard, stdin)
	return srv.Close()
}

// remoteSim is a simulator in a child process.
type remoteSim struct {
	URL   string
	local *sim.Server // the same configuration, not serving: for Expected
}

func startSimChild(t *testing.T, cc childConfig) *remoteSim {
	t.Helper()
	local, err := sim.New(cc.sim())
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := json.Marshal(cc)
	if err != nil {
		t.Fatal(err)
	}
	// Not t.Context(): that ends before the cleanup below, which stops the
	// child by closing its stdin and reports how it exited.
	cmd := exec.CommandContext(context.Background(), os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), simChildEnv+"="+string(cfg))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		if err := cmd.Wait(); err != nil {
			t.Errorf("sim child: %v", err)
		}
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	url, ok := strings.CutPrefix(strings.TrimSpace(line), "listening ")
	if err != nil || !ok {
		t.Fatalf("sim child: got %q, %v; want its address", line, err)
	}
	return &remoteSim{URL: url, local: local}
}

func (r *remoteSim) stats(t *testing.T) simStats {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, r.URL+"/_stats", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st simStats
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

func (r *remoteSim) reset(t *testing.T) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, r.URL+"/_reset", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}

// stallMeter ticks every millisecond until stop is closed and keeps the
// longest delay between two ticks beyond that: the longest time the process
// got no CPU.
type stallMeter struct{ worst atomic.Int64 }

// meterStalls measures this process's stalls until the test ends.
func meterStalls(t *testing.T) *stallMeter {
	m, stop := &stallMeter{}, make(chan struct{})
	go m.run(stop)
	t.Cleanup(func() { close(stop) })
	return m
}

func (m *stallMeter) run(stop <-chan struct{}) {
	last := time.Now()
	for {
		select {
		case <-stop:
			return
		default:
		}
		time.Sleep(time.Millisecond)
		now := time.Now()
		if late := now.Sub(last) - time.Millisecond; late > time.Duration(m.worst.Load()) {
			m.worst.Store(int64(late))
		}
		last = now
	}
}

func (m *stallMeter) max() time.Duration { return time.Duration(m.worst.Load()) }
func (m *stallMeter) reset()             { m.worst.Store(0) }
