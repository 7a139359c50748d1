package httpcache

import (
	"net/http"
	"strings"
)

// unstorable are the fields a cache removes before storing a response
// (RFC 9111 §3.1): hop-by-hop fields (RFC 9110 §7.6.1) and the fields that
// belong to the proxy the cache forwarded through (Proxy-Authenticate,
// Proxy-Authentication-Info, Proxy-Authorization).
var unstorable = [...]string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Te", "Transfer-Encoding", "Upgrade", "Trailer",
	"Proxy-Authenticate", "Proxy-Authentication-Info", "Proxy-Authorization",
}

// StoredHeader returns the copy of a response header that a shared cache
// stores, given the response's directives cc (ResponseDirectives) and the
// targeted fields the cache obeys. It leaves out:
//   - what RFC 9111 §3.1 keeps out of storage: the hop-by-hop fields
//     (RFC 9110 §7.6.1), those named in Connection, and the proxy
//     authentication fields;
//   - Age, recomputed on every delivery (§4.2.3, §5.1), and Cache-Status,
//     which each delivery writes anew (RFC 9211);
//   - the fields named by a qualified private (§5.2.2.7: "a shared cache
//     MUST NOT store the specified field names") and by a qualified
//     no-cache (§5.2.2.4: they "MUST NOT be sent in the response to a
//     subsequent request without successful revalidation"; a field that
//     is not stored is never sent from the cache, so the rest of the
//     response may be reused). Those of Cache-Control go too when a
//     targeted field decides: Cache-Control still speaks to the caches
//     downstream, and a leaked field costs more than a refetched one;
//   - the targeted fields (RFC 9213): they address this cache, not the
//     client.
func StoredHeader(h http.Header, cc CacheControl, targeted []string) http.Header {
	out := h.Clone()
	for _, c := range h["Connection"] {
		for c != "" {
			var f string
			f, c = cutComma(c)
			if f = trimOWS(f); f != "" {
				delete(out, http.CanonicalHeaderKey(f))
			}
		}
	}
	for _, f := range unstorable {
		delete(out, f)
	}
	delete(out, "Age")
	delete(out, "Cache-Status")
	deleteQualified(out, cc)
	if cc.Targeted != "" {
		deleteQualified(out, ParseCacheControl(h["Cache-Control"]))
	}
	for _, f := range targeted {
		delete(out, f)
	}
	return out
}

func deleteQualified(h http.Header, cc CacheControl) {
	for _, f := range cc.NoCacheFields {
		delete(h, f)
	}
	for _, f := range cc.PrivateFields {
		delete(h, f)
	}
}

// AddValidators makes an origin request conditional on a stored response
// (RFC 9111 §4.3.1): If-None-Match from its ETag, If-Modified-Since from
// its Last-Modified. It reports whether it added any; without validators a
// stale object can only be refetched.
func AddValidators(req, stored http.Header) bool {
	added := false
	if et := stored["Etag"]; len(et) > 0 && et[0] != "" {
		req["If-None-Match"] = []string{et[0]}
		added = true
	}
	if lm := stored["Last-Modified"]; len(lm) > 0 && lm[0] != "" {
		req["If-Modified-Since"] = []string{lm[0]}
		added = true
	}
	return added
}

// NotModifiedSelects reports whether a 304 answer to a validation request
// applies to the stored response it revalidated (RFC 9111 §4.3.4):
//   - a strong entity tag in the 304 selects only a stored response with
//     the same strong tag (strong comparison, RFC 9110 §8.8.3.2);
//   - a weak one selects a stored response whose tag matches it by weak
//     comparison;
//   - without an entity tag, a Last-Modified in the 304 selects a stored
//     response with an equal Last-Modified;
//   - a 304 with no validator at all selects the response that edgehost
//     validated. §4.3.4 asks, for that case, that the stored response lack
//     validators too, to guard against a 304 to a conditional request made
//     from elsewhere; edgehost's request was built from this one stored
//     response (AddValidators), so the answer is about it.
//
// A 304 that selects nothing means the origin's representation changed
// under us: the stored response must not be updated (nor served as fresh);
// fetch again without conditions.
func NotModifiedSelects(stored, notModified http.Header) bool {
	if et := notModified["Etag"]; len(et) > 0 {
		st := stored["Etag"]
		if len(st) == 0 {
			return false
		}
		tag := trimOWS(et[0])
		if strings.HasPrefix(tag, "W/") {
			return weakMatch(tag, st[0])
		}
		return tag == trimOWS(st[0])
	}
	if lm := notModified["Last-Modified"]; len(lm) > 0 {
		st := stored["Last-Modified"]
		if len(st) == 0 {
			return false
		}
		a, ok1 := parseHTTPDate(lm[0])
		b, ok2 := parseHTTPDate(st[0])
		return ok1 && ok2 && a.Equal(b)
	}
	return true
}

// UpdateStored freshens a stored response header with the header of a 304
// (or of a HEAD response) that selected it (RFC 9111 §3.2, §4.3.4): every
// field of the new header replaces the stored one, except Content-Length
// (§3.2: a 304 describes no content), and Content-Encoding and
// Content-Range, on which the stored body depends (§3.2 lets a cache keep
// those it relies on). The caller then reads the directives and the
// lifetime from the updated header, restarts the age from the 304 (its Date
// and Age, via InitialAge), and stores StoredHeader of it, which drops what
// must not be stored.
func UpdateStored(stored, fresh http.Header) {
	for k, v := range fresh {
		switch k {
		case "Content-Length", "Content-Encoding", "Content-Range":
			continue
		}
		stored[k] = append([]string(nil), v...)
	}
}
