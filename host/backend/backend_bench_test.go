package backend

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// benchOrigin serves a constant 1 KiB body.
func benchOrigin(b *testing.B) *httptest.Server {
	body := []byte(strings.Repeat("z", 1024))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Cache-Control", "max-age=60")
		w.Write(body)
	}))
	b.Cleanup(srv.Close)
	return srv
}

// benchReq is a typical client request as the server hands it over.
func benchReq() *http.Request {
	req := clientReq("GET", "/obj/1?v=2", nil)
	req.Header.Set("User-Agent", "bench/1.0")
	req.Header.Set("Accept", "*/*")
	req.Header.Set("Accept-Encoding", "gzip")
	req.Header.Set("Connection", "keep-alive")
	return req
}

// BenchmarkDo measures one miss-path fetch of a 1 KiB object over a pooled
// keep-alive connection: Do, read the body, close it. Allocations include
// the transport's and those of the reading side of net/http.
func BenchmarkDo(b *testing.B) {
	srv := benchOrigin(b)
	be := newBackend(b, Config{URL: srv.URL})
	req := benchReq()
	buf := make([]byte, 4096)
	b.ReportAllocs()
	b.SetBytes(1024)
	for b.Loop() {
		resp, err := be.Do(context.Background(), req)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.CopyBuffer(io.Discard, resp.Body, buf); err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
	}
}

// BenchmarkDoParallel is BenchmarkDo from GOMAXPROCS goroutines.
func BenchmarkDoParallel(b *testing.B) {
	srv := benchOrigin(b)
	be := newBackend(b, Config{URL: srv.URL})
	b.ReportAllocs()
	b.SetBytes(1024)
	b.RunParallel(func(pb *testing.PB) {
		req := benchReq()
		buf := make([]byte, 4096)
		for pb.Next() {
			resp, err := be.Do(context.Background(), req)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.CopyBuffer(io.Discard, resp.Body, buf); err != nil {
				b.Fatal(err)
			}
			resp.Body.Close()
		}
	})
}

// BenchmarkTransport is the same fetch through a bare, equally tuned
// http.Transport, for the overhead of Do.
func BenchmarkTransport(b *testing.B) {
	srv := benchOrigin(b)
	tr := &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}
	b.Cleanup(tr.CloseIdleConnections)
	req, err := http.NewRequest("GET", srv.URL+"/obj/1?v=2", nil)
	if err != nil {
		b.Fatal(err)
	}
	req.Header = benchReq().Header.Clone()
	req.Header.Del("Connection")
	buf := make([]byte, 4096)
	b.ReportAllocs()
	b.SetBytes(1024)
	for b.Loop() {
		resp, err := tr.RoundTrip(req)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.CopyBuffer(io.Discard, resp.Body, buf); err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
	}
}
