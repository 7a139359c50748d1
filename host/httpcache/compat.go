package httpcache

import (
	"net/http"
	"time"
)

// Storable is Policy{AllowCookies: allowCookies}.Storable with the
// directives of Cache-Control alone.
//
// Deprecated: for the state machine until it holds a route's Policy
// (issue 14); use Policy.Storable.
func Storable(method string, status int, reqHeader, respHeader http.Header, allowCookies bool) (bool, string) {
	return Policy{AllowCookies: allowCookies}.Storable(method, status, reqHeader, respHeader, ParseCacheControl(respHeader["Cache-Control"]))
}

// ComputeLifetime is Policy.Lifetime for a response that Storable
// accepted, with the embedded heuristic cap.
//
// Deprecated: for the state machine until it holds a route's Policy
// (issue 14); use Policy.Lifetime.
func ComputeLifetime(respHeader http.Header, cc CacheControl, defaultTTL, configGrace time.Duration, responseTime time.Time) Lifetime {
	p := Policy{DefaultTTL: defaultTTL, HeuristicMax: DefaultHeuristicMax, Grace: configGrace}
	return p.Lifetime(http.StatusOK, respHeader, cc, responseTime)
}
