package integration

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// fileAcceptance is the config, as written there.
const fileAcceptance = `
plugin "file" {}

file "error_page" {
  path = "errors/503.html"
  ttl  = "1s"
}

file "logo" {
  path   = "www/logo.svg"
  ttl    = "1s"
  sha256 = true
}

route "/logo.svg" {
  respond {
    status = 200
    file   = file.logo
  }
}

error_page {
  status = "5xx"
  file   = file.error_page
}
`

const (
	logoV1    = `<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"><rect width="8" height="8"/></svg>` + "\n"
	errorPage = "<!doctype html>\n<title>Back soon</title>\n<h1>We will be right back</h1>\n"
)

// newFileEdge writes files (path → contents, relative to the edge's
// directory, where its config lives) and starts edgehost with cfg.
func newFileEdge(t *testing.T, cfg string, files map[string]string) *edge {
	t.Helper()
	e := &edge{t: t, dir: t.TempDir(), HTTP: freePort(t), Admin: freePort(t), Token: "s3cret"}
	e.Self = filepath.Join(e.dir, "var", "self.sock")
	for p, c := range files {
		e.writeFile(p, c)
	}
	e.writeConfig(cfg)
	e.start()
	t.Cleanup(e.stop)
	return e
}

func (e *edge) path(p string) string { return filepath.Join(e.dir, p) }

func (e *edge) writeFile(p, contents string) {
	e.t.Helper()
	full := e.path(p)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(full, []byte(contents), 0o644); err != nil {
		e.t.Fatal(err)
	}
}

// fileState is a reader as GET /files shows it.
type fileState struct {
	Name        string `json:"name"`
	Size        int64  `json:"size"`
	ID          string `json:"id"`
	SHA256      string `json:"sha256"`
	Error       bool   `json:"error"`
	ErrCode     string `json:"error_code"`
	ErrMsg      string `json:"errmsg"`
	Deleted     bool   `json:"deleted"`
	Serving     bool   `json:"serving"`
	LoadedID    string `json:"loaded_id"`
	LoadedBytes int    `json:"loaded_bytes"`
}

func (e *edge) files() map[string]fileState {
	e.t.Helper()
	var list []fileState
	e.adminJSON("/files", &list)
	out := map[string]fileState{}
	for _, f := range list {
		out[f.Name] = f
	}
	return out
}

// eventually polls cond every 20 ms for up to d.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func sha256hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// TestFileAcceptance runs the config on the core acceptance
// config: a reader-backed route with both validators, and the error page.
func TestFileAcceptance(t *testing.T) {
	o := startOrigin(t)
	dead := freePort(t) // nothing listens there: connect fails, 502
	extra := fileAcceptance + fmt.Sprintf(`
backend "dead" { url = "http://%s" }
route "/dead/" { backend = backend.dead }

backend "sick" {
  url = %q
  probe {
    path      = "/status/500"
    interval  = "100ms"
    timeout   = "200ms"
    window    = 2
    threshold = 2
  }
}
route "/sick/" { backend = backend.sick }
`, dead, o.URL)
	e := newFileEdge(t, baseConfig(o.URL, extra), map[string]string{"www/logo.svg": logoV1, "errors/503.html": errorPage})

	r := e.get("/logo.svg")
	wantStatus(t, r, 200)
	if string(r.Body) != logoV1 {
		t.Fatalf("body = %q, want %q", r.Body, logoV1)
	}
	if got := r.Header.Get("Content-Type"); got != "image/svg+xml" {
		t.Errorf("Content-Type = %q", got)
	}
	etag := r.Header.Get("Etag")
	if want := `"sha256-` + sha256hex(logoV1) + `"`; etag != want {
		t.Errorf("ETag = %s, want %s (the sha256, as the reader has sha256 = true)", etag, want)
	}
	fi, _ := os.Stat(e.path("www/logo.svg"))
	lm := r.Header.Get("Last-Modified")
	if want := fi.ModTime().UTC().Format(http.TimeFormat); lm != want {
		t.Errorf("Last-Modified = %q, want the mtime %q", lm, want)
	}

	// 304 on each validator, and a Range.
	wantStatus(t, e.get("/logo.svg", "If-None-Match", etag), 304)
	wantStatus(t, e.get("/logo.svg", "If-Modified-Since", lm), 304)
	wantStatus(t, e.get("/logo.svg", "If-None-Match", `"other"`), 200)
	rr := e.get("/logo.svg", "Range", "bytes=0-9")
	wantStatus(t, rr, 206)
	if string(rr.Body) != logoV1[:10] {
		t.Errorf("range body = %q", rr.Body)
	}
	h := e.do("HEAD", "/logo.svg")
	if h.Status != 200 || len(h.Body) != 0 || h.Header.Get("Content-Length") != fmt.Sprint(len(logoV1)) {
		t.Errorf("HEAD: %d, %d bytes, Content-Length %q", h.Status, len(h.Body), h.Header.Get("Content-Length"))
	}

	// The error page replaces the built-in page of a failing origin: 502
	// (connect refused) and 503 (the probe says it is sick).
	d := e.get("/dead/x")
	wantStatus(t, d, 502)
	if string(d.Body) != errorPage || !strings.HasPrefix(d.Header.Get("Content-Type"), "text/html") {
		t.Errorf("502 answered %q (%s), want the error page", d.Body, d.Header.Get("Content-Type"))
	}
	var sick result
	eventually(t, 5*time.Second, "the sick backend never answered 503", func() bool {
		sick = e.get("/sick/x")
		return sick.Status == 503
	})
	if string(sick.Body) != errorPage || sick.Header.Get("Retry-After") == "" {
		t.Errorf("503 answered %q, Retry-After %q; want the error page and Retry-After", sick.Body, sick.Header.Get("Retry-After"))
	}
	// An origin's own answer is not an error of edgehost's: it passes.
	if s := e.get("/status/404"); s.Status != 404 || string(s.Body) == errorPage {
		t.Errorf("origin's 404 = %d %q", s.Status, s.Body)
	}
}

// TestFileUpdates covers how a reader follows its file: delete + create,
// in-place rewrite (never served half-written), deletion (last contents
// kept) and the synchronous check from the admin API and the CLI.
func TestFileUpdates(t *testing.T) {
	o := startOrigin(t)
	extra := fileAcceptance + `
file "motd" {
  path = "motd.txt"
  ttl  = "1h"
}
route "/motd" {
  respond { file = file.motd }
}
`
	// A writer pausing longer than the settle time could be caught half
	// way; the test's writer pauses 30 ms, on a machine that may be busy.
	extra = strings.Replace(extra, `plugin "file" {}`, `plugin "file" { settle = "400ms" }`, 1)
	e := newFileEdge(t, baseConfig(o.URL, extra), map[string]string{"www/logo.svg": logoV1, "errors/503.html": errorPage, "motd.txt": "hello\n"})
	body := func(p string) string { return string(e.get(p).Body) }

	// Delete + create at the same path.
	os.Remove(e.path("www/logo.svg"))
	logoV2 := strings.Replace(logoV1, `width="8"`, `width="9"`, 1)
	e.writeFile("www/logo.svg", logoV2)
	eventually(t, 5*time.Second, "delete + create not picked up", func() bool { return body("/logo.svg") == logoV2 })
	if got, want := e.get("/logo.svg").Header.Get("Etag"), `"sha256-`+sha256hex(logoV2)+`"`; got != want {
		t.Errorf("ETag after update = %s, want %s", got, want)
	}

	// In-place rewrite, written slowly in pieces: every response is the
	// old or the new contents, never a part.
	logoV3 := strings.Repeat("<!-- v3 -->", 400) + "\n"
	var seen sync.Map
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			seen.Store(body("/logo.svg"), true)
			time.Sleep(5 * time.Millisecond)
		}
	}()
	f, err := os.OpenFile(e.path("www/logo.svg"), os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	const pieces = 10
	step := len(logoV3) / pieces
	for i := 0; i < len(logoV3); i += step {
		f.Write([]byte(logoV3[i:min(i+step, len(logoV3))]))
		time.Sleep(30 * time.Millisecond)
	}
	f.Close()
	eventually(t, 5*time.Second, "in-place rewrite not picked up", func() bool { return body("/logo.svg") == logoV3 })
	stop.Store(true)
	wg.Wait()
	seen.Range(func(k, _ any) bool {
		if s := k.(string); s != logoV2 && s != logoV3 {
			t.Errorf("served a half-written file: %d bytes %.40q…", len(s), s)
		}
		return true
	})

	// Deletion: the reader says deleted, and the last contents serve on.
	os.Remove(e.path("www/logo.svg"))
	eventually(t, 5*time.Second, "deletion not reported", func() bool { return e.files()["logo"].Deleted })
	if st := e.files()["logo"]; st.Error || !st.Serving {
		t.Errorf("deleted reader: %+v; want no error and still serving", st)
	}
	r := e.get("/logo.svg")
	if r.Status != 200 || string(r.Body) != logoV3 {
		t.Errorf("after deletion: %d %.40q, want 200 with the last contents", r.Status, r.Body)
	}

	// Synchronous check: motd's ttl is an hour, so only the check can
	// see the change.
	before := e.files()["motd"]
	e.writeFile("motd.txt", "hello again\n")
	c := e.admin("POST", "/files/motd/check", "")
	wantStatus(t, c, 200)
	var st fileState
	json.Unmarshal(c.Body, &st)
	if st.Size != int64(len("hello again\n")) || st.ID == before.ID || st.LoadedID != st.ID {
		t.Errorf("check answered %s; want the new size and id, loaded", c.Body)
	}
	if got := body("/motd"); got != "hello again\n" {
		t.Errorf("after the check /motd = %q", got)
	}
	if r := e.admin("GET", "/files/motd/contents", ""); r.Status != 200 || string(r.Body) != "hello again\n" {
		t.Errorf("GET /files/motd/contents = %d %q", r.Status, r.Body)
	}
	if r := e.admin("GET", "/files/motd", ""); r.Status != 200 || !bytes.Contains(r.Body, []byte(`"serving": true`)) {
		t.Errorf("GET /files/motd = %d %s", r.Status, r.Body)
	}
	wantStatus(t, e.admin("POST", "/files/nope/check", ""), 404)
	wantStatus(t, e.admin("POST", "/files/motd/check", "", "wrong"), 401)

	// The same from the shell.
	e.writeFile("motd.txt", "from the cli\n")
	out, err := exec.Command(edgehostBin(), "file", "-config", e.cfg, "check", "motd").CombinedOutput()
	if err != nil {
		t.Fatalf("edgehost file check: %v\n%s", err, out)
	}
	if !bytes.Contains(out, []byte(`"size": 13`)) {
		t.Errorf("edgehost file check printed %s", out)
	}
	if got := body("/motd"); got != "from the cli\n" {
		t.Errorf("after the CLI check /motd = %q", got)
	}
}

// TestFileBadInput: readers whose files are missing, a directory, too
// large or unreadable do not stop edgehost; routes using them answer the
// built-in error page and the log says why.
func TestFileBadInput(t *testing.T) {
	o := startOrigin(t)
	extra := `
plugin "file" {}
file "missing" { path = "nope.html" }
file "dir" { path = "adir" }
file "big" {
  path     = "big.txt"
  max_size = "1KiB"
}
file "locked" { path = "locked.txt" }
route "/missing" {
  respond { file = file.missing }
}
route "/dir" {
  respond { file = file.dir }
}
route "/big" {
  respond { file = file.big }
}
route "/locked" {
  respond { file = file.locked }
}
`
	e := &edge{t: t, dir: t.TempDir(), HTTP: freePort(t), Admin: freePort(t), Token: "s3cret"}
	e.Self = filepath.Join(e.dir, "var", "self.sock")
	os.Mkdir(e.path("adir"), 0o755)
	e.writeFile("big.txt", strings.Repeat("x", 2048))
	e.writeFile("locked.txt", "secret")
	os.Chmod(e.path("locked.txt"), 0)
	e.writeConfig(baseConfig(o.URL, extra))
	e.start()
	t.Cleanup(e.stop)

	files := e.files()
	cases := []struct{ name, code, why string }{
		{"missing", "missing", "no such file"},
		{"dir", "not_regular", "is a directory"},
		{"big", "too_large", "2048 bytes, more than max_size (1024 bytes)"},
		{"locked", "unreadable", "permission denied"},
	}
	for _, c := range cases {
		if c.name == "locked" && os.Geteuid() == 0 {
			t.Log("running as root: a mode 000 file is readable, the unreadable case is not checked")
			continue
		}
		st := files[c.name]
		if !st.Error || st.ErrCode != c.code || !strings.Contains(st.ErrMsg, c.why) || st.Serving {
			t.Errorf("reader %s = %+v; want error %s (%s)", c.name, st, c.code, c.why)
		}
		r := e.get("/" + c.name)
		wantStatus(t, r, 503)
		if !bytes.Contains(r.Body, []byte("edgehost · transaction")) {
			t.Errorf("/%s: not the built-in error page: %q", c.name, r.Body)
		}
	}
	log := e.stderr.String()
	for _, want := range []string{"File reader will report an error", `file reader unavailable: file \"missing\"`, "is a directory"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q", want)
		}
	}
	// The file appears: the reader recovers at the next check.
	e.writeFile("nope.html", "found\n")
	wantStatus(t, e.admin("POST", "/files/missing/check", ""), 200)
	if r := e.get("/missing"); r.Status != 200 || string(r.Body) != "found\n" {
		t.Errorf("after the file appeared: %d %q", r.Status, r.Body)
	}
}

// TestFilePluginRelaunch kills the file plugin: readers keep serving from
// the host's memory, cache hits are unaffected, and after the relaunch
// the readers follow their files again.
func TestFilePluginRelaunch(t *testing.T) {
	o := startOrigin(t)
	e := newFileEdge(t, baseConfig(o.URL, fileAcceptance), map[string]string{"www/logo.svg": logoV1, "errors/503.html": errorPage})
	wantStatus(t, e.get("/bytes/4k"), 200)
	wantCacheStatus(t, e.get("/bytes/4k"), "hit")

	pid := filePluginPID(t, e)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Meanwhile: hits and reader-backed responses answer as before.
	for range 20 {
		wantCacheStatus(t, e.get("/bytes/4k"), "hit")
		if r := e.get("/logo.svg"); r.Status != 200 || string(r.Body) != logoV1 {
			t.Fatalf("while the plugin is down /logo.svg = %d %q", r.Status, r.Body)
		}
		time.Sleep(10 * time.Millisecond)
	}
	eventually(t, 10*time.Second, "file plugin not relaunched", func() bool {
		p := filePluginPID(t, e)
		return p != 0 && p != pid
	})
	if st := e.files()["logo"]; !st.Serving || st.LoadedBytes != len(logoV1) {
		t.Errorf("after the relaunch logo = %+v", st)
	}
	os.Remove(e.path("www/logo.svg"))
	e.writeFile("www/logo.svg", "relaunched\n")
	eventually(t, 5*time.Second, "the relaunched plugin does not follow the file", func() bool {
		return string(e.get("/logo.svg").Body) == "relaunched\n"
	})

	// A deleted file outlives a relaunch: the new plugin instance cannot
	// map it, the host's copy serves on.
	os.Remove(e.path("www/logo.svg"))
	eventually(t, 5*time.Second, "deletion not reported", func() bool { return e.files()["logo"].Deleted })
	pid = filePluginPID(t, e)
	syscall.Kill(pid, syscall.SIGKILL)
	eventually(t, 10*time.Second, "file plugin not relaunched", func() bool {
		p := filePluginPID(t, e)
		return p != 0 && p != pid
	})
	time.Sleep(300 * time.Millisecond) // the new stream's full state
	if st := e.files()["logo"]; !st.Deleted || st.Error || !st.Serving {
		t.Errorf("deleted reader after a relaunch = %+v", st)
	}
	if r := e.get("/logo.svg"); r.Status != 200 || string(r.Body) != "relaunched\n" {
		t.Errorf("deleted reader after a relaunch answers %d %q", r.Status, r.Body)
	}
	if e.metric("edgehost_file_readers") != 2 || e.metric("edgehost_file_readers_failing") != 0 {
		t.Errorf("file metrics: readers %v, failing %v", e.metric("edgehost_file_readers"), e.metric("edgehost_file_readers_failing"))
	}
}

func filePluginPID(t *testing.T, e *edge) int { return pluginPID(t, e, "file") }

// TestFileStatic serves a directory through the plugin: read on a miss,
// cached, purged when the file changes, paths out of the root refused.
func TestFileStatic(t *testing.T) {
	o := startOrigin(t)
	extra := `
plugin "file" {}
route "/static/" {
  static {
    root = "./www"
    ttl  = "300ms"
  }
}
`
	e := newFileEdge(t, baseConfig(o.URL, extra), map[string]string{
		"www/index.html": "<h1>home</h1>\n", "www/css/site.css": "body{}\n", "secret.txt": "secret\n",
	})
	os.Symlink(e.path("secret.txt"), e.path("www/out.txt"))
	os.Symlink("css/site.css", e.path("www/in.css"))

	r := e.get("/static/css/site.css")
	wantStatus(t, r, 200)
	wantCacheStatus(t, r, "stored")
	if string(r.Body) != "body{}\n" || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/css") {
		t.Fatalf("site.css = %q (%s)", r.Body, r.Header.Get("Content-Type"))
	}
	wantCacheStatus(t, e.get("/static/css/site.css"), "hit")
	wantStatus(t, e.get("/static/css/site.css", "If-None-Match", r.Header.Get("Etag")), 304)
	if r := e.get("/static/"); r.Status != 200 || string(r.Body) != "<h1>home</h1>\n" {
		t.Errorf("/static/ = %d %q, want the index", r.Status, r.Body)
	}
	if r := e.get("/static/in.css"); r.Status != 200 || string(r.Body) != "body{}\n" {
		t.Errorf("a symlink inside the root = %d %q", r.Status, r.Body)
	}

	// Past its freshness (the static ttl) the copy is revalidated with a
	// stat: same id, no body read.
	before := e.metric("edgehost_revalidations_not_modified_total")
	time.Sleep(400 * time.Millisecond)
	rv := e.get("/static/css/site.css")
	wantCacheStatus(t, rv, "fwd=stale")
	if string(rv.Body) != "body{}\n" || e.metric("edgehost_revalidations_not_modified_total") != before+1 {
		t.Errorf("revalidation: %q, revalidations %v → %v", rv.Body, before, e.metric("edgehost_revalidations_not_modified_total"))
	}

	// A change is noticed by the plugin and the object purged.
	e.writeFile("www/css/site.css", "body{color:red}\n")
	eventually(t, 5*time.Second, "change of a static file not picked up", func() bool {
		return string(e.get("/static/css/site.css").Body) == "body{color:red}\n"
	})

	// Out of the root: 404, and the log says why.
	for _, raw := range []string{"/static/../secret.txt", "/static/%2e%2e/secret.txt", "/static/out.txt", "/static/nothere.css"} {
		resp := rawRequest(t, e.HTTP, "GET "+raw+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		if !strings.HasPrefix(resp, "HTTP/1.1 404") || strings.Contains(resp, "secret") {
			t.Errorf("%s answered %.60q, want 404", raw, resp)
		}
	}
	if log := e.stderr.String(); !strings.Contains(log, "path outside the static root") {
		t.Error("refused paths are not logged")
	}
}

// TestFileReload adds a reader, a route using it and a condition on its
// state by a reload: they serve as soon as the reload answers.
func TestFileReload(t *testing.T) {
	o := startOrigin(t)
	e := newFileEdge(t, baseConfig(o.URL, fileAcceptance), map[string]string{"www/logo.svg": logoV1, "errors/503.html": errorPage, "news.txt": "news!\n"})
	e.writeConfig(baseConfig(o.URL, fileAcceptance+`
file "news" { path = "news.txt" }
route "/news" {
  respond { file = file.news }
}
route "/has-news" {
  when = !file.news.error && file.news.contents == "news!\n"
  respond { body = "yes\n" }
}
route "/has-news" {
  respond { body = "no\n" }
}
`))
	if r := e.admin("POST", "/reload", ""); r.Status != 200 {
		t.Fatalf("reload: %d %s", r.Status, r.Body)
	}
	if r := e.get("/news"); r.Status != 200 || string(r.Body) != "news!\n" {
		t.Fatalf("after reload /news = %d %q", r.Status, r.Body)
	}
	if r := e.get("/has-news"); string(r.Body) != "yes\n" {
		t.Errorf("/has-news = %q", r.Body)
	}
	if r := e.get("/logo.svg"); r.Status != 200 || string(r.Body) != logoV1 {
		t.Errorf("after reload /logo.svg = %d %q", r.Status, r.Body)
	}
	e.writeFile("news.txt", "old news\n")
	wantStatus(t, e.admin("POST", "/files/news/check", ""), 200)
	if r := e.get("/has-news"); string(r.Body) != "no\n" {
		t.Errorf("/has-news after the change = %q", r.Body)
	}

	// The plugin removed by a reload, then declared again: a new plugin,
	// followed by a new watch.
	e.writeConfig(baseConfig(o.URL, ""))
	wantStatus(t, e.admin("POST", "/reload", ""), 200)
	e.writeConfig(baseConfig(o.URL, fileAcceptance))
	wantStatus(t, e.admin("POST", "/reload", ""), 200)
	os.Remove(e.path("www/logo.svg"))
	e.writeFile("www/logo.svg", "declared again\n")
	eventually(t, 5*time.Second, "the plugin declared again is not followed", func() bool {
		return string(e.get("/logo.svg").Body) == "declared again\n"
	})
}
