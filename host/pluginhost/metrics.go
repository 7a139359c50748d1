package pluginhost

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The plugins' series. Their per-plugin counters live in managed and are read
// at scrape time; the per-method latency and errors are client_golang
// vectors whose children each plugin resolves once per method (meter).
var (
	pluginUpDesc       = prometheus.NewDesc("edgehost_plugin_up", "Whether the plugin has a running instance.", []string{"plugin"}, nil)
	pluginRestartsDesc = prometheus.NewDesc("edgehost_plugin_restarts_total", "Relaunches of the plugin after a crash or failed health checks.", []string{"plugin"}, nil)
	pluginReloadsDesc  = prometheus.NewDesc("edgehost_plugin_reloads_total", "Swaps of the plugin to a new instance (reloads).", []string{"plugin"}, nil)
	pluginCallsDesc    = prometheus.NewDesc("edgehost_plugin_calls_total", "Calls made to the plugin.", []string{"plugin"}, nil)
	pluginErrorsDesc   = prometheus.NewDesc("edgehost_plugin_call_errors_total", "Calls to the plugin that failed.", []string{"plugin"}, nil)
)

// callBuckets are the upper bounds (seconds) of the plugin call histogram:
// a slicer verdict takes tens of microseconds, a compute tenant up to its
// timeout.
var callBuckets = []float64{0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// meters are the manager's per-method series.
type meters struct {
	dur  *prometheus.HistogramVec
	errs *prometheus.CounterVec
}

func newMeters() meters {
	return meters{
		dur: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "edgehost_plugin_call_duration_seconds",
			Help:    "Duration of calls to plugins by plugin and method (for streams: up to the response head).",
			Buckets: callBuckets,
		}, []string{"plugin", "method"}),
		errs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgehost_plugin_method_errors_total",
			Help: "Calls to plugins that failed, by plugin and method (for streams: the response body too).",
		}, []string{"plugin", "method"}),
	}
}

// meter is one plugin method's histogram and error counter.
type meter struct {
	dur  prometheus.Observer
	errs prometheus.Counter
}

// observe records a call that began at start.
func (mt *meter) observe(start time.Time, failed bool) {
	mt.dur.Observe(time.Since(start).Seconds())
	if failed {
		mt.errs.Inc()
	}
}

// meter returns the series of one method of the plugin, resolved once.
func (p *managed) meter(method string) *meter {
	if v, ok := p.meters.Load(method); ok {
		return v.(*meter)
	}
	mt := &meter{dur: p.m.meters.dur.WithLabelValues(p.name, method), errs: p.m.meters.errs.WithLabelValues(p.name, method)}
	v, _ := p.meters.LoadOrStore(method, mt)
	return v.(*meter)
}

// Collector returns the plugins' series for the host's registry:
// edgehost_plugin_up, _restarts_total, _reloads_total, _calls_total and
// _call_errors_total labelled plugin="NAME", and the per-method
// edgehost_plugin_call_duration_seconds and _method_errors_total.
func (m *Manager) Collector() prometheus.Collector { return collector{m} }

type collector struct{ m *Manager }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{pluginUpDesc, pluginRestartsDesc, pluginReloadsDesc, pluginCallsDesc, pluginErrorsDesc} {
		ch <- d
	}
	c.m.meters.dur.Describe(ch)
	c.m.meters.errs.Describe(ch)
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	for _, st := range c.m.Status() {
		up := 0.0
		if st.State == StateRunning {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(pluginUpDesc, prometheus.GaugeValue, up, st.Name)
		ch <- prometheus.MustNewConstMetric(pluginRestartsDesc, prometheus.CounterValue, float64(st.Restarts), st.Name)
		ch <- prometheus.MustNewConstMetric(pluginReloadsDesc, prometheus.CounterValue, float64(st.Reloads), st.Name)
		ch <- prometheus.MustNewConstMetric(pluginCallsDesc, prometheus.CounterValue, float64(st.Calls), st.Name)
		ch <- prometheus.MustNewConstMetric(pluginErrorsDesc, prometheus.CounterValue, float64(st.Errors), st.Name)
	}
	c.m.meters.dur.Collect(ch)
	c.m.meters.errs.Collect(ch)
}

var _ prometheus.Collector = collector{}
