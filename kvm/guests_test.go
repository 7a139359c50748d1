package kvm

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// The test guests are C programs in testdata/guests, built by its build.sh.
// Where EDGEHOST_KVM_GUESTS names a directory (scripts/test-kvm.sh sets it
// inside its QEMU guest, which has no compiler), they are read from there.

var guestCache struct {
	mu   sync.Mutex
	dir  string
	bins map[string][]byte
}

// errNoGuest marks a guest that cannot be had here (no musl-gcc, say).
var errNoGuest = errors.New("guest not available")

func guestBinary(name string) ([]byte, error) {
	guestCache.mu.Lock()
	defer guestCache.mu.Unlock()
	if b, ok := guestCache.bins[name]; ok {
		return b, nil
	}
	dir := os.Getenv("EDGEHOST_KVM_GUESTS")
	if dir == "" {
		if guestCache.dir == "" {
			d, err := os.MkdirTemp("", "edgehost-kvm-guests-")
			if err != nil {
				return nil, err
			}
			guestCache.dir = d
		}
		dir = guestCache.dir
		path := filepath.Join(dir, name)
		if _, err := os.Stat(path); err != nil {
			out, err := exec.Command("sh", "testdata/guests/build.sh", dir, name).CombinedOutput()
			if err != nil {
				return nil, fmt.Errorf("build guest %s: %v\n%s", name, err, out)
			}
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, name))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s not built in %s (see testdata/guests/build.sh): %w", name, dir, errNoGuest)
	}
	if err != nil {
		return nil, err
	}
	if guestCache.bins == nil {
		guestCache.bins = map[string][]byte{}
	}
	guestCache.bins[name] = b
	return b, nil
}

// guest returns a test guest's ELF bytes, skipping the test when the guest
// cannot be built here.
func guest(t testing.TB, name string) []byte {
	t.Helper()
	b, err := guestBinary(name)
	if errors.Is(err, errNoGuest) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestMain(m *testing.M) {
	code := m.Run()
	if guestCache.dir != "" {
		os.RemoveAll(guestCache.dir)
	}
	os.Exit(code)
}
