package integration

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
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
	if cs := e.get("/heuristic").Header.Get("Cache-Status"); !strings.Contains(cs, "ttl=35") {
		t.Errorf("heuristic lifetime: Cache-Status %q, want ttl≈3600 (10%% of 10 h)", cs)
	}
}
