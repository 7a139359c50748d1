package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/edgehost/edgehost/plugins/compute/sandbox"
	"github.com/edgehost/edgehost/plugins/pluginapi"
	pluginv1 "github.com/edgehost/edgehost/proto/edgehost/plugin/v1"
)

var (
	pluginBin   string // the plugin binary the tests start
	programsDir string
)

func TestMain(m *testing.M) {
	if sandbox.IsStub() {
		sandbox.StubMain()
	}
	os.Exit(setup(m))
}

// setup finds or builds the plugin binary (EDGEHOST_BIN, as make test
// passes, or go build) and the example programs (make).
func setup(m *testing.M) int {
	dir, err := os.MkdirTemp("", "edgehost-compute-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if b := os.Getenv("EDGEHOST_BIN"); b != "" {
		pluginBin = filepath.Join(b, "edgehost-plugin-compute")
	} else {
		pluginBin = filepath.Join(dir, "edgehost-plugin-compute")
		if out, err := exec.Command("go", "build", "-o", pluginBin, ".").CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
			return 1
		}
	}
	programsDir = filepath.Join(dir, "programs")
	if out, err := exec.Command("make", "-s", "-C", "examples", "OUT="+programsDir).CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building the example programs: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// start runs the plugin as a real subprocess, as the host does, and
// configures it with the HCL body src.
func start(t testing.TB, src string) *pluginapi.Client {
	t.Helper()
	cmd := exec.Command(pluginBin)
	offer, err := pluginapi.OfferDataPath(cmd)
	if err != nil {
		t.Fatal(err)
	}
	pc := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  pluginapi.Handshake,
		VersionedPlugins: pluginapi.ClientPluginSets(),
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		Logger:           hclog.New(&hclog.LoggerOptions{Output: testOutput(t), Level: hclog.Trace}),
		StartTimeout:     20 * time.Second,
	})
	t.Cleanup(pc.Kill)
	rpc, err := pc.Client()
	offer.Started()
	if err != nil {
		offer.Close()
		t.Fatal(err)
	}
	raw, err := rpc.Dispense(pluginapi.PluginKey)
	if err != nil {
		t.Fatal(err)
	}
	c := raw.(*pluginapi.Client)
	c.UseDataPath(offer)
	t.Cleanup(func() { c.Close() })
	ctx := context.Background()
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !info.Has(pluginapi.ServiceCompute) || info.Name != "compute" || !c.DataPath() {
		t.Fatalf("info = %+v, data path in use: %v", info, c.DataPath())
	}
	if err := configure(t, c, info, src); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Shutdown(context.Background()) })
	return c
}

// configure sends the HCL body src, decoded by the plugin's schema.
func configure(t testing.TB, c *pluginapi.Client, info *pluginapi.Info, src string) error {
	t.Helper()
	f, diags := hclsyntax.ParseConfig([]byte(src), "test.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	v, diags := hcldec.Decode(f.Body, info.Schema.Spec(), nil)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	return c.Configure(context.Background(), pluginapi.Config{Value: v})
}

// testOutput is where the plugin's log goes: the test's log with -v.
func testOutput(t testing.TB) io.Writer {
	if testing.Verbose() {
		return os.Stderr
	}
	return io.Discard
}

type result struct {
	status  int
	headers map[string]string
	body    string
}

func call(t testing.TB, c *pluginapi.Client, tenant, url string, depth uint32) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := c.Compute().Handle(ctx, &pluginapi.Request{Head: &pluginv1.RequestHead{
		Method: "GET", Url: url, Host: "example.test", Tenant: tenant, Depth: depth, ContentLength: -1,
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	r := result{status: int(resp.Head.GetStatus()), headers: map[string]string{}, body: string(b)}
	for _, h := range resp.Head.GetHeaders() {
		r.headers[h.GetName()] = strings.Join(h.GetValues(), ", ")
	}
	return r
}

func tenantBlock(name, prog, extra string) string {
	if !strings.Contains(extra, "backend") {
		extra += "\n  backend = \"process\""
	}
	return fmt.Sprintf("tenant %q {\n  program = %q\n%s\n}\n", name, filepath.Join(programsDir, prog), extra)
}

func TestPluginEndToEnd(t *testing.T) {
	c := start(t, tenantBlock("hello", "hello", "")+
		tenantBlock("counter", "counter", "")+
		tenantBlock("kept", "counter", "  ephemeral = false\n  concurrency = 1")+
		tenantBlock("json", "json", "")+
		tenantBlock("png", "png", "")+
		tenantBlock("greet", "greet", "")+
		tenantBlock("spin", "spin", `  max_request_time = "200ms"`))
	r := call(t, c, "hello", "/some/path?q=1", 0)
	if r.status != 200 || r.body != "hello from /some/path" || r.headers["Content-Type"] != "text/plain" || r.headers["Cache-Control"] != "no-store" {
		t.Errorf("hello: %+v", r)
	}
	for i := 0; i < 3; i++ {
		if r := call(t, c, "counter", "/", 0); r.body != "1" {
			t.Errorf("ephemeral counter request %d: %q, want 1", i, r.body)
		}
		if r := call(t, c, "kept", "/", 0); r.body != strconv.Itoa(i+1) {
			t.Errorf("kept counter request %d: %q, want %d", i, r.body, i+1)
		}
	}
	r = call(t, c, "json", "/items/2", 0)
	if r.status != 200 || r.body != `{"id":2,"name":"banana-2","price":0.50}` || r.headers["Cache-Control"] != "max-age=60, stale-while-revalidate=10" {
		t.Errorf("json: %+v", r)
	}
	r = call(t, c, "png", "/img?w=20&h=10&c=ff0000", 0)
	if r.status != 200 || !strings.HasPrefix(r.body, "\x89PNG\r\n\x1a\n") || r.headers["Content-Type"] != "image/png" {
		t.Errorf("png: %d %q", r.status, r.headers)
	}
	r = call(t, c, "greet", "/greet/de", 0)
	if r.body != "hallo, example.test" {
		t.Errorf("greet: %+v", r)
	}
	start := time.Now()
	r = call(t, c, "spin", "/", 0)
	if r.status != 504 || time.Since(start) > 5*time.Second {
		t.Errorf("spin: %+v after %v", r, time.Since(start))
	}
	// The plugin serves on.
	if r := call(t, c, "hello", "/again", 0); r.body != "hello from /again" {
		t.Errorf("after spin: %+v", r)
	}
}

// selfSocket stands in for the host's self-request socket: it serves
// /data/N (N bytes), /missing (404), and sends the fetch program's own
// URLs back to it through the plugin, answering 508 past max depth 4, as
// the host does.
func selfSocket(t *testing.T, c **pluginapi.Client) string {
	sock := filepath.Join(t.TempDir(), "self.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		depth, _ := strconv.Atoi(r.Header.Get("Edgehost-Depth"))
		depth++
		switch {
		case depth > 4:
			w.WriteHeader(http.StatusLoopDetected)
		case strings.HasPrefix(r.URL.Path, "/data/"):
			n, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/data/"))
			w.Write([]byte(strings.Repeat("x", n)))
		case r.URL.Path == "/fetch":
			res := call(t, *c, "fetch", r.URL.RequestURI(), uint32(depth))
			w.WriteHeader(res.status)
			io.WriteString(w, res.body)
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return sock
}

// The same program through both backends and auto, in the real plugin:
// the same bytes.
func TestPluginBackends(t *testing.T) {
	backends := []string{"process", "auto"}
	if _, err := sandbox.CallCost("kvm"); err != nil {
		if os.Getenv("EDGEHOST_KVM_REQUIRE") != "" {
			t.Fatalf("EDGEHOST_KVM_REQUIRE is set but the kvm backend does not run: %v", err)
		}
		t.Logf("kvm backend not tested: %v", err)
	} else {
		backends = append(backends, "kvm")
	}
	var src string
	for _, be := range backends {
		src += tenantBlock("json-"+be, "json", fmt.Sprintf("  backend = %q", be))
	}
	c := start(t, src)
	var first result
	for i, be := range backends {
		r := call(t, c, "json-"+be, "/items/42", 0)
		if i == 0 {
			first = r
			if r.status != 200 || !strings.HasPrefix(r.body, `{"id":42,`) {
				t.Fatalf("%s: %+v", be, r)
			}
		} else if fmt.Sprint(r) != fmt.Sprint(first) {
			t.Errorf("%s: %+v, want %+v as on %s", be, r, first, backends[0])
		}
	}
}

func TestPluginFetch(t *testing.T) {
	var c *pluginapi.Client
	sock := selfSocket(t, &c)
	c = start(t, fmt.Sprintf("self_socket = %q\n", sock)+tenantBlock("fetch", "fetch", "  concurrency = 8"))
	sum := sha256.Sum256([]byte(strings.Repeat("x", 28<<10)))
	want := fmt.Sprintf("len=%d sha256=%s", 28<<10, hex.EncodeToString(sum[:]))
	if r := call(t, c, "fetch", "/fetch?src=/data/28672", 0); r.status != 200 || r.body != want {
		t.Errorf("fetch: %+v, want %q", r, want)
	}
	if r := call(t, c, "fetch", "/fetch?src=/missing", 0); r.status != 404 {
		t.Errorf("fetch of a missing path: %+v", r)
	}
	// No src: the program fetches itself; the depth ends the loop.
	start := time.Now()
	if r := call(t, c, "fetch", "/fetch", 0); r.status != http.StatusLoopDetected {
		t.Errorf("self-loop: %+v, want 508", r)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("self-loop took %v", d)
	}
}

func TestPluginBadConfig(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{tenantBlock("x", "nope", ""), "no such file"},
		{tenantBlock("x", "hello", `  max_memory = "lots"`), "max_memory"},
		{tenantBlock("x", "hello", `  max_request_time = "-1s"`), "max_request_time"},
		{tenantBlock("x", "hello", `  backend = "vmware"`), "backend"},
		{tenantBlock("x", "../sha256.h", ""), "tenant"},
	} {
		s := tc.src
		if strings.Contains(s, "../sha256.h") {
			s = strings.Replace(s, filepath.Join(programsDir, "../sha256.h"), "examples/sha256.h", 1)
		}
		pc := plugin.NewClient(&plugin.ClientConfig{
			HandshakeConfig: pluginapi.Handshake, VersionedPlugins: pluginapi.ClientPluginSets(),
			Cmd: exec.Command(pluginBin), AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC}, AutoMTLS: true,
			Logger: hclog.New(&hclog.LoggerOptions{Output: io.Discard}),
		})
		rpc, err := pc.Client()
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := rpc.Dispense(pluginapi.PluginKey)
		c := raw.(*pluginapi.Client)
		info, _ := c.Info(context.Background())
		f, _ := hclsyntax.ParseConfig([]byte(s), "test.hcl", hcl.InitialPos)
		v, diags := hcldec.Decode(f.Body, info.Schema.Spec(), nil)
		if diags.HasErrors() {
			t.Fatal(diags)
		}
		err = c.Configure(context.Background(), pluginapi.Config{Value: v})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error about %s", tc.src, err, tc.want)
		}
		pc.Kill()
	}
}

// TestPluginReconfigureInPlace: a Configure that changes a tenant boots
// the new one beside the old; requests running or queued on the old one
// finish there (none fails), and a Configure that fails changes nothing.
func TestPluginReconfigureInPlace(t *testing.T) {
	spin := "spin"
	body := func(limit string) string {
		return tenantBlock("s", spin, `backend = "process"
    concurrency = 1
    max_request_time = "`+limit+`"
    max_queue_time = "5s"`)
	}
	c := start(t, body("1s"))
	info, err := c.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	reconfigure := func(src string) error { return configure(t, c, info, src) }
	// One request runs (it spins to its 1 s limit: 504), two queue behind
	// it (a queued request's wait counts against its own 1 s: 503). With
	// the old tenant closed under them, they would get an error instead.
	const n = 3
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			resp, err := c.Compute().Handle(ctx, &pluginapi.Request{Head: &pluginv1.RequestHead{
				Method: "GET", Url: "/", Host: "example.test", Tenant: "s", ContentLength: -1}})
			if err == nil {
				if st := resp.Head.GetStatus(); st != 504 && st != 503 {
					err = fmt.Errorf("status %d, want the old tenant's 504 or 503", st)
				}
				resp.Body.Close()
			}
			errs <- err
		}()
	}
	time.Sleep(150 * time.Millisecond)
	if err := reconfigure(body("900ms")); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		if err := <-errs; err != nil {
			t.Errorf("a request running or queued during the switch: %v", err)
		}
	}
	// A failing Configure (no such program) leaves the running tenant.
	if err := reconfigure(tenantBlock("s", spin+"-missing", `backend = "process"`)); err == nil {
		t.Fatal("Configure with a missing program succeeded")
	}
	start := time.Now()
	if r := call(t, c, "s", "/", 0); r.status != 504 || time.Since(start) > 2*time.Second {
		t.Fatalf("after a failed Configure: %d after %v", r.status, time.Since(start))
	}
}
