package observe

import (
	"fmt"
	"math"
	"testing"
	"time"
)

func rowURLs(rows []TopRow) string {
	s := ""
	for i, r := range rows {
		if i > 0 {
			s += " "
		}
		s += r.URL
	}
	return s
}

func TestTopRankings(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 6, 0, 0, 0, time.UTC)
	top := NewTop(100, time.Minute, time.Minute)
	add := func(url, cache string, at, dur time.Duration) {
		top.Add(&Tx{Host: "h", URL: url, Cache: cache, Start: t0.Add(at), Duration: dur})
	}
	hit, miss := "edgehost; hit; ttl=10", "edgehost; fwd=uri-miss; stored"
	for i := range 5 {
		add("/a", hit, time.Duration(i)*time.Millisecond, time.Millisecond)
	}
	for i := range 3 {
		add("/b", miss, time.Duration(i)*time.Millisecond, time.Duration(i+1)*100*time.Millisecond)
	}
	add("/c", "edgehost; fwd=bypass", 0, 20*time.Millisecond)
	add("/d", miss, 0, 5*time.Millisecond)

	v := top.View(t0.Add(time.Second), 3)
	if got, want := rowURLs(v.Requested), "h/a h/b h/c"; got != want {
		t.Errorf("requested %s, want %s (3 rows)", got, want)
	}
	if got, want := rowURLs(v.Missed), "h/b h/d"; got != want {
		t.Errorf("missed %s, want %s", got, want)
	}
	if got, want := rowURLs(v.Slowest), "h/b h/c h/d"; got != want {
		t.Errorf("slowest %s, want %s", got, want)
	}
	b := v.Slowest[0]
	if b.Max != 300*time.Millisecond || b.P50 != 200*time.Millisecond || b.N != 3 {
		t.Errorf("slowest /b: max %v p50 %v n %d; want 300ms 200ms 3", b.Max, b.P50, b.N)
	}
	if c := v.Requested[0].Count; c < 4.9 || c > 5 {
		t.Errorf("/a counts %v one second on, want just under 5", c)
	}
	if v.Records != 10 {
		t.Errorf("Records = %d, want 10", v.Records)
	}

	// One period later the counts are 1/e of what they were, and the
	// durations have left the window.
	later := top.View(t0.Add(time.Second+time.Minute+5*time.Millisecond), 3)
	if got, want := later.Requested[0].Count, v.Requested[0].Count/math.E; math.Abs(got-want) > 0.01 {
		t.Errorf("after one period /a counts %v, want %v", got, want)
	}
	if len(later.Slowest) != 0 {
		t.Errorf("slowest after the window: %+v, want none", later.Slowest)
	}
	// A URL requested now passes one that was requested often a while ago.
	for range 3 {
		add("/e", hit, 3*time.Minute, time.Millisecond)
	}
	if got := top.View(t0.Add(3*time.Minute), 1).Requested[0].URL; got != "h/e" {
		t.Errorf("most requested after 3 minutes: %s, want h/e (decayed counts)", got)
	}
}

func TestTopBounded(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 6, 0, 0, 0, time.UTC)
	top := NewTop(64, time.Minute, time.Minute)
	// A popular URL, then a flood of unique ones.
	for range 50 {
		top.Add(&Tx{URL: "/popular", Start: t0})
	}
	for i := range 10000 {
		top.Add(&Tx{URL: fmt.Sprintf("/u/%d", i), Start: t0.Add(time.Duration(i) * time.Millisecond)})
		if top.Len() > 64 {
			t.Fatalf("table holds %d URLs, want at most 64", top.Len())
		}
	}
	if top.Evicted < 10000-64 {
		t.Errorf("Evicted = %d, want at least %d", top.Evicted, 10000-64)
	}
	if got := top.View(t0.Add(10*time.Second), 1).Requested[0].URL; got != "/popular" {
		t.Errorf("most requested: %s, want /popular (kept through the flood)", got)
	}
}
