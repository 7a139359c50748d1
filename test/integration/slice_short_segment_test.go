package integration

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// shortSegmentOrigin serves /big/x: 3 MiB, strong ETag, ranges. The first
// request for segment 1 (bytes=1048576-2097151) is answered with a 206
// whose chunked body stops after half the segment and ends cleanly (an
// origin bug, or a 206 without Content-Length cut by a connection close).
func shortSegmentOrigin(t *testing.T, shortOnce *atomic.Bool) (*httptest.Server, []byte) {
	return shortSegmentOriginTTL(t, shortOnce, 600, nil)
}

func shortSegmentOriginTTL(t *testing.T, shortOnce *atomic.Bool, maxAge int, down *atomic.Bool) (*httptest.Server, []byte) {
	const size = 3 << 20
	body := make([]byte, size)
	for i := range body {
		body[i] = byte(i*7 + i/1000)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down != nil && down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		h := w.Header()
		h.Set("Etag", `"v1"`)
		h.Set("Last-Modified", "Mon, 02 Jan 2006 15:04:05 GMT")
		h.Set("Cache-Control", "max-age="+strconv.Itoa(maxAge))
		h.Set("Content-Type", "application/octet-stream")
		rh := r.Header.Get("Range")
		if rh == "" {
			h.Set("Content-Length", strconv.Itoa(size))
			w.WriteHeader(200)
			if r.Method != http.MethodHead {
				w.Write(body)
			}
			return
		}
		var a, b int
		fmt.Sscanf(strings.TrimPrefix(rh, "bytes="), "%d-%d", &a, &b)
		if b >= size {
			b = size - 1
		}
		h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", a, b, size))
		if a == 1<<20 && shortOnce.CompareAndSwap(true, false) {
			w.WriteHeader(206) // no Content-Length: chunked
			w.Write(body[a : a+(b-a+1)/2])
			return // the chunked body ends cleanly, short
		}
		h.Set("Content-Length", strconv.Itoa(b-a+1))
		w.WriteHeader(206)
		w.Write(body[a : b+1])
	}))
	t.Cleanup(srv.Close)
	return srv, body
}

func shortSegmentGet(t *testing.T, e *edge, path string, hdr ...string) (int, []byte, error) {
	req, _ := http.NewRequest("GET", e.url(path), nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// A segment adopted at the response stage is stored even when its body is
// shorter than the segment (fill checks the length only for tx.seg), and
// the subrequest path serves the broken stored segment without a check:
// every later full GET fails mid-body until the meta object expires.
func TestRegressAdoptedShortSegmentStored(t *testing.T) {
	var short atomic.Bool
	short.Store(true)
	srv, body := shortSegmentOrigin(t, &short)
	e := newEdge(t, sliceConfig(srv.URL, "response", "pass"))
	// Cold: a range inside segment 1; the response stage adopts the short 206.
	st, b, err := shortSegmentGet(t, e, "/big/x", "Range", "bytes=1048576-1048675")
	t.Logf("cold range: status %d, %d bytes, err %v", st, len(b), err)
	for i := 0; i < 3; i++ {
		st, b, err := shortSegmentGet(t, e, "/big/x")
		if err != nil || st != 200 || !bytes.Equal(b, body) {
			t.Errorf("full GET %d after the short segment: status %d, %d of %d bytes, err %v", i, st, len(b), len(body), err)
		}
	}
}

// At the response stage, when the slicer says no, fetch closes the 206's
// body (fetch.go:254) while adoptSegment's fill goroutine reads it: the
// backend body's timer field is written by Read and read by Close with no
// synchronisation. Run with an edgehost built with -race.
func TestRegressAdoptedFillCloseRace(t *testing.T) {
	var short atomic.Bool
	srv, body := shortSegmentOrigin(t, &short)
	cfg := strings.Replace(sliceConfig(srv.URL, "response", "pass"), `plugin "slicer" {}`, "plugin \"slicer\" {\n  min_size = 104857600\n}", 1)
	e := newEdge(t, cfg)
	for i := 0; i < 5; i++ {
		st, b, err := shortSegmentGet(t, e, "/big/x?"+strconv.Itoa(i))
		if err != nil || st != 200 || !bytes.Equal(b, body) {
			t.Errorf("GET %d: status %d, %d bytes, err %v", i, st, len(b), err)
		}
	}
	e.stop()
	if log := e.stderr.String(); strings.Contains(log, "DATA RACE") {
		i := strings.Index(log, "WARNING: DATA RACE")
		t.Errorf("data race:\n%s", log[i:min(len(log), i+3000)])
	}
}

// At the response stage, a slicer that fails (here: hung, so Decide times
// out) is not errNotSliceable, yet fetch.go:250 treats every error of the
// partial path alike: it sends a second, whole-object GET to the origin
// and asks the hung plugin again before answering 503 (twice the timeout,
// one wasted origin request per client request).
func TestRegressSlicerDownRefetchesWhole(t *testing.T) {
	var n atomic.Int32
	var short atomic.Bool
	inner, _ := shortSegmentOrigin(t, &short)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		t.Logf("origin: %s Range=%q", r.Method, r.Header.Get("Range"))
		inner.Config.Handler.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	e := newEdge(t, sliceConfig(srv.URL, "response", "pass"))
	pid := e.plugin("slicer").PID
	if pid == 0 {
		t.Fatal("no slicer pid")
	}
	syscall.Kill(pid, syscall.SIGSTOP)
	defer syscall.Kill(pid, syscall.SIGCONT)
	t0 := time.Now()
	st, _, err := shortSegmentGet(t, e, "/big/x")
	t.Logf("status %d err %v after %v, %d origin requests", st, err, time.Since(t0), n.Load())
	if n.Load() != 1 {
		t.Errorf("%d origin requests for one client request with the slicer down, want 1", n.Load())
	}
}

// A sliced object in grace (or usable on error) is served from its meta
// object, but its segments share the meta object's expiry and segment()
// / start() use a stored segment only while it or the meta object is
// fresh: every segment goes to the origin, and with the origin down the
// client gets an error although every byte is in the cache.
func TestRegressSlicedGraceOriginDown(t *testing.T) {
	var short, down atomic.Bool
	srv, body := shortSegmentOriginTTL(t, &short, 1, &down)
	cfg := strings.Replace(sliceConfig(srv.URL, "fetch", "pass"), "backend = backend.origin\n  slice {", "backend = backend.origin\n  grace = \"1h\"\n  slice {", 1)
	if !strings.Contains(cfg, "grace = \"1h\"\n  slice") {
		t.Fatal("config not patched")
	}
	e := newEdge(t, cfg)
	st, b, err := shortSegmentGet(t, e, "/big/x")
	if err != nil || st != 200 || !bytes.Equal(b, body) {
		t.Fatalf("warm-up: status %d, %d bytes, err %v", st, len(b), err)
	}
	time.Sleep(2 * time.Second) // stale, in grace (1h)
	down.Store(true)
	req, _ := http.NewRequest("GET", e.url("/big/x"), nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	t.Logf("in grace, origin down: status %d, Cache-Status %q, %d bytes, err %v", resp.StatusCode, resp.Header.Get("Cache-Status"), len(b), err)
	if err != nil || resp.StatusCode != 200 || !bytes.Equal(b, body) {
		t.Errorf("a sliced object in grace is not served with the origin down")
	}
}
