package integration

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgehost/edgehost/kvm"
)

// The compute feature end to end: a real edgehost, the real compute plugin
// subprocess and real programs (plugins/compute/examples, built here with
// the Makefile's own rules), answering through the public listener.

var programs struct {
	once sync.Once
	dir  string
	err  error
}

// programDir builds the example programs once; a test that cannot build
// them fails (they need gcc with a static libc, which make installs).
func programDir(t *testing.T) string {
	t.Helper()
	programs.once.Do(func() {
		dir, err := os.MkdirTemp("", "edgehost-programs")
		if err != nil {
			programs.err = err
			return
		}
		out, err := exec.Command("make", "-s", "-C", "../../plugins/compute/examples", "OUT="+dir).CombinedOutput()
		if err != nil {
			programs.err = fmt.Errorf("building the example programs: %v\n%s", err, out)
		}
		programs.dir = dir
	})
	if programs.err != nil {
		t.Fatal(programs.err)
	}
	return programs.dir
}

// computeConfig is baseConfig with a compute plugin running tenants
// (name → extra settings; the program is the name up to a "-") of the
// example programs on backend, and extra blocks.
func computeConfig(t *testing.T, backend, originURL string, tenants map[string]string, extra string) string {
	dir := programDir(t)
	var b strings.Builder
	b.WriteString("plugin \"compute\" {\n  self_socket = \"./var/self.sock\"\n")
	for name, settings := range tenants {
		prog, _, _ := strings.Cut(name, "-")
		fmt.Fprintf(&b, "  tenant %q {\n    program = %q\n    backend = %q\n%s\n  }\n", name, filepath.Join(dir, prog), backend, settings)
	}
	b.WriteString("}\n")
	return baseConfig(originURL, b.String()+extra)
}

// backends runs f on each compute backend this machine has: process
// always, kvm where kvm.Probe passes (EDGEHOST_KVM_REQUIRE=1 makes its
// absence a failure).
func backends(t *testing.T, f func(t *testing.T, backend string)) {
	t.Run("process", func(t *testing.T) { f(t, "process") })
	t.Run("kvm", func(t *testing.T) {
		if err := kvm.Probe(); err != nil {
			if os.Getenv("EDGEHOST_KVM_REQUIRE") != "" {
				t.Fatalf("EDGEHOST_KVM_REQUIRE is set but KVM is unusable: %v", err)
			}
			t.Skipf("no usable KVM here (%v): the kvm backend is not tested", err)
		}
		f(t, "kvm")
	})
}

func TestComputeTenants(t *testing.T) { backends(t, testComputeTenants) }

func testComputeTenants(t *testing.T, backend string) {
	o := startOrigin(t)
	e := newEdge(t, computeConfig(t, backend, o.URL, map[string]string{
		"hello":        `hosts = ["hello.example"]`,
		"counter":      ``,
		"counter-kept": "ephemeral = false\n    concurrency = 1",
		"png":          ``,
	}, `
route "/hello/" { compute = tenant.hello }
route "/count" { compute = tenant.counter }
route "/kept" { compute = tenant.counter-kept }
route "/png" { compute = tenant.png }
`))
	r := e.get("/hello/world")
	wantStatus(t, r, 200)
	if got, want := string(r.Body), "hello from /hello/world"; got != want {
		t.Errorf("body %q, want %q", got, want)
	}
	if ct := r.Header.Get("Content-Type"); ct != "text/plain" {
		t.Errorf("Content-Type %q", ct)
	}
	// A program that asks for no ttl is not stored: the next request runs
	// it again.
	if cs := r.Header.Get("Cache-Status"); strings.Contains(cs, "stored") || strings.Contains(cs, "hit") {
		t.Errorf("Cache-Status %q of a program's answer without a ttl", cs)
	}
	// Any method reaches the program, uncached.
	if r := e.do("POST", "/hello/form"); r.Status != 200 || string(r.Body) != "hello from /hello/form" ||
		!strings.Contains(r.Header.Get("Cache-Status"), "fwd=method") {
		t.Errorf("POST: %d %q %q", r.Status, r.Body, r.Header.Get("Cache-Status"))
	}
	// A tenant's hosts route every path of that Host to it.
	if r := e.get("/anything", "Host", "hello.example"); r.Status != 200 || string(r.Body) != "hello from /anything" {
		t.Errorf("Host hello.example: %d %q", r.Status, r.Body)
	}
	if r := e.get("/anything"); strings.HasPrefix(string(r.Body), "hello from") {
		t.Errorf("another Host reached the tenant: %q", r.Body)
	}
	// Ephemeral: every request starts from the snapshot.
	for i := 0; i < 5; i++ {
		if r := e.get("/count"); string(r.Body) != "1" {
			t.Fatalf("ephemeral counter, request %d: %q, want 1", i+1, r.Body)
		}
	}
	// Kept: the instance keeps its memory.
	for i := 1; i <= 5; i++ {
		if r := e.get("/kept"); string(r.Body) != fmt.Sprint(i) {
			t.Fatalf("kept counter, request %d: %q", i, r.Body)
		}
	}
	// A program that gives a ttl is cached like an origin's answer.
	first := e.get("/png?w=8&h=8")
	wantStatus(t, first, 200)
	if first.Header.Get("Content-Type") != "image/png" || !strings.HasPrefix(string(first.Body), "\x89PNG") {
		t.Fatalf("png: %q %q", first.Header.Get("Content-Type"), first.Body[:min(8, len(first.Body))])
	}
	second := e.get("/png?w=8&h=8")
	if !strings.Contains(second.Header.Get("Cache-Status"), "hit") || string(second.Body) != string(first.Body) {
		t.Errorf("second png: Cache-Status %q, same body %v", second.Header.Get("Cache-Status"), string(second.Body) == string(first.Body))
	}
}

func TestComputeSelfRequestsAndChains(t *testing.T) {
	o := startOrigin(t)
	e := newEdge(t, computeConfig(t, "process", o.URL, map[string]string{
		"fetch": ``,
		"upper": ``,
		"hello": ``,
	}, `
route "/fetch" { compute = tenant.fetch }
route "/shout/" { chain = [tenant.hello, tenant.upper] }
route "/bytes/" {
  when    = lookup(request.headers, "x-upper", "") == "1"
  backend = backend.origin
  chain   = ["fetch", tenant.upper]
}
`))
	// A program's self-request goes through the whole state machine: the
	// object is fetched from the origin and cached for the next one.
	direct := e.get("/bytes/28k")
	wantStatus(t, direct, 200)
	sum := sha256.Sum256(direct.Body)
	want := fmt.Sprintf("len=%d sha256=%s", len(direct.Body), hex.EncodeToString(sum[:]))
	r := e.get("/fetch?src=/bytes/28k")
	if r.Status != 200 || strings.TrimSpace(string(r.Body)) != want {
		t.Errorf("fetch: %d %q, want %q", r.Status, r.Body, want)
	}
	// A fetched error status is the program's answer.
	if r := e.get("/fetch?src=/status/404"); r.Status != 404 {
		t.Errorf("fetch of a 404: %d %q", r.Status, r.Body)
	}
	// A program fetching itself loops: stopped (508 at max_depth, or a
	// full queue), never a hang.
	start := time.Now()
	r = e.get("/fetch")
	if r.Status < 500 || time.Since(start) > 5*time.Second {
		t.Errorf("self-fetch loop: %d after %v: %q", r.Status, time.Since(start), r.Body)
	}
	t.Logf("self-fetch loop: %d after %v", r.Status, time.Since(start).Round(time.Millisecond))
	// A chain of two programs: each stage's response is the next one's body.
	if r := e.get("/shout/world"); r.Status != 200 || string(r.Body) != "HELLO FROM /SHOUT/WORLD" {
		t.Errorf("chain: %d %q", r.Status, r.Body)
	}
	// A chain that starts with "fetch": the origin's body (fetched by the
	// host), transformed by the program.
	up := e.get("/bytes/4k", "X-Upper", "1")
	wantStatus(t, up, 200)
	plain := e.get("/bytes/4k")
	wantStatus(t, plain, 200)
	wantUp := []byte(string(plain.Body))
	for i, c := range wantUp {
		if c >= 'a' && c <= 'z' {
			wantUp[i] = c - 'a' + 'A'
		}
	}
	if string(up.Body) != string(wantUp) || string(up.Body) == string(plain.Body) {
		t.Errorf("fetch chain: %d bytes, want the origin's %d bytes in upper case", len(up.Body), len(plain.Body))
	}
}

func TestComputeLimits(t *testing.T) { backends(t, testComputeLimits) }

func testComputeLimits(t *testing.T, backend string) {
	o := startOrigin(t)
	e := newEdge(t, computeConfig(t, backend, o.URL, map[string]string{
		"spin":  "max_request_time = \"500ms\"\n    concurrency = 1\n    max_queue_time = \"200ms\"",
		"hello": ``,
	}, `
route "/spin" { compute = tenant.spin }
route "/hello/" { compute = tenant.hello }
`))
	start := time.Now()
	r := e.get("/spin")
	took := time.Since(start)
	if r.Status != 504 || took > 5*time.Second {
		t.Errorf("spin: %d after %v, want 504 after about 500ms", r.Status, took)
	}
	// The slot was reset: the next request is stopped the same way, and
	// the other tenant answered all along.
	if r := e.get("/hello/x"); r.Status != 200 {
		t.Errorf("hello beside spin: %d", r.Status)
	}
	if r := e.get("/spin"); r.Status != 504 {
		t.Errorf("second spin: %d", r.Status)
	}
}

func TestComputeConfigErrors(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "bad.hcl")
	cfg := `
backend "o" { url = "http://127.0.0.1:1" }
plugin "compute" {
  tenant "a" { program = "/nonexistent" }
}
route "/x" { compute = tenant.nosuch }
route "/y" { chain = [tenant.a, "fetch"] }
route "/z" {
  backend = backend.o
  compute = tenant.a
}
`
	os.WriteFile(p, []byte(cfg), 0o644)
	out, err := exec.Command(edgehostBin(), "validate", "-config", p).CombinedOutput()
	if err == nil {
		t.Fatalf("validate accepted:\n%s", out)
	}
	for _, want := range []string{
		p + ":6:24: error: Unknown tenant",
		p + `:7:33: error: Invalid chain stage`,
		p + ":9:13: error: Conflicting route",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("validate output lacks %q:\n%s", want, out)
		}
	}
}

// TestComputeHostilePrograms: what a program must not do is refused or
// contained, through the host, and the host and the other tenant serve on.
func TestComputeHostilePrograms(t *testing.T) { backends(t, testComputeHostile) }

func testComputeHostile(t *testing.T, backend string) {
	o := startOrigin(t)
	e := newEdge(t, computeConfig(t, backend, o.URL, map[string]string{
		"hostile": "max_request_time = \"1s\"\n    max_memory = \"32MiB\"\n    hosts = [\"hostile.example\"]",
		"hello":   ``,
	}, `
route "/hello/" { compute = tenant.hello }
`))
	h := func(path string) result { return e.get(path, "Host", "hostile.example") }
	for _, path := range []string{"/fork", "/open", "/socket", "/exec"} {
		r := h(path)
		if r.Status != 200 || !strings.Contains(string(r.Body), "=-1 ") {
			t.Errorf("%s: %d %q, want the call refused (-1 and an errno)", path, r.Status, r.Body)
		}
	}
	if r := h("/crash"); r.Status != 500 {
		t.Errorf("/crash: %d %q, want 500", r.Status, r.Body)
	}
	if r := h("/malloc"); r.Status != 200 && r.Status != 500 {
		t.Errorf("/malloc: %d %q, want an answer or 500 within max_memory", r.Status, r.Body)
	}
	if r := h("/loop"); r.Status != 504 {
		t.Errorf("/loop: %d, want 504", r.Status)
	}
	if r := h("/exit"); r.Status != 500 {
		t.Errorf("/exit: %d, want 500", r.Status)
	}
	// Everything still serves: the tenant (a fresh slot), the other tenant,
	// the cache.
	if r := h("/stdout"); r.Status != 200 || string(r.Body) != "ok" {
		t.Errorf("hostile after the attacks: %d %q", r.Status, r.Body)
	}
	if r := e.get("/hello/x"); r.Status != 200 {
		t.Errorf("hello: %d", r.Status)
	}
	wantStatus(t, e.get("/bytes/1k"), 200)
}
