package server

import (
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"

	"github.com/edgehost/edgehost/host/cache"
	"github.com/edgehost/edgehost/host/config"
	"github.com/edgehost/edgehost/host/demoorigin"
	"github.com/edgehost/edgehost/host/internal/benchloop"
	"github.com/edgehost/edgehost/host/observe"
)

// startBench runs a server (memory-only cache) in front of the demo origin
// and returns its public address.
func startBench(b testing.TB) string {
	b.Helper()
	addr, _ := startBenchMetrics(b)
	return addr
}

// startBenchMetrics is startBench that also returns the server's metrics.
func startBenchMetrics(b testing.TB) (string, *observe.Metrics) {
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
	m := &observe.Metrics{}
	s, err := New(cfg, Options{Logger: quiet, Cache: c, Metrics: m})
	if err != nil {
		b.Fatal(err)
	}
	pub, self, err := s.Listen()
	if err != nil {
		b.Fatal(err)
	}
	go s.Serve(pub, self)
	b.Cleanup(func() { s.Shutdown(b.Context()) })
	return pub.Addr().String(), m
}

func BenchmarkHit1K(b *testing.B)  { benchloop.Hit(b, startBench(b), "/bytes/1k") }
func BenchmarkHit28K(b *testing.B) { benchloop.Hit(b, startBench(b), "/bytes/28k") }

// BenchmarkHitSlowPath is a hit that the fast path declines
// (If-Modified-Since): the full state machine over net/http types.
func BenchmarkHitSlowPath(b *testing.B) {
	benchloop.Request(b, startBench(b), "/bytes/1k", "If-Modified-Since: Mon, 01 Jan 2024 00:00:00 GMT\r\n", "304")
}

// BenchmarkHitNotModified is a browser revalidating (an If-None-Match that
// matches): a 304 from the fast path.
func BenchmarkHitNotModified(b *testing.B) {
	benchloop.Request(b, startBench(b), "/bytes/1k", "If-None-Match: \"bytes-1024-0\"\r\n", "304")
}
