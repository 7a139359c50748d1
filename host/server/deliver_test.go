package server

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/edgehost/edgehost/host/cache"
	"github.com/edgehost/edgehost/host/config"
	"github.com/edgehost/edgehost/host/store"
)

// serveTest starts a Server on c with one route to the backend at
// origin, and returns its public address.
func serveTest(t *testing.T, c *cache.Cache, origin string) string {
	t.Helper()
	cfg, diags := config.Parse("t.hcl", []byte(fmt.Sprintf(`
listen {
  http = "127.0.0.1:0"
  self = %q
}
backend "origin" { url = %q }
route "/" { backend = backend.origin }
`, t.TempDir()+"/self.sock", origin)))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	s, err := New(cfg, Options{Logger: slog.New(slog.DiscardHandler), Cache: c})
	if err != nil {
		t.Fatal(err)
	}
	pub, self, err := s.Listen()
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(pub, self)
	t.Cleanup(func() { s.Shutdown(t.Context()) })
	return pub.Addr().String()
}

// TestDeliverStoredSegment: a stored segment found by a plain lookup (a
// segment request that waited on another's fetch, say) is the stored
// response it is — not an object that needs a feature to deliver it.
func TestDeliverStoredSegment(t *testing.T) {
	c := cache.New(cache.Options{MemoryBytes: 16 << 20, Logger: slog.New(slog.DiscardHandler)})
	addr := serveTest(t, c, "http://127.0.0.1:1")

	now := time.Now()
	o := &cache.Object{Key: "seg.test/obj#0", Status: http.StatusPartialContent, Kind: store.KindSegment,
		Header: http.Header{"Content-Range": {"bytes 0-4/10"}, "Content-Type": {"text/plain"}},
		Body:   []byte("hello"), Created: now, Expires: now.Add(time.Hour), StaleUntil: now.Add(time.Hour),
		ErrorUntil: now.Add(time.Hour), KeepUntil: now.Add(time.Hour), ReqURL: "/obj#0", ReqHost: "seg.test"}
	o.Finish()
	c.Insert(o)

	// If-Modified-Since keeps the request off the fast path: the state
	// machine's lookup and deliver.
	req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
	req.Host = "seg.test"
	req.URL.Opaque = "/obj#0" // the segment's key, sent as is
	req.Header.Set("If-Modified-Since", "Mon, 01 Jan 2024 00:00:00 GMT")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusPartialContent || string(body) != "hello" {
		t.Fatalf("stored segment: %d %q, want 206 \"hello\"", resp.StatusCode, body)
	}
}
