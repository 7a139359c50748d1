package pluginhost

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	"github.com/prometheus/common/expfmt"
)

func TestAdminHandler(t *testing.T) {
	env := newManager(t)
	load(t, env, parseSpec(t, "adm", bins.v1, `greeting = "x"`))
	srv := httptest.NewServer(env.m.AdminHandler("s3cret"))
	defer srv.Close()

	do := func(method, path, token string) (int, []byte) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		return resp.StatusCode, b.Bytes()
	}

	code, body := do("GET", "/plugins", "")
	var sts []Status
	if err := json.Unmarshal(body, &sts); code != 200 || err != nil {
		t.Fatalf("GET /plugins = %d %s (%v)", code, body, err)
	}
	if len(sts) != 1 || sts[0].Name != "adm" || sts[0].Version != "v1" || sts[0].PID <= 0 || len(sts[0].Digest) != 64 || sts[0].State != "running" {
		t.Fatalf("GET /plugins = %+v", sts)
	}

	tests := []struct {
		name, path, token string
		want              int
	}{
		{"no token", "/plugins/adm/reload", "", http.StatusUnauthorized},
		{"wrong token", "/plugins/adm/reload", "s3cre", http.StatusUnauthorized},
		{"unknown plugin", "/plugins/nope/reload", "s3cret", http.StatusNotFound},
		{"reload", "/plugins/adm/reload", "s3cret", http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if code, body := do("POST", tt.path, tt.token); code != tt.want {
				t.Fatalf("POST %s = %d %s, want %d", tt.path, code, body, tt.want)
			}
		})
	}
	if st := statusOf(t, env.m, "adm"); st.Reloads != 1 || st.PID == sts[0].PID {
		t.Errorf("after POST reload: %+v", st)
	}

	// Without a configured token, reloads are disabled.
	noToken := httptest.NewServer(env.m.AdminHandler(""))
	defer noToken.Close()
	resp, err := http.Post(noToken.URL+"/plugins/adm/reload", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("reload without a configured token = %d, want 403", resp.StatusCode)
	}
}

// metricsText is the text exposition of the manager's collector alone.
func metricsText(t *testing.T, m *Manager) string {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(m.Collector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	var b bytes.Buffer
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
			t.Fatal(err)
		}
	}
	return b.String()
}

func TestMetricsFormat(t *testing.T) {
	env := newManager(t)
	load(t, env, parseSpec(t, "met", bins.v1, `greeting = "x"`))
	if _, err := decide(context.Background(), env.m, "met"); err != nil {
		t.Fatalf("Decide: %v", err)
	}
	text := metricsText(t, env.m)
	for _, want := range []string{
		`edgehost_plugin_up{plugin="met"} 1`,
		`edgehost_plugin_restarts_total{plugin="met"} 0`,
		`edgehost_plugin_calls_total{plugin="met"} 1`,
		"# TYPE edgehost_plugin_calls_total counter",
		`edgehost_plugin_call_duration_seconds_count{method="Decide",plugin="met"} 1`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %q:\n%s", want, text)
		}
	}
}
