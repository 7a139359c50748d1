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

// Policy is what a route's configuration adds to the rules of RFC 9111:
// the settings every decision about a response of that route depends on.
type Policy struct {
	// DefaultTTL is the operator's explicit freshness lifetime for a
	// response that carries no explicit freshness (no s-maxage, max-age or
	// Expires), in place of heuristic freshness. 0, the default: RFC 9111
	// alone decides (heuristic freshness where §4.2.2 allows it, else the
	// response is not reused without validation). Varnish applies its
	// default_ttl of 120 s to every such response, with or without a
	// validator or Last-Modified; edgehost does so only on a route whose
	// config says default_ttl.
	DefaultTTL time.Duration
	// HeuristicMax caps heuristic freshness (§4.2.2); 0 turns it off.
	HeuristicMax time.Duration
	// Grace is the configured time a response with a freshness lifetime
	// may be served stale while one background fetch revalidates it
	// (Varnish's grace; an out-of-band contract in the words of §4.2.4).
	Grace time.Duration
	// AllowCookies shares responses that set cookies (route
	// cache_cookies).
	AllowCookies bool
	// Targeted lists the targeted cache-control fields (RFC 9213) this
	// cache obeys, highest precedence first, in canonical form (see
	// ResponseDirectives); nil obeys only Cache-Control and Expires.
	Targeted []string
}

// DefaultHeuristicMax is the embedded cap on heuristic freshness.
const DefaultHeuristicMax = 24 * time.Hour

// Storable reports whether a shared cache may store the response to a
// request (RFC 9111 §3), and if not, a short reason (one of the Reason
// constants). cc is the response's directives as ResponseDirectives reads
// them. It does not allocate.
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
//   - no unqualified private (§5.2.2.7); the qualified form is stored
//     without the fields it names (StoredHeader);
//   - a request with Authorization only when the response has public,
//     must-revalidate or s-maxage (§3.5);
//   - no Set-Cookie unless p.AllowCookies (a cookie handed to every client
//     is a session leak), or a qualified private or no-cache names it
//     (then it is not stored, §5.2.2.4, §5.2.2.7);
//   - no Vary: * (§4.1: it never matches, storing it only wastes space);
//   - explicit freshness (Expires, max-age, s-maxage), public, or a status
//     that is heuristically cacheable (RFC 9110 §15.1). Storable does not
//     mean reusable: Lifetime may still give no freshness at all, and such
//     a response is only kept to be revalidated.
func (p Policy) Storable(method string, status int, reqHeader, respHeader http.Header, cc CacheControl) (ok bool, reason string) {
	if method != http.MethodGet && method != http.MethodHead {
		return false, ReasonMethod
	}
	if status < 200 || status > 599 || status == http.StatusPartialContent || status == http.StatusNotModified {
		return false, ReasonStatus
	}
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
	if _, cookie := respHeader["Set-Cookie"]; cookie && !p.AllowCookies && !qualifies(cc, "Set-Cookie") {
		return false, ReasonSetCookie
	}
	if varyStar(respHeader["Vary"]) {
		return false, ReasonVary
	}
	_, expires := respHeader["Expires"]
	expires = expires && cc.Targeted == "" // RFC 9213 §2.1: a targeted field overrides Expires
	if expires || cc.MaxAge != Absent || cc.SMaxAge != Absent || cc.Public || HeuristicallyCacheable(status) {
		return true, ""
	}
	return false, ReasonStatus
}

// qualifies reports whether a qualified no-cache or private names field
// (canonical).
func qualifies(cc CacheControl, field string) bool {
	for _, f := range cc.NoCacheFields {
		if f == field {
			return true
		}
	}
	for _, f := range cc.PrivateFields {
		if f == field {
			return true
		}
	}
	return false
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

// Source says where a freshness lifetime came from.
type Source uint8

const (
	// NoFreshness: the response has no freshness lifetime; it may be
	// stored to be revalidated, never reused without (RFC 9111 §4.2.2 and
	// §4.3).
	NoFreshness Source = iota
	// Explicit: s-maxage, max-age or Expires (§4.2.1), or a targeted
	// field (RFC 9213).
	Explicit
	// Heuristic: a fraction of the time since Last-Modified (§4.2.2).
	Heuristic
	// Configured: the route's default_ttl (Policy.DefaultTTL).
	Configured
)

// Lifetime is how long a stored response may be used.
//
// TTL is the freshness lifetime (RFC 9111 §4.2.1). Grace is how long after
// TTL the response may still be served while one background fetch
// revalidates it (Varnish's grace, RFC 5861 stale-while-revalidate).
// StaleIfError is how long after TTL it may be served when the origin fails
// (RFC 5861 §4). Source says where TTL came from. MustRevalidate says a
// stale response must never be served (Grace and StaleIfError are then 0).
// The cache object applies it (cache.Object.Fresh, InGrace,
// UsableOnError).
type Lifetime struct {
	TTL, Grace, StaleIfError time.Duration
	Source                   Source
	MustRevalidate           bool
}

// Lifetime derives the lifetime of a response with status status, header
// h and directives cc (ResponseDirectives), received at responseTime.
//
// TTL, the first that applies:
//   - s-maxage (a shared cache prefers it, §5.2.2.10), then max-age
//     (§5.2.2.1); an invalid value is 0 (ParseCacheControl, §4.2.1);
//   - Expires minus Date (§4.2.1), unless a targeted field decides
//     (RFC 9213 §2.1). An Expires that is not one valid HTTP-date, or that
//     appears on more than one field line, is already expired (§5.3,
//     §4.2.1 lets a cache consider a response with conflicting
//     information stale); a missing or invalid Date is taken as
//     responseTime;
//   - the route's DefaultTTL, for a response §3 lets a cache store without
//     explicit freshness (a heuristically cacheable status or public);
//   - heuristic freshness (§4.2.2) for the same responses when they carry
//     a valid Last-Modified: 10% of the time between Last-Modified and
//     Date, at most HeuristicMax;
//   - else none: TTL 0, Source NoFreshness.
//
// An unqualified no-cache makes TTL 0: the response must be validated
// before each use (§5.2.2.4).
//
// Stale windows: must-revalidate, proxy-revalidate and unqualified no-cache
// forbid serving stale at all (§4.2.4): Grace and StaleIfError are 0 and
// MustRevalidate is set. s-maxage implies proxy-revalidate for a shared
// cache (§5.2.2.10) but an origin that sends both s-maxage and
// stale-while-revalidate / stale-if-error plainly asks for them, so with
// s-maxage edgehost drops only its own p.Grace and honours those explicit
// directives. A response with no freshness gets no configured grace either:
// nothing allowed its reuse. Otherwise Grace = max(p.Grace,
// stale-while-revalidate) and StaleIfError comes from its directive.
func (p Policy) Lifetime(status int, h http.Header, cc CacheControl, responseTime time.Time) Lifetime {
	var l Lifetime
	switch {
	case cc.SMaxAge != Absent:
		l.TTL, l.Source = cc.SMaxAge, Explicit
	case cc.MaxAge != Absent:
		l.TTL, l.Source = cc.MaxAge, Explicit
	case cc.Targeted != "":
		// RFC 9213 §2.1: the targeted field replaces Cache-Control and
		// Expires; without a lifetime in it there is no explicit one.
		l.TTL, l.Source = p.implicitTTL(status, h, cc, responseTime)
	default:
		if ev, ok := h["Expires"]; ok {
			l.Source = Explicit
			if len(ev) == 1 {
				if exp, ok := parseHTTPDate(ev[0]); ok {
					l.TTL = max(exp.Sub(dateOr(h, responseTime)), 0)
				}
			}
		} else {
			l.TTL, l.Source = p.implicitTTL(status, h, cc, responseTime)
		}
	}
	if cc.NoCache {
		l.TTL = 0
	}
	if cc.MustRevalidate || cc.ProxyRevalidate || cc.NoCache {
		l.MustRevalidate = true
		return l
	}
	if cc.SMaxAge == Absent && l.Source != NoFreshness {
		l.Grace = max(p.Grace, 0)
	}
	if cc.StaleWhileRevalidate != Absent {
		l.Grace = max(l.Grace, cc.StaleWhileRevalidate)
	}
	if cc.StaleIfError != Absent {
		l.StaleIfError = cc.StaleIfError
	}
	return l
}

// implicitTTL is the lifetime of a response without explicit freshness:
// the route's DefaultTTL or heuristic freshness (§4.2.2), only for
// responses that §3 lets a cache store without explicit freshness.
func (p Policy) implicitTTL(status int, h http.Header, cc CacheControl, responseTime time.Time) (time.Duration, Source) {
	if !HeuristicallyCacheable(status) && !cc.Public {
		return 0, NoFreshness
	}
	if p.DefaultTTL > 0 {
		return p.DefaultTTL, Configured
	}
	lm := h["Last-Modified"]
	if p.HeuristicMax <= 0 || len(lm) != 1 {
		return 0, NoFreshness
	}
	t, ok := parseHTTPDate(lm[0])
	if !ok {
		return 0, NoFreshness
	}
	// "no more than some fraction of the interval since that time. A
	// typical setting of this fraction might be 10%." (§4.2.2)
	since := dateOr(h, responseTime).Sub(t)
	if since <= 0 {
		return 0, NoFreshness
	}
	return min(since/10, p.HeuristicMax), Heuristic
}

// dateOr is the response's Date, or def when it has no single valid one.
func dateOr(h http.Header, def time.Time) time.Time {
	if dv := h["Date"]; len(dv) == 1 {
		if d, ok := parseHTTPDate(dv[0]); ok {
			return d
		}
	}
	return def
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
