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
func startBench(b *testing.B) string {
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
func hitLoop(b *testing.B, addr, path string) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	req := []byte("GET " + path + " HTTP/1.1\r\nHost: bench\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n")
	br := bufio.NewReaderSize(conn, 64<<10)
	body := make([]byte, 64<<10)
	read := func() (status string) {
		cl := -1
		for {
			line, err := br.ReadSlice('\n')
			if err != nil {
				b.Fatal(err)
			}
			if status == "" {
				status = string(line[9:12])
			}
			if len(line) <= 2 {
				break
			}
			if bytes.HasPrefix(line, []byte("Content-Length: ")) {
				cl, _ = strconv.Atoi(string(bytes.TrimSpace(line[16:])))
			}
		}
		if _, err := io.ReadFull(br, body[:cl]); err != nil {
			b.Fatal(err)
		}
		return status
	}
	conn.Write(req) // warm: the miss stores the object
	read()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		conn.Write(req)
		if st := read(); st != "200" {
			b.Fatalf("status %s", st)
		}
	}
}

func BenchmarkHit1K(b *testing.B)  { hitLoop(b, startBench(b), "/bytes/1k") }
func BenchmarkHit28K(b *testing.B) { hitLoop(b, startBench(b), "/bytes/28k") }

// BenchmarkHitSlowPath is a hit that the fast path declines (a conditional
// request field): the full state machine over net/http types.
func BenchmarkHitSlowPath(b *testing.B) {
	addr := startBench(b)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	get := func(extra string) {
		fmt.Fprintf(conn, "GET /bytes/1k HTTP/1.1\r\nHost: bench\r\n%s\r\n", extra)
		cl := 0
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				b.Fatal(err)
			}
			if line == "\r\n" {
				break
			}
			if n, err := fmt.Sscanf(line, "Content-Length: %d", &cl); n == 1 && err == nil {
				continue
			}
		}
		io.CopyN(io.Discard, br, int64(cl))
	}
	get("")
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		get("If-None-Match: \"nope\"\r\n")
	}
}
