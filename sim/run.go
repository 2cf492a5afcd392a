package sim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// Running is a simulator serving HTTP on a real listener.
type Running struct {
	*Server
	// URL is the base URL, http://127.0.0.1:PORT, without a trailing slash.
	URL string

	srv    *http.Server
	ln     net.Listener
	fresh  freshConns
	client *http.Client
	done   chan struct{} // closed when Serve returns
	err    error         // Serve's error, read after done
}

// closeTimeout bounds how long Close waits for answers in progress.
const closeTimeout = 5 * time.Second

// Start serves a new simulator on 127.0.0.1 at a free port. Close it.
func Start(cfg Config) (*Running, error) { return Listen("127.0.0.1:0", cfg) }

// Listen serves a new simulator on addr (host:port). Close it.
func Listen(addr string, cfg Config) (*Running, error) {
	s, err := New(cfg)
	if err != nil {
		return nil, err
	}
	return serveOn(addr, s)
}

func serveOn(addr string, s *Server) (*Running, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(context.Background(), "tcp", addr) // it serves until Shutdown, not until a context ends
	if err != nil {
		return nil, fmt.Errorf("sim listen %s: %w", addr, err)
	}
	rs := &Running{
		Server: s,
		URL:    "http://" + ln.Addr().String(),
		ln:     ln,
		done:   make(chan struct{}),
		srv: &http.Server{
			Handler: s,
			// Keep-alive stays on (the default) so a client reuses its
			// connections; no WriteTimeout, or hangs would end on their own.
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       2 * time.Minute,
			MaxHeaderBytes:    1 << 20,
			ErrorLog:          slog.NewLogLogger(s.cfg.Logger.Handler(), slog.LevelWarn),
		},
		client: &http.Client{Transport: newTransport()},
	}
	rs.fresh.conns = map[net.Conn]struct{}{}
	rs.srv.ConnState = rs.fresh.track
	go func() {
		defer close(rs.done)
		if err := rs.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			rs.err = fmt.Errorf("sim serve: %w", err)
		}
	}()
	return rs, nil
}

// newTransport keeps enough idle connections for hundreds of concurrent
// callers, so a load test measures the handler rather than dialing.
func newTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 1024
	t.MaxIdleConnsPerHost = 1024
	t.IdleConnTimeout = time.Minute
	return t
}

// Addr is the listening address, host:port.
func (rs *Running) Addr() string { return rs.ln.Addr().String() }

// EntityURL is the URL of id with the path segment escaped and
// select=id,label,location, as a correct client builds it.
func (rs *Running) EntityURL(id string) string { return EntityURL(rs.URL, id) }

// Client is an HTTP client tuned for many concurrent requests to this
// simulator; its idle connections are closed with the simulator.
func (rs *Running) Client() *http.Client { return rs.client }

// Done is closed when the server stops serving.
func (rs *Running) Done() <-chan struct{} { return rs.done }

// Shutdown stops accepting, ends every wait (hangs are aborted, delayed
// answers sent at once), waits for answers in progress until ctx ends, and
// then closes the remaining connections.
func (rs *Running) Shutdown(ctx context.Context) error {
	_ = rs.Server.Close() // never fails: it only ends the waits
	rs.client.CloseIdleConnections()
	shut := make(chan error, 1)
	go func() { shut <- rs.srv.Shutdown(ctx) }()
	// Serve returns once the listener is closed; connections accepted but
	// never used (a transport dials ahead) would hold Shutdown for 5s.
	<-rs.done
	rs.fresh.closeAll()
	err := <-shut
	if err != nil {
		err = errors.Join(fmt.Errorf("sim shutdown: %w", err), rs.srv.Close())
	}
	return errors.Join(err, rs.err)
}

// Close shuts down, waiting at most a few seconds. It is safe to call more
// than once.
func (rs *Running) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	return rs.Shutdown(ctx)
}

// freshConns tracks connections that have not yet sent a request.
type freshConns struct {
	mu    sync.Mutex
	conns map[net.Conn]struct{} // in http.StateNew
}

func (f *freshConns) track(c net.Conn, st http.ConnState) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if st == http.StateNew {
		f.conns[c] = struct{}{}
	} else {
		delete(f.conns, c)
	}
}

func (f *freshConns) closeAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for c := range f.conns {
		_ = c.Close() // an idle connection nobody is waiting on
	}
}
