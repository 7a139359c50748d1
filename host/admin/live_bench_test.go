package admin

import (
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/edgehost/edgehost/host/observe"
)

// The sampler's per-record work runs once per request while a page is
// open: it must not allocate.
func TestLiveObserveAllocatesNothing(t *testing.T) {
	l := NewLive(LiveOptions{Metrics: &observe.Metrics{}})
	tx := observe.Tx{Kind: "client", Status: 200, Duration: time.Millisecond}
	if n := testing.AllocsPerRun(1000, func() { l.observe(tx) }); n != 0 {
		t.Errorf("observe allocates %v times per record, want 0", n)
	}
}

// BenchmarkLiveSample is the sampler's work once a second: the counters
// and a Gather of the registry for the latency histogram (20 routes).
func BenchmarkLiveSample(b *testing.B) {
	m := &observe.Metrics{}
	for i := range 20 {
		r := m.RouteObservers(strconv.Itoa(i))
		for c := observe.CacheHit; c <= observe.CacheSynth; c++ {
			r.Observe(c, 0.001)
		}
	}
	l := NewLive(LiveOptions{Metrics: m})
	now := time.Unix(1_700_000_000, 0)
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(time.Second)
		l.sample(now)
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
