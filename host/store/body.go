package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// ErrReplaced: the object whose Body was being read has been removed or
// replaced by another body since Open (a purge, an eviction, a new
// fetch). What was read so far was the old body; the rest is gone.
var ErrReplaced = errors.New("store: object removed or replaced while its body was read")

// Body is the body of a stored object, read from cache.db chunk by chunk
// (issue 13: a disk hit on a 50 MiB object used to copy it whole onto the
// heap, once per reader whose copy had left the memory tier). It holds no
// body bytes: each ReadAt runs its own short read transaction and copies
// out of the file's mapping into the caller's buffer, so a slow client
// never keeps a bbolt read transaction open (a commit that grows the file
// remaps it, which waits for every open read transaction).
//
// A Body stays bound to the body it was opened on: every ReadAt checks that
// the stored object still has that body (its length and chunk checksums)
// and fails with ErrReplaced otherwise, so a reader never splices two
// versions of an object. Each chunk's crc32c is checked on the first read
// of that chunk through this Body. A Body is safe for concurrent use.
type Body struct {
	s        *Store
	id       objectID
	size     int64
	crcs     []byte        // 4 bytes a chunk, copied out of the header
	verified []atomic.Bool // chunk checked against its crc32c
}

// Pin keeps the body readable until Unpin even if its object is purged,
// evicted or replaced meanwhile: a response being sent from it ends
// whole. The store then moves its chunks to retired/ instead of deleting
// them, and drops them at the last Unpin (or on the next Open). Every Pin
// needs its Unpin.
func (b *Body) Pin() {
	b.s.pinMu.Lock()
	b.s.pins[b.pinKey()]++
	b.s.pinMu.Unlock()
}

// Unpin ends a Pin.
func (b *Body) Unpin() {
	s, k := b.s, b.pinKey()
	s.pinMu.Lock()
	n := s.pins[k] - 1
	if n <= 0 {
		delete(s.pins, k)
	} else {
		s.pins[k] = n
	}
	s.pinMu.Unlock()
	if n <= 0 {
		s.dropRetired(k)
	}
}

// pinKey names one body of an object: pins are counted per body, not per
// object, so that a body's retired chunks go when its own last reader
// ends. Counted per object, an object replaced again and again while
// slow clients overlapped kept every body it ever had in retired/ (disk
// that storage.disk does not count) until no client read any of them.
type pinKey struct {
	id objectID
	fp uint32 // fingerprint of the body's chunk checksums
}

func (b *Body) pinKey() pinKey { return pinKey{b.id, b.fingerprint()} }

// retireIfPinned reports whether the body of id whose chunk checksums
// have the fingerprint fp is pinned, and then notes that its chunks go to
// retired/; write transactions ask, so that a pin taken before a deletion
// commits is honoured. The note is taken under the pins' lock: an Unpin
// that follows sees it even before the transaction commits, and drops the
// chunks after it (a look at the committed file alone, made meanwhile,
// found none and left them there until the next Open).
func (s *Store) retireIfPinned(id objectID, fp uint32) bool {
	s.pinMu.Lock()
	defer s.pinMu.Unlock()
	k := pinKey{id, fp}
	if s.pins[k] == 0 {
		return false
	}
	s.retiring[k] = true
	return true
}

// dropRetired deletes the retired chunks of the body k unless it has been
// pinned again meanwhile.
func (s *Store) dropRetired(k pinKey) {
	s.pinMu.Lock()
	retired := s.retiring[k]
	s.pinMu.Unlock()
	if !retired {
		return // the common case: nothing was retired, no write
	}
	if err := s.acquire(); err != nil {
		return
	}
	defer s.closeMu.RUnlock()
	prefix := retiredKey(k.id, k.fp, 0)[:idLen+4]
	// A write that retired them and has not committed yet commits first:
	// writes are serialised (update).
	err := s.update(func(tx *bolt.Tx) error {
		r := tx.Bucket(bucketRetired)
		s.pinMu.Lock()
		pinned := s.pins[k] > 0
		s.pinMu.Unlock()
		if r == nil || pinned {
			return nil
		}
		var keys [][]byte
		c := r.Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			keys = append(keys, bytes.Clone(k))
		}
		for _, k := range keys {
			if err := r.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		s.log.Warn("dropping retired chunks failed", "id", fmt.Sprintf("%x", k.id[:]), "err", err)
		return
	}
	s.pinMu.Lock()
	if s.pins[k] == 0 {
		delete(s.retiring, k) // pinned again: its Unpin drops what is retired by then
	}
	s.pinMu.Unlock()
}

// Size is the body's length in bytes.
func (b *Body) Size() int64 { return b.size }

// SameAs reports whether b and o are bound to the same stored body.
func (b *Body) SameAs(o *Body) bool {
	return o != nil && b.s == o.s && b.id == o.id && b.size == o.size && bytes.Equal(b.crcs, o.crcs)
}

// ReadAt reads len(p) bytes of the body from off (io.ReaderAt), in one
// read transaction. It returns ErrReplaced when the object no longer has
// this body and ErrCorrupt (dropping the object) when a chunk fails its
// checksum.
func (b *Body) ReadAt(p []byte, off int64) (n int, err error) {
	if off < 0 {
		return 0, fmt.Errorf("store: read body at %d: negative offset", off)
	}
	if off >= b.size {
		return 0, io.EOF
	}
	err = b.viewRetired(func(tx *bolt.Tx, retired bool) error {
		for n < len(p) && off+int64(n) < b.size {
			at := off + int64(n)
			i := int(at / ChunkSize)
			v, err := b.chunk(tx, i, retired)
			if err != nil {
				return err
			}
			n += copy(p[n:], v[at-int64(i)*ChunkSize:])
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// Check reports whether the stored object still has this body (nil) or
// not (ErrReplaced), without reading it: the cheap test before a header
// promises the body to a client.
func (b *Body) Check() error {
	return b.view(func(*bolt.Tx) error { return nil })
}

// verify checks every chunk's length and checksum, each in its own read
// transaction, without copying anything: Open finds a damaged object
// before a client is promised its body.
func (b *Body) verify() error {
	for i := range b.verified {
		if err := b.view(func(tx *bolt.Tx) error { _, err := b.chunk(tx, i, false); return err }); err != nil {
			return err
		}
	}
	return nil
}

// view runs fn in a read transaction in which the object still has this
// body, and maps its failures: ErrReplaced, or ErrCorrupt after dropping
// an object whose chunk is damaged.
func (b *Body) view(fn func(tx *bolt.Tx) error) error {
	return b.read(false, func(tx *bolt.Tx, _ bool) error { return fn(tx) })
}

// viewRetired is view for a body that may have been retired while pinned:
// fn is told whether to read its chunks from retired/.
func (b *Body) viewRetired(fn func(tx *bolt.Tx, retired bool) error) error {
	return b.read(true, fn)
}

func (b *Body) read(orRetired bool, fn func(tx *bolt.Tx, retired bool) error) (err error) {
	s := b.s
	if err := s.acquire(); err != nil {
		return err
	}
	defer s.closeMu.RUnlock()
	defer s.guard(&err)
	err = s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketObjects).Get(b.id[:]); v != nil && b.matches(v) {
			return fn(tx, false)
		}
		if r := tx.Bucket(bucketRetired); orRetired && r != nil && r.Get(retiredKey(b.id, b.fingerprint(), 0)) != nil {
			return fn(tx, true)
		}
		return ErrReplaced
	})
	var bad *badChunk
	switch {
	case errors.As(err, &bad):
		s.dropCorrupt(b.id, "", bad)
		return fmt.Errorf("store: read body %x: %w", b.id[:], ErrCorrupt)
	case errors.Is(err, ErrReplaced):
		return ErrReplaced
	case err != nil:
		return fmt.Errorf("store: read body %x: %w", b.id[:], err)
	}
	s.idx.touch(b.id)
	return nil
}

// badChunk is a chunk of the wrong length or checksum.
type badChunk struct{ msg string }

func (e *badChunk) Error() string { return e.msg }

// fingerprint names the body's chunks in retired/.
func (b *Body) fingerprint() uint32 { return crc32.Checksum(b.crcs, castagnoli) }

// chunk returns chunk i of the body in tx (valid until tx ends), from
// chunks/ or retired/, checked against its checksum unless this Body has
// checked it before.
func (b *Body) chunk(tx *bolt.Tx, i int, retired bool) ([]byte, error) {
	var v []byte
	if retired {
		v = tx.Bucket(bucketRetired).Get(retiredKey(b.id, b.fingerprint(), i))
	} else {
		var key [idLen + 4]byte
		copy(key[:], b.id[:])
		binary.BigEndian.PutUint32(key[idLen:], uint32(i))
		v = tx.Bucket(bucketChunks).Get(key[:])
	}
	if want := min(int64(ChunkSize), b.size-int64(i)*ChunkSize); int64(len(v)) != want {
		return nil, &badChunk{fmt.Sprintf("chunk %d is %d bytes, want %d", i, len(v), want)}
	}
	if !b.verified[i].Load() {
		if got, want := crc32.Checksum(v, castagnoli), binary.BigEndian.Uint32(b.crcs[4*i:]); got != want {
			return nil, &badChunk{fmt.Sprintf("chunk %d: crc32c %08x, want %08x", i, got, want)}
		}
		b.verified[i].Store(true)
	}
	return v, nil
}

// matches reports whether the encoded header hdr describes b's body: same
// length, same chunk checksums (the last 4·chunks bytes before the
// header's own checksum). A header refreshed by a 304 (KeepBody) keeps
// them, so its Body stays readable.
func (b *Body) matches(hdr []byte) bool {
	f, err := decodeFixed(hdr)
	if err != nil || f.bodyLen != b.size {
		return false
	}
	end := len(hdr) - 4
	start := end - len(b.crcs)
	return start >= fixedLen && bytes.Equal(hdr[start:end], b.crcs)
}

// Open is Get for an object whose body may be large: a body of up to
// inline bytes is read whole into Record.Body (body is nil); a larger one
// is returned as a Body to read from, chunk by chunk. Open checks every
// chunk of it (each in a read transaction of its own, copying nothing), so
// that a damaged object is ErrCorrupt here, before a client is promised
// its body, as with Get.
func (s *Store) Open(key, variant string, inline int64) (*Record, *Body, error) {
	r, body, err := s.open(key, variant, inline)
	if err == nil && body != nil {
		if err := body.verify(); errors.Is(err, ErrReplaced) {
			return nil, nil, ErrNotFound
		} else if err != nil {
			return nil, nil, err
		}
	}
	return r, body, err
}

// open is Open without the check of a Body's chunks.
func (s *Store) open(key, variant string, inline int64) (_ *Record, body *Body, err error) {
	if err := s.acquire(); err != nil {
		return nil, nil, err
	}
	defer s.closeMu.RUnlock()
	defer s.guard(&err)
	id := makeID(key, variant)
	var rec *Record
	var bad error
	err = s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketObjects).Get(id[:])
		if v == nil {
			return ErrNotFound
		}
		h, err := decodeHeader(v)
		if err != nil {
			bad = err
			return nil
		}
		if h.Key != key || h.Variant != variant {
			// A 128+64-bit hash collision: not this object.
			return ErrNotFound
		}
		if !h.KeepUntil.IsZero() && h.KeepUntil.Before(time.Now()) {
			return ErrNotFound // the sweep drops it
		}
		rec = &Record{
			Key: h.Key, Variant: h.Variant, Status: h.Status, Header: h.Header.Header,
			Created: h.Created, Expires: h.Expires, StaleUntil: h.StaleUntil, KeepUntil: h.KeepUntil,
			Tags: h.Tags, Kind: h.Kind, Parent: h.Parent, Extra: h.Extra,
		}
		switch {
		case h.BodySize == 0:
		case h.BodySize > inline:
			body = &Body{s: s, id: id, size: h.BodySize, crcs: bytes.Clone(h.crcs), verified: make([]atomic.Bool, h.chunks)}
		default:
			rec.Body, bad = readBody(tx.Bucket(bucketChunks), id, h)
		}
		return nil
	})
	if err != nil {
		if err == ErrNotFound {
			return nil, nil, ErrNotFound // the common case: no allocation
		}
		return nil, nil, fmt.Errorf("store: get %q: %w", key, err)
	}
	if bad != nil {
		s.dropCorrupt(id, key, bad)
		return nil, nil, fmt.Errorf("store: get %q: %w", key, ErrCorrupt)
	}
	s.idx.touch(id)
	return rec, body, nil
}

// Get returns a copy of the object stored under key and variant, its body
// read whole. Every body chunk is checked against its crc32c: an object
// that fails is deleted and ErrCorrupt returned. Get marks the object used
// in memory only; it never writes to the file (except to drop a corrupt
// object).
func (s *Store) Get(key, variant string) (*Record, error) {
	r, _, err := s.Open(key, variant, math.MaxInt64)
	return r, err
}
