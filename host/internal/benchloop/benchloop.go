// Package benchloop drives the listener benchmarks and allocation guards:
// requests on one keep-alive connection over loopback, each response read
// fully.
package benchloop

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"strconv"
	"testing"
)

// Hit sends GETs for path on one keep-alive connection and reads each
// response fully: the cost of a cache hit end to end over loopback.
func Hit(b *testing.B, addr, path string) { Request(b, addr, path, "", "200") }

// Request sends GET path with the extra header lines on one keep-alive
// connection, warming with a plain GET first, and checks each status.
func Request(b *testing.B, addr, path, extra, want string) {
	do := Requester(b, addr, path, extra)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if status := do(); status != want {
			b.Fatalf("status %s, want %s", status, want)
		}
	}
}

// Requester dials addr, sends a plain GET of path (the miss stores the
// object) and returns a function that sends GET path with the extra header
// lines on the same connection, reads the response fully and returns its
// status. It allocates nothing itself, so allocation counts are the
// server's.
func Requester(tb testing.TB, addr, path, extra string) func() string {
	tb.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close() })
	warm := []byte("GET " + path + " HTTP/1.1\r\nHost: bench\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n")
	req := []byte("GET " + path + " HTTP/1.1\r\nHost: bench\r\nUser-Agent: bench\r\nAccept: */*\r\n" + extra + "\r\n")
	br := bufio.NewReaderSize(conn, 64<<10)
	body := make([]byte, 64<<10)
	var status [3]byte
	read := func() {
		cl := 0
		first := true
		for {
			line, err := br.ReadSlice('\n')
			if err != nil {
				tb.Fatal(err)
			}
			if first {
				copy(status[:], line[9:12])
				first = false
			}
			if len(line) <= 2 {
				break
			}
			if bytes.HasPrefix(line, []byte("Content-Length: ")) {
				cl, _ = strconv.Atoi(string(bytes.TrimSpace(line[16:])))
			}
		}
		if status != [3]byte{'3', '0', '4'} {
			if _, err := io.ReadFull(br, body[:cl]); err != nil {
				tb.Fatal(err)
			}
		}
	}
	conn.Write(warm)
	read()
	statuses := map[[3]byte]string{}
	return func() string {
		conn.Write(req)
		read()
		st, ok := statuses[status]
		if !ok {
			st = string(status[:])
			statuses[status] = st
		}
		return st
	}
}

// Allocs sends GET path (with the extra header lines) to addr, warmed
// first, and returns the allocations per request in the whole process
// (the client side allocates nothing), checking each status.
func Allocs(t *testing.T, addr, path, extra, want string) float64 {
	t.Helper()
	do := Requester(t, addr, path, extra)
	for range 50 { // warm pools and buffers
		if got := do(); got != want {
			t.Fatalf("status %s, want %s", got, want)
		}
	}
	return testing.AllocsPerRun(500, func() {
		if got := do(); got != want {
			t.Fatalf("status %s, want %s", got, want)
		}
	})
}
