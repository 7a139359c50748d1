package integration

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Waiters of a failed fetch each fetch again on their own.
func TestRegressFailedFlightHerd(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		time.Sleep(1500 * time.Millisecond) // past first_byte_timeout = 1s
	}))
	defer srv.Close()
	e := newEdge(t, baseConfig(srv.URL, ""))
	var wg sync.WaitGroup
	start := time.Now()
	var mu sync.Mutex
	var slowest time.Duration
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t0 := time.Now()
			r := e.get("/down")
			mu.Lock()
			slowest = max(slowest, time.Since(t0))
			mu.Unlock()
			_ = r
		}()
		time.Sleep(20 * time.Millisecond)
	}
	wg.Wait()
	t.Logf("8 clients: origin requests %d, slowest client %v, total %v", n.Load(), slowest, time.Since(start))
	if n.Load() > 1 {
		t.Fatalf("%d origin requests for one coalesced miss", n.Load())
	}
}
