package integration

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/andybalholm/brotli"
)

// procOrigin serves text pages plain, gzip and br, ESI pages and corrupt
// bodies, and counts the fetches of each path.
type procOrigin struct {
	URL   string
	count map[string]*atomic.Int64
}

const procPage = "<html><body>" + "hello processors, hello world. " + "</body></html>\n"

func gz(s string) []byte {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	io.WriteString(zw, s)
	zw.Close()
	return b.Bytes()
}

func br(s string) []byte {
	var b bytes.Buffer
	w := brotli.NewWriter(&b)
	io.WriteString(w, s)
	w.Close()
	return b.Bytes()
}

func startProcOrigin(t *testing.T) *procOrigin {
	t.Helper()
	big := strings.Repeat(procPage, 1000) // 64 KiB of text, several chunks
	pages := map[string]struct {
		ce, ct string
		body   []byte
	}{
		"/comp/page":              {"", "text/html", []byte(big)},
		"/comp/logo.png":          {"", "image/png", []byte("\x89PNG not text")},
		"/comp/slow":              {"", "text/plain", []byte(big)},
		"/plain/page.gz":          {"gzip", "text/html", gz(big)},
		"/plain/page.br":          {"br", "text/html", br(big)},
		"/plain/corrupt.gz":       {"gzip", "text/html", append(gz(big)[:10], []byte("this is not deflate data at all")...)},
		"/plain/trunc.gz":         {"gzip", "text/html", gz(big)[:len(gz(big))/2]},
		"/plain/chunked/page.gz":  {"gzip", "text/html", gz(big)},
		"/plain/chunked/trunc.gz": {"gzip", "text/html", gz(big)[:len(gz(big))/2]},
		"/keep/page.gz":           {"gzip", "text/html", gz(big)},
		"/esi/page": {"gzip", "text/html", gz(`<p>top</p><esi:include src="/esi/frag"/>` +
			`<esi:remove>REMOVED</esi:remove><!--esi <p>inside</p>-->` +
			`<esi:include src="/esi/missing" onerror="continue"/><p>end</p>`)},
		"/esi/frag":   {"", "text/html", []byte(`<b>fragment</b>`)},
		"/esi/broken": {"", "text/html", []byte(`<p>a</p><esi:include src="/esi/missing"/>`)},
		"/esi/loop":   {"", "text/html", []byte(`x<esi:include src="/esi/loop" onerror="continue"/>`)},
		"/rx/page":    {"gzip", "text/plain", gz("colour colour 2026")},
	}
	o := &procOrigin{count: map[string]*atomic.Int64{}}
	for p := range pages {
		o.count[p] = &atomic.Int64{}
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pg, ok := pages[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		o.count[r.URL.Path].Add(1)
		if strings.HasSuffix(r.URL.Path, "/slow") {
			time.Sleep(300 * time.Millisecond)
		}
		h := w.Header()
		h.Set("Cache-Control", "max-age=600")
		h.Set("Content-Type", pg.ct)
		h.Set("Etag", `"v1"`)
		if pg.ce != "" {
			h.Set("Content-Encoding", pg.ce)
		}
		if strings.Contains(r.URL.Path, "/chunked/") {
			// No Content-Length: the host streams the chain's output.
			w.WriteHeader(200)
			w.(http.Flusher).Flush()
		} else {
			h.Set("Content-Length", strconv.Itoa(len(pg.body)))
		}
		w.Write(pg.body)
	}))
	t.Cleanup(srv.Close)
	o.URL = srv.URL
	return o
}

const procConfig = `
route "/comp/" {
  backend = backend.origin
  processors {
    fetch = ["gzip"]
  }
}

route "/plain/" {
  backend = backend.origin
  processors {
    fetch = ["gunzip", "unbrotli"]
    store = "chain"
  }
}

route "/keep/" {
  backend = backend.origin
  processors {
    fetch = ["regex"]
    regex {
      pattern = "hello"
      replace = "HELLO"
    }
  }
}

route "/esi/" {
  backend = backend.origin
  processors {
    deliver = ["esi"]
  }
}

route "/rx/" {
  backend = backend.origin
  processors {
    deliver = ["regex"]
    regex {
      pattern = "colou?r"
      replace = "color"
    }
    regex {
      pattern = "(\\d+)"
      replace = "year $1"
    }
  }
}
`

func gunzipBody(t *testing.T, b []byte) string {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("not gzip: %v (%q)", err, b[:min(len(b), 40)])
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// Built-ins on fetch and delivery through the real server, and
// Accept-Encoding negotiation (issue 16).
func TestProcessorBuiltins(t *testing.T) {
	o := startProcOrigin(t)
	e := newEdge(t, baseConfig(o.URL, procConfig))
	big := strings.Repeat(procPage, 1000)

	// gzip on fetch: plain text is stored gzip; a gzip client gets it as
	// stored, a client without gzip gets it decoded, both from one fetch.
	r := e.get("/comp/page", "Accept-Encoding", "gzip")
	if r.Status != 200 || r.Header.Get("Content-Encoding") != "gzip" || gunzipBody(t, r.Body) != big {
		t.Fatalf("miss: %d %v len %d", r.Status, r.Header, len(r.Body))
	}
	r = e.get("/comp/page", "Accept-Encoding", "gzip")
	if r.Header.Get("Content-Encoding") != "gzip" || !strings.Contains(r.Header.Get("Cache-Status"), "hit") || gunzipBody(t, r.Body) != big {
		t.Fatalf("hit: %d %v", r.Status, r.Header)
	}
	if len(r.Body) >= len(big)/4 {
		t.Errorf("stored gzip is %d bytes for %d of text", len(r.Body), len(big))
	}
	r = e.get("/comp/page")
	if r.Status != 200 || r.Header.Get("Content-Encoding") != "" || string(r.Body) != big {
		t.Fatalf("identity client: %d %v len %d", r.Status, r.Header, len(r.Body))
	}
	if !strings.Contains(r.Header.Get("Vary"), "Accept-Encoding") {
		t.Errorf("Vary = %q, want Accept-Encoding", r.Header.Get("Vary"))
	}
	if n := o.count["/comp/page"].Load(); n != 1 {
		t.Errorf("origin fetched /comp/page %d times, want 1", n)
	}
	// Range applies to the representation delivered (the decoded text).
	r = e.get("/comp/page", "Range", "bytes=12-27")
	if r.Status != 206 || string(r.Body) != big[12:28] {
		t.Fatalf("range: %d %q", r.Status, r.Body)
	}
	// A client that refuses identity and takes br gets br made from the
	// stored gzip.
	r = e.get("/comp/page", "Accept-Encoding", "br, identity;q=0")
	if r.Header.Get("Content-Encoding") != "br" {
		t.Fatalf("br client: %v", r.Header)
	}
	if b, err := io.ReadAll(brotli.NewReader(bytes.NewReader(r.Body))); err != nil || string(b) != big {
		t.Fatalf("br body: %v", err)
	}
	// An image is not text: gzip is not placed, never silently.
	r = e.get("/comp/logo.png")
	if r.Header.Get("Content-Encoding") != "" || string(r.Body) != "\x89PNG not text" {
		t.Fatalf("png: %v %q", r.Header, r.Body)
	}

	// gunzip / unbrotli on fetch with store = "chain": stored plain.
	for _, p := range []string{"/plain/page.gz", "/plain/page.br", "/plain/chunked/page.gz"} {
		for i := 0; i < 2; i++ {
			r = e.get(p, "Accept-Encoding", "gzip, br")
			if r.Status != 200 || r.Header.Get("Content-Encoding") != "" || string(r.Body) != big {
				t.Fatalf("%s #%d: %d %v len %d", p, i, r.Status, r.Header, len(r.Body))
			}
		}
		if n := o.count[p].Load(); n != 1 {
			t.Errorf("origin fetched %s %d times, want 1 (stored)", p, n)
		}
	}

	// regex behind gunzip > buffer, gzip re-queued at storage: stored as
	// it came (gzip), rewritten.
	r = e.get("/keep/page.gz", "Accept-Encoding", "gzip")
	r = e.get("/keep/page.gz", "Accept-Encoding", "gzip")
	if r.Header.Get("Content-Encoding") != "gzip" || gunzipBody(t, r.Body) != strings.ReplaceAll(big, "hello", "HELLO") {
		t.Fatalf("keep: %v", r.Header)
	}

	// regex on delivery, rules in order.
	r = e.get("/rx/page")
	if string(r.Body) != "color color year 2026" {
		t.Fatalf("regex: %q", r.Body)
	}
}

// Corrupt or truncated compressed bodies never crash the host and are
// never stored.
func TestProcessorCorruptInput(t *testing.T) {
	o := startProcOrigin(t)
	e := newEdge(t, baseConfig(o.URL, procConfig))
	for _, p := range []string{"/plain/corrupt.gz", "/plain/trunc.gz"} {
		for i := 0; i < 2; i++ {
			if r := e.get(p); r.Status != http.StatusBadGateway {
				t.Fatalf("%s: %d, want 502", p, r.Status)
			}
		}
		if n := o.count[p].Load(); n != 2 {
			t.Errorf("origin fetched %s %d times, want 2 (never stored)", p, n)
		}
	}
	// Streamed (no Content-Length): the client's connection ends
	// uncleanly, and nothing is stored.
	for i := 0; i < 2; i++ {
		req, _ := http.NewRequest("GET", e.url("/plain/chunked/trunc.gz"), nil)
		if resp, err := client.Do(req); err == nil {
			_, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			if rerr == nil && resp.StatusCode == 200 {
				t.Fatalf("a truncated stream ended cleanly")
			}
		}
	}
	if n := o.count["/plain/chunked/trunc.gz"].Load(); n != 2 {
		t.Errorf("origin fetched the truncated stream %d times, want 2 (never stored)", n)
	}
	if r := e.get("/comp/page"); r.Status != 200 {
		t.Fatalf("host unwell after corrupt input: %d", r.Status)
	}
}

// ESI: includes as self-requests (cached on their own), esi:remove,
// <!--esi-->, onerror="continue", depth-limited loops, a failed include.
func TestProcessorESI(t *testing.T) {
	o := startProcOrigin(t)
	e := newEdge(t, baseConfig(o.URL, procConfig))
	want := "<p>top</p><b>fragment</b> <p>inside</p><p>end</p>"
	for i := 0; i < 2; i++ {
		r := e.get("/esi/page")
		if r.Status != 200 || r.Header.Get("Content-Encoding") != "" || string(r.Body) != want {
			t.Fatalf("esi #%d: %d %v %q", i, r.Status, r.Header, r.Body)
		}
	}
	// The page is stored gzip: a gzip client gets the expanded page
	// compressed again.
	r := e.get("/esi/page", "Accept-Encoding", "gzip")
	if r.Header.Get("Content-Encoding") != "gzip" || gunzipBody(t, r.Body) != want {
		t.Fatalf("esi to gzip client: %v", r.Header)
	}
	if n := o.count["/esi/frag"].Load(); n != 1 {
		t.Errorf("fragment fetched %d times, want 1 (cached on its own)", n)
	}
	if r := e.get("/esi/broken"); r.Status != 502 {
		t.Errorf("include without onerror that fails: %d %q, want 502", r.Status, r.Body)
	}
	r = e.get("/esi/loop")
	if r.Status != 200 || !strings.HasPrefix(string(r.Body), "xx") || len(r.Body) > 64 {
		t.Errorf("loop: %d %q", r.Status, r.Body)
	}
}

// Concurrent misses of a route with fetch processors share one origin
// fetch.
func TestProcessorCoalescing(t *testing.T) {
	o := startProcOrigin(t)
	e := newEdge(t, baseConfig(o.URL, procConfig))
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("GET", e.url("/comp/slow"), nil)
			resp, err := client.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || len(b) != len(procPage)*1000 {
				t.Errorf("got %d, %d bytes", resp.StatusCode, len(b))
			}
		}()
	}
	wg.Wait()
	if n := o.count["/comp/slow"].Load(); n != 1 {
		t.Errorf("origin fetched %d times for 8 concurrent misses, want 1", n)
	}
}
