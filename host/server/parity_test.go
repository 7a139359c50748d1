package server

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/edgehost/edgehost/host/cache"
	"github.com/edgehost/edgehost/host/config"
	"github.com/edgehost/edgehost/host/demoorigin"
)

// Two HTTP servers, one behaviour (issue 10): the public listener (h1) and
// the self socket (net/http) serve the same state machine; the same
// request, well-formed or not, gets the same status and the same framing
// from both.

// startParity runs a server in front of the demo origin and returns the
// public address and the self socket's path.
func startParity(t *testing.T) (public, self string) {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	origin := httptest.NewServer(demoorigin.New(quiet))
	t.Cleanup(origin.Close)
	sock := t.TempDir() + "/self.sock"
	src := fmt.Sprintf(`
listen {
  http = "127.0.0.1:0"
  self = %q
}
limits { max_header_bytes = 4096 }
backend "origin" { url = %q }
route "/" { backend = backend.origin }
route "/pass/" {
  backend = backend.origin
  pass    = true
}
route "/ping" {
  respond { body = "pong\n" }
}
`, sock, origin.URL)
	cfg, diags := config.Parse("parity.hcl", []byte(src))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	s, err := New(cfg, Options{Logger: quiet, Cache: cache.New(cache.Options{MemoryBytes: 16 << 20, Logger: quiet})})
	if err != nil {
		t.Fatal(err)
	}
	pub, slf, err := s.Listen()
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(pub, slf)
	t.Cleanup(func() { s.Shutdown(t.Context()) })
	return pub.Addr().String(), sock
}

// framing is what the parity tests compare of a response.
type framing struct {
	Status        int
	ContentLength int64 // -1: not given
	Chunked       bool
	Close         bool // the server ends the connection after it
	BodyLen       int
}

// roundTrip writes raw on a new connection and reads one response.
func roundTrip(t *testing.T, network, addr, raw string, head bool) framing {
	t.Helper()
	c, err := net.Dial(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(raw)); err != nil {
		t.Fatal(err)
	}
	method := http.MethodGet
	if head {
		method = http.MethodHead
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: method})
	if err != nil {
		t.Fatalf("%s: %v", network, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s: body: %v", network, err)
	}
	return framing{Status: resp.StatusCode, ContentLength: resp.ContentLength,
		Chunked: len(resp.TransferEncoding) > 0, Close: resp.Close, BodyLen: len(b)}
}

func TestListenerParity(t *testing.T) {
	public, self := startParity(t)
	long := strings.Repeat("a", 5000)
	for _, tc := range []struct {
		name, raw string
		head      bool
		body      bool // the bodies are the same response (not an error page)
		// Known differences: the status each listener answers. Each is
		// a finding of this test, kept visible until one side changes.
		pubStatus, selfStatus int
	}{
		{name: "miss then hit", raw: "GET /bytes/1k HTTP/1.1\r\nHost: a\r\n\r\n", body: true},
		{name: "head", raw: "HEAD /bytes/1k HTTP/1.1\r\nHost: a\r\n\r\n", head: true, body: true},
		{name: "range", raw: "GET /bytes/1k HTTP/1.1\r\nHost: a\r\nRange: bytes=0-9\r\n\r\n", body: true},
		{name: "unsatisfiable", raw: "GET /bytes/1k HTTP/1.1\r\nHost: a\r\nRange: bytes=5000-\r\n\r\n"},
		{name: "conditional", raw: "GET /bytes/1k HTTP/1.1\r\nHost: a\r\nIf-None-Match: *\r\n\r\n", body: true},
		{name: "http/1.0", raw: "GET /bytes/1k HTTP/1.0\r\n\r\n", body: true},
		{name: "http/1.0 keep-alive", raw: "GET /bytes/1k HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", body: true},
		{name: "close", raw: "GET /bytes/1k HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", body: true},
		{name: "synthetic", raw: "GET /ping HTTP/1.1\r\nHost: a\r\n\r\n", body: true},
		{name: "pass", raw: "GET /pass/x HTTP/1.1\r\nHost: a\r\n\r\n"},
		{name: "post with body", raw: "POST /bytes/1k HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"},
		{name: "chunked post", raw: "POST /bytes/1k HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"},
		{name: "garbage", raw: "GARBAGE\r\n\r\n"},
		{name: "no host", raw: "GET / HTTP/1.1\r\n\r\n"},
		{name: "bad field", raw: "GET / HTTP/1.1\r\nHost: a\r\nNo Colon\r\n\r\n"},
		{name: "space before colon", raw: "GET / HTTP/1.1\r\nHost : a\r\n\r\n"},
		// h1 rejects a request with both Content-Length and
		// Transfer-Encoding (RFC 9112 §6.1 allows either); net/http
		// reads it as chunked and keeps the connection, which the RFC
		// says it must close. Only local plugins reach the self socket.
		{name: "smuggling", raw: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
			pubStatus: 400, selfStatus: 200},
		{name: "conflicting lengths", raw: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"},
		{name: "bad length", raw: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -3\r\n\r\n"},
		{name: "gzip coding", raw: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n"},
		{name: "http2", raw: "GET / HTTP/2.0\r\nHost: a\r\n\r\n"},
		// net/http reads MaxHeaderBytes plus 4096 bytes of slack.
		{name: "too large", raw: "GET / HTTP/1.1\r\nHost: a\r\nX: " + long + "\r\n\r\n", pubStatus: 431, selfStatus: 200},
		{name: "control char", raw: "GET / HTTP/1.1\r\nHost: a\r\nX: a\x01b\r\n\r\n"},
		{name: "expectation", raw: "GET / HTTP/1.1\r\nHost: a\r\nExpect: magic\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pub := roundTrip(t, "tcp", public, tc.raw, tc.head)
			slf := roundTrip(t, "unix", self, tc.raw, tc.head)
			if tc.pubStatus != 0 {
				if pub.Status != tc.pubStatus || slf.Status != tc.selfStatus {
					t.Errorf("public (h1) %d, self (net/http) %d; want the known %d and %d", pub.Status, slf.Status, tc.pubStatus, tc.selfStatus)
				}
				return
			}
			if !tc.body {
				// Error pages differ in their text (the transaction id,
				// net/http's own pages): their length may too.
				pub.BodyLen, slf.BodyLen = 0, 0
				if pub.ContentLength > 0 && slf.ContentLength > 0 {
					pub.ContentLength, slf.ContentLength = 1, 1
				}
			}
			if pub.Close && slf.Close {
				// A response that ends the connection is framed either
				// way: by its Content-Length (h1) or by the close
				// (net/http's answers to malformed requests).
				pub.ContentLength, slf.ContentLength = -1, -1
			}
			if pub != slf {
				t.Errorf("public (h1) %+v, self (net/http) %+v", pub, slf)
			}
		})
	}
}
