package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// writeBolt creates a bbolt file at path and runs fn in one update.
func writeBolt(t *testing.T, path string, fn func(tx *bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(fn); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// validStore writes a schema-1 cache file holding one object.
func validStore(t *testing.T, path string) {
	t.Helper()
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(&Record{Key: "k", Status: 200, Body: body(3*4096, 1)}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func asides(t *testing.T, path string) []string {
	t.Helper()
	m, err := filepath.Glob(path + ".corrupt-*")
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestOpenMovesAside(t *testing.T) {
	tests := []struct {
		name   string
		make   func(t *testing.T, path string)
		reason string // in the WARN line
	}{
		{"random bytes", func(t *testing.T, path string) {
			if err := os.WriteFile(path, body(64<<10, 7), 0o600); err != nil {
				t.Fatal(err)
			}
		}, "unusable"},
		{"a few bytes", func(t *testing.T, path string) {
			if err := os.WriteFile(path, []byte("not a database\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, "unusable"},
		{"truncated", func(t *testing.T, path string) {
			validStore(t, path)
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(path, fi.Size()/2); err != nil {
				t.Fatal(err)
			}
		}, "truncated"},
		{"damaged meta pages", func(t *testing.T, path string) {
			validStore(t, path)
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			for _, off := range []int64{16, 4096 + 16} { // inside both meta pages
				if _, err := f.WriteAt([]byte{0xde, 0xad, 0xbe, 0xef}, off+32); err != nil {
					t.Fatal(err)
				}
			}
		}, "unusable"},
		{"foreign bbolt file", func(t *testing.T, path string) {
			writeBolt(t, path, func(tx *bolt.Tx) error {
				b, err := tx.CreateBucket([]byte("users"))
				if err != nil {
					return err
				}
				return b.Put([]byte("alice"), []byte("admin"))
			})
		}, "foreign"},
		{"meta bucket without version", func(t *testing.T, path string) {
			writeBolt(t, path, func(tx *bolt.Tx) error {
				_, err := tx.CreateBucket(bucketMeta)
				return err
			})
		}, "foreign"},
		{"newer schema", func(t *testing.T, path string) {
			writeBolt(t, path, func(tx *bolt.Tx) error {
				b, err := tx.CreateBucket(bucketMeta)
				if err != nil {
					return err
				}
				return b.Put(keyVersion, binary.BigEndian.AppendUint64(nil, SchemaVersion+1))
			})
		}, "schema version 2"},
		{"schema 1 without its buckets", func(t *testing.T, path string) {
			writeBolt(t, path, func(tx *bolt.Tx) error {
				b, err := tx.CreateBucket(bucketMeta)
				if err != nil {
					return err
				}
				return b.Put(keyVersion, binary.BigEndian.AppendUint64(nil, SchemaVersion))
			})
		}, "without bucket"},
		{"written without fsync before a machine crash", func(t *testing.T, path string) {
			validStore(t, path)
			writeBolt(t, path, func(tx *bolt.Tx) error {
				return tx.Bucket(bucketMeta).Put(keyBoot, []byte("another-boot"))
			})
		}, "machine restarted"},
		{"marked damaged by a previous run", func(t *testing.T, path string) {
			validStore(t, path)
			if err := os.WriteFile(path+damagedSuffix, []byte("invalid page type\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, "invalid page type"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "cache.db")
			tc.make(t, path)
			before, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			var logs logBuffer
			s := openT(t, path, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			moved := asides(t, path)
			if len(moved) != 1 {
				t.Fatalf("files moved aside: %q, want 1", moved)
			}
			if after, err := os.ReadFile(moved[0]); err != nil || !bytes.Equal(after, before) {
				t.Errorf("the moved file differs from the original (err %v)", err)
			}
			if l := logs.String(); !strings.Contains(l, "level=WARN") || !strings.Contains(l, tc.reason) || !strings.Contains(l, moved[0]) {
				t.Errorf("log = %q, want a WARN line naming %s and %q", l, moved[0], tc.reason)
			}
			if _, err := os.Stat(path + damagedSuffix); err == nil {
				t.Error("damaged marker left behind")
			}
			// The fresh file works, and survives a reopen untouched.
			if _, err := s.Get("k", ""); !errors.Is(err, ErrNotFound) {
				t.Errorf("Get in the fresh file = %v, want ErrNotFound", err)
			}
			if err := s.Put(&Record{Key: "new", Status: 200, Body: []byte("b")}); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = openT(t, path, Options{})
			if _, err := s.Get("new", ""); err != nil {
				t.Errorf("Get after reopen = %v", err)
			}
			if moved := asides(t, path); len(moved) != 1 {
				t.Errorf("files moved aside after a clean reopen: %q, want still 1", moved)
			}
		})
	}
}

func TestOpenKeeps(t *testing.T) {
	tests := []struct {
		name string
		make func(t *testing.T, path string)
		want bool // object "k" found
	}{
		{"missing file", func(*testing.T, string) {}, false},
		{"empty file", func(t *testing.T, path string) {
			if err := os.WriteFile(path, nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"empty bbolt file", func(t *testing.T, path string) {
			writeBolt(t, path, func(*bolt.Tx) error { return nil })
		}, false},
		{"valid file", validStore, true},
		{"killed process of this boot", func(t *testing.T, path string) {
			validStore(t, path)
			writeBolt(t, path, func(tx *bolt.Tx) error {
				return tx.Bucket(bucketMeta).Put(keyBoot, []byte(bootID()))
			})
		}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "sub", "cache.db")
			if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
				t.Fatal(err)
			}
			tc.make(t, path)
			s := openT(t, path, Options{NoSync: true})
			if moved := asides(t, path); len(moved) != 0 {
				t.Errorf("moved aside: %q", moved)
			}
			_, err := s.Get("k", "")
			if (err == nil) != tc.want {
				t.Errorf("Get(k) = %v, want found=%v", err, tc.want)
			}
		})
	}
}

func TestOpenLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cache.db")
	first := openT(t, path, Options{})
	if err := first.Put(&Record{Key: "k", Status: 200}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	second, err := Open(path, Options{Timeout: 200 * time.Millisecond})
	took := time.Since(start)
	if err == nil {
		second.Close()
		t.Fatal("second Open succeeded while the first holds the file")
	}
	if !errors.Is(err, ErrInUse) {
		t.Errorf("err = %v, want ErrInUse", err)
	}
	if want := "cache.db is in use by another edgehost"; !strings.Contains(err.Error(), want) {
		t.Errorf("err = %q, want it to say %q", err, want)
	}
	if _, statErr := os.Stat("/proc/locks"); statErr == nil {
		if want := fmt.Sprintf("(pid %d)", os.Getpid()); !strings.Contains(err.Error(), want) {
			t.Errorf("err = %q, want it to name the holder %s", err, want)
		}
	}
	if took < 150*time.Millisecond {
		t.Errorf("gave up after %v, before the 200ms timeout", took)
	}
	if moved := asides(t, path); len(moved) != 0 {
		t.Errorf("a locked file was moved aside: %q", moved)
	}
	if _, err := first.Get("k", ""); err != nil {
		t.Errorf("first store after the failed Open: %v", err)
	}
}

func TestCorruptObject(t *testing.T) {
	id := makeID("k", "")
	tests := []struct {
		name   string
		bucket []byte
		key    []byte
		off    int
	}{
		{"first chunk", bucketChunks, chunkKey(id, 0), 0},
		{"middle of the second chunk", bucketChunks, chunkKey(id, 1), ChunkSize / 2},
		{"last byte", bucketChunks, chunkKey(id, 2), -1},
		{"header status", bucketObjects, id[:], 2},
		{"header key", bucketObjects, id[:], fixedLen + 1},
		{"chunk checksum in the header", bucketObjects, id[:], -6},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "cache.db")
			s := openT(t, path, Options{})
			for _, k := range []string{"k", "other"} {
				if err := s.Put(&Record{Key: k, Status: 200, Body: body(5*ChunkSize/2, 3), Tags: []string{"t"}}); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			flipFromEnd(t, path, tc.bucket, tc.key, tc.off)

			var logs logBuffer
			s = openT(t, path, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			if _, err := s.Get("k", ""); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Get of the damaged object = %v, want ErrCorrupt", err)
			}
			if _, err := s.Get("k", ""); !errors.Is(err, ErrNotFound) {
				t.Errorf("second Get = %v, want ErrNotFound (dropped)", err)
			}
			if got, err := s.Get("other", ""); err != nil || len(got.Body) != 5*ChunkSize/2 {
				t.Errorf("Get(other) = %v", err)
			}
			if st := s.Stats(); st.Corrupt != 1 {
				t.Errorf("Stats.Corrupt = %d, want 1", st.Corrupt)
			}
			if !strings.Contains(logs.String(), "level=WARN") {
				t.Errorf("no WARN line in %q", logs.String())
			}
			if n := count(t, s, bucketChunks); n != 3 {
				t.Errorf("chunks left = %d, want 3 (other's)", n)
			}
			// The damaged object's tag entry is gone (or harmless).
			if keys, err := s.PurgeTag("t"); err != nil || len(keys) != 1 || keys[0] != "other" {
				t.Errorf("PurgeTag = %q, %v; want [other]", keys, err)
			}
		})
	}
}

// flipFromEnd XORs a byte of the value under key in bucket, in the closed
// file at path (a negative off counts from the value's end): on-disk
// damage that bbolt itself cannot see.
func flipFromEnd(t *testing.T, path string, bucket, key []byte, off int) {
	t.Helper()
	writeBolt(t, path, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket)
		v := b.Get(key)
		if v == nil {
			return fmt.Errorf("no key %x in %s", key, bucket)
		}
		v = bytes.Clone(v)
		if off < 0 {
			off += len(v)
		}
		v[off] ^= 0x20
		return b.Put(key, v)
	})
}

// TestDamagedPage: a page that bbolt cannot read makes it panic; the store
// answers ErrCorrupt instead of crashing, and the next Open moves the file
// aside.
func TestDamagedPage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cache.db")
	s := openT(t, path, Options{NoSync: true})
	for i := range 300 {
		if err := s.Put(&Record{Key: fmt.Sprintf("k%d", i), Status: 200, Body: []byte("b")}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	var root uint64
	writeBolt(t, path, func(tx *bolt.Tx) error {
		root = uint64(tx.Bucket(bucketObjects).Root())
		return nil
	})
	if root == 0 {
		t.Fatal("objects bucket is inline; need a page of its own")
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	// The page header's flags (offset 8): 0 is no valid page type.
	if _, err := f.WriteAt([]byte{0, 0}, int64(root)*int64(os.Getpagesize())+8); err != nil {
		t.Fatal(err)
	}
	f.Close()

	s = openT(t, path, Options{NoSync: true})
	if _, err := s.Get("k1", ""); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Get on a damaged page = %v, want ErrCorrupt", err)
	}
	if _, err := os.Stat(path + damagedSuffix); err != nil {
		t.Errorf("no damaged marker: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openT(t, path, Options{NoSync: true})
	if moved := asides(t, path); len(moved) != 1 {
		t.Errorf("moved aside: %q, want 1 file", moved)
	}
	if _, err := s.Get("k1", ""); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get in the fresh file = %v, want ErrNotFound", err)
	}
}

// TestIndexDropsUndecodable: a header too damaged to size is dropped by
// the index build (outside the index it would never be evicted).
func TestIndexDropsUndecodable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cache.db")
	s := openT(t, path, Options{NoSync: true})
	for _, k := range []string{"bad", "good"} {
		if err := s.Put(&Record{Key: k, Status: 200, Body: []byte(k), Tags: []string{"t"}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	id := makeID("bad", "")
	flipFromEnd(t, path, bucketObjects, id[:], 0) // the format byte
	s = openT(t, path, Options{NoSync: true})
	waitReady(t, s)
	if st := s.Stats(); st.Objects != 1 || st.Corrupt != 1 {
		t.Errorf("Stats = %+v, want 1 object, 1 corrupt", st)
	}
	if n := count(t, s, bucketObjects); n != 1 {
		t.Errorf("objects in the file = %d, want 1", n)
	}
	if n := count(t, s, bucketChunks); n != 1 {
		t.Errorf("chunks in the file = %d, want 1", n)
	}
	if _, err := s.Get("good", ""); err != nil {
		t.Errorf("Get(good) = %v", err)
	}
}
