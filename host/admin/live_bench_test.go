package admin

import (
	"net/http/httptest"
	"testing"
	"time"

	"github.com/edgehost/edgehost/host/observe"
)

// The sampler's per-record work runs once per request while a page is
// open: it must not allocate (a full reservoir replaces at random).
func TestLiveObserveAllocatesNothing(t *testing.T) {
	l := NewLive(LiveOptions{Metrics: &observe.Metrics{}, Reservoir: 16})
	tx := observe.Tx{Kind: "client", Status: 200, Duration: time.Millisecond}
	if n := testing.AllocsPerRun(1000, func() { l.observe(tx) }); n != 0 {
		t.Errorf("observe allocates %v times per record, want 0", n)
	}
	if n := testing.AllocsPerRun(100, func() { l.sample(time.Now()) }); n != 0 {
		t.Errorf("sample allocates %v times per second, want 0", n)
	}
}

func BenchmarkLiveObserve(b *testing.B) {
	l := NewLive(LiveOptions{Metrics: &observe.Metrics{}})
	tx := observe.Tx{Kind: "client", Status: 200, Duration: time.Millisecond}
	for b.Loop() {
		l.observe(tx)
	}
}

// BenchmarkLiveStatusJSON is one poll of a page with a full window.
func BenchmarkLiveStatusJSON(b *testing.B) {
	m := &observe.Metrics{}
	l := NewLive(LiveOptions{Metrics: m})
	t0 := time.Unix(1_700_000_000, 0)
	for i := range 301 {
		m.Requests.Add(1000)
		l.sample(t0.Add(time.Duration(i) * time.Second))
	}
	for i := range 50 {
		l.observe(observe.Tx{ID: observe.TxID(i + 1), Kind: "client", Status: 502, URL: "/x"})
	}
	req := httptest.NewRequest("GET", "/status.json", nil)
	b.ReportAllocs()
	for b.Loop() {
		l.ServeHTTP(httptest.NewRecorder(), req)
	}
}
