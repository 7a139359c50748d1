package files

import (
	"testing"
	"time"

	"github.com/edgehost/edgehost/host/internal/benchloop"
)

// startFileBench runs a server with a 4 KiB reader behind /file4k and the
// demo origin behind /, the reader's table loaded as the watch consumer
// would (the request path never calls a plugin).
func startFileBench(b testing.TB) string {
	b.Helper()
	_, addr := startFileBenchFiles(b)
	return addr
}

// startFileBenchFiles is startFileBench that also returns the feature.
func startFileBenchFiles(b testing.TB) (*Files, string) {
	b.Helper()
	s, addr := startFileServer(b, `
listen {
  http = "127.0.0.1:0"
  self = "{{SELF}}"
}
backend "origin" { url = "{{ORIGIN}}" }
route "/" {
  backend = backend.origin
}
plugin "file" {}
file "f4k" { path = "f4k.txt" }
route "/file4k" {
  respond { file = file.f4k }
}
`)
	contents := make([]byte, 4096)
	for i := range contents {
		contents[i] = 'a' + byte(i%26)
	}
	loadReader(s, "f4k", contents, time.Now().Add(-time.Hour), "0123456789abcdef01234567", "")
	return s, addr
}

// BenchmarkFileResponse4K is a 4 KiB response from a reader (respond {
// file = … }); BenchmarkFileCacheHit4K a 4 KiB cache hit on the same
// server, for comparison (issue 4: both answer from memory, on the same
// h1 fast path).
func BenchmarkFileResponse4K(b *testing.B) { benchloop.Hit(b, startFileBench(b), "/file4k") }
func BenchmarkFileCacheHit4K(b *testing.B) { benchloop.Hit(b, startFileBench(b), "/bytes/4k") }
