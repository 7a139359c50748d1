package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"time"

	bolt "go.etcd.io/bbolt"
)

// maxTagLen bounds one tag: tags are bbolt keys (≤ 32 KiB) and header
// values a client cannot inflate much.
const maxTagLen = 1024

// maxDepth bounds the parent → child cascade of a delete. Segments have no
// children of their own, so depth 1 is all edgehost uses.
const maxDepth = 4

// errStop ends a bbolt ForEach early.
var errStop = errors.New("stop")

// Put stores r, replacing the object with the same Key and Variant. The
// replaced object's children (segments) are kept: a 304 refreshes a
// segment meta object without invalidating its segments; the cache layer
// deletes the object first when the origin object changed. Put may evict
// least recently used objects to stay within Options.MaxBytes. r.Body must
// not change while Put runs.
func (s *Store) Put(r *Record) error { return s.PutAll(r) }

// PutAll stores several records in one transaction: all or none. A single
// writer (the cache's write-behind queue) gets the batching that
// concurrent Puts get from the group commit: one commit, not one per
// object.
func (s *Store) PutAll(rs ...*Record) error {
	if err := s.acquire(); err != nil {
		return err
	}
	defer s.closeMu.RUnlock()
	ps := make([]prepared, len(rs))
	for i, r := range rs {
		if err := s.prepare(r, &ps[i]); err != nil {
			return err
		}
	}
	err := s.update(func(tx *bolt.Tx) error {
		b := s.bucketsOf(tx)
		for i := range ps {
			p := &ps[i]
			p.skipped = false
			if err := b.put(p.id, p.hdr, p.r, p.parent); errors.Is(err, errBodyGone) {
				p.skipped = true
			} else if err != nil {
				return fmt.Errorf("put %q: %w", p.r.Key, err)
			}
		}
		// In the transaction, so that the index sees writes in commit
		// order (see update).
		for i := range ps {
			if p := &ps[i]; !p.skipped {
				s.idx.put(p.id, p.size, timeNS(p.r.KeepUntil))
			}
		}
		return nil
	})
	if errors.Is(err, ErrClosed) {
		return ErrClosed
	}
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if len(ps) > 0 {
		s.evict(ps[len(ps)-1].id)
	}
	return nil
}

// prepared is a record checked and encoded for writing.
type prepared struct {
	r       *Record
	id      objectID
	parent  objectID
	hdr     []byte
	size    int64
	skipped bool // KeepBody no longer stored: nothing written
}

func (s *Store) prepare(r *Record, p *prepared) error {
	if r.Status < 0 || r.Status > 0xffff {
		return fmt.Errorf("store: put %q: status %d out of range", r.Key, r.Status)
	}
	for _, t := range r.Tags {
		if t == "" || len(t) > maxTagLen {
			return fmt.Errorf("store: put %q: tag of %d bytes (want 1 to %d)", r.Key, len(t), maxTagLen)
		}
	}
	if r.KeepBody != nil && (r.KeepBody.s != s || r.KeepBody.id != makeID(r.Key, r.Variant)) {
		return fmt.Errorf("store: put %q: KeepBody is another object's body", r.Key)
	}
	if r.Parent != "" {
		var err error
		if p.parent, err = parseID(r.Parent); err != nil {
			return fmt.Errorf("store: put %q: parent: %w", r.Key, err)
		}
	}
	p.r = r
	p.id = makeID(r.Key, r.Variant)
	p.hdr = encodeHeader(nil, r)
	n := r.bodyLen()
	p.size = objectSize(len(p.hdr), n, int((n+ChunkSize-1)/ChunkSize))
	if s.opts.MaxBytes > 0 && p.size > s.opts.MaxBytes {
		return fmt.Errorf("store: put %q: %d bytes: %w", r.Key, p.size, ErrTooLarge)
	}
	return nil
}

// readBody copies the body of h out of the chunks bucket, checking every
// chunk's length and checksum.
func readBody(chunks *bolt.Bucket, id objectID, h *decoded) ([]byte, error) {
	body := make([]byte, h.BodySize)
	var want [idLen + 4]byte
	copy(want[:], id[:])
	c := chunks.Cursor()
	k, v := c.Seek(want[:])
	off := 0
	for i := range h.chunks {
		binary.BigEndian.PutUint32(want[idLen:], uint32(i))
		if !bytes.Equal(k, want[:]) {
			return nil, fmt.Errorf("chunk %d missing", i)
		}
		if len(v) != len(chunk(body, i)) {
			return nil, fmt.Errorf("chunk %d is %d bytes, want %d", i, len(v), len(chunk(body, i)))
		}
		if got, want := crc32.Checksum(v, castagnoli), h.crc(i); got != want {
			return nil, fmt.Errorf("chunk %d: crc32c %08x, want %08x", i, got, want)
		}
		off += copy(body[off:], v)
		k, v = c.Next()
	}
	return body, nil
}

// dropCorrupt deletes an object that failed a check, so that the cache
// layer refetches it.
func (s *Store) dropCorrupt(id objectID, key string, cause error) {
	s.corrupt.Add(1)
	s.log.Warn("cache object corrupt: dropped", "key", key, "id", fmt.Sprintf("%x", id[:]), "reason", cause.Error())
	if _, err := s.deleteIDs([]objectID{id}, nil); err != nil {
		s.log.Error("dropping corrupt cache object failed", "key", key, "err", err)
	}
}

// Variants returns the Variant of every object stored under key (not
// those past their KeepUntil).
func (s *Store) Variants(key string) (_ []string, err error) {
	if err := s.acquire(); err != nil {
		return nil, err
	}
	defer s.closeMu.RUnlock()
	defer s.guard(&err)
	prefix := keyPrefix(key)
	now := time.Now().UnixNano()
	var out []string
	err = s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketObjects).Cursor()
		for k, v := c.Seek(prefix[:]); k != nil && bytes.HasPrefix(k, prefix[:]); k, v = c.Next() {
			f, err := decodeFixed(v)
			if err != nil || (f.keepUntil != zeroTime && f.keepUntil < now) {
				continue
			}
			if hk, variant, err := decodeKeyVariant(v); err == nil && hk == key {
				out = append(out, variant)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: variants %q: %w", key, err)
	}
	return out, nil
}

// Delete removes one object and its children. It returns ErrNotFound if
// there was none.
func (s *Store) Delete(key, variant string) error {
	if err := s.acquire(); err != nil {
		return err
	}
	defer s.closeMu.RUnlock()
	removed, err := s.deleteIDs([]objectID{makeID(key, variant)}, nil)
	if err != nil {
		return fmt.Errorf("store: delete %q: %w", key, err)
	}
	if len(removed) == 0 {
		return ErrNotFound
	}
	return nil
}

// DeleteKey removes every variant of key (a purge), with their children,
// and returns how many variants there were.
func (s *Store) DeleteKey(key string) (int, error) {
	if err := s.acquire(); err != nil {
		return 0, err
	}
	defer s.closeMu.RUnlock()
	prefix := keyPrefix(key)
	var variants int
	var removed []removal
	err := s.update(func(tx *bolt.Tx) error {
		variants, removed = 0, removed[:0]
		b := s.bucketsOf(tx)
		var ids []objectID
		c := b.objects.Cursor()
		for k, v := c.Seek(prefix[:]); k != nil && bytes.HasPrefix(k, prefix[:]); k, v = c.Next() {
			if len(k) != idLen {
				continue
			}
			if hk, _, err := decodeKeyVariant(v); err != nil || hk == key {
				// An undecodable object under this prefix is most likely
				// this key's: a purge takes it too.
				ids = append(ids, objectID(k))
			}
		}
		for _, id := range ids {
			before := len(removed)
			if err := b.deleteObject(id, 0, &removed); err != nil {
				return err
			}
			if len(removed) > before {
				variants++
			}
		}
		s.forget(removed)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("store: delete key %q: %w", key, err)
	}
	return variants, nil
}

// PurgeTag removes every object tagged tag, with their children. It
// returns the Keys of the removed objects, each once: first those of the
// tagged objects, then those of children removed with them (so that the
// cache layer can drop them from its memory tier too).
func (s *Store) PurgeTag(tag string) ([]string, error) {
	if err := s.acquire(); err != nil {
		return nil, err
	}
	defer s.closeMu.RUnlock()
	prefix := tagPrefix(tag)
	var removed []removal
	err := s.update(func(tx *bolt.Tx) error {
		removed = removed[:0]
		b := s.bucketsOf(tx)
		var keys [][]byte
		c := b.tags.Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			if len(k) == len(prefix)+idLen {
				keys = append(keys, bytes.Clone(k))
			}
		}
		for _, k := range keys {
			// deleteObject drops the tag entry of an object it removes;
			// this drops entries left by an object that was undecodable.
			if err := b.tags.Delete(k); err != nil {
				return err
			}
			if err := b.deleteObject(objectID(k[len(prefix):]), 0, &removed); err != nil {
				return err
			}
		}
		s.forget(removed)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: purge tag %q: %w", tag, err)
	}
	var keys []string
	seen := make(map[string]bool, len(removed))
	for _, depth := range []int{0, 1} {
		for _, r := range removed {
			if (r.depth == 0) == (depth == 0) && !seen[r.key] {
				seen[r.key] = true
				keys = append(keys, r.key)
			}
		}
	}
	return keys, nil
}

// Scan calls fn with the header of every stored object (bodies are not
// read), in id order, until fn returns false. Objects past their KeepUntil
// and undecodable ones are skipped. fn runs outside any transaction, so
// it may call the store's other methods (delete what it scans, say); an
// object written during the scan may or may not be seen.
func (s *Store) Scan(fn func(h *Header) bool) error {
	const batch = 256
	var after []byte
	for {
		hs, next, err := s.scanBatch(after, batch)
		if err != nil {
			return err
		}
		for i := range hs {
			if !fn(&hs[i]) {
				return nil
			}
		}
		if next == nil {
			return nil
		}
		after = next
	}
}

// scanBatch decodes up to n headers after the key after (from the first
// if nil) and returns the key to continue after, nil at the end.
func (s *Store) scanBatch(after []byte, n int) (out []Header, next []byte, err error) {
	if err := s.acquire(); err != nil {
		return nil, nil, err
	}
	defer s.closeMu.RUnlock()
	defer s.guard(&err)
	now := time.Now()
	err = s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketObjects).Cursor()
		k, v := c.First()
		if after != nil {
			if k, v = c.Seek(after); k != nil && bytes.Equal(k, after) {
				k, v = c.Next()
			}
		}
		var last objectID
		for seen := 0; k != nil; k, v = c.Next() {
			if seen == n {
				next = bytes.Clone(last[:])
				return nil
			}
			seen++
			copy(last[:], k)
			h, err := decodeHeader(v)
			if err != nil {
				continue // undecodable: Get drops it when asked
			}
			if !h.KeepUntil.IsZero() && h.KeepUntil.Before(now) {
				continue
			}
			out = append(out, h.Header)
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("store: scan: %w", err)
	}
	return out, next, nil
}

// removal is an object deleted in a transaction, applied to the index
// once it commits.
type removal struct {
	id    objectID
	key   string
	depth int // 0: deleted itself; > 0: deleted as a child
}

// deleteIDs deletes objects (with their children) in one write transaction
// and returns what was removed. With cond, only objects whose stored
// header satisfies it are deleted (the sweep rechecks KeepUntil, which a
// Put may have moved since the sweep looked).
func (s *Store) deleteIDs(ids []objectID, cond func(hdr []byte) bool) ([]removal, error) {
	var removed []removal
	err := s.update(func(tx *bolt.Tx) error {
		removed = removed[:0]
		b := s.bucketsOf(tx)
		for _, id := range ids {
			if cond != nil {
				if v := b.objects.Get(id[:]); v == nil || !cond(v) {
					continue
				}
			}
			if err := b.deleteObject(id, 0, &removed); err != nil {
				return err
			}
		}
		s.forget(removed)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return removed, nil
}

// forget drops removed objects from the index; it runs at the end of the
// deleting transaction (see update).
func (s *Store) forget(removed []removal) {
	if len(removed) == 0 {
		return
	}
	ids := make([]objectID, len(removed))
	for i, r := range removed {
		ids[i] = r.id
	}
	s.idx.remove(ids...)
}

// put writes r under id, with its encoded header hdr, replacing what was
// there (but not the children of what was there).
func (b buckets) put(id objectID, hdr []byte, r *Record, parent objectID) error {
	old := b.objects.Get(id[:])
	if r.KeepBody != nil && (old == nil || !r.KeepBody.matches(old)) {
		return errBodyGone
	}
	if old != nil {
		if err := b.unindex(id, old); err != nil {
			return err
		}
		if r.KeepBody == nil {
			if err := b.deleteChunks(id, old); err != nil {
				return err
			}
		}
	}
	if err := b.objects.Put(id[:], hdr); err != nil {
		return err
	}
	if r.KeepBody == nil {
		for i := range chunkCount(len(r.Body)) {
			if err := b.chunks.Put(chunkKey(id, i), chunk(r.Body, i)); err != nil {
				return err
			}
		}
	}
	for _, t := range r.Tags {
		if err := b.tags.Put(tagKey(t, id), nil); err != nil {
			return err
		}
	}
	if r.Parent != "" {
		return b.children.Put(childKey(parent, id), nil)
	}
	return nil
}

// errBodyGone: a Record's KeepBody is no longer the object's body.
var errBodyGone = errors.New("kept body no longer stored")

// buckets are the buckets of one transaction.
type buckets struct {
	tx                              *bolt.Tx
	objects, chunks, tags, children *bolt.Bucket
	retireIfPinned                  func(objectID, uint32) bool // nil: nothing is pinned
}

func bucketsOf(tx *bolt.Tx) buckets {
	return buckets{
		tx:       tx,
		objects:  tx.Bucket(bucketObjects),
		chunks:   tx.Bucket(bucketChunks),
		tags:     tx.Bucket(bucketTags),
		children: tx.Bucket(bucketChildren),
	}
}

// bucketsOf is bucketsOf(tx) that retires the chunks of pinned bodies
// instead of deleting them (Body.Pin).
func (s *Store) bucketsOf(tx *bolt.Tx) buckets {
	b := bucketsOf(tx)
	b.retireIfPinned = s.retireIfPinned
	return b
}

// deleteObject deletes id: its chunks, its index entries, its children
// (recursively), then its header. A missing id is no error.
func (b buckets) deleteObject(id objectID, depth int, removed *[]removal) error {
	v := b.objects.Get(id[:])
	if v == nil {
		return nil
	}
	key, _, _ := decodeKeyVariant(v)
	if err := b.unindex(id, v); err != nil {
		return err
	}
	if err := b.deleteChunks(id, v); err != nil {
		return err
	}
	var kids []objectID
	c := b.children.Cursor()
	for k, _ := c.Seek(id[:]); k != nil && bytes.HasPrefix(k, id[:]); k, _ = c.Next() {
		if len(k) == 2*idLen {
			kids = append(kids, objectID(k[idLen:]))
		}
	}
	for _, kid := range kids {
		if err := b.children.Delete(childKey(id, kid)); err != nil {
			return err
		}
		if depth < maxDepth {
			if err := b.deleteObject(kid, depth+1, removed); err != nil {
				return err
			}
		}
	}
	if err := b.objects.Delete(id[:]); err != nil {
		return err
	}
	*removed = append(*removed, removal{id: id, key: key, depth: depth})
	return nil
}

// unindex removes the tags/ and children/ entries that the stored header
// old of id put there. An undecodable header leaves its entries behind;
// PurgeTag cleans tag entries without an object.
func (b buckets) unindex(id objectID, old []byte) error {
	tags, parent, err := decodeTagsParent(old)
	if err != nil {
		return nil
	}
	for _, t := range tags {
		if err := b.tags.Delete(tagKey(t, id)); err != nil {
			return err
		}
	}
	if parent != "" {
		if p, err := parseID(parent); err == nil {
			return b.children.Delete(childKey(p, id))
		}
	}
	return nil
}

// deleteChunks deletes every chunk of id, whose stored header is hdr. The
// chunks of a pinned body (a response is being sent from it) move to
// retired/ instead, where its Body still finds them (Body.Pin).
func (b buckets) deleteChunks(id objectID, hdr []byte) error {
	var retired *bolt.Bucket
	var fp uint32
	if crcs, ok := chunkCRCs(hdr); ok && b.retireIfPinned != nil {
		if fp = crc32.Checksum(crcs, castagnoli); b.retireIfPinned(id, fp) {
			var err error
			if retired, err = b.tx.CreateBucketIfNotExists(bucketRetired); err != nil {
				return err
			}
			testHookRetiring()
		}
	}
	var keys [][]byte
	c := b.chunks.Cursor()
	for k, _ := c.Seek(id[:]); k != nil && bytes.HasPrefix(k, id[:]); k, _ = c.Next() {
		keys = append(keys, bytes.Clone(k))
	}
	for _, k := range keys {
		if retired != nil && len(k) == idLen+4 {
			// bbolt copies the value out of the mapping before a
			// remap, so it may come straight from the page.
			if err := retired.Put(retiredKey(id, fp, int(binary.BigEndian.Uint32(k[idLen:]))), b.chunks.Get(k)); err != nil {
				return err
			}
		}
		if err := b.chunks.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// testHookRetiring runs in the write transaction that retires a pinned
// body's chunks, before it commits (tests).
var testHookRetiring = func() {}

// chunkCRCs returns the chunk checksums of an encoded header.
func chunkCRCs(hdr []byte) ([]byte, bool) {
	f, err := decodeFixed(hdr)
	if err != nil || len(hdr) < fixedLen+4+4*f.chunks {
		return nil, false
	}
	return hdr[len(hdr)-4-4*f.chunks : len(hdr)-4], true
}

// retiredKey is the key of chunk i of a retired body of id whose chunk
// checksums have the checksum fp.
func retiredKey(id objectID, fp uint32, i int) []byte {
	k := make([]byte, 0, idLen+8)
	k = append(k, id[:]...)
	k = binary.BigEndian.AppendUint32(k, fp)
	return binary.BigEndian.AppendUint32(k, uint32(i))
}

func chunkKey(id objectID, i int) []byte {
	k := make([]byte, idLen+4)
	copy(k, id[:])
	binary.BigEndian.PutUint32(k[idLen:], uint32(i))
	return k
}

func tagPrefix(tag string) []byte {
	p := binary.AppendUvarint(make([]byte, 0, binary.MaxVarintLen64+len(tag)+idLen), uint64(len(tag)))
	return append(p, tag...)
}

func tagKey(tag string, id objectID) []byte { return append(tagPrefix(tag), id[:]...) }

func childKey(parent, child objectID) []byte {
	k := make([]byte, 0, 2*idLen)
	return append(append(k, parent[:]...), child[:]...)
}
