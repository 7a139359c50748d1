package pluginhost

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/edgehost/edgehost/plugins/pluginapi"
	pluginv1 "github.com/edgehost/edgehost/proto/edgehost/plugin/v1"
)

func decide(ctx context.Context, m *Manager, name string, headers ...string) (*pluginv1.DecideResponse, error) {
	s, err := m.Slicer(name)
	if err != nil {
		return nil, err
	}
	req := &pluginv1.DecideRequest{Request: &pluginv1.RequestHead{Method: "GET", Url: "/"}}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Request.Headers = append(req.Request.Headers, &pluginv1.Header{Name: headers[i], Values: []string{headers[i+1]}})
	}
	return s.Decide(ctx, req)
}

func TestLoadStartsAndConfigures(t *testing.T) {
	env := newManager(t)
	t.Setenv("EDGEHOST_TEST_HOST_SECRET", "must-not-leak")
	spec := parseSpec(t, "alpha", "", "greeting = \"hello\"\nlimit = 2\nroute \"r1\" { path = \"/x\" }\n")
	spec.Path = bins.v1
	spec.Env = []string{"FOO=bar"}
	load(t, env, spec)

	st := statusOf(t, env.m, "alpha")
	if st.State != StateRunning || st.Version != "v1" || st.Kind != "test" || st.PID <= 0 {
		t.Fatalf("status = %+v", st)
	}
	if got, want := st.Digest, digestOf(t, bins.v1); got != want {
		t.Errorf("digest = %s, want %s", got, want)
	}
	if !alive(st.PID) {
		t.Errorf("plugin pid %d is not alive", st.PID)
	}
	// It runs from the content-addressed copy, not from the configured file.
	exe, err := os.Readlink("/proc/" + itoa(st.PID) + "/exe")
	if err == nil {
		if want := filepath.Join(env.m.stateDir(), "plugins", st.Digest, filepath.Base(bins.v1)); exe != want {
			t.Errorf("plugin runs %s, want %s", exe, want)
		}
	}
	resp, err := decide(context.Background(), env.m, "alpha")
	if err != nil || resp.GetReason() != "v1 hello" {
		t.Fatalf("decide = %v, %v; want reason %q", resp, err, "v1 hello")
	}
	// No host environment: only the spec's and the handshake's variables.
	resp, err = decide(context.Background(), env.m, "alpha", "x-test-action", "env")
	if err != nil {
		t.Fatal(err)
	}
	environ := resp.GetReason()
	if strings.Contains(environ, "EDGEHOST_TEST_HOST_SECRET") || strings.Contains(environ, "PATH=") {
		t.Errorf("plugin inherited the host's environment:\n%s", environ)
	}
	if !strings.Contains(environ, "FOO=bar") {
		t.Errorf("plugin environment lacks the spec's FOO=bar:\n%s", environ)
	}
	// The plugin's hclog lines are folded into the host's log under its name.
	waitFor(t, 2*time.Second, "the plugin's log line", func() bool {
		for _, l := range strings.Split(env.log.String(), "\n") {
			if strings.Contains(l, "plugin=alpha") && strings.Contains(l, "msg=configured") && strings.Contains(l, "greeting=hello") {
				return true
			}
		}
		return false
	})
	if _, err := env.m.Compute("nope"); !errors.Is(err, ErrUnknownPlugin) {
		t.Errorf("unknown plugin: err = %v", err)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

func TestLoadDiagnostics(t *testing.T) {
	needBins(t)
	tests := []struct {
		name     string
		path     string
		sha      string
		src      string
		summary  string
		detail   string
		wantLine int // 0: the block's range
	}{
		{name: "checksum mismatch", path: bins.v1, sha: strings.Repeat("ab", 32), src: `greeting = "x"`,
			summary: "Plugin binary checksum mismatch", detail: "pins sha256"},
		{name: "unknown setting", path: bins.v1, src: "greeting = \"x\"\ncolour = \"red\"\n",
			summary: "Unsupported argument", wantLine: 2},
		{name: "mistyped setting", path: bins.v1, src: "greeting = \"x\"\n\nlimit = \"lots\"\n",
			summary: "Incorrect attribute value type", wantLine: 3},
		{name: "missing setting", path: bins.v1, src: "limit = 1\n",
			summary: "Missing required argument"},
		{name: "refused configuration", path: bins.v1, src: `greeting = "fail"`,
			summary: "Plugin refused its configuration", detail: `greeting "fail" refused`},
		{name: "missing binary", path: filepath.Join(bins.dir, "nope"), src: `greeting = "x"`,
			summary: "Cannot read plugin binary", detail: "no such file"},
		{name: "crash at start", path: bins.crash, src: `greeting = "x"`,
			summary: "Plugin failed to start", detail: "crashing at start as built to"},
		{name: "wrong protocol version", path: bins.proto2, src: `greeting = "x"`,
			summary: "Plugin failed to start", detail: ErrProtocol.Error()},
		{name: "bad handshake", path: bins.garbage, src: `greeting = "x"`,
			summary: "Plugin failed to start", detail: "Unrecognized remote plugin message"},
		{name: "shell script", path: bins.script, src: `greeting = "x"`,
			summary: "Plugin failed to start", detail: "Unrecognized remote plugin message"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newManager(t)
			spec := parseSpec(t, "p", tt.path, tt.src)
			spec.SHA256 = tt.sha
			diags := env.m.Load(context.Background(), []Spec{spec})
			if !diags.HasErrors() {
				t.Fatalf("load succeeded, want %q", tt.summary)
			}
			d := diags[0]
			if d.Summary != tt.summary || !strings.Contains(d.Detail, tt.detail) {
				t.Fatalf("diagnostic = %q: %q; want %q containing %q", d.Summary, d.Detail, tt.summary, tt.detail)
			}
			if d.Subject == nil || d.Subject.Filename != "p.hcl" {
				t.Fatalf("diagnostic has no subject in p.hcl: %v", d.Subject)
			}
			if tt.wantLine != 0 && d.Subject.Start.Line != tt.wantLine {
				t.Errorf("diagnostic at line %d, want %d", d.Subject.Start.Line, tt.wantLine)
			}
			if len(env.m.Status()) != 0 {
				t.Errorf("a failed plugin was registered: %+v", env.m.Status())
			}
		})
	}
}

func TestCrashRelaunch(t *testing.T) {
	env := newManager(t)
	load(t, env, parseSpec(t, "c", bins.v1, `greeting = "hi"`))
	old := statusOf(t, env.m, "c")

	// A call in flight when the plugin dies is idempotent: it is retried
	// once on the relaunched instance.
	inflight := make(chan error, 1)
	go func() {
		_, err := decide(context.Background(), env.m, "c", "x-test-action", "sleep=300ms")
		inflight <- err
	}()
	time.Sleep(100 * time.Millisecond)

	// A load generator: every call either succeeds or fails fast with
	// ErrUnavailable.
	ctx, stop := context.WithCancel(context.Background())
	var ok, unavailable, other atomic.Int64
	var slowest atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				start := time.Now()
				cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				_, err := decide(cctx, env.m, "c")
				cancel()
				switch {
				case err == nil:
					ok.Add(1)
				case errors.Is(err, ErrUnavailable):
					unavailable.Add(1)
					if d := int64(time.Since(start)); d > slowest.Load() {
						slowest.Store(d)
					}
				case ctx.Err() != nil:
				default:
					other.Add(1)
					t.Errorf("call failed with a non-ErrUnavailable error: %v", err)
				}
				time.Sleep(2 * time.Millisecond)
			}
		}()
	}
	killedAt := time.Now()
	if err := syscall.Kill(old.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, "the relaunch", func() bool {
		st := statusOf(t, env.m, "c")
		return st.State == StateRunning && st.PID != old.PID
	})
	recovered := time.Since(killedAt)
	time.Sleep(100 * time.Millisecond)
	stop()
	wg.Wait()
	if err := <-inflight; err != nil {
		t.Errorf("the in-flight idempotent call was not retried: %v", err)
	}
	st := statusOf(t, env.m, "c")
	if st.Restarts != 1 || st.Version != "v1" {
		t.Errorf("status after relaunch = %+v, want 1 restart of v1", st)
	}
	if alive(old.PID) {
		t.Errorf("killed pid %d still alive", old.PID)
	}
	if metrics := metricsText(t, env.m); !strings.Contains(metrics, `edgehost_plugin_restarts_total{plugin="c"} 1`) ||
		!strings.Contains(metrics, `edgehost_plugin_up{plugin="c"} 1`) {
		t.Errorf("metrics do not count the restart:\n%s", metrics)
	}
	// Calls that needed the plugin while it was down were refused at once.
	if d := time.Duration(slowest.Load()); d > 500*time.Millisecond {
		t.Errorf("slowest ErrUnavailable took %v, want a fast failure", d)
	}
	t.Logf("recovered in %v; calls: %d ok, %d unavailable (slowest %v)", recovered, ok.Load(), unavailable.Load(), time.Duration(slowest.Load()))
	if ok.Load() == 0 {
		t.Errorf("no call succeeded")
	}
}

func TestHungHealthRelaunch(t *testing.T) {
	env := newManager(t)
	load(t, env, parseSpec(t, "h", bins.v1, `greeting = "hi"`))
	old := statusOf(t, env.m, "h")
	if _, err := decide(context.Background(), env.m, "h", "x-test-action", "hang-health"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 8*time.Second, "a relaunch after failed health checks", func() bool {
		st := statusOf(t, env.m, "h")
		return st.State == StateRunning && st.PID != old.PID
	})
	st := statusOf(t, env.m, "h")
	if st.Restarts != 1 {
		t.Errorf("restarts = %d, want 1", st.Restarts)
	}
	waitFor(t, 3*time.Second, "the hung instance to be gone", func() bool { return !alive(old.PID) })
}

func TestOverwrittenBinaryChangesNothingUntilReload(t *testing.T) {
	env := newManager(t)
	path := filepath.Join(t.TempDir(), "edgehost-plugin-o")
	copyFile(t, bins.v1, path)
	load(t, env, parseSpec(t, "o", path, `greeting = "hi"`))
	old := statusOf(t, env.m, "o")

	// Overwrite in place (same inode) and kill: the relaunch runs the
	// pinned copy.
	b, err := os.ReadFile(bins.v2)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(old.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 3*time.Second, "the relaunch", func() bool {
		st := statusOf(t, env.m, "o")
		return st.State == StateRunning && st.PID != old.PID
	})
	if st := statusOf(t, env.m, "o"); st.Version != "v1" || st.Digest != old.Digest {
		t.Fatalf("after relaunch: %+v, want v1 with digest %s", st, old.Digest)
	}
	if err := env.m.Reload(context.Background(), "o"); err != nil {
		t.Fatal(err)
	}
	if st := statusOf(t, env.m, "o"); st.Version != "v2" || st.Digest != digestOf(t, bins.v2) {
		t.Fatalf("after reload: %+v, want v2", st)
	}
}

func TestReloadUnderLoad(t *testing.T) {
	env := newManager(t)
	path := filepath.Join(t.TempDir(), "edgehost-plugin-s")
	copyFile(t, bins.v1, path)
	load(t, env, parseSpec(t, "s", path, `greeting = "hi"`))
	old := statusOf(t, env.m, "s")

	// A watch that must move to the new instance.
	var watchMu sync.Mutex
	var watched []string
	wctx, wstop := context.WithCancel(context.Background())
	defer wstop()
	watchDone := make(chan error, 1)
	f, err := env.m.File("s")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		watchDone <- f.Watch(wctx, func(st *pluginv1.ReaderState) error {
			watchMu.Lock()
			watched = append(watched, st.GetReader()+"="+st.GetMessage())
			watchMu.Unlock()
			return nil
		})
	}()

	ctx, stop := context.WithCancel(context.Background())
	var calls, failures atomic.Int64
	var versions sync.Map
	var wg sync.WaitGroup
	for g := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				var err error
				switch g % 3 {
				case 0: // a slow call, in flight across the switch
					var r *pluginv1.DecideResponse
					r, err = decide(context.Background(), env.m, "s", "x-test-action", "sleep=50ms")
					if err == nil {
						versions.Store(strings.Fields(r.GetReason())[0], true)
					}
				case 1:
					_, err = decide(context.Background(), env.m, "s")
				case 2: // a streamed body
					err = echo(context.Background(), env.m, "s", 256<<10)
				}
				calls.Add(1)
				if err != nil {
					failures.Add(1)
					t.Errorf("call failed during the swap: %v", err)
				}
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	copyFile(t, bins.v2, path)
	if err := env.m.Reload(context.Background(), "s"); err != nil {
		t.Fatalf("reload: %v", err)
	}
	time.Sleep(200 * time.Millisecond)
	stop()
	wg.Wait()

	st := statusOf(t, env.m, "s")
	if st.Version != "v2" || st.Reloads != 1 || st.State != StateRunning {
		t.Errorf("status after reload = %+v", st)
	}
	if alive(old.PID) {
		t.Errorf("old instance %d still alive after the reload", old.PID)
	}
	if _, ok := versions.Load("v1"); !ok {
		t.Errorf("no call was served by v1")
	}
	if _, ok := versions.Load("v2"); !ok {
		t.Errorf("no call was served by v2")
	}
	waitFor(t, 2*time.Second, "the watch to move to v2", func() bool {
		watchMu.Lock()
		defer watchMu.Unlock()
		return strings.Contains(strings.Join(watched, " "), "a=v2")
	})
	wstop()
	if err := <-watchDone; err != nil {
		t.Errorf("watch ended with %v", err)
	}
	t.Logf("%d calls during the swap, %d failed", calls.Load(), failures.Load())
}

// echo sends n bytes through the plugin's Compute echo and checks them.
func echo(ctx context.Context, m *Manager, name string, n int) error {
	c, err := m.Compute(name)
	if err != nil {
		return err
	}
	body := bytes.Repeat([]byte{'e'}, n)
	resp, err := c.Handle(ctx, &pluginapi.Request{
		Head: &pluginv1.RequestHead{Method: "POST", Url: "/", ContentLength: int64(n)},
		Body: bytes.NewReader(body),
	})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if !bytes.Equal(got, body) {
		return errors.New("echo differs")
	}
	return nil
}

func TestReloadRefusesBadBinary(t *testing.T) {
	needBins(t)
	tests := []struct {
		name, bin, want string
		pin             bool
	}{
		{"crash at start", bins.crash, "crashing at start", false},
		{"wrong protocol", bins.proto2, ErrProtocol.Error(), false},
		{"bad handshake", bins.garbage, "Unrecognized remote plugin message", false},
		{"checksum mismatch", bins.v2, "checksum mismatch", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newManager(t)
			path := filepath.Join(t.TempDir(), "edgehost-plugin-b")
			copyFile(t, bins.v1, path)
			spec := parseSpec(t, "b", path, `greeting = "hi"`)
			if tt.pin {
				spec.SHA256 = digestOf(t, bins.v1)
			}
			load(t, env, spec)
			old := statusOf(t, env.m, "b")
			copyFile(t, tt.bin, path)
			err := env.m.Reload(context.Background(), "b")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("reload error = %v, want one containing %q", err, tt.want)
			}
			st := statusOf(t, env.m, "b")
			if st.PID != old.PID || st.Version != "v1" || st.State != StateRunning || !strings.Contains(st.LastError, "reload failed") {
				t.Fatalf("after a refused reload: %+v; want the old instance serving", st)
			}
			if _, err := decide(context.Background(), env.m, "b"); err != nil {
				t.Fatalf("old instance does not serve: %v", err)
			}
		})
	}
}

func TestLoadAgainSwapsAndRemoves(t *testing.T) {
	env := newManager(t)
	load(t, env, parseSpec(t, "k", bins.v1, `greeting = "one"`), parseSpec(t, "gone", bins.v1, `greeting = "x"`))
	gone := statusOf(t, env.m, "gone")
	load(t, env, parseSpec(t, "k", bins.v2, `greeting = "two"`))
	resp, err := decide(context.Background(), env.m, "k")
	if err != nil || resp.GetReason() != "v2 two" {
		t.Fatalf("after load: %v, %v; want v2 two", resp, err)
	}
	if len(env.m.Status()) != 1 {
		t.Errorf("removed plugin still listed: %+v", env.m.Status())
	}
	if alive(gone.PID) {
		t.Errorf("removed plugin's process %d still alive", gone.PID)
	}
	if _, err := decide(context.Background(), env.m, "gone"); !errors.Is(err, ErrUnknownPlugin) {
		t.Errorf("call to a removed plugin: %v", err)
	}
	// The same block again changes nothing; a changed one swaps.
	before := statusOf(t, env.m, "k")
	load(t, env, parseSpec(t, "k", bins.v2, "\n\ngreeting = \"two\""))
	if st := statusOf(t, env.m, "k"); st.PID != before.PID || st.Reloads != before.Reloads {
		t.Errorf("an unchanged block swapped the plugin: %+v, was %+v", st, before)
	}
	// A block that no longer decodes is reported at its line; the old
	// instance serves on.
	diags := env.m.Load(context.Background(), []Spec{parseSpec(t, "k", bins.v2, "greeting = \"two\"\nbogus = 1\n")})
	if !diags.HasErrors() || diags[0].Subject.Start.Line != 2 {
		t.Fatalf("load of a bad block: %v", diags)
	}
	// A refused configuration keeps the old instance.
	diags = env.m.Load(context.Background(), []Spec{parseSpec(t, "k", bins.v1, `greeting = "fail"`)})
	if !diags.HasErrors() {
		t.Fatal("a refused configuration loaded")
	}
	if resp, err := decide(context.Background(), env.m, "k"); err != nil || resp.GetReason() != "v2 two" {
		t.Fatalf("after a failed load: %v, %v; want v2 two still", resp, err)
	}
}

func TestShutdownLeavesNoProcesses(t *testing.T) {
	env := newManager(t)
	load(t, env, parseSpec(t, "a", bins.v1, `greeting = "x"`), parseSpec(t, "b", bins.v2, `greeting = "y"`))
	var pids []int
	for _, st := range env.m.Status() {
		pids = append(pids, st.PID)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := env.m.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	for _, pid := range pids {
		if alive(pid) {
			t.Errorf("pid %d alive after Shutdown", pid)
		}
	}
	if _, err := decide(context.Background(), env.m, "a"); !errors.Is(err, ErrUnavailable) {
		t.Errorf("call after shutdown: %v, want ErrUnavailable", err)
	}
	if diags := env.m.Load(context.Background(), []Spec{parseSpec(t, "c", bins.v1, `greeting = "x"`)}); !diags.HasErrors() {
		t.Errorf("load after shutdown succeeded")
	}
}

func TestPluginExitsWhenHostIsKilled(t *testing.T) {
	needBins(t)
	for _, tt := range []struct {
		name       string
		noLifeline bool
	}{
		{"lifeline", false},
		{"parent pid watchdog", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			host, pid := startHelperHost(t, tt.noLifeline)
			if !alive(pid) {
				t.Fatalf("plugin %d not running", pid)
			}
			if err := host.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			_ = host.Wait()
			start := time.Now()
			waitFor(t, 3*time.Second, "the orphaned plugin to exit", func() bool { return !alive(pid) })
			t.Logf("plugin exited %v after its host was killed", time.Since(start))
		})
	}
}

func TestSpecDiagnosticsRange(t *testing.T) {
	// A checksum diagnostic points at the sha256 attribute when the loader
	// gives its range.
	env := newManager(t)
	spec := parseSpec(t, "r", bins.v1, `greeting = "x"`)
	spec.SHA256 = strings.Repeat("0", 64)
	spec.SHA256Range = hcl.Range{Filename: "main.hcl", Start: hcl.Pos{Line: 7, Column: 3}, End: hcl.Pos{Line: 7, Column: 20}}
	diags := env.m.Load(context.Background(), []Spec{spec})
	if len(diags) != 1 || diags[0].Subject.Filename != "main.hcl" || diags[0].Subject.Start.Line != 7 {
		t.Fatalf("diags = %v", diags)
	}
}

func TestWatchFollowsRelaunchAndProcessor(t *testing.T) {
	env := newManager(t)
	load(t, env, parseSpec(t, "w", bins.v1, `greeting = "x"`))
	f, err := env.m.File("w")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	n := 0
	done := make(chan error, 1)
	go func() {
		done <- f.Watch(ctx, func(*pluginv1.ReaderState) error {
			mu.Lock()
			n++
			mu.Unlock()
			return nil
		})
	}()
	count := func() int { mu.Lock(); defer mu.Unlock(); return n }
	waitFor(t, 2*time.Second, "the first states", func() bool { return count() == 2 })
	old := statusOf(t, env.m, "w")
	if err := syscall.Kill(old.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// The relaunched instance replays both readers' states.
	waitFor(t, 3*time.Second, "the states of the relaunched instance", func() bool { return count() == 4 })
	cancel()
	if err := <-done; err != nil {
		t.Errorf("watch: %v", err)
	}

	p, err := env.m.Processor("w")
	if err != nil {
		t.Fatal(err)
	}
	resp, err := p.Process(context.Background(), &pluginv1.ProcessHead{Processor: "upper", Response: &pluginv1.ResponseHead{Status: 200}}, strings.NewReader("shout"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || string(got) != "SHOUT" {
		t.Errorf("process = %q, %v", got, err)
	}
	if st := statusOf(t, env.m, "w"); st.Calls == 0 || st.Errors != 0 {
		t.Errorf("call counters = %d calls, %d errors", st.Calls, st.Errors)
	}
}

// trickle is a request body that yields a KiB at a time, slowly; before
// its end it waits (at most 20s) for hold to return true.
type trickle struct {
	left int
	hold func() bool
}

func (r *trickle) Read(p []byte) (int, error) {
	if r.left == 0 {
		for deadline := time.Now().Add(20 * time.Second); r.hold != nil && !r.hold() && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
		}
		return 0, io.EOF
	}
	time.Sleep(20 * time.Millisecond)
	n := min(len(p), 1024, r.left)
	for i := range p[:n] {
		p[i] = 't'
	}
	r.left -= n
	return n, nil
}

// TestSwapDrainsDataPathCalls: calls on the data path that are in flight
// when a swap switches finish on the old instance (the swap waits for
// them), and the calls after it go to the new one over its own data path.
func TestSwapDrainsDataPathCalls(t *testing.T) {
	env := newManager(t)
	path := filepath.Join(t.TempDir(), "edgehost-plugin-s")
	copyFile(t, bins.v1, path)
	load(t, env, parseSpec(t, "s", path, `greeting = "hi"`))
	if info, err := env.m.Info("s"); err != nil || info.DataPath != pluginapi.DataPathVersion {
		t.Fatalf("info = %+v, %v: want the data path in use", info, err)
	}
	old := statusOf(t, env.m, "s")
	c, err := env.m.Compute("s")
	if err != nil {
		t.Fatal(err)
	}

	const size = 8 << 10
	// The bodies end only once the new instance serves: the calls are in
	// flight across the switch, whatever the machine's load.
	switched := func() bool {
		for _, st := range env.m.Status() {
			if st.Name == "s" {
				return st.PID != old.PID
			}
		}
		return false
	}
	type result struct {
		version string
		n       int64
		err     error
		at      time.Time
	}
	inflight := make(chan result, 2)
	for range 2 {
		go func() {
			resp, err := c.Handle(context.Background(), &pluginapi.Request{
				Head: &pluginv1.RequestHead{Method: "POST", Url: "/", ContentLength: size},
				Body: &trickle{left: size, hold: switched},
			})
			if err != nil {
				inflight <- result{err: err, at: time.Now()}
				return
			}
			n, err := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			v := ""
			for _, h := range resp.Head.GetHeaders() {
				if h.GetName() == "x-version" {
					v = h.GetValues()[0]
				}
			}
			inflight <- result{version: v, n: n, err: err, at: time.Now()}
		}()
	}
	// A slow Decide in flight too.
	decided := make(chan *pluginv1.DecideResponse, 1)
	go func() {
		r, err := decide(context.Background(), env.m, "s", "x-test-action", "sleep=300ms")
		if err != nil {
			t.Errorf("slow decide across the swap: %v", err)
		}
		decided <- r
	}()
	time.Sleep(100 * time.Millisecond)
	copyFile(t, bins.v2, path)
	if err := env.m.Reload(context.Background(), "s"); err != nil {
		t.Fatalf("reload: %v", err)
	}
	reloaded := time.Now()
	for range 2 {
		r := <-inflight
		if r.err != nil || r.n != size || r.version != "v1" {
			t.Errorf("call in flight across the swap: %d bytes from %q, %v; want %d from v1", r.n, r.version, r.err, size)
		}
		if r.at.After(reloaded) {
			t.Errorf("the swap returned %v before a call in flight on the old instance ended", r.at.Sub(reloaded))
		}
	}
	if r := <-decided; !strings.HasPrefix(r.GetReason(), "v1 ") {
		t.Errorf("slow decide answered by %q, want v1", r.GetReason())
	}
	if alive(old.PID) {
		t.Errorf("old instance %d still alive after the swap", old.PID)
	}
	if info, err := env.m.Info("s"); err != nil || info.DataPath != pluginapi.DataPathVersion || info.Version != "v2" {
		t.Fatalf("info after the swap = %+v, %v", info, err)
	}
	if r, err := decide(context.Background(), env.m, "s"); err != nil || !strings.HasPrefix(r.GetReason(), "v2 ") {
		t.Errorf("decide after the swap = %v, %v; want v2", r, err)
	}
	if err := echo(context.Background(), env.m, "s", 1<<20); err != nil {
		t.Errorf("echo after the swap: %v", err)
	}
}
