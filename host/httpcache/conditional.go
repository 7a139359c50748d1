package httpcache

import (
	"net/http"
	"time"
)

// EvaluatePreconditions evaluates a request's preconditions against a stored
// (or synthetic) representation with entity tag etag ("" if none; in its
// field form, `"abc"` or `W/"abc"`) and lastModified (zero if none), in the
// order of RFC 9110 §13.2.2. It returns 412, 304, or 0 to go on serving.
//
//  1. If-Match: no member matches by strong comparison → 412 (§13.1.1;
//     "*" matches since a representation exists).
//  2. Without If-Match, If-Unmodified-Since: the representation was
//     modified after the date → 412 (§13.1.4). Ignored when the date is
//     invalid or there is no Last-Modified.
//  3. If-None-Match: a member matches by weak comparison, or is "*" → 304
//     for GET and HEAD, 412 for other methods (§13.1.2).
//  4. For GET and HEAD without If-None-Match, If-Modified-Since: not
//     modified since the date → 304 (§13.1.3). Ignored when the date is
//     invalid, has several members, or there is no Last-Modified.
//
// Call it only when the stored response is a 2xx: a server ignores
// preconditions when its answer without them would not be 2xx or 412
// (§13.2.1), so a cached 404 is served as it is. If-Range is not a
// precondition of this kind; see IfRangeMatches. It does not allocate.
func EvaluatePreconditions(method string, reqHeader http.Header, etag string, lastModified time.Time) int {
	getHead := method == http.MethodGet || method == http.MethodHead
	if im, ok := reqHeader["If-Match"]; ok {
		if !matchList(im, etag, true) {
			return http.StatusPreconditionFailed
		}
	} else if ius := reqHeader["If-Unmodified-Since"]; len(ius) == 1 && !lastModified.IsZero() {
		if t, ok := parseHTTPDate(ius[0]); ok && lastModified.Truncate(time.Second).After(t) {
			return http.StatusPreconditionFailed
		}
	}
	if inm, ok := reqHeader["If-None-Match"]; ok {
		if matchList(inm, etag, false) {
			if getHead {
				return http.StatusNotModified
			}
			return http.StatusPreconditionFailed
		}
		return 0
	}
	if !getHead || lastModified.IsZero() {
		return 0
	}
	if ims := reqHeader["If-Modified-Since"]; len(ims) == 1 {
		if t, ok := parseHTTPDate(ims[0]); ok && !lastModified.Truncate(time.Second).After(t) {
			return http.StatusNotModified
		}
	}
	return 0
}

// IfRangeMatches reports whether a Range request should be honoured given
// its If-Range (RFC 9110 §13.1.5): true when there is no If-Range; for an
// entity tag, true only when it matches etag by strong comparison (a weak
// tag never does); for an HTTP-date, true only when it equals lastModified
// exactly (to the second). An unparsable If-Range is false: the client then
// gets the whole representation, which is always safe.
func IfRangeMatches(reqHeader http.Header, etag string, lastModified time.Time) bool {
	ir, ok := reqHeader["If-Range"]
	if !ok {
		return true
	}
	if len(ir) != 1 {
		return false
	}
	v := trimOWS(ir[0])
	if v == "" {
		return false
	}
	if v[0] == '"' || (len(v) > 1 && v[0] == 'W' && v[1] == '/') {
		tag, _, ok := scanETag(v)
		if !ok {
			return false
		}
		return strongMatch(tag, etag)
	}
	if lastModified.IsZero() {
		return false
	}
	t, ok := parseHTTPDate(v)
	if !ok {
		return false
	}
	return lastModified.Truncate(time.Second).Equal(t)
}

// matchList reports whether any member of an If-Match / If-None-Match list
// (possibly over several field lines) matches etag, by strong or weak
// comparison (RFC 9110 §8.8.3.2). "*" matches any existing representation.
// Malformed members are skipped.
func matchList(lines []string, etag string, strong bool) bool {
	for _, s := range lines {
		for {
			s = skipListSep(s)
			if s == "" {
				break
			}
			if s[0] == '*' {
				return true
			}
			tag, rest, ok := scanETag(s)
			if !ok {
				// skip to the next comma
				_, s = cutComma(s)
				continue
			}
			s = rest
			if etag == "" {
				continue
			}
			if strong {
				if strongMatch(tag, etag) {
					return true
				}
			} else if weakMatch(tag, etag) {
				return true
			}
		}
	}
	return false
}

func skipListSep(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t' || s[0] == ',') {
		s = s[1:]
	}
	return s
}

// scanETag reads one entity-tag (RFC 9110 §8.8.3: [W/] DQUOTE *etagc
// DQUOTE) at the start of s.
func scanETag(s string) (tag, rest string, ok bool) {
	i := 0
	if len(s) >= 2 && s[0] == 'W' && s[1] == '/' {
		i = 2
	}
	if i >= len(s) || s[i] != '"' {
		return "", s, false
	}
	for j := i + 1; j < len(s); j++ {
		c := s[j]
		if c == '"' {
			return s[:j+1], s[j+1:], true
		}
		if c != 0x21 && (c < 0x23 || c == 0x7f) {
			return "", s, false
		}
	}
	return "", s, false
}

// opaque returns an entity tag's content without W/ and quotes, and whether
// it is weak. A stored tag that lacks quotes (a lax origin) is taken whole.
func opaque(tag string) (string, bool) {
	weak := false
	if len(tag) >= 2 && tag[0] == 'W' && tag[1] == '/' {
		weak = true
		tag = tag[2:]
	}
	if len(tag) >= 2 && tag[0] == '"' && tag[len(tag)-1] == '"' {
		tag = tag[1 : len(tag)-1]
	}
	return tag, weak
}

func strongMatch(a, b string) bool {
	oa, wa := opaque(a)
	ob, wb := opaque(trimOWS(b))
	return !wa && !wb && oa == ob
}

func weakMatch(a, b string) bool {
	oa, _ := opaque(a)
	ob, _ := opaque(trimOWS(b))
	return oa == ob
}

// NoneMatch reports whether an If-None-Match field value matches etag by
// weak comparison, as a cache evaluating it for GET or HEAD does (RFC 9110
// §13.1.2): true means 304. It takes the raw bytes of the hit fast path.
func NoneMatch(value []byte, etag string) bool {
	return matchList([]string{string(value)}, etag, false)
}
