package pluginhost

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// binary is a plugin binary pinned by content: path is the copy that runs.
type binary struct {
	source string // the configured file
	path   string // StateDir/plugins/<digest>/<base of source>
	digest string // hex sha256
}

func (b binary) sum() []byte {
	s, _ := hex.DecodeString(b.digest)
	return s
}

// sourcePath is the binary a spec names.
func (m *Manager) sourcePath(s Spec) string {
	if s.Path != "" {
		return s.Path
	}
	dir := m.opts.BinDir
	if dir == "" {
		if exe, err := os.Executable(); err == nil {
			dir = filepath.Dir(exe)
		}
	}
	return filepath.Join(dir, "edgehost-plugin-"+s.Name)
}

// pin copies the spec's binary into the content-addressed store, hashing
// what it copies, and checks the digest against the pinned one. What was
// hashed is exactly what will run, however the source changes meanwhile.
func (m *Manager) pin(s Spec) (binary, hcl.Diagnostics) {
	src := m.sourcePath(s)
	b, err := m.copyBinary(src)
	if err != nil {
		rng := s.PathRange
		if rng.Filename == "" {
			rng = s.DefRange
		}
		return binary{}, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Cannot read plugin binary",
			Detail:   fmt.Sprintf("Plugin %q: %v.", s.Name, err),
			Subject:  rng.Ptr(),
		}}
	}
	if want := strings.ToLower(strings.TrimSpace(s.SHA256)); want != "" && want != b.digest {
		rng := s.SHA256Range
		if rng.Filename == "" {
			rng = s.DefRange
		}
		return binary{}, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Plugin binary checksum mismatch",
			Detail: fmt.Sprintf("Plugin %q: the binary %s has sha256 %s, but the configuration pins sha256 = %q; it was not started (%v).",
				s.Name, src, b.digest, want, ErrChecksum),
			Subject: rng.Ptr(),
		}}
	}
	return b, nil
}

func (m *Manager) copyBinary(src string) (binary, error) {
	in, err := os.Open(src)
	if err != nil {
		return binary{}, err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return binary{}, err
	}
	if !fi.Mode().IsRegular() {
		return binary{}, fmt.Errorf("%s is not a regular file", src)
	}
	store := filepath.Join(m.stateDir(), "plugins")
	if err := os.MkdirAll(store, 0o700); err != nil {
		return binary{}, fmt.Errorf("plugin store: %w", err)
	}
	tmp, err := os.CreateTemp(store, ".copy-*")
	if err != nil {
		return binary{}, fmt.Errorf("plugin store: %w", err)
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(tmp, h), in); err != nil {
		tmp.Close()
		return binary{}, fmt.Errorf("copy %s: %w", src, err)
	}
	if err := tmp.Chmod(0o500); err != nil {
		tmp.Close()
		return binary{}, err
	}
	if err := tmp.Close(); err != nil {
		return binary{}, err
	}
	digest := hex.EncodeToString(h.Sum(nil))
	dir := filepath.Join(store, digest)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return binary{}, fmt.Errorf("plugin store: %w", err)
	}
	dst := filepath.Join(dir, filepath.Base(src))
	if d, err := fileDigest(dst); err == nil && d == digest {
		return binary{source: src, path: dst, digest: digest}, nil
	}
	// A copy whose content is not its name (tampered, or torn by a crash)
	// is replaced; rename is atomic, so a running copy is never modified.
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return binary{}, fmt.Errorf("plugin store: %w", err)
	}
	return binary{source: src, path: dst, digest: digest}, nil
}

func fileDigest(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func (m *Manager) stateDir() string {
	if m.opts.StateDir != "" {
		return m.opts.StateDir
	}
	return filepath.Join(os.TempDir(), "edgehost-state")
}

// pluginDataDir is the directory a plugin keeps its own files in
// (Config.StateDir): StateDir/plugin-data/NAME, shared by its instances.
func (m *Manager) pluginDataDir(name string) string {
	dir := filepath.Join(m.stateDir(), "plugin-data", name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		m.log.Warn("cannot create plugin data directory", "plugin", name, "error", err)
		return ""
	}
	return dir
}

// pruneStore removes the binaries that earlier runs pinned. It runs once,
// before the first plugin is pinned, so that the store holds one run's
// binaries (every reload pins one more) and nothing running is touched.
func (m *Manager) pruneStore() {
	store := filepath.Join(m.stateDir(), "plugins")
	entries, err := os.ReadDir(store)
	if err != nil {
		return
	}
	for _, e := range entries {
		if _, err := hex.DecodeString(e.Name()); err != nil && !strings.HasPrefix(e.Name(), ".copy-") {
			continue // not ours
		}
		if err := os.RemoveAll(filepath.Join(store, e.Name())); err != nil {
			m.log.Warn("cannot prune plugin store", "path", e.Name(), "error", err)
		}
	}
}
