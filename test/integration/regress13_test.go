package integration

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fillN stores n distinct objects with 16 concurrent clients and fails
// unless every response said "stored".
func (e *edge) fillN(prefix string, n int) {
	e.t.Helper()
	var next atomic.Int64
	var bad atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1) - 1; i < int64(n); i = next.Add(1) - 1 {
				resp, err := client.Get(e.url(fmt.Sprintf("/bytes/1k?%s=%d", prefix, i)))
				if err != nil {
					bad.Add(1)
					continue
				}
				resp.Body.Close()
				if !strings.Contains(resp.Header.Get("Cache-Status"), "stored") {
					bad.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if bad.Load() != 0 {
		e.t.Fatalf("%d of %d fills were not stored", bad.Load(), n)
	}
}

// hitsN counts how many of the n objects fillN stored are hits now.
func (e *edge) hitsN(prefix string, n int) int {
	e.t.Helper()
	hits := 0
	for i := range n {
		r := e.get(fmt.Sprintf("/bytes/1k?%s=%d", prefix, i))
		if strings.Contains(r.Header.Get("Cache-Status"), "hit") {
			hits++
		}
	}
	return hits
}

// TestStoredObjectsSurviveRestart (issue 13, item 4): every object whose
// response said "stored" is a hit after a SIGTERM and restart, and after a
// kill -9 that comes later than the write-behind's window (README,
// "Persistence"). Before the fix the put that closed each 64-object batch
// was dropped.
func TestStoredObjectsSurviveRestart(t *testing.T) {
	o := startOrigin(t)
	e := newEdge(t, baseConfig(o.URL, ""))
	const n = 600
	e.fillN("term", n)
	e.stop()
	e.start()
	if got := e.hitsN("term", n); got != n {
		t.Errorf("after SIGTERM: %d of %d stored objects are hits", got, n)
	}
	e.fillN("kill", n)
	time.Sleep(time.Second) // the README's bound for a kill -9
	e.kill9()
	e.start()
	if got := e.hitsN("kill", n); got != n {
		t.Errorf("after kill -9: %d of %d stored objects are hits", got, n)
	}
}

// TestStoredAfterBanSurvivesRestart (issue 13, item 5): an object stored
// again right after a ban that removed its previous version survives a
// restart. Before the fix the stored time was the origin's Date (one-second
// resolution), older than the ban, so the ban removed the object on its
// first lookup after the restart.
func TestStoredAfterBanSurvivesRestart(t *testing.T) {
	o := startOrigin(t)
	e := newEdge(t, baseConfig(o.URL, ""))
	for round := range 3 {
		path := fmt.Sprintf("/bytes/1k?ban=%d", round)
		wantCacheStatus(t, e.get(path), "stored")
		wantStatus(t, e.admin("POST", "/ban", fmt.Sprintf(`req.url ~ "^/bytes/1k\\?ban=%d"`, round)), 200)
		wantCacheStatus(t, e.get(path), "stored")
		wantCacheStatus(t, e.get(path), "hit")
	}
	e.stop()
	e.start()
	for round := range 3 {
		wantCacheStatus(t, e.get(fmt.Sprintf("/bytes/1k?ban=%d", round)), "hit")
	}
}
