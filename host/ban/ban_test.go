package ban

import (
	"errors"
	"net/http"
	"strings"
	"testing"
)

// obj is a stored object with the request that stored it.
type obj struct {
	url    string
	req    http.Header
	status int
	resp   http.Header
}

func (o obj) URL() string                   { return o.url }
func (o obj) ReqHeader(name string) string  { return first(o.req, name) }
func (o obj) Status() int                   { return o.status }
func (o obj) RespHeader(name string) string { return first(o.resp, name) }

// first indexes the map directly, without Get's canonicalization, to prove
// that names arrive canonical.
func first(h http.Header, name string) string {
	if v := h[name]; len(v) > 0 {
		return v[0]
	}
	return ""
}

func TestParseString(t *testing.T) {
	tests := []struct {
		in, want    string
		requestFree bool
	}{
		{`req.url ~ "^/img/" && obj.http.content-type == "image/png"`, `req.url ~ "^/img/" && obj.http.content-type == "image/png"`, false},
		{`req.url~^/img/&&obj.http.Content-Type==image/png`, `req.url ~ "^/img/" && obj.http.content-type == "image/png"`, false},
		{"obj.status >= 500", "obj.status >= 500", true},
		{`obj.status=="404"`, "obj.status == 404", true},
		{"  obj.http.X-Tag   !=   a\t&&\n obj.status<300 ", `obj.http.x-tag != "a" && obj.status < 300`, true},
		{`req.http.HOST == example.com`, `req.http.host == "example.com"`, false},
		{`obj.http.x-a == ""`, `obj.http.x-a == ""`, true},
		// Escapes: \" and \\ only; other backslashes stay (regexps).
		{`req.url ~ "\.png$"`, `req.url ~ "\.png$"`, false},
		{`obj.http.x == "a\"b\\c"`, `obj.http.x == "a\"b\c"`, true},
		{`obj.http.x == "end\\"`, `obj.http.x == "end\\"`, true},
		{`req.url !~ "a b && c"`, `req.url !~ "a b && c"`, false},
	}
	for _, tt := range tests {
		b, err := Parse(tt.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.in, err)
			continue
		}
		if got := b.String(); got != tt.want {
			t.Errorf("Parse(%q).String()\n got %s\nwant %s", tt.in, got, tt.want)
		}
		if got := b.RequestFree(); got != tt.requestFree {
			t.Errorf("Parse(%q).RequestFree() = %v", tt.in, got)
		}
		// The canonical form is a fixed point.
		b2, err := Parse(b.String())
		if err != nil || b2.String() != b.String() {
			t.Errorf("reparse of %q: %v, %v", b.String(), b2, err)
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{``, `ban: 1:1: expected field, found end of expression`},
		{`   `, `ban: 1:4: expected field, found end of expression`},
		{`req.http.host =~ "x"`, `ban: 1:15: expected operator, found "=~"`},
		{`req.url = "x"`, `ban: 1:9: expected operator, found "="`},
		{`req.url "x"`, `ban: 1:9: expected operator, found "\"x\""`},
		{`req.url`, `ban: 1:8: expected operator, found end of expression`},
		{`req.url ==`, `ban: 1:11: expected value, found end of expression`},
		{`req.url == && obj.status == 1`, `ban: 1:12: expected value, found "&&"`},
		{`req.uri == /`, `ban: 1:1: unknown field "req.uri" (want req.url, req.http.NAME, obj.status or obj.http.NAME)`},
		{`obj.ttl < 5`, `ban: 1:1: unknown field "obj.ttl" (want req.url, req.http.NAME, obj.status or obj.http.NAME)`},
		{`req.http. == a`, `ban: 1:1: bad header name "" in "req.http."`},
		{`obj.http.a.b == a`, `ban: 1:1: bad header name "a.b" in "obj.http.a.b"`},
		{`"x" == y`, `ban: 1:1: expected field, found "\"x\""`},
		{`obj.status ~ 5`, `ban: 1:12: operator "~" does not apply to obj.status (want ==, !=, <, >, <= or >=)`},
		{`req.url < 5`, `ban: 1:9: operator "<" applies only to obj.status (want ==, !=, ~ or !~)`},
		{`obj.status == ok`, `ban: 1:15: expected a status code, found "ok"`},
		{`obj.status == 1000`, `ban: 1:15: expected a status code, found "1000"`},
		{`obj.status == -1`, `ban: 1:15: expected a status code, found "-1"`},
		{`req.url ~ "("`, "ban: 1:11: bad regular expression: error parsing regexp: missing closing ): `(`"},
		{`req.url == "abc`, `ban: 1:12: unterminated string`},
		{`req.url ~ "` + strings.Repeat(`.{1000}`, 500) + `"`, `ban: 1:11: bad regular expression: regular expressions too large: more than 20000 instructions in all once their repeats are expanded`},
		{`req.url == "abc\"`, `ban: 1:12: unterminated string`},
		{`req.url == a || req.url == b`, `ban: 1:14: expected "&&" or end of expression, found "||"`},
		{`req.url == a b`, `ban: 1:14: expected "&&" or end of expression, found "b"`},
		{`req.url == a &&`, `ban: 1:16: expected field, found end of expression`},
		{"req.url == a &&\n  obj.status >> 5", `ban: 2:14: expected operator, found ">>"`},
	}
	for _, tt := range tests {
		b, err := Parse(tt.in)
		if err == nil {
			t.Errorf("Parse(%q) = %s, want error %s", tt.in, b, tt.want)
			continue
		}
		if got := err.Error(); got != tt.want {
			t.Errorf("Parse(%q)\n got %s\nwant %s", tt.in, got, tt.want)
		}
		var se *SyntaxError
		if !errors.Is(err, ErrSyntax) || !errors.As(err, &se) {
			t.Errorf("Parse(%q): %T is not a *SyntaxError wrapping ErrSyntax", tt.in, err)
		}
	}
}

func TestMatch(t *testing.T) {
	png := obj{
		url:    "/img/cat.png?x=1",
		req:    http.Header{"Host": {"example.com"}, "X-Forwarded-Proto": {"https"}},
		status: 200,
		resp:   http.Header{"Content-Type": {"image/png"}, "X-Tag": {"a b c"}},
	}
	css := obj{url: "/css/site.css", req: http.Header{"Host": {"example.org"}}, status: 404, resp: http.Header{}}
	tests := []struct {
		expr     string
		png, css bool
	}{
		{`req.url ~ "^/img/" && obj.http.content-type == "image/png"`, true, false},
		{`req.url ~ ^/img/ && obj.http.content-type == image/gif`, false, false},
		{`req.url ~ \.css$`, false, true},
		{`req.url !~ \.css$`, true, false},
		{`req.url == /css/site.css`, false, true},
		{`req.url != /css/site.css`, true, false},
		{`req.http.host == example.com`, true, false},
		{`req.http.Host ~ "example\.(com|org)$"`, true, true},
		{`req.http.x-forwarded-proto == https`, true, false},
		{`obj.status == 404`, false, true},
		{`obj.status != 404`, true, false},
		{`obj.status < 300`, true, false},
		{`obj.status > 200`, false, true},
		{`obj.status <= 200`, true, false},
		{`obj.status >= 404`, false, true},
		// A missing header reads as "".
		{`obj.http.x-tag == ""`, false, true},
		{`obj.http.x-tag ~ "(^| )b( |$)"`, true, false},
		{`obj.http.x-tag !~ b`, false, true},
		// Regexps are unanchored unless they say so.
		{`req.url ~ cat`, true, false},
	}
	for _, tt := range tests {
		b, err := Parse(tt.expr)
		if err != nil {
			t.Fatalf("Parse(%q): %v", tt.expr, err)
		}
		if got := b.Match(png); got != tt.png {
			t.Errorf("%s on png = %v, want %v", tt.expr, got, tt.png)
		}
		if got := b.Match(css); got != tt.css {
			t.Errorf("%s on css = %v, want %v", tt.expr, got, tt.css)
		}
	}
}

func FuzzBanParse(f *testing.F) {
	for _, s := range []string{
		`req.url ~ "^/img/" && obj.http.content-type == "image/png"`,
		`obj.status >= 500`, `req.http.host == "a\"b\\"`, `req.url ~ \.png$`,
		`req.url == "abc`, `obj.status == x`, "req.url == a &&\nobj.status>1",
	} {
		f.Add(s)
	}
	o := obj{url: "/a", req: http.Header{"Host": {"h"}}, status: 200, resp: http.Header{"X": {"y"}}}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := Parse(s)
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) || se.Line < 1 || se.Col < 1 {
				t.Fatalf("Parse(%q): bad error %v", s, err)
			}
			return
		}
		// The canonical text parses back to the same ban.
		b2, err := Parse(b.String())
		if err != nil {
			t.Fatalf("Parse(%q).String() = %q does not parse: %v", s, b.String(), err)
		}
		if b2.String() != b.String() || b2.RequestFree() != b.RequestFree() || b2.Match(o) != b.Match(o) {
			t.Fatalf("round trip of %q: %q vs %q", s, b.String(), b2.String())
		}
	})
}
