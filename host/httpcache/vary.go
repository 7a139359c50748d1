package httpcache

import "net/http"

// VaryKey computes the secondary cache key (RFC 9111 §4.1) of a request for
// a stored response whose Vary field lines are vary. It returns "" when
// there is no Vary, and ok=false for "Vary: *", which matches no later
// request (the response is then unusable for anything but its own request).
// See AppendVaryKey for the format and the normalizations.
func VaryKey(vary []string, reqHeader http.Header) (key string, ok bool) {
	var buf [256]byte
	b, ok := AppendVaryKey(buf[:0], vary, reqHeader)
	if !ok {
		return "", false
	}
	return string(b), true
}

// maxStackNames bounds the names and codings sorted without allocating.
const maxStackNames = 16

// AppendVaryKey appends the secondary key to dst; it does not allocate when
// dst has room and Vary names at most 16 fields.
//
// The key lists the fields that Vary names, lowercased, deduplicated and
// sorted (so "Vary: Accept-Encoding, Cookie" and "Vary: cookie" +
// "Vary: accept-encoding" give the same key), each as "name:value",
// separated by "\n". A field absent from the request is written as "name"
// alone: RFC 9111 §4.1 says an absent field only matches an absent field,
// which an empty value must not. Values are normalized as §4.1 allows:
// each field line trimmed of whitespace, several lines joined with ", "
// (RFC 9110 §5.3), control bytes replaced by '?' so that no value can forge
// a separator.
//
// Accept-Encoding is reduced to the set it accepts: the codings it names,
// lowercased, x-gzip as gzip and x-compress as compress (RFC 9110
// §8.4.1), deduplicated (first wins) and sorted, a refused one (q=0) as
// "-coding", weights and order dropped. Two requests with the same set
// accept exactly the same responses, so any variant stored for one is
// acceptable to the other: the key stays correct whatever encodings the
// origin produces (zstd included), while "gzip, deflate, br" and
// "br;q=1.0, gzip;q=0.8, deflate" share a variant. A state machine that
// rewrites Accept-Encoding towards the origin (Varnish-style, to just gzip
// or br) should compute the key from the rewritten header for a better hit
// rate.
func AppendVaryKey(dst []byte, vary []string, reqHeader http.Header) ([]byte, bool) {
	var stack [maxStackNames]string
	names := stack[:0]
	for _, line := range vary {
		for line != "" {
			var f string
			f, line = cutComma(line)
			f = trimOWS(f)
			if f == "" {
				continue
			}
			if f == "*" {
				return dst, false
			}
			if !validToken(f) {
				continue // not a field name; it could forge the key's syntax
			}
			names = append(names, f)
		}
	}
	if len(names) == 0 {
		return dst, true
	}
	insertionSort(names, compareFold)
	var canon [64]byte
	prev := ""
	first := true
	for _, name := range names {
		if prev != "" && equalFoldASCII(prev, name) {
			continue
		}
		prev = name
		if !first {
			dst = append(dst, '\n')
		}
		first = false
		dst = appendLower(dst, name)
		var values []string
		var present bool
		if len(name) <= len(canon) {
			c := canonicalInto(canon[:0], name)
			values, present = reqHeader[string(c)] // no allocation: map index by converted bytes
		} else {
			values, present = reqHeader[http.CanonicalHeaderKey(name)]
		}
		if !present {
			continue
		}
		dst = append(dst, ':')
		if equalFoldASCII(name, "accept-encoding") {
			dst = appendCodingSet(dst, values)
			continue
		}
		for i, v := range values {
			if i > 0 {
				dst = append(dst, ", "...)
			}
			dst = appendSafe(dst, trimOWS(v))
		}
	}
	return dst, true
}

// coding is one Accept-Encoding member for the normalized set.
type coding struct {
	name    string
	refused bool
}

func appendCodingSet(dst []byte, values []string) []byte {
	var stack [maxStackNames]coding
	cs := stack[:0]
	for _, v := range values {
		for v != "" {
			var m string
			m, v = cutComma(v)
			name, params := cutByte(m, ';')
			name = trimOWS(name)
			if name == "" {
				continue
			}
			switch {
			case equalFoldASCII(name, "x-gzip"):
				name = "gzip"
			case equalFoldASCII(name, "x-compress"):
				name = "compress"
			}
			cs = append(cs, coding{name: name, refused: qZero(params)})
		}
	}
	// Stable, so that the first of duplicate members survives.
	insertionSort(cs, func(a, b coding) int { return compareFold(a.name, b.name) })
	prev := ""
	first := true
	for _, c := range cs {
		if prev != "" && equalFoldASCII(prev, c.name) {
			continue
		}
		prev = c.name
		if !first {
			dst = append(dst, ',')
		}
		first = false
		if c.refused {
			dst = append(dst, '-')
		}
		dst = appendLower(dst, c.name)
	}
	return dst
}

// qZero reports whether a member's parameters carry a weight of 0
// ("q=0", "q=0.0", "q=0.000"; RFC 9110 §12.4.2). An unreadable weight
// counts as not zero.
func qZero(params string) bool {
	for params != "" {
		var p string
		p, params = cutByte(params, ';')
		k, val := cutByte(p, '=')
		if !equalFoldASCII(trimOWS(k), "q") {
			continue
		}
		val = trimOWS(val)
		if val == "" || val[0] != '0' {
			return false
		}
		val = val[1:]
		if val == "" {
			return true
		}
		if val[0] != '.' {
			return false
		}
		for i := 1; i < len(val); i++ {
			if val[i] != '0' {
				return false
			}
		}
		return true
	}
	return false
}

// insertionSort is a stable sort for the few elements of a Vary or
// Accept-Encoding list; it is quicker than slices.SortFunc there.
func insertionSort[T any](s []T, cmp func(a, b T) int) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && cmp(s[j-1], s[j]) > 0; j-- {
			s[j-1], s[j] = s[j], s[j-1]
		}
	}
}

func cutByte(s string, sep byte) (before, after string) {
	for i := 0; i < len(s); i++ {
		if s[i] == sep {
			return s[:i], s[i+1:]
		}
	}
	return s, ""
}

// canonicalInto writes the canonical MIME header form of a token (as
// textproto.CanonicalMIMEHeaderKey does for valid names).
func canonicalInto(dst []byte, name string) []byte {
	upper := true
	for i := 0; i < len(name); i++ {
		c := name[i]
		if upper && 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		} else if !upper && 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
		upper = c == '-'
	}
	return dst
}

// appendLower appends s lowercased, control bytes replaced by '?' as in
// appendSafe.
func appendLower(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		case c < 0x20 && c != '\t' || c == 0x7f:
			c = '?'
		}
		dst = append(dst, c)
	}
	return dst
}

func appendSafe(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 && c != '\t' || c == 0x7f {
			c = '?'
		}
		dst = append(dst, c)
	}
	return dst
}

func compareFold(a, b string) int {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		ca, cb := a[i], b[i]
		if 'A' <= ca && ca <= 'Z' {
			ca += 'a' - 'A'
		}
		if 'A' <= cb && cb <= 'Z' {
			cb += 'a' - 'A'
		}
		if ca != cb {
			if ca < cb {
				return -1
			}
			return 1
		}
	}
	return len(a) - len(b)
}
