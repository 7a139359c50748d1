package integration

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// Weak ETag, no Last-Modified: no precondition on segment requests.
func TestRegressSliceWeakETagMix(t *testing.T) {
	const size = 3 << 20
	var ranged atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := byte('a')
		if ranged.Load() >= 1 {
			c = 'b' // the object changed after the first segment was served
		}
		if r.Header.Get("Range") != "" {
			ranged.Add(1)
		}
		w.Header().Set("Etag", `W/"same"`)
		w.Header().Set("Cache-Control", "max-age=600")
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(bytes.Repeat([]byte{c}, size)))
	}))
	defer srv.Close()
	e := newEdge(t, sliceConfig(srv.URL, "fetch", "pass"))
	r := e.get("/big/w")
	t.Logf("status %d len %d a=%d b=%d", r.Status, len(r.Body), bytes.Count(r.Body, []byte("a")), bytes.Count(r.Body, []byte("b")))
	if bytes.Contains(r.Body, []byte("a")) && bytes.Contains(r.Body, []byte("b")) {
		t.Fatal("one response mixes bytes of two versions")
	}
}

// An origin 206 whose body is shorter than its Content-Range says.
func TestRegressSliceShortSegmentStored(t *testing.T) {
	const size = 3 << 20
	body := bytes.Repeat([]byte("x"), size)
	var bad atomic.Bool
	bad.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Etag", `"s"`)
		w.Header().Set("Cache-Control", "max-age=600")
		if rh := r.Header.Get("Range"); rh == "bytes=1048576-2097151" && bad.Swap(false) {
			w.Header().Set("Content-Range", "bytes 1048576-2097151/"+strconv.Itoa(size))
			w.Header().Set("Content-Length", "1000")
			w.WriteHeader(206)
			w.Write(body[:1000])
			return
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
	}))
	defer srv.Close()
	e := newEdge(t, sliceConfig(srv.URL, "fetch", "pass"))
	func() {
		defer func() { recover() }()
		resp, err := http.Get(e.url("/big/s"))
		if err == nil {
			b := new(bytes.Buffer)
			b.ReadFrom(resp.Body)
			resp.Body.Close()
			t.Logf("first (origin glitch): %d, %d bytes", resp.StatusCode, b.Len())
		}
	}()
	time.Sleep(200 * time.Millisecond)
	resp, err := http.Get(e.url("/big/s"))
	if err != nil {
		t.Fatal(err)
	}
	b := new(bytes.Buffer)
	_, rerr := b.ReadFrom(resp.Body)
	resp.Body.Close()
	t.Logf("second (origin fine now): %d, %d bytes, err=%v", resp.StatusCode, b.Len(), rerr)
	if b.Len() != size {
		t.Fatal("a short segment was stored and keeps truncating the object")
	}
}
