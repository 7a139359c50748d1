package integration

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

// TestUncachedMissHonoursPreconditions: a cacheable-looking miss is fetched
// without the client's conditionals (the 200 is meant for storing); when
// the answer turns out not storable, the client's preconditions are still
// evaluated against it (RFC 9110 §13.2.2) — a matching If-None-Match is a
// 304 without a body, a failing If-Match a 412 — on the first miss and on
// the hit-for-miss ones after it. Before, both got the origin's 200.
func TestUncachedMissHonoursPreconditions(t *testing.T) {
	var fetches atomic.Int64
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		if r.Header.Get("If-None-Match") != "" || r.Header.Get("If-Match") != "" {
			t.Errorf("the origin got the client's conditionals: %v", r.Header)
		}
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("ETag", `"v1"`)
		w.Header().Set("Last-Modified", "Wed, 02 Dec 2026 06:00:00 GMT")
		io.WriteString(w, "uncached body")
	}))
	t.Cleanup(o.Close)
	e := newEdge(t, baseConfig(o.URL, ""))
	for i := range 2 { // the miss, then a hit-for-miss
		r := e.get("/u", "If-None-Match", `"v1"`)
		if r.Status != http.StatusNotModified || len(r.Body) != 0 {
			t.Errorf("round %d, If-None-Match matching: %d %q, want 304 without a body", i, r.Status, r.Body)
		}
		if r.Header.Get("Etag") != `"v1"` {
			t.Errorf("round %d: the 304 carries ETag %q, want the origin's", i, r.Header.Get("Etag"))
		}
		r = e.get("/u", "If-Match", `"v0"`)
		if r.Status != http.StatusPreconditionFailed {
			t.Errorf("round %d, If-Match failing: %d, want 412", i, r.Status)
		}
		r = e.get("/u", "If-None-Match", `"v0"`)
		if r.Status != http.StatusOK || string(r.Body) != "uncached body" {
			t.Errorf("round %d, If-None-Match not matching: %d %q, want the 200", i, r.Status, r.Body)
		}
		r = e.get("/u", "If-Modified-Since", "Wed, 02 Dec 2026 07:00:00 GMT")
		if r.Status != http.StatusNotModified {
			t.Errorf("round %d, If-Modified-Since after Last-Modified: %d, want 304", i, r.Status)
		}
	}
	if n := fetches.Load(); n != 8 {
		t.Errorf("%d origin fetches, want 8 (nothing stored)", n)
	}
}
