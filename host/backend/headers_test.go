package backend

import (
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
	"testing"
)

func TestForwardHeader(t *testing.T) {
	tests := []struct {
		name       string
		in         http.Header
		remoteAddr string
		want       http.Header
	}{
		{
			name:       "plain",
			in:         http.Header{"Accept": {"*/*"}, "User-Agent": {"curl/8"}},
			remoteAddr: "192.0.2.1:5555",
			want: http.Header{"Accept": {"*/*"}, "User-Agent": {"curl/8"},
				"X-Forwarded-For": {"192.0.2.1"}, "Via": {"1.1 edgehost"}},
		},
		{
			name: "hop-by-hop and Connection-named fields",
			in: http.Header{"Connection": {"keep-alive, X-A", "x-b"}, "X-A": {"1"}, "X-B": {"2"},
				"Keep-Alive": {"timeout=5"}, "Te": {"trailers"}, "Upgrade": {"h2c"}, "X-C": {"3"}},
			remoteAddr: "[2001:db8::1]:443",
			want: http.Header{"X-C": {"3"}, "User-Agent": {""},
				"X-Forwarded-For": {"2001:db8::1"}, "Via": {"1.1 edgehost"}},
		},
		{
			name:       "prior hops appended to, unix socket client",
			in:         http.Header{"X-Forwarded-For": {"10.0.0.1", "10.0.0.2"}, "Via": {"1.0 fred", "1.1 p.example"}},
			remoteAddr: "@",
			want: http.Header{"X-Forwarded-For": {"10.0.0.1", "10.0.0.2"},
				"Via": {"1.0 fred, 1.1 p.example, 1.1 edgehost"}, "User-Agent": {""}},
		},
		{
			name:       "nil header",
			in:         nil,
			remoteAddr: "",
			want:       http.Header{"Via": {"1.1 edgehost"}, "User-Agent": {""}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := tt.in.Clone()
			got := forwardHeader(tt.in, tt.remoteAddr)
			if len(got) != len(tt.want) {
				t.Errorf("forwardHeader = %v, want %v", got, tt.want)
			}
			for k, v := range tt.want {
				if strings.Join(got[k], "|") != strings.Join(v, "|") {
					t.Errorf("%s = %q, want %q", k, got[k], v)
				}
			}
			for k, v := range before {
				if strings.Join(tt.in[k], "|") != strings.Join(v, "|") {
					t.Errorf("input %s changed from %q to %q", k, v, tt.in[k])
				}
			}
		})
	}
}

func TestRemoveHopByHop(t *testing.T) {
	h := http.Header{"Connection": {"close, X-Hop"}, "X-Hop": {"1"}, "Keep-Alive": {"timeout=1"},
		"Transfer-Encoding": {"chunked"}, "Proxy-Authenticate": {"Basic"}, "Content-Type": {"text/plain"}}
	removeHopByHop(h)
	if len(h) != 1 || h.Get("Content-Type") != "text/plain" {
		t.Errorf("after removeHopByHop: %v, want only Content-Type", h)
	}
}

func TestIsHopHeader(t *testing.T) {
	for _, k := range []string{"Connection", "connection", "Proxy-Connection", "Keep-Alive", "TE", "te",
		"Transfer-Encoding", "Upgrade", "Trailer", "Proxy-Authenticate", "Proxy-Authorization"} {
		if !isHopHeader(k) {
			t.Errorf("isHopHeader(%q) = false, want true", k)
		}
	}
	for _, k := range []string{"", "T", "Tea", "Content-Length", "Authorization", "Trailers", "Upgrade-Insecure-Requests", "Via"} {
		if isHopHeader(k) {
			t.Errorf("isHopHeader(%q) = true, want false", k)
		}
	}
}

func TestForwardHeaderAllocs(t *testing.T) {
	in := http.Header{"Accept": {"*/*"}, "User-Agent": {"curl/8"}, "Connection": {"keep-alive"},
		"Accept-Encoding": {"gzip"}, "Cookie": {"a=b"}}
	got := testing.AllocsPerRun(100, func() { forwardHeader(in, "192.0.2.1:5555") })
	// The map (header and one group) and X-Forwarded-For's slice.
	if got > 3 {
		t.Errorf("forwardHeader allocates %v times, want at most 3", got)
	}
}

// FuzzForwardHeader: whatever Connection says, no hop-by-hop field and no
// field it names reaches the origin, and Via always ends with this hop.
func FuzzForwardHeader(f *testing.F) {
	f.Add("keep-alive, X-Secret", "X-Secret", "192.0.2.1:1")
	f.Add("close", "Te", "[::1]:80")
	f.Add(" , ,x-a,,", "X-A", "@")
	f.Add("upgrade", "Upgrade", "garbage")
	f.Fuzz(func(t *testing.T, conn, key, remote string) {
		in := http.Header{"Connection": {conn}, "X-End": {"1"}}
		if key != "" {
			in[key] = []string{"v"}
		}
		h := forwardHeader(in, remote)
		for k := range h {
			if isHopHeader(k) {
				t.Errorf("hop-by-hop %q forwarded", k)
			}
			for _, tok := range strings.Split(conn, ",") {
				if tok = textproto.TrimString(tok); tok != "" && strings.EqualFold(tok, k) {
					t.Errorf("%q named in Connection %q but forwarded", k, conn)
				}
			}
		}
		via := h["Via"]
		if len(via) != 1 || !strings.HasSuffix(via[0], viaValue) {
			t.Errorf("Via = %q, want it to end with %q", via, viaValue)
		}
		removeHopByHop(in)
		if _, ok := in["Connection"]; ok {
			t.Error("removeHopByHop kept Connection")
		}
	})
}

// FuzzNewURL: New never panics on a URL, and a URL it accepts yields
// well-formed request URLs for the origin.
func FuzzNewURL(f *testing.F) {
	for _, s := range []string{"http://127.0.0.1:18081", "http://o/base/", "unix:///run/o.sock",
		"http://[::1]:80/a%20b", "unix:o.sock", "http://o:99999", "https://o", "http://u@o"} {
		f.Add(s, "/p/q", "a=1")
	}
	f.Fuzz(func(t *testing.T, raw, path, query string) {
		b, err := New(Config{Name: "f", URL: raw}, nil)
		if err != nil {
			return
		}
		defer b.Close()
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		u := b.target(path, "", url.PathEscape(query))
		s := u.String()
		back, err := url.Parse(s)
		if err != nil {
			t.Fatalf("target %q does not parse: %v", s, err)
		}
		if back.Host != b.host || back.Scheme != "http" {
			t.Errorf("target %q: host %q scheme %q, want %q http", s, back.Host, back.Scheme, b.host)
		}
		if !strings.HasPrefix(back.Path, b.basePath) {
			t.Errorf("target %q: path %q lost the base path %q", s, back.Path, b.basePath)
		}
	})
}
