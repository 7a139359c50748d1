package integration

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// rfcOrigin is an origin whose paths each answer with a scripted handler
// and count their requests, for the RFC 9111 / 9213 rules of issue 14.
type rfcOrigin struct {
	srv *httptest.Server
	mu  sync.Mutex
	n   map[string]int
}

func startRFCOrigin(t *testing.T, routes map[string]func(w http.ResponseWriter, r *http.Request, n int)) *rfcOrigin {
	t.Helper()
	o := &rfcOrigin{n: map[string]int{}}
	o.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.mu.Lock()
		o.n[r.URL.Path]++
		n := o.n[r.URL.Path]
		o.mu.Unlock()
		h, ok := routes[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		h(w, r, n)
	}))
	t.Cleanup(o.srv.Close)
	return o
}

func (o *rfcOrigin) count(path string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.n[path]
}

// rfcConfig is baseConfig without the route's default_ttl and grace: RFC
// 9111 alone decides (the embedded defaults), plus extra blocks.
func rfcConfig(originURL, extra string) string {
	return strings.NewReplacer("  default_ttl = \"2m\"\n", "", "  grace       = \"1h\"\n", "").Replace(baseConfig(originURL, extra))
}

// Issue 14 item 1: no freshness invented by default (RFC 9111 §4.2.1,
// §4.2.2); default_ttl only where a route says so; item 2: an invalid
// Expires is already expired (§5.3).
func TestNoInventedFreshness(t *testing.T) {
	body := func(w http.ResponseWriter, n int) { w.Write([]byte("n=" + string(rune('0'+n)))) }
	lastMod := time.Now().Add(-10 * time.Hour).UTC().Format(http.TimeFormat)
	o := startRFCOrigin(t, map[string]func(http.ResponseWriter, *http.Request, int){
		"/plain":     func(w http.ResponseWriter, r *http.Request, n int) { body(w, n) },
		"/etag":      func(w http.ResponseWriter, r *http.Request, n int) { w.Header().Set("Etag", `"x"`); body(w, n) },
		"/ttl/plain": func(w http.ResponseWriter, r *http.Request, n int) { body(w, n) },
		"/heuristic": func(w http.ResponseWriter, r *http.Request, n int) {
			w.Header().Set("Last-Modified", lastMod)
			body(w, n)
		},
		"/expires-2sp": func(w http.ResponseWriter, r *http.Request, n int) {
			w.Header().Set("Expires", time.Now().Add(time.Hour).UTC().Format("Mon, 02 Jan 2006  15:04:05 GMT"))
			body(w, n)
		},
		"/expires-twice": func(w http.ResponseWriter, r *http.Request, n int) {
			exp := time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)
			w.Header()["Expires"] = []string{exp, exp}
			body(w, n)
		},
		"/max-age-decimal": func(w http.ResponseWriter, r *http.Request, n int) {
			w.Header().Set("Cache-Control", "max-age=3600.0")
			body(w, n)
		},
		"/expires": func(w http.ResponseWriter, r *http.Request, n int) {
			w.Header().Set("Expires", time.Now().Add(time.Hour).UTC().Format(http.TimeFormat))
			body(w, n)
		},
	})
	e := newEdge(t, rfcConfig(o.srv.URL, `
route "/ttl/" {
  backend     = backend.origin
  default_ttl = "5m"
}
`))
	for _, tt := range []struct {
		path   string
		reused bool
	}{
		{"/plain", false},           // no freshness, no validator
		{"/etag", false},            // a validator is no freshness
		{"/expires-2sp", false},     // §5.3: not an HTTP-date
		{"/expires-twice", false},   // §4.2.1: conflicting
		{"/max-age-decimal", false}, // §1.2.2: invalid → stale
		{"/heuristic", true},        // §4.2.2: 10% of 10 h
		{"/expires", true},          // §4.2.1
		{"/ttl/plain", true},        // the route's explicit default_ttl
	} {
		first := e.get(tt.path)
		wantStatus(t, first, 200)
		second := e.get(tt.path)
		wantStatus(t, second, 200)
		cs := second.Header.Get("Cache-Status")
		if got := o.count(tt.path) == 1; got != tt.reused {
			t.Errorf("%s: origin saw %d requests for 2 (reused %v, want %v); Cache-Status %q", tt.path, o.count(tt.path), got, tt.reused, cs)
		}
		if hit := strings.Contains(cs, "; hit"); hit != tt.reused {
			t.Errorf("%s: second Cache-Status %q", tt.path, cs)
		}
	}
	// The ttl is whole seconds, rounded down: 3600 within the first second
	// after the response arrived, then 3599, 3598…
	cs := e.get("/heuristic").Header.Get("Cache-Status")
	var ttl int
	if _, after, ok := strings.Cut(cs, "ttl="); ok {
		fmt.Sscanf(after, "%d", &ttl)
	}
	if ttl < 3500 || ttl > 3600 {
		t.Errorf("heuristic lifetime: Cache-Status %q, want ttl≈3600 (10%% of 10 h)", cs)
	}
}

// Issue 14 item 3: a qualified private or no-cache field is never served
// from the cache (RFC 9111 §5.2.2.7, §5.2.2.4); the rest of the response is.
func TestQualifiedPrivateNoCache(t *testing.T) {
	o := startRFCOrigin(t, map[string]func(http.ResponseWriter, *http.Request, int){
		"/private": func(w http.ResponseWriter, r *http.Request, n int) {
			w.Header().Set("Cache-Control", `max-age=60, private="X-Secret"`)
			w.Header().Set("X-Secret", "token-for-client-1")
			w.Write([]byte("shared body"))
		},
		"/nocache": func(w http.ResponseWriter, r *http.Request, n int) {
			w.Header().Set("Cache-Control", `max-age=60, no-cache="Set-Cookie"`)
			w.Header().Set("Set-Cookie", "session=client-1")
			w.Write([]byte("shared body"))
		},
	})
	e := newEdge(t, rfcConfig(o.srv.URL, ""))
	for _, tt := range []struct{ path, field string }{{"/private", "X-Secret"}, {"/nocache", "Set-Cookie"}} {
		first := e.get(tt.path)
		wantStatus(t, first, 200)
		if first.Header.Get(tt.field) == "" {
			t.Errorf("%s: the client the origin answered lost %s", tt.path, tt.field)
		}
		second := e.get(tt.path)
		wantStatus(t, second, 200)
		if v := second.Header.Get(tt.field); v != "" {
			t.Errorf("%s: %s: %q served from the cache to another client", tt.path, tt.field, v)
		}
		if string(second.Body) != "shared body" || o.count(tt.path) != 1 {
			t.Errorf("%s: body %q after %d origin requests, want the stored one", tt.path, second.Body, o.count(tt.path))
		}
	}
}

// Issue 14 item 4: a 304 updates only the stored response it selects
// (RFC 9111 §4.3.4): one carrying another strong ETag does not relabel
// the old body; edgehost fetches the new one.
func TestNotModifiedOtherETag(t *testing.T) {
	o := startRFCOrigin(t, map[string]func(http.ResponseWriter, *http.Request, int){
		"/doc": func(w http.ResponseWriter, r *http.Request, n int) {
			h := w.Header()
			h.Set("Cache-Control", "max-age=1")
			if n == 1 {
				h.Set("Etag", `"a"`)
				w.Write([]byte("version a"))
				return
			}
			h.Set("Etag", `"b"`)
			if r.Header.Get("If-None-Match") != "" {
				// A broken origin: "not modified", yet another tag.
				h.Set("Cache-Control", "max-age=600")
				w.WriteHeader(http.StatusNotModified)
				return
			}
			w.Write([]byte("version b"))
		},
		"/same": func(w http.ResponseWriter, r *http.Request, n int) {
			h := w.Header()
			h.Set("Etag", `"a"`)
			if r.Header.Get("If-None-Match") == `"a"` {
				h.Set("Cache-Control", "max-age=600")
				w.WriteHeader(http.StatusNotModified)
				return
			}
			h.Set("Cache-Control", "max-age=1")
			w.Write([]byte("version a"))
		},
	})
	e := newEdge(t, rfcConfig(o.srv.URL, "")+"\n")
	wantStatus(t, e.get("/doc"), 200)
	wantStatus(t, e.get("/same"), 200)
	time.Sleep(1100 * time.Millisecond)
	r := e.get("/doc")
	wantStatus(t, r, 200)
	if string(r.Body) != "version b" || r.Header.Get("Etag") != `"b"` {
		t.Errorf("after a 304 with another ETag: %q ETag %s, want version b", r.Body, r.Header.Get("Etag"))
	}
	// The 304 that selects the stored response freshens it.
	r = e.get("/same")
	if string(r.Body) != "version a" {
		t.Errorf("after a matching 304: %q", r.Body)
	}
	before := o.count("/same")
	if r := e.get("/same"); !strings.Contains(r.Header.Get("Cache-Status"), "hit") || o.count("/same") != before {
		t.Errorf("freshened response not reused: %s", r.Header.Get("Cache-Status"))
	}
}

// Issue 14 item 5: CDN-Cache-Control and the configured targeted fields
// (RFC 9213) take precedence over Cache-Control and Expires for edgehost,
// and are not passed on to clients.
func TestTargetedCacheControl(t *testing.T) {
	o := startRFCOrigin(t, map[string]func(http.ResponseWriter, *http.Request, int){
		"/cdn": func(w http.ResponseWriter, r *http.Request, n int) {
			w.Header().Set("Cache-Control", "no-store")
			w.Header().Set("Cdn-Cache-Control", "max-age=600")
			w.Write([]byte("cdn"))
		},
		"/cdn-no-store": func(w http.ResponseWriter, r *http.Request, n int) {
			w.Header().Set("Cache-Control", "public, max-age=600")
			w.Header().Set("CDN-Cache-Control", "no-store")
			w.Write([]byte("x"))
		},
		"/own": func(w http.ResponseWriter, r *http.Request, n int) {
			w.Header().Set("Cache-Control", "max-age=600")
			w.Header().Set("Cdn-Cache-Control", "max-age=600")
			w.Header().Set("Edgehost-Cache-Control", "no-store")
			w.Write([]byte("x"))
		},
		"/invalid": func(w http.ResponseWriter, r *http.Request, n int) {
			w.Header().Set("Cache-Control", "no-store")
			w.Header().Set("Cdn-Cache-Control", "Max-Age=600") // not a Dictionary: ignored
			w.Write([]byte("x"))
		},
	})
	e := newEdge(t, rfcConfig(o.srv.URL, `
cache {
  targeted_fields = ["Edgehost-Cache-Control", "CDN-Cache-Control"]
}
`))
	for _, tt := range []struct {
		path   string
		reused bool
	}{
		{"/cdn", true},
		{"/cdn-no-store", false},
		{"/own", false},
		{"/invalid", false},
	} {
		first := e.get(tt.path)
		second := e.get(tt.path)
		wantStatus(t, second, 200)
		if got := o.count(tt.path) == 1; got != tt.reused {
			t.Errorf("%s: %d origin requests for 2, want reused %v", tt.path, o.count(tt.path), tt.reused)
		}
		for _, r := range []result{first, second} {
			for _, f := range []string{"Cdn-Cache-Control", "Edgehost-Cache-Control"} {
				if v := r.Header.Get(f); v != "" {
					t.Errorf("%s: %s: %q passed on to the client", tt.path, f, v)
				}
			}
		}
	}
}

// Issue 14 item 6: an interim response (103 Early Hints) from the origin
// reaches the client before the final one, on a miss and on a pass; it is
// never cached (a hit has none).
func TestEarlyHints(t *testing.T) {
	page := func(w http.ResponseWriter, r *http.Request, n int) {
		w.Header().Set("Link", "</style.css>; rel=preload; as=style")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Link")
		w.Header().Set("Cache-Control", "max-age=60")
		w.Write([]byte("page"))
	}
	o := startRFCOrigin(t, map[string]func(http.ResponseWriter, *http.Request, int){"/page": page, "/pass/page": page})
	e := newEdge(t, rfcConfig(o.srv.URL, `
route "/pass/" {
  backend = backend.origin
  pass    = true
}
`))
	get := func(path string) (interim []string, body string, cs string) {
		t.Helper()
		trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
			interim = append(interim, strconv.Itoa(code)+" "+h.Get("Link"))
			return nil
		}}
		req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", e.url(path), nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.Header.Get("Link") != "" {
			t.Errorf("%s: the interim response's Link leaked into the final one", path)
		}
		return interim, string(b), resp.Header.Get("Cache-Status")
	}
	want := []string{"103 </style.css>; rel=preload; as=style"}
	if interim, body, cs := get("/page"); !slices.Equal(interim, want) || body != "page" {
		t.Errorf("miss: interim %q body %q (%s), want %q", interim, body, cs, want)
	}
	if interim, body, cs := get("/page"); len(interim) != 0 || body != "page" || !strings.Contains(cs, "hit") {
		t.Errorf("hit: interim %q body %q (%s), want none from the cache", interim, body, cs)
	}
	if interim, body, cs := get("/pass/page"); !slices.Equal(interim, want) || body != "page" {
		t.Errorf("pass: interim %q body %q (%s), want %q", interim, body, cs, want)
	}
}

// Issue 14 item 6: a response whose Transfer-Encoding edgehost does not
// implement cannot be framed or decoded: it is answered 502 (RFC 9110
// §15.6.3, RFC 9112 §6.1), never stored, and the next request asks again.
func TestUnknownTransferEncoding(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var served atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			served.Add(1)
			go func() {
				defer c.Close()
				buf := make([]byte, 4096)
				c.Read(buf)
				c.Write([]byte("HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nTransfer-Encoding: x-custom\r\n\r\nbody"))
			}()
		}
	}()
	e := newEdge(t, rfcConfig("http://"+ln.Addr().String(), ""))
	for i := 1; i <= 2; i++ {
		r := e.get("/te")
		if r.Status != http.StatusBadGateway {
			t.Fatalf("request %d: %d %q, want 502", i, r.Status, r.Body)
		}
		if served.Load() != int64(i) {
			t.Errorf("request %d: origin saw %d connections, want %d (stored?)", i, served.Load(), i)
		}
	}
}

// Issue 14 item 7: Cache-Status (RFC 9211) and the log say exactly what
// happened.
func TestCacheStatusExact(t *testing.T) {
	o := startRFCOrigin(t, map[string]func(http.ResponseWriter, *http.Request, int){
		"/vary": func(w http.ResponseWriter, r *http.Request, n int) {
			w.Header().Set("Cache-Control", "max-age=60")
			w.Header().Set("Vary", "Accept-Language")
			w.Write([]byte("lang " + r.Header.Get("Accept-Language")))
		},
		"/aged": func(w http.ResponseWriter, r *http.Request, n int) {
			w.Header().Set("Cache-Control", "max-age=600")
			w.Header().Set("Age", "100") // an upstream cache kept it 100 s
			w.Write([]byte("aged"))
		},
		"/flip": func(w http.ResponseWriter, r *http.Request, n int) {
			if n == 1 {
				w.Header().Set("Cache-Control", "no-store")
			} else {
				w.Header().Set("Cache-Control", "max-age=60")
			}
			w.Write([]byte("flip"))
		},
	})
	e := newEdge(t, rfcConfig(o.srv.URL, ""))

	// A miss that is stored advertises ranges as its hits will.
	miss := e.get("/aged")
	if miss.Header.Get("Accept-Ranges") != "bytes" {
		t.Errorf("stored miss lacks Accept-Ranges: %v", miss.Header)
	}
	// RFC 9111 §4.2.3, §5.1: a miss passes the upstream age on, corrected.
	if age, _ := strconv.Atoi(miss.Header.Get("Age")); age < 100 {
		t.Errorf("miss Age %q, want ≥ 100", miss.Header.Get("Age"))
	}
	if hit := e.get("/aged"); hit.Header.Get("Accept-Ranges") != "bytes" || hit.Header.Get("Age") == "" {
		t.Errorf("hit headers %v", hit.Header)
	}

	// RFC 9211 §2.2: the second variant of a Vary response is a vary-miss.
	if cs := e.get("/vary", "Accept-Language", "en").Header.Get("Cache-Status"); !strings.Contains(cs, "fwd=uri-miss") {
		t.Errorf("first variant: %s", cs)
	}
	if cs := e.get("/vary", "Accept-Language", "fr").Header.Get("Cache-Status"); !strings.Contains(cs, "fwd=vary-miss") || !strings.Contains(cs, "stored") {
		t.Errorf("second variant: %s, want fwd=vary-miss; stored", cs)
	}

	// After an unstorable response, the next fetch is stored: it says so,
	// not detail=uncacheable.
	e.get("/flip")
	cs := e.get("/flip").Header.Get("Cache-Status")
	if !strings.Contains(cs, "stored") || strings.Contains(cs, "uncacheable") {
		t.Errorf("stored fetch after an unstorable one: %s", cs)
	}
	if cs := e.get("/flip").Header.Get("Cache-Status"); !strings.Contains(cs, "hit") {
		t.Errorf("then: %s, want a hit", cs)
	}

	// A fast-path hit is logged with the Host as the client sent it.
	wantStatus(t, e.get("/aged"), 200)
	lg := e.admin("GET", "/log", "")
	host := `"host":"` + e.HTTP + `"`
	var hits, withPort int
	for _, line := range strings.Split(string(lg.Body), "\n") {
		if strings.Contains(line, `"url":"/aged"`) && strings.Contains(line, `"cache":"hit"`) {
			hits++
			if strings.Contains(line, host) {
				withPort++
			}
		}
	}
	if hits == 0 || withPort != hits {
		t.Errorf("%d of %d hit rows carry %s:\n%s", withPort, hits, host, lg.Body)
	}
}
