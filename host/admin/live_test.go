package admin

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/edgehost/edgehost/host/observe"
)

func TestLiveSamplePoint(t *testing.T) {
	m := &observe.Metrics{}
	l := NewLive(LiveOptions{Metrics: m})
	t0 := time.Unix(1_700_000_000, 0)
	m.Requests.Add(5)
	l.sample(t0) // the baseline: no point
	if got := l.points(0); len(got) != 0 {
		t.Fatalf("points after the first sample: %d, want 0", len(got))
	}
	m.Requests.Add(10)
	m.Hits.Add(6)
	m.GraceHits.Add(1)
	m.Misses.Add(3)
	m.Passes.Add(2)
	m.BytesOut.Add(4096)
	m.StatusByClass[5].Add(2)
	m.ActiveConns.Add(7)
	l.sample(t0.Add(time.Second))
	l.sample(t0.Add(2 * time.Second)) // nothing happened
	got := l.points(0)
	if len(got) != 2 {
		t.Fatalf("points: %d, want 2", len(got))
	}
	want := Point{T: t0.Unix() + 1, Requests: 10, Hits: 7, Misses: 3, Passes: 2, HitRatio: 0.7, BytesOut: 4096, Errors5x: 2, Conns: 7}
	if got[0] != want {
		t.Errorf("point:\n got %+v\nwant %+v", got[0], want)
	}
	if got[1].Requests != 0 || got[1].HitRatio != -1 || got[1].Samples != 0 {
		t.Errorf("idle second: %+v, want 0 requests, hit ratio -1, no samples", got[1])
	}
}

func TestLiveRingIsBounded(t *testing.T) {
	m := &observe.Metrics{}
	l := NewLive(LiveOptions{Metrics: m, Window: 5})
	t0 := time.Unix(1_700_000_000, 0)
	for i := range 23 {
		m.Requests.Add(int64(i))
		l.sample(t0.Add(time.Duration(i) * time.Second))
	}
	got := l.points(0)
	if len(got) != 5 {
		t.Fatalf("points: %d, want the window's 5", len(got))
	}
	for i, p := range got {
		if want := t0.Unix() + int64(18+i); p.T != want || p.Requests != int64(18+i) {
			t.Errorf("point %d: t=%d requests=%d, want t=%d requests=%d", i, p.T, p.Requests, want, 18+i)
		}
	}
	if got := l.points(t0.Unix() + 20); len(got) != 2 || got[0].T != t0.Unix()+21 {
		t.Errorf("points since t0+20: %+v, want t0+21 and t0+22", got)
	}
}

func TestLivePercentiles(t *testing.T) {
	m := &observe.Metrics{}
	l := NewLive(LiveOptions{Metrics: m})
	a, b := m.RouteObservers("a"), m.RouteObservers("b")
	a.Observe(observe.CacheMiss, 7) // before the first sample: not this second's
	l.sample(time.Unix(100, 0))
	// 50 at 0.4ms, 40 at 3ms, 10 at 200ms, over two routes and several
	// cache statuses: the sampler sums every series.
	for range 25 {
		a.Observe(observe.CacheHit, 0.0004)
		b.Observe(observe.CacheHit, 0.0004)
	}
	for range 40 {
		b.Observe(observe.CacheMiss, 0.003)
	}
	for range 10 {
		a.Observe(observe.CachePass, 0.2)
	}
	l.sample(time.Unix(101, 0))
	l.sample(time.Unix(102, 0))      // nothing observed
	b.Observe(observe.CacheMiss, 20) // above the last bucket
	l.sample(time.Unix(103, 0))
	got := l.points(0)
	// p50: rank 50 ends the (0.25ms, 0.5ms] bucket; p90: rank 90 ends
	// (2.5ms, 5ms]; p99: rank 99 is 9/10 into (100ms, 250ms].
	near := func(x, y float64) bool { return x-y < 1e-9 && y-x < 1e-9 }
	if p := got[0]; p.Samples != 100 || !near(p.P50, 0.5) || !near(p.P90, 5) || !near(p.P99, 235) {
		t.Errorf("samples %d p50 %v p90 %v p99 %v, want 100 0.5 5 235", p.Samples, p.P50, p.P90, p.P99)
	}
	if p := got[1]; p.Samples != 0 || p.P50 != 0 {
		t.Errorf("an idle second has percentiles: %+v", p)
	}
	if p := got[2]; p.Samples != 1 || p.P50 != 10_000 {
		t.Errorf("one request of 20s: samples %d p50 %vms, want 1 and the last bound, 10000ms", p.Samples, p.P50)
	}

	// A reload that forgets route a lowers the sums: that second has no
	// percentiles (rather than negative counts), the next one has again.
	m.ForgetRoutes([]string{"b"})
	b.Observe(observe.CacheHit, 0.0004)
	l.sample(time.Unix(104, 0))
	b.Observe(observe.CacheHit, 0.0004)
	l.sample(time.Unix(105, 0))
	got = l.points(103)
	// (one request in (0.25ms, 0.5ms]: its p50 is half-way in the bucket)
	if got[0].Samples != 0 || got[1].Samples != 1 || !near(got[1].P50, 0.375) {
		t.Errorf("after forgetting a route: %+v then %+v, want no percentiles then 1 sample, p50 0.375ms", got[0], got[1])
	}
}

func TestLiveRecentErrors(t *testing.T) {
	l := NewLive(LiveOptions{Metrics: &observe.Metrics{}, Errors: 3})
	long := strings.Repeat("x", 5000)
	l.observe(observe.Tx{ID: 1, Kind: "client", Status: 200, URL: "/fine"}) // not an error
	l.observe(observe.Tx{ID: 2, Kind: "client", Status: 502, Host: "h", URL: "/a", Error: "origin refused"})
	l.observe(observe.Tx{ID: 2, Kind: "client", Status: 502, Host: "h", URL: "/a", Error: "origin refused"}) // seen twice (seed + follow)
	l.observe(observe.Tx{ID: 3, Kind: "segment", Status: 200, URL: "/b", Error: "short body"})
	l.observe(observe.Tx{ID: 4, Kind: "client", Status: 503, URL: "/" + long, Error: long})
	l.observe(observe.Tx{ID: 5, Kind: "client", Status: 500, URL: "/c"})
	if len(l.errs) != 3 {
		t.Fatalf("errors kept: %d, want 3", len(l.errs))
	}
	var ids []string
	for _, e := range l.errs {
		ids = append(ids, e.ID)
		if len(e.URL) > maxField+len("…") || len(e.Error) > maxField+len("…") {
			t.Errorf("error %s: url %d bytes, error %d bytes, want at most %d", e.ID, len(e.URL), len(e.Error), maxField)
		}
	}
	if got, want := strings.Join(ids, ","), "3,4,5"; got != want {
		t.Errorf("errors kept: %s, want the newest %s", got, want)
	}
}

func liveHandler(t *testing.T, l *Live) http.Handler {
	t.Helper()
	return Handler(Options{Token: "tok", Cache: &fakeCache{}, Metrics: l.o.Metrics, TxLog: l.o.TxLog,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Live: l})
}

func TestLiveStatusJSON(t *testing.T) {
	m := &observe.Metrics{}
	calls := 0
	l := NewLive(LiveOptions{Metrics: m, TxLog: observe.NewTxLog(16), Inventory: func(ctx context.Context) map[string]any {
		calls++
		if _, ok := ctx.Deadline(); !ok {
			t.Error("inventory called without a deadline")
		}
		return map[string]any{"plugins": []string{"p"}}
	}})
	h := liveHandler(t, l)
	t0 := time.Unix(1_700_000_000, 0)
	for i := range 4 {
		m.Requests.Add(3)
		l.sample(t0.Add(time.Duration(i) * time.Second))
	}
	l.observe(observe.Tx{ID: 9, Kind: "client", Status: 504, URL: "/slow"})
	get := func(target string) (*httptest.ResponseRecorder, LiveStatus) {
		req := httptest.NewRequest("GET", target, nil)
		req.Header.Set("Authorization", "Bearer tok")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		var st LiveStatus
		if w.Code == 200 {
			if err := json.Unmarshal(w.Body.Bytes(), &st); err != nil {
				t.Fatalf("%s: %v\n%s", target, err, w.Body)
			}
		}
		return w, st
	}
	w, st := get("/status.json")
	if w.Code != 200 || w.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("GET /status.json: %d, Cache-Control %q", w.Code, w.Header().Get("Cache-Control"))
	}
	if len(st.Points) != 3 || st.Points[2].Requests != 3 || st.Totals.Requests != 12 || st.Window != 300 {
		t.Errorf("points %+v totals %+v window %d, want 3 points of 3 requests, 12 in all, window 300", st.Points, st.Totals, st.Window)
	}
	if len(st.Errors) != 1 || st.Errors[0].Status != 504 || st.Errors[0].URL != "/slow" {
		t.Errorf("errors %+v, want the 504 of /slow", st.Errors)
	}
	if st.Inventory["plugins"] == nil {
		t.Errorf("inventory %v, want plugins", st.Inventory)
	}
	_, st = get("/status.json?since=" + itoa(t0.Unix()+2))
	if len(st.Points) != 1 || st.Points[0].T != t0.Unix()+3 {
		t.Errorf("since t0+2: %+v, want the one point of t0+3", st.Points)
	}
	if calls != 1 {
		t.Errorf("inventory called %d times for two polls within a second, want 1", calls)
	}
	for _, bad := range []string{"abc", "-1", "1.5"} {
		w, _ := get("/status.json?since=" + bad)
		if w.Code != 400 || !strings.Contains(w.Body.String(), "unix seconds") {
			t.Errorf("since=%s: %d %s, want 400 naming unix seconds", bad, w.Code, w.Body)
		}
	}
	if !l.watched(time.Now()) {
		t.Error("a poll does not count as watching")
	}
}

func itoa(v int64) string { b, _ := json.Marshal(v); return string(b) }

// TestLiveFollowsTheLogOnlyWhileWatched runs the sampler for real: it
// subscribes to the transaction log after a poll, keeps the errors (those
// of its buffer too), and lets go of the log when nobody polls.
func TestLiveFollowsTheLogOnlyWhileWatched(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: runs the sampler for about 5 seconds")
	}
	log := observe.NewTxLog(64)
	log.Publish(observe.Tx{ID: 77, Kind: "client", Status: 502, URL: "/before"})
	l := NewLive(LiveOptions{Metrics: &observe.Metrics{}, TxLog: log, WatchFor: 2 * time.Second})
	l.Start()
	defer l.Close()
	time.Sleep(1200 * time.Millisecond)
	if l.following.Load() {
		t.Fatal("follows the log before anybody polled")
	}
	h := liveHandler(t, l)
	req := httptest.NewRequest("GET", "/status.json", nil)
	req.Header.Set("Authorization", "Bearer tok")
	h.ServeHTTP(httptest.NewRecorder(), req)
	deadline := time.Now().Add(3 * time.Second)
	for !l.following.Load() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if !l.following.Load() {
		t.Fatal("not following the log 3s after a poll")
	}
	log.Publish(observe.Tx{ID: 78, Kind: "client", Status: 200, URL: "/fine"})
	log.Publish(observe.Tx{ID: 79, Kind: "segment", Status: 206, URL: "/after", Error: "short body"})
	deadline = time.Now().Add(3 * time.Second)
	var urls []string
	for time.Now().Before(deadline) {
		l.mu.Lock()
		urls = urls[:0]
		for _, e := range l.errs {
			urls = append(urls, e.URL)
		}
		l.mu.Unlock()
		if len(urls) == 2 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got, want := strings.Join(urls, " "), "/before /after"; got != want {
		t.Errorf("recent errors %q, want %q (the one logged before the subscription, then the one after)", got, want)
	}
	deadline = time.Now().Add(4 * time.Second)
	for l.following.Load() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if l.following.Load() {
		t.Error("still following the log with nobody polling for 4s (WatchFor 2s)")
	}
}
