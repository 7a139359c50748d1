package demoorigin

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkBytes1k measures the handler alone on /bytes/1k.
func BenchmarkBytes1k(b *testing.B) {
	o := New(nil)
	req := httptest.NewRequest(http.MethodGet, "/bytes/1k", nil)
	b.ReportAllocs()
	b.SetBytes(1024)
	for b.Loop() {
		w := httptest.NewRecorder()
		o.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatal(w.Code)
		}
	}
}

// BenchmarkBytes1kLoopback measures /bytes/1k through net/http on
// loopback, with keep-alive, as the bench's cache warm-up sees it.
func BenchmarkBytes1kLoopback(b *testing.B) {
	srv := httptest.NewServer(New(nil))
	defer srv.Close()
	client := srv.Client()
	b.ReportAllocs()
	b.SetBytes(1024)
	for b.Loop() {
		res, err := client.Get(srv.URL + "/bytes/1k")
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
}

// BenchmarkBigFill measures the generator behind /big.
func BenchmarkBigFill(b *testing.B) {
	p := make([]byte, chunkSize)
	b.SetBytes(chunkSize)
	var off int64
	for b.Loop() {
		fill(p, off, 1)
		off += chunkSize
	}
}
