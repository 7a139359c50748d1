// Package programs keeps the tenants' programs (DESIGN §3, §8, issue 12):
// every version uploaded or named by the config, which one is live, and the
// bytes of the most recent ones, in state_dir/programs.db. That file is the
// source of truth: every write is fsynced, and a file that cannot be read
// stops the start with a message naming it (it is never moved aside, unlike
// cache.db).
//
//	programs.db
//	├── meta/
//	│   └── version             "1"
//	└── tenants/
//	    └── <tenant>/
//	        ├── live            u64 BE: the version that serves (absent: none yet)
//	        ├── previous        u64 BE: the one live before it (rollback's default)
//	        ├── next            u64 BE: the number the next version gets
//	        ├── versions/
//	        │   └── <u64 BE>    JSON Version (the last KeepHistory, and the live one)
//	        └── binaries/
//	            └── <u64 BE>/   the bytes of the last KeepBinaries versions (and the live one)
//	                └── <u32 BE>  chunk ≤ 1 MiB
//
// The plugin reads a program from a file: the live version of each tenant
// is also written to state_dir/programs/<tenant>/<sha256> (rebuilt from
// programs.db at Open when missing or changed), and Adjust puts that path
// in the compute plugin's configuration in place of the tenant block's
// `program`.
//
// A change (an upload, a rollback, a new file named by the config) goes
// live the safe way: the version is stored, staged (Adjust hands out its
// path), and the caller's Swap has the compute plugin boot it beside the
// running version (host/node: pluginhost.Reconfigure, the plugin's
// incremental Configure); only when it has booted to its snapshot (and
// passed its warm-up) and new requests go to it does the version become
// live in programs.db. A Swap error leaves the old version serving and is
// recorded on the version ("rejected").
//
// Lifecycle: Open (reads and checks the file, writes the live binaries) →
// Adjust / Upload / Rollback / Prepare (one change at a time) → Close.
package programs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/zclconf/go-cty/cty"
	bolt "go.etcd.io/bbolt"
)

// Errors, for errors.Is at the edges (the admin API maps them to statuses).
var (
	// ErrTooLarge: the upload is larger than Options.MaxSize.
	ErrTooLarge = errors.New("program larger than the upload limit")
	// ErrNoVersion: the tenant has no such version, or its bytes are no
	// longer kept.
	ErrNoVersion = errors.New("no such version")
	// ErrRejected: the new version failed to boot; the old one serves.
	ErrRejected = errors.New("program rejected; the previous version keeps serving")
	// ErrInUse: another process holds programs.db.
	ErrInUse = errors.New("programs.db in use by another process")
)

// Defaults for the zero values of Options.
const (
	DefaultMaxSize      = 64 << 20
	DefaultKeepBinaries = 5
	DefaultKeepHistory  = 50
	chunkSize           = 1 << 20
)

// Options configure Open.
type Options struct {
	MaxSize      int64         // upload limit in bytes; default 64 MiB
	KeepBinaries int           // per tenant, the bytes of this many recent versions; default 5
	KeepHistory  int           // per tenant, this many version records; default 50
	Timeout      time.Duration // waiting for the file lock; default 2 s
	Logger       *slog.Logger
}

func (o *Options) defaults() {
	if o.MaxSize <= 0 {
		o.MaxSize = DefaultMaxSize
	}
	if o.KeepBinaries <= 0 {
		o.KeepBinaries = DefaultKeepBinaries
	}
	if o.KeepHistory < o.KeepBinaries {
		o.KeepHistory = max(DefaultKeepHistory, o.KeepBinaries)
	}
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Statuses of a version.
const (
	StatusPending     = "pending"     // stored, booting beside the live one
	StatusLive        = "live"        // serving
	StatusRetired     = "retired"     // was live, replaced
	StatusRejected    = "rejected"    // failed to boot; never served
	StatusInterrupted = "interrupted" // the host stopped during its change
)

// Version is one program of a tenant.
type Version struct {
	Version    uint64    `json:"version"`
	SHA256     string    `json:"sha256"`
	Size       int64     `json:"size"`
	UploadedAt time.Time `json:"uploaded_at"`
	From       string    `json:"from"`            // "config PATH" or "admin ADDR"
	Status     string    `json:"status"`          // Status*
	Error      string    `json:"error,omitempty"` // why it was rejected
	BootTime   Duration  `json:"boot_time"`       // program start to snapshot, as the plugin measured it
	SwapTime   Duration  `json:"swap_time"`       // stored → live (booted beside the old one, switched)
	LiveSince  time.Time `json:"live_since,omitzero"`
	Kept       bool      `json:"kept"` // its bytes are still in programs.db (rollback possible)
	Live       bool      `json:"live"`
}

// Duration is a time.Duration that reads as text in JSON ("3.2ms").
type Duration time.Duration

func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).Round(time.Microsecond).String())
}

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	*d = Duration(v)
	return err
}

// Swap makes the staged program of tenant serve: it configures the
// tenant's plugin with what Adjust gives, which boots the program beside
// the running one and switches to it. It returns the program's boot time
// when the plugin says it (0 otherwise); an error means the old instance
// still serves.
type Swap func(ctx context.Context, tenant string) (time.Duration, error)

// Store is programs.db and the live binaries beside it. Its methods are
// safe for concurrent use; changes run one at a time.
type Store struct {
	path string
	dir  string
	db   *bolt.DB
	opts Options
	log  *slog.Logger

	change sync.Mutex // one change at a time

	mu    sync.RWMutex
	paths map[string]string // tenant → the program file Adjust hands out
}

var (
	bMeta     = []byte("meta")
	bTenants  = []byte("tenants")
	bVersions = []byte("versions")
	bBinaries = []byte("binaries")
	kVersion  = []byte("version")
	kLive     = []byte("live")
	kPrevious = []byte("previous")
	kNext     = []byte("next")
)

const schemaVersion = "1"

// Open opens (or creates) state_dir/programs.db and writes each tenant's
// live program to state_dir/programs/. A file that cannot be read is an
// error naming it; it is left where it is.
func Open(stateDir string, opts Options) (*Store, error) {
	opts.defaults()
	if abs, err := filepath.Abs(stateDir); err == nil {
		stateDir = abs // messages name the file; the plugin gets absolute program paths
	}
	s := &Store{path: filepath.Join(stateDir, "programs.db"), dir: filepath.Join(stateDir, "programs"), opts: opts,
		log: opts.Logger, paths: map[string]string{}}
	db, err := s.openBolt()
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("%s: %w (waited %v for its lock; is another edgehost running on this state_dir?)", s.path, ErrInUse, opts.Timeout)
		}
		return nil, fmt.Errorf("%s is damaged or unreadable: %v. It holds the tenants' programs and is never "+
			"discarded: restore it from a backup, or move it aside yourself to start with no uploaded programs", s.path, err)
	}
	s.db = db
	if err := s.recover(); err != nil {
		db.Close()
		return nil, fmt.Errorf("%s: %w", s.path, err)
	}
	return s, nil
}

// openBolt opens and checks the file; bbolt's panics on damaged pages
// (and faults on a short mapping) become errors.
func (s *Store) openBolt() (db *bolt.DB, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if p := recover(); p != nil {
			if db != nil {
				db.Close()
			}
			db, err = nil, fmt.Errorf("bbolt: %v", p)
		}
	}()
	if err := os.MkdirAll(filepath.Dir(s.path), 0o755); err != nil {
		return nil, err
	}
	db, err = bolt.Open(s.path, 0o600, &bolt.Options{Timeout: s.opts.Timeout})
	if err != nil {
		return nil, err
	}
	err = db.Update(func(tx *bolt.Tx) error {
		var cerr error
		for e := range tx.Check() { // drained: the checker stops when read to its end
			if cerr == nil {
				cerr = fmt.Errorf("consistency check: %w", e)
			}
		}
		if cerr != nil {
			return cerr
		}
		meta, err := tx.CreateBucketIfNotExists(bMeta)
		if err != nil {
			return err
		}
		switch v := meta.Get(kVersion); {
		case v == nil:
			if err := meta.Put(kVersion, []byte(schemaVersion)); err != nil {
				return err
			}
		case string(v) != schemaVersion:
			return fmt.Errorf("schema version %q, this edgehost knows %q", v, schemaVersion)
		}
		_, err = tx.CreateBucketIfNotExists(bTenants)
		return err
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// recover marks the changes a stop interrupted and writes the live
// binaries.
func (s *Store) recover() error {
	type live struct {
		tenant string
		v      Version
	}
	var lives []live
	err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bTenants).ForEachBucket(func(name []byte) error {
			tb := tx.Bucket(bTenants).Bucket(name)
			vs := tb.Bucket(bVersions)
			if vs == nil {
				return nil
			}
			var fix []Version
			if err := vs.ForEach(func(k, val []byte) error {
				var v Version
				if err := json.Unmarshal(val, &v); err != nil {
					return fmt.Errorf("tenant %s version %d: %w", name, u64(k), err)
				}
				if v.Status == StatusPending {
					v.Status, v.Error = StatusInterrupted, "the host stopped before it went live"
					fix = append(fix, v)
				}
				return nil
			}); err != nil {
				return err
			}
			for _, v := range fix {
				if err := putVersion(vs, v); err != nil {
					return err
				}
			}
			if n := u64(tb.Get(kLive)); n != 0 {
				v, err := getVersion(vs, n)
				if err != nil {
					return fmt.Errorf("tenant %s: live version %d: %w", name, n, err)
				}
				lives = append(lives, live{string(name), v})
			}
			return nil
		})
	})
	if err != nil {
		return err
	}
	for _, l := range lives {
		p, err := s.materialize(l.tenant, l.v)
		if err != nil {
			return fmt.Errorf("tenant %s: live version %d: %w", l.tenant, l.v.Version, err)
		}
		s.paths[l.tenant] = p
	}
	// What an interrupted change left: spooled uploads, staged files.
	ents, _ := os.ReadDir(s.dir)
	for _, e := range ents {
		switch {
		case strings.HasPrefix(e.Name(), ".upload-"):
			os.Remove(filepath.Join(s.dir, e.Name()))
		case e.IsDir():
			s.sweep(e.Name())
		}
	}
	return nil
}

// Close closes programs.db.
func (s *Store) Close() error { return s.db.Close() }

// Path is programs.db's path.
func (s *Store) Path() string { return s.path }

// MaxSize is the upload limit.
func (s *Store) MaxSize() int64 { return s.opts.MaxSize }

// Adjust puts each tenant's program file (its live version, or the one
// being staged) in a plugin's decoded configuration: the `program` of every
// block of its `tenant` map that this store knows. It is the plugin
// manager's configuration hook, so that a relaunch, a swap or a config
// reload starts the same programs.
func (s *Store) Adjust(_ string, v cty.Value) (cty.Value, error) {
	if v.IsNull() || !v.Type().IsObjectType() || !v.Type().HasAttribute("tenant") {
		return v, nil
	}
	tv := v.GetAttr("tenant")
	if tv.IsNull() || !tv.IsKnown() || !(tv.Type().IsMapType() || tv.Type().IsObjectType()) || tv.LengthInt() == 0 {
		return v, nil
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	tenants := map[string]cty.Value{}
	changed := false
	for it := tv.ElementIterator(); it.Next(); {
		k, b := it.Element()
		name := k.AsString()
		if p, ok := s.paths[name]; ok && b.Type().IsObjectType() && b.Type().HasAttribute("program") {
			attrs := b.AsValueMap()
			attrs["program"] = cty.StringVal(p)
			b = cty.ObjectVal(attrs)
			changed = true
		}
		tenants[name] = b
	}
	if !changed {
		return v, nil
	}
	attrs := v.AsValueMap()
	if tv.Type().IsMapType() {
		attrs["tenant"] = cty.MapVal(tenants)
	} else {
		attrs["tenant"] = cty.ObjectVal(tenants)
	}
	return cty.ObjectVal(attrs), nil
}

// Staged reports whether the store hands out a program for tenant (it has
// a live version, or one is being staged).
func (s *Store) Staged(tenant string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, ok := s.paths[tenant]
	return ok
}

func (s *Store) stage(tenant, path string) (restore func()) {
	s.mu.Lock()
	old, had := s.paths[tenant]
	s.paths[tenant] = path
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		if had {
			s.paths[tenant] = old
		} else {
			delete(s.paths, tenant)
		}
		s.mu.Unlock()
	}
}

// Upload reads a program from r (at most MaxSize bytes, spooled to a file
// under state_dir/programs while its digest is computed), checks it,
// stores it as the tenant's next version and makes it live with swap. A
// program that is refused or fails to boot is recorded as rejected, and
// the error says why; the old version keeps serving.
func (s *Store) Upload(ctx context.Context, tenant string, r io.Reader, from string, swap Swap) (Version, error) {
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return Version{}, err
	}
	tmp, err := os.CreateTemp(s.dir, ".upload-*")
	if err != nil {
		return Version{}, err
	}
	defer os.Remove(tmp.Name()) // renamed away when kept
	defer tmp.Close()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), io.LimitReader(r, s.opts.MaxSize+1))
	if err != nil {
		return Version{}, fmt.Errorf("reading the upload: %w", err)
	}
	if n > s.opts.MaxSize {
		return Version{}, fmt.Errorf("%w (%d bytes)", ErrTooLarge, s.opts.MaxSize)
	}
	if n == 0 {
		return Version{}, fmt.Errorf("empty upload: %w", ErrBadProgram)
	}
	if err := CheckELF(tmp); err != nil {
		return Version{}, err
	}
	if err := tmp.Sync(); err != nil {
		return Version{}, err
	}
	v := Version{SHA256: hex.EncodeToString(h.Sum(nil)), Size: n, UploadedAt: time.Now().UTC(), From: from}
	s.change.Lock()
	defer s.change.Unlock()
	if v, err = s.add(tenant, v, tmp); err != nil {
		return v, err
	}
	path, err := s.place(tenant, v, tmp.Name())
	if err != nil {
		return v, err
	}
	return s.golive(ctx, tenant, v, path, swap)
}

// Rollback makes an earlier version live again, the same way as an
// upload; version 0 means the previous live one.
func (s *Store) Rollback(ctx context.Context, tenant string, version uint64, swap Swap) (Version, error) {
	s.change.Lock()
	defer s.change.Unlock()
	var v Version
	err := s.db.View(func(tx *bolt.Tx) error {
		tb := tx.Bucket(bTenants).Bucket([]byte(tenant))
		if tb == nil {
			return fmt.Errorf("tenant %q has no versions: %w", tenant, ErrNoVersion)
		}
		if version == 0 {
			if version = u64(tb.Get(kPrevious)); version == 0 {
				return fmt.Errorf("tenant %q has no previous live version: %w", tenant, ErrNoVersion)
			}
		}
		var err error
		if v, err = getVersion(tb.Bucket(bVersions), version); err != nil {
			return fmt.Errorf("tenant %q version %d: %w", tenant, version, ErrNoVersion)
		}
		if u64(tb.Get(kLive)) == version {
			return fmt.Errorf("tenant %q: version %d is already live", tenant, version)
		}
		if v.Status == StatusRejected {
			return fmt.Errorf("tenant %q: version %d was rejected (%s): %w", tenant, version, v.Error, ErrNoVersion)
		}
		if bb := tb.Bucket(bBinaries); bb == nil || bb.Bucket(key64(version)) == nil {
			return fmt.Errorf("tenant %q: the bytes of version %d are no longer kept (the last %d are): %w",
				tenant, version, s.opts.KeepBinaries, ErrNoVersion)
		}
		return nil
	})
	if err != nil {
		return v, err
	}
	path, err := s.materialize(tenant, v)
	if err != nil {
		return v, err
	}
	return s.golive(ctx, tenant, v, path, swap)
}

// add stores v (numbered here) with the bytes of f, pending.
func (s *Store) add(tenant string, v Version, f *os.File) (Version, error) {
	err := s.db.Update(func(tx *bolt.Tx) error {
		tb, err := tx.Bucket(bTenants).CreateBucketIfNotExists([]byte(tenant))
		if err != nil {
			return err
		}
		vs, err := tb.CreateBucketIfNotExists(bVersions)
		if err != nil {
			return err
		}
		bb, err := tb.CreateBucketIfNotExists(bBinaries)
		if err != nil {
			return err
		}
		v.Version = max(u64(tb.Get(kNext)), 1)
		if err := tb.Put(kNext, key64(v.Version+1)); err != nil {
			return err
		}
		v.Status, v.Kept = StatusPending, true
		if err := putVersion(vs, v); err != nil {
			return err
		}
		cb, err := bb.CreateBucket(key64(v.Version))
		if err != nil {
			return err
		}
		buf := make([]byte, chunkSize)
		for i := uint32(0); ; i++ {
			n, err := f.ReadAt(buf, int64(i)*chunkSize)
			if n > 0 {
				k := make([]byte, 4)
				binary.BigEndian.PutUint32(k, i)
				if perr := cb.Put(k, bytes.Clone(buf[:n])); perr != nil {
					return perr
				}
			}
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
		}
	})
	if err != nil {
		return v, fmt.Errorf("storing the program in %s: %w", s.path, err)
	}
	return v, nil
}

// place moves a spooled upload to the tenant's program file for its
// digest.
func (s *Store) place(tenant string, v Version, tmp string) (string, error) {
	dir := filepath.Join(s.dir, tenant)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(dir, v.SHA256)
	if ok, _ := fileHas(path, v.SHA256); ok {
		return path, nil
	}
	if err := os.Chmod(tmp, 0o444); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", err
	}
	return path, syncDir(dir)
}

// materialize writes the bytes of v from programs.db to its program file,
// unless the file already holds them.
func (s *Store) materialize(tenant string, v Version) (string, error) {
	dir := filepath.Join(s.dir, tenant)
	path := filepath.Join(dir, v.SHA256)
	if ok, _ := fileHas(path, v.SHA256); ok {
		return path, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(dir, ".restore-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	h := sha256.New()
	err = s.db.View(func(tx *bolt.Tx) error {
		var cb *bolt.Bucket
		if tb := tx.Bucket(bTenants).Bucket([]byte(tenant)); tb != nil {
			if bb := tb.Bucket(bBinaries); bb != nil {
				cb = bb.Bucket(key64(v.Version))
			}
		}
		if cb == nil {
			return fmt.Errorf("the bytes of version %d are not in programs.db: %w", v.Version, ErrNoVersion)
		}
		return cb.ForEach(func(_, chunk []byte) error {
			_, err := io.MultiWriter(tmp, h).Write(chunk)
			return err
		})
	})
	if err != nil {
		return "", err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != v.SHA256 {
		return "", fmt.Errorf("version %d: stored bytes have sha256 %s, the record says %s", v.Version, got, v.SHA256)
	}
	if err := tmp.Sync(); err != nil {
		return "", err
	}
	if err := os.Chmod(tmp.Name(), 0o444); err != nil {
		return "", err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", err
	}
	return path, syncDir(dir)
}

// golive stages path for tenant, swaps, and records the outcome.
func (s *Store) golive(ctx context.Context, tenant string, v Version, path string, swap Swap) (Version, error) {
	restore := s.stage(tenant, path)
	start := time.Now()
	boot, err := swap(ctx, tenant)
	took := time.Since(start)
	if err != nil {
		restore()
		s.log.Warn("program rejected; the previous version keeps serving", "tenant", tenant, "version", v.Version, "error", err)
		if v.Status == StatusPending {
			s.reject(tenant, v, err)
		}
		s.sweep(tenant)
		return v, fmt.Errorf("tenant %s version %d: %w: %w", tenant, v.Version, ErrRejected, err)
	}
	v.BootTime, v.SwapTime = Duration(boot), Duration(took)
	v, cerr := s.commit(tenant, v)
	s.sweep(tenant)
	if cerr != nil {
		// The plugin runs it, but programs.db does not say so: a restart
		// would start the old version.
		s.log.Error("program is live but could not be recorded", "tenant", tenant, "version", v.Version, "error", cerr)
		return v, fmt.Errorf("tenant %s version %d is live but %s could not record it: %w", tenant, v.Version, s.path, cerr)
	}
	s.log.Info("program live", "tenant", tenant, "version", v.Version, "sha256", v.SHA256, "boot", time.Duration(v.BootTime), "swap", took)
	return v, nil
}

// reject records a pending version's failure and drops its bytes.
func (s *Store) reject(tenant string, v Version, why error) {
	err := s.db.Update(func(tx *bolt.Tx) error {
		tb := tx.Bucket(bTenants).Bucket([]byte(tenant))
		v.Status, v.Error, v.Kept = StatusRejected, why.Error(), false
		if err := putVersion(tb.Bucket(bVersions), v); err != nil {
			return err
		}
		if err := tb.Bucket(bBinaries).DeleteBucket(key64(v.Version)); err != nil && !errors.Is(err, bolt.ErrBucketNotFound) {
			return err
		}
		return nil
	})
	if err != nil {
		s.log.Error("recording a rejected program", "tenant", tenant, "version", v.Version, "error", err)
	}
}

// commit makes v the live version and prunes the history.
func (s *Store) commit(tenant string, v Version) (Version, error) {
	err := s.db.Update(func(tx *bolt.Tx) error {
		tb := tx.Bucket(bTenants).Bucket([]byte(tenant))
		vs := tb.Bucket(bVersions)
		if old := u64(tb.Get(kLive)); old != 0 && old != v.Version {
			if ov, err := getVersion(vs, old); err == nil {
				ov.Status = StatusRetired
				if err := putVersion(vs, ov); err != nil {
					return err
				}
			}
			if err := tb.Put(kPrevious, key64(old)); err != nil {
				return err
			}
		}
		if err := tb.Put(kLive, key64(v.Version)); err != nil {
			return err
		}
		v.Status, v.Error, v.LiveSince = StatusLive, "", time.Now().UTC()
		if err := putVersion(vs, v); err != nil {
			return err
		}
		return s.prune(tb)
	})
	return v, err
}

// prune keeps the bytes of the KeepBinaries most recent versions and the
// records of the KeepHistory most recent ones; the live and previous
// versions are always kept.
func (s *Store) prune(tb *bolt.Bucket) error {
	keep := map[uint64]bool{u64(tb.Get(kLive)): true, u64(tb.Get(kPrevious)): true}
	vs, bb := tb.Bucket(bVersions), tb.Bucket(bBinaries)
	var nums []uint64
	vs.ForEach(func(k, _ []byte) error { nums = append(nums, u64(k)); return nil })
	sort.Slice(nums, func(i, j int) bool { return nums[i] > nums[j] })
	kept := 0
	for i, n := range nums {
		v, err := getVersion(vs, n)
		if err != nil {
			return err
		}
		if i >= s.opts.KeepHistory && !keep[n] {
			if err := vs.Delete(key64(n)); err != nil {
				return err
			}
			if bb.Bucket(key64(n)) != nil {
				if err := bb.DeleteBucket(key64(n)); err != nil {
					return err
				}
			}
			continue
		}
		if !v.Kept {
			continue
		}
		if kept < s.opts.KeepBinaries || keep[n] {
			kept++
			continue
		}
		if err := bb.DeleteBucket(key64(n)); err != nil && !errors.Is(err, bolt.ErrBucketNotFound) {
			return err
		}
		v.Kept = false
		if err := putVersion(vs, v); err != nil {
			return err
		}
	}
	return nil
}

// sweep removes the tenant's program files other than the one handed out
// (the plugin has read them into its own memory by now).
func (s *Store) sweep(tenant string) {
	s.mu.RLock()
	keep := s.paths[tenant]
	s.mu.RUnlock()
	dir := filepath.Join(s.dir, tenant)
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if p := filepath.Join(dir, e.Name()); p != keep {
			os.Remove(p)
		}
	}
}

// Versions lists a tenant's versions, newest first.
func (s *Store) Versions(tenant string) ([]Version, error) {
	var out []Version
	err := s.db.View(func(tx *bolt.Tx) error {
		tb := tx.Bucket(bTenants).Bucket([]byte(tenant))
		if tb == nil {
			return nil
		}
		live := u64(tb.Get(kLive))
		return tb.Bucket(bVersions).ForEach(func(k, val []byte) error {
			var v Version
			if err := json.Unmarshal(val, &v); err != nil {
				return err
			}
			v.Live = v.Version == live
			out = append(out, v)
			return nil
		})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Version > out[j].Version })
	return out, err
}

// Live returns the tenant's live version (ok false: none recorded).
func (s *Store) Live(tenant string) (v Version, ok bool, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		tb := tx.Bucket(bTenants).Bucket([]byte(tenant))
		if tb == nil {
			return nil
		}
		n := u64(tb.Get(kLive))
		if n == 0 {
			return nil
		}
		var err error
		v, err = getVersion(tb.Bucket(bVersions), n)
		v.Live, ok = true, err == nil
		return err
	})
	return v, ok, err
}

// Change is a set of staged versions from the config (Prepare); Done
// records how their plugin load went and ends the change.
type Change struct {
	s       *Store
	staged  []staged
	restore []func()
	start   time.Time
	done    bool
}

type staged struct {
	tenant string
	v      Version
}

// Prepare stores the program files that the config's tenant blocks name
// (tenant → path) as new versions when they are new: the file's digest
// differs from that of the last version taken from the config, or that
// one was rejected. They are staged for the plugin load that follows,
// whose outcome Change.Done records; no other change runs until then.
// A tenant whose file is missing keeps its live version, if it has one.
func (s *Store) Prepare(programs map[string]string) (*Change, error) {
	s.change.Lock()
	c := &Change{s: s, start: time.Now()}
	names := make([]string, 0, len(programs))
	for t := range programs {
		names = append(names, t)
	}
	sort.Strings(names)
	for _, tenant := range names {
		path := programs[tenant]
		if err := c.prepareOne(tenant, path); err != nil {
			c.Done(err, nil)
			return nil, fmt.Errorf("tenant %s: program %s: %w", tenant, path, err)
		}
	}
	return c, nil
}

func (c *Change) prepareOne(tenant, path string) error {
	s := c.s
	f, err := os.Open(path)
	if err != nil {
		if _, ok, _ := s.Live(tenant); ok && errors.Is(err, fs.ErrNotExist) {
			s.log.Info("the config's program file is gone; the live version keeps serving", "tenant", tenant, "path", path)
			return nil
		}
		return err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(f, s.opts.MaxSize+1))
	if err != nil {
		return err
	}
	if n > s.opts.MaxSize {
		return fmt.Errorf("%w (%d bytes)", ErrTooLarge, s.opts.MaxSize)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	from := "config " + path
	vs, err := s.Versions(tenant)
	if err != nil {
		return err
	}
	for _, v := range vs { // newest first
		if strings.HasPrefix(v.From, "config ") {
			if v.SHA256 == sum && v.Status != StatusRejected && v.Status != StatusInterrupted {
				return nil // already taken; whichever version is live stays live
			}
			break
		}
	}
	if err := CheckELF(f); err != nil {
		return err
	}
	v, err := s.add(tenant, Version{SHA256: sum, Size: n, UploadedAt: time.Now().UTC(), From: from}, f)
	if err != nil {
		return err
	}
	p, err := s.materialize(tenant, v)
	if err != nil {
		return err
	}
	c.restore = append(c.restore, s.stage(tenant, p))
	c.staged = append(c.staged, staged{tenant, v})
	return nil
}

// Done records the plugin load's outcome for the staged versions (live,
// with boot times from boot, or rejected with err) and ends the change.
func (c *Change) Done(err error, boot func(tenant string) time.Duration) {
	if c == nil || c.done {
		return
	}
	c.done = true
	s := c.s
	defer s.change.Unlock()
	took := time.Since(c.start)
	if err != nil {
		for i := len(c.restore) - 1; i >= 0; i-- {
			c.restore[i]()
		}
		for _, st := range c.staged {
			s.reject(st.tenant, st.v, err)
			s.sweep(st.tenant)
		}
		return
	}
	for _, st := range c.staged {
		v := st.v
		v.SwapTime = Duration(took)
		if boot != nil {
			v.BootTime = Duration(boot(st.tenant))
		}
		if _, cerr := s.commit(st.tenant, v); cerr != nil {
			s.log.Error("recording a live program", "tenant", st.tenant, "version", v.Version, "error", cerr)
		}
		s.sweep(st.tenant)
		s.log.Info("program from the config is live", "tenant", st.tenant, "version", v.Version, "sha256", v.SHA256)
	}
}

func putVersion(b *bolt.Bucket, v Version) error {
	v.Live = false // derived from the tenant's live key when read
	js, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(key64(v.Version), js)
}

func getVersion(b *bolt.Bucket, n uint64) (Version, error) {
	var v Version
	raw := b.Get(key64(n))
	if raw == nil {
		return v, ErrNoVersion
	}
	err := json.Unmarshal(raw, &v)
	return v, err
}

func key64(n uint64) []byte {
	k := make([]byte, 8)
	binary.BigEndian.PutUint64(k, n)
	return k
}

func u64(b []byte) uint64 {
	if len(b) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

// fileHas reports whether path holds bytes with the given sha256.
func fileHas(path, sum string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return false, err
	}
	return hex.EncodeToString(h.Sum(nil)) == sum, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
