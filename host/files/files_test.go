package files

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/edgehost/edgehost/host/cache"
	"github.com/edgehost/edgehost/host/config"
	"github.com/edgehost/edgehost/host/demoorigin"
	"github.com/edgehost/edgehost/host/observe"
	"github.com/edgehost/edgehost/host/server"
	"github.com/edgehost/edgehost/plugins/file/reader"
	"github.com/edgehost/edgehost/plugins/pluginapi"
	pluginv1 "github.com/edgehost/edgehost/proto/edgehost/plugin/v1"
)

// newFileServer builds a server on src (with {{SELF}} and {{ORIGIN}}
// replaced) in front of the demo origin, without a plugin manager: the
// test loads the reader table itself, as the watch consumer would.
func newFileServer(tb testing.TB, src string) (*server.Server, *Files) {
	tb.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	origin := httptest.NewServer(demoorigin.New(quiet))
	tb.Cleanup(origin.Close)
	dir := tb.TempDir()
	src = strings.NewReplacer("{{SELF}}", filepath.Join(dir, "self.sock"), "{{ORIGIN}}", origin.URL).Replace(src)
	cfg, diags := config.Parse(filepath.Join(dir, "test.hcl"), []byte(src))
	if diags.HasErrors() {
		tb.Fatal(diags)
	}
	c := cache.New(cache.Options{MemoryBytes: 64 << 20, Logger: quiet})
	m := &observe.Metrics{}
	f := New(Options{Logger: quiet, Cache: c, Metrics: m})
	tb.Cleanup(f.Close)
	s, err := server.New(cfg, server.Options{Logger: quiet, Cache: c, Metrics: m, Features: []server.Feature{f}})
	if err != nil {
		tb.Fatal(err)
	}
	f.cfg.Store(cfg)
	return s, f
}

// startFileServer is newFileServer, listening; it returns the public
// address.
func startFileServer(tb testing.TB, src string) (*Files, string) {
	tb.Helper()
	s, f := newFileServer(tb, src)
	pub, self, err := s.Listen()
	if err != nil {
		tb.Fatal(err)
	}
	go s.Serve(pub, self)
	tb.Cleanup(func() { s.Shutdown(tb.Context()) })
	return f, pub.Addr().String()
}

// loadReader puts a loaded version of a reader in the table.
func loadReader(s *Files, name string, body []byte, mtime time.Time, id, sha string) {
	e := &fileEntry{
		state: &pluginv1.ReaderState{Reader: name, Size: int64(len(body)), IdDigest: id, Sha256: sha, MtimeUnixNano: mtime.UnixNano()},
		body:  body, bodyID: id, bodySHA: sha, loaded: true, mtime: mtime.UTC(),
		lastMod: mtime.UTC().Format(http.TimeFormat), etag: `"` + id + `"`,
	}
	if sha != "" {
		e.etag = `"sha256-` + sha + `"`
	}
	s.put(name, e)
}

// failReader records a failed check of a reader.
func failReader(s *Files, name, code, msg string) {
	s.put(name, &fileEntry{state: &pluginv1.ReaderState{Reader: name, Error: code, Message: msg}})
}

const fileTestConfig = `
listen {
  http = "127.0.0.1:0"
  self = "{{SELF}}"
}
backend "origin" { url = "{{ORIGIN}}" }
backend "dead" { url = "http://127.0.0.1:1" }
route "/" { backend = backend.origin }
route "/dead/" { backend = backend.dead }
plugin "file" {}
file "page" { path = "page.html" }
file "broken" { path = "broken.html" }
file "oops" {
  path         = "oops.txt"
  content_type = "text/plain; charset=utf-8"
}
route "/page" {
  respond {
    file    = file.page
    headers = { "Cache-Control" = "max-age=60", "X-Demo" = "1" }
  }
}
route "/broken" {
  respond { file = file.broken }
}
route "/big" {
  when = !file.page.error && file.page.size > 100
  respond { body = "big page\n" }
}
route "/big" {
  respond { body = "small page\n" }
}
error_page {
  status = [502]
  file   = file.broken
}
error_page {
  status = "5xx"
  file   = file.oops
}
`

func get(t *testing.T, addr, path string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestReaderResponses(t *testing.T) {
	s, addr := startFileServer(t, fileTestConfig)
	page := "<!doctype html><h1>page</h1>\n"
	mtime := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	loadReader(s, "page", []byte(page), mtime, "0123456789abcdef01234567", "")
	failReader(s, "broken", "missing", "broken.html: no such file")

	// The fast path (no conditional) and the full state machine (a
	// conditional that does not match) answer the same.
	fast, fb := get(t, addr, "/page")
	slow, sb := get(t, addr, "/page", "If-None-Match", `"other"`)
	if fast.StatusCode != 200 || slow.StatusCode != 200 || fb != page || sb != page {
		t.Fatalf("fast %d %q, slow %d %q", fast.StatusCode, fb, slow.StatusCode, sb)
	}
	for _, h := range []string{"Content-Type", "Etag", "Last-Modified", "Accept-Ranges", "Cache-Status", "Content-Length", "Cache-Control", "X-Demo"} {
		if f, s := fast.Header.Get(h), slow.Header.Get(h); f != s || f == "" {
			t.Errorf("%s: fast path %q, full path %q", h, f, s)
		}
	}
	if got := fast.Header.Get("Last-Modified"); got != "Fri, 02 Jan 2026 03:04:05 GMT" {
		t.Errorf("Last-Modified = %q", got)
	}
	if got := fast.Header.Get("Content-Type"); got != "text/html; charset=utf-8" {
		t.Errorf("Content-Type = %q", got)
	}

	// The same for a 304: If-None-Match alone takes the fast path, with
	// If-Modified-Since beside it the full one (which then ignores it).
	etag := fast.Header.Get("Etag")
	fast304, _ := get(t, addr, "/page", "If-None-Match", etag)
	slow304, _ := get(t, addr, "/page", "If-None-Match", etag, "If-Modified-Since", "Mon, 01 Jan 2001 00:00:00 GMT")
	if fast304.StatusCode != 304 || slow304.StatusCode != 304 {
		t.Fatalf("304s: fast %d, full %d", fast304.StatusCode, slow304.StatusCode)
	}
	for _, h := range []string{"Content-Type", "Etag", "Last-Modified", "Cache-Status", "Content-Length", "Cache-Control", "X-Demo"} {
		if f, s := fast304.Header.Get(h), slow304.Header.Get(h); f != s {
			t.Errorf("304 %s: fast path %q, full path %q", h, f, s)
		}
	}

	for _, tt := range []struct {
		hdr    []string
		status int
		body   string
	}{
		{[]string{"If-None-Match", `"0123456789abcdef01234567"`}, 304, ""},
		{[]string{"If-Modified-Since", "Fri, 02 Jan 2026 03:04:05 GMT"}, 304, ""},
		{[]string{"If-Modified-Since", "Thu, 01 Jan 2026 00:00:00 GMT"}, 200, page},
		{[]string{"Range", "bytes=2-8"}, 206, page[2:9]},
		{[]string{"Range", "bytes=1000-"}, 416, ""},
	} {
		resp, body := get(t, addr, "/page", tt.hdr...)
		if resp.StatusCode != tt.status || (tt.status != 416 && body != tt.body) {
			t.Errorf("%v: %d %q, want %d %q", tt.hdr, resp.StatusCode, body, tt.status, tt.body)
		}
	}

	// A failing reader: 503, whose error page (5xx → oops) is not loaded
	// either, so the built-in page answers.
	resp, body := get(t, addr, "/broken")
	if resp.StatusCode != 503 || !strings.Contains(body, "edgehost · transaction") {
		t.Errorf("/broken = %d %q, want the built-in 503", resp.StatusCode, body)
	}
	loadReader(s, "oops", []byte("oops\n"), mtime, "aaaaaaaaaaaaaaaaaaaaaaaa", "")
	resp, body = get(t, addr, "/broken")
	if resp.StatusCode != 503 || body != "oops\n" || resp.Header.Get("Content-Type") != "text/plain; charset=utf-8" || resp.Header.Get("Retry-After") == "" {
		t.Errorf("/broken = %d %q %v, want the oops page", resp.StatusCode, body, resp.Header)
	}
	// 502: the first matching page (broken) cannot serve, the next (5xx) does.
	resp, body = get(t, addr, "/dead/x")
	if resp.StatusCode != 502 || body != "oops\n" {
		t.Errorf("/dead/x = %d %q, want the oops page", resp.StatusCode, body)
	}
	loadReader(s, "broken", []byte("broken page\n"), mtime, "bbbbbbbbbbbbbbbbbbbbbbbb", "")
	if _, body := get(t, addr, "/dead/x"); body != "broken page\n" {
		t.Errorf("/dead/x = %q, want the 502 page", body)
	}

	// Reader state in conditions.
	if _, body := get(t, addr, "/big"); body != "small page\n" {
		t.Errorf("/big with a small page = %q", body)
	}
	loadReader(s, "page", []byte(strings.Repeat("x", 200)), mtime, "cccccccccccccccccccccccc", "")
	if _, body := get(t, addr, "/big"); body != "big page\n" {
		t.Errorf("/big with a big page = %q", body)
	}
	// A new version replaces the cached header lines of the fast path.
	if resp, body := get(t, addr, "/page"); len(body) != 200 || resp.Header.Get("Etag") != `"cccccccccccccccccccccccc"` {
		t.Errorf("after an update /page = %d bytes, ETag %s", len(body), resp.Header.Get("Etag"))
	}
}

func TestStaticPath(t *testing.T) {
	rt := &config.Route{Prefix: "/s/", Static: &config.Static{Index: "index.html"}}
	for in, want := range map[string]string{
		"/s/": "index.html", "/s/a.css": "a.css", "/s/d/": "d/index.html", "/s/../x": "../x", "/s//a": "a",
	} {
		if got := staticPath(rt, in); got != want {
			t.Errorf("staticPath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestFilesValue(t *testing.T) {
	v := filesValue(map[string]*fileEntry{
		"a": {state: &pluginv1.ReaderState{Reader: "a", Size: 3, MtimeUnixNano: 5e9, IdDigest: "x"}, body: []byte("abc"), loaded: true},
		"b": {state: &pluginv1.ReaderState{Reader: "b", Error: "missing", Message: "gone"}},
		"c": {state: &pluginv1.ReaderState{Reader: "c", Size: 2}, body: []byte{0xff, 0xfe}, loaded: true},
	})
	a, b, c := v.GetAttr("a"), v.GetAttr("b"), v.GetAttr("c")
	if a.GetAttr("contents").AsString() != "abc" || a.GetAttr("error").True() || fmt.Sprint(a.GetAttr("mtime").AsBigFloat()) != "5" {
		t.Errorf("a = %#v", a)
	}
	if !b.GetAttr("error").True() || b.GetAttr("errmsg").AsString() != "gone" {
		t.Errorf("b = %#v", b)
	}
	if c.GetAttr("contents").AsString() != "" {
		t.Errorf("binary contents exposed: %#v", c)
	}
}

// TestReaderTable feeds the table from the real file plugin, in process
// (reader.Plugin implements pluginapi.File), as the watch consumer does.
func TestReaderTable(t *testing.T) {
	srv, s := newFileServer(t, fileTestConfig)
	t.Cleanup(func() { srv.Shutdown(t.Context()) })
	dir := t.TempDir()
	path := filepath.Join(dir, "page.html")
	if err := os.WriteFile(path, []byte("v1"), 0o644); err != nil {
		t.Fatal(err)
	}
	newPlugin := func() *reader.Plugin {
		p := &reader.Plugin{Settle: time.Millisecond}
		v := cty.ObjectVal(map[string]cty.Value{"reader": cty.MapVal(map[string]cty.Value{
			"page": cty.ObjectVal(map[string]cty.Value{"path": cty.StringVal(path)}),
		})})
		if err := p.Configure(t.Context(), pluginapi.Config{Value: v}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Shutdown(t.Context()) })
		return p
	}
	check := func(p *reader.Plugin) *pluginv1.ReaderState {
		st, err := p.Check(t.Context(), "page")
		if err != nil {
			t.Fatal(err)
		}
		s.updateReader(p, st)
		return st
	}
	p := newPlugin()
	st := check(p)
	e := s.get("page")
	if ok, why := e.usable(); !ok || string(e.body) != "v1" || e.etag != `"`+st.GetIdDigest()+`"` {
		t.Fatalf("after the first state: usable %v (%s), body %q, etag %s", ok, why, e.body, e.etag)
	}

	// A state naming a version the plugin no longer has: not loaded, the
	// previous version serves on.
	s.updateReader(p, &pluginv1.ReaderState{Reader: "page", Size: 2, IdDigest: "ffffffffffffffffffffffff"})
	e = s.get("page")
	if ok, _ := e.usable(); !ok || string(e.body) != "v1" || !strings.Contains(e.loadErr, "no longer current") {
		t.Errorf("after a vanished version: body %q, load error %q", e.body, e.loadErr)
	}

	os.Remove(path)
	os.WriteFile(path, []byte("version two"), 0o644)
	check(p)
	if e := s.get("page"); string(e.body) != "version two" || e.loadErr != "" {
		t.Errorf("after an update: body %q, load error %q", e.body, e.loadErr)
	}

	// Deleted, then a new plugin instance (a relaunch) that never saw the
	// file: the host's copy serves on, marked deleted.
	os.Remove(path)
	check(p)
	if st := s.get("page").state; !st.GetDeleted() || st.GetError() != "" {
		t.Errorf("deleted state = %v", st)
	}
	st = check(newPlugin())
	if st.GetError() != pluginapi.FileErrMissing {
		t.Fatalf("new instance's state = %v, want missing", st)
	}
	e = s.get("page")
	if ok, why := e.usable(); !ok || !e.state.GetDeleted() || string(e.body) != "version two" {
		t.Errorf("after a relaunch: usable %v (%s), state %v, body %q", ok, why, e.state, e.body)
	}
	if v := s.FileVars().GetAttr("page"); !v.GetAttr("deleted").True() || v.GetAttr("contents").AsString() != "version two" {
		t.Errorf("file.page = %#v", v)
	}
}
