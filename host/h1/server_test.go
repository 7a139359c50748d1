package h1

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// serve starts a Server with handler h (and fast, if given) on loopback.
func serve(t *testing.T, h http.Handler, fast func(*Request, *Writer) bool) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Handler: h, Fast: fast, MaxHeaderBytes: 4096, HeaderTimeout: time.Second, IdleTimeout: 2 * time.Second}
	go s.Serve(ln)
	t.Cleanup(func() { s.Shutdown(t.Context()) })
	return ln.Addr().String()
}

// exchange writes raw and returns everything read until the server closes
// or goes quiet.
func exchange(t *testing.T, addr, raw string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte(raw))
	c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	b, _ := io.ReadAll(c)
	return string(b)
}

func echo() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s host=%s body=%q te=%v", r.Method, r.RequestURI, r.Host, b, r.TransferEncoding)
	})
}

func TestMalformedRequests(t *testing.T) {
	addr := serve(t, echo(), nil)
	for _, tc := range []struct{ name, raw, want string }{
		{"garbage", "GARBAGE\r\n\r\n", "HTTP/1.1 400"},
		{"no host", "GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 400"},
		{"two hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "HTTP/1.1 400"},
		{"bad field", "GET / HTTP/1.1\r\nHost: a\r\nNo Colon\r\n\r\n", "HTTP/1.1 400"},
		{"space before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", "HTTP/1.1 400"},
		{"obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n 2\r\n\r\n", "HTTP/1.1 400"},
		{"smuggling", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "HTTP/1.1 400"},
		{"conflicting lengths", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", "HTTP/1.1 400"},
		{"bad length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -3\r\n\r\n", "HTTP/1.1 400"},
		{"gzip coding", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", "HTTP/1.1 501"},
		{"http2", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", "HTTP/1.1 505"},
		{"too large", "GET / HTTP/1.1\r\nHost: a\r\nX: " + strings.Repeat("a", 5000) + "\r\n\r\n", "HTTP/1.1 431"},
		{"control char", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x01b\r\n\r\n", "HTTP/1.1 400"},
		{"expectation", "GET / HTTP/1.1\r\nHost: a\r\nExpect: magic\r\n\r\n", "HTTP/1.1 417"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := exchange(t, addr, tc.raw); !strings.HasPrefix(got, tc.want) {
				t.Errorf("got %.60q, want %q", got, tc.want)
			}
		})
	}
}

func TestBodiesAndKeepAlive(t *testing.T) {
	addr := serve(t, echo(), nil)
	got := exchange(t, addr, "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"+
		"POST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nde\r\n1;ext=1\r\nf\r\n0\r\nTrailer: 1\r\n\r\n"+
		"GET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	for _, want := range []string{`POST /a host=x body="abc"`, `POST /b host=x body="def" te=[chunked]`, `GET /c host=x body=""`, "Connection: close"} {
		if !strings.Contains(got, want) {
			t.Errorf("responses lack %q:\n%s", want, got)
		}
	}
	if n := strings.Count(got, "HTTP/1.1 200"); n != 3 {
		t.Errorf("%d responses, want 3:\n%s", n, got)
	}
}

func TestHTTP10AndAbsoluteForm(t *testing.T) {
	addr := serve(t, echo(), nil)
	got := exchange(t, addr, "GET /x HTTP/1.0\r\n\r\n")
	if !strings.HasPrefix(got, "HTTP/1.0 200") || !strings.Contains(got, "Content-Length:") {
		t.Errorf("HTTP/1.0: %q", got)
	}
	got = exchange(t, addr, "GET http://example.com/p?q=1 HTTP/1.1\r\nHost: other\r\nConnection: close\r\n\r\n")
	if !strings.Contains(got, "host=example.com") {
		t.Errorf("absolute-form: %q", got)
	}
}

func TestFramingOfResponses(t *testing.T) {
	big := strings.Repeat("z", 10000)
	addr := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/small":
			io.WriteString(w, "hi")
		case "/big":
			io.WriteString(w, big)
		case "/flush":
			io.WriteString(w, "a")
			w.(http.Flusher).Flush()
			io.WriteString(w, "b")
		case "/short":
			w.Header().Set("Content-Length", "10")
			io.WriteString(w, "abc")
		case "/304":
			w.WriteHeader(304)
		case "/abort":
			io.WriteString(w, "partial")
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		}
	}), nil)
	c := &http.Client{}
	get := func(p string) (*http.Response, string, error) {
		resp, err := c.Get("http://" + addr + p)
		if err != nil {
			return nil, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp, string(b), err
	}
	if resp, b, err := get("/small"); err != nil || b != "hi" || resp.ContentLength != 2 {
		t.Errorf("/small: %v %q", err, b)
	}
	if resp, b, err := get("/big"); err != nil || b != big || resp.TransferEncoding[0] != "chunked" {
		t.Errorf("/big: %v %d bytes", err, len(b))
	}
	if _, b, err := get("/flush"); err != nil || b != "ab" {
		t.Errorf("/flush: %v %q", err, b)
	}
	if _, _, err := get("/short"); err == nil {
		t.Error("/short: a body shorter than its Content-Length read as complete")
	}
	if resp, _, err := get("/304"); err != nil || resp.StatusCode != 304 {
		t.Errorf("/304: %v", err)
	}
	if _, _, err := get("/abort"); err == nil {
		t.Error("/abort: an aborted response read as complete")
	}
	// HEAD: no body, same framing fields.
	resp, err := c.Head("http://" + addr + "/small")
	if err != nil || resp.ContentLength != 2 {
		t.Errorf("HEAD /small: %v %d", err, resp.ContentLength)
	}
}

func TestExpectContinue(t *testing.T) {
	addr := serve(t, echo(), nil)
	c, _ := net.Dial("tcp", addr)
	defer c.Close()
	c.Write([]byte("POST /u HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"))
	br := bufio.NewReader(c)
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	line, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "HTTP/1.1 100") {
		t.Fatalf("no 100 Continue: %q %v", line, err)
	}
	br.ReadString('\n')
	c.Write([]byte("hello"))
	rest, _ := br.ReadString('"')
	rest2, _ := br.ReadString('"')
	if !strings.Contains(rest+rest2, "hello") && !strings.Contains(rest, "body=") {
		t.Fatalf("body not received: %q %q", rest, rest2)
	}
}

func TestFastPath(t *testing.T) {
	addr := serve(t, echo(), func(r *Request, w *Writer) bool {
		if string(r.Path) != "/fast" {
			return false
		}
		head := append(w.Head(), "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n"...)
		w.WriteResponse(head, []byte("fast"))
		return true
	})
	got := exchange(t, addr, "GET /fast HTTP/1.1\r\nHost: x\r\n\r\nGET /slow HTTP/1.1\r\nHost: x\r\n\r\nGET /fast HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	if strings.Count(got, "fast") < 2 || !strings.Contains(got, "GET /slow") {
		t.Fatalf("pipelined fast/slow/fast: %q", got)
	}
}

func TestSlowHeadersTimeOut(t *testing.T) {
	addr := serve(t, echo(), nil)
	c, _ := net.Dial("tcp", addr)
	defer c.Close()
	c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n"))
	start := time.Now()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, _ := io.ReadAll(c)
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("connection held %v", d)
	}
	if !strings.HasPrefix(string(b), "HTTP/1.1 408") {
		t.Fatalf("got %q, want a 408", b)
	}
}

func FuzzReadHead(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST /x?y HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc",
		"GET http://h/p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
		"\r\n\r\nGET / HTTP/1.1\r\nhost:a\r\nconnection: close, keep-alive\r\n\r\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		s := &Server{MaxHeaderBytes: 1024}
		c := &conn{s: s, br: bufio.NewReaderSize(strings.NewReader(raw), 64)}
		if err := c.readHead(); err != nil {
			return
		}
		r := &c.req
		if len(r.Method) == 0 || len(r.Target) == 0 {
			t.Fatalf("accepted a head without method or target: %q", raw)
		}
		if r.chunked && r.contentLength >= 0 {
			t.Fatalf("both framings accepted: %q", raw)
		}
		if r.Minor == 1 && r.Host == nil {
			t.Fatalf("HTTP/1.1 without Host accepted: %q", raw)
		}
		if _, err := c.httpRequest(); err != nil {
			var he *httpError
			if !errors.As(err, &he) {
				t.Fatalf("httpRequest: %v", err)
			}
		}
	})
}

// TestRawIOLargeAndDeadline: the raw-syscall connection I/O writes large
// bodies whole (partial writes and EAGAIN on a full socket buffer) and
// honours read deadlines.
func TestRawIOLargeAndDeadline(t *testing.T) {
	big := strings.Repeat("0123456789", 1<<20) // 10 MiB: the socket buffer fills
	addr := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(len(big)))
		io.WriteString(w, big)
	}), func(r *Request, w *Writer) bool {
		if string(r.Path) != "/fast" {
			return false
		}
		head := append(w.Head(), fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", len(big))...)
		w.WriteResponse(head, []byte(big))
		return true
	})
	for _, p := range []string{"/slow", "/fast"} {
		resp, err := http.Get("http://" + addr + p)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond) // let the server hit a full buffer
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || string(b) != big {
			t.Fatalf("%s: %d bytes, %v", p, len(b), err)
		}
	}
}

// An informational response goes out with the fields set before it (103
// Early Hints carries Link), before the final one; never to HTTP/1.0
// (RFC 9110 §15.2).
func TestInformational(t *testing.T) {
	addr := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Link")
		w.Write([]byte("final"))
	}), nil)
	got := exchange(t, addr, "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
	early, final, ok := strings.Cut(got, "\r\n\r\n")
	if !ok || early != "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload" {
		t.Fatalf("interim response %q", early)
	}
	if !strings.HasPrefix(final, "HTTP/1.1 200 OK\r\n") || strings.Contains(final, "Link:") || !strings.HasSuffix(final, "final") {
		t.Errorf("final response %q", final)
	}
	if got := exchange(t, addr, "GET / HTTP/1.0\r\nHost: a\r\n\r\n"); !strings.HasPrefix(got, "HTTP/1.0 200 OK\r\n") {
		t.Errorf("HTTP/1.0 got %.60q", got)
	}
}
