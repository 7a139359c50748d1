package backend

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// benchOrigin serves a constant 1 KiB body from a raw listener that does
// not allocate per request, so that the allocations a benchmark reports
// are the client side's alone.
func benchOrigin(b *testing.B) string {
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n" +
		"Cache-Control: max-age=60\r\nContent-Length: 1024\r\n\r\n" + strings.Repeat("z", 1024))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				br := bufio.NewReaderSize(c, 4096)
				for {
					// A request head ends with an empty line; GETs
					// have no body.
					for {
						line, err := br.ReadSlice('\n')
						if err != nil {
							return
						}
						if len(line) <= 2 {
							break
						}
					}
					if _, err := c.Write(resp); err != nil {
						return
					}
				}
			}()
		}
	}()
	b.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return "http://" + ln.Addr().String()
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
// keep-alive connection: Do, read the body, close it. Allocations are the
// client side's: Do's own and the transport's.
func BenchmarkDo(b *testing.B) {
	be := newBackend(b, Config{URL: benchOrigin(b)})
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
	be := newBackend(b, Config{URL: benchOrigin(b)})
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
	origin := benchOrigin(b)
	tr := &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}
	b.Cleanup(tr.CloseIdleConnections)
	req, err := http.NewRequest("GET", origin+"/obj/1?v=2", nil)
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
