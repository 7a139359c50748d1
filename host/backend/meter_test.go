package backend

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// recorder is an Observer and a Counter.
type recorder struct {
	mu     sync.Mutex
	obs    []float64
	counts int
}

func (r *recorder) Observe(v float64) { r.mu.Lock(); r.obs = append(r.obs, v); r.mu.Unlock() }
func (r *recorder) Inc()              { r.mu.Lock(); r.counts++; r.mu.Unlock() }

// TestMeters: every fetch that reaches the transport is timed to its
// response header; every error that Stats counts (refused before sending,
// connect, truncated body) is counted once.
func TestMeters(t *testing.T) {
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		time.Sleep(30 * time.Millisecond)
		io.WriteString(w, "ok")
	}))
	defer slow.Close()
	var fetch, errs recorder
	b := newBackend(t, Config{URL: slow.URL, FetchObserver: &fetch, Errors: &errs})
	resp, err := b.Do(context.Background(), clientReq("GET", "/", nil))
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(resp.Body)
	resp.Body.Close()
	if len(fetch.obs) != 1 || fetch.obs[0] < 0.03 || fetch.obs[0] > 5 {
		t.Errorf("observed %v, want one fetch of 30ms or more", fetch.obs)
	}
	if errs.counts != 0 {
		t.Errorf("errors counted %d, want 0", errs.counts)
	}

	// A truncated body: the fetch is timed, the error counted once.
	addr := rawOrigin(t, func(c net.Conn) {
		readRequestHead(c)
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"+strings.Repeat("a", 10))
		c.Close()
	})
	var fetch2, errs2 recorder
	b2 := newBackend(t, Config{Name: "cut", URL: "http://" + addr, FetchObserver: &fetch2, Errors: &errs2})
	resp, err = b2.Do(context.Background(), clientReq("GET", "/", nil))
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(resp.Body)
	resp.Body.Close()
	// Refused: nothing listens.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()
	var fetch3, errs3 recorder
	b3 := newBackend(t, Config{Name: "dead", URL: "http://" + dead, FetchObserver: &fetch3, Errors: &errs3})
	if _, err := b3.Do(context.Background(), clientReq("GET", "/", nil)); err == nil {
		t.Fatal("a fetch from a closed port succeeded")
	}
	b3.Close()
	if _, err := b3.Do(context.Background(), clientReq("GET", "/", nil)); err == nil {
		t.Fatal("a fetch from a closed backend succeeded")
	}
	for _, c := range []struct {
		name          string
		b             *Backend
		fetch, errs   *recorder
		fetches, errN int
	}{
		{"truncated", b2, &fetch2, &errs2, 1, 1},
		{"refused, then closed", b3, &fetch3, &errs3, 1, 2}, // a closed backend sends nothing: not timed
	} {
		if len(c.fetch.obs) != c.fetches || c.errs.counts != c.errN || int64(c.errs.counts) != c.b.Stats().Errors {
			t.Errorf("%s: %d fetches timed, %d errors counted (Stats: %d), want %d and %d",
				c.name, len(c.fetch.obs), c.errs.counts, c.b.Stats().Errors, c.fetches, c.errN)
		}
	}
}
