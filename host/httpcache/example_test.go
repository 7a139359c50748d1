package httpcache_test

import (
	"fmt"
	"net/http"
	"time"

	"github.com/edgehost/edgehost/host/httpcache"
)

func ExampleComputeLifetime() {
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	h := http.Header{"Cache-Control": {"max-age=60, stale-while-revalidate=30"}, "Age": {"10"}}
	if ok, reason := httpcache.Storable(http.MethodGet, 200, http.Header{}, h, false); !ok {
		fmt.Println("not storable:", reason)
		return
	}
	cc := httpcache.ParseCacheControl(h["Cache-Control"])
	lt := httpcache.ComputeLifetime(h, cc, 2*time.Minute, 0, now)
	initial := httpcache.InitialAge(h, now, now)
	for _, later := range []time.Duration{0, 55 * time.Second, 85 * time.Second} {
		age := httpcache.CurrentAge(initial, now, now.Add(later))
		fmt.Println(age, lt.Freshness(age))
	}
	// Output:
	// 10s fresh
	// 1m5s grace
	// 1m35s stale
}

func ExampleCacheStatus() {
	fmt.Println(httpcache.CacheStatus{Hit: true, TTL: 93 * time.Second})
	fmt.Println(httpcache.CacheStatus{Fwd: httpcache.FwdURIMiss, FwdStatus: 200, Stored: true, TTL: 2 * time.Minute})
	// Output:
	// edgehost; hit; ttl=93
	// edgehost; fwd=uri-miss; fwd-status=200; stored; ttl=120
}

func ExampleParseRange() {
	rs, err := httpcache.ParseRange("bytes=0-99, 200-, -50", 1000)
	fmt.Println(rs, err)
	_, err = httpcache.ParseRange("bytes=5000-", 1000)
	fmt.Println(err)
	// Output:
	// [{0 99} {200 999}] <nil>
	// httpcache: range not satisfiable
}
