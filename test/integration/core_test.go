package integration

import (
	"bytes"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestMissThenHit(t *testing.T) {
	o := startOrigin(t)
	e := newEdge(t, baseConfig(o.URL, ""))
	r1 := e.get("/bytes/1k")
	wantStatus(t, r1, 200)
	wantCacheStatus(t, r1, "fwd=uri-miss")
	wantCacheStatus(t, r1, "stored")
	if len(r1.Body) != 1024 {
		t.Fatalf("body %d bytes, want 1024", len(r1.Body))
	}
	r2 := e.get("/bytes/1k")
	wantStatus(t, r2, 200)
	wantCacheStatus(t, r2, "edgehost; hit")
	if !bytes.Equal(r1.Body, r2.Body) {
		t.Fatal("hit body differs from miss body")
	}
	if got, want := originRequests(r2), originRequests(r1); got != want {
		t.Fatalf("hit reached the origin: X-Origin-Request %s, first %s", got, want)
	}
	if r2.Header.Get("Age") == "" {
		t.Error("hit without Age")
	}
	if got := o.Stats().Requests; got != 1 {
		t.Errorf("origin saw %d requests, want 1", got)
	}
	h := e.do("HEAD", "/bytes/1k")
	wantStatus(t, h, 200)
	if len(h.Body) != 0 || h.Header.Get("Content-Length") != "1024" {
		t.Errorf("HEAD: body %d bytes, Content-Length %q", len(h.Body), h.Header.Get("Content-Length"))
	}
	if e.metric("edgehost_cache_hits_total") < 2 {
		t.Error("hits not counted")
	}
}

func TestCoalescing(t *testing.T) {
	o := startOrigin(t)
	e := newEdge(t, baseConfig(o.URL, ""))
	var wg sync.WaitGroup
	bodies := make([][]byte, 20)
	for i := range bodies {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			r := e.get("/delay/300?max-age=60")
			if r.Status != 200 {
				t.Errorf("status %d", r.Status)
			}
			bodies[i] = r.Body
		}(i)
	}
	wg.Wait()
	if got := o.Stats().RequestsByPrefix["/delay"]; got != 1 {
		t.Fatalf("origin fetched /delay %d times for 20 concurrent clients, want 1", got)
	}
	for _, b := range bodies[1:] {
		if !bytes.Equal(b, bodies[0]) {
			t.Fatal("coalesced clients got different bodies")
		}
	}
	if e.metric("edgehost_coalesced_waits_total") < 1 {
		t.Error("coalesced waits not counted")
	}
}

func TestPersistenceAcrossKill9(t *testing.T) {
	o := startOrigin(t)
	e := newEdge(t, baseConfig(o.URL, ""))
	paths := []string{"/bytes/1k", "/bytes/28k", "/bytes/2m", "/etag"}
	first := map[string][]byte{}
	for _, p := range paths {
		r := e.get(p)
		wantStatus(t, r, 200)
		first[p] = r.Body
	}
	// Objects are written behind the response: give the writer a moment.
	time.Sleep(500 * time.Millisecond)
	e.kill9()
	before := o.Stats().Requests
	e.start()
	for _, p := range paths {
		r := e.get(p)
		wantStatus(t, r, 200)
		wantCacheStatus(t, r, "hit")
		if !bytes.Equal(r.Body, first[p]) {
			t.Fatalf("%s: body after restart differs", p)
		}
	}
	if got := o.Stats().Requests; got != before {
		t.Fatalf("origin saw %d requests after restart, want 0", got-before)
	}
	// And after a clean SIGTERM too.
	e.stop()
	e.start()
	wantCacheStatus(t, e.get("/bytes/28k"), "hit")
}

func TestRanges(t *testing.T) {
	o := startOrigin(t)
	e := newEdge(t, baseConfig(o.URL, ""))
	full := e.get("/bytes/28k").Body
	r := e.get("/bytes/28k", "Range", "bytes=100-199")
	wantStatus(t, r, 206)
	if !bytes.Equal(r.Body, full[100:200]) {
		t.Fatal("single range bytes wrong")
	}
	if got := r.Header.Get("Content-Range"); got != "bytes 100-199/28672" {
		t.Errorf("Content-Range %q", got)
	}
	r = e.get("/bytes/28k", "Range", "bytes=0-9,-10")
	wantStatus(t, r, 206)
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/byteranges" {
		t.Fatalf("multi-range Content-Type %q", r.Header.Get("Content-Type"))
	}
	mr := multipart.NewReader(bytes.NewReader(r.Body), params["boundary"])
	var parts [][]byte
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(p)
		parts = append(parts, b)
	}
	if len(parts) != 2 || !bytes.Equal(parts[0], full[:10]) || !bytes.Equal(parts[1], full[len(full)-10:]) {
		t.Fatalf("multipart parts wrong: %d parts", len(parts))
	}
	r = e.get("/bytes/28k", "Range", "bytes=99999-")
	wantStatus(t, r, 416)
	if got := r.Header.Get("Content-Range"); got != "bytes */28672" {
		t.Errorf("416 Content-Range %q", got)
	}
	r = e.get("/bytes/28k", "Range", "lines=1-2")
	wantStatus(t, r, 200)
	// If-Range with a stale validator: the whole object.
	r = e.get("/bytes/28k", "Range", "bytes=0-9", "If-Range", `"other"`)
	wantStatus(t, r, 200)
}

func TestConditionalToClient(t *testing.T) {
	o := startOrigin(t)
	e := newEdge(t, baseConfig(o.URL, ""))
	r := e.get("/bytes/1k")
	etag, lm := r.Header.Get("Etag"), r.Header.Get("Last-Modified")
	if etag == "" || lm == "" {
		t.Fatal("origin sent no validators")
	}
	r = e.get("/bytes/1k", "If-None-Match", etag)
	wantStatus(t, r, 304)
	if len(r.Body) != 0 {
		t.Error("304 with a body")
	}
	r = e.get("/bytes/1k", "If-Modified-Since", lm)
	wantStatus(t, r, 304)
	r = e.get("/bytes/1k", "If-None-Match", `"nope"`)
	wantStatus(t, r, 200)
}

func TestInvalidation(t *testing.T) {
	o := startOrigin(t)
	e := newEdge(t, baseConfig(o.URL, ""))
	e.get("/counter/a?max-age=600")
	wantCacheStatus(t, e.get("/counter/a?max-age=600"), "hit")

	// Token required.
	if r := e.admin("POST", "/purge?url=http://"+e.HTTP+"/counter/a?max-age=600", "", "wrong"); r.Status != 401 {
		t.Fatalf("purge with a wrong token: %d", r.Status)
	}
	if r := e.admin("POST", "/purge?url="+urlq("http://"+e.HTTP+"/counter/a?max-age=600"), ""); r.Status != 200 {
		t.Fatalf("purge: %d %s", r.Status, r.Body)
	}
	r := e.get("/counter/a?max-age=600")
	wantCacheStatus(t, r, "fwd=uri-miss")
	if strings.TrimSpace(string(r.Body)) != "2" {
		t.Fatalf("after purge body %q, want 2", r.Body)
	}

	// Ban by URL regex.
	e.get("/counter/b1?max-age=600")
	e.get("/counter/b2?max-age=600")
	e.get("/counter/c?max-age=600")
	if r := e.admin("POST", "/ban", `req.url ~ "^/counter/b"`); r.Status != 200 {
		t.Fatalf("ban: %d %s", r.Status, r.Body)
	}
	wantCacheStatus(t, e.get("/counter/b1?max-age=600"), "fwd=uri-miss")
	wantCacheStatus(t, e.get("/counter/b2?max-age=600"), "fwd=uri-miss")
	wantCacheStatus(t, e.get("/counter/c?max-age=600"), "hit")
	if r := e.admin("POST", "/ban", `req.url ~~ "x"`); r.Status != 400 {
		t.Fatalf("bad ban accepted: %d", r.Status)
	}

	// Purge by tag.
	e.get("/tag/red")
	e.get("/tag/red,blue")
	e.get("/tag/blue")
	if r := e.admin("POST", "/purge-tag?tag=red", ""); r.Status != 200 {
		t.Fatalf("purge-tag: %d %s", r.Status, r.Body)
	}
	wantCacheStatus(t, e.get("/tag/red"), "fwd=uri-miss")
	wantCacheStatus(t, e.get("/tag/red,blue"), "fwd=uri-miss")
	wantCacheStatus(t, e.get("/tag/blue"), "hit")

	// An unsafe method invalidates the URL.
	e.get("/counter/p?max-age=600")
	wantCacheStatus(t, e.get("/counter/p?max-age=600"), "hit")
	e.do("POST", "/counter/p?max-age=600")
	wantCacheStatus(t, e.get("/counter/p?max-age=600"), "fwd=uri-miss")
}

func TestBansSurviveRestart(t *testing.T) {
	o := startOrigin(t)
	e := newEdge(t, baseConfig(o.URL, ""))
	e.get("/counter/z?max-age=600")
	time.Sleep(300 * time.Millisecond)
	e.admin("POST", "/ban", `req.url ~ "^/counter/z"`)
	e.stop()
	e.start()
	wantCacheStatus(t, e.get("/counter/z?max-age=600"), "fwd=uri-miss")
}

func TestVaryAndCookies(t *testing.T) {
	o := startOrigin(t)
	e := newEdge(t, baseConfig(o.URL, ""))
	en := e.get("/vary", "Accept-Language", "en")
	fr := e.get("/vary", "Accept-Language", "fr")
	if bytes.Equal(en.Body, fr.Body) {
		t.Fatal("variants share a body")
	}
	wantCacheStatus(t, e.get("/vary", "Accept-Language", "en"), "hit")
	r := e.get("/vary", "Accept-Language", "fr")
	wantCacheStatus(t, r, "hit")
	if !bytes.Equal(r.Body, fr.Body) {
		t.Fatal("fr variant served the wrong body")
	}
	e.get("/cookie")
	r = e.get("/cookie")
	if strings.Contains(r.Header.Get("Cache-Status"), "hit") {
		t.Fatal("a Set-Cookie response was shared")
	}
	if r.Header.Get("Set-Cookie") == "" {
		t.Fatal("Set-Cookie not passed to the client")
	}
}

func TestGraceAndRevalidation(t *testing.T) {
	o := startOrigin(t)
	e := newEdge(t, baseConfig(o.URL, ""))
	// max-age=2: stale after two seconds (less the Date's rounding), then
	// served in grace while one background fetch revalidates with
	// If-None-Match (the origin answers 304).
	r := e.get("/etag?max-age=2")
	wantStatus(t, r, 200)
	time.Sleep(2500 * time.Millisecond)
	r = e.get("/etag?max-age=2")
	wantCacheStatus(t, r, "hit")
	wantCacheStatus(t, r, "detail=stale")
	deadline := time.Now().Add(3 * time.Second)
	for o.Stats().NotModified < 1 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if o.Stats().NotModified < 1 {
		t.Fatal("no conditional revalidation reached the origin")
	}
	// The origin counts its 304 before edgehost has stored the refresh.
	for time.Now().Before(deadline) && strings.Contains(e.get("/etag?max-age=2").Header.Get("Cache-Status"), "stale") {
		time.Sleep(20 * time.Millisecond)
	}
	r = e.get("/etag?max-age=2")
	wantCacheStatus(t, r, "edgehost; hit")
	if strings.Contains(r.Header.Get("Cache-Status"), "stale") {
		t.Fatalf("refreshed object still stale: %s", r.Header.Get("Cache-Status"))
	}
}

func TestOriginFailures(t *testing.T) {
	o := startOrigin(t)
	dead := freePort(t)
	e := newEdge(t, baseConfig(o.URL, fmt.Sprintf(`
backend "dead" {
  url = "http://%s"
  connect_timeout = "300ms"
}
route "/dead" {
  backend = backend.dead
}
`, dead)))
	r := e.get("/dead/x")
	if r.Status != 502 && r.Status != 503 {
		t.Fatalf("dead origin: %d, want 502/503", r.Status)
	}
	start := time.Now()
	r = e.get("/delay/3000")
	wantStatus(t, r, 504)
	if d := time.Since(start); d > 2500*time.Millisecond {
		t.Fatalf("first-byte timeout took %v", d)
	}
	// Truncated body: the client sees a broken response, nothing is stored.
	resp, err := client.Get(e.url("/truncate/100000"))
	if err == nil {
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	if err == nil {
		t.Fatal("truncated origin body delivered as complete")
	}
	before := o.Stats().RequestsByPrefix["/truncate"]
	resp, err = client.Get(e.url("/truncate/100000"))
	if err == nil {
		io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	if o.Stats().RequestsByPrefix["/truncate"] != before+1 {
		t.Fatal("a truncated object was stored and served")
	}
	// Still serving.
	wantStatus(t, e.get("/bytes/1k"), 200)
}

func TestStaleIfError(t *testing.T) {
	o := startOrigin(t)
	e := newEdge(t, baseConfig(o.URL, `
route "/cc" {
  backend = backend.origin
  grace   = "0s"
}
`))
	path := "/cc?value=" + urlq("max-age=1, stale-if-error=60")
	first := e.get(path)
	wantStatus(t, first, 200)
	time.Sleep(1200 * time.Millisecond)
	o.srv.CloseClientConnections()
	o.srv.Listener.Close() // the origin is gone
	r := e.get(path)
	wantStatus(t, r, 200)
	wantCacheStatus(t, r, "stale-if-error")
	if !bytes.Equal(r.Body, first.Body) {
		t.Fatal("stale-if-error served another body")
	}
	// Without stale-if-error the failure shows.
	r = e.get("/bytes/7")
	if r.Status < 500 {
		t.Fatalf("uncached object with the origin down: %d", r.Status)
	}
}

func TestSelfRequests(t *testing.T) {
	o := startOrigin(t)
	e := newEdge(t, baseConfig(o.URL, ""))
	c := e.selfClient()
	resp, err := c.Get("http://self/bytes/1k")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("self-request status %d", resp.StatusCode)
	}
	// Depth past the limit: 508, never a loop.
	req, _ := http.NewRequest("GET", "http://self/bytes/1k", nil)
	req.Header.Set("Edgehost-Depth", "8")
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 508 {
		t.Fatalf("deep self-request: %d, want 508", resp.StatusCode)
	}
	// Clients cannot claim a depth on the public listener.
	r := e.get("/bytes/1k", "Edgehost-Depth", "100")
	wantStatus(t, r, 200)
	if e.metric("edgehost_self_requests_total") < 2 {
		t.Error("self-requests not counted")
	}
	// The subrequest is logged with kind self.
	lg := e.admin("GET", "/log", "")
	if !strings.Contains(string(lg.Body), `"kind":"self"`) {
		t.Errorf("transaction log lacks the self-request:\n%s", lg.Body)
	}
}

func TestReload(t *testing.T) {
	o := startOrigin(t)
	e := newEdge(t, baseConfig(o.URL, ""))
	wantStatus(t, e.get("/bytes/1k"), 200)
	// Invalid config: rejected, old one keeps serving.
	os.WriteFile(e.cfg, []byte("route \"/\" { backend = nope }"), 0o644)
	if r := e.admin("POST", "/reload", ""); r.Status == 200 {
		t.Fatal("invalid config accepted")
	}
	wantStatus(t, e.get("/bytes/1k"), 200)
	// A valid one with a new synthetic route applies without a restart.
	e.writeConfig(baseConfig(o.URL, `
route "/hello" {
  respond {
    status = 200
    body   = "hi\n"
  }
}
`))
	if r := e.admin("POST", "/reload", ""); r.Status != 200 {
		t.Fatalf("reload: %d %s", r.Status, r.Body)
	}
	r := e.get("/hello")
	if string(r.Body) != "hi\n" {
		t.Fatalf("after reload /hello = %q", r.Body)
	}
}

func TestCorruptCacheFileMovedAside(t *testing.T) {
	o := startOrigin(t)
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "var"), 0o755)
	os.WriteFile(filepath.Join(dir, "var", "cache.db"), bytes.Repeat([]byte("garbage!"), 4096), 0o644)
	e := &edge{t: t, dir: dir, HTTP: freePort(t), Admin: freePort(t), Token: "s3cret"}
	e.writeConfig(baseConfig(o.URL, ""))
	e.start()
	t.Cleanup(e.stop)
	wantStatus(t, e.get("/bytes/1k"), 200)
	matches, _ := filepath.Glob(filepath.Join(dir, "var", "cache.db.corrupt-*"))
	if len(matches) != 1 {
		t.Fatalf("corrupt cache.db not moved aside: %v", matches)
	}
}

func TestMalformedRequests(t *testing.T) {
	o := startOrigin(t)
	e := newEdge(t, baseConfig(o.URL, ""))
	for _, raw := range []string{
		"GARBAGE\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nBad Header\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nX: " + strings.Repeat("a", 64<<10) + "\r\n\r\n",
	} {
		out := rawRequest(t, e.HTTP, raw)
		if !strings.HasPrefix(out, "HTTP/1.1 4") {
			t.Errorf("malformed request answered %.40q", out)
		}
	}
	wantStatus(t, e.get("/bytes/1k"), 200)
}

func TestValidateCommand(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "bad.hcl")
	os.WriteFile(p, []byte("storage {\n  memory = \"lots\"\n}\nroute \"/\" {\n  backend = backend.none\n}\n"), 0o644)
	out, err := exec.Command(edgehostBin(), "validate", "-config", p).CombinedOutput()
	if err == nil {
		t.Fatal("validate accepted a bad config")
	}
	for _, want := range []string{p + ":2:12: error: Invalid size", p + ":5:13: error: Unknown backend", `memory = "lots"`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("validate output lacks %q:\n%s", want, out)
		}
	}
	good := filepath.Join(dir, "good.hcl")
	cfg := strings.NewReplacer("{{HTTP}}", "127.0.0.1:1", "{{ADMIN}}", "127.0.0.1:2").Replace(baseConfig("http://127.0.0.1:1", ""))
	os.WriteFile(good, []byte(cfg), 0o644)
	if out, err := exec.Command(edgehostBin(), "validate", "-config", good).CombinedOutput(); err != nil {
		t.Fatalf("validate rejected a good config: %s", out)
	}
}

// TestUnknownLength: a cacheable body without Content-Length is streamed
// and stored when it ends within storage.max_object; a longer one is
// streamed whole and not stored.
func TestUnknownLength(t *testing.T) {
	o := startOrigin(t)
	e := newEdge(t, strings.Replace(baseConfig(o.URL, ""), `disk   = "1GiB"`, "disk   = \"1GiB\"\n  max_object = \"256KiB\"", 1))
	r := e.get("/big/200k?nolength=1")
	wantStatus(t, r, 200)
	if len(r.Body) != 200<<10 {
		t.Fatalf("streamed %d bytes", len(r.Body))
	}
	r2 := e.get("/big/200k?nolength=1")
	wantCacheStatus(t, r2, "hit")
	if !bytes.Equal(r.Body, r2.Body) {
		t.Fatal("stored body differs")
	}
	big := e.get("/big/300k?nolength=1")
	if len(big.Body) != 300<<10 {
		t.Fatalf("over max_object: streamed %d bytes", len(big.Body))
	}
	if strings.Contains(e.get("/big/300k?nolength=1").Header.Get("Cache-Status"), "hit") {
		t.Fatal("an object over max_object was stored")
	}
}
