package h1

import (
	"bufio"
	"context"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"testing"
	"time"
)

// Poll ids wrap after 2^32 connections (a day at 50 000 new connections a
// second) while a long-lived connection (a long download, a parked one)
// may still hold a small id: a new connection must not take it. Sharing
// it, the new one replaced the old one in the table, and the old one's end
// removed the new one: its events were dropped as unknown and the idle
// timeout never saw it, so it stayed parked, its descriptor open, until
// shutdown.
func TestPollIDWrapSkipsIDsInUse(t *testing.T) {
	p, err := newPoller(&Server{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.stop()
	old := &conn{}
	p.prepare(old) // id 1
	p.mu.Lock()
	p.nextID = math.MaxUint32 - 1
	p.mu.Unlock()
	last, wrapped := &conn{}, &conn{}
	p.prepare(last)    // id MaxUint32
	p.prepare(wrapped) // wraps past 0 (the eventfd) and the old connection's 1
	if last.pollID != math.MaxUint32 {
		t.Fatalf("last id %d, want %d", last.pollID, uint32(math.MaxUint32))
	}
	if wrapped.pollID == 0 || wrapped.pollID == old.pollID {
		t.Fatalf("after the wrap a new connection took id %d (the old one has %d)", wrapped.pollID, old.pollID)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range []*conn{old, last, wrapped} {
		if p.conns[c.pollID] != c {
			t.Errorf("id %d is not its connection's in the table", c.pollID)
		}
	}
}

// A client that has sent part of a request head has not made a request
// yet: Shutdown closes its connection as an idle one, instead of waiting
// for the rest until header_timeout or the shutdown deadline (a client
// trickling heads delayed every graceful stop by the whole grace period).
// A request whose head is in is still answered.
func TestShutdownClosesPartialHeads(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	s := &Server{HeaderTimeout: 30 * time.Second, IdleTimeout: 30 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			<-release
			io.WriteString(w, "whole")
		})}
	go s.Serve(ln)
	partial := dial(t, ln.Addr().String())
	io.WriteString(partial, "GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
	busy := dial(t, ln.Addr().String())
	io.WriteString(busy, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	time.Sleep(200 * time.Millisecond)
	go func() { time.Sleep(300 * time.Millisecond); close(release) }()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown after %v: %v (a half-sent head held it)", time.Since(start), err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Shutdown took %v", d)
	}
	busy.SetReadDeadline(time.Now().Add(time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(busy), nil)
	if err != nil {
		t.Fatalf("the request in flight: %v", err)
	}
	if b, _ := io.ReadAll(resp.Body); string(b) != "whole" {
		t.Errorf("the request in flight got %q", b)
	}
	partial.SetReadDeadline(time.Now().Add(time.Second))
	if n, err := partial.Read(make([]byte, 64)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("the half-sent head's connection is still open (%d, %v)", n, err)
	}
}
