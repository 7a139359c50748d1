package server

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/edgehost/edgehost/host/cache"
	"github.com/edgehost/edgehost/host/config"
	"github.com/edgehost/edgehost/host/demoorigin"
)

// startBench runs a server (memory-only cache) in front of the demo origin
// and returns its public address.
func startBench(b testing.TB) string {
	b.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	origin := httptest.NewServer(demoorigin.New(quiet))
	b.Cleanup(origin.Close)
	src := fmt.Sprintf(`
listen {
  http = "127.0.0.1:0"
  self = %q
}
backend "origin" { url = %q }
route "/" {
  backend = backend.origin
}
`, b.TempDir()+"/self.sock", origin.URL)
	cfg, diags := config.Parse("bench.hcl", []byte(src))
	if diags.HasErrors() {
		b.Fatal(diags)
	}
	c := cache.New(cache.Options{MemoryBytes: 64 << 20, Logger: quiet})
	s, err := New(cfg, Options{Logger: quiet, Cache: c})
	if err != nil {
		b.Fatal(err)
	}
	pub, self, err := s.Listen()
	if err != nil {
		b.Fatal(err)
	}
	go s.Serve(pub, self)
	b.Cleanup(func() { s.Shutdown(b.Context()) })
	return pub.Addr().String()
}

// hitLoop sends GETs for path on one keep-alive connection and reads each
// response fully: the cost of a cache hit end to end over loopback.
func hitLoop(b *testing.B, addr, path string) { requestLoop(b, addr, path, "", "200") }

// requestLoop sends GET path with the extra header lines on one keep-alive
// connection, warming with a plain GET first, and checks each status.
func requestLoop(b *testing.B, addr, path, extra, want string) {
	do := requester(b, addr, path, extra)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if status := do(); status != want {
			b.Fatalf("status %s, want %s", status, want)
		}
	}
}

// requester dials addr, sends a plain GET of path (the miss stores the
// object) and returns a function that sends GET path with the extra header
// lines on the same connection, reads the response fully and returns its
// status. It allocates nothing itself, so allocation counts are the
// server's.
func requester(tb testing.TB, addr, path, extra string) func() string {
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

func BenchmarkHit1K(b *testing.B)  { hitLoop(b, startBench(b), "/bytes/1k") }
func BenchmarkHit28K(b *testing.B) { hitLoop(b, startBench(b), "/bytes/28k") }

// BenchmarkHitSlowPath is a hit that the fast path declines
// (If-Modified-Since): the full state machine over net/http types.
func BenchmarkHitSlowPath(b *testing.B) {
	requestLoop(b, startBench(b), "/bytes/1k", "If-Modified-Since: Mon, 01 Jan 2024 00:00:00 GMT\r\n", "304")
}

// BenchmarkHitNotModified is a browser revalidating (an If-None-Match that
// matches): a 304 from the fast path.
func BenchmarkHitNotModified(b *testing.B) {
	requestLoop(b, startBench(b), "/bytes/1k", "If-None-Match: \"bytes-1024-0\"\r\n", "304")
}
