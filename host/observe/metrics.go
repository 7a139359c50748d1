// Package observe holds edgehost's metrics (a Prometheus registry served on
// the admin listener's /metrics) and its transaction log (every request and
// subrequest with id, parent, timings, cache decision and status, followed
// live by `edgehost log`).
//
// Metrics are kept two ways, both read through one prometheus.Registry per
// running edgehost (tests start several, so never the global default):
//
//   - values the request path counts anyway are atomic fields of Metrics,
//     exposed at scrape time by a prometheus.Collector that turns them into
//     const metrics (the client library's convention for values counted
//     elsewhere; nothing is allocated per request);
//   - latency histograms are client_golang Histograms, whose Observe is an
//     atomic add. Their children are resolved ahead of time (per compiled
//     route, per backend, per plugin method) so the request path calls
//     Observe only, never WithLabelValues.
//
// Every series is listed in docs/metrics.md.
package observe

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are the host's counters and histograms. Fields are updated with
// atomic adds on the request path; nothing here takes a lock per request.
// The zero value is ready to use: the registry is built on first use.
type Metrics struct {
	Requests       atomic.Int64 // client requests
	SelfRequests   atomic.Int64 // requests on the self socket
	Hits           atomic.Int64
	GraceHits      atomic.Int64 // stale objects served while revalidating
	Misses         atomic.Int64
	Passes         atomic.Int64
	Synth          atomic.Int64
	CoalescedWaits atomic.Int64 // requests that waited for another's fetch
	Revalidations  atomic.Int64 // conditional fetches to an origin
	Revalidated304 atomic.Int64
	OriginFetches  atomic.Int64
	OriginErrors   atomic.Int64 // all backends; by backend: OriginErrorCounter
	BytesOut       atomic.Int64 // body bytes to clients
	BytesIn        atomic.Int64 // body bytes from origins
	Stored         atomic.Int64 // objects stored
	NotStored      atomic.Int64 // responses not storable
	MemObjects     atomic.Int64
	MemBytes       atomic.Int64
	MemEvictions   atomic.Int64
	Purges         atomic.Int64
	Bans           atomic.Int64
	BanKills       atomic.Int64 // objects removed by a ban
	Corrupt        atomic.Int64 // objects dropped for a bad checksum
	LoopRejects    atomic.Int64 // 508 answers
	BadRequests    atomic.Int64
	StatusByClass  [6]atomic.Int64 // 1xx..5xx by index
	ActiveConns    atomic.Int64
	AcceptErrors   atomic.Int64 // accepts that failed for want of descriptors or memory
	ConnsShed      atomic.Int64 // idle connections closed to make room
	SelfRefused    atomic.Int64 // self-socket peers refused by their credentials
	FillsRefused   atomic.Int64 // storable responses streamed uncached: the fill budget was spent
	SegmentHits    atomic.Int64
	SegmentMisses  atomic.Int64
	SegmentBytes   atomic.Int64 // body bytes of slicer segments fetched from origins

	once       sync.Once
	reg        *prometheus.Registry
	requestDur *prometheus.HistogramVec // route, cache
	originDur  *prometheus.HistogramVec // backend
	originErrs *prometheus.CounterVec   // backend

	mu    sync.Mutex
	funcs map[string]prometheus.Collector // GaugeFunc / CounterFunc by name
}

// LatencyBuckets are the upper bounds (seconds) of the latency histograms:
// from 50µs (a hit from memory) to 10s (a slow origin). Fixed here so that
// dashboards can rely on them.
var LatencyBuckets = []float64{0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// Registry returns the registry of this edgehost's metrics: the host's
// series, the Go runtime's and the process's. The admin API serves it at
// /metrics; other readers (the status page) may Gather from it.
func (m *Metrics) Registry() *prometheus.Registry {
	m.once.Do(m.init)
	return m.reg
}

func (m *Metrics) init() {
	m.reg = prometheus.NewRegistry()
	m.requestDur = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "edgehost_request_duration_seconds",
		Help:    "Time from a client request's header to the end of its response, by route and cache status (hit, miss, pass, stale, synth).",
		Buckets: LatencyBuckets,
	}, []string{"route", "cache"})
	m.originDur = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "edgehost_origin_fetch_duration_seconds",
		Help:    "Time from sending a request to an origin to its response header, by backend.",
		Buckets: LatencyBuckets,
	}, []string{"backend"})
	m.originErrs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "edgehost_origin_errors_total",
		Help: "Origin fetches that failed (connect, timeouts, truncated bodies, limits), by backend.",
	}, []string{"backend"})
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		counterCollector{m},
		m.requestDur, m.originDur, m.originErrs,
	)
}

// Register adds a collector of another package (the plugin manager's, the
// compute tenants') to the registry.
func (m *Metrics) Register(c prometheus.Collector) error {
	return m.Registry().Register(c)
}

// GaugeFunc registers a gauge read at scrape time (e.g. the disk tier's
// size). Registering a name again replaces its function: a reload may wire a
// part anew.
func (m *Metrics) GaugeFunc(name, help string, f func() float64) {
	m.replaceFunc(name, prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
}

// CounterFunc registers a counter read at scrape time from a value counted
// elsewhere (e.g. the disk tier's evictions); like GaugeFunc it replaces.
func (m *Metrics) CounterFunc(name, help string, f func() float64) {
	m.replaceFunc(name, prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, f))
}

func (m *Metrics) replaceFunc(name string, c prometheus.Collector) {
	reg := m.Registry()
	m.mu.Lock()
	defer m.mu.Unlock()
	if old, ok := m.funcs[name]; ok {
		reg.Unregister(old)
	}
	if m.funcs == nil {
		m.funcs = map[string]prometheus.Collector{}
	}
	m.funcs[name] = c
	reg.MustRegister(c)
}

// Status counts a response status.
func (m *Metrics) Status(code int) {
	if c := code / 100; c >= 1 && c <= 5 {
		m.StatusByClass[c].Add(1)
	}
}

// CacheStatus is the cache's part in a response, the `cache` label of
// edgehost_request_duration_seconds.
type CacheStatus uint8

// The cache statuses, in the order of their label values.
const (
	CacheHit   CacheStatus = iota // served from cache, fresh
	CacheMiss                     // fetched (or made by a source) and maybe stored
	CachePass                     // sent to the origin uncached
	CacheStale                    // served stale (grace, stale-if-error)
	CacheSynth                    // answered by the host itself (respond, errors)
	numCacheStatus
)

var cacheStatusNames = [numCacheStatus]string{"hit", "miss", "pass", "stale", "synth"}

func (c CacheStatus) String() string {
	if c < numCacheStatus {
		return cacheStatusNames[c]
	}
	return fmt.Sprintf("CacheStatus(%d)", uint8(c))
}

// RouteObservers are one route's request-duration histograms, one per cache
// status, resolved once per compiled route so that the request path does
// only Observe. The zero value (or nil) observes nothing.
type RouteObservers struct {
	obs [numCacheStatus]prometheus.Observer
}

// RouteObservers resolves the request-duration histograms of a route. route
// is the route's configured name: bounded by the config, never the URL.
func (m *Metrics) RouteObservers(route string) *RouteObservers {
	m.Registry()
	r := &RouteObservers{}
	for i, n := range cacheStatusNames {
		r.obs[i] = m.requestDur.WithLabelValues(route, n)
	}
	return r
}

// Observe records a response's duration in seconds. It allocates nothing.
func (r *RouteObservers) Observe(c CacheStatus, seconds float64) {
	if r == nil || c >= numCacheStatus || r.obs[c] == nil {
		return
	}
	r.obs[c].Observe(seconds)
}

// ForgetRoutes drops the request-duration series of every route not in keep
// (called after a reload), so that renamed routes do not linger forever.
func (m *Metrics) ForgetRoutes(keep []string) {
	m.Registry()
	known := map[string]bool{}
	for _, r := range keep {
		known[r] = true
	}
	ch := make(chan prometheus.Metric, 64)
	go func() { m.requestDur.Collect(ch); close(ch) }()
	drop := map[string]bool{}
	for met := range ch {
		if r := routeLabel(met); r != "" && !known[r] {
			drop[r] = true
		}
	}
	for r := range drop {
		m.requestDur.DeletePartialMatch(prometheus.Labels{"route": r})
	}
}

// OriginObserver is the fetch-duration histogram of a backend.
func (m *Metrics) OriginObserver(backend string) prometheus.Observer {
	m.Registry()
	return m.originDur.WithLabelValues(backend)
}

// OriginErrorCounter is the error counter of a backend.
func (m *Metrics) OriginErrorCounter(backend string) prometheus.Counter {
	m.Registry()
	return m.originErrs.WithLabelValues(backend)
}
