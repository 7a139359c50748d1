// Package h1 is edgehost's HTTP/1.1 server for the public listener.
//
// net/http's server costs a cache hit about twice what Varnish spends on a
// single keep-alive connection (a background read goroutine per request,
// ~20 allocations, a Request and a response struct, header maps). This
// server parses the request head into a reused per-connection buffer and
// first offers it to a Fast handler that can answer from memory with one
// write and no allocation (a fresh cache hit). Everything else goes to an
// ordinary http.Handler with a real *http.Request and an http.ResponseWriter
// that frames the body (Content-Length, chunked or close-delimited), so the
// request state machine is written once, against net/http's types.
//
// What it enforces (RFC 9112): a request line and header fields within
// MaxHeaderBytes (414 for the request line, 431 for the fields), a Host
// field on HTTP/1.1 requests, exactly one framing of the request body
// (Content-Length or chunked, never both: request smuggling), a strictly
// parsed chunked trailer section, a read deadline on every byte a client
// sends (idle between requests, header timeout from the first byte of a
// head, IdleTimeout per body read: slowloris), and a connection closed
// whenever the framing of a response could not be kept. Error answers are
// followed by a lingering close, so that a client still sending reads them
// instead of a reset.
package h1

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Server serves HTTP/1.1 (and 1.0) on a listener.
type Server struct {
	Handler        http.Handler
	Fast           func(*Request, *Writer) bool // may answer a request itself; nil = never
	MaxHeaderBytes int
	HeaderTimeout  time.Duration // reading one request head, from its first byte
	IdleTimeout    time.Duration // waiting for the next request on a keep-alive connection, and per body read
	WriteTimeout   time.Duration // a write that the client does not take within this fails
	ConnState      func(net.Conn, http.ConnState)
	Logger         *slog.Logger
	BaseContext    context.Context

	mu       sync.Mutex
	ln       []net.Listener
	conns    map[*conn]struct{}
	shutdown atomic.Bool
	wg       sync.WaitGroup
}

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = http.ErrServerClosed

// Serve accepts connections on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.conns == nil {
		s.conns = map[*conn]struct{}{}
	}
	s.ln = append(s.ln, ln)
	s.mu.Unlock()
	if s.MaxHeaderBytes <= 0 {
		s.MaxHeaderBytes = 32 << 10
	}
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.shutdown.Load() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				delay = min(max(delay*2, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		c := newConn(s, nc)
		s.mu.Lock()
		if s.shutdown.Load() {
			s.mu.Unlock()
			nc.Close()
			return ErrServerClosed
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		if s.ConnState != nil {
			s.ConnState(nc, http.StateNew)
		}
		go c.serve()
	}
}

func (s *Server) forget(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	if s.ConnState != nil {
		s.ConnState(c.nc, http.StateClosed)
	}
	s.wg.Done()
}

// Shutdown closes the listeners, closes idle connections, and waits for
// active ones to finish their current request until ctx ends; then it
// closes what is left.
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutdown.Store(true)
	s.mu.Lock()
	for _, ln := range s.ln {
		ln.Close()
	}
	for c := range s.conns {
		c.closeIfIdle()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return nil
		case <-tick.C:
			s.mu.Lock()
			for c := range s.conns {
				c.closeIfIdle()
			}
			s.mu.Unlock()
		case <-ctx.Done():
			s.mu.Lock()
			for c := range s.conns {
				c.nc.Close()
			}
			s.mu.Unlock()
			<-done
			return ctx.Err()
		}
	}
}
