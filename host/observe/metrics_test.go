package observe

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
)

// lint gathers m's registry and fails on every problem promlint (the
// linter of `promtool check metrics`) finds.
func lint(t *testing.T, m *Metrics) {
	t.Helper()
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatalf("lint: %v", err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}

func TestMetricsExposition(t *testing.T) {
	var m Metrics
	m.Hits.Add(3)
	m.Status(204)
	m.MemObjects.Store(5)
	m.GaugeFunc("edgehost_test_level", "A gauge of the test.", func() float64 { return 7 })
	m.CounterFunc("edgehost_test_events_total", "A counter of the test.", func() float64 { return 2 })
	m.RouteObservers("api").Observe(CacheHit, 0.002)
	m.OriginObserver("app").Observe(0.05)
	m.OriginErrorCounter("app").Inc()
	want := `
# HELP edgehost_cache_hits_total Requests served from cache.
# TYPE edgehost_cache_hits_total counter
edgehost_cache_hits_total 3
# HELP edgehost_memory_objects Objects in the memory tier.
# TYPE edgehost_memory_objects gauge
edgehost_memory_objects 5
# HELP edgehost_origin_errors_total Origin fetches that failed (connect, timeouts, truncated bodies, limits), by backend.
# TYPE edgehost_origin_errors_total counter
edgehost_origin_errors_total{backend="app"} 1
# HELP edgehost_responses_total Responses by status class.
# TYPE edgehost_responses_total counter
edgehost_responses_total{class="1xx"} 0
edgehost_responses_total{class="2xx"} 1
edgehost_responses_total{class="3xx"} 0
edgehost_responses_total{class="4xx"} 0
edgehost_responses_total{class="5xx"} 0
# HELP edgehost_test_events_total A counter of the test.
# TYPE edgehost_test_events_total counter
edgehost_test_events_total 2
# HELP edgehost_test_level A gauge of the test.
# TYPE edgehost_test_level gauge
edgehost_test_level 7
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want),
		"edgehost_cache_hits_total", "edgehost_memory_objects", "edgehost_origin_errors_total", "edgehost_responses_total",
		"edgehost_test_events_total", "edgehost_test_level"); err != nil {
		t.Error(err)
	}
	for name, want := range map[string]int{
		"edgehost_request_duration_seconds":      5, // api × hit, miss, pass, stale, synth
		"edgehost_origin_fetch_duration_seconds": 1,
		"go_goroutines":                          1,
		"process_open_fds":                       1,
	} {
		if got, err := testutil.GatherAndCount(m.Registry(), name); err != nil || got != want {
			t.Errorf("%s: %d series (%v), want %d", name, got, err, want)
		}
	}
	lint(t, &m)
}

func TestRouteObserversByCacheStatus(t *testing.T) {
	var m Metrics
	r := m.RouteObservers("static")
	r.Observe(CacheHit, 0.001)
	r.Observe(CacheHit, 0.003)
	r.Observe(CacheStale, 0.5)
	r.Observe(numCacheStatus, 1) // out of range: ignored
	var nilObs *RouteObservers
	nilObs.Observe(CacheHit, 1) // a route compiled without metrics
	count := func(cache string) uint64 {
		n, ok := HistogramCount(m.Registry(), "edgehost_request_duration_seconds", map[string]string{"route": "static", "cache": cache})
		if !ok {
			t.Fatalf("no series for route static, cache %s", cache)
		}
		return n
	}
	for cache, want := range map[string]uint64{"hit": 2, "stale": 1, "miss": 0, "pass": 0, "synth": 0} {
		if got := count(cache); got != want {
			t.Errorf("cache=%s: count %d, want %d", cache, got, want)
		}
	}
	if CacheSynth.String() != "synth" || CacheStatus(9).String() != "CacheStatus(9)" {
		t.Errorf("CacheStatus names: %s %s", CacheSynth, CacheStatus(9))
	}
}

// The request path observes through resolved observers: that must not
// allocate (the hit path's allocation guard in host/server depends on it).
func TestRouteObserveAllocatesNothing(t *testing.T) {
	var m Metrics
	r := m.RouteObservers("api")
	if n := testing.AllocsPerRun(1000, func() { r.Observe(CacheHit, 0.0001) }); n != 0 {
		t.Errorf("Observe allocates %v times per call, want 0", n)
	}
}

func TestForgetRoutes(t *testing.T) {
	var m Metrics
	m.RouteObservers("old").Observe(CacheMiss, 0.1)
	m.RouteObservers("kept").Observe(CacheMiss, 0.1)
	m.ForgetRoutes([]string{"kept"})
	if got, _ := testutil.GatherAndCount(m.Registry(), "edgehost_request_duration_seconds"); got != 5 {
		t.Errorf("after ForgetRoutes: %d series, want the 5 of route kept", got)
	}
}

// A reload wires parts anew: registering a function again replaces it
// instead of failing on a duplicate.
func TestGaugeFuncReplaces(t *testing.T) {
	var m Metrics
	m.GaugeFunc("edgehost_test_level", "A gauge of the test.", func() float64 { return 1 })
	m.GaugeFunc("edgehost_test_level", "A gauge of the test.", func() float64 { return 2 })
	want := "# HELP edgehost_test_level A gauge of the test.\n# TYPE edgehost_test_level gauge\nedgehost_test_level 2\n"
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), "edgehost_test_level"); err != nil {
		t.Error(err)
	}
}

// Two edgehosts in one process (the tests) have registries of their own.
func TestRegistriesApart(t *testing.T) {
	var a, b Metrics
	a.Requests.Add(1)
	if a.Registry() == b.Registry() {
		t.Fatal("two Metrics share a registry")
	}
	want := "# HELP edgehost_requests_total Client requests received.\n# TYPE edgehost_requests_total counter\nedgehost_requests_total 0\n"
	if err := testutil.GatherAndCompare(b.Registry(), strings.NewReader(want), "edgehost_requests_total"); err != nil {
		t.Error(err)
	}
}
