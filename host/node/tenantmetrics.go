package node

import (
	"context"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	pluginv1 "github.com/edgehost/edgehost/proto/edgehost/plugin/v1"
)

// Compute tenants' series (issue 17): the host does not see a tenant's
// slots and queue, the compute plugin does; they are read from its Status
// RPC at scrape time, as GET /tenants reads them. A plugin that does not
// answer within tenantStatusTimeout leaves its tenants out of that scrape
// (edgehost_tenant_status_errors_total counts it).
const tenantStatusTimeout = 2 * time.Second

type tenantSeries struct {
	desc  *prometheus.Desc
	typ   prometheus.ValueType
	value func(*pluginv1.TenantStatus) float64
}

func tenantSeriesOf(name, help string, typ prometheus.ValueType, v func(*pluginv1.TenantStatus) float64) tenantSeries {
	return tenantSeries{prometheus.NewDesc(name, help, []string{"tenant"}, nil), typ, v}
}

var tenantTable = []tenantSeries{
	tenantSeriesOf("edgehost_tenant_requests_total", "Requests a compute tenant served.", prometheus.CounterValue,
		func(s *pluginv1.TenantStatus) float64 { return float64(s.GetRequests()) }),
	tenantSeriesOf("edgehost_tenant_faults_total", "Instances of a tenant's program replaced after a fault.", prometheus.CounterValue,
		func(s *pluginv1.TenantStatus) float64 { return float64(s.GetFaults()) }),
	tenantSeriesOf("edgehost_tenant_timeouts_total", "Tenant requests that ran past max_request_time (504).", prometheus.CounterValue,
		func(s *pluginv1.TenantStatus) float64 { return float64(s.GetTimeouts()) }),
	tenantSeriesOf("edgehost_tenant_rejected_total", "Tenant requests refused: queue full or no free slot within max_queue_time (503).", prometheus.CounterValue,
		func(s *pluginv1.TenantStatus) float64 { return float64(s.GetRejected()) }),
	tenantSeriesOf("edgehost_tenant_queue_wait_seconds_total", "Time tenant requests waited for a free slot, summed.", prometheus.CounterValue,
		func(s *pluginv1.TenantStatus) float64 { return float64(s.GetQueueWaitUs()) / 1e6 }),
	tenantSeriesOf("edgehost_tenant_slots", "A tenant's slots (concurrency).", prometheus.GaugeValue,
		func(s *pluginv1.TenantStatus) float64 { return float64(s.GetConcurrency()) }),
	tenantSeriesOf("edgehost_tenant_busy_slots", "A tenant's slots serving a request now.", prometheus.GaugeValue,
		func(s *pluginv1.TenantStatus) float64 { return float64(s.GetBusy()) }),
	tenantSeriesOf("edgehost_tenant_queued_requests", "Tenant requests waiting for a free slot now.", prometheus.GaugeValue,
		func(s *pluginv1.TenantStatus) float64 { return float64(s.GetQueued()) }),
}

// tenantCollector reads the tenants of the config being served.
type tenantCollector struct {
	n      *node
	errors *prometheus.CounterVec
}

func newTenantCollector(n *node) *tenantCollector {
	return &tenantCollector{n: n, errors: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "edgehost_tenant_status_errors_total",
		Help: "Scrapes in which a compute plugin did not report its tenants, by plugin.",
	}, []string{"plugin"})}
}

func (c *tenantCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, s := range tenantTable {
		ch <- s.desc
	}
	c.errors.Describe(ch)
}

func (c *tenantCollector) Collect(ch chan<- prometheus.Metric) {
	defer c.errors.Collect(ch)
	srv := c.n.srv
	if srv == nil {
		return
	}
	cfg := srv.Config()
	plugins := map[string]bool{}
	for _, t := range cfg.Tenants {
		plugins[t.Plugin] = true
	}
	names := make([]string, 0, len(plugins))
	for p := range plugins {
		names = append(names, p)
	}
	sort.Strings(names)
	for _, p := range names {
		ctx, cancel := context.WithTimeout(context.Background(), tenantStatusTimeout)
		sts, err := c.n.plugins.ComputeStatus(ctx, p)
		cancel()
		if err != nil {
			c.errors.WithLabelValues(p).Inc()
			continue
		}
		for _, st := range sts {
			// A tenant of the plugin that the config no longer names,
			// or one waiting for its first program, has no series.
			if t := cfg.Tenants[st.GetName()]; t == nil || t.Plugin != p || st.GetBackend() == "" {
				continue
			}
			for _, s := range tenantTable {
				ch <- prometheus.MustNewConstMetric(s.desc, s.typ, s.value(st), st.GetName())
			}
		}
	}
}

var _ prometheus.Collector = (*tenantCollector)(nil)
