package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Programs (issue 12) end to end: uploads through the admin API and the
// CLI to a real edgehost with the real compute plugin, versions in
// programs.db across kill -9, rollbacks, bad uploads, and uploads under
// load.

// programsConfig runs tenant "app" (hello from the config) and tenant
// "later" (no program: uploads only) on the process backend.
func programsConfig(t *testing.T, originURL string) string {
	dir := programDir(t)
	cfg := baseConfig(originURL, fmt.Sprintf(`
plugin "compute" {
  self_socket = "./var/self.sock"
  tenant "app" {
    program       = %q
    backend       = "process"
    concurrency   = 2
    warm_requests = 2
    warm_path     = "/warm"
  }
  tenant "later" {
    backend = "process"
  }
  tenant "kept" {
    program     = %q
    backend     = "process"
    ephemeral   = false
    concurrency = 1
  }
}
route "/app/" { compute = tenant.app }
route "/kept" { compute = tenant.kept }
route "/later" { compute = tenant.later }
`, filepath.Join(dir, "hello"), filepath.Join(dir, "counter")))
	// Uploads over 1 MiB are refused (the examples are ~750 KiB).
	return strings.Replace(cfg, `disk   = "1GiB"`, `disk   = "1GiB"
  max_program = "1MiB"`, 1)
}

// upload posts the file at path as tenant's program.
func (e *edge) upload(tenant, path string) result {
	e.t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		e.t.Fatal(err)
	}
	return e.admin("POST", "/tenants/"+tenant+"/program", string(b))
}

// cli runs an edgehost admin command against e.
func (e *edge) cli(args ...string) (string, error) {
	cmd := exec.Command(edgehostBin(), append([]string{args[0], "-config", e.cfg}, args[1:]...)...)
	cmd.Dir = e.dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

type programVersion struct {
	Version uint64 `json:"version"`
	SHA256  string `json:"sha256"`
	Status  string `json:"status"`
	Error   string `json:"error"`
	From    string `json:"from"`
	Live    bool   `json:"live"`
}

type tenantState struct {
	Name     string          `json:"name"`
	Backend  string          `json:"backend"`
	Live     *programVersion `json:"live"`
	Requests int64           `json:"requests"`
	Booted   int64           `json:"booted"`
	Error    string          `json:"error"`
}

func (e *edge) tenants() map[string]tenantState {
	e.t.Helper()
	var ts []tenantState
	e.adminJSON("/tenants", &ts)
	out := map[string]tenantState{}
	for _, s := range ts {
		out[s.Name] = s
	}
	return out
}

func (e *edge) liveVersion(tenant string) uint64 {
	e.t.Helper()
	s := e.tenants()[tenant]
	if s.Live == nil {
		e.t.Fatalf("tenant %s has no live version: %+v", tenant, s)
	}
	return s.Live.Version
}

// badPrograms builds programs the host must refuse: a dynamically linked
// ELF, a static one that prints a line and exits before its first
// request, and one that boots but crashes on every request (it fails its
// warm-up).
func badPrograms(t *testing.T) (dynamic, crash, crashy string) {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "crash.c")
	os.WriteFile(src, []byte(`#include <stdio.h>
int main(void) { fprintf(stderr, "crash: EH_CONFIG is missing, giving up\n"); return 3; }
`), 0o644)
	src2 := filepath.Join(dir, "crashy.c")
	os.WriteFile(src2, []byte(`#include "edgehost.h"
static char buf[16384];
static void handle(const struct eh_request *req) { (void)req; *(volatile int *)0 = 1; }
int main(void) { eh_serve(handle, (struct eh_request *)buf, sizeof buf, 0, 0); return 1; }
`), 0o644)
	sdk, _ := filepath.Abs("../../plugins/compute/sdk")
	dynamic, crash, crashy = filepath.Join(dir, "dynamic"), filepath.Join(dir, "crash"), filepath.Join(dir, "crashy")
	for _, c := range [][]string{{"gcc", "-o", dynamic, src}, {"gcc", "-static", "-o", crash, src},
		{"gcc", "-static", "-I" + sdk, "-o", crashy, src2}} {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", c, err, out)
		}
	}
	return dynamic, crash, crashy
}

// errText is the admin API's error message in r.
func errText(r result) string {
	var e struct{ Error string }
	json.Unmarshal(r.Body, &e)
	return e.Error
}

func wantBody(t *testing.T, e *edge, path, want string) {
	t.Helper()
	r := e.get(path)
	if r.Status != 200 || string(r.Body) != want {
		t.Fatalf("GET %s: %d %q, want 200 %q", path, r.Status, r.Body, want)
	}
}

func TestProgramUploadRollbackRestart(t *testing.T) {
	o := startOrigin(t)
	e := newEdge(t, programsConfig(t, o.URL))
	progs := programDir(t)
	hello, counter := filepath.Join(progs, "hello"), filepath.Join(progs, "counter")

	wantBody(t, e, "/app/x", "hello from /app/x")
	ts := e.tenants()
	if a := ts["app"]; a.Live == nil || a.Live.Version != 1 || !strings.HasPrefix(a.Live.From, "config ") || a.Backend != "process" {
		t.Fatalf("app at start: %+v (live %+v)", a, a.Live)
	}
	// A tenant without a program answers 503 until one is uploaded.
	if r := e.get("/later"); r.Status != 503 || !strings.Contains(string(r.Body), "no program yet") {
		t.Fatalf("/later before an upload: %d %q", r.Status, r.Body)
	}

	// The admin API wants the token; unknown tenants are 404.
	if r := e.admin("POST", "/tenants/app/program", "x", "wrong"); r.Status != 401 {
		t.Fatalf("upload with a wrong token: %d", r.Status)
	}
	if r := e.admin("GET", "/tenants", "", "wrong"); r.Status != 401 {
		t.Fatalf("GET /tenants with a wrong token: %d", r.Status)
	}
	if r := e.upload("nobody", counter); r.Status != 404 || !strings.Contains(errText(r), `no tenant "nobody"`) {
		t.Fatalf("upload to an unknown tenant: %d %s", r.Status, r.Body)
	}

	// Upload → live; another tenant of the plugin is not disturbed (a kept
	// instance keeps its memory).
	wantBody(t, e, "/kept", "1")
	wantBody(t, e, "/kept", "2")
	out, err := e.cli("upload", "app", counter)
	if err != nil || !strings.Contains(out, "version 2 is live") {
		t.Fatalf("edgehost upload: %v\n%s", err, out)
	}
	wantBody(t, e, "/app/x", "1")
	wantBody(t, e, "/kept", "3")
	if v := e.liveVersion("app"); v != 2 {
		t.Fatalf("live version %d after the upload, want 2", v)
	}

	// Bad uploads: refused with a precise error, the live version serves.
	dynamic, crash, crashy := badPrograms(t)
	notELF := filepath.Join(e.dir, "config.hcl")
	for _, c := range []struct{ file, want string }{
		{notELF, "not an ELF file"},
		{dynamic, "dynamically linked (interpreter /lib64/ld-linux-x86-64.so.2)"},
		{crash, `program exited before asking for a request (exit status 3); the program's last output: "crash: EH_CONFIG is missing, giving up"`},
		{crashy, `warm-up request 1 of 2 (GET /warm) failed: 500`},
	} {
		r := e.upload("app", c.file)
		if r.Status != 422 || !strings.Contains(errText(r), c.want) {
			t.Errorf("upload of %s: %d %s, want 422 saying %q", filepath.Base(c.file), r.Status, r.Body, c.want)
		}
		wantBody(t, e, "/app/x", "1")
	}
	// The CLI says the same and fails.
	if out, err := e.cli("upload", "app", crash); err == nil || !strings.Contains(out, "giving up") {
		t.Errorf("edgehost upload of a crashing program: %v\n%s", err, out)
	}
	wantBody(t, e, "/app/x", "1")
	if v := e.liveVersion("app"); v != 2 {
		t.Fatalf("live version %d after bad uploads, want 2", v)
	}
	if r := e.admin("POST", "/tenants/app/program", strings.Repeat("x", 1<<20+1)); r.Status != 413 || !strings.Contains(errText(r), "larger than the upload limit") {
		t.Errorf("oversize upload: %d %s", r.Status, r.Body)
	}
	if r := e.admin("POST", "/tenants/app/program", "", "s3cret"); r.Status != 422 || !strings.Contains(errText(r), "empty upload") {
		t.Errorf("empty upload: %d %s", r.Status, r.Body)
	}

	// Rollback without a version: the previous live one (1, hello).
	if out, err := e.cli("rollback", "app"); err != nil || !strings.Contains(out, "version 1 is live again") {
		t.Fatalf("edgehost rollback: %v\n%s", err, out)
	}
	wantBody(t, e, "/app/x", "hello from /app/x")
	// To a version that was rejected: refused, nothing changes.
	if r := e.admin("POST", "/tenants/app/rollback?version=3", ""); r.Status != 404 || !strings.Contains(errText(r), "rejected") {
		t.Fatalf("rollback to a rejected version: %d %s", r.Status, r.Body)
	}
	// To version 2 by number.
	if r := e.admin("POST", "/tenants/app/rollback?version=2", ""); r.Status != 200 {
		t.Fatalf("rollback to 2: %d %s", r.Status, r.Body)
	}
	wantBody(t, e, "/app/x", "1")

	// An uploads-only tenant.
	if r := e.upload("later", hello); r.Status != 200 {
		t.Fatalf("upload to later: %d %s", r.Status, r.Body)
	}
	wantBody(t, e, "/later", "hello from /later")

	// The history, through the CLI.
	out, err = e.cli("programs", "app")
	if err != nil {
		t.Fatalf("edgehost programs: %v\n%s", err, out)
	}
	for _, want := range []string{"*live", "rejected", "retired", "config " + hello} {
		if !strings.Contains(out, want) {
			t.Errorf("edgehost programs app lacks %q:\n%s", want, out)
		}
	}
	if out, err := e.cli("tenants"); err != nil || !strings.Contains(out, "later") || !strings.Contains(out, "process") {
		t.Errorf("edgehost tenants: %v\n%s", err, out)
	}

	// kill -9 and a restart: the same versions serve.
	before := e.tenants()
	e.kill9()
	e.start()
	wantBody(t, e, "/app/x", "1")
	wantBody(t, e, "/later", "hello from /later")
	after := e.tenants()
	for _, name := range []string{"app", "later"} {
		if after[name].Live == nil || after[name].Live.Version != before[name].Live.Version || after[name].Live.SHA256 != before[name].Live.SHA256 {
			t.Errorf("tenant %s: live %+v after kill -9, was %+v", name, after[name].Live, before[name].Live)
		}
	}
	// The plugin crashes: its relaunch starts the uploaded version too.
	pid := pluginPID(t, e, "compute")
	if pid == 0 {
		t.Fatal("no running compute plugin in GET /plugins")
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the compute plugin relaunched", func() bool {
		p := pluginPID(t, e, "compute")
		return p != 0 && p != pid
	})
	wantBody(t, e, "/app/x", "1")
	// A config reload with the same file keeps the uploaded version live.
	if r := e.admin("POST", "/reload", ""); r.Status != 200 {
		t.Fatalf("reload: %d %s", r.Status, r.Body)
	}
	wantBody(t, e, "/app/x", "1")
}

func pluginPID(t *testing.T, e *edge, name string) int {
	t.Helper()
	var list []struct {
		Name  string `json:"name"`
		PID   int    `json:"pid"`
		State string `json:"state"`
	}
	e.adminJSON("/plugins", &list)
	for _, p := range list {
		if p.Name == name && p.State == "running" {
			return p.PID
		}
	}
	return 0
}

// TestProgramDamagedDBStopsStart: programs.db is never discarded.
func TestProgramDamagedDBStopsStart(t *testing.T) {
	o := startOrigin(t)
	e := newEdge(t, programsConfig(t, o.URL))
	e.stop()
	db := filepath.Join(e.dir, "var", "programs.db")
	junk := strings.Repeat("damaged ", 4096)
	if err := os.WriteFile(db, []byte(junk), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(edgehostBin(), "run", "-config", e.cfg)
	cmd.Dir = e.dir
	out, err := runWithTimeout(cmd, 20*time.Second)
	if err == nil || !strings.Contains(out, db) || !strings.Contains(out, "never discarded") {
		t.Fatalf("start with a damaged programs.db: %v\n%s", err, out)
	}
	if b, _ := os.ReadFile(db); string(b) != junk {
		t.Fatalf("programs.db was changed or moved")
	}
}

func runWithTimeout(cmd *exec.Cmd, d time.Duration) (string, error) {
	var buf syncBuffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Start(); err != nil {
		return "", err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return buf.String(), err
	case <-time.After(d):
		cmd.Process.Kill()
		<-done
		return buf.String(), fmt.Errorf("still running after %v (it should have refused to start)", d)
	}
}

// TestProgramUploadsUnderLoad: a client loop runs during two uploads and
// gets no error; every answer comes from one of the two versions.
func TestProgramUploadsUnderLoad(t *testing.T) {
	o := startOrigin(t)
	e := newEdge(t, programsConfig(t, o.URL))
	progs := programDir(t)
	hello, counter := filepath.Join(progs, "hello"), filepath.Join(progs, "counter")
	wantBody(t, e, "/app/x", "hello from /app/x")

	type sample struct {
		at, took time.Duration
	}
	var (
		stop     atomic.Bool
		errs     atomic.Int64
		answers  sync.Map // body → count
		mu       sync.Mutex
		samples  []sample
		firstErr atomic.Value
		wg       sync.WaitGroup
	)
	t0 := time.Now()
	const clients = 4
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				start := time.Now()
				resp, err := client.Get(e.url("/app/x"))
				var body []byte
				if err == nil {
					body, err = io.ReadAll(resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("status %d: %s", resp.StatusCode, body)
					}
				}
				if err == nil && string(body) != "hello from /app/x" && string(body) != "1" {
					err = fmt.Errorf("unexpected body %q", body)
				}
				if err != nil {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				n, _ := answers.LoadOrStore(string(body), new(atomic.Int64))
				n.(*atomic.Int64).Add(1)
				mu.Lock()
				samples = append(samples, sample{start.Sub(t0), time.Since(start)})
				mu.Unlock()
			}
		}()
	}
	time.Sleep(500 * time.Millisecond)
	var swaps [][2]time.Duration // upload start, end (since t0)
	for _, p := range []string{counter, hello} {
		s := time.Since(t0)
		r := e.upload("app", p)
		swaps = append(swaps, [2]time.Duration{s, time.Since(t0)})
		if r.Status != 200 {
			t.Errorf("upload %s under load: %d %s", filepath.Base(p), r.Status, r.Body)
		}
		time.Sleep(500 * time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()

	if n := errs.Load(); n != 0 {
		t.Errorf("%d requests failed during the uploads; first: %v", n, firstErr.Load())
	}
	for _, body := range []string{"hello from /app/x", "1"} {
		if n, ok := answers.Load(body); !ok || n.(*atomic.Int64).Load() == 0 {
			t.Errorf("no answer %q during the run: both versions should have served", body)
		}
	}
	// The figures for the notes: upload-to-live, and latency while a
	// swap runs against the rest of the run.
	var during, outside []time.Duration
	for _, s := range samples {
		in := false
		for _, w := range swaps {
			if s.at+s.took >= w[0] && s.at <= w[1] {
				in = true
			}
		}
		if in {
			during = append(during, s.took)
		} else {
			outside = append(outside, s.took)
		}
	}
	pct := func(d []time.Duration, p float64) time.Duration {
		if len(d) == 0 {
			return 0
		}
		slices.Sort(d)
		return d[min(len(d)-1, int(float64(len(d))*p))]
	}
	for i, w := range swaps {
		t.Logf("upload %d: live %v after it began (under %d clients)", i+1, (w[1] - w[0]).Round(time.Millisecond), clients)
	}
	t.Logf("requests: %d (%d during swaps); latency outside swaps p50 %v p99 %v max %v; during swaps p50 %v p99 %v max %v",
		len(samples), len(during), pct(outside, .5), pct(outside, .99), pct(outside, 1), pct(during, .5), pct(during, .99), pct(during, 1))
}

// TestProgramDebugWithGDB: `edgehost debug` runs a request under a GDB
// stub; Debian's gdb in batch mode breaks on the handler, reads and
// writes a variable, steps, continues, and the answer shows the write.
func TestProgramDebugWithGDB(t *testing.T) {
	gdb, err := exec.LookPath("gdb")
	if err != nil {
		t.Fatalf("gdb is needed (apt-get install gdb): %v", err)
	}
	o := startOrigin(t)
	cfg := strings.Replace(programsConfig(t, o.URL), `warm_path     = "/warm"`, `warm_path     = "/warm"
    allow_debug   = true`, 1)
	e := newEdge(t, cfg)
	// A debug build (-g -O0) of the counter example, uploaded.
	prog := filepath.Join(t.TempDir(), "counter-g")
	sdk, _ := filepath.Abs("../../plugins/compute/sdk")
	src, _ := filepath.Abs("../../plugins/compute/examples/counter.c")
	if out, err := exec.Command("gcc", "-g", "-O0", "-static", "-I"+sdk, "-o", prog, src).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	if r := e.upload("app", prog); r.Status != 200 {
		t.Fatalf("upload: %d %s", r.Status, r.Body)
	}
	wantBody(t, e, "/app/x", "1")

	// Not allowed: a tenant without allow_debug.
	if r := e.upload("later", filepath.Join(programDir(t), "hello")); r.Status != 200 {
		t.Fatalf("upload to later: %d %s", r.Status, r.Body)
	}
	if out, err := e.cli("debug", "later", "/later"); err == nil || !strings.Contains(out, "allow_debug") {
		t.Errorf("debug of a tenant without allow_debug: %v\n%s", err, out)
	}

	cmd := exec.Command(edgehostBin(), "debug", "-config", e.cfg, "app", "/app/dbg")
	cmd.Dir = e.dir
	stdout, _ := cmd.StdoutPipe()
	var cliErr syncBuffer
	cmd.Stderr = &cliErr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var addr string
	select {
	case l := <-lines:
		_, rest, ok := strings.Cut(l, "gdb: target remote ")
		addr, _, _ = strings.Cut(rest, " ")
		if !ok || addr == "" {
			t.Fatalf("first line of edgehost debug: %q", l)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("edgehost debug printed no gdb address; stderr: %s", cliErr.String())
	}
	out, err := exec.Command(gdb, "-batch", "-nx", prog,
		"-ex", "target remote "+addr,
		"-ex", "break handle",
		"-ex", "continue",
		"-ex", "print counter",
		"-ex", "set var counter = 41",
		"-ex", "stepi",
		"-ex", "info registers rip",
		"-ex", "continue").CombinedOutput()
	gout := string(out)
	if err != nil {
		t.Fatalf("gdb: %v\n%s", err, gout)
	}
	for _, want := range []string{
		"Breakpoint 1, handle (req=", // stopped in the handler, with its argument
		"$1 = 0",                     // the snapshot's value
		"<handle+",                   // rip after a step, inside handle
		"exited normally",            // continue: the program answered
	} {
		if !strings.Contains(gout, want) {
			t.Errorf("gdb output lacks %q:\n%s", want, gout)
		}
	}
	var rest []string
	for l := range lines {
		rest = append(rest, l)
	}
	cmd.Wait()
	answer := strings.Join(rest, "\n")
	if !strings.Contains(answer, "response: 200") || !strings.HasSuffix(strings.TrimSpace(answer), "42") {
		t.Errorf("edgehost debug's answer (want 200 and 42, the value gdb wrote plus one):\n%s\nstderr: %s", answer, cliErr.String())
	}
	// The tenant serves on, from its snapshot.
	wantBody(t, e, "/app/x", "1")
}

// TestProgramUploadInterrupted: edgehost is killed (-9) while a new
// version boots; after the restart the old version serves, the new one is
// recorded as interrupted, and its staged file is gone.
func TestProgramUploadInterrupted(t *testing.T) {
	o := startOrigin(t)
	e := newEdge(t, programsConfig(t, o.URL))
	dir := t.TempDir()
	src, slow := filepath.Join(dir, "slow.c"), filepath.Join(dir, "slow")
	os.WriteFile(src, []byte(`#include "edgehost.h"
static char buf[16384];
static void handle(const struct eh_request *req) { (void)req; eh_respond_simple(200, "text/plain", "slow", 4); }
int main(void) {
  for (volatile unsigned long i = 0; i < 4000000000UL; i++) {} /* seconds of boot */
  eh_serve(handle, (struct eh_request *)buf, sizeof buf, 0, 0);
  return 1;
}
`), 0o644)
	sdk, _ := filepath.Abs("../../plugins/compute/sdk")
	if out, err := exec.Command("gcc", "-O0", "-static", "-I"+sdk, "-o", slow, src).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	b, _ := os.ReadFile(slow)
	go func() {
		req, _ := http.NewRequest("POST", "http://"+e.Admin+"/tenants/app/program", strings.NewReader(string(b)))
		req.Header.Set("Authorization", "Bearer "+e.Token)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	eventually(t, 10*time.Second, "the upload stored (pending, booting)", func() bool {
		vs := e.versions("app")
		return len(vs) == 2 && vs[0].Status == "pending"
	})
	time.Sleep(200 * time.Millisecond)
	e.kill9()
	e.start()
	wantBody(t, e, "/app/x", "hello from /app/x")
	vs := e.versions("app")
	if len(vs) != 2 || vs[0].Version != 2 || vs[0].Status != "interrupted" || !vs[1].Live {
		t.Fatalf("versions after a kill -9 during an upload: %+v", vs)
	}
	ents, _ := os.ReadDir(filepath.Join(e.dir, "var", "programs", "app"))
	if len(ents) != 1 || ents[0].Name() != vs[1].SHA256 {
		t.Errorf("program files after the restart: %v, want only the live one (%s)", ents, vs[1].SHA256)
	}
}

func (e *edge) versions(tenant string) []programVersion {
	e.t.Helper()
	var vs []programVersion
	e.adminJSON("/tenants/"+tenant+"/programs", &vs)
	return vs
}

// adminJSON GETs an admin path that answers 200 with JSON, into out.
func (e *edge) adminJSON(path string, out any) {
	e.t.Helper()
	r := e.admin("GET", path, "")
	wantStatus(e.t, r, 200)
	if err := json.Unmarshal(r.Body, out); err != nil {
		e.t.Fatalf("GET %s: %v: %s", path, err, r.Body)
	}
}
