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

// hopHeaders are the hop-by-hop fields a proxy must not forward
// (RFC 9110 §7.6.1: Connection, Proxy-Connection, Keep-Alive, TE,
// Transfer-Encoding, Upgrade), plus the two that are consumed by the
// proxy they are addressed to (Proxy-Authenticate, Proxy-Authorization,
// RFC 9110 §11.7) and Trailer, which announces trailers of this hop's
// framing. The keys are in canonical form.
var hopHeaders = [...]string{
	"Connection",
	"Proxy-Connection",
	"Keep-Alive",
	"Proxy-Authenticate",
	"Proxy-Authorization",
	"Te",
	"Trailer",
	"Transfer-Encoding",
	"Upgrade",
}

// removeHopByHop deletes the hop-by-hop fields from h, including every field
// named in Connection (RFC 9110 §7.6.1). Upgrade goes too: edgehost does not
// tunnel protocol switches to origins.
func removeHopByHop(h http.Header) {
	for _, v := range h["Connection"] {
		for v != "" {
			var tok string
			tok, v, _ = strings.Cut(v, ",")
			tok = textproto.TrimString(tok)
			if tok != "" {
				delete(h, textproto.CanonicalMIMEHeaderKey(tok))
			}
		}
	}
	for _, k := range hopHeaders {
		delete(h, k)
	}
}

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
		h["Via"] = []string{viaValue}
	}
}
