// Package redistest starts a real redis-server for a test, the way
// net/http/httptest starts an HTTP server: on 127.0.0.1 at a free port,
// without persistence, killed when the test ends. It can be stopped and
// started again on the same port to play an outage.
package redistest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// startTimeout bounds how long redis-server may take to accept connections.
const startTimeout = 10 * time.Second

// Server is a redis-server process owned by one test.
type Server struct {
	// URL is redis://127.0.0.1:PORT/0.
	URL string
	// Addr is 127.0.0.1:PORT.
	Addr string

	t    testing.TB
	bin  string
	dir  string
	port int

	mu  sync.Mutex // guards cmd
	cmd *exec.Cmd  // nil while stopped
}

// Start runs redis-server for t and stops it when t ends. Without a
// redis-server on the PATH the test fails when the CI environment variable
// is set, and is skipped with a message saying how to install it otherwise.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("redis-server is not on the PATH, and CI is set: install it (apt-get install -y redis-server)")
		}
		t.Skip("redis-server is not on the PATH: install it (apt-get install -y redis-server) to run the Redis tests")
	}
	s := &Server{t: t, bin: bin, dir: t.TempDir()}
	var last error
	for range 5 { // another process may take the free port before redis binds it
		if s.port, err = freePort(); err != nil {
			t.Fatalf("redistest: %v", err)
		}
		if last = s.start(); last == nil {
			break
		}
	}
	if last != nil {
		t.Fatalf("redistest: %v", last)
	}
	s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
	s.URL = "redis://" + s.Addr + "/0"
	t.Cleanup(s.Stop)
	return s
}

func freePort() (int, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0") // closed at once: nothing to cancel
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer func() { _ = ln.Close() }() // only its port was wanted
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// start runs the process and returns once it accepts connections.
func (s *Server) start() error {
	// The server lives until Stop, not until some context ends.
	cmd := exec.CommandContext(context.Background(), s.bin, "--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", s.dir, "--loglevel", "notice")
	setProcAttr(cmd)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("redis-server stdout: %w", err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting redis-server: %w", err)
	}
	ready := make(chan error, 1)
	go watch(out, ready)
	timer := time.NewTimer(startTimeout)
	defer timer.Stop()
	select {
	case err = <-ready:
	case <-timer.C:
		err = errors.New("redis-server did not get ready in time")
	}
	if err == nil {
		err = ping(net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)))
	}
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return err
	}
	s.mu.Lock()
	s.cmd = cmd
	s.mu.Unlock()
	return nil
}

// watch reads redis-server's log until it says it is ready (or ends), then
// drains the rest so the process never blocks on a full pipe.
func watch(r io.Reader, ready chan<- error) {
	sc := bufio.NewScanner(r)
	var tail []string
	for sc.Scan() {
		line := sc.Text()
		if strings.Contains(line, "Ready to accept connections") {
			ready <- nil
			_, _ = io.Copy(io.Discard, r)
			return
		}
		tail = append(tail, line)
		if len(tail) > 5 {
			tail = tail[1:]
		}
	}
	ready <- fmt.Errorf("redis-server exited before it was ready: %s", strings.Join(tail, " | "))
}

// ping checks that the server answers PING with PONG.
func ping(addr string) error {
	d := net.Dialer{Timeout: time.Second}
	conn, err := d.DialContext(context.Background(), "tcp", addr) // bounded by the timeout
	if err != nil {
		return fmt.Errorf("redis-server not reachable: %w", err)
	}
	defer func() { _ = conn.Close() }() // the answer is read: nothing left to lose
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return fmt.Errorf("redis-server PING: %w", err)
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return fmt.Errorf("redis-server PING: %w", err)
	}
	if !strings.HasPrefix(line, "+PONG") {
		return fmt.Errorf("redis-server PING: got %q; want +PONG", line)
	}
	return nil
}

// Stop kills the server (as a crash would) and waits for it to exit. All
// its data is lost. Stopping a stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd := s.cmd
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
}

// Restart starts a stopped server again on the same port, empty.
func (s *Server) Restart() {
	s.t.Helper()
	s.mu.Lock()
	running := s.cmd != nil
	s.mu.Unlock()
	if running {
		s.t.Fatalf("redistest: Restart of a running server")
	}
	if err := s.start(); err != nil {
		s.t.Fatalf("redistest: restart: %v", err)
	}
}
