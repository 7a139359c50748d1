package integration

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// A ban issued while a revalidation (304) is in flight.
func TestRegressBanDuringRevalidation(t *testing.T) {
	var ver atomic.Int32
	ver.Store(1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=1")
		w.Header().Set("Etag", `"e"`)
		if r.Header.Get("If-None-Match") == `"e"` {
			time.Sleep(800 * time.Millisecond)
			w.WriteHeader(304)
			return
		}
		fmt.Fprintf(w, "version %d\n", ver.Load())
	}))
	defer srv.Close()
	e := newEdge(t, baseConfig(srv.URL, ""))
	if r := e.get("/b"); string(r.Body) != "version 1\n" {
		t.Fatal(string(r.Body))
	}
	time.Sleep(1200 * time.Millisecond)
	done := make(chan result)
	go func() { done <- e.get("/b") }() // grace: background revalidation starts
	time.Sleep(200 * time.Millisecond)
	ver.Store(2)
	if r := e.admin("POST", "/ban", `req.url ~ "^/b"`); r.Status != 200 {
		t.Fatalf("ban: %d %s", r.Status, r.Body)
	}
	<-done
	time.Sleep(1 * time.Second) // revalidation done
	r := e.get("/b")
	t.Logf("after ban: %q %q", r.Body, r.Header.Get("Cache-Status"))
	if string(r.Body) != "version 2\n" {
		t.Fatalf("banned content still served: %q", r.Body)
	}
}
