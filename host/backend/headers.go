package backend

import (
	"net"
	"net/http"
	"net/textproto"
	"strings"
)

// viaValue is what edgehost adds to Via on requests it forwards
// (RFC 9110 §7.6.3: protocol version and a pseudonym for the proxy).
const viaValue = "1.1 edgehost"

// isHopHeader reports whether k is a hop-by-hop field that a proxy must not
// forward (RFC 9110 §7.6.1: Connection, Proxy-Connection, Keep-Alive, TE,
// Transfer-Encoding, Upgrade), or one consumed by the proxy it is addressed
// to (Proxy-Authenticate, Proxy-Authorization, RFC 9110 §11.7), or Trailer,
// which announces trailers of this hop's framing. Upgrade goes too: edgehost
// does not tunnel protocol switches to origins. Case-insensitive, no
// allocation.
func isHopHeader(k string) bool {
	switch len(k) {
	case 2:
		return strings.EqualFold(k, "Te")
	case 7:
		return strings.EqualFold(k, "Upgrade") || strings.EqualFold(k, "Trailer")
	case 10:
		return strings.EqualFold(k, "Connection") || strings.EqualFold(k, "Keep-Alive")
	case 16:
		return strings.EqualFold(k, "Proxy-Connection")
	case 17:
		return strings.EqualFold(k, "Transfer-Encoding")
	case 18:
		return strings.EqualFold(k, "Proxy-Authenticate")
	case 19:
		return strings.EqualFold(k, "Proxy-Authorization")
	}
	return false
}

// namedIn reports whether the field k is named by one of the Connection
// header values conn (comma-separated tokens, RFC 9110 §7.6.1), which makes
// it hop-by-hop too.
func namedIn(k string, conn []string) bool {
	for _, v := range conn {
		for v != "" {
			var tok string
			tok, v, _ = strings.Cut(v, ",")
			if strings.EqualFold(textproto.TrimString(tok), k) {
				return true
			}
		}
	}
	return false
}

// removeHopByHop deletes the hop-by-hop fields from h (see isHopHeader),
// including every field named in Connection.
func removeHopByHop(h http.Header) {
	conn := h["Connection"]
	for k := range h {
		if isHopHeader(k) || conn != nil && namedIn(k, conn) {
			delete(h, k)
		}
	}
}

// forwardHeader returns the fields of a client's request that go to the
// origin: all but the hop-by-hop ones, with X-Forwarded-For and Via
// appended to (see addForwarded). The value slices are shared with src, not
// copied: neither this package nor the transport writes into them, and
// fields that change get new slices.
func forwardHeader(src http.Header, remoteAddr string) http.Header {
	h := make(http.Header, len(src)+3)
	conn := src["Connection"]
	for k, v := range src {
		if isHopHeader(k) || conn != nil && namedIn(k, conn) {
			continue
		}
		h[k] = v
	}
	addForwarded(h, remoteAddr)
	if _, ok := h["User-Agent"]; !ok {
		// Without this the transport would send Go's own User-Agent.
		h["User-Agent"] = emptyValue
	}
	return h
}

// Shared, read-only header values (see forwardHeader).
var (
	viaOnly    = []string{viaValue}
	emptyValue = []string{""}
)

// clientIP returns the IP of a server-side request's RemoteAddr ("ip:port"),
// or "" when there is none, as for a request that came over a Unix socket.
func clientIP(remoteAddr string) string {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil || host == "" {
		return ""
	}
	return host
}

// addForwarded appends the client's IP to X-Forwarded-For (one comma-separated
// line, prior values first, as de-facto practice) and this hop to Via.
// Both are appended to, never replaced: which prior hops to trust is the
// consumer's decision.
func addForwarded(h http.Header, remoteAddr string) {
	if ip := clientIP(remoteAddr); ip != "" {
		if prior, ok := h["X-Forwarded-For"]; ok && len(prior) > 0 {
			h["X-Forwarded-For"] = []string{strings.Join(prior, ", ") + ", " + ip}
		} else {
			h["X-Forwarded-For"] = []string{ip}
		}
	}
	if prior, ok := h["Via"]; ok && len(prior) > 0 {
		// The slice may share a backing array with other header values
		// (Header.Clone), so build a new one.
		h["Via"] = []string{strings.Join(prior, ", ") + ", " + viaValue}
	} else {
		h["Via"] = viaOnly
	}
}
