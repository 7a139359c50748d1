package h1

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestMain lets the test binary run a server in a child process with a
// lowered file-descriptor limit (TestAcceptOutOfFDs).
func TestMain(m *testing.M) {
	if os.Getenv("H1_FD_CHILD") != "" {
		fdChild()
		return
	}
	os.Exit(m.Run())
}

// fdChild serves on loopback with RLIMIT_NOFILE 64 until its stdin closes.
// GET /stats answers the accept-error and shed counters.
func fdChild() {
	lim := syscall.Rlimit{Cur: 64, Max: 64}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		fmt.Println("setrlimit:", err)
		os.Exit(1)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println("listen:", err)
		os.Exit(1)
	}
	var accErr, shed atomic.Int64
	s := &Server{IdleTimeout: time.Minute, HeaderTimeout: time.Minute, AcceptErrors: &accErr, Shed: &shed,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "accept_errors=%d shed=%d", accErr.Load(), shed.Load())
		})}
	fmt.Println(ln.Addr())
	go func() { io.Copy(io.Discard, os.Stdin); os.Exit(0) }()
	err = s.Serve(ln)
	fmt.Fprintln(os.Stderr, "Serve returned:", err)
	os.Exit(3)
}

// TestAcceptOutOfFDs (issue 13, item 1): running out of file descriptors
// does not stop the server. The child process may hold 64 descriptors; 150
// idle connections exhaust them; the server backs off, sheds the oldest
// idle connections, and a new client is still served.
func TestAcceptOutOfFDs(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "H1_FD_CHILD=1")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		stdin.Close()
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
		}
	}()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "127.0.0.1:") {
		t.Fatalf("child: %q %v %s", line, err, stderr.String())
	}
	addr := strings.TrimSpace(line)
	var idle []net.Conn
	defer func() {
		for _, c := range idle {
			c.Close()
		}
	}()
	for range 150 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		idle = append(idle, c)
	}
	time.Sleep(300 * time.Millisecond) // the server's accepts fail meanwhile
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for i := range 3 {
		resp, err := client.Get("http://" + addr + "/stats")
		if err != nil {
			select {
			case err := <-exited:
				t.Fatalf("the server exited (%v): %s", err, stderr.String())
			default:
			}
			t.Fatalf("request %d: %v", i, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Logf("%s", b)
		if i == 2 && (strings.Contains(string(b), "accept_errors=0") || strings.Contains(string(b), "shed=0")) {
			t.Errorf("fd exhaustion not counted: %s", b)
		}
	}
	// The oldest idle connections were the ones shed.
	idle[0].SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := idle[0].Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("oldest idle connection: read %v, want EOF (shed)", err)
	}
}

// TestMaxConns: at the limit, the oldest idle keep-alive connection makes
// room for a new client; with every connection busy, a new client waits
// (in the listen backlog) until one ends.
func TestMaxConns(t *testing.T) {
	release := make(chan struct{})
	var shed atomic.Int64
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{MaxConns: 3, Shed: &shed, IdleTimeout: time.Minute, HeaderTimeout: time.Minute,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/block" {
				<-release
			}
			io.WriteString(w, "ok")
		})}
	go s.Serve(ln)
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(func() { unblock(); s.Shutdown(t.Context()) })
	addr := ln.Addr().String()
	req := func(c net.Conn, path string) error {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return err
		}
		io.ReadAll(resp.Body)
		return resp.Body.Close()
	}
	var conns []net.Conn
	for range 3 {
		c := dial(t, addr)
		if err := req(c, "/"); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		time.Sleep(20 * time.Millisecond) // distinct idle times
	}
	c4 := dial(t, addr)
	if err := req(c4, "/"); err != nil {
		t.Fatalf("a fourth client at the limit: %v", err)
	}
	if shed.Load() != 1 {
		t.Errorf("shed %d connections, want 1", shed.Load())
	}
	conns[0].SetReadDeadline(time.Now().Add(time.Second))
	if _, err := conns[0].Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("oldest idle connection: %v, want EOF", err)
	}
	// Now three busy connections: a new one waits for one of them.
	busy := []net.Conn{conns[1], conns[2], c4}
	for _, c := range busy {
		fmt.Fprintf(c, "GET /block HTTP/1.1\r\nHost: x\r\n\r\n")
	}
	time.Sleep(100 * time.Millisecond)
	c5 := dial(t, addr)
	c5.SetDeadline(time.Now().Add(300 * time.Millisecond))
	fmt.Fprintf(c5, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	if _, err := c5.Read(make([]byte, 1)); err == nil {
		t.Fatal("served past max_connections while every connection was busy")
	}
	unblock()
	busy[0].Close()
	c5.SetDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c5), nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("after a connection ended: %v", err)
	}
}
