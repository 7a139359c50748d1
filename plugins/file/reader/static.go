package reader

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	pluginv1 "github.com/edgehost/edgehost/proto/edgehost/plugin/v1"
)

// Errors of static roots.
var (
	// ErrOutside: the path leaves the root ("..", or a symlink that
	// points out of it). The host answers 404 and logs it.
	ErrOutside = errors.New("path outside the static root")
	// ErrNotFound: no regular file at the path (missing, or a directory).
	ErrNotFound = errors.New("no such file under the static root")
)

// StaticConfig is one static root's settings.
type StaticConfig struct {
	Name    string
	Root    string
	TTL     time.Duration // how often served files are checked; 0: DefaultTTL
	SHA256  bool
	MaxSize int64 // 0: DefaultMaxSize
}

// Static serves the files under a root directory. Files are opened
// through an os.Root, so that no path (not "..", not a symlink, not a
// symlink in a parent directory) reaches outside the root. Every file
// that the host has asked about is tracked: its identity is checked every
// TTL and a change is published as the state of "NAME/PATH" (deleted, or
// a new id), so that the host drops what it cached.
type Static struct {
	cfg  StaticConfig
	set  *Set
	root *os.Root

	mu      sync.Mutex
	tracked map[string]fileKey
}

// AddStatic adds a static root; call before Start. A root that cannot be
// opened is an error.
func (s *Set) AddStatic(cfg StaticConfig) (*Static, error) {
	if err := s.checkName(cfg.Name); err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(cfg.Root)
	if err != nil {
		return nil, fmt.Errorf("static %q: %w", cfg.Name, err)
	}
	st := &Static{cfg: cfg, set: s, root: root, tracked: map[string]fileKey{}}
	s.statics[cfg.Name] = st
	return st, nil
}

// cleanPath validates a request path relative to the root. ".." is
// refused outright (not resolved), and so are NUL bytes and backslashes.
func cleanPath(rel string) (string, error) {
	rel = strings.TrimPrefix(rel, "/")
	if strings.ContainsAny(rel, "\x00\\") {
		return "", fmt.Errorf("%w: %q holds a NUL or a backslash", ErrOutside, rel)
	}
	for _, seg := range strings.Split(rel, "/") {
		if seg == ".." {
			return "", fmt.Errorf("%w: %q holds \"..\"", ErrOutside, rel)
		}
	}
	c := path.Clean("/" + rel)[1:]
	if c == "" {
		c = "."
	}
	return c, nil
}

// open opens rel under the root and classifies the failure.
func (st *Static) open(rel string) (*os.File, fs.FileInfo, error) {
	f, err := st.root.Open(rel)
	if err != nil {
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil, nil, fmt.Errorf("%w: %s", ErrNotFound, rel)
		case strings.Contains(err.Error(), "escapes"):
			// os.Root reports a symlink out of the root as "path
			// escapes from parent".
			return nil, nil, fmt.Errorf("%w: %s: %v", ErrOutside, rel, err)
		}
		return nil, nil, fmt.Errorf("%s: %w", rel, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, nil, fmt.Errorf("%w: %s is not a regular file", ErrNotFound, rel)
	}
	return f, fi, nil
}

func (st *Static) maxSize() int64 {
	if st.cfg.MaxSize > 0 {
		return st.cfg.MaxSize
	}
	return DefaultMaxSize
}

// Stat returns the state of the file at rel and tracks it.
func (st *Static) Stat(rel string) (*pluginv1.ReaderState, error) {
	clean, err := cleanPath(rel)
	if err != nil {
		st.set.log.Warn("static path refused", "static", st.cfg.Name, "path", rel, "reason", err)
		return nil, err
	}
	f, fi, err := st.open(clean)
	if err != nil {
		if errors.Is(err, ErrOutside) {
			st.set.log.Warn("static path refused", "static", st.cfg.Name, "path", rel, "reason", err)
		}
		return nil, err
	}
	defer f.Close()
	if fi.Size() > st.maxSize() {
		return &pluginv1.ReaderState{Reader: st.cfg.Name + "/" + clean, Size: fi.Size(), Error: ErrCodeTooLarge,
			Message: fmt.Sprintf("%s is %d bytes, more than max_size (%d bytes)", clean, fi.Size(), st.maxSize())}, nil
	}
	k := keyOf(fi)
	out := &pluginv1.ReaderState{Reader: st.cfg.Name + "/" + clean, MtimeUnixNano: k.mtime, Size: k.size, IdDigest: k.id()}
	if st.cfg.SHA256 {
		h := sha256.New()
		if _, err := io.Copy(h, f); err != nil {
			return nil, err
		}
		if fi2, err := f.Stat(); err != nil || keyOf(fi2) != k {
			return nil, ErrChangedUnderfoot
		}
		out.Sha256 = hex.EncodeToString(h.Sum(nil))
	}
	st.mu.Lock()
	st.tracked[clean] = k
	st.mu.Unlock()
	return out, nil
}

// Read writes the file at rel (the range asked for) to w; a non-empty id
// must still be the file's.
func (st *Static) Read(_ context.Context, rel, id string, offset, length int64, w io.Writer) error {
	clean, err := cleanPath(rel)
	if err != nil {
		return err
	}
	f, fi, err := st.open(clean)
	if err != nil {
		return err
	}
	defer f.Close()
	k := keyOf(fi)
	if id != "" && k.id() != id {
		return fmt.Errorf("%s: %w", clean, ErrVersionGone)
	}
	if k.size > st.maxSize() {
		return fmt.Errorf("%s is %d bytes, more than max_size (%d bytes)", clean, k.size, st.maxSize())
	}
	if offset < 0 || offset > k.size {
		return fmt.Errorf("%s: offset %d outside 0..%d: %w", clean, offset, k.size, ErrBadRange)
	}
	n := k.size - offset
	if length >= 0 && length < n {
		n = length
	}
	if _, err := io.Copy(w, io.NewSectionReader(f, offset, n)); err != nil {
		return err
	}
	if fi2, err := f.Stat(); err != nil || keyOf(fi2) != k {
		return fmt.Errorf("%s: %w", clean, ErrChangedUnderfoot)
	}
	return nil
}

// run re-checks the tracked files every TTL until ctx ends.
func (st *Static) run(ctx context.Context) {
	ttl := st.cfg.TTL
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	t := time.NewTicker(ttl)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		st.checkTracked()
	}
}

// checkTracked publishes the tracked files that changed or vanished. A
// changed file stays tracked under its new identity; a vanished one is
// dropped (the host asks again on its next miss).
func (st *Static) checkTracked() {
	st.mu.Lock()
	files := make(map[string]fileKey, len(st.tracked))
	for k, v := range st.tracked {
		files[k] = v
	}
	st.mu.Unlock()
	for rel, old := range files {
		name := st.cfg.Name + "/" + rel
		fi, err := st.root.Stat(rel)
		if err != nil || !fi.Mode().IsRegular() {
			st.mu.Lock()
			delete(st.tracked, rel)
			st.mu.Unlock()
			msg := "file deleted"
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				msg = err.Error()
			}
			st.set.put(&pluginv1.ReaderState{Reader: name, Deleted: true, Error: ErrCodeMissing, Message: msg})
			continue
		}
		k := keyOf(fi)
		if k == old {
			continue
		}
		st.mu.Lock()
		st.tracked[rel] = k
		st.mu.Unlock()
		st.set.put(&pluginv1.ReaderState{Reader: name, MtimeUnixNano: k.mtime, Size: k.size, IdDigest: k.id()})
	}
}

func (st *Static) close() { st.root.Close() }
