// Command idleconns opens idle keep-alive connections for bench/idle.sh:
// each connection sends one GET, reads the whole response and stays open,
// idle, until stdin closes (or a signal). It prints "ready N" once all N
// are idle.
//
//	idleconns -addr 127.0.0.1:38080 -n 10000 -path /bytes/1k
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "idleconns:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("idleconns", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:38080", "the server")
	n := fs.Int("n", 10000, "connections")
	path := fs.String("path", "/bytes/1k", "what each connection GETs once")
	par := fs.Int("parallel", 16, "connections being opened at once")
	if err := fs.Parse(args); err != nil {
		return err
	}
	conns := make([]net.Conn, *n)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	req := []byte("GET " + *path + " HTTP/1.1\r\nHost: bench\r\nUser-Agent: idleconns\r\n\r\n")
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	next := make(chan int)
	for range *par {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				c, err := open(*addr, req)
				mu.Lock()
				if err != nil && first == nil {
					first = fmt.Errorf("connection %d: %w", i, err)
				}
				conns[i] = c
				mu.Unlock()
			}
		}()
	}
	for i := range *n {
		next <- i
	}
	close(next)
	wg.Wait()
	if first != nil {
		return first
	}
	fmt.Printf("ready %d\n", *n)
	done := make(chan struct{})
	go func() { io.Copy(io.Discard, os.Stdin); close(done) }()
	select {
	case <-ctx.Done():
	case <-done:
	}
	return nil
}

// open dials addr, sends req and reads the response whole: the connection
// is then idle, waiting for a next request.
func open(addr string, req []byte) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.Write(req); err != nil {
		c.Close()
		return nil, err
	}
	// bufio may read ahead of the response: there is nothing after it.
	resp, err := http.ReadResponse(bufio.NewReaderSize(c, 4096), nil)
	if err != nil {
		c.Close()
		return nil, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err == nil && (resp.StatusCode != 200 || resp.Close) {
		err = errors.New(resp.Status + " or not keep-alive")
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	c.SetDeadline(time.Time{})
	return c, nil
}
