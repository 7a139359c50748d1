package integration

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// A sliceable object that carries Vary: Accept-Encoding (uncompressed).
func TestRegressSliceVary(t *testing.T) {
	const size = 3 << 20
	body := bytes.Repeat([]byte("0123456789abcdef"), size/16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Etag", `"v1"`)
		w.Header().Set("Vary", "Accept-Encoding")
		w.Header().Set("Cache-Control", "max-age=600")
		http.ServeContent(w, r, "x.bin", time.Unix(1700000000, 0), bytes.NewReader(body))
	}))
	defer srv.Close()
	e := newEdge(t, sliceConfig(srv.URL, "fetch", "pass"))
	r := e.get("/big/file", "Accept-Encoding", "gzip")
	t.Logf("status %d cache-status %q len %d", r.Status, r.Header.Get("Cache-Status"), len(r.Body))
	if r.Status != 200 || !bytes.Equal(r.Body, body) {
		t.Fatalf("sliced object with Vary: status %d, %d bytes", r.Status, len(r.Body))
	}
}

// A waiter joined to a revalidation flight of another variant.
func TestRegressFlightVariant(t *testing.T) {
	var mu sync.Mutex
	n := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n++
		mu.Unlock()
		w.Header().Set("Vary", "Accept-Language")
		w.Header().Set("Cache-Control", "max-age=1")
		lang := r.Header.Get("Accept-Language")
		w.Header().Set("Etag", `"`+lang+`"`)
		if inm := r.Header.Get("If-None-Match"); inm != "" && inm == `"`+lang+`"` {
			time.Sleep(700 * time.Millisecond)
			w.WriteHeader(304)
			return
		}
		fmt.Fprintf(w, "lang=%s\n", lang)
	}))
	defer srv.Close()
	e := newEdge(t, baseConfig(srv.URL, ""))
	r := e.get("/v", "Accept-Language", "en")
	if string(r.Body) != "lang=en\n" {
		t.Fatalf("first: %q", r.Body)
	}
	time.Sleep(1500 * time.Millisecond)
	done := make(chan result)
	go func() { done <- e.get("/v", "Accept-Language", "en") }() // grace hit + bg revalidation
	time.Sleep(200 * time.Millisecond)
	r = e.get("/v", "Accept-Language", "fr")
	<-done
	t.Logf("fr got %q cache-status %q", r.Body, r.Header.Get("Cache-Status"))
	if string(r.Body) != "lang=fr\n" {
		t.Fatalf("fr request got another variant: %q", r.Body)
	}
}

var _ = strings.Contains
var _ = strconv.Itoa
