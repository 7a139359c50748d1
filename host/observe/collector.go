package observe

import (
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// counterCollector exposes the atomic fields of Metrics at scrape time as
// const metrics: the request path keeps its plain atomic adds, the scrape
// pays for the formatting.
type counterCollector struct{ m *Metrics }

// atomicSeries is one series read from an atomic field.
type atomicSeries struct {
	desc  *prometheus.Desc
	typ   prometheus.ValueType
	value func(*Metrics) int64
}

func counter(name, help string, v func(*Metrics) int64) atomicSeries {
	return atomicSeries{prometheus.NewDesc(name, help, nil, nil), prometheus.CounterValue, v}
}

func gauge(name, help string, v func(*Metrics) int64) atomicSeries {
	return atomicSeries{prometheus.NewDesc(name, help, nil, nil), prometheus.GaugeValue, v}
}

// atomicTable lists every series read from a field of Metrics; keep it in
// step with docs/metrics.md.
var atomicTable = []atomicSeries{
	counter("edgehost_requests_total", "Client requests received.", func(m *Metrics) int64 { return m.Requests.Load() }),
	counter("edgehost_self_requests_total", "Requests received on the self-request socket.", func(m *Metrics) int64 { return m.SelfRequests.Load() }),
	counter("edgehost_cache_hits_total", "Requests served from cache.", func(m *Metrics) int64 { return m.Hits.Load() }),
	counter("edgehost_cache_grace_hits_total", "Stale objects served in grace while revalidating.", func(m *Metrics) int64 { return m.GraceHits.Load() }),
	counter("edgehost_cache_misses_total", "Cache misses.", func(m *Metrics) int64 { return m.Misses.Load() }),
	counter("edgehost_cache_passes_total", "Requests passed to a backend uncached.", func(m *Metrics) int64 { return m.Passes.Load() }),
	counter("edgehost_synth_total", "Synthetic responses.", func(m *Metrics) int64 { return m.Synth.Load() }),
	counter("edgehost_coalesced_waits_total", "Requests that waited for another request's fetch.", func(m *Metrics) int64 { return m.CoalescedWaits.Load() }),
	counter("edgehost_revalidations_total", "Conditional requests sent to origins.", func(m *Metrics) int64 { return m.Revalidations.Load() }),
	counter("edgehost_revalidations_not_modified_total", "Revalidations answered 304.", func(m *Metrics) int64 { return m.Revalidated304.Load() }),
	counter("edgehost_origin_fetches_total", "Requests sent to origins (backends and static roots).", func(m *Metrics) int64 { return m.OriginFetches.Load() }),
	counter("edgehost_bytes_out_total", "Body bytes sent to clients.", func(m *Metrics) int64 { return m.BytesOut.Load() }),
	counter("edgehost_bytes_in_total", "Body bytes received from origins.", func(m *Metrics) int64 { return m.BytesIn.Load() }),
	counter("edgehost_objects_stored_total", "Objects stored.", func(m *Metrics) int64 { return m.Stored.Load() }),
	counter("edgehost_objects_not_stored_total", "Responses not storable.", func(m *Metrics) int64 { return m.NotStored.Load() }),
	counter("edgehost_memory_evictions_total", "Objects evicted from the memory tier.", func(m *Metrics) int64 { return m.MemEvictions.Load() }),
	counter("edgehost_purges_total", "Objects purged.", func(m *Metrics) int64 { return m.Purges.Load() }),
	counter("edgehost_bans_total", "Bans added.", func(m *Metrics) int64 { return m.Bans.Load() }),
	counter("edgehost_ban_kills_total", "Objects removed by bans.", func(m *Metrics) int64 { return m.BanKills.Load() }),
	counter("edgehost_corrupt_objects_total", "Objects dropped for a failed checksum.", func(m *Metrics) int64 { return m.Corrupt.Load() }),
	counter("edgehost_loop_rejects_total", "Requests answered 508 (self-request depth or concurrency).", func(m *Metrics) int64 { return m.LoopRejects.Load() }),
	counter("edgehost_bad_requests_total", "Malformed client requests.", func(m *Metrics) int64 { return m.BadRequests.Load() }),
	counter("edgehost_accept_errors_total", "Accepts on the public listener that failed for want of file descriptors or kernel memory (retried).", func(m *Metrics) int64 { return m.AcceptErrors.Load() }),
	counter("edgehost_connections_shed_total", "Idle client connections closed to make room (max_connections, descriptor exhaustion).", func(m *Metrics) int64 { return m.ConnsShed.Load() }),
	counter("edgehost_self_refused_total", "Connections to the self-request socket refused: the peer is not edgehost's user or in listen.self_group.", func(m *Metrics) int64 { return m.SelfRefused.Load() }),
	counter("edgehost_fills_refused_total", "Storable responses streamed through uncached because the bodies being stored already filled storage.memory.", func(m *Metrics) int64 { return m.FillsRefused.Load() }),
	counter("edgehost_segment_hits_total", "Slicer segments served from cache.", func(m *Metrics) int64 { return m.SegmentHits.Load() }),
	counter("edgehost_segment_misses_total", "Slicer segments fetched from the origin.", func(m *Metrics) int64 { return m.SegmentMisses.Load() }),
	counter("edgehost_segment_fetched_bytes_total", "Body bytes of slicer segments fetched from the origin (the checked length of each segment answer accepted).", func(m *Metrics) int64 { return m.SegmentBytes.Load() }),
	gauge("edgehost_memory_objects", "Objects in the memory tier.", func(m *Metrics) int64 { return m.MemObjects.Load() }),
	gauge("edgehost_memory_bytes", "Bytes in the memory tier.", func(m *Metrics) int64 { return m.MemBytes.Load() }),
	gauge("edgehost_connections_active", "Open client connections.", func(m *Metrics) int64 { return m.ActiveConns.Load() }),
}

var responsesDesc = prometheus.NewDesc("edgehost_responses_total", "Responses by status class.", []string{"class"}, nil)

var classNames = [6]string{"", "1xx", "2xx", "3xx", "4xx", "5xx"}

func (c counterCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, s := range atomicTable {
		ch <- s.desc
	}
	ch <- responsesDesc
}

func (c counterCollector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range atomicTable {
		ch <- prometheus.MustNewConstMetric(s.desc, s.typ, float64(s.value(c.m)))
	}
	for i := 1; i <= 5; i++ {
		ch <- prometheus.MustNewConstMetric(responsesDesc, prometheus.CounterValue, float64(c.m.StatusByClass[i].Load()), classNames[i])
	}
}

// routeLabel is the route label of a collected request-duration series.
func routeLabel(m prometheus.Metric) string {
	var d dto.Metric
	if m.Write(&d) != nil {
		return ""
	}
	for _, l := range d.GetLabel() {
		if l.GetName() == "route" {
			return l.GetValue()
		}
	}
	return ""
}

var _ prometheus.Collector = counterCollector{}

// HistogramCount is the sample count of the histogram series name with the
// given labels (others may be present) in what g gathers; false when there
// is none. For readers of the registry (tests, the status page).
func HistogramCount(g prometheus.Gatherer, name string, labels map[string]string) (uint64, bool) {
	mfs, err := g.Gather()
	if err != nil {
		return 0, false
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, s := range mf.GetMetric() {
			n := 0
			for _, l := range s.GetLabel() {
				if v, ok := labels[l.GetName()]; ok {
					if v != l.GetValue() {
						continue series
					}
					n++
				}
			}
			if n == len(labels) && s.GetHistogram() != nil {
				return s.GetHistogram().GetSampleCount(), true
			}
		}
	}
	return 0, false
}
