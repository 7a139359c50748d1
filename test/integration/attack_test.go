package integration

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// edgeConns counts the edge's sockets of client connections (not
// listening, not in TIME-WAIT, which holds no descriptor).
func edgeConns(t *testing.T, addr string) int {
	t.Helper()
	_, port, _ := net.SplitHostPort(addr)
	out, err := exec.Command("ss", "-tanH", "sport = :"+port).CombinedOutput()
	if err != nil {
		t.Fatalf("ss: %v %s", err, out)
	}
	n := 0
	for _, l := range strings.Split(string(out), "\n") {
		if l != "" && !strings.HasPrefix(l, "LISTEN") && !strings.HasPrefix(l, "TIME-WAIT") {
			n++
		}
	}
	return n
}

// servedConn dials addr and has one request answered on the connection,
// which then waits for the next (and parks); closed when the test ends.
func servedConn(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	br := bufio.NewReader(c)
	rawGet(t, c, br, "/bytes/10")
	return c, br
}

func rawGet(t *testing.T, c net.Conn, br *bufio.Reader, path string) *http.Response {
	t.Helper()
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path)
	return readResp(t, c, br)
}

func readResp(t *testing.T, c net.Conn, br *bufio.Reader) *http.Response {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	resp.Body = io.NopCloser(bytes.NewReader(b))
	return resp
}

func TestAttackParked(t *testing.T) {
	o := startOrigin(t)
	e := newEdge(t, baseConfig(o.URL, "limits {\n idle_timeout = \"3s\"\n header_timeout = \"1s\"\n max_connections = 50\n}\n"))

	t.Run("pipelined after park", func(t *testing.T) {
		c, br := servedConn(t, e.HTTP)
		time.Sleep(400 * time.Millisecond)
		fmt.Fprintf(c, "GET /bytes/11 HTTP/1.1\r\nHost: x\r\n\r\nGET /bytes/12 HTTP/1.1\r\nHost: x\r\n\r\nGET /bytes/13 HTTP/1.1\r\nHost: x\r\n\r\n")
		for _, n := range []int64{11, 12, 13} {
			r := readResp(t, c, br)
			if r.ContentLength != n {
				t.Fatalf("got length %d, want %d", r.ContentLength, n)
			}
		}
		// split head across a park
		c.Write([]byte("GET /bytes/1"))
		time.Sleep(400 * time.Millisecond)
		c.Write([]byte("4 HTTP/1.1\r\nHost: x\r\n\r\n"))
		if r := readResp(t, c, br); r.ContentLength != 14 {
			t.Fatalf("split head: got %d", r.ContentLength)
		}
	})

	t.Run("trickle after park", func(t *testing.T) {
		c, br := servedConn(t, e.HTTP)
		time.Sleep(400 * time.Millisecond)
		start := time.Now()
		head := "GET /bytes/10 HTTP/1.1\r\nHost: x\r\nX-A: " + strings.Repeat("a", 100) + "\r\n\r\n"
		closed := false
		for i := 0; i < len(head); i++ {
			if _, err := c.Write([]byte{head[i]}); err != nil {
				closed = true
				break
			}
			time.Sleep(50 * time.Millisecond)
			if time.Since(start) > 4*time.Second {
				break
			}
		}
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		b, _ := io.ReadAll(br)
		t.Logf("trickle: closed on write %v after %v; got %q", closed, time.Since(start), b)
		if !bytes.Contains(b, []byte("408")) && !closed {
			t.Errorf("header timeout not enforced after park: %q", b)
		}
	})

	t.Run("fd and conn churn", func(t *testing.T) {
		var conns []net.Conn
		for i := 0; i < 40; i++ {
			c, err := net.Dial("tcp", e.HTTP)
			if err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(c)
			rawGet(t, c, br, "/bytes/10")
			conns = append(conns, c)
		}
		time.Sleep(400 * time.Millisecond)
		for i, c := range conns {
			switch i % 3 {
			case 0:
				c.(*net.TCPConn).SetLinger(0)
				c.Close()
			case 1:
				c.(*net.TCPConn).CloseWrite()
			case 2:
				c.Close()
			}
		}
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) && edgeConns(t, e.HTTP) > 0 {
			time.Sleep(100 * time.Millisecond)
		}
		if n := edgeConns(t, e.HTTP); n > 0 {
			t.Errorf("%d client sockets left after closing all", n)
		}
		for _, c := range conns {
			c.Close()
		}
	})

	t.Run("more than max_connections", func(t *testing.T) {
		var conns []net.Conn
		for i := 0; i < 120; i++ {
			c, err := net.Dial("tcp", e.HTTP)
			if err != nil {
				t.Fatal(err)
			}
			conns = append(conns, c)
			br := bufio.NewReader(c)
			fmt.Fprintf(c, "GET /bytes/5 HTTP/1.1\r\nHost: x\r\n\r\n")
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("conn %d: %v", i, err)
			}
			io.ReadAll(resp.Body)
			if i%10 == 0 {
				time.Sleep(150 * time.Millisecond)
			}
		}
		for _, c := range conns {
			c.Close()
		}
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) && edgeConns(t, e.HTTP) > 0 {
			time.Sleep(100 * time.Millisecond)
		}
		if n := edgeConns(t, e.HTTP); n > 0 {
			t.Errorf("%d client sockets left after closing all", n)
		}
	})

	t.Run("kill client mid response", func(t *testing.T) {
		for i := 0; i < 10; i++ {
			c, err := net.Dial("tcp", e.HTTP)
			if err != nil {
				t.Fatal(err)
			}
			c.(*net.TCPConn).SetReadBuffer(4096)
			fmt.Fprintf(c, "GET /bytes/%d HTTP/1.1\r\nHost: x\r\n\r\n", 8<<20+i)
			buf := make([]byte, 1000)
			io.ReadFull(c, buf)
			c.(*net.TCPConn).SetLinger(0)
			c.Close()
		}
		deadline := time.Now().Add(8 * time.Second)
		for time.Now().Before(deadline) && edgeConns(t, e.HTTP) > 0 {
			time.Sleep(100 * time.Millisecond)
		}
		if n := edgeConns(t, e.HTTP); n > 0 {
			out, _ := exec.Command("ss", "-tanpe").CombinedOutput()
			t.Errorf("%d client sockets left after closing all\n%s", n, out)
		}
	})
	t.Run("idle timeout parked", func(t *testing.T) {
		c, br := servedConn(t, e.HTTP)
		start := time.Now()
		c.SetReadDeadline(time.Now().Add(8 * time.Second))
		_, err := br.ReadByte()
		if time.Since(start) > 4*time.Second || err == nil {
			t.Errorf("idle connection closed after %v (%v)", time.Since(start), err)
		}
	})
}

// slowChunkedOrigin sends body chunked in 64 KiB pieces, pausing between
// them, with an ETag and optional Vary.
func slowChunkedOrigin(t *testing.T, body []byte, pause time.Duration, vary string) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("ETag", `"v1"`)
		if vary != "" {
			w.Header().Set("Vary", vary)
		}
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodHead {
			return
		}
		fl := w.(http.Flusher)
		for off := 0; off < len(body); off += 64 << 10 {
			w.Write(body[off:min(off+64<<10, len(body))])
			fl.Flush()
			time.Sleep(pause)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func TestAttackChunkedJoiners(t *testing.T) {
	t.Run("stored", func(t *testing.T) { attackChunkedJoiners(t, "") })
	t.Run("spilled", func(t *testing.T) { attackChunkedJoiners(t, "256KiB") })
}

func attackChunkedJoiners(t *testing.T, maxObject string) {
	body := randomBody(1<<20 + 777)
	srv, n := slowChunkedOrigin(t, body, 20*time.Millisecond, "")
	cfg := baseConfig(srv.URL, "")
	if maxObject != "" {
		cfg = strings.Replace(cfg, `disk   = "1GiB"`, "disk   = \"1GiB\"\n  max_object = \""+maxObject+"\"", 1)
	}
	e := newEdge(t, cfg)
	type req struct {
		method string
		hdr    []string
		check  func(r *http.Response, b []byte) error
	}
	whole := func(r *http.Response, b []byte) error {
		if r.StatusCode != 200 || !bytes.Equal(b, body) {
			return fmt.Errorf("status %d, %d bytes, equal %v", r.StatusCode, len(b), bytes.Equal(b, body))
		}
		return nil
	}
	rng := func(from, to int) func(r *http.Response, b []byte) error {
		return func(r *http.Response, b []byte) error {
			if r.StatusCode == 200 {
				return whole(r, b)
			}
			if r.StatusCode != 206 || !bytes.Equal(b, body[from:to+1]) {
				return fmt.Errorf("range %d-%d: status %d, %d bytes, Content-Range %q", from, to, r.StatusCode, len(b), r.Header.Get("Content-Range"))
			}
			return nil
		}
	}
	reqs := []req{
		{"GET", nil, whole},
		{"HEAD", nil, func(r *http.Response, b []byte) error {
			if r.StatusCode != 200 || len(b) != 0 {
				return fmt.Errorf("HEAD: status %d, %d body bytes", r.StatusCode, len(b))
			}
			return nil
		}},
		{"GET", []string{"Range", "bytes=0-99"}, rng(0, 99)},
		{"GET", []string{"Range", "bytes=700000-700099"}, rng(700000, 700099)},
		{"GET", []string{"If-None-Match", `"v1"`}, func(r *http.Response, b []byte) error {
			if r.StatusCode != 304 || len(b) != 0 {
				return fmt.Errorf("INM: status %d, %d bytes", r.StatusCode, len(b))
			}
			return nil
		}},
		// Preconditions come before Range (RFC 9110 §13.2.2).
		{"GET", []string{"Range", "bytes=0-9", "If-None-Match", `"v1"`}, func(r *http.Response, b []byte) error {
			if r.StatusCode != 304 || len(b) != 0 {
				return fmt.Errorf("Range with a matching If-None-Match: status %d, %d bytes", r.StatusCode, len(b))
			}
			return nil
		}},
		{"GET", []string{"Range", "bytes=0-9", "If-Match", `"other"`}, func(r *http.Response, b []byte) error {
			if r.StatusCode != 412 {
				return fmt.Errorf("Range with a failing If-Match: status %d, %d bytes", r.StatusCode, len(b))
			}
			return nil
		}},
		{"GET", nil, whole},
	}
	var wg sync.WaitGroup
	errs := make([]error, len(reqs))
	for i, q := range reqs {
		wg.Add(1)
		go func(i int, q req) {
			defer wg.Done()
			time.Sleep(time.Duration(i) * 30 * time.Millisecond)
			hr, _ := http.NewRequest(q.method, e.url("/chunked"), nil)
			for j := 0; j+1 < len(q.hdr); j += 2 {
				hr.Header.Set(q.hdr[j], q.hdr[j+1])
			}
			resp, err := client.Do(hr)
			if err != nil {
				errs[i] = err
				return
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				errs[i] = fmt.Errorf("%s %v: body: %v (Cache-Status %q)", q.method, q.hdr, err, resp.Header.Get("Cache-Status"))
				return
			}
			if err := q.check(resp, b); err != nil {
				errs[i] = fmt.Errorf("%s %v: %v (Cache-Status %q)", q.method, q.hdr, err, resp.Header.Get("Cache-Status"))
			}
		}(i, q)
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	t.Logf("origin requests: %d", n.Load())
	for i, q := range reqs {
		hr, _ := http.NewRequest(q.method, e.url("/chunked"), nil)
		for j := 0; j+1 < len(q.hdr); j += 2 {
			hr.Header.Set(q.hdr[j], q.hdr[j+1])
		}
		resp, err := client.Do(hr)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err := q.check(resp, b); err != nil {
			t.Errorf("after: req %d: %v", i, err)
		}
	}
}

// A body in cache.db (past the inline size) read in ranges across its
// 1 MiB chunks, conditionally, by HEAD.
func TestAttackDiskBodyRanges(t *testing.T) {
	o := startOrigin(t)
	e := newEdge(t, baseConfig(o.URL, ""))
	const size = 6<<20 + 123
	path := fmt.Sprintf("/bytes/%d", size)
	resp, err := http.Get(o.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	etag := resp.Header.Get("Etag")
	if len(want) != size || etag == "" {
		t.Fatalf("origin: %d bytes, etag %q", len(want), etag)
	}
	if r := e.get(path); !bytes.Equal(r.Body, want) {
		t.Fatalf("miss: %d bytes", len(r.Body))
	}
	time.Sleep(200 * time.Millisecond)
	for _, tc := range []struct {
		hdr  []string
		code int
		from int
		to   int // inclusive; -1: no body
	}{
		{[]string{"Range", "bytes=1048570-1048585"}, 206, 1048570, 1048585},
		{[]string{"Range", "bytes=0-0"}, 206, 0, 0},
		{[]string{"Range", "bytes=-10"}, 206, size - 10, size - 1},
		{[]string{"Range", fmt.Sprintf("bytes=%d-", 5<<20-1)}, 206, 5<<20 - 1, size - 1},
		{[]string{"Range", fmt.Sprintf("bytes=%d-%d", 1<<20, 3<<20)}, 206, 1 << 20, 3 << 20},
		{[]string{"Range", fmt.Sprintf("bytes=%d-", size)}, 416, 0, -1},
		{[]string{"If-None-Match", etag}, 304, 0, -1},
		{[]string{"If-None-Match", `"other"`}, 200, 0, size - 1},
		{[]string{"Range", "bytes=2097150-2097160", "If-Range", etag}, 206, 2097150, 2097160},
		{[]string{"Range", "bytes=2097150-2097160", "If-Range", `"other"`}, 200, 0, size - 1},
	} {
		r := e.get(path, tc.hdr...)
		if r.Status != tc.code {
			t.Errorf("%v: status %d, want %d (Cache-Status %q)", tc.hdr, r.Status, tc.code, r.Header.Get("Cache-Status"))
			continue
		}
		if tc.to < 0 {
			if len(r.Body) != 0 && tc.code != 416 {
				t.Errorf("%v: %d body bytes", tc.hdr, len(r.Body))
			}
			continue
		}
		if !bytes.Equal(r.Body, want[tc.from:tc.to+1]) {
			t.Errorf("%v: %d bytes differ from %d-%d (Content-Range %q)", tc.hdr, len(r.Body), tc.from, tc.to, r.Header.Get("Content-Range"))
		}
	}
	// Several ranges, across chunks.
	r := e.get(path, "Range", "bytes=0-9,1048575-1048580,5000000-5000010")
	mt, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if r.Status != 206 || mt != "multipart/byteranges" {
		t.Fatalf("multi-range: %d %q", r.Status, r.Header.Get("Content-Type"))
	}
	mr := multipart.NewReader(bytes.NewReader(r.Body), params["boundary"])
	for _, rg := range [][2]int{{0, 9}, {1048575, 1048580}, {5000000, 5000010}} {
		p, err := mr.NextPart()
		if err != nil {
			t.Fatalf("part %v: %v", rg, err)
		}
		b, _ := io.ReadAll(p)
		if !bytes.Equal(b, want[rg[0]:rg[1]+1]) {
			t.Errorf("part %v: %d bytes differ (%q)", rg, len(b), p.Header.Get("Content-Range"))
		}
	}
	h := e.do("HEAD", path)
	if h.Status != 200 || h.Header.Get("Content-Length") != fmt.Sprint(size) || len(h.Body) != 0 {
		t.Errorf("HEAD: %d, Content-Length %q, %d body bytes", h.Status, h.Header.Get("Content-Length"), len(h.Body))
	}
}

// SIGTERM with parked connections, a waiting one and a request in flight:
// the request ends whole, the rest are closed, the process exits soon.
func TestAttackShutdownParked(t *testing.T) {
	o := startOrigin(t)
	e := newEdge(t, baseConfig(o.URL, ""))
	var conns []net.Conn
	for i := 0; i < 30; i++ {
		c, err := net.Dial("tcp", e.HTTP)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		rawGet(t, c, bufio.NewReader(c), "/bytes/10")
		conns = append(conns, c)
	}
	// Half a head on one of them: no request yet, closed as idle.
	conns[0].Write([]byte("GET /bytes/1"))
	time.Sleep(300 * time.Millisecond)
	c, err := net.Dial("tcp", e.HTTP)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /delay/500 HTTP/1.1\r\nHost: x\r\n\r\n") // within first_byte_timeout (1 s), under -race too
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	e.cmd.Process.Signal(syscall.SIGTERM)
	r := readResp(t, c, bufio.NewReader(c))
	if r.StatusCode != 200 {
		t.Errorf("request in flight at SIGTERM: %d", r.StatusCode)
	}
	select {
	case <-e.done:
	case <-time.After(5 * time.Second):
		t.Fatalf("edgehost still running 5 s after SIGTERM")
	}
	t.Logf("exited %v after SIGTERM", time.Since(start))
	for i, c := range conns {
		c.SetReadDeadline(time.Now().Add(time.Second))
		if n, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("parked connection %d still open after exit (%d, %v)", i, n, err)
		}
	}
}

// A client that stops reading, among the coalesced readers of a chunked
// body too large to store, no longer holds the others back until
// send_timeout cuts it off: the spilled stream keeps at most a window
// ahead of its slowest reader (memory bound), and a reader that took
// nothing for 4 s while the others waited on it is let go (its body ends
// unterminated). Before, the fast reader took 5.0 s with send_timeout 4s,
// and would take a minute with the default send_timeout.
func TestAttackSpilledStalledReader(t *testing.T) {
	body := randomBody(8 << 20)
	srv, n := slowChunkedOrigin(t, body, 20*time.Millisecond, "")
	cfg := strings.Replace(baseConfig(srv.URL, "limits {\n send_timeout = \"60s\"\n}\n"), `disk   = "1GiB"`, "disk   = \"1GiB\"\n  max_object = \"256KiB\"", 1)
	e := newEdge(t, cfg)
	stalled, err := net.Dial("tcp", e.HTTP)
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()
	stalled.(*net.TCPConn).SetReadBuffer(4 << 10)
	fmt.Fprintf(stalled, "GET /chunked HTTP/1.1\r\nHost: %s\r\n\r\n", e.HTTP)
	time.Sleep(30 * time.Millisecond)
	start := time.Now()
	r := e.get("/chunked")
	if !bytes.Equal(r.Body, body) {
		t.Fatalf("fast reader: %d bytes", len(r.Body))
	}
	if got := n.Load(); got != 1 {
		t.Fatalf("origin saw %d requests: the fast reader did not join", got)
	}
	// The origin sends 8 MiB in 2.6 s; the stalled reader is let go 4 s
	// after it stopped taking bytes.
	if d := time.Since(start); d > 12*time.Second {
		t.Errorf("the fast reader took %v behind a client that reads nothing", d)
	}
}

// A HEAD that leads a chunked flight, then a GET on the same connection:
// the HEAD's answer has no body (whatever its framing headers say), so the
// GET's answer is read from the right place.
func TestAttackHeadLeadsChunkedFlight(t *testing.T) {
	body := randomBody(300<<10 + 5)
	srv, _ := slowChunkedOrigin(t, body, 5*time.Millisecond, "")
	e := newEdge(t, baseConfig(srv.URL, ""))
	c, err := net.Dial("tcp", e.HTTP)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	for i, path := range []string{"/cold", "/cold2"} {
		fmt.Fprintf(c, "HEAD %s HTTP/1.1\r\nHost: x\r\n\r\nGET %s HTTP/1.1\r\nHost: x\r\n\r\n", path, path)
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		h, err := http.ReadResponse(br, &http.Request{Method: "HEAD"})
		if err != nil {
			t.Fatal(err)
		}
		h.Body.Close()
		if h.StatusCode != 200 {
			t.Fatalf("HEAD: %d", h.StatusCode)
		}
		g := readResp(t, c, br)
		got, _ := io.ReadAll(g.Body)
		if g.StatusCode != 200 || !bytes.Equal(got, body) {
			t.Fatalf("round %d: GET after HEAD: %d, %d bytes (HEAD said %v)", i, g.StatusCode, len(got), h.Header)
		}
		// and once stored
		fmt.Fprintf(c, "HEAD %s HTTP/1.1\r\nHost: x\r\n\r\n", path)
		h, err = http.ReadResponse(br, &http.Request{Method: "HEAD"})
		if err != nil || h.Header.Get("Content-Length") != fmt.Sprint(len(body)) {
			t.Fatalf("HEAD of the stored object: %v, %v", err, h.Header)
		}
	}
}

// Concurrent misses of two variants of a chunked Vary response: each
// client gets its own variant's bytes, and both are stored.
func TestAttackChunkedVary(t *testing.T) {
	bodies := map[string][]byte{"a": randomBody(400 << 10), "b": bytes.Repeat([]byte("b"), 300<<10)}
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		body := bodies[r.Header.Get("X-V")]
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Vary", "X-V")
		w.WriteHeader(200)
		for off := 0; off < len(body); off += 32 << 10 {
			w.Write(body[off:min(off+32<<10, len(body))])
			w.(http.Flusher).Flush()
			time.Sleep(10 * time.Millisecond)
		}
	}))
	defer srv.Close()
	e := newEdge(t, baseConfig(srv.URL, ""))
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := 0; i < 8; i++ {
		v := []string{"a", "b"}[i%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("GET", e.url("/v"), nil)
			req.Header.Set("X-V", v)
			resp, err := client.Do(req)
			if err != nil {
				errs <- err
				return
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || !bytes.Equal(b, bodies[v]) {
				errs <- fmt.Errorf("variant %s: %d bytes, %v (Cache-Status %q)", v, len(b), err, resp.Header.Get("Cache-Status"))
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, v := range []string{"a", "b"} {
		r := e.get("/v", "X-V", v)
		if !bytes.Equal(r.Body, bodies[v]) {
			t.Errorf("variant %s after: %d bytes (Cache-Status %q)", v, len(r.Body), r.Header.Get("Cache-Status"))
		}
		wantCacheStatus(t, r, "hit")
	}
	t.Logf("origin requests: %d", n.Load())
}

// A hit answered on the fast path, pipelined before a slow miss: the hit's
// answer does not wait in the write buffer for the miss's origin.
func TestAttackPipelinedHitBeforeSlowMiss(t *testing.T) {
	o := startOrigin(t)
	e := newEdge(t, strings.Replace(baseConfig(o.URL, ""), `first_byte_timeout    = "1s"`, `first_byte_timeout    = "5s"`, 1))
	wantCacheStatus(t, e.get("/bytes/10"), "stored")
	c, err := net.Dial("tcp", e.HTTP)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	start := time.Now()
	fmt.Fprintf(c, "GET /bytes/10 HTTP/1.1\r\nHost: %s\r\n\r\nGET /delay/2000 HTTP/1.1\r\nHost: %s\r\n\r\n", e.HTTP, e.HTTP)
	r := readResp(t, c, br)
	first := time.Since(start)
	if r.StatusCode != 200 || r.ContentLength != 10 || !strings.Contains(r.Header.Get("Cache-Status"), "hit") {
		t.Fatalf("first: %d, %d bytes, %q", r.StatusCode, r.ContentLength, r.Header.Get("Cache-Status"))
	}
	r = readResp(t, c, br)
	t.Logf("first answer after %v, second after %v (%d)", first, time.Since(start), r.StatusCode)
	if first > time.Second {
		t.Errorf("the hit's answer waited %v for the pipelined miss behind it", first)
	}
}

// 300 clients at max_connections 64, each opening connections in turn and
// sending keep-alive requests at uneven pauses (parks, resumes and sheds
// racing), a third of them closing with a reset: every socket is gone
// afterwards and the server still answers.
func TestAttackConnectionStorm(t *testing.T) {
	o := startOrigin(t)
	e := newEdge(t, baseConfig(o.URL, "limits {\n idle_timeout = \"2s\"\n header_timeout = \"1s\"\n max_connections = 64\n}\n"))
	e.get("/bytes/100")
	var ok, bad atomic.Int32
	var wg sync.WaitGroup
	for w := 0; w < 300; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 5; i++ {
				c, err := net.DialTimeout("tcp", e.HTTP, 5*time.Second)
				if err != nil {
					bad.Add(1)
					continue
				}
				br := bufio.NewReader(c)
				for j := 0; j < 3; j++ {
					c.SetDeadline(time.Now().Add(10 * time.Second))
					fmt.Fprintf(c, "GET /bytes/100 HTTP/1.1\r\nHost: x\r\n\r\n")
					resp, err := http.ReadResponse(br, nil)
					if err != nil {
						break // shed
					}
					b, _ := io.ReadAll(resp.Body)
					if len(b) == 100 {
						ok.Add(1)
					}
					time.Sleep(time.Duration((w*7+j)%200) * time.Millisecond)
				}
				if w%3 == 0 {
					c.(*net.TCPConn).SetLinger(0)
				}
				c.Close()
			}
		}(w)
	}
	wg.Wait()
	t.Logf("answered %d, dial errors %d", ok.Load(), bad.Load())
	if ok.Load() < 300 || bad.Load() > 0 {
		t.Errorf("answered %d, dial errors %d", ok.Load(), bad.Load())
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) && edgeConns(t, e.HTTP) > 0 {
		time.Sleep(100 * time.Millisecond)
	}
	if n := edgeConns(t, e.HTTP); n > 0 {
		t.Errorf("%d sockets left", n)
	}
	if r := e.get("/bytes/100"); r.Status != 200 {
		t.Errorf("after: %d", r.Status)
	}
}
