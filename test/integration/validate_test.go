package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestValidatePlugins: a config that `edgehost run` would refuse does not
// validate (issue 14 item 8). validate starts each plugin as run does:
// the binary must exist, match its pinned sha256, start, and accept its
// settings against the schema it declares; each problem at file:line:col.
func TestValidatePlugins(t *testing.T) {
	dir := t.TempDir()
	base := strings.NewReplacer("{{HTTP}}", "127.0.0.1:1", "{{ADMIN}}", "127.0.0.1:2").Replace(baseConfig("http://127.0.0.1:1", ""))
	lines := strings.Count(base, "\n")
	bad := filepath.Join(dir, "bad.hcl")
	os.WriteFile(bad, []byte(base+`plugin "nosuch" {}
plugin "slicer" {
  sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
}
plugin "file" {
  nonsense = 1
}
`), 0o644)
	out, err := exec.Command(edgehostBin(), "validate", "-config", bad).CombinedOutput()
	if err == nil {
		t.Fatalf("validate accepted plugins that cannot run:\n%s", out)
	}
	line := func(n int) string { return bad + ":" + strconv.Itoa(lines+n) }
	for _, want := range []string{
		line(1) + ":1: error: Cannot read plugin binary",
		line(3) + ":12: error: Plugin binary checksum mismatch",
		line(6) + ":3: error: Unsupported argument",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("validate output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), ": ok") {
		t.Errorf("validate said ok:\n%s", out)
	}

	good := filepath.Join(dir, "good.hcl")
	os.WriteFile(good, []byte(base+"plugin \"slicer\" {}\nplugin \"file\" {}\n"), 0o644)
	cmd := exec.Command(edgehostBin(), "validate", "-config", good)
	cmd.Dir = dir // state_dir = "./var" is there
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("validate rejected runnable plugins: %s", out)
	}
	// validate pins binaries in a throwaway directory, never state_dir.
	if _, err := os.Stat(filepath.Join(dir, "var")); err == nil {
		t.Error("validate wrote into the config's state_dir")
	}
}
