// Package store keeps edgehost's persistent cache, cache.db, in a bbolt file.
//
// cache.db is rebuildable: every byte in it can be fetched again from an
// origin, so the store prefers speed and availability over durability
// (DESIGN §3). A file that cannot be opened, or was written by someone
// else, is moved aside and a fresh one started; a body chunk that fails its
// checksum is never returned (the object is dropped and ErrCorrupt reported,
// so that the cache layer refetches it).
//
// The bucket tree, in the style of containerd's core/metadata/buckets.go.
// All keys are raw bytes; ⟨id⟩ is the 24-byte object id (see Record.ID):
// sha256(Key)[:16] ‖ sha256(Variant)[:8], so that the variants of one key
// are adjacent and found with one prefix scan of objects/.
//
//	meta/
//	  version  → u64 BE                   schema version (1); see migrate.go
//	  boot     → boot id of the kernel    present while the file is open with
//	                                       NoSync; cleared by a clean Close
//	objects/
//	  ⟨id⟩     → encoded object header   see record.go (status, header fields,
//	                                       times, tags, parent, extra, the crc32c
//	                                       of every chunk, and a crc32c of itself)
//	chunks/
//	  ⟨id⟩‖⟨u32 BE index⟩ → body bytes   ≤ ChunkSize each; checksums live in the header.
//	                                       An object (header and chunks) is written in one
//	                                       transaction: a kill -9 never leaves half of one.
//	                                       A large body is read chunk by chunk (Open, Body).
//	tags/
//	  ⟨uvarint len⟩‖⟨tag⟩‖⟨id⟩ → ∅        Surrogate-Key / xkey index for PurgeTag
//	children/
//	  ⟨parent id⟩‖⟨child id⟩ → ∅          segments of a segment meta object
//	bans/
//	  ⟨u64 BE ban id⟩ → ⟨i64 BE created unix ns⟩‖⟨expr⟩
//	retired/   (only while needed; dropped on Open)
//	  ⟨id⟩‖⟨u32 BE crc32c of the chunk checksums⟩‖⟨u32 BE index⟩ → body bytes
//	                                       chunks of a body deleted or replaced while
//	                                       a response was sent from it (Body.Pin)
//
// There is no keys/ bucket: the id is built so that objects/ itself is the
// key → variants index, which saves one write per Put.
//
// Nothing is scanned on Open: the in-memory LRU index (object sizes and last
// use, for eviction by size, and the KeepUntil times, for the sweep) is built
// by a background goroutine; Stats.IndexReady says when it is complete.
//
// Lifecycle: Open → use from any number of goroutines → Close. Every
// goroutine the store starts ends with Close.
package store

// Bucket names of the schema drawn in the package comment. They are the
// only place these names are spelled.
var (
	bucketMeta     = []byte("meta")
	bucketObjects  = []byte("objects")
	bucketChunks   = []byte("chunks")
	bucketTags     = []byte("tags")
	bucketChildren = []byte("children")
	bucketBans     = []byte("bans")
	// bucketRetired holds the chunks of bodies deleted or replaced while
	// a response was being sent from them (Body.Pin); it is created when
	// needed and dropped on Open. Not in allBuckets: a file may lack it.
	bucketRetired = []byte("retired")

	// keyVersion is the raw meta/version key: the schema version as a
	// big-endian uint64.
	keyVersion = []byte("version")
	// keyBoot is meta/boot: the kernel's boot id while the file is open
	// with NoSync (see Open).
	keyBoot = []byte("boot")
)

// allBuckets are the top-level buckets a schema-1 file has.
var allBuckets = [][]byte{bucketMeta, bucketObjects, bucketChunks, bucketTags, bucketChildren, bucketBans}
