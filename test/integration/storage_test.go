package integration

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/edgehost/edgehost/host/store"
)

// TestStartupWith100kObjects: a cache.db with 100 000 objects is ready to
// serve quickly (the index is built in the background) and serves them.
func TestStartupWith100kObjects(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: writing 100 000 objects takes a while")
	}
	o := startOrigin(t)
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "var"), 0o755)
	st, err := store.Open(filepath.Join(dir, "var", "cache.db"), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	e := &edge{t: t, dir: dir, HTTP: freePort(t), Admin: freePort(t), Token: "s3cret"}
	now := time.Now()
	body := bytes.Repeat([]byte("x"), 100)
	const n = 100000
	errs := make(chan error, 8)
	for w := 0; w < 8; w++ {
		go func(w int) {
			for i := w; i < n; i += 8 {
				key := fmt.Sprintf("%s/obj/%d", e.HTTP, i)
				err := st.Put(&store.Record{Key: key, Status: 200,
					Header: http.Header{"Content-Length": {"100"}, "Content-Type": {"text/plain"}},
					Body:   body, Created: now, Expires: now.Add(time.Hour), StaleUntil: now.Add(time.Hour), KeepUntil: now.Add(time.Hour)})
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}(w)
	}
	for w := 0; w < 8; w++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	e.writeConfig(baseConfig(o.URL, ""))
	start := time.Now()
	e.start()
	ready := time.Since(start)
	t.Cleanup(e.stop)
	r := e.get("/obj/4242")
	wantStatus(t, r, 200)
	wantCacheStatus(t, r, "hit")
	if o.Stats().Requests != 0 {
		t.Fatal("a stored object went to the origin")
	}
	m := regexp.MustCompile(`startup=(\S+)`).FindStringSubmatch(e.stderr.String())
	t.Logf("100k objects: process ready to serve in %v (edgehost reports %v)", ready, m)
	if len(m) == 2 {
		if d, err := time.ParseDuration(m[1]); err == nil && d > time.Second {
			t.Errorf("startup took %v with 100k objects, want well under a second", d)
		}
	}
}

// TestCorruptChunkRefetched: a body chunk whose bytes changed on disk is
// never served; the object is dropped and fetched again.
func TestCorruptChunkRefetched(t *testing.T) {
	o := startOrigin(t)
	e := newEdge(t, baseConfig(o.URL, ""))
	good := e.get("/bytes/64k").Body
	time.Sleep(300 * time.Millisecond)
	e.stop()
	db, err := bolt.Open(filepath.Join(e.dir, "var", "cache.db"), 0o644, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	flipped := 0
	err = db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("chunks"))
		c := b.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			nv := append([]byte(nil), v...)
			nv[len(nv)/2] ^= 0xff
			flipped++
			if err := b.Put(append([]byte(nil), k...), nv); err != nil {
				return err
			}
		}
		return nil
	})
	db.Close()
	if err != nil || flipped == 0 {
		t.Fatalf("flipping chunk bytes: %v (%d chunks)", err, flipped)
	}
	before := o.Stats().Requests
	e.start()
	r := e.get("/bytes/64k")
	wantStatus(t, r, 200)
	if !bytes.Equal(r.Body, good) {
		t.Fatal("corrupt bytes were served")
	}
	if o.Stats().Requests != before+1 {
		t.Fatal("the corrupt object was not refetched")
	}
	if e.metric("edgehost_corrupt_objects_total") < 1 {
		t.Error("corruption not counted")
	}
}

func TestSlowlorisClosed(t *testing.T) {
	o := startOrigin(t)
	e := newEdge(t, baseConfig(o.URL, `
limits {
  header_timeout = "500ms"
  idle_timeout   = "1s"
}
`))
	c, err := net.Dial("tcp", e.HTTP)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("GET /bytes/1k HTTP/1.1\r\nHost: a\r\n"))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	buf := make([]byte, 512)
	n, _ := c.Read(buf)
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("half-sent head held the connection for %v", d)
	}
	if n > 0 && !strings.HasPrefix(string(buf[:n]), "HTTP/1.1 408") {
		t.Fatalf("unexpected answer %q", buf[:n])
	}
	wantStatus(t, e.get("/bytes/1k"), 200)
}

func TestRoutingByHostAndCondition(t *testing.T) {
	o := startOrigin(t)
	e := newEdge(t, baseConfig(o.URL, `
route "/" {
  host = ["static.example.com", "*.cdn.example.com"]
  respond {
    body = "static\n"
  }
}
route "/bytes/" {
  when    = lookup(request.headers, "x-beta", "") == "1"
  backend = backend.origin
  pass    = true
}
`))
	if r := e.get("/anything", "Host", "static.example.com"); string(r.Body) != "static\n" {
		t.Fatalf("host route: %q", r.Body)
	}
	if r := e.get("/anything", "Host", "img.cdn.example.com:8080"); string(r.Body) != "static\n" {
		t.Fatalf("wildcard host route: %q", r.Body)
	}
	if r := e.get("/bytes/10", "Host", "other.example.com"); r.Status != 200 || len(r.Body) != 10 {
		t.Fatalf("default route: %d %q", r.Status, r.Body)
	}
	e.get("/bytes/11")
	wantCacheStatus(t, e.get("/bytes/11"), "hit")
	wantCacheStatus(t, e.get("/bytes/11", "X-Beta", "1"), "fwd=bypass")
}

func TestMemoryEviction(t *testing.T) {
	o := startOrigin(t)
	e := newEdge(t, strings.Replace(baseConfig(o.URL, ""), `memory = "64MiB"`, `memory = "1MiB"`, 1))
	// 60 KiB bodies: small enough to be kept whole in memory (larger
	// ones, past storage.memory/16, keep only their header there once
	// stored, see cache.inline).
	for i := 0; i < 40; i++ {
		wantStatus(t, e.get(fmt.Sprintf("/bytes/60k?seed=%d", i)), 200)
	}
	if got := e.metric("edgehost_memory_bytes"); got > 1<<20 {
		t.Fatalf("memory tier holds %v bytes, budget 1MiB", got)
	}
	if e.metric("edgehost_memory_evictions_total") == 0 {
		t.Fatal("no evictions")
	}
	// Evicted objects are still on disk: hits without the origin.
	before := o.Stats().Requests
	wantCacheStatus(t, e.get("/bytes/60k?seed=0"), "hit")
	if o.Stats().Requests != before {
		t.Fatal("an object evicted from memory went to the origin")
	}
}
