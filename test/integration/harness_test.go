// Package integration runs real edgehost processes (bin/edgehost, built by
// TestMain when EDGEHOST_BIN does not point at a bin directory) against real
// origins on loopback: nothing here is mocked.
package integration

import (
	"bytes"
	"context"
	"debug/buildinfo"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/edgehost/edgehost/host/demoorigin"
)

var binDir string

func TestMain(m *testing.M) {
	binDir = os.Getenv("EDGEHOST_BIN")
	if binDir == "" {
		dir, err := os.MkdirTemp("", "edgehost-bin")
		if err != nil {
			panic(err)
		}
		// Under -race the binaries are built with it too: edge.stop looks
		// for the detector's reports in their logs.
		build := []string{"build"}
		if raceEnabled {
			build = append(build, "-race")
		}
		out, err := exec.Command("go", append(build, "-o", filepath.Join(dir, "edgehost"), "github.com/edgehost/edgehost/host")...).CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "building edgehost: %v\n%s", err, out)
			os.Exit(1)
		}
		// The plugins (plugins/NAME/main.go) go beside the host as
		// edgehost-plugin-NAME, where the plugin manager looks for them.
		mains, _ := filepath.Glob("../../plugins/*/main.go")
		for _, mainGo := range mains {
			name := filepath.Base(filepath.Dir(mainGo))
			out, err := exec.Command("go", append(build, "-o", filepath.Join(dir, "edgehost-plugin-"+name), "./"+filepath.Dir(mainGo))...).CombinedOutput()
			if err != nil {
				fmt.Fprintf(os.Stderr, "building plugin %s: %v\n%s", name, err, out)
				os.Exit(1)
			}
		}
		binDir = dir
		code := m.Run()
		os.RemoveAll(dir)
		os.Exit(code)
	}
	if err := checkRaceBuilds(binDir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// checkRaceBuilds refuses binaries in dir built without -race when the
// tests run with it: their race check would pass without checking.
func checkRaceBuilds(dir string) error {
	if !raceEnabled {
		return nil
	}
	bins, _ := filepath.Glob(filepath.Join(dir, "edgehost*"))
	if len(bins) == 0 {
		return fmt.Errorf("EDGEHOST_BIN=%s holds no edgehost binaries", dir)
	}
	for _, b := range bins {
		info, err := buildinfo.ReadFile(b)
		if err != nil {
			return fmt.Errorf("%s: %v", b, err)
		}
		race := false
		for _, s := range info.Settings {
			if s.Key == "-race" && s.Value == "true" {
				race = true
			}
		}
		if !race {
			return fmt.Errorf("%s was built without -race while the tests run with it: its data races would go unseen (build it with go build -race, as make test does)", b)
		}
	}
	return nil
}

func edgehostBin() string { return filepath.Join(binDir, "edgehost") }

// origin is the demo origin in-process, on a real loopback socket.
type origin struct {
	*demoorigin.Origin
	srv *httptest.Server
	URL string
}

func startOrigin(t *testing.T) *origin {
	t.Helper()
	o := demoorigin.New(slog.New(slog.NewTextHandler(io.Discard, nil)))
	srv := httptest.NewServer(o)
	t.Cleanup(srv.Close)
	return &origin{Origin: o, srv: srv, URL: srv.URL}
}

// freePort returns a loopback address nobody listens on right now.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// edge is one edgehost process.
type edge struct {
	t      *testing.T
	dir    string
	cfg    string
	tmpl   string // the config as given to writeConfig ({{HTTP}}, {{ADMIN}})
	served bool   // edgehost served once: its ports are the test's now
	HTTP   string
	Admin  string
	Self   string
	Token  string
	bin    string // the edgehost binary; "" = edgehostBin()
	cmd    *exec.Cmd
	stderr *syncBuffer
	done   chan struct{}
}

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

// baseConfig is the acceptance config of the core issue with free ports and
// extra blocks appended.
func baseConfig(originURL, extra string) string {
	return fmt.Sprintf(`
state_dir = "./var"

listen {
  http  = "{{HTTP}}"
  self  = "./var/self.sock"
  admin = "{{ADMIN}}"
}

admin {
  token = "s3cret"
}

storage {
  memory = "64MiB"
  disk   = "1GiB"
}

backend "origin" {
  url = %q
  first_byte_timeout    = "1s"
  between_bytes_timeout = "500ms"
}

route "/" {
  backend     = backend.origin
  default_ttl = "2m"
  grace       = "1h"
}
%s
`, originURL, extra)
}

// newEdge prepares a state directory with cfg ({{HTTP}} and {{ADMIN}} are
// replaced by free ports) and starts edgehost in it.
func newEdge(t *testing.T, cfg string) *edge {
	t.Helper()
	e := &edge{t: t, dir: t.TempDir(), HTTP: freePort(t), Admin: freePort(t), Token: "s3cret"}
	e.Self = filepath.Join(e.dir, "var", "self.sock")
	e.writeConfig(cfg)
	e.start()
	t.Cleanup(e.stop)
	return e
}

func (e *edge) writeConfig(cfg string) {
	e.tmpl = cfg
	cfg = strings.ReplaceAll(cfg, "{{HTTP}}", e.HTTP)
	cfg = strings.ReplaceAll(cfg, "{{ADMIN}}", e.Admin)
	e.cfg = filepath.Join(e.dir, "config.hcl")
	if err := os.WriteFile(e.cfg, []byte(cfg), 0o644); err != nil {
		e.t.Fatal(err)
	}
}

func (e *edge) start() {
	e.t.Helper()
	for attempt := 1; ; attempt++ {
		log, ok := e.tryStart()
		if ok {
			e.served = true
			return
		}
		// freePort's ports are free when it returns, not when edgehost
		// binds them: a connection of another test process may take one
		// as its source port meanwhile. A first start is tried again on
		// other ports, a few times.
		if !e.served && e.tmpl != "" && attempt < 4 && strings.Contains(log, "address already in use") {
			e.t.Logf("a port was taken before edgehost bound it, trying others:\n%s", log)
			e.HTTP, e.Admin = freePort(e.t), freePort(e.t)
			e.writeConfig(e.tmpl)
			continue
		}
		e.t.Fatalf("edgehost exited at start:\n%s", log)
	}
}

// tryStart starts edgehost and waits until it serves; when it exits
// first, it returns its log and false.
func (e *edge) tryStart() (string, bool) {
	e.t.Helper()
	e.stderr = &syncBuffer{}
	bin := edgehostBin()
	if e.bin != "" {
		bin = e.bin
	}
	e.cmd = exec.Command(bin, "run", "-config", e.cfg)
	e.cmd.Dir = e.dir
	e.cmd.Stderr = e.stderr
	e.cmd.Stdout = e.stderr
	if err := e.cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.done = make(chan struct{})
	go func() { e.cmd.Wait(); close(e.done) }()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-e.done:
			return e.stderr.String(), false
		default:
		}
		if resp, err := http.Get("http://" + e.Admin + "/healthz"); err == nil {
			resp.Body.Close()
			if c, err := net.Dial("tcp", e.HTTP); err == nil {
				c.Close()
				return "", true
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.t.Fatalf("edgehost not ready after 15s:\n%s", e.stderr.String())
	return "", false
}

// stop sends SIGTERM and waits.
func (e *edge) stop() {
	if e.cmd == nil || e.cmd.Process == nil {
		return
	}
	select {
	case <-e.done:
		return
	default:
	}
	e.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-e.done:
	case <-time.After(15 * time.Second):
		e.cmd.Process.Kill()
		<-e.done
		e.t.Errorf("edgehost did not stop on SIGTERM within 15s")
	}
	if log := e.stderr.String(); strings.Contains(log, "WARNING: DATA RACE") {
		// The binaries under test are built with -race by make test.
		i := strings.Index(log, "WARNING: DATA RACE")
		e.t.Errorf("edgehost reported a data race:\n%s", log[i:min(len(log), i+4000)])
	}
	if e.t.Failed() {
		e.t.Logf("edgehost log:\n%s", e.stderr.String())
	}
}

// kill9 kills edgehost without a chance to clean up.
func (e *edge) kill9() {
	e.cmd.Process.Kill()
	<-e.done
}

func (e *edge) url(path string) string { return "http://" + e.HTTP + path }

var client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}, Timeout: 20 * time.Second}

type result struct {
	Status int
	Header http.Header
	Body   []byte
}

func (e *edge) do(method, path string, hdr ...string) result {
	e.t.Helper()
	req, err := http.NewRequest(method, e.url(path), nil)
	if err != nil {
		e.t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if strings.EqualFold(hdr[i], "Host") {
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("%s %s: body: %v", method, path, err)
	}
	return result{resp.StatusCode, resp.Header, b}
}

func (e *edge) get(path string, hdr ...string) result { return e.do("GET", path, hdr...) }

// admin calls the admin API with the token (or with tok when given).
func (e *edge) admin(method, path, body string, tok ...string) result {
	e.t.Helper()
	req, _ := http.NewRequest(method, "http://"+e.Admin+path, strings.NewReader(body))
	token := e.Token
	if len(tok) > 0 {
		token = tok[0]
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return result{resp.StatusCode, resp.Header, b}
}

// metric reads one counter from /metrics.
func (e *edge) metric(name string) float64 {
	e.t.Helper()
	r := e.admin("GET", "/metrics", "")
	for _, line := range strings.Split(string(r.Body), "\n") {
		if strings.HasPrefix(line, name+" ") {
			var v float64
			fmt.Sscanf(line[len(name)+1:], "%g", &v)
			return v
		}
	}
	e.t.Fatalf("metric %s not found", name)
	return 0
}

// selfClient talks HTTP over the self-request Unix socket.
func (e *edge) selfClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", e.Self)
		},
	}, Timeout: 10 * time.Second}
}

func originRequests(r result) string { return r.Header.Get("X-Origin-Request") }

func wantStatus(t *testing.T, r result, want int) {
	t.Helper()
	if r.Status != want {
		t.Fatalf("status = %d, want %d; headers %v body %.200q", r.Status, want, r.Header, r.Body)
	}
}

func wantCacheStatus(t *testing.T, r result, substr string) {
	t.Helper()
	if cs := r.Header.Get("Cache-Status"); !strings.Contains(cs, substr) {
		t.Fatalf("Cache-Status = %q, want it to contain %q", cs, substr)
	}
}
