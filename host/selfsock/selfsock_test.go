package selfsock

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestMain: with SELFSOCK_DIAL set, the test binary only dials that socket
// and prints what it reads (run as another user by TestRefusesOtherUsers).
func TestMain(m *testing.M) {
	if p := os.Getenv("SELFSOCK_DIAL"); p != "" {
		c, err := net.Dial("unix", p)
		if err != nil {
			fmt.Println("dial:", err)
			os.Exit(0)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		b, err := io.ReadAll(c)
		fmt.Printf("read %q %v\n", b, err)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// serveHello answers every accepted connection with "hello".
func serveHello(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		io.WriteString(c, "hello")
		c.Close()
	}
}

// TestModeIgnoresUmask (issue 13, item 9): the socket is 0600 (0660 with
// a group) even under umask 000, which used to make it 0777.
func TestModeIgnoresUmask(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	for _, tc := range []struct {
		group string
		mode  os.FileMode
	}{
		{"", 0o600},
		{strconv.Itoa(os.Getgid()), 0o660},
	} {
		path := filepath.Join(t.TempDir(), "self.sock")
		ln, err := Listen(path, Options{Group: tc.group, Logger: quiet()})
		if err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != tc.mode {
			t.Errorf("group %q: mode %v, want socket %v", tc.group, fi.Mode(), tc.mode)
		}
		if st := fi.Sys().(*syscall.Stat_t); tc.group != "" && int(st.Gid) != os.Getgid() {
			t.Errorf("group %d, want %d", st.Gid, os.Getgid())
		}
		entries, _ := os.ReadDir(filepath.Dir(path))
		if len(entries) != 1 {
			t.Errorf("left behind: %v", entries)
		}
		go serveHello(ln)
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(c)
		c.Close()
		if string(b) != "hello" {
			t.Errorf("own user refused: %q", b)
		}
		ln.Close()
	}
	if _, err := Listen(filepath.Join(t.TempDir(), "s"), Options{Group: "no-such-group-13"}); err == nil || !strings.Contains(err.Error(), "listen.self_group") {
		t.Errorf("unknown group: %v", err)
	}
}

// TestRefusesOtherUsers: a peer that is not edgehost's user is refused by
// its credentials even when the socket's mode would let it in (a chmod by
// mistake); a member of the configured group is let in.
func TestRefusesOtherUsers(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a peer as another user")
	}
	const nobody = 65534
	dir, err := os.MkdirTemp("", "selfsock")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	// The peer runs a copy of this test binary that nobody can execute.
	self, _ := os.Executable()
	b, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(dir, "peer")
	if err := os.WriteFile(exe, b, 0o755); err != nil {
		t.Fatal(err)
	}
	dial := func(path string) string {
		cmd := exec.Command(exe)
		cmd.Env = append(os.Environ(), "SELFSOCK_DIAL="+path)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("peer: %v %s", err, out)
		}
		return string(out)
	}
	for _, tc := range []struct {
		group string
		want  string
	}{
		{"", `read ""`},
		{strconv.Itoa(nobody), `read "hello"`},
	} {
		var refused atomic.Int64
		path := filepath.Join(dir, "self"+tc.group+".sock")
		ln, err := Listen(path, Options{Group: tc.group, Logger: quiet(), Refused: &refused})
		if err != nil {
			t.Fatal(err)
		}
		go serveHello(ln)
		os.Chmod(path, 0o666)
		got := dial(path)
		if !strings.HasPrefix(got, tc.want) {
			t.Errorf("group %q: peer uid %d got %s, want %s", tc.group, nobody, got, tc.want)
		}
		if want := map[bool]int64{true: 1, false: 0}[tc.group == ""]; refused.Load() != want {
			t.Errorf("group %q: %d refusals counted", tc.group, refused.Load())
		}
		ln.Close()
	}
}
