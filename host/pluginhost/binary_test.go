package pluginhost

import (
	"os"
	"path/filepath"
	"testing"
)

func TestPinAndPrune(t *testing.T) {
	env := newManager(t)
	store := filepath.Join(env.m.stateDir(), "plugins")
	stale := filepath.Join(store, "00aa", "edgehost-plugin-old")
	foreign := filepath.Join(store, "notes.txt")
	for _, p := range []string{stale, foreign} {
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	load(t, env, parseSpec(t, "pin", bins.v1, `greeting = "x"`))
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("a binary of an earlier run was not pruned: %v", err)
	}
	if _, err := os.Stat(foreign); err != nil {
		t.Errorf("a file that is not the store's was removed: %v", err)
	}
	// Pinning the same binary twice reuses the copy; a tampered copy is
	// replaced.
	b1, diags := env.m.pin(Spec{Name: "pin", Path: bins.v1})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	// (Writing the running copy in place fails with ETXTBSY; replace it.)
	if err := os.Remove(b1.path); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(b1.path, []byte("tampered"), 0o700); err != nil {
		t.Fatal(err)
	}
	b2, diags := env.m.pin(Spec{Name: "pin", Path: bins.v1})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if b2.path != b1.path || digestOf(t, b2.path) != b1.digest {
		t.Errorf("tampered copy not replaced: %s has digest %s, want %s", b2.path, digestOf(t, b2.path), b1.digest)
	}
}
