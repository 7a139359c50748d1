package integration

import (
	"encoding/json"
	"fmt"
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

type pluginStatus struct {
	Name     string `json:"name"`
	Version  string `json:"version"`
	PID      int    `json:"pid"`
	State    string `json:"state"`
	Restarts uint64 `json:"restarts"`
	Reloads  uint64 `json:"reloads"`
}

func (e *edge) plugin(name string) pluginStatus {
	e.t.Helper()
	r := e.admin("GET", "/plugins", "")
	var list []pluginStatus
	if err := json.Unmarshal(r.Body, &list); err != nil {
		// Some versions wrap the list in an object.
		var wrapped struct{ Plugins []pluginStatus }
		if err2 := json.Unmarshal(r.Body, &wrapped); err2 != nil {
			e.t.Fatalf("GET /plugins: %v: %s", err, r.Body)
		}
		list = wrapped.Plugins
	}
	for _, p := range list {
		if p.Name == name {
			return p
		}
	}
	e.t.Fatalf("plugin %s not listed: %s", name, r.Body)
	return pluginStatus{}
}

// load runs GETs of path on n goroutines until stop is closed and counts
// the answers by status.
func load(e *edge, n int, stop <-chan struct{}, path string) (ok, failed *atomic.Int64, wg *sync.WaitGroup) {
	ok, failed, wg = &atomic.Int64{}, &atomic.Int64{}, &sync.WaitGroup{}
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := client.Get(e.url(path))
				if err == nil {
					resp.Body.Close()
				}
				if err == nil && resp.StatusCode == 200 {
					ok.Add(1)
				} else {
					failed.Add(1)
				}
			}
		}()
	}
	return ok, failed, wg
}

// TestPluginCrash: kill -9 the slicer while clients hit the cache. Hits
// never fail; requests needing the plugin fail fast while it is down and
// work again within a couple of seconds; the restart is counted.
func TestPluginCrash(t *testing.T) {
	o := startOrigin(t)
	e := newEdge(t, sliceConfig(o.URL, "fetch", "pass"))
	wantStatus(t, e.get("/bytes/1k"), 200)
	before := e.plugin("slicer")
	if before.PID == 0 || before.State != "running" {
		t.Fatalf("slicer not running: %+v", before)
	}
	stop := make(chan struct{})
	ok, failed, wg := load(e, 4, stop, "/bytes/1k")
	time.Sleep(200 * time.Millisecond)
	if err := syscall.Kill(before.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// While it is down or coming back: a sliced cold request answers fast.
	start := time.Now()
	r := e.get("/big/2m?x=1")
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("a request needing the crashed plugin took %v", d)
	}
	if r.Status != 200 && r.Status != 503 {
		t.Fatalf("request needing the crashed plugin: %d", r.Status)
	}
	deadline := time.Now().Add(5 * time.Second)
	var recovered time.Duration
	for time.Now().Before(deadline) {
		if st := e.plugin("slicer"); st.State == "running" && st.PID != before.PID {
			if r := e.get(fmt.Sprintf("/big/2m?n=%d", time.Now().UnixNano())); r.Status == 200 {
				recovered = time.Since(start)
				break
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if recovered == 0 {
		t.Fatalf("slicer not back within 5s: %+v", e.plugin("slicer"))
	}
	t.Logf("slicer back after %v; %d hits during the crash, %d failed", recovered, ok.Load(), failed.Load())
	if failed.Load() != 0 {
		t.Fatalf("%d cache hits failed while the plugin was down", failed.Load())
	}
	if ok.Load() == 0 {
		t.Fatal("no hits served during the test")
	}
	if got := e.plugin("slicer").Restarts; got < 1 {
		t.Fatalf("restarts = %d, want >= 1", got)
	}
	if e.metric(`edgehost_plugin_restarts_total{plugin="slicer"}`) < 1 {
		t.Error("metrics do not count the restart")
	}
}

// TestPluginSwapUnderLoad: a new binary (another version) swapped in with
// a reload while sliced requests flow: no request fails.
func TestPluginSwapUnderLoad(t *testing.T) {
	o := startOrigin(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "slicer")
	build := func(version string) {
		out, err := exec.Command("go", "build", "-ldflags", "-X main.version="+version, "-o", bin+".new", "github.com/edgehost/edgehost/plugins/slicer").CombinedOutput()
		if err != nil {
			t.Fatalf("build: %v\n%s", err, out)
		}
		if err := os.Rename(bin+".new", bin); err != nil {
			t.Fatal(err)
		}
	}
	build("v1")
	cfg := strings.Replace(sliceConfig(o.URL, "fetch", "pass"), `plugin "slicer" {}`, fmt.Sprintf("plugin \"slicer\" {\n  path = %q\n}", bin), 1)
	e := newEdge(t, cfg)
	if v := e.plugin("slicer").Version; v != "v1" {
		t.Fatalf("version %q, want v1", v)
	}
	stop := make(chan struct{})
	ok, failed, wg := load(e, 4, stop, "/big/3m")
	time.Sleep(300 * time.Millisecond)
	build("v2")
	if r := e.admin("POST", "/plugins/slicer/reload", ""); r.Status != 200 {
		t.Fatalf("reload: %d %s", r.Status, r.Body)
	}
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d of %d requests failed across the swap", failed.Load(), failed.Load()+ok.Load())
	}
	if v := e.plugin("slicer").Version; v != "v2" {
		t.Fatalf("after reload: version %q, want v2", v)
	}
	out, err := exec.Command(edgehostBin(), "plugins", "-config", e.cfg).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "v2") {
		t.Fatalf("edgehost plugins: %v\n%s", err, out)
	}
	// A binary that fails its checks leaves the old one serving.
	os.WriteFile(bin, []byte("#!/bin/sh\necho not a plugin\n"), 0o755)
	if r := e.admin("POST", "/plugins/slicer/reload", ""); r.Status == 200 {
		t.Fatal("a bad binary was accepted")
	}
	if v := e.plugin("slicer").Version; v != "v2" {
		t.Fatalf("after a failed reload: version %q, want v2", v)
	}
	wantStatus(t, e.get("/big/3m?after=bad"), 200)
}

// TestPluginChecksumMismatch: a pinned digest that does not match is a
// clear startup error.
func TestPluginChecksumMismatch(t *testing.T) {
	o := startOrigin(t)
	e := &edge{t: t, dir: t.TempDir(), HTTP: freePort(t), Admin: freePort(t)}
	e.writeConfig(strings.Replace(sliceConfig(o.URL, "fetch", "pass"), `plugin "slicer" {}`,
		"plugin \"slicer\" {\n  sha256 = \""+strings.Repeat("ab", 32)+"\"\n}", 1))
	cmd := exec.Command(edgehostBin(), "run", "-config", e.cfg)
	cmd.Dir = e.dir
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatal("edgehost started with a wrong plugin checksum")
	}
	if !strings.Contains(strings.ToLower(string(out)), "sha256") || !strings.Contains(string(out), "config.hcl:") {
		t.Fatalf("no clear checksum error with its config line:\n%s", out)
	}
}
