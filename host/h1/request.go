package h1

import (
	"bytes"
	"strconv"
	"strings"
)

// Request is a parsed request head. Its byte slices point into a buffer
// that is reused for the next request on the connection: a Fast handler
// must not keep them.
type Request struct {
	Method     []byte
	Target     []byte // request-target as received
	Path       []byte // Target up to '?' (origin-form)
	Host       []byte
	Minor      int // 0 for HTTP/1.0, 1 for HTTP/1.1
	KeepAlive  bool
	RemoteAddr string

	contentLength int64 // -1: none
	chunked       bool
	expect100     bool

	buf    []byte
	fields []field
}

type field struct{ name, value []byte }

// Header returns the first value of the named field (case-insensitive), or nil.
func (r *Request) Header(name string) []byte {
	for i := range r.fields {
		if equalFold(r.fields[i].name, name) {
			return r.fields[i].value
		}
	}
	return nil
}

// Has reports whether the named field is present.
func (r *Request) Has(name string) bool {
	for i := range r.fields {
		if equalFold(r.fields[i].name, name) {
			return true
		}
	}
	return false
}

// HasBody reports whether a body follows the head.
func (r *Request) HasBody() bool { return r.chunked || r.contentLength > 0 }

// NumFields is the number of header fields.
func (r *Request) NumFields() int { return len(r.fields) }

// Field returns the i-th header field as received.
func (r *Request) Field(i int) (name, value []byte) { return r.fields[i].name, r.fields[i].value }

// EqualFold reports whether b equals the ASCII string s, ignoring case.
func EqualFold(b []byte, s string) bool { return equalFold(b, s) }

func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c, d := b[i], s[i]
		if c == d {
			continue
		}
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if 'A' <= d && d <= 'Z' {
			d += 'a' - 'A'
		}
		if c != d {
			return false
		}
	}
	return true
}

// httpError is a malformed request: status and a short reason for the
// client and the log.
type httpError struct {
	status int
	reason string
}

func (e *httpError) Error() string { return strconv.Itoa(e.status) + " " + e.reason }

func bad(reason string) error { return &httpError{400, reason} }

var (
	errTooLarge   = &httpError{431, "request header fields too large"}
	errURITooLong = &httpError{414, "request line too long"}
)

func isTokenChar(c byte) bool {
	return c < 128 && tokenTable[c]
}

var tokenTable = func() (t [128]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return
}()

// parseRequestLine parses "METHOD SP target SP HTTP/1.x" (RFC 9112 §3).
func (r *Request) parseRequestLine(line []byte) error {
	sp1 := bytes.IndexByte(line, ' ')
	if sp1 <= 0 {
		return bad("malformed request line")
	}
	r.Method = line[:sp1]
	for _, c := range r.Method {
		if !isTokenChar(c) {
			return bad("invalid method")
		}
	}
	rest := line[sp1+1:]
	sp2 := bytes.LastIndexByte(rest, ' ')
	if sp2 <= 0 {
		return bad("malformed request line")
	}
	r.Target, rest = rest[:sp2], rest[sp2+1:]
	// HTTP-version = "HTTP/" DIGIT "." DIGIT (RFC 9112 §2.3). A later 1.x
	// is answered as 1.1, the highest minor version we support (RFC 9110
	// §6.2); another major version is 505.
	if len(rest) != 8 || string(rest[:5]) != "HTTP/" || rest[6] != '.' || !isDigit(rest[5]) || !isDigit(rest[7]) {
		return bad("malformed HTTP version")
	}
	if rest[5] != '1' {
		return &httpError{505, "HTTP version not supported"}
	}
	r.Minor = min(int(rest[7]-'0'), 1)
	for _, c := range r.Target {
		if c <= ' ' || c == 0x7f {
			return bad("invalid request target")
		}
	}
	switch {
	case len(r.Target) > 0 && r.Target[0] == '/':
		r.Path = r.Target
		if q := bytes.IndexByte(r.Target, '?'); q >= 0 {
			r.Path = r.Target[:q]
		}
	case bytes.HasPrefix(r.Target, []byte("http://")) || bytes.HasPrefix(r.Target, []byte("https://")):
		// absolute-form (RFC 9112 §3.2.2): the host in the target wins.
	case string(r.Target) == "*" && string(r.Method) == "OPTIONS":
	default:
		return bad("invalid request target")
	}
	return nil
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// addField parses "name: value" (RFC 9112 §5).
func (r *Request) addField(line []byte) error {
	f, err := parseField(line)
	if err != nil {
		return err
	}
	r.fields = append(r.fields, f)
	return nil
}

// parseField parses one field line without its line ending: a token, a
// colon, then a value of visible characters, spaces and tabs (RFC 9112 §5,
// RFC 9110 §5.5). Header and trailer fields alike.
func parseField(line []byte) (field, error) {
	if len(line) > 0 && (line[0] == ' ' || line[0] == '\t') {
		return field{}, bad("obsolete line folding")
	}
	colon := bytes.IndexByte(line, ':')
	if colon <= 0 {
		return field{}, bad("malformed header field")
	}
	name := line[:colon]
	for _, c := range name {
		if !isTokenChar(c) {
			return field{}, bad("invalid header field name")
		}
	}
	value := trimOWS(line[colon+1:])
	for _, c := range value {
		if (c < ' ' && c != '\t') || c == 0x7f {
			return field{}, bad("invalid header field value")
		}
	}
	return field{name, value}, nil
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// finishHead derives host, framing and persistence from the fields.
func (r *Request) finishHead() error {
	r.contentLength = -1
	r.chunked = false
	r.expect100 = false
	r.Host = nil
	hosts := 0
	var te []byte
	conn := 0 // 1 close, 2 keep-alive
	for i := range r.fields {
		f := &r.fields[i]
		switch {
		case equalFold(f.name, "host"):
			hosts++
			r.Host = f.value
		case equalFold(f.name, "content-length"):
			n, err := parseContentLength(f.value)
			if err != nil {
				return err
			}
			if r.contentLength >= 0 && r.contentLength != n {
				return bad("conflicting Content-Length")
			}
			r.contentLength = n
		case equalFold(f.name, "transfer-encoding"):
			if te != nil {
				te = append(append(te, ','), f.value...)
			} else {
				te = f.value
			}
		case equalFold(f.name, "connection"):
			for _, tok := range bytes.Split(f.value, []byte(",")) {
				tok = trimOWS(tok)
				if equalFold(tok, "close") {
					conn = 1
				} else if equalFold(tok, "keep-alive") && conn == 0 {
					conn = 2
				}
			}
		case equalFold(f.name, "expect"):
			if !equalFold(f.value, "100-continue") {
				return &httpError{417, "unsupported expectation"}
			}
			r.expect100 = r.Minor == 1
		}
	}
	if hosts > 1 {
		return bad("more than one Host field")
	}
	if hosts == 0 && r.Minor == 1 {
		return bad("missing Host field")
	}
	if !validHost(r.Host) {
		// The host is part of the cache key: "site/secret" must not be
		// able to make an object of /public answer for /secret/public.
		return bad("invalid Host field")
	}
	if te != nil {
		// Only "chunked" is supported, and it must be the only (final)
		// coding; with Content-Length too the request is refused, not
		// guessed at (RFC 9112 §6.1: request smuggling).
		if r.Minor == 0 {
			return bad("Transfer-Encoding in an HTTP/1.0 request")
		}
		if r.contentLength >= 0 {
			return bad("both Content-Length and Transfer-Encoding")
		}
		if !equalFold(trimOWS(te), "chunked") {
			return &httpError{501, "unsupported transfer coding"}
		}
		r.chunked = true
	}
	if bytes.HasPrefix(r.Target, []byte("http")) {
		rest := r.Target[bytes.Index(r.Target, []byte("://"))+3:]
		end := bytes.IndexAny(rest, "/?")
		if end < 0 {
			end = len(rest)
		}
		r.Host = rest[:end]
		r.Path = []byte("/")
		if end < len(rest) && rest[end] == '/' {
			r.Path = rest[end:]
			if q := bytes.IndexByte(r.Path, '?'); q >= 0 {
				r.Path = r.Path[:q]
			}
		}
	}
	r.KeepAlive = conn == 2 || (r.Minor == 1 && conn != 1)
	return nil
}

// validHost reports whether h is a uri-host with an optional port (RFC
// 9112 §3.2, RFC 3986 §3.2.2): reg-name or IP-literal characters only,
// never a '/', '?', '#', '@' or whitespace.
func validHost(h []byte) bool {
	for _, c := range h {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("-._~!$&'()*+,;=%:[]", c) >= 0:
		default:
			return false
		}
	}
	return true
}

func parseContentLength(v []byte) (int64, error) {
	if len(v) == 0 || len(v) > 18 {
		return 0, bad("invalid Content-Length")
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, bad("invalid Content-Length")
		}
		n = n*10 + int64(c-'0')
	}
	return n, nil
}
