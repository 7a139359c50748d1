package httpcache_test

import (
	"fmt"
	"net/http"
	"time"

	"github.com/edgehost/edgehost/host/httpcache"
)

func ExamplePolicy() {
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	p := httpcache.Policy{HeuristicMax: 24 * time.Hour, Grace: time.Minute, Targeted: []string{httpcache.CDNCacheControl}}
	for _, h := range []http.Header{
		{"Cache-Control": {"max-age=60, stale-while-revalidate=300"}},
		{"Cache-Control": {"max-age=60"}, "Cdn-Cache-Control": {"max-age=3600"}},
		{"Last-Modified": {"Sun, 22 Nov 2026 00:00:00 GMT"}, "Date": {"Sun, 22 Nov 2026 10:00:00 GMT"}},
		{"Etag": {`"v1"`}},
		{"Cache-Control": {`max-age=60, private="X-Secret"`}, "X-Secret": {"token"}},
	} {
		cc := httpcache.ResponseDirectives(h, p.Targeted)
		if ok, reason := p.Storable(http.MethodGet, 200, http.Header{}, h, cc); !ok {
			fmt.Println("not storable:", reason)
			continue
		}
		lt := p.Lifetime(200, h, cc, now)
		fmt.Println(lt.TTL, lt.Grace, len(httpcache.StoredHeader(h, cc, p.Targeted)))
	}
	// Output:
	// 1m0s 5m0s 1
	// 1h0m0s 1m0s 1
	// 1h0m0s 1m0s 2
	// 0s 0s 1
	// 1m0s 1m0s 1
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
