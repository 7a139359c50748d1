package httpcache

import "time"

// CacheName is the cache's identifier in Cache-Status (RFC 9211 §2).
const CacheName = "edgehost"

// Fwd values of Cache-Status (RFC 9211 §2.2): why the request went forward.
const (
	FwdBypass   = "bypass"    // configured not to use the cache (a pass route)
	FwdMethod   = "method"    // the method is not cacheable
	FwdURIMiss  = "uri-miss"  // nothing stored for the URL
	FwdVaryMiss = "vary-miss" // stored, but no variant matches the request
	FwdMiss     = "miss"      // the cache cannot tell uri-miss from vary-miss
	FwdRequest  = "request"   // the request asked for it (no-cache, max-age=0)
	FwdStale    = "stale"     // a stored response was stale and revalidated
	FwdPartial  = "partial"   // only part of the response was stored
)

// CacheStatus is one member of a Cache-Status field (RFC 9211):
//
//	edgehost; hit; ttl=93
//	edgehost; hit; ttl=-4; detail=stale        (served in grace)
//	edgehost; fwd=uri-miss; stored
//	edgehost; fwd=stale; fwd-status=304; ttl=120; stored
//	edgehost; fwd=uri-miss; collapsed          (waited for another fetch)
//	edgehost; fwd=bypass
//
// Hit and Fwd exclude each other (§2.1); when Hit is set Fwd and FwdStatus
// are not written. FwdStatus is written when Fwd is set and it is non-zero.
// TTL (whole seconds, rounded down, negative once stale) is written for a
// hit and for a stored response. Key is written as an sf-string, Detail as
// an sf-token when it is one and as an sf-string otherwise; bytes outside
// printable ASCII are replaced by '?'.
type CacheStatus struct {
	Hit       bool
	Fwd       string
	FwdStatus int
	Stored    bool
	Collapsed bool
	TTL       time.Duration
	Key       string
	Detail    string
}

// String returns the field member. It allocates only the result; use
// AppendTo with a reused buffer to avoid that.
func (c CacheStatus) String() string {
	var buf [128]byte
	return string(c.AppendTo(buf[:0]))
}

// AppendTo appends the field member to dst.
func (c CacheStatus) AppendTo(dst []byte) []byte {
	dst = append(dst, CacheName...)
	if c.Hit {
		dst = append(dst, "; hit"...)
	} else if c.Fwd != "" {
		dst = append(dst, "; fwd="...)
		dst = appendTokenOrString(dst, c.Fwd)
		if c.FwdStatus != 0 {
			dst = append(dst, "; fwd-status="...)
			dst = appendInt(dst, int64(c.FwdStatus))
		}
	}
	if c.Stored {
		dst = append(dst, "; stored"...)
	}
	if c.Collapsed {
		dst = append(dst, "; collapsed"...)
	}
	if c.Hit || c.Stored {
		dst = append(dst, "; ttl="...)
		s := int64(c.TTL / time.Second)
		if c.TTL < 0 && c.TTL%time.Second != 0 {
			s-- // round down: 0.5 s past expiry is ttl=-1
		}
		dst = appendInt(dst, s)
	}
	if c.Key != "" {
		dst = append(dst, "; key="...)
		dst = appendSFString(dst, c.Key)
	}
	if c.Detail != "" {
		dst = append(dst, "; detail="...)
		dst = appendTokenOrString(dst, c.Detail)
	}
	return dst
}

// appendTokenOrString writes s as an sf-token (RFC 8941 §3.3.4: ALPHA or
// "*", then tchar / ":" / "/") when it is one, else as an sf-string.
func appendTokenOrString(dst []byte, s string) []byte {
	if isSFToken(s) {
		return append(dst, s...)
	}
	return appendSFString(dst, s)
}

func isSFToken(s string) bool {
	if s == "" {
		return false
	}
	c := s[0]
	if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '*') {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !isTchar(c) && c != ':' && c != '/' {
			return false
		}
	}
	return true
}

// appendSFString writes an sf-string (RFC 8941 §3.3.3): printable ASCII in
// quotes, with " and \ escaped; other bytes become '?'.
func appendSFString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c < 0x20 || c > 0x7e:
			dst = append(dst, '?')
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}
