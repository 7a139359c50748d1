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

// StripUnstorable removes from a response header about to be stored the
// fields RFC 9111 §3.1 keeps out of storage: the hop-by-hop fields, those
// named in Connection, the proxy authentication fields, and the fields
// named by a qualified no-cache or private directive in cc (see
// StripQualified).
func StripUnstorable(h http.Header, cc CacheControl) {
	for _, c := range h["Connection"] {
		for c != "" {
			var f string
			f, c = cutComma(c)
			if f = trimOWS(f); f != "" {
				delete(h, http.CanonicalHeaderKey(f))
			}
		}
	}
	for _, f := range unstorable {
		delete(h, f)
	}
	StripQualified(h, cc)
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
// applies to a stored response (RFC 9111 §4.3.4): when the 304 carries an
// entity tag, the stored one must match it (weak comparison, the 304 may
// carry W/); otherwise when it carries Last-Modified, the stored one must
// be equal; with neither it applies to the stored response that was
// validated. A 304 that selects nothing means the origin's representation
// changed under us: refetch without conditions.
func NotModifiedSelects(stored, notModified http.Header) bool {
	if et := notModified["Etag"]; len(et) > 0 {
		st := stored["Etag"]
		return len(st) > 0 && weakMatch(trimOWS(et[0]), st[0])
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
// field of the new header replaces the stored one, except the fields kept
// out of storage (§3.1), Content-Length (§3.2: a 304 describes no
// content), and Content-Encoding and Content-Range, on which the stored
// body depends (§3.2 lets a cache keep those it relies on). The caller then
// recomputes the lifetime from the updated header and restarts the age from
// the 304 (its Date and Age, via InitialAge).
func UpdateStored(stored, fresh http.Header) {
	connection := fresh["Connection"]
	for k, v := range fresh {
		if skipUpdate(k, connection) {
			continue
		}
		stored[k] = append([]string(nil), v...)
	}
}

func skipUpdate(k string, connection []string) bool {
	switch k {
	case "Content-Length", "Content-Encoding", "Content-Range":
		return true
	}
	for _, f := range unstorable {
		if k == f {
			return true
		}
	}
	for _, c := range connection {
		for c != "" {
			var f string
			f, c = cutComma(c)
			if strings.EqualFold(trimOWS(f), k) {
				return true
			}
		}
	}
	return false
}
