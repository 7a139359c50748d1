package store

import (
	"encoding/binary"
	"fmt"
	"os"

	bolt "go.etcd.io/bbolt"
)

// SchemaVersion is the version of the bucket tree drawn in the package
// comment, kept raw in meta/version.
const SchemaVersion = 1

// migrations[v] upgrades a file of schema v to v+1 inside one write
// transaction. A file older than SchemaVersion runs every step from its
// version on; a file newer than SchemaVersion is foreign and moved aside
// (cache.db is rebuildable, so a downgrade costs a cold cache, nothing
// more). Version 1 is the first: nothing to migrate yet.
var migrations = map[uint64]func(tx *bolt.Tx) error{}

// prepare checks that db is a cache file this code can use, creates the
// buckets of a fresh one, runs migrations and marks the file open. Errors
// wrapping errUnusable mean the file must be moved aside.
func prepare(db *bolt.DB, boot string, noSync bool) (err error) {
	defer func() {
		// A damaged page can make bbolt panic while walking it.
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: bbolt panicked: %v", errUnusable, p)
		}
	}()
	// bbolt trusts the page count in its meta page; a file cut short
	// (a full disk, a bad copy) would fault on its missing pages.
	info, err := os.Stat(db.Path())
	if err != nil {
		return err
	}
	if err := db.View(func(tx *bolt.Tx) error {
		if tx.Size() > info.Size() {
			return fmt.Errorf("%w: truncated: %d bytes, its pages need %d", errUnusable, info.Size(), tx.Size())
		}
		return nil
	}); err != nil {
		return err
	}
	return db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			// Only an empty file (no bucket at all) is ours to fill.
			var other []byte
			_ = tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
				other = append([]byte(nil), name...)
				return errStop
			})
			if other != nil {
				return fmt.Errorf("%w: foreign bbolt file (bucket %q, no meta bucket)", errUnusable, other)
			}
			return create(tx, boot, noSync)
		}
		raw := meta.Get(keyVersion)
		if len(raw) != 8 {
			return fmt.Errorf("%w: foreign bbolt file (meta/version is %d bytes)", errUnusable, len(raw))
		}
		version := binary.BigEndian.Uint64(raw)
		if version == 0 || version > SchemaVersion {
			return fmt.Errorf("%w: schema version %d, this edgehost knows %d", errUnusable, version, SchemaVersion)
		}
		if prev := meta.Get(keyBoot); prev != nil && boot != "" && string(prev) != boot {
			return fmt.Errorf("%w: written without fsync before the machine restarted (boot %s, now %s); writes may be lost",
				errUnusable, prev, boot)
		}
		for v := version; v < SchemaVersion; v++ {
			step, ok := migrations[v]
			if !ok {
				return fmt.Errorf("%w: no migration from schema version %d", errUnusable, v)
			}
			if err := step(tx); err != nil {
				return fmt.Errorf("%w: migrate schema %d to %d: %w", errUnusable, v, v+1, err)
			}
		}
		for _, name := range allBuckets {
			if tx.Bucket(name) == nil {
				return fmt.Errorf("%w: schema %d file without bucket %q", errUnusable, SchemaVersion, name)
			}
		}
		// Retired chunks were kept for responses of the previous run.
		if tx.Bucket(bucketRetired) != nil {
			if err := tx.DeleteBucket(bucketRetired); err != nil {
				return err
			}
		}
		if err := putVersion(meta); err != nil {
			return err
		}
		return markOpen(meta, boot, noSync)
	})
}

func create(tx *bolt.Tx, boot string, noSync bool) error {
	for _, name := range allBuckets {
		if _, err := tx.CreateBucket(name); err != nil {
			return fmt.Errorf("create bucket %s: %w", name, err)
		}
	}
	meta := tx.Bucket(bucketMeta)
	if err := putVersion(meta); err != nil {
		return err
	}
	return markOpen(meta, boot, noSync)
}

func putVersion(meta *bolt.Bucket) error {
	return meta.Put(keyVersion, binary.BigEndian.AppendUint64(nil, SchemaVersion))
}

// markOpen records the boot id while the file is written without fsync
// (see Options.NoSync). This commit itself is synced: prepare runs before
// the store turns NoSync on.
func markOpen(meta *bolt.Bucket, boot string, noSync bool) error {
	if noSync && boot != "" {
		return meta.Put(keyBoot, []byte(boot))
	}
	return meta.Delete(keyBoot)
}
