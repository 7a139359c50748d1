package pluginhost

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// Test plugin binaries, built once by TestMain from
// plugins/pluginapi/internal/testplugin.
var bins struct {
	dir                            string
	v1, v2, crash, proto2, garbage string
	script                         string // a shell script, not a plugin
	err                            error
}

const testPluginPkg = "github.com/edgehost/edgehost/plugins/pluginapi/internal/testplugin"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		os.Exit(helperHost())
	}
	dir, err := os.MkdirTemp("", "pluginhost-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bins.dir = dir
	flag.Parse()
	// Built under -short too: the subprocess tests are what this package
	// is about, and a build that fails fails them (needBins) instead of
	// skipping them into a green run (issue 14).
	bins.err = buildTestPlugins(dir)
	if bins.err != nil {
		fmt.Fprintf(os.Stderr, "pluginhost: test plugins could not be built; every subprocess test fails:\n%v\n", bins.err)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func buildTestPlugins(dir string) error {
	build := func(out, version, mode string) (string, error) {
		path := filepath.Join(dir, out)
		ld := "-X main.version=" + version + " -X main.mode=" + mode
		cmd := exec.Command("go", "build", "-ldflags", ld, "-o", path, testPluginPkg)
		if b, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("go build %s: %v\n%s", out, err, b)
		}
		return path, nil
	}
	// Builds run side by side: linking dominates and is single-threaded.
	targets := []struct {
		dst           *string
		name, v, mode string
	}{
		{&bins.v1, "edgehost-plugin-v1", "v1", ""},
		{&bins.v2, "edgehost-plugin-v2", "v2", ""},
		{&bins.crash, "edgehost-plugin-crash", "v1", "crash"},
		{&bins.proto2, "edgehost-plugin-proto2", "v1", "proto2"},
		{&bins.garbage, "edgehost-plugin-garbage", "v1", "garbage"},
	}
	errs := make([]error, len(targets))
	var wg sync.WaitGroup
	for i, b := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			*b.dst, errs[i] = build(b.name, b.v, b.mode)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	bins.script = filepath.Join(dir, "edgehost-plugin-script")
	return os.WriteFile(bins.script, []byte("#!/bin/sh\necho 'I am a shell script'\nsleep 1\n"), 0o755)
}

// needBins fails a test whose subject, a test plugin, could not be built.
func needBins(t testing.TB) {
	t.Helper()
	if bins.err != nil {
		t.Fatalf("test plugins could not be built: %v", bins.err)
	}
}

// syncBuffer collects the manager's log; it is shown when a test fails.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type testEnv struct {
	m   *Manager
	log *syncBuffer
}

// newManager returns a manager with fast liveness settings, shut down and
// checked for leftover processes when the test ends.
func newManager(t testing.TB, tweak ...func(*Options)) *testEnv {
	t.Helper()
	needBins(t)
	logBuf := &syncBuffer{}
	opts := Options{
		StateDir:       t.TempDir(),
		BinDir:         bins.dir,
		Logger:         slog.New(slog.NewTextHandler(logBuf, &slog.HandlerOptions{Level: slog.LevelDebug})),
		HealthInterval: 200 * time.Millisecond,
		HealthTimeout:  time.Second,
		BackoffMin:     100 * time.Millisecond,
		BackoffMax:     time.Second,
		DrainTimeout:   5 * time.Second,
		ShutdownGrace:  2 * time.Second,
	}
	for _, f := range tweak {
		f(&opts)
	}
	env := &testEnv{m: New(opts), log: logBuf}
	t.Cleanup(func() {
		var pids []int
		for _, st := range env.m.Status() {
			if st.PID > 0 {
				pids = append(pids, st.PID)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := env.m.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		for _, pid := range pids {
			if alive(pid) {
				t.Errorf("plugin process %d still alive after Shutdown", pid)
			}
		}
		if t.Failed() {
			t.Logf("manager log:\n%s", logBuf.String())
		}
	})
	return env
}

// parseSpec makes a Spec whose body is src (the plugin's own settings).
func parseSpec(t testing.TB, name, path, src string) Spec {
	t.Helper()
	f, diags := hclsyntax.ParseConfig([]byte(src), name+".hcl", hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatalf("parse: %v", diags)
	}
	return Spec{Name: name, Path: path, Body: f.Body, DefRange: f.Body.MissingItemRange()}
}

func load(t testing.TB, env *testEnv, specs ...Spec) {
	t.Helper()
	if diags := env.m.Load(context.Background(), specs); diags.HasErrors() {
		t.Fatalf("load: %v", diags)
	}
}

func statusOf(t testing.TB, m *Manager, name string) Status {
	t.Helper()
	for _, st := range m.Status() {
		if st.Name == name {
			return st
		}
	}
	t.Fatalf("no status for plugin %q", name)
	return Status{}
}

// waitFor polls cond until it holds or d passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// alive reports whether pid is a live process (a zombie is not).
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		if os.IsNotExist(err) {
			return false
		}
		return syscall.Kill(pid, 0) == nil
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return true
	}
	return b[i+2] != 'Z' && b[i+2] != 'X'
}

func digestOf(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// copyFile copies src over dst (a new inode, as an installer does).
func copyFile(t testing.TB, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	tmp := dst + ".tmp"
	if err := os.WriteFile(tmp, b, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		t.Fatal(err)
	}
}

// The helper host: the test binary re-executed, it loads one plugin,
// prints its pid and waits to be killed.
const (
	helperEnv           = "EDGEHOST_PLUGINHOST_TEST_HELPER"
	helperPluginEnv     = "EDGEHOST_PLUGINHOST_TEST_PLUGIN"
	helperNoLifelineEnv = "EDGEHOST_PLUGINHOST_TEST_NO_LIFELINE"
)

func helperHost() int {
	dir, err := os.MkdirTemp("", "pluginhost-helper-")
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	m := New(Options{
		StateDir:        dir,
		Logger:          slog.New(slog.NewTextHandler(io.Discard, nil)),
		disableLifeline: os.Getenv(helperNoLifelineEnv) != "",
	})
	f, _ := hclsyntax.ParseConfig([]byte(`greeting = "helper"`), "helper.hcl", hcl.InitialPos)
	if diags := m.Load(context.Background(), []Spec{{Name: "h", Path: os.Getenv(helperPluginEnv), Body: f.Body}}); diags.HasErrors() {
		fmt.Println("error", diags.Error())
		return 1
	}
	fmt.Printf("pid %d\n", m.Status()[0].PID)
	time.Sleep(time.Minute)
	return 0
}

// startHelperHost runs the helper host and returns it and its plugin's pid.
func startHelperHost(t *testing.T, noLifeline bool) (*exec.Cmd, int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=1", helperPluginEnv+"="+bins.v1)
	if noLifeline {
		cmd.Env = append(cmd.Env, helperNoLifelineEnv+"=1")
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("helper host: %v", err)
	}
	pidStr, ok := strings.CutPrefix(strings.TrimSpace(line), "pid ")
	if !ok {
		t.Fatalf("helper host said %q", line)
	}
	pid, err := strconv.Atoi(pidStr)
	if err != nil || pid <= 0 {
		t.Fatalf("helper host said %q", line)
	}
	return cmd, pid
}
