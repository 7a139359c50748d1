package integration

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
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
		c, err := net.Dial("tcp", e.HTTP)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		br := bufio.NewReader(c)
		rawGet(t, c, br, "/bytes/10")
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
		c, err := net.Dial("tcp", e.HTTP)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		br := bufio.NewReader(c)
		rawGet(t, c, br, "/bytes/10")
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
		c, err := net.Dial("tcp", e.HTTP)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		br := bufio.NewReader(c)
		rawGet(t, c, br, "/bytes/10")
		start := time.Now()
		c.SetReadDeadline(time.Now().Add(8 * time.Second))
		_, err = br.ReadByte()
		if time.Since(start) > 4*time.Second || err == nil {
			t.Errorf("idle connection closed after %v (%v)", time.Since(start), err)
		}
	})
}
