package integration

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// procStatus reads fields of /proc/PID/status in bytes (VmRSS, RssAnon…).
func procStatus(pid int, names ...string) (map[string]int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, err
	}
	out := make(map[string]int64, len(names))
	for _, line := range strings.Split(string(b), "\n") {
		name, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		for _, n := range names {
			if n == name {
				var kb int64
				fmt.Sscanf(strings.TrimSpace(rest), "%d", &kb)
				out[n] = kb << 10
			}
		}
	}
	for _, n := range names {
		if _, ok := out[n]; !ok {
			return nil, fmt.Errorf("no %s in /proc/%d/status", n, pid)
		}
	}
	return out, nil
}

// plainEdge is an edge (not started) whose memory is edgehost's: under
// make test (EDGEHOST_BIN=bin/race) it runs the plain binary beside the
// race build, whose detector's shadow memory is not edgehost's.
func plainEdge(t *testing.T) *edge {
	e := &edge{t: t, dir: t.TempDir(), HTTP: freePort(t), Admin: freePort(t), Token: "s3cret"}
	if filepath.Base(binDir) == "race" {
		if plain := filepath.Join(binDir, "..", "edgehost"); fileExists(plain) {
			e.bin = plain
		}
	}
	return e
}

// rssSampler samples a process's VmRSS and RssAnon every 20 ms until
// stopped and keeps their peaks.
type rssSampler struct {
	stop            chan struct{}
	done            chan struct{}
	peakRSS, peakAn int64
	samples         int
}

func sampleRSS(t *testing.T, pid int) *rssSampler {
	s := &rssSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			if m, err := procStatus(pid, "VmRSS", "RssAnon"); err == nil {
				s.peakRSS, s.peakAn = max(s.peakRSS, m["VmRSS"]), max(s.peakAn, m["RssAnon"])
				s.samples++
			}
			select {
			case <-s.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

func (s *rssSampler) end() { close(s.stop); <-s.done }

// TestMemoryBoundedUnderDiskHits (issue 13, item 3): hits on large
// objects that are in cache.db only — 40 concurrent readers of one, then
// 20 slow readers of four of them in turn — keep edgehost's memory within
// 2 × storage.memory plus per-connection buffers: bodies are read from the
// store chunk by chunk, never whole onto the heap. Before, each read of an
// object evicted from the memory tier (32 MiB holds one 16 MiB object at a
// time) made a new 16 MiB copy that its slow readers kept alive.
//
// RssAnon (the heap, stacks, buffers) is held to that bound; VmRSS also
// counts the pages of cache.db's read-only mapping that the reads touched
// (the kernel's page cache, shared and reclaimable), at most the file's
// size on top.
func TestMemoryBoundedUnderDiskHits(t *testing.T) {
	o := startOrigin(t)
	e := plainEdge(t)
	const (
		memory  = 32 << 20
		objSize = 16 << 20
		objects = 4
		readers = 40
		slow    = 20
	)
	e.writeConfig(strings.Replace(patientConfig(o.URL, ""), `memory = "64MiB"`, `memory = "32MiB"`, 1))
	e.start()
	t.Cleanup(e.stop)
	sums := make([][32]byte, objects)
	for i := range objects {
		path := fmt.Sprintf("/bytes/16m?seed=%d", i+1)
		resp, err := client.Get(e.url(path))
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		n, err := io.Copy(h, resp.Body)
		resp.Body.Close()
		if err != nil || n != objSize || !strings.Contains(resp.Header.Get("Cache-Status"), "stored") {
			t.Fatalf("fill %s: %d bytes, %v, Cache-Status %q", path, n, err, resp.Header.Get("Cache-Status"))
		}
		copy(sums[i][:], h.Sum(nil))
	}
	// A clean stop writes every object to cache.db; after the restart
	// they are on disk only.
	e.stop()
	e.start()
	pid := e.cmd.Process.Pid
	base, err := procStatus(pid, "VmRSS", "RssAnon")
	if err != nil {
		t.Fatal(err)
	}
	sampler := sampleRSS(t, pid)

	// read fetches object i, at the pace of pause per 64 KiB for its first
	// slowBytes, and checks its length and digest.
	read := func(i int, pause time.Duration, slowBytes int64) error {
		resp, err := client.Get(e.url(fmt.Sprintf("/bytes/16m?seed=%d", i+1)))
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if !strings.Contains(resp.Header.Get("Cache-Status"), "hit") {
			return fmt.Errorf("object %d: Cache-Status %q, want a hit", i, resp.Header.Get("Cache-Status"))
		}
		h := sha256.New()
		var n int64
		for n < slowBytes {
			m, err := io.CopyN(h, resp.Body, 64<<10)
			n += m
			if err != nil {
				break
			}
			time.Sleep(pause)
		}
		m, err := io.Copy(h, resp.Body)
		n += m
		if err != nil || n != objSize || !bytes.Equal(h.Sum(nil), sums[i][:]) {
			return fmt.Errorf("object %d: %d bytes, %v, digest match %v", i, n, err, bytes.Equal(h.Sum(nil), sums[i][:]))
		}
		return nil
	}
	var wg sync.WaitGroup
	errs := make(chan error, readers+slow)
	for range readers {
		wg.Add(1)
		go func() { defer wg.Done(); errs <- read(0, 0, 0) }()
	}
	wg.Wait()
	for i := range slow {
		wg.Add(1)
		go func() { defer wg.Done(); errs <- read(i%objects, 25*time.Millisecond, 6<<20) }()
		time.Sleep(50 * time.Millisecond)
	}
	wg.Wait()
	sampler.end()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	fi, err := os.Stat(filepath.Join(e.dir, "var", "cache.db"))
	if err != nil {
		t.Fatal(err)
	}
	// The bound: twice storage.memory, 1 MiB a connection (its copy
	// buffer, the h1 buffers, goroutine stacks), over the process at rest.
	bound := base["RssAnon"] + 2*memory + (readers+slow)<<20
	t.Logf("%d samples: peak RssAnon %d MiB (at start %d MiB, bound %d MiB), peak VmRSS %d MiB (at start %d MiB, cache.db %d MiB)",
		sampler.samples, sampler.peakAn>>20, base["RssAnon"]>>20, bound>>20, sampler.peakRSS>>20, base["VmRSS"]>>20, fi.Size()>>20)
	if sampler.samples < 10 {
		t.Errorf("only %d RSS samples during the load", sampler.samples)
	}
	if sampler.peakAn > bound {
		t.Errorf("peak RssAnon %d MiB past the bound %d MiB", sampler.peakAn>>20, bound>>20)
	}
	if limit := base["VmRSS"] - base["RssAnon"] + bound + fi.Size(); sampler.peakRSS > limit {
		t.Errorf("peak VmRSS %d MiB past the bound plus cache.db, %d MiB", sampler.peakRSS>>20, limit>>20)
	}
}

// TestDiskBodyRangesAndRefresh: a large object read from cache.db chunk
// by chunk serves ranges across chunks, and a 304 that refreshes it
// rewrites its header without its body: after another restart the body is
// whole and right.
func TestDiskBodyRangesAndRefresh(t *testing.T) {
	o := startOrigin(t)
	e := newEdge(t, strings.Replace(patientConfig(o.URL, ""), `memory = "64MiB"`, `memory = "32MiB"`, 1))
	const path = "/bytes/8m?seed=9&max-age=1"
	resp, err := client.Get(o.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	want, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || len(want) != 8<<20 {
		t.Fatalf("origin: %d bytes, %v", len(want), err)
	}
	if r := e.get(path); !bytes.Equal(r.Body, want) || !strings.Contains(r.Header.Get("Cache-Status"), "stored") {
		t.Fatalf("fill: %d bytes, Cache-Status %q", len(r.Body), r.Header.Get("Cache-Status"))
	}
	e.stop()
	e.start()
	for _, rg := range [][2]int{{5, 5}, {1<<20 - 10, 1<<20 + 10}, {3 << 20, 6<<20 + 7}, {8<<20 - 3, 8<<20 - 1}} {
		r := e.get(path, "Range", fmt.Sprintf("bytes=%d-%d", rg[0], rg[1]))
		if r.Status != http.StatusPartialContent || !bytes.Equal(r.Body, want[rg[0]:rg[1]+1]) {
			t.Errorf("range %d-%d: status %d, %d bytes, equal %v", rg[0], rg[1], r.Status, len(r.Body), bytes.Equal(r.Body, want[rg[0]:rg[1]+1]))
		}
	}
	// Stale (max-age=1) and in grace: served, and refreshed by a 304 in
	// the background.
	time.Sleep(1100 * time.Millisecond)
	before := o.Stats()
	if r := e.get(path); !bytes.Equal(r.Body, want) {
		t.Fatalf("stale hit: %d bytes, Cache-Status %q", len(r.Body), r.Header.Get("Cache-Status"))
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := e.get(path)
		if !bytes.Equal(r.Body, want) {
			t.Fatalf("after the refresh: %d bytes", len(r.Body))
		}
		cs := r.Header.Get("Cache-Status")
		if strings.Contains(cs, "hit") && !strings.Contains(cs, "stale") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not refreshed after 10s: Cache-Status %q", cs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Refreshes are 304s: no body is fetched again (on a slow machine the
	// refreshed object, fresh for 1 s, may go stale and be refreshed
	// again before the loop sees it fresh).
	after := o.Stats()
	if n, m := after.Requests-before.Requests, after.NotModified-before.NotModified; n < 1 || n != m {
		t.Errorf("%d origin requests for the refresh, %d of them 304s; want only 304s", n, m)
	}
	if b := after.BytesSent - before.BytesSent; b != 0 {
		t.Errorf("the refresh fetched %d body bytes again", b)
	}
	e.stop()
	e.start()
	if r := e.get(path); !bytes.Equal(r.Body, want) || !strings.Contains(r.Header.Get("Cache-Status"), "hit") {
		t.Errorf("after a restart: %d bytes, equal %v, Cache-Status %q", len(r.Body), bytes.Equal(r.Body, want), r.Header.Get("Cache-Status"))
	}
}

// TestPurgeDuringDiskDelivery: a response sent from a body in cache.db
// ends whole when the object is purged while the client reads it (its
// chunks are kept until the response ends), and the purge holds: the next
// request is a miss.
func TestPurgeDuringDiskDelivery(t *testing.T) {
	o := startOrigin(t)
	e := newEdge(t, strings.Replace(patientConfig(o.URL, ""), `memory = "64MiB"`, `memory = "32MiB"`, 1))
	const path = "/bytes/16m?seed=5"
	r := e.get(path)
	if len(r.Body) != 16<<20 || !strings.Contains(r.Header.Get("Cache-Status"), "stored") {
		t.Fatalf("fill: %d bytes, Cache-Status %q", len(r.Body), r.Header.Get("Cache-Status"))
	}
	want := sha256.Sum256(r.Body)
	e.stop()
	e.start() // on disk only
	resp, err := client.Get(e.url(path))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if !strings.Contains(resp.Header.Get("Cache-Status"), "hit") {
		t.Fatalf("Cache-Status %q, want a hit", resp.Header.Get("Cache-Status"))
	}
	h := sha256.New()
	if _, err := io.CopyN(h, resp.Body, 1<<20); err != nil {
		t.Fatal(err)
	}
	if p := e.admin("POST", "/purge?url="+urlq("http://"+e.HTTP+path), ""); p.Status != 200 {
		t.Fatalf("purge: %d %s", p.Status, p.Body)
	}
	n, err := io.Copy(h, resp.Body)
	if err != nil || n != 15<<20 || [32]byte(h.Sum(nil)) != want {
		t.Fatalf("the response cut by the purge: %d more bytes, %v, digest match %v", n, err, [32]byte(h.Sum(nil)) == want)
	}
	if r := e.get(path); strings.Contains(r.Header.Get("Cache-Status"), "hit") {
		t.Errorf("after the purge: Cache-Status %q, want a miss", r.Header.Get("Cache-Status"))
	}
}
