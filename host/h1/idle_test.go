package h1

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
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
