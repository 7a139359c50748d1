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

// closedWithin reads c until the server closes it and fails unless that
// happens within d. It returns what was read.
func closedWithin(t *testing.T, c net.Conn, d time.Duration) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(d))
	b, err := io.ReadAll(c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open after %v (read %q)", d, b)
	}
	return string(b)
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Every byte a client sends is under a deadline (issue 13, item 2): the
// test server has HeaderTimeout 1s and IdleTimeout 2s.

// TestBlankLinesThenTrickledHead: empty lines before the request line do
// not count as a buffered head; a head trickled after them gets its 408 at
// the header timeout, not the idle timeout.
func TestBlankLinesThenTrickledHead(t *testing.T) {
	addr := serve(t, echo(), nil)
	c := dial(t, addr)
	start := time.Now()
	c.Write([]byte("\r\n\r\n"))
	go func() {
		for _, b := range []byte("GET / HTTP/1.1\r\nHost: x\r\nX: ") {
			time.Sleep(50 * time.Millisecond)
			if _, err := c.Write([]byte{b}); err != nil {
				return
			}
		}
	}()
	got := closedWithin(t, c, 5*time.Second)
	if d := time.Since(start); !strings.HasPrefix(got, "HTTP/1.1 408") || d > 1700*time.Millisecond {
		t.Fatalf("after %v: %.40q, want a 408 at the 1s header timeout", d, got)
	}
}

// TestDeadlineAfterRequest: a connection whose request has been answered
// is closed by a deadline, whichever path answered it and whatever the
// client sent after it: empty lines after the head (they used to pass for
// a buffered head, so no deadline was armed after a slow-path request and
// a fast-path answer was held back), or nothing after a body (the read
// deadline is lifted while the handler runs).
func TestDeadlineAfterRequest(t *testing.T) {
	fast := func(r *Request, w *Writer) bool {
		if string(r.Path) != "/fast" {
			return false
		}
		w.WriteResponse(append(w.Head(), "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n"...), []byte("ok"))
		return true
	}
	addr := serve(t, echo(), fast)
	for name, raw := range map[string]string{
		"slow, empty lines": "GET /slow HTTP/1.1\r\nHost: t\r\nRange: bytes=0-0\r\n\r\n\r\n\r\n",
		"fast, empty lines": "GET /fast HTTP/1.1\r\nHost: t\r\n\r\n\r\n\r\n",
		"slow, after body":  "POST /a HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nab",
	} {
		t.Run(name, func(t *testing.T) {
			c := dial(t, addr)
			c.Write([]byte(raw))
			got := closedWithin(t, c, 4*time.Second)
			if !strings.HasPrefix(got, "HTTP/1.1 200") {
				t.Fatalf("got %.60q", got)
			}
		})
	}
}

// TestIdleAfterPartialNextHead: a pipelined request followed by the start
// of another that never completes gets a 408 at the header timeout.
func TestIdleAfterPartialNextHead(t *testing.T) {
	addr := serve(t, echo(), nil)
	c := dial(t, addr)
	start := time.Now()
	c.Write([]byte("GET /a HTTP/1.1\r\nHost: t\r\n\r\nGET /b HTTP/1.1\r\n"))
	got := closedWithin(t, c, 4*time.Second)
	if !strings.Contains(got, "HTTP/1.1 408") || time.Since(start) > 1700*time.Millisecond {
		t.Fatalf("after %v: %q", time.Since(start), got)
	}
}

// TestChunkedTrailers (issue 13, item 6): the trailer section is parsed as
// RFC 9112 §7.1.2 says (field lines ending in CRLF, then CRLF, within the
// header size limit); anything else fails the body, and the bytes after it
// are never read as another request.
func TestChunkedTrailers(t *testing.T) {
	var bodyErrs = make(chan error, 16)
	addr := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		bodyErrs <- err
		fmt.Fprintf(w, "%s %s body=%q", r.Method, r.RequestURI, b)
	}), nil)
	const next = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
	post := "POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n"
	for _, tc := range []struct {
		name, trailer string
		ok            bool
	}{
		{"none", "\r\n", true},
		{"one field", "X-Sum: 1\r\n\r\n", true},
		{"two fields", "X-Sum: 1\r\nX-Other:\t2 \r\n\r\n", true},
		{"short line", "X\n", false},
		{"bare LF end", "X: 1\n\n", false},
		{"bare LF blank", "\n", false},
		{"no colon", "Xyz\r\n\r\n", false},
		{"space in name", "X Y: 1\r\n\r\n", false},
		{"control in value", "X: a\x01\r\n\r\n", false},
		{"obs-fold", "X: 1\r\n 2\r\n\r\n", false},
		{"bare CR", "X: 1\rY: 2\r\n\r\n", false},
		{"too large", strings.Repeat("X-Long: "+strings.Repeat("a", 100)+"\r\n", 50) + "\r\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := exchange(t, addr, post+tc.trailer+next)
			err := <-bodyErrs
			served := strings.Contains(got, "/smuggled")
			if tc.ok && (err != nil || !served) {
				t.Fatalf("valid trailer refused: body err %v, next request served %v: %q", err, served, got)
			}
			if tc.ok {
				<-bodyErrs // the next request's
			}
			if !tc.ok {
				if err == nil {
					t.Errorf("body read without error")
				}
				if served {
					t.Errorf("the bytes after a bad trailer were served as a request: %q", got)
				}
				select {
				case err := <-bodyErrs:
					t.Errorf("a second request reached the handler (%v)", err)
				default:
				}
			}
		})
	}
}

// TestRequestTargetAndVersion covers the smaller findings of issue 13.
func TestRequestTargetAndVersion(t *testing.T) {
	addr := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "path=%s host=%s proto=%s uri=%s", r.URL.Path, r.Host, r.Proto, r.RequestURI)
	}), nil)
	for _, tc := range []struct{ name, raw, want, body string }{
		// RFC 9110 §6.2: a higher minor version is answered as 1.1.
		{"HTTP/1.2", "GET /v HTTP/1.2\r\nHost: x\r\nConnection: close\r\n\r\n", "HTTP/1.1 200", "proto=HTTP/1.1"},
		{"HTTP/1.9", "GET /v HTTP/1.9\r\nHost: x\r\nConnection: close\r\n\r\n", "HTTP/1.1 200", "path=/v"},
		{"HTTP/2.0", "GET /v HTTP/2.0\r\nHost: x\r\n\r\n", "HTTP/1.1 505", ""},
		{"HTTP/1.10", "GET /v HTTP/1.10\r\nHost: x\r\n\r\n", "HTTP/1.1 400", ""},
		{"HTTP/1.1 lower case", "GET /v http/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 400", ""},
		// RFC 9112 §3.2.2: absolute-form with an empty path is "/".
		{"absolute no path", "GET http://example.com HTTP/1.1\r\nHost: other\r\nConnection: close\r\n\r\n", "HTTP/1.1 200", "path=/ host=example.com"},
		{"absolute query only", "GET http://example.com?q=1 HTTP/1.1\r\nHost: other\r\nConnection: close\r\n\r\n", "HTTP/1.1 200", "path=/ host=example.com"},
		// RFC 9110 §9.3.7: OPTIONS * is about the server, not a resource.
		{"OPTIONS *", "OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "HTTP/1.1 200", ""},
		{"GET *", "GET * HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 400", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := exchange(t, addr, tc.raw)
			if !strings.HasPrefix(got, tc.want) || !strings.Contains(got, tc.body) {
				t.Errorf("got %q, want %q … %q", got, tc.want, tc.body)
			}
		})
	}
	got := exchange(t, addr, "OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	if !strings.Contains(got, "Allow: ") || !strings.Contains(got, "Content-Length: 0") {
		t.Errorf("OPTIONS *: %q", got)
	}
}

// TestLongURI: a request line past the header limit gets 414 (not 431),
// and the client can read it although it had sent more than was read
// (the server half-closes and drains before closing: no RST).
func TestLongURI(t *testing.T) {
	addr := serve(t, echo(), nil)
	for _, n := range []int{8 << 10, 64 << 10, 1 << 20} {
		c := dial(t, addr)
		go c.Write([]byte("GET /" + strings.Repeat("a", n) + " HTTP/1.1\r\nHost: x\r\n\r\n"))
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		if !strings.HasPrefix(line, "HTTP/1.1 414") {
			t.Errorf("%d-byte URI: %q %v, want 414", n, line, err)
		}
	}
	// A long header field is still 431.
	got := exchange(t, addr, "GET / HTTP/1.1\r\nHost: a\r\nX: "+strings.Repeat("a", 5000)+"\r\n\r\n")
	if !strings.HasPrefix(got, "HTTP/1.1 431") {
		t.Errorf("long field: %.40q", got)
	}
}

// FuzzTrailers: the trailer parser never panics, and what it accepts is
// field lines ending in CRLF followed by an empty line, within the limit.
func FuzzTrailers(f *testing.F) {
	for _, s := range []string{"\r\n", "X: 1\r\n\r\n", "X\n", "X: 1\n\n", "X: 1\r\n 2\r\n\r\n", "a:\r\nb: c d\t\r\n\r\nGET"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		s := &Server{MaxHeaderBytes: 256}
		br := bufio.NewReaderSize(strings.NewReader(raw), 64)
		c := &conn{s: s, br: br}
		if err := c.readTrailers(); err != nil {
			return
		}
		rest, _ := io.ReadAll(br)
		section := raw[:len(raw)-len(rest)]
		if !strings.HasSuffix(section, "\r\n\r\n") && section != "\r\n" {
			t.Fatalf("accepted %q: does not end with an empty line", section)
		}
		if len(section) > 256 {
			t.Fatalf("accepted %d bytes past the limit", len(section))
		}
		for _, line := range strings.Split(strings.TrimSuffix(section, "\r\n\r\n"), "\r\n") {
			if line == "" && section == "\r\n" {
				continue
			}
			if strings.ContainsAny(line, "\r\n") || !strings.Contains(line, ":") {
				t.Fatalf("accepted line %q in %q", line, section)
			}
		}
	})
}
