package processors

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/edgehost/edgehost/host/config"
)

// deliver runs body (stored with header h) through a route's delivery
// writer as a handler would send it, in writes of size step.
func deliver(t *testing.T, rp *Route, r *http.Request, h http.Header, body []byte, step int) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	w, end := rp.Wrap(nil, r, rec)
	for k, v := range h {
		w.Header()[k] = v
	}
	w.WriteHeader(http.StatusOK)
	for len(body) > 0 {
		n := min(step, len(body))
		w.Write(body[:n])
		body = body[n:]
	}
	end()
	return rec
}

func TestDeliverWriter(t *testing.T) {
	rp := NewRoute(&config.Route{Processors: &config.Processors{BufferMax: 8 << 20}})
	big := bytes.Repeat([]byte("streamed through a pipe, "), 200_000) // 5 MB: past inMax
	z := gzipOf(big)
	gzHeader := http.Header{"Content-Encoding": {"gzip"}, "Content-Type": {"text/plain"}, "Etag": {`"x"`}}
	for _, step := range []int{len(z), 4096} {
		r := httptest.NewRequest("GET", "/", nil)
		rec := deliver(t, rp, r, gzHeader.Clone(), z, step)
		if rec.Code != 200 || rec.Header().Get("Content-Encoding") != "" || !bytes.Equal(rec.Body.Bytes(), big) {
			t.Fatalf("step %d: %d %v, %d bytes", step, rec.Code, rec.Header(), rec.Body.Len())
		}
		if rec.Header().Get("Etag") != `W/"x"` || !strings.Contains(rec.Header().Get("Vary"), "Accept-Encoding") {
			t.Errorf("header %v", rec.Header())
		}
	}
	// A small one goes out whole with its length.
	r := httptest.NewRequest("GET", "/", nil)
	rec := deliver(t, rp, r, gzHeader.Clone(), gzipOf([]byte("small")), 1)
	if rec.Body.String() != "small" || rec.Header().Get("Content-Length") != "5" {
		t.Fatalf("small: %v %q", rec.Header(), rec.Body)
	}
	// A gzip client gets the stored gzip untouched.
	r = httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Accept-Encoding", "gzip")
	rec = deliver(t, rp, r, gzHeader.Clone(), z, len(z))
	if rec.Header().Get("Content-Encoding") != "gzip" || !bytes.Equal(rec.Body.Bytes(), z) {
		t.Fatalf("gzip client: %v", rec.Header())
	}
	// Range applies to the decoded representation.
	r = httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Range", "bytes=25-49")
	rec = deliver(t, rp, r, gzHeader.Clone(), gzipOf(big[:1000]), 100)
	if rec.Code != http.StatusPartialContent || rec.Body.String() != string(big[25:50]) {
		t.Fatalf("range: %d %q", rec.Code, rec.Body)
	}
	// HEAD: the header of what a GET would deliver, no body.
	r = httptest.NewRequest("HEAD", "/", nil)
	rec = deliver(t, rp, r, gzHeader.Clone(), nil, 1)
	if rec.Header().Get("Content-Encoding") != "" || rec.Body.Len() != 0 {
		t.Fatalf("head: %v", rec.Header())
	}
}

func TestSink(t *testing.T) {
	for _, tc := range []struct{ ae, want string }{
		{"", "identity"},
		{"gzip", "gzip,identity"},
		{"br;q=0.5, gzip", "gzip,br,identity"},
		{"gzip;q=0, br", "br,identity"},
		{"*", "gzip,br,identity"},
		{"br, identity;q=0", "br"},
		{"*;q=0", "identity"},
		{"x-gzip", "gzip,identity"},
	} {
		if got := strings.Join(Sink(tc.ae), ","); got != tc.want {
			t.Errorf("Sink(%q) = %s, want %s", tc.ae, got, tc.want)
		}
	}
}
