package server

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/edgehost/edgehost/host/cache"
	"github.com/edgehost/edgehost/host/config"
	"github.com/edgehost/edgehost/host/demoorigin"
	pluginv1 "github.com/edgehost/edgehost/proto/edgehost/plugin/v1"
)

// startFileBench runs a server with a 4 KiB reader behind /file4k and the
// demo origin behind /, and loads the reader's table as the watch consumer
// would (no plugin process: the request path never calls one).
func startFileBench(b *testing.B) string {
	b.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	origin := httptest.NewServer(demoorigin.New(quiet))
	b.Cleanup(origin.Close)
	dir := b.TempDir()
	contents := make([]byte, 4096)
	for i := range contents {
		contents[i] = 'a' + byte(i%26)
	}
	if err := os.WriteFile(filepath.Join(dir, "f4k.txt"), contents, 0o644); err != nil {
		b.Fatal(err)
	}
	src := fmt.Sprintf(`
listen {
  http = "127.0.0.1:0"
  self = %q
}
backend "origin" { url = %q }
route "/" {
  backend = backend.origin
}
plugin "file" {}
file "f4k" { path = "f4k.txt" }
route "/file4k" {
  respond { file = file.f4k }
}
`, filepath.Join(dir, "self.sock"), origin.URL)
	cfg, diags := config.Parse(filepath.Join(dir, "bench.hcl"), []byte(src))
	if diags.HasErrors() {
		b.Fatal(diags)
	}
	c := cache.New(cache.Options{MemoryBytes: 64 << 20, Logger: quiet})
	s, err := New(cfg, Options{Logger: quiet, Cache: c})
	if err != nil {
		b.Fatal(err)
	}
	mtime := time.Now().Add(-time.Hour).UTC()
	s.files.put("f4k", &fileEntry{
		state: &pluginv1.ReaderState{Reader: "f4k", Size: 4096, IdDigest: "0123456789abcdef01234567", MtimeUnixNano: mtime.UnixNano()},
		body:  contents, bodyID: "0123456789abcdef01234567", loaded: true, mtime: mtime,
		etag: `"0123456789abcdef01234567"`, lastMod: mtime.Format(http.TimeFormat),
	})
	pub, self, err := s.Listen()
	if err != nil {
		b.Fatal(err)
	}
	go s.Serve(pub, self)
	b.Cleanup(func() { s.Shutdown(b.Context()) })
	return pub.Addr().String()
}

// BenchmarkFileResponse4K is a 4 KiB response from a reader (respond {
// file = … }); BenchmarkFileCacheHit4K a 4 KiB cache hit on the same
// server, for comparison (issue 4: both answer from memory).
func BenchmarkFileResponse4K(b *testing.B) { hitLoop(b, startFileBench(b), "/file4k") }
func BenchmarkFileCacheHit4K(b *testing.B) { hitLoop(b, startFileBench(b), "/bytes/4k") }
