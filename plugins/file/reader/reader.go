// Package reader is the logic of the file plugin (DESIGN §7, issue 4):
// named readers of single files, and static roots whose files the host
// reads on a cache miss.
//
// A Reader maps its file (mmap, read-only) and checks it every TTL in the
// background. Each check compares the file's identity, (device, inode,
// size, mtime), with the version it serves:
//
//   - unchanged: nothing happens (a previous error or deletion is cleared);
//   - changed: the new identity must be seen twice, Settle apart, before
//     it is loaded (a writer still writing changes size or mtime between
//     the two looks), and again after mapping and hashing; a version that
//     moves under the check is not published and the check runs again
//     after Settle. So a delete + create (or an atomic rename over the
//     path) is picked up at the next check, and an in-place rewrite is
//     picked up once it has been still for Settle;
//   - gone: the reader reports deleted = true and keeps serving the last
//     contents, which stay mapped (an unlinked inode lives while mapped);
//     this is not an error. A file that is missing with nothing served
//     before is an error ("missing");
//   - unreadable, not a regular file, or larger than MaxSize: error = true
//     with the reason; the last good version stays mapped but a host must
//     not serve it while the error stands.
//
// A mapping can still change under a reader when the file is rewritten in
// place; every Read re-checks the file's identity after copying and fails
// with ErrChangedUnderfoot when it moved, and a page fault from a file
// truncated under the mapping is recovered into the same error.
//
// The state of every reader lives in a Set, which streams it to watchers:
// the full state first, then a sync marker (a state with an empty reader
// name, message SyncMarker), then every change.
package reader

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/edgehost/edgehost/plugins/pluginapi"
	pluginv1 "github.com/edgehost/edgehost/proto/edgehost/plugin/v1"
)

// Defaults of a reader's settings.
const (
	DefaultTTL     = time.Minute
	DefaultMaxSize = 64 << 20
	// DefaultSettle is how long a changed file must keep the same
	// identity before it is published (capped at the TTL).
	DefaultSettle = 100 * time.Millisecond
)

// Error codes of ReaderState.error: the protocol's, from pluginapi.
const (
	ErrCodeMissing    = pluginapi.FileErrMissing
	ErrCodeUnreadable = pluginapi.FileErrUnreadable
	ErrCodeNotRegular = pluginapi.FileErrNotRegular
	ErrCodeTooLarge   = pluginapi.FileErrTooLarge
)

// Config is one reader's settings.
type Config struct {
	Name    string
	Path    string
	TTL     time.Duration // 0: DefaultTTL
	SHA256  bool
	MaxSize int64 // 0: DefaultMaxSize
}

// fileKey is the identity of one version of a file.
type fileKey struct {
	dev, ino uint64
	size     int64
	mtime    int64 // unix nanoseconds
}

func keyOf(fi fs.FileInfo) fileKey {
	k := fileKey{size: fi.Size(), mtime: fi.ModTime().UnixNano()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		k.dev, k.ino = uint64(st.Dev), uint64(st.Ino)
	}
	return k
}

// id is the cheap digest of the identity: 24 hex digits of the SHA-256 of
// device, inode, size and mtime. Any new file or any write makes a new id.
func (k fileKey) id() string {
	var b [32]byte
	binary.BigEndian.PutUint64(b[0:], k.dev)
	binary.BigEndian.PutUint64(b[8:], k.ino)
	binary.BigEndian.PutUint64(b[16:], uint64(k.size))
	binary.BigEndian.PutUint64(b[24:], uint64(k.mtime))
	sum := sha256.Sum256(b[:])
	return hex.EncodeToString(sum[:12])
}

// version is one published version of the file: its mapping and the open
// file (kept to re-check the identity after each read).
type version struct {
	key  fileKey
	m    *mapping
	f    *os.File
	id   string
	sha  string
	once sync.Once
}

func (v *version) acquire() bool { return v.m.acquire() }

func (v *version) release() {
	v.m.release()
	if v.m.refs.Load() == 0 {
		v.once.Do(func() { v.f.Close() })
	}
}

// errUnstable means the file moved while it was being loaded.
var errUnstable = errors.New("file changed while loading")

// Reader is one named reader. Construct with Set.AddReader.
type Reader struct {
	cfg    Config
	settle time.Duration
	set    *Set
	log    hclog.Logger

	checkMu sync.Mutex // one check at a time
	mu      sync.Mutex // guards cur
	cur     *version
	// pending is an identity seen once and not yet confirmed; only the
	// check (under checkMu) touches it.
	pending   *fileKey
	pendingAt time.Time
}

// Name is the reader's name.
func (r *Reader) Name() string { return r.cfg.Name }

// check runs one check and reports whether a change is pending: the
// caller checks again after Settle.
func (r *Reader) check(now time.Time) bool {
	r.mu.Lock()
	cur := r.cur
	r.mu.Unlock()
	fi, err := os.Stat(r.cfg.Path)
	if err != nil {
		r.pending = nil
		if errors.Is(err, fs.ErrNotExist) {
			if cur != nil {
				r.publish(cur, "", "file deleted; serving the last contents", true)
				return false
			}
			r.publish(nil, ErrCodeMissing, fmt.Sprintf("%s: no such file", r.cfg.Path), false)
			return false
		}
		r.publish(cur, ErrCodeUnreadable, err.Error(), false)
		return false
	}
	if !fi.Mode().IsRegular() {
		r.pending = nil
		what := "not a regular file (" + fi.Mode().Type().String() + ")"
		if fi.IsDir() {
			what = "a directory"
		}
		r.publish(cur, ErrCodeNotRegular, fmt.Sprintf("%s is %s", r.cfg.Path, what), false)
		return false
	}
	if max := r.maxSize(); fi.Size() > max {
		r.pending = nil
		r.publish(cur, ErrCodeTooLarge, fmt.Sprintf("%s is %d bytes, more than max_size (%d bytes)", r.cfg.Path, fi.Size(), max), false)
		return false
	}
	k := keyOf(fi)
	if cur != nil && cur.key == k {
		r.pending = nil
		r.publish(cur, "", "", false)
		return false
	}
	if r.pending == nil || *r.pending != k {
		r.pending, r.pendingAt = &k, now
		return true
	}
	if now.Sub(r.pendingAt) < r.settle {
		return true
	}
	v, err := r.load(k)
	if errors.Is(err, errUnstable) {
		r.pending = nil
		return true
	}
	r.pending = nil
	if err != nil {
		r.publish(cur, ErrCodeUnreadable, err.Error(), false)
		return false
	}
	r.mu.Lock()
	r.cur = v
	r.mu.Unlock()
	r.publish(v, "", "", false)
	if cur != nil {
		cur.release()
	}
	r.log.Info("reader loaded a new version", "reader", r.cfg.Name, "path", r.cfg.Path, "size", k.size, "id", v.id)
	return false
}

func (r *Reader) maxSize() int64 {
	if r.cfg.MaxSize > 0 {
		return r.cfg.MaxSize
	}
	return DefaultMaxSize
}

// load opens, maps and (when configured) hashes the version k, checking
// that the file still is k afterwards.
func (r *Reader) load(k fileKey) (*version, error) {
	f, err := os.Open(r.cfg.Path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, errUnstable
		}
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
		}
	}()
	same := func() (bool, error) {
		fi, err := f.Stat()
		if err != nil {
			return false, err
		}
		return keyOf(fi) == k, nil
	}
	if s, err := same(); err != nil || !s {
		return nil, errors.Join(errUnstable, err)
	}
	m, err := mapFile(f, k.size)
	if err != nil {
		return nil, err
	}
	v := &version{key: k, m: m, f: f, id: k.id()}
	if r.cfg.SHA256 {
		sum, err := hashMapped(m.data)
		if err != nil {
			m.release()
			return nil, errUnstable
		}
		v.sha = sum
	}
	if s, err := same(); err != nil || !s {
		m.release()
		return nil, errors.Join(errUnstable, err)
	}
	ok = true
	return v, nil
}

// hashMapped hashes a mapping; a fault (the file was truncated) is an error.
func hashMapped(data []byte) (sum string, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", ErrChangedUnderfoot, r)
		}
	}()
	h := sha256.Sum256(data)
	return hex.EncodeToString(h[:]), nil
}

// publish records the reader's state in its set.
func (r *Reader) publish(v *version, code, msg string, deleted bool) {
	st := &pluginv1.ReaderState{Reader: r.cfg.Name, Error: code, Message: msg, Deleted: deleted}
	if v != nil {
		st.MtimeUnixNano, st.Size, st.IdDigest, st.Sha256 = v.key.mtime, v.key.size, v.id, v.sha
	}
	if r.set.put(st) {
		switch {
		case code != "":
			r.log.Warn("reader check failed", "reader", r.cfg.Name, "path", r.cfg.Path, "error", code, "reason", msg)
		case deleted:
			r.log.Warn("reader's file was deleted; serving its last contents", "reader", r.cfg.Name, "path", r.cfg.Path)
		}
	}
}

// CheckNow checks the reader at once and, while a change is settling,
// again every Settle (at most a few seconds), then returns its state.
func (r *Reader) CheckNow(ctx context.Context) *pluginv1.ReaderState {
	r.checkMu.Lock()
	defer r.checkMu.Unlock()
	for range 50 {
		if !r.check(time.Now()) {
			break
		}
		select {
		case <-ctx.Done():
			return r.set.state(r.cfg.Name)
		case <-time.After(r.settle):
		}
	}
	return r.set.state(r.cfg.Name)
}

// run checks the reader every TTL (every Settle while a change settles)
// until ctx ends.
func (r *Reader) run(ctx context.Context) {
	ttl := r.cfg.TTL
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	t := time.NewTimer(ttl)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		r.checkMu.Lock()
		pending := r.check(time.Now())
		r.checkMu.Unlock()
		if pending {
			t.Reset(r.settle)
		} else {
			t.Reset(ttl)
		}
	}
}

// Read writes length bytes from offset (length < 0: to the end) of the
// current version to w. A non-empty id must be the current version's.
func (r *Reader) Read(id string, offset, length int64, w io.Writer) error {
	r.mu.Lock()
	v := r.cur
	if v != nil && !v.acquire() {
		v = nil
	}
	r.mu.Unlock()
	if v == nil {
		return fmt.Errorf("reader %q: %w", r.cfg.Name, ErrNoContents)
	}
	defer v.release()
	if id != "" && id != v.id {
		return fmt.Errorf("reader %q: %w (asked for %s, current %s)", r.cfg.Name, ErrVersionGone, id, v.id)
	}
	size := int64(len(v.m.data))
	if offset < 0 || offset > size {
		return fmt.Errorf("reader %q: offset %d outside 0..%d: %w", r.cfg.Name, offset, size, ErrBadRange)
	}
	n := size - offset
	if length >= 0 && length < n {
		n = length
	}
	if err := copyRange(w, v.m.data, offset, n); err != nil {
		return err
	}
	// An in-place rewrite changes what the mapping shows; a read that
	// overlapped one must not be taken for the version it asked for.
	fi, err := v.f.Stat()
	if err != nil || keyOf(fi) != v.key {
		return fmt.Errorf("reader %q: %w", r.cfg.Name, ErrChangedUnderfoot)
	}
	return nil
}

// close releases the current version.
func (r *Reader) close() {
	r.mu.Lock()
	v := r.cur
	r.cur = nil
	r.mu.Unlock()
	if v != nil {
		v.release()
	}
}

// Errors of Read.
var (
	// ErrNoContents: the reader has never loaded its file.
	ErrNoContents = errors.New("reader has no contents")
	// ErrVersionGone: the version asked for is no longer the current one.
	ErrVersionGone = errors.New("version is no longer current")
	// ErrBadRange: the offset lies outside the contents.
	ErrBadRange = errors.New("range outside the contents")
)
