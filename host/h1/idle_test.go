package h1

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// idleBound is issue 15's bound on the memory of one idle keep-alive
// connection.
const idleBound = 8 << 10

// TestIdleConnMemory (issue 15, item 3): idle keep-alive connections that
// have each served one request through the handler cost at most idleBound
// each in heap and stacks (both ends of the loopback connections are in
// this process, so the client's side is counted too). Before parking, one
// cost its goroutine's stack and its buffers (about 64 KiB).
func TestIdleConnMemory(t *testing.T) {
	const n = 2000
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur < 2*n+100 {
		lim.Cur = min(lim.Max, 2*n+100)
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
	if lim.Cur < 2*n+100 {
		t.Skipf("RLIMIT_NOFILE %d (hard limit), %d descriptors needed", lim.Cur, 2*n+100)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{IdleTimeout: time.Minute, HeaderTimeout: time.Minute,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "ok")
		})}
	go s.Serve(ln)
	t.Cleanup(func() { s.Shutdown(t.Context()) })
	addr := ln.Addr().String()

	// One warm connection, so that the server's one-time costs (the poller,
	// pools) are in the baseline.
	conns := make([]net.Conn, 0, n+1)
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	buf := make([]byte, 512)
	open := func() {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		m, err := c.Read(buf)
		if err != nil || !strings.HasSuffix(string(buf[:m]), "\r\n\r\nok") {
			t.Fatalf("response %q: %v", buf[:m], err)
		}
	}
	open()
	untilParked(t, s, 1)
	before := inUse()
	for range n {
		open()
	}
	untilParked(t, s, n+1)
	after := inUse()
	per := (int64(after) - int64(before)) / n
	t.Logf("%d idle connections: %d bytes each (heap + stacks, both ends)", n, per)
	if per > idleBound {
		t.Errorf("an idle keep-alive connection costs %d bytes, want at most %d", per, idleBound)
	}
	// Parked connections still answer.
	c := conns[n/2]
	c.SetReadDeadline(time.Now().Add(5 * time.Second)) // the one set at its open may have passed
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("a parked connection: %v", err)
	}
}

// untilParked waits until n connections of s are parked.
func untilParked(t *testing.T, s *Server, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		parked := 0
		for _, c := range s.snapshot() {
			if c.state.Load() == connParked {
				parked++
			}
		}
		if parked >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d connections parked, want %d", parked, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// inUse is the heap and stack memory in use after a collection.
func inUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse + ms.StackInuse
}

// TestParkedLifecycle: a connection whose client comes back at once keeps
// its goroutine (hot) and is parked after parkAfter without a request; a
// parked connection answers its next request and is closed at the idle
// timeout.
func TestParkedLifecycle(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{IdleTimeout: 3 * time.Second, HeaderTimeout: time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })}
	go s.Serve(ln)
	t.Cleanup(func() { s.Shutdown(t.Context()) })
	c := dial(t, ln.Addr().String())
	br := bufio.NewReader(c)
	get := func() {
		t.Helper()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.ReadAll(resp.Body)
	}
	for range 3 {
		get() // back at once: hot
	}
	time.Sleep(200 * time.Millisecond)
	if n := countState(s, connWaiting); n != 1 {
		t.Fatalf("%d connections waiting in a goroutine, want the hot one", n)
	}
	start := time.Now()
	untilParked(t, s, 1)
	if d := time.Since(start); d > parkAfter+time.Second {
		t.Errorf("parked after %v, want within parkAfter (%v)", d, parkAfter)
	}
	get() // resumed from the poller
	untilParked(t, s, 1)
	idle := time.Now()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("parked connection: %v, want EOF at the idle timeout", err)
	}
	if d := time.Since(idle); d < 2*time.Second || d > 3*time.Second+2*pollScan+time.Second {
		t.Errorf("parked connection closed after %v, want about the idle timeout (3s)", d)
	}
	// The client sees the close before the server has forgotten the
	// connection: give it a moment (a loaded machine), not forever.
	for deadline := time.Now().Add(2 * time.Second); len(s.snapshot()) != 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if n := len(s.snapshot()); n != 0 {
		t.Errorf("%d connections left after the idle timeout", n)
	}
}

func countState(s *Server, state int32) int {
	n := 0
	for _, c := range s.snapshot() {
		if c.state.Load() == state {
			n++
		}
	}
	return n
}

// TestParkShedResumeRace: clients come and go at max_connections, some
// quick (their connections hot), some slow (parked), while the oldest idle
// ones are shed: every connection ends exactly once (the race detector
// watches the hand-overs) and Shutdown finds none left.
func TestParkShedResumeRace(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var shed atomic.Int64
	s := &Server{MaxConns: 8, Shed: &shed, IdleTimeout: time.Second, HeaderTimeout: time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	addr := ln.Addr().String()
	var wg sync.WaitGroup
	var served atomic.Int64
	for g := range 24 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 6 {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					continue
				}
				br := bufio.NewReader(c)
				for j := range 3 {
					c.SetDeadline(time.Now().Add(3 * time.Second))
					if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
						break
					}
					resp, err := http.ReadResponse(br, nil)
					if err != nil {
						break // shed
					}
					io.ReadAll(resp.Body)
					served.Add(1)
					time.Sleep(time.Duration((g+i+j)%4) * 40 * time.Millisecond)
				}
				c.Close()
			}
		}()
	}
	wg.Wait()
	t.Logf("%d responses, %d connections shed", served.Load(), shed.Load())
	if served.Load() == 0 {
		t.Fatal("nothing served")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v (%d connections left)", err, len(s.snapshot()))
	}
	if err := <-done; err != ErrServerClosed {
		t.Errorf("Serve: %v", err)
	}
}
