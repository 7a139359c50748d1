package integration

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/edgehost/edgehost/host/observe"
)

// scrape is one GET /metrics of a running edgehost, parsed as Prometheus
// reads it.
type scrape struct {
	body     []byte
	families map[string]*dto.MetricFamily
}

func (e *edge) scrape() scrape {
	e.t.Helper()
	r := e.admin("GET", "/metrics", "")
	wantStatus(e.t, r, 200)
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		e.t.Errorf("/metrics Content-Type %q, want the text format 0.0.4", ct)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(r.Body))
	if err != nil {
		e.t.Fatalf("/metrics does not parse: %v\n%s", err, r.Body)
	}
	return scrape{r.Body, fams}
}

// count is the sample count of a histogram series (0 when absent).
func (s scrape) count(name string, labels map[string]string) uint64 {
	g := prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		out := make([]*dto.MetricFamily, 0, len(s.families))
		for _, mf := range s.families {
			out = append(out, mf)
		}
		return out, nil
	})
	n, _ := observe.HistogramCount(g, name, labels)
	return n
}

// value is the value of a counter or gauge series; false when absent.
func (s scrape) value(name string, labels map[string]string) (float64, bool) {
	mf := s.families[name]
	if mf == nil {
		return 0, false
	}
series:
	for _, m := range mf.GetMetric() {
		for _, l := range m.GetLabel() {
			if v, ok := labels[l.GetName()]; ok && v != l.GetValue() {
				continue series
			}
		}
		switch {
		case m.GetCounter() != nil:
			return m.GetCounter().GetValue(), true
		case m.GetGauge() != nil:
			return m.GetGauge().GetValue(), true
		}
	}
	return 0, false
}

// TestMetricsScrape scrapes a real edgehost (cache, pass and respond
// routes, a compute tenant run by the real plugin) the way Prometheus
// does: the exposition lints clean with promlint (what `promtool check
// metrics` runs; promtool itself too when installed), every series
// family of docs/metrics.md that the config exercises is there with its
// type, and the histograms move with the requests.
func TestMetricsScrape(t *testing.T) {
	o := startOrigin(t)
	e := newEdge(t, computeConfig(t, "process", o.URL, map[string]string{"hello": ""}, `
route "/pass/" {
  backend = backend.origin
  pass    = true
}
route "/synth" {
  respond {
    status = 200
    body   = "hi\n"
  }
}
route "/hello/" { compute = tenant.hello }
`))
	before := e.scrape()
	wantStatus(t, e.get("/bytes/1k"), 200) // miss
	r := e.get("/bytes/1k")                // hit (the h1 fast path)
	wantCacheStatus(t, r, "edgehost; hit")
	wantStatus(t, e.get("/bytes/2k", "Cache-Control", "no-cache"), 200) // a forward on a cache route: miss
	e.get("/pass/bytes/1k")
	wantStatus(t, e.get("/synth"), 200)
	wantStatus(t, e.get("/hello/x"), 200)
	e.get("/nothing-here", "Host", "unknown.example") // route "/" takes every host: a miss
	after := e.scrape()

	problems, err := promlint.New(bytes.NewReader(after.body)).Lint()
	if err != nil {
		t.Fatalf("promlint: %v", err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	if promtool, err := exec.LookPath("promtool"); err == nil {
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = bytes.NewReader(after.body)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool check metrics: %v\n%s", err, out)
		}
	} else {
		t.Log("promtool not installed: the exposition was checked with promlint only")
	}

	dur := "edgehost_request_duration_seconds"
	for _, c := range []struct {
		route, cache string
		min          uint64
	}{
		{"/", "hit", 1},
		{"/", "miss", 2},
		{"/pass/", "pass", 1},
		{"/synth", "synth", 1},
		{"/hello/", "miss", 1},
	} {
		l := map[string]string{"route": c.route, "cache": c.cache}
		if got := after.count(dur, l) - before.count(dur, l); got < c.min {
			t.Errorf("%s%v moved by %d, want at least %d", dur, l, got, c.min)
		}
	}
	if got := after.count("edgehost_origin_fetch_duration_seconds", map[string]string{"backend": "origin"}); got < 3 {
		t.Errorf("edgehost_origin_fetch_duration_seconds{backend=origin} counted %d fetches, want 3 or more", got)
	}
	if got := after.count("edgehost_plugin_call_duration_seconds", map[string]string{"plugin": "compute", "method": "Handle"}); got < 1 {
		t.Errorf("edgehost_plugin_call_duration_seconds{compute,Handle} counted %d calls, want 1 or more", got)
	}
	if v, ok := after.value("edgehost_tenant_requests_total", map[string]string{"tenant": "hello"}); !ok || v < 1 {
		t.Errorf("edgehost_tenant_requests_total{tenant=hello} = %v (%v), want 1 or more", v, ok)
	}
	if v, _ := after.value("edgehost_requests_total", nil); v < 7 {
		t.Errorf("edgehost_requests_total = %v, want 7 or more", v)
	}

	types := map[string]dto.MetricType{
		"edgehost_requests_total":                  dto.MetricType_COUNTER,
		"edgehost_bytes_out_total":                 dto.MetricType_COUNTER,
		"edgehost_request_duration_seconds":        dto.MetricType_HISTOGRAM,
		"edgehost_origin_fetch_duration_seconds":   dto.MetricType_HISTOGRAM,
		"edgehost_origin_errors_total":             dto.MetricType_COUNTER,
		"edgehost_plugin_call_duration_seconds":    dto.MetricType_HISTOGRAM,
		"edgehost_plugin_up":                       dto.MetricType_GAUGE,
		"edgehost_memory_objects":                  dto.MetricType_GAUGE,
		"edgehost_memory_bytes":                    dto.MetricType_GAUGE,
		"edgehost_memory_evictions_total":          dto.MetricType_COUNTER,
		"edgehost_disk_objects":                    dto.MetricType_GAUGE,
		"edgehost_disk_bytes":                      dto.MetricType_GAUGE,
		"edgehost_disk_evictions_total":            dto.MetricType_COUNTER,
		"edgehost_bans_total":                      dto.MetricType_COUNTER,
		"edgehost_bans_active":                     dto.MetricType_GAUGE,
		"edgehost_self_requests_total":             dto.MetricType_COUNTER,
		"edgehost_loop_rejects_total":              dto.MetricType_COUNTER,
		"edgehost_segment_fetched_bytes_total":     dto.MetricType_COUNTER,
		"edgehost_file_readers":                    dto.MetricType_GAUGE,
		"edgehost_tenant_busy_slots":               dto.MetricType_GAUGE,
		"edgehost_tenant_queue_wait_seconds_total": dto.MetricType_COUNTER,
		"go_goroutines":                            dto.MetricType_GAUGE,
		"process_resident_memory_bytes":            dto.MetricType_GAUGE,
	}
	for name, want := range types {
		mf := after.families[name]
		if mf == nil {
			t.Errorf("/metrics lacks %s", name)
			continue
		}
		if mf.GetType() != want {
			t.Errorf("%s is a %v, want a %v", name, mf.GetType(), want)
		}
	}
	// The old gauge of disk evictions is gone (issue 17).
	if _, ok := after.families["edgehost_disk_evictions"]; ok {
		t.Error("edgehost_disk_evictions (a gauge) is still exposed")
	}
}

// TestMetricsOriginErrorsByBackend: a backend that refuses connections
// counts its failed fetches under its own name.
func TestMetricsOriginErrorsByBackend(t *testing.T) {
	o := startOrigin(t)
	dead := "http://" + freePort(t) // nothing listens there
	e := newEdge(t, baseConfig(o.URL, `
backend "dead" { url = "`+dead+`" }
route "/dead/" {
  backend = backend.dead
  pass    = true
}
`))
	for range 3 {
		wantStatus(t, e.get("/dead/x"), 502)
	}
	s := e.scrape()
	if v, _ := s.value("edgehost_origin_errors_total", map[string]string{"backend": "dead"}); v != 3 {
		t.Errorf("edgehost_origin_errors_total{backend=dead} = %v, want 3", v)
	}
	if v, ok := s.value("edgehost_origin_errors_total", map[string]string{"backend": "origin"}); ok && v != 0 {
		t.Errorf("edgehost_origin_errors_total{backend=origin} = %v, want 0", v)
	}
}
