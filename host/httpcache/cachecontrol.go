package httpcache

import (
	"net/http"
	"strings"
	"time"
)

// Absent is the value of a CacheControl duration whose directive is not
// present.
const Absent time.Duration = -1

// MaxDelta is the largest delta-seconds a cache keeps: RFC 9111 §1.2.2 says
// a larger value (or one that overflows) is taken as 2147483648 seconds.
const MaxDelta = 2147483648 * time.Second

// Unlimited is CacheControl.MaxStale for a bare "max-stale" request
// directive: the client accepts a stale response of any staleness
// (RFC 9111 §5.2.1.2).
const Unlimited time.Duration = 1<<63 - 1

// CacheControl is a parsed Cache-Control field (request or response).
//
// Durations are Absent (-1) when their directive is not present. When a
// directive appears more than once, the first occurrence wins (RFC 9111
// §4.2.1). Invalid arguments are read the conservative way:
//
//   - max-age, s-maxage with a missing, negative or non-numeric argument
//     (max-age=3600.0, max-age=-1, max-age=1h) are 0: delta-seconds is
//     1*DIGIT (§1.2.2) and "caches are encouraged to consider responses
//     that have invalid freshness information to be stale" (§4.2.1). A
//     value too large for the cache is 2147483648 seconds (§1.2.2).
//   - stale-while-revalidate, stale-if-error, min-fresh and a max-stale with
//     a bad argument are ignored (Absent): not serving stale content is the
//     safe reading of a directive we cannot understand.
//   - a bare max-stale is Unlimited.
//
// NoCache and Private are true only for the unqualified forms. The qualified
// forms (no-cache="Set-Cookie", private="X-Secret") leave them false and list
// their field names, canonicalized, in NoCacheFields and PrivateFields: a
// shared cache may store such a response without those fields
// (§5.2.2.4, §5.2.2.7); see StoredHeader. An empty qualified list
// (no-cache="") is read as the unqualified form.
type CacheControl struct {
	MaxAge, SMaxAge, StaleWhileRevalidate, StaleIfError, MaxStale, MinFresh time.Duration

	NoStore, NoCache, Private, Public, MustRevalidate, ProxyRevalidate, NoTransform, Immutable, OnlyIfCached bool
	// MustUnderstand is RFC 9111 §5.2.2.3: store only if the status code is
	// understood; a cache that understands it ignores no-store.
	MustUnderstand bool

	NoCacheFields, PrivateFields []string

	// Targeted names the targeted field (RFC 9213) these directives come
	// from; "" for Cache-Control. See ResponseDirectives.
	Targeted string
}

// ParseCacheControl parses every line of a Cache-Control field (pass
// h["Cache-Control"] or h.Values("Cache-Control")). Directive names are
// case-insensitive, unknown directives and extensions are ignored, arguments
// may be tokens or quoted strings (§5.2: a recipient accepts both forms).
// It does not allocate unless a qualified no-cache or private is present.
func ParseCacheControl(values []string) CacheControl {
	cc := CacheControl{
		MaxAge: Absent, SMaxAge: Absent, StaleWhileRevalidate: Absent,
		StaleIfError: Absent, MaxStale: Absent, MinFresh: Absent,
	}
	for _, v := range values {
		for len(v) > 0 {
			var name, arg string
			var hasArg, quoted bool
			name, arg, hasArg, quoted, v = nextDirective(v)
			if name == "" {
				continue
			}
			cc.apply(name, arg, hasArg, quoted)
		}
	}
	return cc
}

// nextDirective splits the first directive off s. It returns the name, the
// argument (unquoted only when it has no escapes; quoted tells the caller
// to unescape), and the rest of s after the separating comma.
func nextDirective(s string) (name, arg string, hasArg, quoted bool, rest string) {
	i := 0
	for i < len(s) && s[i] != ',' && s[i] != '=' {
		i++
	}
	name = trimOWS(s[:i])
	if i == len(s) {
		return name, "", false, false, ""
	}
	if s[i] == ',' {
		return name, "", false, false, s[i+1:]
	}
	// s[i] == '='
	i++
	for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	if i < len(s) && s[i] == '"' {
		// quoted-string: up to the closing quote, honouring \-escapes. An
		// unterminated string runs to the end of the line.
		start := i + 1
		j := start
		esc := false
		for j < len(s) && s[j] != '"' {
			if s[j] == '\\' && j+1 < len(s) {
				esc = true
				j++
			}
			j++
		}
		arg = s[start:min(j, len(s))]
		// skip to the next comma (anything after the closing quote is junk)
		for j < len(s) && s[j] != ',' {
			j++
		}
		if j < len(s) {
			j++
		}
		return name, arg, true, esc, s[j:]
	}
	start := i
	for i < len(s) && s[i] != ',' {
		i++
	}
	arg = trimOWS(s[start:i])
	if i < len(s) {
		i++
	}
	return name, arg, true, false, s[i:]
}

func (cc *CacheControl) apply(name, arg string, hasArg, escaped bool) {
	// Known directive names are at most 22 bytes; lowercase into a stack
	// buffer and switch on it (the conversion in a switch does not
	// allocate).
	var lower [24]byte
	if len(name) > len(lower) {
		return
	}
	n := copy(lower[:], name)
	for i := range n {
		if c := lower[i]; 'A' <= c && c <= 'Z' {
			lower[i] = c + 'a' - 'A'
		}
	}
	if escaped {
		arg = unescapeQuoted(arg)
	}
	switch string(lower[:n]) {
	case "max-age":
		setDelta(&cc.MaxAge, arg, hasArg, 0)
	case "s-maxage":
		setDelta(&cc.SMaxAge, arg, hasArg, 0)
	case "stale-while-revalidate":
		setDelta(&cc.StaleWhileRevalidate, arg, hasArg, Absent)
	case "stale-if-error":
		setDelta(&cc.StaleIfError, arg, hasArg, Absent)
	case "min-fresh":
		setDelta(&cc.MinFresh, arg, hasArg, Absent)
	case "max-stale":
		if cc.MaxStale != Absent {
			return
		}
		if !hasArg {
			cc.MaxStale = Unlimited
			return
		}
		setDelta(&cc.MaxStale, arg, true, Absent)
	case "no-store":
		cc.NoStore = true
	case "no-cache":
		if hasArg {
			n := len(cc.NoCacheFields)
			cc.NoCacheFields = appendFieldNames(cc.NoCacheFields, arg)
			if len(cc.NoCacheFields) > n {
				return
			}
		}
		cc.NoCache = true
	case "private":
		if hasArg {
			n := len(cc.PrivateFields)
			cc.PrivateFields = appendFieldNames(cc.PrivateFields, arg)
			if len(cc.PrivateFields) > n {
				return
			}
		}
		cc.Private = true
	case "public":
		cc.Public = true
	case "must-revalidate":
		cc.MustRevalidate = true
	case "proxy-revalidate":
		cc.ProxyRevalidate = true
	case "no-transform":
		cc.NoTransform = true
	case "immutable":
		cc.Immutable = true
	case "only-if-cached":
		cc.OnlyIfCached = true
	case "must-understand":
		cc.MustUnderstand = true
	}
}

// setDelta stores a delta-seconds argument unless the directive was already
// seen (the first occurrence wins, RFC 9111 §4.2.1); bad is stored when the
// argument is missing or invalid.
func setDelta(d *time.Duration, arg string, hasArg bool, bad time.Duration) {
	if *d != Absent {
		return
	}
	if !hasArg {
		*d = bad
		return
	}
	v, ok := parseDeltaSeconds(arg)
	if !ok {
		*d = bad
		return
	}
	*d = v
}

// parseDeltaSeconds parses 1*DIGIT (RFC 9111 §1.2.2), saturating at
// MaxDelta.
func parseDeltaSeconds(s string) (time.Duration, bool) {
	if s == "" {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		if n <= 2147483648 {
			n = n*10 + int64(c-'0')
		}
	}
	if n > 2147483648 {
		n = 2147483648
	}
	return time.Duration(n) * time.Second, true
}

// appendFieldNames appends the comma-separated field names of a qualified
// no-cache or private directive, canonicalized.
func appendFieldNames(dst []string, list string) []string {
	for list != "" {
		var f string
		f, list, _ = strings.Cut(list, ",")
		f = trimOWS(f)
		if f != "" && validToken(f) {
			dst = append(dst, http.CanonicalHeaderKey(f))
		}
	}
	return dst
}

func unescapeQuoted(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func trimOWS(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// isTchar reports whether c is a tchar (RFC 9110 §5.6.2).
func isTchar(c byte) bool { return tchar[c] }

var tchar = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for _, c := range []byte("!#$%&'*+-.^_`|~") {
		t[c] = true
	}
	return t
}()

func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isTchar(s[i]) {
			return false
		}
	}
	return true
}
