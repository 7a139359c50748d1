package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Errors the store returns. Test them with errors.Is.
var (
	// ErrNotFound: no object under that key and variant (or it is past its
	// KeepUntil).
	ErrNotFound = errors.New("store: not found")
	// ErrCorrupt: the object failed a checksum or could not be decoded; it
	// has been dropped and must be refetched.
	ErrCorrupt = errors.New("store: corrupt object")
	// ErrInUse: another process holds cache.db (Open waited Options.Timeout).
	ErrInUse = errors.New("store: cache file in use")
	// ErrTooLarge: the object alone is larger than Options.MaxBytes.
	ErrTooLarge = errors.New("store: object larger than the disk budget")
	// ErrClosed: the store has been closed.
	ErrClosed = errors.New("store: closed")
)

// Defaults for the zero values of Options.
const (
	DefaultTimeout       = time.Second
	DefaultSweepInterval = time.Minute
)

// Options configure Open. The zero value is valid.
type Options struct {
	// MaxBytes is the disk budget (storage.disk): the bytes of cache.db's
	// pages that objects may fill; 0 = unlimited. Past it the least
	// recently used objects are evicted (see calibrate). The file may be
	// larger by its free pages: bbolt never shrinks a file, it reuses them.
	MaxBytes int64
	// Timeout is how long Open waits for the file lock before it gives up
	// with ErrInUse; 0 means DefaultTimeout (never "wait forever": a second
	// edgehost on the same state_dir must fail fast, not hang).
	Timeout time.Duration
	// Logger gets the store's log lines; nil discards them.
	Logger *slog.Logger
	// NoSync skips the fsync of every commit. edgehost's cache sets it:
	// cache.db is rebuildable, and Puts happen behind responses, where an
	// fsync (milliseconds on most disks) would cap the store at a few
	// hundred objects a second. Without fsync a crash of the process
	// (kill -9) loses nothing, because the kernel's page cache still holds
	// every write; only a crash of the machine can leave a half-written
	// file. To never serve such a file, the store records the kernel's
	// boot id in meta/boot while open with NoSync and clears it on a clean
	// Close: a file still marked by another boot is moved aside on Open.
	// programs.db, the source of truth, does not use this package.
	NoSync bool
	// SweepInterval is how often objects past their KeepUntil are dropped;
	// 0 means DefaultSweepInterval.
	SweepInterval time.Duration
}

// Store is an open cache.db. Its methods are safe for concurrent use.
type Store struct {
	db   *bolt.DB
	path string
	opts Options
	log  *slog.Logger
	idx  *index

	// closeMu is held shared by every operation and exclusively by Close,
	// so Close waits for operations in flight and later ones get ErrClosed.
	closeMu sync.RWMutex
	closed  bool

	group      group         // write transactions (see update)
	indexReady atomic.Bool   // the index is built and the file fits MaxBytes
	ratio      atomic.Uint64 // float64 bits: file pages in use per estimated byte (see calibrate)
	calibrated atomic.Int64  // unix ns of the last calibrate
	evictions  atomic.Uint64
	corrupt    atomic.Uint64
	expired    atomic.Uint64

	cancel context.CancelFunc
	wg     sync.WaitGroup

	pinMu    sync.Mutex
	pins     map[pinKey]int  // bodies being sent (Body.Pin)
	retiring map[pinKey]bool // pinned bodies whose chunks went (or are going) to retired/
}

// Stats are the store's counters. Objects and Bytes are complete once
// IndexReady is true; before that they count only objects written or read
// since Open.
type Stats struct {
	Objects    int64  // objects stored
	Bytes      int64  // estimated bytes of those objects (bodies, headers, index entries)
	DiskBytes  int64  // bytes of cache.db's pages in use (the file may be larger: bbolt keeps free pages)
	Evictions  uint64 // objects removed to stay within MaxBytes (segments with their meta object included)
	Corrupt    uint64 // objects dropped because a checksum failed or they could not be decoded
	Expired    uint64 // objects dropped past their KeepUntil by the sweep
	IndexReady bool   // the background index build has finished (and the file was brought within MaxBytes)
}

// Open opens the cache file at path, creating it (and its directory) if
// needed.
//
// A file that is not a bbolt file, is damaged, is a bbolt file of another
// schema, or may have lost writes in a machine crash (see Options.NoSync)
// is renamed to "<path>.corrupt-<unix time>" with a WARN log line, and a
// fresh file is started: a cache may be lost, never served corrupt. A file
// locked by another process is left alone: Open returns ErrInUse after
// Options.Timeout.
//
// Open reads only the meta bucket; the LRU index is built in the
// background (Stats.IndexReady).
func Open(path string, opts Options) (*Store, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.SweepInterval <= 0 {
		opts.SweepInterval = DefaultSweepInterval
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	boot := bootID()
	db, err := openChecked(path, opts, boot, log)
	if err != nil {
		return nil, err
	}
	db.NoSync = opts.NoSync
	ctx, cancel := context.WithCancel(context.Background())
	s := &Store{db: db, path: path, opts: opts, log: log, idx: newIndex(), cancel: cancel, pins: map[pinKey]int{}, retiring: map[pinKey]bool{}}
	s.ratio.Store(math.Float64bits(1))
	s.wg.Add(2)
	go s.buildIndex(ctx)
	go s.sweepLoop(ctx)
	return s, nil
}

// openChecked opens path and checks its schema; a file that fails either
// is moved aside once and a fresh file opened in its place.
func openChecked(path string, opts Options, boot string, log *slog.Logger) (*bolt.DB, error) {
	// Faults on the mapping (a file shorter than its pages say) become
	// panics that openBolt and prepare recover, instead of a crash.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	for attempt := 0; ; attempt++ {
		db, err := openBolt(path, opts)
		if err == nil {
			// Checked only once the lock is ours: a file in use by
			// another process is never moved.
			if b, rerr := os.ReadFile(path + damagedSuffix); rerr == nil {
				err = fmt.Errorf("%w: marked damaged by a previous run: %s", errUnusable, strings.TrimSpace(string(b)))
				_ = os.Remove(path + damagedSuffix)
			} else {
				err = prepare(db, boot, opts.NoSync)
			}
			if err == nil {
				return db, nil
			}
			_ = db.Close()
		}
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, inUseError(path, opts.Timeout)
		}
		if !errors.Is(err, errUnusable) || attempt > 0 {
			return nil, fmt.Errorf("store: open %s: %w", path, err)
		}
		aside, mvErr := moveAside(path)
		if mvErr != nil {
			return nil, fmt.Errorf("store: open %s: %v; moving it aside: %w", path, err, mvErr)
		}
		log.Warn("cache file unusable: moved aside, starting an empty cache",
			"path", path, "moved_to", aside, "reason", err.Error())
	}
}

// errUnusable marks a file that opened (or failed to) in a way that a fresh
// file fixes: garbage, damage, a foreign schema.
var errUnusable = errors.New("unusable cache file")

// openBolt opens the bbolt file, classifying its failures.
func openBolt(path string, opts Options) (db *bolt.DB, err error) {
	defer func() {
		if p := recover(); p != nil {
			db, err = nil, fmt.Errorf("%w: bbolt panicked: %v", errUnusable, p)
		}
	}()
	db, err = bolt.Open(path, 0o600, &bolt.Options{
		Timeout:      opts.Timeout,
		NoGrowSync:   opts.NoSync,
		FreelistType: bolt.FreelistMapType,
	})
	switch {
	case err == nil:
		return db, nil
	case errors.Is(err, bolt.ErrTimeout),
		errors.Is(err, fs.ErrPermission),
		errors.Is(err, fs.ErrNotExist):
		return nil, err
	}
	// Everything else comes from reading the file's own pages: a short
	// file, bad meta pages, a bbolt version mismatch, a failed mmap of a
	// nonsense size.
	return nil, fmt.Errorf("%w: %w", errUnusable, err)
}

// moveAside renames path to path.corrupt-<unix time> (with a counter if
// that name is taken) and returns the new name.
func moveAside(path string) (string, error) {
	base := fmt.Sprintf("%s.corrupt-%d", path, time.Now().Unix())
	aside := base
	for i := 1; ; i++ {
		if _, err := os.Lstat(aside); errors.Is(err, fs.ErrNotExist) {
			break
		}
		aside = fmt.Sprintf("%s-%d", base, i)
	}
	if err := os.Rename(path, aside); err != nil {
		return "", err
	}
	return aside, nil
}

func inUseError(path string, timeout time.Duration) error {
	who := "another edgehost"
	if pid := lockHolder(path); pid > 0 {
		who = fmt.Sprintf("another edgehost (pid %d)", pid)
	}
	return fmt.Errorf("%s is in use by %s: gave up after %s; stop it or use another state_dir: %w",
		filepath.Base(path), who, timeout, ErrInUse)
}

// bootID returns the kernel's boot id, or "" where there is none to read.
func bootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// Close stops the background work, flushes the file and closes it. The
// store records a clean close, so that the next Open trusts the file even
// after a machine crash. Close is idempotent.
func (s *Store) Close() error {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.cancel()
	s.wg.Wait()
	var errs []error
	if s.opts.NoSync {
		// Everything written so far reaches the disk before meta/boot is
		// cleared (the clearing commit itself is synced: NoSync is off).
		s.db.NoSync = false
		if err := s.db.Sync(); err != nil {
			errs = append(errs, err)
		} else if err := s.tx(func(tx *bolt.Tx) error {
			return tx.Bucket(bucketMeta).Delete(keyBoot)
		}); err != nil {
			errs = append(errs, err)
		}
	}
	if err := s.db.Close(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("store: close %s: %w", s.path, err)
	}
	return nil
}

// acquire is called by every operation: it fails with ErrClosed after
// Close; otherwise the caller must call s.closeMu.RUnlock when done.
func (s *Store) acquire() error {
	s.closeMu.RLock()
	if s.closed {
		s.closeMu.RUnlock()
		return ErrClosed
	}
	return nil
}

// Stats returns the store's counters.
func (s *Store) Stats() Stats {
	objects, bytes, _ := s.idx.stats()
	return Stats{
		Objects:    objects,
		Bytes:      bytes,
		DiskBytes:  s.pagesInUse(),
		Evictions:  s.evictions.Load(),
		Corrupt:    s.corrupt.Load(),
		Expired:    s.expired.Load(),
		IndexReady: s.indexReady.Load(),
	}
}

// Path is the file the store was opened on.
func (s *Store) Path() string { return s.path }
