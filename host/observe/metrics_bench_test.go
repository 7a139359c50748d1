package observe

import "testing"

// BenchmarkRouteObserve is what a request adds to the request path for its
// duration histogram (issue 17): one Observe on a resolved series.
func BenchmarkRouteObserve(b *testing.B) {
	var m Metrics
	r := m.RouteObservers("/")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r.Observe(CacheHit, 0.00006)
		}
	})
}
