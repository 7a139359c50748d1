// Package observe holds edgehost's counters (exposed in the Prometheus text
// format on the admin listener) and its transaction log (every request and
// subrequest with id, parent, timings, cache decision and status, followed
// live by `edgehost log`).
package observe

import (
	"fmt"
	"io"
	"sort"
	"sync"
	"sync/atomic"
)

// Metrics are the host's counters. Fields are updated with atomic adds on the
// request path; nothing here takes a lock per request.
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
	OriginErrors   atomic.Int64
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
	mu             sync.Mutex
	gauges         map[string]func() float64
	extra          []func(io.Writer)
}

// Gauge registers a value read at scrape time (e.g. disk tier size).
func (m *Metrics) Gauge(name string, f func() float64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.gauges == nil {
		m.gauges = map[string]func() float64{}
	}
	m.gauges[name] = f
}

// Extra registers a writer of more metric lines (e.g. the plugin manager's).
func (m *Metrics) Extra(f func(io.Writer)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.extra = append(m.extra, f)
}

// Status counts a response status.
func (m *Metrics) Status(code int) {
	if c := code / 100; c >= 1 && c <= 5 {
		m.StatusByClass[c].Add(1)
	}
}

// WritePrometheus writes every metric in the Prometheus text format 0.0.4.
func (m *Metrics) WritePrometheus(w io.Writer) {
	counter := func(name, help string, v int64) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n%s %d\n", name, help, name, name, v)
	}
	gauge := func(name, help string, v float64) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s gauge\n%s %g\n", name, help, name, name, v)
	}
	counter("edgehost_requests_total", "Client requests received.", m.Requests.Load())
	counter("edgehost_self_requests_total", "Requests received on the self-request socket.", m.SelfRequests.Load())
	counter("edgehost_cache_hits_total", "Requests served from cache.", m.Hits.Load())
	counter("edgehost_cache_grace_hits_total", "Stale objects served in grace while revalidating.", m.GraceHits.Load())
	counter("edgehost_cache_misses_total", "Cache misses.", m.Misses.Load())
	counter("edgehost_cache_passes_total", "Requests passed to a backend uncached.", m.Passes.Load())
	counter("edgehost_synth_total", "Synthetic responses.", m.Synth.Load())
	counter("edgehost_coalesced_waits_total", "Requests that waited for another request's fetch.", m.CoalescedWaits.Load())
	counter("edgehost_revalidations_total", "Conditional requests sent to origins.", m.Revalidations.Load())
	counter("edgehost_revalidations_not_modified_total", "Revalidations answered 304.", m.Revalidated304.Load())
	counter("edgehost_origin_fetches_total", "Requests sent to origins.", m.OriginFetches.Load())
	counter("edgehost_origin_errors_total", "Origin fetches that failed.", m.OriginErrors.Load())
	counter("edgehost_bytes_out_total", "Body bytes sent to clients.", m.BytesOut.Load())
	counter("edgehost_bytes_in_total", "Body bytes received from origins.", m.BytesIn.Load())
	counter("edgehost_objects_stored_total", "Objects stored.", m.Stored.Load())
	counter("edgehost_objects_not_stored_total", "Responses not storable.", m.NotStored.Load())
	counter("edgehost_memory_evictions_total", "Objects evicted from the memory tier.", m.MemEvictions.Load())
	counter("edgehost_purges_total", "Objects purged.", m.Purges.Load())
	counter("edgehost_bans_total", "Bans added.", m.Bans.Load())
	counter("edgehost_ban_kills_total", "Objects removed by bans.", m.BanKills.Load())
	counter("edgehost_corrupt_objects_total", "Objects dropped for a failed checksum.", m.Corrupt.Load())
	counter("edgehost_loop_rejects_total", "Requests answered 508 (self-request depth or concurrency).", m.LoopRejects.Load())
	counter("edgehost_bad_requests_total", "Malformed client requests.", m.BadRequests.Load())
	counter("edgehost_accept_errors_total", "Accepts on the public listener that failed for want of file descriptors or kernel memory (retried).", m.AcceptErrors.Load())
	counter("edgehost_connections_shed_total", "Idle client connections closed to make room (max_connections, descriptor exhaustion).", m.ConnsShed.Load())
	counter("edgehost_self_refused_total", "Connections to the self-request socket refused: the peer is not edgehost's user or in listen.self_group.", m.SelfRefused.Load())
	counter("edgehost_fills_refused_total", "Storable responses streamed through uncached because the bodies being stored already filled storage.memory.", m.FillsRefused.Load())
	counter("edgehost_segment_hits_total", "Slicer segments served from cache.", m.SegmentHits.Load())
	counter("edgehost_segment_misses_total", "Slicer segments fetched.", m.SegmentMisses.Load())
	fmt.Fprintf(w, "# HELP edgehost_responses_total Responses by status class.\n# TYPE edgehost_responses_total counter\n")
	for c := 1; c <= 5; c++ {
		fmt.Fprintf(w, "edgehost_responses_total{class=\"%dxx\"} %d\n", c, m.StatusByClass[c].Load())
	}
	gauge("edgehost_memory_objects", "Objects in the memory tier.", float64(m.MemObjects.Load()))
	gauge("edgehost_memory_bytes", "Bytes in the memory tier.", float64(m.MemBytes.Load()))
	gauge("edgehost_connections_active", "Open client connections.", float64(m.ActiveConns.Load()))
	m.mu.Lock()
	names := make([]string, 0, len(m.gauges))
	for n := range m.gauges {
		names = append(names, n)
	}
	sort.Strings(names)
	gs := m.gauges
	extra := append([]func(io.Writer){}, m.extra...)
	m.mu.Unlock()
	for _, n := range names {
		fmt.Fprintf(w, "# TYPE %s gauge\n%s %g\n", n, n, gs[n]())
	}
	for _, f := range extra {
		f(w)
	}
}
