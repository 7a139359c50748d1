package sandbox

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

var programsDir string

func TestMain(m *testing.M) {
	if IsStub() {
		StubMain()
	}
	os.Exit(runTests(m))
}

// runTests builds the example programs (make, gcc -static) into a
// temporary directory, or uses EDGEHOST_PROGRAMS.
func runTests(m *testing.M) int {
	programsDir = os.Getenv("EDGEHOST_PROGRAMS")
	if programsDir == "" {
		dir, err := os.MkdirTemp("", "edgehost-programs")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		out, err := exec.Command("make", "-s", "-C", "../examples", "OUT="+dir).CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "building the example programs: %v\n%s", err, out)
			return 1
		}
		programsDir = dir
	}
	return m.Run()
}

func program(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(programsDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func testLogger(t testing.TB) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Output: testWriter{t}, Level: hclog.Debug})
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func newTenant(t testing.TB, name, prog string, cfg Settings) *Tenant {
	t.Helper()
	tn, err := NewTenant(name, program(t, prog), cfg, nil, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tn.Close)
	return tn
}

func get(t testing.TB, tn *Tenant, url string) (*Reply, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return tn.Handle(ctx, RequestInfo{Method: "GET", URL: url, Host: "example.test"}, nil)
}

func TestHelloProcess(t *testing.T) {
	tn := newTenant(t, "hello", "hello", Settings{Backend: "process", Ephemeral: true})
	for i := 0; i < 3; i++ {
		r, err := get(t, tn, "/a/b?x=1")
		if err != nil {
			t.Fatal(err)
		}
		if got, want := string(r.Body), "hello from /a/b"; got != want || r.Status != 200 || r.ContentType != "text/plain" {
			t.Fatalf("got %d %q %q, want 200 text/plain %q", r.Status, r.ContentType, got, want)
		}
	}
}

func TestCounter(t *testing.T) {
	for _, tc := range []struct {
		ephemeral bool
		want      []string
	}{
		{true, []string{"1", "1", "1", "1"}},
		{false, []string{"1", "2", "3", "4"}},
	} {
		t.Run(fmt.Sprint("ephemeral=", tc.ephemeral), func(t *testing.T) {
			tn := newTenant(t, "counter", "counter", Settings{Backend: "process", Ephemeral: tc.ephemeral, Concurrency: 1})
			var got []string
			for range tc.want {
				r, err := get(t, tn, "/")
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, string(r.Body))
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
			if f := tn.Status().Faults; f != 0 {
				t.Errorf("%d faults", f)
			}
		})
	}
}

// Many requests at once share the slots; each starts from the snapshot.
func TestParallel(t *testing.T) {
	tn := newTenant(t, "counter", "counter", Settings{Backend: "process", Ephemeral: true, Concurrency: 3, MaxQueueTime: 10 * time.Second})
	errs := make(chan error, 40)
	for i := 0; i < 40; i++ {
		go func() {
			r, err := get(t, tn, "/")
			if err == nil && string(r.Body) != "1" {
				err = fmt.Errorf("got %q, want 1", r.Body)
			}
			errs <- err
		}()
	}
	for i := 0; i < 40; i++ {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if f := tn.Status().Faults; f != 0 {
		t.Errorf("%d faults", f)
	}
}
