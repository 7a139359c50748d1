package httpcache

import (
	"net/http"
	"strings"
)

// CDNCacheControl is the targeted field RFC 9213 §3 defines for CDN caches,
// in canonical form.
const CDNCacheControl = "Cdn-Cache-Control"

// ResponseDirectives reads the cache directives of a response for this
// cache: those of the first targeted field (RFC 9213) in targeted that is
// present with a valid, non-empty value, else those of Cache-Control.
// targeted holds canonical field names (http.CanonicalHeaderKey), highest
// precedence first.
//
// RFC 9213 §2.1: a cache that obeys targeted fields uses the first one in
// its list that has a valid value and then ignores Cache-Control and
// Expires in that response; CacheControl.Targeted names that field so that
// Storable and Lifetime ignore Expires. A targeted field is a Structured
// Fields Dictionary (RFC 8941 §3.2); one that fails to parse is ignored as
// a whole, as if absent. Its directives mean what they mean in
// Cache-Control (max-age, s-maxage, no-store, no-cache, private, public,
// must-revalidate, proxy-revalidate, stale-while-revalidate,
// stale-if-error …), with the same conservative reading of bad values
// (ParseCacheControl): an Integer is a delta-seconds, a Boolean false
// (?0) is no directive, a String argument of private or no-cache is the
// qualified form (a list of field names), and parameters are ignored. Where
// a directive repeats, the last one counts (RFC 8941 §4.2.2).
//
// Targeted fields are for this cache only: StoredHeader keeps them out of
// storage, so they never reach a client from the cache.
func ResponseDirectives(h http.Header, targeted []string) CacheControl {
	for _, name := range targeted {
		v, ok := h[name]
		if !ok {
			continue
		}
		if cc, ok := parseTargeted(v); ok {
			cc.Targeted = name
			return cc
		}
	}
	return ParseCacheControl(h["Cache-Control"])
}

// sfMember is one member of a Structured Fields Dictionary, reduced to
// what cache directives need.
type sfMember struct {
	key  string
	arg  string // Integer, Decimal and Token as written; String unescaped
	kind byte   // 'b' Boolean true (bare or ?1), 'f' Boolean false, 'i' Integer, 's' String, 'o' other (Token too)
}

// parseTargeted parses a targeted field's lines as one Dictionary (RFC 8941
// §4.2: the lines are combined with commas) into directives. ok is false
// when the value does not parse or is empty.
func parseTargeted(lines []string) (cc CacheControl, ok bool) {
	v := strings.Join(lines, ", ")
	members, ok := parseSFDictionary(v)
	if !ok || len(members) == 0 {
		return CacheControl{}, false
	}
	cc = CacheControl{
		MaxAge: Absent, SMaxAge: Absent, StaleWhileRevalidate: Absent,
		StaleIfError: Absent, MaxStale: Absent, MinFresh: Absent,
	}
	// The last occurrence of a key wins: apply from the end, each key once.
	for i := len(members) - 1; i >= 0; i-- {
		m := members[i]
		seen := false
		for _, later := range members[i+1:] {
			if later.key == m.key {
				seen = true
				break
			}
		}
		switch {
		case seen || m.kind == 'f':
		case m.kind == 'b':
			cc.apply(m.key, "", false, false)
		case m.kind == 'o', m.kind == 's' && m.key != "private" && m.key != "no-cache":
			// Only an Integer is a delta-seconds and only a String a
			// list of field names: anything else is an invalid argument,
			// applied as one (an invalid max-age is 0, private=tok is
			// the unqualified private).
			cc.apply(m.key, "\x00", true, false)
		default:
			cc.apply(m.key, m.arg, true, false)
		}
	}
	return cc, true
}

// parseSFDictionary parses an RFC 8941 §4.2.2 Dictionary. Keys are
// lowercase (§3.2: a key with an uppercase letter fails the whole field).
func parseSFDictionary(s string) ([]sfMember, bool) {
	var out []sfMember
	i := skipSP(s, 0)
	if i == len(s) {
		return nil, true
	}
	for {
		key, j, ok := sfKey(s, i)
		if !ok {
			return nil, false
		}
		m := sfMember{key: key, kind: 'b'}
		i = j
		if i < len(s) && s[i] == '=' {
			i++
			if i < len(s) && s[i] == '(' {
				if i, ok = sfInnerList(s, i); !ok {
					return nil, false
				}
				m.kind = 'o'
			} else {
				if m, i, ok = sfBareItem(s, i, key); !ok {
					return nil, false
				}
			}
		}
		if i, ok = sfParams(s, i); !ok {
			return nil, false
		}
		out = append(out, m)
		i = skipOWS(s, i)
		if i == len(s) {
			return out, true
		}
		if s[i] != ',' {
			return nil, false
		}
		i = skipOWS(s, i+1)
		if i == len(s) {
			return nil, false // a trailing comma
		}
	}
}

func sfKey(s string, i int) (string, int, bool) {
	if i >= len(s) || !(s[i] >= 'a' && s[i] <= 'z' || s[i] == '*') {
		return "", i, false
	}
	j := i + 1
	for j < len(s) {
		c := s[j]
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.' || c == '*' {
			j++
			continue
		}
		break
	}
	return s[i:j], j, true
}

// sfBareItem parses an Item's bare value (RFC 8941 §4.2.3.1) at s[i].
func sfBareItem(s string, i int, key string) (sfMember, int, bool) {
	m := sfMember{key: key}
	if i >= len(s) {
		return m, i, false
	}
	c := s[i]
	switch {
	case c == '-' || c >= '0' && c <= '9':
		j := i
		if c == '-' {
			j++
		}
		start, dot := j, -1
		for j < len(s) && (s[j] >= '0' && s[j] <= '9' || s[j] == '.' && dot < 0) {
			if s[j] == '.' {
				dot = j
			}
			j++
		}
		n := j - start
		switch {
		case n == 0 || dot == start:
			return m, i, false
		case dot < 0:
			if n > 15 {
				return m, i, false
			}
			m.kind = 'i'
		default:
			if dot-start > 12 || j-dot-1 < 1 || j-dot-1 > 3 {
				return m, i, false
			}
			m.kind = 'o'
		}
		m.arg = s[i:j]
		return m, j, true
	case c == '"':
		var b strings.Builder
		for j := i + 1; j < len(s); j++ {
			switch c := s[j]; {
			case c == '\\':
				if j+1 == len(s) || s[j+1] != '"' && s[j+1] != '\\' {
					return m, i, false
				}
				j++
				b.WriteByte(s[j])
			case c == '"':
				m.kind, m.arg = 's', b.String()
				return m, j + 1, true
			case c < 0x20 || c > 0x7e:
				return m, i, false
			default:
				b.WriteByte(c)
			}
		}
		return m, i, false
	case c == '*' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
		j := i + 1
		for j < len(s) && (isTchar(s[j]) || s[j] == ':' || s[j] == '/') {
			j++
		}
		m.kind = 'o'
		return m, j, true
	case c == ':':
		j := i + 1
		for j < len(s) && s[j] != ':' {
			if d := s[j]; !(d >= 'a' && d <= 'z' || d >= 'A' && d <= 'Z' || d >= '0' && d <= '9' || d == '+' || d == '/' || d == '=') {
				return m, i, false
			}
			j++
		}
		if j == len(s) {
			return m, i, false
		}
		m.kind = 'o'
		return m, j + 1, true
	case c == '?':
		if i+1 < len(s) && (s[i+1] == '0' || s[i+1] == '1') {
			m.kind = 'b'
			if s[i+1] == '0' {
				m.kind = 'f'
			}
			return m, i + 2, true
		}
	}
	return m, i, false
}

// sfParams skips an item's parameters (RFC 8941 §4.2.3.2).
func sfParams(s string, i int) (int, bool) {
	for i < len(s) && s[i] == ';' {
		i = skipSP(s, i+1)
		key, j, ok := sfKey(s, i)
		if !ok {
			return i, false
		}
		i = j
		if i < len(s) && s[i] == '=' {
			if _, i, ok = sfBareItem(s, i+1, key); !ok {
				return i, false
			}
		}
	}
	return i, true
}

// sfInnerList skips an Inner List (RFC 8941 §4.2.1.2) starting at s[i] == '('.
func sfInnerList(s string, i int) (int, bool) {
	i++
	for i < len(s) {
		i = skipSP(s, i)
		if i < len(s) && s[i] == ')' {
			return sfParams(s, i+1)
		}
		var ok bool
		if _, i, ok = sfBareItem(s, i, ""); !ok {
			return i, false
		}
		if i, ok = sfParams(s, i); !ok {
			return i, false
		}
		if i < len(s) && s[i] != ' ' && s[i] != ')' {
			return i, false
		}
	}
	return i, false
}

func skipSP(s string, i int) int {
	for i < len(s) && s[i] == ' ' {
		i++
	}
	return i
}

func skipOWS(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	return i
}
