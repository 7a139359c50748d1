package integration

import (
	"bufio"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// A fast-path answer is held in the write buffer while the next pipelined
// request is only partly received.
func TestRegressPipelineHeld(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Write([]byte("hello"))
	}))
	defer srv.Close()
	e := newEdge(t, baseConfig(srv.URL, ""))
	e.get("/x", "Host", "a")
	c, err := net.Dial("tcp", e.HTTP)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("GET /x HTTP/1.1\r\nHost: a\r\n\r\nGET /x HTTP/1.1\r\nHo"))
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	start := time.Now()
	_, err = http.ReadResponse(bufio.NewReader(c), nil)
	t.Logf("first response after %v: err=%v", time.Since(start), err)
	if err != nil {
		t.Fatal("response to a complete request held back")
	}
}
