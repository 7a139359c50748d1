package httpcache

import (
	"net/http"
	"time"
)

// Reasons Storable gives for a response a shared cache must not store.
const (
	ReasonMethod         = "method"          // not GET or HEAD
	ReasonStatus         = "status"          // not final, partial, 304, or not cacheable without explicit freshness
	ReasonMustUnderstand = "must-understand" // must-understand with a status code the cache does not know
	ReasonNoStore        = "no-store"        // no-store in the request or the response
	ReasonPrivate        = "private"         // unqualified private
	ReasonAuthorization  = "authorization"   // request had Authorization, response did not allow sharing it
	ReasonSetCookie      = "set-cookie"      // response sets a cookie and the config does not allow sharing it
	ReasonVary           = "vary"            // Vary: * never matches a later request
)

// Storable reports whether a shared cache may store the response to a
// request (RFC 9111 §3), and if not, a short reason (one of the Reason
// constants). It does not allocate.
//
// method is the method of the request sent to the origin: a cache that
// turns a client's HEAD into a GET towards the origin (as Varnish does)
// passes GET. A response to a real HEAD has no content and must not become
// the stored GET representation; it can only freshen one (RFC 9111 §4.3.5,
// UpdateStored).
//
// Rules, in the order checked:
//   - only GET and HEAD are cached (edgehost's choice of "understood"
//     methods, §3 first bullet);
//   - the status is final and not 206 (edgehost stores whole
//     representations only) or 304 (a 304 refreshes a stored response,
//     §4.3.4, it is not stored itself);
//   - must-understand requires a status code the cache knows (§5.2.2.3);
//     when it does, it overrides no-store;
//   - no no-store in the request (§5.2.1.5) or the response (§5.2.2.5);
//   - no unqualified private (§5.2.2.7);
//   - a request with Authorization only when the response has public,
//     must-revalidate or s-maxage (§3.5);
//   - no Set-Cookie unless allowCookies (edgehost's config switch: a cookie
//     handed to every client is a session leak);
//   - no Vary: * (§4.1: it never matches, storing it only wastes space);
//   - explicit freshness (Expires, max-age, s-maxage), public, or a status
//     that is heuristically cacheable (RFC 9110 §15.1).
func Storable(method string, status int, reqHeader, respHeader http.Header, allowCookies bool) (ok bool, reason string) {
	if method != http.MethodGet && method != http.MethodHead {
		return false, ReasonMethod
	}
	if status < 200 || status > 599 || status == http.StatusPartialContent || status == http.StatusNotModified {
		return false, ReasonStatus
	}
	cc := ParseCacheControl(respHeader["Cache-Control"])
	known := http.StatusText(status) != ""
	if cc.MustUnderstand && !known {
		return false, ReasonMustUnderstand
	}
	if cc.NoStore && !(cc.MustUnderstand && known) {
		return false, ReasonNoStore
	}
	if rcc, ok := reqHeader["Cache-Control"]; ok && ParseCacheControl(rcc).NoStore {
		return false, ReasonNoStore
	}
	if cc.Private {
		return false, ReasonPrivate
	}
	if _, auth := reqHeader["Authorization"]; auth && !cc.Public && !cc.MustRevalidate && cc.SMaxAge == Absent {
		return false, ReasonAuthorization
	}
	if _, cookie := respHeader["Set-Cookie"]; cookie && !allowCookies {
		return false, ReasonSetCookie
	}
	if varyStar(respHeader["Vary"]) {
		return false, ReasonVary
	}
	_, expires := respHeader["Expires"]
	if expires || cc.MaxAge != Absent || cc.SMaxAge != Absent || cc.Public || HeuristicallyCacheable(status) {
		return true, ""
	}
	return false, ReasonStatus
}

// HeuristicallyCacheable reports whether a status code's responses may be
// cached without explicit freshness (RFC 9110 §15.1).
func HeuristicallyCacheable(status int) bool {
	switch status {
	case 200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501:
		return true
	}
	return false
}

// Lifetime is how long a stored response may be used.
//
// TTL is the freshness lifetime (RFC 9111 §4.2.1). Grace is how long after
// TTL the response may still be served while one background fetch
// revalidates it (Varnish's grace, RFC 5861 stale-while-revalidate).
// StaleIfError is how long after TTL it may be served when the origin fails
// (RFC 5861 §4). Explicit says the origin gave the lifetime (s-maxage,
// max-age, Expires) rather than edgehost's default. MustRevalidate says a
// stale response must never be served (Grace and StaleIfError are then 0).
type Lifetime struct {
	TTL, Grace, StaleIfError time.Duration
	Explicit                 bool
	MustRevalidate           bool
}

// ComputeLifetime derives the lifetime of a response that was received at
// responseTime.
//
// TTL: s-maxage (a shared cache prefers it, §5.2.2.10), then max-age
// (§5.2.2.1), then Expires minus Date (§4.2.1; an invalid Expires such as
// "0" means already expired, §5.3; a missing Date is taken as responseTime),
// else defaultTTL: edgehost's heuristic (§4.2.2) is the route's default_ttl.
// An unqualified no-cache makes TTL 0: the response must be validated
// before each use (§5.2.2.4).
//
// Stale windows: must-revalidate, proxy-revalidate and unqualified no-cache
// forbid serving stale at all (§4.2.4): Grace and StaleIfError are 0 and
// MustRevalidate is set. s-maxage implies proxy-revalidate for a shared
// cache (§5.2.2.10) but an origin that sends both s-maxage and
// stale-while-revalidate / stale-if-error plainly asks for them, so with
// s-maxage edgehost drops only its own configGrace and honours those
// explicit directives. Otherwise Grace = max(configGrace,
// stale-while-revalidate) and StaleIfError comes from its directive.
func ComputeLifetime(respHeader http.Header, cc CacheControl, defaultTTL, configGrace time.Duration, responseTime time.Time) Lifetime {
	var l Lifetime
	switch {
	case cc.SMaxAge != Absent:
		l.TTL, l.Explicit = cc.SMaxAge, true
	case cc.MaxAge != Absent:
		l.TTL, l.Explicit = cc.MaxAge, true
	default:
		if ev, ok := respHeader["Expires"]; ok {
			l.Explicit = true
			if len(ev) > 0 {
				if exp, ok := parseHTTPDate(ev[0]); ok {
					date := responseTime
					if dv := respHeader["Date"]; len(dv) > 0 {
						if d, ok := parseHTTPDate(dv[0]); ok {
							date = d
						}
					}
					l.TTL = max(exp.Sub(date), 0)
				}
			}
		} else {
			l.TTL = max(defaultTTL, 0)
		}
	}
	if cc.NoCache {
		l.TTL = 0
	}
	if cc.MustRevalidate || cc.ProxyRevalidate || cc.NoCache {
		l.MustRevalidate = true
		return l
	}
	if cc.SMaxAge == Absent {
		l.Grace = max(configGrace, 0)
	}
	if cc.StaleWhileRevalidate != Absent {
		l.Grace = max(l.Grace, cc.StaleWhileRevalidate)
	}
	if cc.StaleIfError != Absent {
		l.StaleIfError = cc.StaleIfError
	}
	return l
}

// Freshness is the state of a stored response at some age.
type Freshness int

const (
	// Fresh: serve it.
	Fresh Freshness = iota
	// Grace: stale, but it may be served while a background fetch
	// revalidates it.
	Grace
	// Stale: it must be revalidated before it is served; it may still
	// answer if the origin fails (see UsableOnError).
	Stale
)

func (f Freshness) String() string {
	switch f {
	case Fresh:
		return "fresh"
	case Grace:
		return "grace"
	case Stale:
		return "stale"
	}
	return "unknown"
}

// Freshness classifies a stored response whose current age is age
// (RFC 9111 §4.2: fresh while age < TTL).
func (l Lifetime) Freshness(age time.Duration) Freshness {
	if age < l.TTL {
		return Fresh
	}
	if !l.MustRevalidate && age-l.TTL < l.Grace {
		return Grace
	}
	return Stale
}

// UsableOnError reports whether a stored response of the given age may be
// served in place of an origin error (502/503/504 or no answer): within
// stale-if-error (RFC 5861 §4) or within grace (Varnish serves graced
// objects when the backend is sick), never under must-revalidate
// (RFC 9111 §5.2.2.2).
func (l Lifetime) UsableOnError(age time.Duration) bool {
	if age < l.TTL {
		return true
	}
	return !l.MustRevalidate && age-l.TTL < max(l.Grace, l.StaleIfError)
}

// Decide combines the stored lifetime with the request's own directives
// (RFC 9111 §5.2.1): max-age caps the acceptable age, min-fresh asks for
// remaining freshness, max-stale accepts staleness (never past
// must-revalidate), no-cache demands validation. A nil req applies only the
// response's lifetime (edgehost's default: like Varnish, it does not let
// clients force misses unless the route says so).
func (l Lifetime) Decide(req *CacheControl, age time.Duration) Freshness {
	f := l.Freshness(age)
	if req == nil {
		return f
	}
	if req.NoCache || len(req.NoCacheFields) > 0 {
		return Stale
	}
	if req.MaxAge != Absent && age > req.MaxAge {
		return Stale
	}
	if req.MinFresh != Absent && f == Fresh && l.TTL-age < req.MinFresh {
		return Stale
	}
	if f != Fresh && req.MaxStale != Absent && !l.MustRevalidate {
		if req.MaxStale == Unlimited || age-l.TTL <= req.MaxStale {
			return Fresh
		}
	}
	return f
}

// InitialAge is the corrected initial age of a response (RFC 9111 §4.2.3):
//
//	apparent_age = max(0, response_time - date_value)
//	response_delay = response_time - request_time
//	corrected_age_value = age_value + response_delay
//	corrected_initial_age = max(apparent_age, corrected_age_value)
//
// An absent or invalid Age is 0; an absent or invalid Date is taken as
// responseTime (the cache's own clock, as a recipient adds Date, RFC 9110
// §6.6.1). The current age is then CurrentAge(initial, responseTime, now).
func InitialAge(respHeader http.Header, requestTime, responseTime time.Time) time.Duration {
	var ageValue time.Duration
	if av := respHeader["Age"]; len(av) > 0 {
		first, _ := cutComma(av[0])
		if a, ok := parseDeltaSeconds(trimOWS(first)); ok {
			ageValue = a
		}
	}
	var apparent time.Duration
	if dv := respHeader["Date"]; len(dv) > 0 {
		if d, ok := parseHTTPDate(dv[0]); ok {
			apparent = max(responseTime.Sub(d), 0)
		}
	}
	delay := max(responseTime.Sub(requestTime), 0)
	return max(apparent, ageValue+delay)
}

// CurrentAge is corrected_initial_age + resident_time (RFC 9111 §4.2.3).
func CurrentAge(initialAge time.Duration, responseTime, now time.Time) time.Duration {
	return initialAge + max(now.Sub(responseTime), 0)
}

// AppendAge appends an Age field value (whole seconds, RFC 9111 §5.1) for a
// current age.
func AppendAge(dst []byte, age time.Duration) []byte {
	s := int64(max(age, 0) / time.Second)
	return appendInt(dst, s)
}

func appendInt(dst []byte, v int64) []byte {
	if v < 0 {
		dst = append(dst, '-')
		if v == -1<<63 {
			return append(dst, "9223372036854775808"...)
		}
		v = -v
	}
	var buf [20]byte
	i := len(buf)
	for {
		i--
		buf[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			break
		}
	}
	return append(dst, buf[i:]...)
}

func varyStar(vary []string) bool {
	for _, v := range vary {
		for v != "" {
			var f string
			f, v = cutComma(v)
			if trimOWS(f) == "*" {
				return true
			}
		}
	}
	return false
}

func cutComma(s string) (before, after string) {
	for i := 0; i < len(s); i++ {
		if s[i] == ',' {
			return s[:i], s[i+1:]
		}
	}
	return s, ""
}
