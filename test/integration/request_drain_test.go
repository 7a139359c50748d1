package integration

import (
	"bufio"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// A request whose declared body never arrives: after the response, the
// server drains it with no deadline.
func TestRegressDrainHang(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Write([]byte("hello"))
	}))
	defer srv.Close()
	e := newEdge(t, baseConfig(srv.URL, "limits {\n idle_timeout = \"1s\"\n header_timeout = \"1s\"\n}\n"))
	c, err := net.Dial("tcp", e.HTTP)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("GET /x HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n"))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("got %d", resp.StatusCode)
	resp.Body.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	_, err = br.ReadByte()
	t.Logf("after %v: %v", time.Since(start), err)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("connection still held open %v after the response, idle_timeout=1s", time.Since(start))
	}
}
