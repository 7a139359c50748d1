package server

import (
	"github.com/edgehost/edgehost/host/httpcache"
	"github.com/edgehost/edgehost/host/observe"
)

// noRouteLabel is the route label of requests that no route matched: a
// configured prefix always starts with "/", so it names no route.
const noRouteLabel = "none"

// cacheLabel is the cache label of a finished transaction's duration: synth
// when the host answered by itself (a respond route, no route), else from
// its Cache-Status: a hit (stale when served in grace or for
// stale-if-error), a pass (pass route, method not cacheable) or a miss
// (every other forward, errors of a cache route included).
func cacheLabel(tx *Txn) observe.CacheStatus {
	if tx.route == nil || tx.route.Respond != nil {
		return observe.CacheSynth
	}
	cs := tx.status
	switch {
	case cs.Hit && (cs.TTL < 0 || cs.Detail == "stale" || cs.Detail == "stale-if-error"):
		return observe.CacheStale
	case cs.Hit:
		return observe.CacheHit
	case cs.Fwd == httpcache.FwdBypass || cs.Fwd == httpcache.FwdMethod:
		return observe.CachePass
	case cs.Fwd != "":
		return observe.CacheMiss
	}
	return observe.CacheSynth
}

// routeLabels are the route labels of a compiled config, for ForgetRoutes.
func (rt *runtime) routeLabels() []string {
	out := []string{noRouteLabel}
	for _, r := range rt.routes {
		out = append(out, r.Prefix)
	}
	return out
}
