package integration

import (
	"bytes"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// chunkedOrigin answers every GET with body sent chunked (no
// Content-Length) after a pause that lets concurrent misses gather, in
// 32 KiB writes; with failAt > 0 it drops the connection after failAt
// bytes, without the last chunk.
func chunkedOrigin(t *testing.T, body []byte, failAt int) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		time.Sleep(300 * time.Millisecond)
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Content-Type", "application/octet-stream")
		w.WriteHeader(http.StatusOK)
		fl := w.(http.Flusher)
		for off := 0; off < len(body); off += 32 << 10 {
			end := min(off+32<<10, len(body))
			if failAt > 0 && end > failAt {
				w.Write(body[off:failAt])
				fl.Flush()
				conn, _, err := http.NewResponseController(w).Hijack()
				if err == nil {
					conn.Close()
				}
				return
			}
			w.Write(body[off:end])
			fl.Flush()
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func randomBody(n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(13, 8))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// concurrentGets sends n GETs of path at once and returns each one's
// status, Content-Length header, body and body read error.
type chunkedResult struct {
	status  int
	length  string
	chunked bool
	body    []byte
	err     error
}

func concurrentGets(t *testing.T, e *edge, path string, n int) []chunkedResult {
	t.Helper()
	out := make([]chunkedResult, n)
	var wg sync.WaitGroup
	for i := range out {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			resp, err := client.Get(e.url(path))
			if err != nil {
				out[i].err = err
				return
			}
			defer resp.Body.Close()
			out[i].status, out[i].length = resp.StatusCode, resp.Header.Get("Content-Length")
			out[i].chunked = len(resp.TransferEncoding) > 0
			out[i].body, out[i].err = io.ReadAll(resp.Body)
		}(i)
	}
	wg.Wait()
	return out
}

// Issue 13, item 8: concurrent cold GETs of a chunked cacheable 200 share
// one origin fetch, get the origin's bytes, and the object is stored.
func TestRegressChunkedCoalescing(t *testing.T) {
	body := randomBody(3<<20 + 12345)
	srv, n := chunkedOrigin(t, body, 0)
	e := newEdge(t, baseConfig(srv.URL, ""))
	for i, r := range concurrentGets(t, e, "/chunked", 8) {
		if r.err != nil || r.status != 200 {
			t.Fatalf("client %d: status %d, err %v", i, r.status, r.err)
		}
		if !bytes.Equal(r.body, body) {
			t.Fatalf("client %d: body of %d bytes differs from the origin's %d", i, len(r.body), len(body))
		}
	}
	if got := n.Load(); got != 1 {
		t.Fatalf("origin saw %d requests for 8 concurrent misses, want 1", got)
	}
	if e.metric("edgehost_coalesced_waits_total") < 1 {
		t.Error("coalesced waits not counted")
	}
	r := e.get("/chunked")
	wantCacheStatus(t, r, "hit")
	if got, want := r.Header.Get("Content-Length"), strconv.Itoa(len(body)); got != want || !bytes.Equal(r.Body, body) {
		t.Fatalf("hit: Content-Length %q (want %s), body equal %v", got, want, bytes.Equal(r.Body, body))
	}
}

// A chunked body that fails midway reaches every coalesced client as a
// broken body (the last chunk never comes), never as a shorter body that
// looks complete, and is not stored.
func TestRegressChunkedCoalescingOriginFails(t *testing.T) {
	body := randomBody(1 << 20)
	srv, n := chunkedOrigin(t, body, 600<<10)
	e := newEdge(t, baseConfig(srv.URL, ""))
	for i, r := range concurrentGets(t, e, "/fails", 8) {
		if r.err == nil {
			t.Fatalf("client %d: body of %d bytes ended cleanly (status %d, Content-Length %q); the origin failed at %d",
				i, len(r.body), r.status, r.length, 600<<10)
		}
		if !bytes.Equal(r.body, body[:len(r.body)]) {
			t.Fatalf("client %d: the %d bytes received differ from the origin's", i, len(r.body))
		}
	}
	if got := n.Load(); got != 1 {
		t.Fatalf("origin saw %d requests for 8 concurrent misses, want 1", got)
	}
	r := concurrentGets(t, e, "/fails", 1)[0]
	if r.err == nil {
		t.Fatalf("after the failure: a clean body of %d bytes (a truncated object was stored?)", len(r.body))
	}
	if got := n.Load(); got != 2 {
		t.Fatalf("origin saw %d requests, want 2: nothing was to be stored", got)
	}
}

// A chunked body larger than max_object is not stored, but every
// coalesced client still gets it whole.
func TestRegressChunkedCoalescingTooLarge(t *testing.T) {
	body := randomBody(5<<20 + 777)
	srv, n := chunkedOrigin(t, body, 0)
	cfg := strings.Replace(baseConfig(srv.URL, ""), `disk   = "1GiB"`, `disk   = "1GiB"
  max_object = "1MiB"`, 1)
	e := newEdge(t, cfg)
	for i, r := range concurrentGets(t, e, "/large", 8) {
		if r.err != nil || r.status != 200 || !bytes.Equal(r.body, body) {
			t.Fatalf("client %d: status %d, err %v, %d bytes (want the origin's %d)", i, r.status, r.err, len(r.body), len(body))
		}
	}
	if got := n.Load(); got != 1 {
		t.Fatalf("origin saw %d requests for 8 concurrent misses, want 1", got)
	}
	r := e.get("/large")
	if !bytes.Equal(r.Body, body) || strings.Contains(r.Header.Get("Cache-Status"), "hit") {
		t.Fatalf("after: Cache-Status %q, %d bytes: a body over max_object was stored or cut", r.Header.Get("Cache-Status"), len(r.Body))
	}
}
