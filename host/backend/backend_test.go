package backend

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// newBackend builds a backend for cfg and closes it when the test ends.
func newBackend(t testing.TB, cfg Config) *Backend {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = "origin"
	}
	b, err := New(cfg, nil)
	if err != nil {
		t.Fatalf("New(%+v): %v", cfg, err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// clientReq is a request as the server hands it to the state machine:
// RemoteAddr 192.0.2.1:1234, Host example.com.
func clientReq(method, target string, body io.Reader) *http.Request {
	return httptest.NewRequest(method, "http://example.com"+target, body)
}

// rawOrigin serves every accepted connection with handle on a raw TCP
// listener (for origins that misbehave in ways net/http cannot) and returns
// its address. Listener and connections close when the test ends.
func rawOrigin(t *testing.T, handle func(c net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
	)
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
				handle(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// readRequestHead reads one request head from c (and no body).
func readRequestHead(c net.Conn) (*http.Request, *bufio.Reader, error) {
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br)
	return req, br, err
}

// within fails the test unless d lies in [lo, hi].
func within(t *testing.T, what string, d, lo, hi time.Duration) {
	t.Helper()
	if d < lo || d > hi {
		t.Errorf("%s took %v, want between %v and %v", what, d, lo, hi)
	}
}

func TestReuseConnections(t *testing.T) {
	var accepted atomic.Int64
	body := strings.Repeat("x", 1024)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, body)
	}))
	srv.Config.ConnState = func(c net.Conn, s http.ConnState) {
		if s == http.StateNew {
			accepted.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()

	b := newBackend(t, Config{URL: srv.URL})
	for i := range 50 {
		resp, err := b.Do(context.Background(), clientReq("GET", fmt.Sprintf("/obj/%d", i), nil))
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || string(got) != body {
			t.Fatalf("request %d: body %d bytes, err %v", i, len(got), err)
		}
	}
	if got, want := accepted.Load(), int64(1); got != want {
		t.Errorf("origin accepted %d connections over 50 requests, want %d", got, want)
	}
	st := b.Stats()
	if st.Requests != 50 || st.Errors != 0 || st.ConnsOpen != 1 || !st.Healthy {
		t.Errorf("Stats() = %+v, want 50 requests, 0 errors, 1 open connection, healthy", st)
	}
}

func TestConnectRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	b := newBackend(t, Config{URL: "http://" + addr, ConnectTimeout: time.Second})
	start := time.Now()
	resp, err := b.Do(context.Background(), clientReq("GET", "/", nil))
	if err == nil {
		resp.Body.Close()
		t.Fatal("Do succeeded against a closed port")
	}
	within(t, "refused connect", time.Since(start), 0, time.Second)
	if !errors.Is(err, ErrConnect) {
		t.Errorf("err = %v, want ErrConnect", err)
	}
	if got, want := StatusFor(err), http.StatusBadGateway; got != want {
		t.Errorf("StatusFor(%v) = %d, want %d", err, got, want)
	}
	if st := b.Stats(); st.Errors != 1 || !strings.Contains(st.LastError, "connect failed") {
		t.Errorf("Stats() = %+v, want 1 error, LastError naming the connect failure", st)
	}
}

// TestConnectUnreachable dials an address that is not routed (TEST-NET-1):
// depending on the network the connect times out or fails at once
// (unreachable); either way the error is ErrConnect. The timeout proper is
// TestConnectTimeoutFullBacklog.
func TestConnectUnreachable(t *testing.T) {
	b := newBackend(t, Config{URL: "http://192.0.2.1:81", ConnectTimeout: 100 * time.Millisecond})
	start := time.Now()
	resp, err := b.Do(context.Background(), clientReq("GET", "/", nil))
	if err == nil {
		resp.Body.Close()
		t.Fatal("Do succeeded against TEST-NET-1")
	}
	within(t, "connect to TEST-NET-1", time.Since(start), 0, 2*time.Second)
	if !errors.Is(err, ErrConnect) {
		t.Errorf("err = %v, want ErrConnect", err)
	}
	if got, want := StatusFor(err), http.StatusBadGateway; got != want {
		t.Errorf("StatusFor(%v) = %d, want %d", err, got, want)
	}
}

func TestFirstByteTimeout(t *testing.T) {
	// Accepts, reads the request, never answers.
	addr := rawOrigin(t, func(c net.Conn) {
		readRequestHead(c)
		io.Copy(io.Discard, c)
	})
	const timeout = 100 * time.Millisecond
	b := newBackend(t, Config{URL: "http://" + addr, FirstByteTimeout: timeout})
	start := time.Now()
	resp, err := b.Do(context.Background(), clientReq("GET", "/", nil))
	if err == nil {
		resp.Body.Close()
		t.Fatal("Do succeeded against a silent origin")
	}
	within(t, "first byte timeout", time.Since(start), timeout, timeout+time.Second)
	if !errors.Is(err, ErrFirstByteTimeout) {
		t.Errorf("err = %v, want ErrFirstByteTimeout", err)
	}
	if got, want := StatusFor(err), http.StatusGatewayTimeout; got != want {
		t.Errorf("StatusFor(%v) = %d, want %d", err, got, want)
	}
}

func TestBetweenBytesTimeout(t *testing.T) {
	// Sends the header and 10 of 100 bytes, then stalls.
	addr := rawOrigin(t, func(c net.Conn) {
		readRequestHead(c)
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
		io.Copy(io.Discard, c)
	})
	const timeout = 100 * time.Millisecond
	b := newBackend(t, Config{URL: "http://" + addr, BetweenBytesTimeout: timeout, FirstByteTimeout: 5 * time.Second})
	resp, err := b.Do(context.Background(), clientReq("GET", "/", nil))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	start := time.Now()
	got, err := io.ReadAll(resp.Body)
	within(t, "between bytes timeout", time.Since(start), timeout, timeout+time.Second)
	if string(got) != "0123456789" {
		t.Errorf("read %q before the stall, want %q", got, "0123456789")
	}
	if !errors.Is(err, ErrBetweenBytesTimeout) {
		t.Errorf("err = %v, want ErrBetweenBytesTimeout", err)
	}
	if got, want := StatusFor(err), http.StatusGatewayTimeout; got != want {
		t.Errorf("StatusFor(%v) = %d, want %d", err, got, want)
	}
	// The error sticks.
	if _, err2 := resp.Body.Read(make([]byte, 1)); !errors.Is(err2, ErrBetweenBytesTimeout) {
		t.Errorf("second Read err = %v, want ErrBetweenBytesTimeout again", err2)
	}
	if st := b.Stats(); st.Errors != 1 {
		t.Errorf("Stats().Errors = %d, want 1", st.Errors)
	}
}

// TestSlowReaderIsNotTimedOut: the between-bytes timer runs only while a Read
// waits for the origin, not while the caller is busy elsewhere.
func TestSlowReaderIsNotTimedOut(t *testing.T) {
	const timeout = 50 * time.Millisecond
	payload := strings.Repeat("y", 4096)
	sent := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "4096")
		io.WriteString(w, payload)
		w.(http.Flusher).Flush()
		close(sent)
	}))
	defer srv.Close()
	b := newBackend(t, Config{URL: srv.URL, BetweenBytesTimeout: timeout})
	resp, err := b.Do(context.Background(), clientReq("GET", "/", nil))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	<-sent // all of it is on its way: no Read below waits for the origin
	var got []byte
	buf := make([]byte, 1024)
	for {
		time.Sleep(2 * timeout) // a slow client
		n, err := resp.Body.Read(buf)
		got = append(got, buf[:n]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("Read after a pause: %v", err)
		}
	}
	if string(got) != payload {
		t.Errorf("got %d bytes, want %d", len(got), len(payload))
	}
}

func TestTruncated(t *testing.T) {
	tests := []struct {
		name     string
		response string
		want     string // what the body yields before the error
	}{
		{
			name:     "content-length 100, 50 sent",
			response: "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + strings.Repeat("a", 50),
			want:     strings.Repeat("a", 50),
		},
		{
			name:     "chunked, no last chunk",
			response: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
			want:     "hello",
		},
		{
			name:     "chunked, cut inside a chunk",
			response: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\na\r\nhel",
			want:     "hel",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := rawOrigin(t, func(c net.Conn) {
				readRequestHead(c)
				io.WriteString(c, tt.response)
				c.Close()
			})
			b := newBackend(t, Config{URL: "http://" + addr})
			resp, err := b.Do(context.Background(), clientReq("GET", "/", nil))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			got, err := io.ReadAll(resp.Body)
			if string(got) != tt.want {
				t.Errorf("body = %q, want %q", got, tt.want)
			}
			if !errors.Is(err, ErrTruncated) {
				t.Errorf("err = %v, want ErrTruncated", err)
			}
			if got, want := StatusFor(err), http.StatusBadGateway; got != want {
				t.Errorf("StatusFor(%v) = %d, want %d", err, got, want)
			}
		})
	}
}

// TestNoResponse: an origin that closes the connection without answering.
func TestNoResponse(t *testing.T) {
	addr := rawOrigin(t, func(c net.Conn) {
		readRequestHead(c)
		c.Close()
	})
	b := newBackend(t, Config{URL: "http://" + addr})
	resp, err := b.Do(context.Background(), clientReq("POST", "/", strings.NewReader("x")))
	if err == nil {
		resp.Body.Close()
		t.Fatal("Do succeeded against an origin that hangs up")
	}
	if !errors.Is(err, ErrFetch) {
		t.Errorf("err = %v, want ErrFetch", err)
	}
	if got, want := StatusFor(err), http.StatusBadGateway; got != want {
		t.Errorf("StatusFor(%v) = %d, want %d", err, got, want)
	}
}

func TestHopByHopAndForwarding(t *testing.T) {
	type seen struct {
		header http.Header
		host   string
	}
	got := make(chan seen, 1)
	gz := []byte{0x1f, 0x8b, 0x08, 0x00, 'n', 'o', 't', ' ', 'r', 'e', 'a', 'l'}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- seen{r.Header.Clone(), r.Host}
		w.Header().Set("Content-Encoding", "gzip")
		w.Write(gz)
	}))
	defer srv.Close()

	b := newBackend(t, Config{URL: srv.URL})
	req := clientReq("GET", "/", nil)
	h := req.Header
	h.Set("Connection", "keep-alive, X-Secret , x-other")
	h.Set("X-Secret", "1")
	h.Set("X-Other", "2")
	h.Set("Keep-Alive", "timeout=5")
	h.Set("Proxy-Connection", "keep-alive")
	h.Set("Proxy-Authorization", "Basic Zm9vOmJhcg==")
	h.Set("TE", "trailers")
	h.Set("Upgrade", "websocket")
	h.Set("Trailer", "X-Checksum")
	h.Set("X-Keep", "yes")
	h.Set("Accept-Encoding", "gzip, br")
	h.Add("X-Forwarded-For", "10.0.0.1")
	h.Add("X-Forwarded-For", "10.0.0.2")
	h.Set("Via", "1.0 other")
	before := h.Clone()

	resp, err := b.Do(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	s := <-got

	for _, k := range []string{"Connection", "X-Secret", "X-Other", "Keep-Alive", "Proxy-Connection",
		"Proxy-Authorization", "Te", "Upgrade", "Trailer"} {
		if v, ok := s.header[k]; ok {
			t.Errorf("origin got hop-by-hop %s: %q", k, v)
		}
	}
	for k, want := range map[string]string{
		"X-Keep":          "yes",
		"Accept-Encoding": "gzip, br",
		"X-Forwarded-For": "10.0.0.1, 10.0.0.2, 192.0.2.1",
		"Via":             "1.0 other, 1.1 edgehost",
	} {
		if got := strings.Join(s.header[k], ", "); got != want {
			t.Errorf("origin got %s: %q, want %q", k, got, want)
		}
	}
	if ua, ok := s.header["User-Agent"]; ok {
		t.Errorf("origin got User-Agent %q; the client sent none", ua)
	}
	if s.host != "example.com" {
		t.Errorf("origin got Host %q, want the client's example.com", s.host)
	}
	// The caller's request is untouched.
	for k, v := range before {
		if got := req.Header[k]; strings.Join(got, "\n") != strings.Join(v, "\n") {
			t.Errorf("Do changed the client's %s from %q to %q", k, v, got)
		}
	}
	// No transparent decompression.
	if ce := resp.Header.Get("Content-Encoding"); ce != "gzip" {
		t.Errorf("response Content-Encoding = %q, want gzip", ce)
	}
	if !bytes.Equal(body, gz) {
		t.Errorf("response body = %q, want the origin's bytes %q", body, gz)
	}
}

func TestResponseHopByHop(t *testing.T) {
	addr := rawOrigin(t, func(c net.Conn) {
		readRequestHead(c)
		io.WriteString(c, "HTTP/1.1 200 OK\r\nConnection: X-Resp-Hop\r\nX-Resp-Hop: 1\r\n"+
			"Keep-Alive: timeout=5\r\nX-End-To-End: 1\r\nContent-Length: 2\r\n\r\nok")
		io.Copy(io.Discard, c)
	})
	b := newBackend(t, Config{URL: "http://" + addr})
	resp, err := b.Do(context.Background(), clientReq("GET", "/", nil))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	for _, k := range []string{"Connection", "X-Resp-Hop", "Keep-Alive"} {
		if v, ok := resp.Header[k]; ok {
			t.Errorf("response kept hop-by-hop %s: %q", k, v)
		}
	}
	if resp.Header.Get("X-End-To-End") != "1" {
		t.Errorf("response lost X-End-To-End: %v", resp.Header)
	}
}

func TestRequestMapping(t *testing.T) {
	type seen struct{ uri, host, method string }
	got := make(chan seen, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- seen{r.RequestURI, r.Host, r.Method}
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")

	tests := []struct {
		name       string
		url        string
		hostHeader string
		method     string
		target     string
		clientHost string // "-" for none
		wantURI    string
		wantHost   string
	}{
		{"plain", srv.URL, "", "GET", "/a/b?x=1&y=%20", "", "/a/b?x=1&y=%20", "example.com"},
		{"base path", srv.URL + "/base/", "", "GET", "/a?q", "", "/base/a?q", "example.com"},
		{"escaped path kept", srv.URL + "/base", "", "GET", "/a%2Fb/c", "", "/base/a%2Fb/c", "example.com"},
		{"escaped base path", srv.URL + "/sp%20ace", "", "GET", "/p", "", "/sp%20ace/p", "example.com"},
		{"host override", srv.URL, "origin.internal", "HEAD", "/", "", "/", "origin.internal"},
		{"no client host", srv.URL, "", "DELETE", "/x", "-", "/x", addr},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBackend(t, Config{URL: tt.url, HostHeader: tt.hostHeader})
			req := clientReq(tt.method, tt.target, nil)
			if tt.clientHost == "-" {
				req.Host = ""
			}
			resp, err := b.Do(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			s := <-got
			if s.uri != tt.wantURI || s.host != tt.wantHost || s.method != tt.method {
				t.Errorf("origin got %s %q Host %q, want %s %q Host %q",
					s.method, s.uri, s.host, tt.method, tt.wantURI, tt.wantHost)
			}
		})
	}
}

func TestRequestBody(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%d %v ", r.ContentLength, r.TransferEncoding)
		io.Copy(w, r.Body)
	}))
	defer srv.Close()
	b := newBackend(t, Config{URL: srv.URL})

	tests := []struct {
		name string
		body io.Reader
		cl   int64
		want string
	}{
		{"content-length", strings.NewReader("hello"), 5, "5 [] hello"},
		{"unknown length is chunked", io.MultiReader(strings.NewReader("hel"), strings.NewReader("lo")), -1, "-1 [chunked] hello"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := clientReq("POST", "/upload", tt.body)
			req.ContentLength = tt.cl
			resp, err := b.Do(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(got) != tt.want {
				t.Errorf("origin saw %q, want %q", got, tt.want)
			}
		})
	}
}

func TestRedirectIsNotFollowed(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/elsewhere", http.StatusFound)
	}))
	defer srv.Close()
	b := newBackend(t, Config{URL: srv.URL})
	resp, err := b.Do(context.Background(), clientReq("GET", "/", nil))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/elsewhere" {
		t.Errorf("got %d Location %q, want the origin's 302 to /elsewhere", resp.StatusCode, resp.Header.Get("Location"))
	}
}

func TestUnixSocketOrigin(t *testing.T) {
	dir, err := os.MkdirTemp("", "eh") // short: sun_path holds 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "o.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var accepted atomic.Int64
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "%s %s %s", r.Host, r.URL.RequestURI(), r.Header.Get("X-Forwarded-For"))
		}),
		ConnState: func(c net.Conn, s http.ConnState) {
			if s == http.StateNew {
				accepted.Add(1)
			}
		},
	}
	go srv.Serve(ln)
	defer srv.Close()

	b := newBackend(t, Config{URL: "unix://" + sock})
	for range 3 {
		resp, err := b.Do(context.Background(), clientReq("GET", "/over/uds?x", nil))
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if want := "example.com /over/uds?x 192.0.2.1"; string(got) != want {
			t.Errorf("origin answered %q, want %q", got, want)
		}
	}
	if n := accepted.Load(); n != 1 {
		t.Errorf("origin accepted %d connections over 3 requests, want 1", n)
	}
}

func TestMaxConns(t *testing.T) {
	started := make(chan struct{}, 4)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		<-release
		io.WriteString(w, "done")
	}))
	defer srv.Close()
	b := newBackend(t, Config{URL: srv.URL, MaxConns: 2})

	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := b.Do(context.Background(), clientReq("GET", "/slow", nil))
			if err != nil {
				errs <- err
				return
			}
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			errs <- err
		}()
	}
	<-started
	<-started

	start := time.Now()
	resp, err := b.Do(context.Background(), clientReq("GET", "/third", nil))
	if err == nil {
		resp.Body.Close()
		t.Fatal("third request got through MaxConns 2")
	}
	within(t, "refusal past MaxConns", time.Since(start), 0, 500*time.Millisecond)
	if !errors.Is(err, ErrTooManyConns) {
		t.Errorf("err = %v, want ErrTooManyConns", err)
	}
	if got, want := StatusFor(err), http.StatusServiceUnavailable; got != want {
		t.Errorf("StatusFor(%v) = %d, want %d", err, got, want)
	}

	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("request in flight: %v", err)
		}
	}
	// Slots are free again; the pooled connections are reused.
	for range 3 {
		resp, err := b.Do(context.Background(), clientReq("GET", "/after", nil))
		if err != nil {
			t.Fatalf("after the slow requests finished: %v", err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if n := b.Stats().ConnsOpen; n > 2 {
		t.Errorf("ConnsOpen = %d, want at most MaxConns 2", n)
	}
}

func TestContextEnds(t *testing.T) {
	silent := rawOrigin(t, func(c net.Conn) {
		readRequestHead(c)
		io.Copy(io.Discard, c)
	})
	stalling := rawOrigin(t, func(c net.Conn) {
		readRequestHead(c)
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n01234")
		io.Copy(io.Discard, c)
	})
	tests := []struct {
		name       string
		addr       string
		inBody     bool // the context ends while the body is read
		cancel     bool // cancel, else a deadline
		wantErr    error
		wantStatus int
	}{
		{"cancel awaiting header", silent, false, true, context.Canceled, http.StatusBadGateway},
		{"deadline awaiting header", silent, false, false, context.DeadlineExceeded, http.StatusGatewayTimeout},
		{"cancel in body", stalling, true, true, context.Canceled, http.StatusBadGateway},
		{"deadline in body", stalling, true, false, context.DeadlineExceeded, http.StatusGatewayTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBackend(t, Config{URL: "http://" + tt.addr, FirstByteTimeout: 10 * time.Second, BetweenBytesTimeout: 10 * time.Second})
			var ctx context.Context
			var cancel context.CancelFunc
			if tt.cancel {
				ctx, cancel = context.WithCancel(context.Background())
				time.AfterFunc(50*time.Millisecond, cancel)
			} else {
				ctx, cancel = context.WithTimeout(context.Background(), 50*time.Millisecond)
			}
			defer cancel()
			start := time.Now()
			resp, err := b.Do(ctx, clientReq("GET", "/", nil))
			if tt.inBody {
				if err != nil {
					t.Fatal(err)
				}
				_, err = io.ReadAll(resp.Body)
				resp.Body.Close()
			} else if err == nil {
				resp.Body.Close()
				t.Fatal("Do succeeded against a silent origin")
			}
			within(t, "end of context", time.Since(start), 40*time.Millisecond, time.Second)
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("err = %v, want %v", err, tt.wantErr)
			}
			if got := StatusFor(err); got != tt.wantStatus {
				t.Errorf("StatusFor(%v) = %d, want %d", err, got, tt.wantStatus)
			}
		})
	}
}

func TestClose(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	b := newBackend(t, Config{URL: srv.URL, Probe: &Probe{Interval: time.Hour}})
	b.Start(context.Background())
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	b.Start(context.Background()) // after Close: nothing
	_, err := b.Do(context.Background(), clientReq("GET", "/", nil))
	if !errors.Is(err, ErrClosed) || StatusFor(err) != http.StatusServiceUnavailable {
		t.Errorf("Do after Close: err %v (status %d), want ErrClosed, 503", err, StatusFor(err))
	}
}

func TestNew(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string // "" = valid
	}{
		{"http", Config{Name: "o", URL: "http://127.0.0.1:18081"}, ""},
		{"http no port", Config{Name: "o", URL: "http://origin.example"}, ""},
		{"base path", Config{Name: "o", URL: "http://origin.example/api/v1/"}, ""},
		{"unix", Config{Name: "o", URL: "unix:///run/origin.sock"}, ""},
		{"probe defaults", Config{Name: "o", URL: "http://o", Probe: &Probe{}}, ""},
		{"no name", Config{URL: "http://o"}, "name is empty"},
		{"no url", Config{Name: "o"}, "scheme must be http or unix"},
		{"https", Config{Name: "o", URL: "https://o"}, "https origins are not supported"},
		{"ftp", Config{Name: "o", URL: "ftp://o"}, "scheme must be http or unix"},
		{"no host", Config{Name: "o", URL: "http:///path"}, "no host"},
		{"query", Config{Name: "o", URL: "http://o/?a=b"}, "must not have user info, query or fragment"},
		{"user", Config{Name: "o", URL: "http://u:p@o/"}, "must not have user info, query or fragment"},
		{"bad port", Config{Name: "o", URL: "http://o:99999"}, "bad port"},
		{"unparsable", Config{Name: "o", URL: "http://[::1"}, "url:"},
		{"unix with host", Config{Name: "o", URL: "unix://host/run/o.sock"}, "want unix:///path/to.sock"},
		{"negative timeout", Config{Name: "o", URL: "http://o", FirstByteTimeout: -1}, "first byte timeout -1ns must be positive"},
		{"negative max conns", Config{Name: "o", URL: "http://o", MaxConns: -1}, "max connections -1"},
		{"negative idle conns", Config{Name: "o", URL: "http://o", IdleConns: -2}, "idle connections -2"},
		{"probe path", Config{Name: "o", URL: "http://o", Probe: &Probe{Path: "health"}}, "must start with /"},
		{"probe window", Config{Name: "o", URL: "http://o", Probe: &Probe{Window: 65}}, "window 65"},
		{"probe threshold", Config{Name: "o", URL: "http://o", Probe: &Probe{Window: 4, Threshold: 5}}, "threshold 5"},
		{"probe status", Config{Name: "o", URL: "http://o", Probe: &Probe{ExpectStatus: 700}}, "expect status 700"},
		{"probe interval", Config{Name: "o", URL: "http://o", Probe: &Probe{Interval: -time.Second}}, "interval -1s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := New(tt.cfg, nil)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				if b.Name() != tt.cfg.Name || !b.Healthy() {
					t.Errorf("Name() = %q, Healthy() = %v", b.Name(), b.Healthy())
				}
				b.Close()
				return
			}
			if err == nil {
				b.Close()
				t.Fatalf("New succeeded, want error containing %q", tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("New: %v, want error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestNewAppliesDefaults(t *testing.T) {
	b, err := New(Config{Name: "o", URL: "http://o", Probe: &Probe{}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	tr := b.transport
	if tr.ResponseHeaderTimeout != DefaultFirstByteTimeout || b.betweenByte != DefaultBetweenBytesTimeout ||
		b.dialer.Timeout != DefaultConnectTimeout || tr.MaxIdleConnsPerHost != DefaultIdleConns ||
		tr.IdleConnTimeout != DefaultIdleTimeout || !tr.DisableCompression || tr.Proxy != nil {
		t.Errorf("transport not tuned to the defaults: %+v, between bytes %v", tr, b.betweenByte)
	}
	want := Probe{Path: "/", Interval: 5 * time.Second, Timeout: 2 * time.Second, Window: 8, Threshold: 3, ExpectStatus: 200}
	if b.probe != want {
		t.Errorf("probe = %+v, want %+v", b.probe, want)
	}
}

func TestStatusFor(t *testing.T) {
	connectTimeout := &Error{Backend: "o", Kind: ErrConnect,
		Err: &net.OpError{Op: "dial", Net: "tcp", Err: context.DeadlineExceeded}}
	tests := []struct {
		err  error
		want int
	}{
		{nil, 200},
		{ErrUnhealthy, 503},
		{ErrTooManyConns, 503},
		{ErrClosed, 503},
		{ErrConnect, 502},
		{connectTimeout, 502},
		{ErrFirstByteTimeout, 504},
		{ErrBetweenBytesTimeout, 504},
		{ErrTruncated, 502},
		{ErrFetch, 502},
		{context.Canceled, 502},
		{context.DeadlineExceeded, 504},
		{fmt.Errorf("fetch: %w", &Error{Backend: "o", Kind: ErrFirstByteTimeout}), 504},
		{errors.New("something else"), 502},
	}
	for _, tt := range tests {
		if got := StatusFor(tt.err); got != tt.want {
			t.Errorf("StatusFor(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}

func TestErrorText(t *testing.T) {
	err := &Error{Backend: "origin", Kind: ErrConnect, Err: errors.New("dial tcp: refused")}
	if got, want := err.Error(), "backend origin: connect failed: dial tcp: refused"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	err = &Error{Backend: "origin", Kind: ErrUnhealthy}
	if got, want := err.Error(), "backend origin: unhealthy"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

// TestStaleKeepAlive: an origin that closes each connection after one
// response without saying so. The transport retries a GET that finds its
// pooled connection closed, so clients see no error.
func TestStaleKeepAlive(t *testing.T) {
	var accepted atomic.Int64
	addr := rawOrigin(t, func(c net.Conn) {
		accepted.Add(1)
		if _, _, err := readRequestHead(c); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		time.Sleep(5 * time.Millisecond)
		c.Close()
	})
	b := newBackend(t, Config{URL: "http://" + addr})
	for i := range 10 {
		resp, err := b.Do(context.Background(), clientReq("GET", "/", nil))
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || string(got) != "ok" {
			t.Fatalf("request %d: body %q, err %v", i, got, err)
		}
		time.Sleep(10 * time.Millisecond) // let the origin close
	}
	if n := accepted.Load(); n != 10 {
		t.Errorf("origin accepted %d connections, want 10 (one per request)", n)
	}
}

func TestConnsOpen(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "x")
	}))
	defer srv.Close()
	b := newBackend(t, Config{URL: srv.URL})
	var resps []*http.Response
	for range 3 { // three at once: three connections
		resp, err := b.Do(context.Background(), clientReq("GET", "/", nil))
		if err != nil {
			t.Fatal(err)
		}
		resps = append(resps, resp)
	}
	if got := b.Stats().ConnsOpen; got != 3 {
		t.Errorf("ConnsOpen with 3 responses open = %d, want 3", got)
	}
	for _, resp := range resps {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if got := b.Stats().ConnsOpen; got != 3 {
		t.Errorf("ConnsOpen with 3 pooled connections = %d, want 3", got)
	}
	b.Close()
	waitFor(t, "idle connections to close", time.Second, func() bool { return b.Stats().ConnsOpen == 0 })
}

func TestOversizedResponseHeader(t *testing.T) {
	addr := rawOrigin(t, func(c net.Conn) {
		readRequestHead(c)
		io.WriteString(c, "HTTP/1.1 200 OK\r\nX-Big: "+strings.Repeat("b", MaxResponseHeaderBytes)+"\r\nContent-Length: 0\r\n\r\n")
		io.Copy(io.Discard, c)
	})
	b := newBackend(t, Config{URL: "http://" + addr})
	resp, err := b.Do(context.Background(), clientReq("GET", "/", nil))
	if err == nil {
		resp.Body.Close()
		t.Fatal("Do accepted a response header over MaxResponseHeaderBytes")
	}
	if !errors.Is(err, ErrFetch) || StatusFor(err) != http.StatusBadGateway {
		t.Errorf("err = %v (status %d), want ErrFetch, 502", err, StatusFor(err))
	}
}
