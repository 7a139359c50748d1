package server

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgehost/edgehost/host/cache"
	"github.com/edgehost/edgehost/host/store"
)

// TestDeliverStoredBodyGone: an object whose body stayed in the store
// (Object.Stored) but left it since (evicted, deleted behind the memory
// tier's back) is not promised to the client: deliver forgets it before
// sending anything and the request becomes a miss, answered whole from
// the origin, instead of a response cut short.
func TestDeliverStoredBodyGone(t *testing.T) {
	quiet := slog.New(slog.DiscardHandler)
	fresh := bytes.Repeat([]byte("new "), 1000)
	var fetches atomic.Int64
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		w.Header().Set("Cache-Control", "max-age=60")
		w.Write(fresh)
	}))
	defer origin.Close()
	st, err := store.Open(filepath.Join(t.TempDir(), "cache.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	c := cache.New(cache.Options{MemoryBytes: 16 << 20, Store: st, Logger: quiet})
	if err := c.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	addr := serveTest(t, c, origin.URL)

	now := time.Now()
	o := &cache.Object{Key: "gone.test/big", Status: http.StatusOK, Header: http.Header{"Content-Type": {"text/plain"}},
		Body: bytes.Repeat([]byte("old "), 1<<20), Created: now, Expires: now.Add(time.Hour), StaleUntil: now.Add(time.Hour),
		ErrorUntil: now.Add(time.Hour), KeepUntil: now.Add(time.Hour), ReqURL: "/big", ReqHost: "gone.test"}
	o.Finish()
	c.Insert(o)
	c.Flush() // stored, and demoted: its body is read from the store
	if got := c.Lookup("gone.test/big", nil, time.Now()); got == nil || got.Stored == nil {
		t.Fatalf("the 4 MiB object was not demoted: %+v", got)
	}
	if err := st.Delete("gone.test/big", ""); err != nil {
		t.Fatal(err)
	}

	req, _ := http.NewRequest("GET", "http://"+addr+"/big", nil)
	req.Host = "gone.test"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(body, fresh) {
		t.Fatalf("GET = %d, %d bytes, %v; want 200 with the origin's %d bytes", resp.StatusCode, len(body), err, len(fresh))
	}
	if n := fetches.Load(); n != 1 {
		t.Errorf("%d origin fetches, want 1", n)
	}
}
