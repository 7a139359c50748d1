package backend

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"syscall"
	"testing"
	"time"
)

// fullBacklog returns the address of a TCP listener whose accept queue is
// full (listen backlog 0, never accepted from): Linux drops further SYNs, so
// a connect there times out, the way it does towards a host that is down.
func fullBacklog(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		syscall.Close(fd)
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		syscall.Close(fd)
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "listener")
	ln, err := net.FileListener(f) // dups fd
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	addr := ln.Addr().String()
	// Fill the queue until a connect no longer completes.
	for i := 0; i < 16; i++ {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err != nil {
			return addr
		}
		t.Cleanup(func() { c.Close() })
	}
	t.Skip("the kernel kept accepting connections into a full backlog; cannot provoke a connect timeout here")
	return ""
}

func TestConnectTimeoutFullBacklog(t *testing.T) {
	addr := fullBacklog(t)
	const timeout = 100 * time.Millisecond
	b := newBackend(t, Config{URL: "http://" + addr, ConnectTimeout: timeout, FirstByteTimeout: 5 * time.Second})
	start := time.Now()
	resp, err := b.Do(context.Background(), clientReq("GET", "/", nil))
	if err == nil {
		resp.Body.Close()
		t.Fatal("Do succeeded against a full backlog")
	}
	within(t, "connect timeout", time.Since(start), timeout, timeout+time.Second)
	if !errors.Is(err, ErrConnect) {
		t.Errorf("err = %v, want ErrConnect", err)
	}
	if got, want := StatusFor(err), http.StatusBadGateway; got != want {
		t.Errorf("StatusFor(%v) = %d, want %d", err, got, want)
	}
	t.Logf("error: %v", err)
}
