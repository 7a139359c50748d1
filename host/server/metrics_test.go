package server

import (
	"testing"
	"time"

	"github.com/edgehost/edgehost/host/config"
	"github.com/edgehost/edgehost/host/httpcache"
	"github.com/edgehost/edgehost/host/observe"
)

func TestCacheLabel(t *testing.T) {
	cacheRoute := &route{Route: &config.Route{Prefix: "/", Backend: "origin"}}
	respondRoute := &route{Route: &config.Route{Prefix: "/hi", Respond: &config.Respond{}}}
	tests := []struct {
		name  string
		route *route
		cs    httpcache.CacheStatus
		want  observe.CacheStatus
	}{
		{"fresh hit", cacheRoute, httpcache.CacheStatus{Hit: true, TTL: time.Minute}, observe.CacheHit},
		{"collapsed hit", cacheRoute, httpcache.CacheStatus{Hit: true, TTL: time.Minute, Collapsed: true}, observe.CacheHit},
		{"grace", cacheRoute, httpcache.CacheStatus{Hit: true, TTL: -time.Second, Detail: "stale"}, observe.CacheStale},
		{"stale-if-error", cacheRoute, httpcache.CacheStatus{Hit: true, TTL: -time.Second, Detail: "stale-if-error"}, observe.CacheStale},
		{"uri-miss", cacheRoute, httpcache.CacheStatus{Fwd: httpcache.FwdURIMiss, Stored: true}, observe.CacheMiss},
		{"revalidated", cacheRoute, httpcache.CacheStatus{Fwd: httpcache.FwdStale, FwdStatus: 304}, observe.CacheMiss},
		{"no-cache request", cacheRoute, httpcache.CacheStatus{Fwd: httpcache.FwdRequest}, observe.CacheMiss},
		{"pass route", cacheRoute, httpcache.CacheStatus{Fwd: httpcache.FwdBypass}, observe.CachePass},
		{"unsafe method", cacheRoute, httpcache.CacheStatus{Fwd: httpcache.FwdMethod}, observe.CachePass},
		{"error of a cache route", cacheRoute, httpcache.CacheStatus{Fwd: "miss"}, observe.CacheMiss},
		{"respond route", respondRoute, httpcache.CacheStatus{}, observe.CacheSynth},
		{"no route", nil, httpcache.CacheStatus{Fwd: "miss"}, observe.CacheSynth},
		{"nothing forwarded", cacheRoute, httpcache.CacheStatus{}, observe.CacheSynth},
	}
	for _, tt := range tests {
		tx := &Txn{route: tt.route, status: tt.cs}
		if got := cacheLabel(tx); got != tt.want {
			t.Errorf("%s: cacheLabel = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// A reload drops the request-duration series of the routes that are gone;
// the routes that stay keep theirs.
func TestReloadForgetsRoutes(t *testing.T) {
	parse := func(routes string) *config.Config {
		src := `
listen {
  http = "127.0.0.1:0"
  self = "` + t.TempDir() + `/self.sock"
}
backend "origin" { url = "http://127.0.0.1:9" }
` + routes
		cfg, diags := config.Parse("reload.hcl", []byte(src))
		if diags.HasErrors() {
			t.Fatal(diags)
		}
		return cfg
	}
	m := &observe.Metrics{}
	s, err := New(parse(`
route "/a/" { backend = backend.origin }
route "/b/" { backend = backend.origin }
`), Options{Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(t.Context())
	series := func(route string) bool {
		_, ok := observe.HistogramCount(m.Registry(), "edgehost_request_duration_seconds", map[string]string{"route": route, "cache": "hit"})
		return ok
	}
	if !series("/a/") || !series("/b/") || !series(noRouteLabel) {
		t.Fatal("the routes of the first config have no series")
	}
	if err := s.Reload(parse(`route "/a/" { backend = backend.origin }`)); err != nil {
		t.Fatal(err)
	}
	if !series("/a/") || series("/b/") || !series(noRouteLabel) {
		t.Errorf("after the reload: /a/ %v, /b/ %v, none %v; want true, false, true", series("/a/"), series("/b/"), series(noRouteLabel))
	}
}
