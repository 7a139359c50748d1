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
//
// Idle keep-alive connections cost little (issue 15: at most 8 KiB each,
// TestIdleConnMemory): a connection holds its buffers (reader, writer, the
// head buffer of MaxHeaderBytes) only while it serves a request, and one
// that waits for a request is parked in the poller's epoll set with no
// goroutine (poller.go), unless its client has been coming back at once
// (then it waits in its goroutine for up to parkAfter, and a busy
// connection costs no epoll call per request). The same poller watches the
// connection of a request being handled for its client hanging up, and
// cancels the request's context (ErrClientGone) as net/http does.
package h1

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
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
	// MaxConns bounds open connections (0: no bound). At the bound the
	// oldest idle keep-alive connection is closed to make room; when none
	// is idle, new connections wait in the listen backlog.
	MaxConns int
	// Counted when not nil: accepts that failed for want of file
	// descriptors or kernel memory, and idle connections closed to make
	// room (for those or for MaxConns).
	AcceptErrors, Shed *atomic.Int64

	mu       sync.Mutex
	ln       []net.Listener
	conns    map[*conn]struct{}
	freed    chan struct{} // a connection ended (waitRoom)
	shutdown atomic.Bool
	wg       sync.WaitGroup
	heads    sync.Pool // *[]byte of MaxHeaderBytes+2: the head buffers of active connections
	pollOnce sync.Once
	poll     atomic.Pointer[poller] // nil: not started, or epoll not available
}

// headBuf returns a head buffer of MaxHeaderBytes+2 from the pool.
func (s *Server) headBuf() *[]byte {
	if b, _ := s.heads.Get().(*[]byte); b != nil && cap(*b) >= s.MaxHeaderBytes+2 {
		return b
	}
	b := make([]byte, 0, s.MaxHeaderBytes+2)
	return &b
}

// poller starts the poller on first use; nil if it cannot run (no epoll).
func (s *Server) poller() *poller {
	s.pollOnce.Do(func() {
		p, err := newPoller(s)
		if err != nil {
			s.logf("h1: idle connections keep their goroutines: %v", err)
			return
		}
		s.poll.Store(p)
	})
	return s.poll.Load()
}

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = http.ErrServerClosed

// Serve accepts connections on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.conns == nil {
		s.conns = map[*conn]struct{}{}
		s.freed = make(chan struct{}, 1)
		if s.MaxHeaderBytes <= 0 {
			s.MaxHeaderBytes = 32 << 10
		}
	}
	s.ln = append(s.ln, ln)
	s.mu.Unlock()
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.shutdown.Load() {
				return ErrServerClosed
			}
			if !retryable(err) {
				return err
			}
			if outOfResources(err) {
				// The connection stays in the backlog; idle keep-alive
				// connections give their descriptors back for it
				// (issue 13: EMFILE used to end Serve, and the process).
				if s.AcceptErrors != nil {
					s.AcceptErrors.Add(1)
				}
				if delay == 0 { // once per episode, not per retry
					s.logf("accept: %v: closing idle connections, retrying", err)
				}
				s.shedIdle(0)
			}
			delay = min(max(delay*2, 5*time.Millisecond), time.Second)
			time.Sleep(delay)
			continue
		}
		delay = 0
		if s.MaxConns > 0 && !s.waitRoom() {
			nc.Close()
			return ErrServerClosed
		}
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

// retryable reports whether Accept may succeed if tried again: a timeout,
// or a shortage of descriptors or kernel memory that closing connections
// relieves.
func retryable(err error) bool {
	var ne net.Error
	return (errors.As(err, &ne) && ne.Timeout()) || outOfResources(err)
}

func outOfResources(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM)
}

// waitRoom returns once fewer than MaxConns connections are open, closing
// the oldest idle one to make room if it must; false after Shutdown. The
// connection just accepted waits meanwhile, and the ones behind it in the
// listen backlog.
func (s *Server) waitRoom() bool {
	for {
		s.mu.Lock()
		n := len(s.conns)
		s.mu.Unlock()
		if s.shutdown.Load() {
			return false
		}
		if n < s.MaxConns {
			return true
		}
		// Closing one makes room once its goroutine has ended; while no
		// connection is idle, new clients wait in the listen backlog.
		s.shedIdle(1)
		select {
		case <-s.freed:
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// shedIdle closes the n idle connections that have waited longest for a
// request (n = 0: an eighth of the idle ones, at least one).
func (s *Server) shedIdle(n int) {
	s.mu.Lock()
	var idle []*conn
	for c := range s.conns {
		if st := c.state.Load(); st == connWaiting || st == connParked {
			idle = append(idle, c)
		}
	}
	s.mu.Unlock()
	if n == 0 {
		n = max(1, len(idle)/8)
	}
	slices.SortFunc(idle, func(a, b *conn) int { return cmp.Compare(a.idleSince.Load(), b.idleSince.Load()) })
	shed := 0
	for _, c := range idle {
		if shed == n {
			break
		}
		// Taken off the idle states first: a connection being closed is
		// not chosen twice.
		if c.shed() {
			shed++
		}
	}
	if s.Shed != nil {
		s.Shed.Add(int64(shed))
	}
}

func (s *Server) logf(format string, args ...any) {
	if s.Logger != nil {
		s.Logger.Warn(fmt.Sprintf(format, args...))
	}
}

func (s *Server) forget(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	select {
	case s.freed <- struct{}{}:
	default:
	}
	if s.ConnState != nil {
		s.ConnState(c.nc, http.StateClosed)
	}
	s.wg.Done()
}

// snapshot returns the open connections.
func (s *Server) snapshot() []*conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	all := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		all = append(all, c)
	}
	return all
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
	s.mu.Unlock()
	closeIdle := func() {
		for _, c := range s.snapshot() {
			if !c.shed() {
				c.shedReading()
			}
		}
	}
	closeIdle()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	defer func() {
		if p := s.poll.Load(); p != nil {
			p.stop()
		}
	}()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return nil
		case <-tick.C:
			closeIdle()
		case <-ctx.Done():
			for _, c := range s.snapshot() {
				if !c.shed() {
					c.nc.Close()
				}
			}
			<-done
			return ctx.Err()
		}
	}
}
