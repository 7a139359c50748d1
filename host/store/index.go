package store

import (
	"bytes"
	"context"
	"math"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The in-memory index: every object's id, approximate size and KeepUntil,
// in least-recently-used order. It serves eviction by size and the
// KeepUntil sweep without reading the file, and the read path only moves
// an entry in memory (no write transaction on a Get).
//
// It is built in the background after Open. While it is being built, Puts,
// Gets and deletes update it as usual; the builder adds only the ids it
// finds that nobody has touched or deleted meanwhile (tombstones), so that
// a snapshot older than a write never resurrects or double-counts an
// object.

type entry struct {
	id         objectID
	size       int64
	keep       int64 // KeepUntil in unix ns; zeroTime = none
	prev, next *entry
}

type index struct {
	mu      sync.Mutex
	m       map[objectID]*entry
	root    entry // root.next is the most recently used, root.prev the least
	bytes   int64
	ready   bool
	deleted map[objectID]struct{} // deletions seen while building
}

func newIndex() *index {
	x := &index{m: make(map[objectID]*entry), deleted: make(map[objectID]struct{})}
	x.root.next, x.root.prev = &x.root, &x.root
	return x
}

func (x *index) unlink(e *entry) {
	e.prev.next, e.next.prev = e.next, e.prev
	e.prev, e.next = nil, nil
}

// linkAfter puts e right after at.
func (x *index) linkAfter(e, at *entry) {
	e.prev, e.next = at, at.next
	at.next.prev = e
	at.next = e
}

// put records an object just written as the most recently used.
func (x *index) put(id objectID, size, keep int64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if e := x.m[id]; e != nil {
		x.bytes += size - e.size
		e.size, e.keep = size, keep
		x.unlink(e)
		x.linkAfter(e, &x.root)
		return
	}
	e := &entry{id: id, size: size, keep: keep}
	x.m[id] = e
	x.bytes += size
	x.linkAfter(e, &x.root)
}

// touch marks id as just used.
func (x *index) touch(id objectID) {
	x.mu.Lock()
	if e := x.m[id]; e != nil && x.root.next != e {
		x.unlink(e)
		x.linkAfter(e, &x.root)
	}
	x.mu.Unlock()
}

// remove forgets objects that were deleted from the file.
func (x *index) remove(ids ...objectID) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, id := range ids {
		if !x.ready {
			x.deleted[id] = struct{}{}
		}
		if e := x.m[id]; e != nil {
			x.bytes -= e.size
			x.unlink(e)
			delete(x.m, id)
		}
	}
}

// victims takes least recently used objects out of the index until the
// rest fit in limit, sparing keep, and returns their ids for deletion.
// Nothing is chosen before the index is complete: until then the total
// is unknown.
func (x *index) victims(limit int64, spare objectID) []objectID {
	x.mu.Lock()
	defer x.mu.Unlock()
	if !x.ready || x.bytes <= limit {
		return nil
	}
	var ids []objectID
	for e := x.root.prev; e != &x.root && x.bytes > limit; {
		prev := e.prev
		if e.id != spare {
			ids = append(ids, e.id)
			x.bytes -= e.size
			x.unlink(e)
			delete(x.m, e.id)
		}
		e = prev
	}
	return ids
}

// expired returns the ids of objects whose KeepUntil is before now.
func (x *index) expired(now int64) []objectID {
	x.mu.Lock()
	defer x.mu.Unlock()
	var ids []objectID
	for id, e := range x.m {
		if e.keep != zeroTime && e.keep < now {
			ids = append(ids, id)
		}
	}
	return ids
}

func (x *index) stats() (objects, bytes int64, ready bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	return int64(len(x.m)), x.bytes, x.ready
}

// built is an object found by the builder.
type built struct {
	id      objectID
	size    int64
	keep    int64
	created int64
}

// merge adds the objects found by the builder behind the ones used since
// Open, oldest (by Created: the best guess at last use the file has) last,
// and marks the index ready.
func (x *index) merge(found []built) {
	slices.SortFunc(found, func(a, b built) int {
		switch {
		case a.created > b.created:
			return -1
		case a.created < b.created:
			return 1
		}
		return 0
	})
	x.mu.Lock()
	defer x.mu.Unlock()
	for i := range found {
		f := &found[i]
		if _, ok := x.m[f.id]; ok {
			continue
		}
		if _, ok := x.deleted[f.id]; ok {
			continue
		}
		e := &entry{id: f.id, size: f.size, keep: f.keep}
		x.m[f.id] = e
		x.bytes += f.size
		x.linkAfter(e, x.root.prev)
	}
	x.ready = true
	x.deleted = nil
}

// objectSize is the size the disk budget counts for an object: its encoded
// header, its body, and roughly what its keys cost in the file.
func objectSize(headerLen int, bodyLen int64, chunks int) int64 {
	const perObject = 2*idLen + 64 // objects/ key and page overhead, index entries
	const perChunk = idLen + 4 + 16
	return int64(headerLen) + bodyLen + perObject + int64(chunks)*perChunk
}

// buildBatch is how many headers one read transaction of the builder
// reads: short transactions never hold up a writer that must grow the
// file (bbolt remaps under a lock that waits for readers).
const buildBatch = 4096

// buildIndex reads the fixed part of every header, in batches, and merges
// what it found into the index.
func (s *Store) buildIndex(ctx context.Context) {
	defer s.wg.Done()
	var damaged error
	defer s.guard(&damaged)
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	start := time.Now()
	var found []built
	var after []byte
	var bad []objectID
	for {
		if ctx.Err() != nil {
			return
		}
		n := 0
		err := s.db.View(func(tx *bolt.Tx) error {
			c := tx.Bucket(bucketObjects).Cursor()
			k, v := c.First()
			if after != nil {
				k, v = c.Seek(after)
				if k != nil && bytes.Equal(k, after) {
					k, v = c.Next()
				}
			}
			for ; k != nil && n < buildBatch; k, v = c.Next() {
				n++
				after = append(after[:0], k...)
				if len(k) != idLen {
					continue // not an object id: nothing of ours
				}
				f, err := decodeFixed(v)
				if err != nil {
					bad = append(bad, objectID(k))
					continue
				}
				b := built{size: objectSize(len(v), f.bodyLen, f.chunks), keep: f.keepUntil, created: f.created}
				copy(b.id[:], k)
				found = append(found, b)
			}
			return nil
		})
		if err != nil {
			s.log.Error("cache index: read failed; eviction stays off", "err", err)
			return
		}
		if n < buildBatch {
			break
		}
	}
	s.idx.merge(found)
	if len(bad) > 0 {
		// Headers too damaged to size: outside the index they would
		// never be evicted. Drop them now.
		if removed, err := s.deleteIDs(bad, func(hdr []byte) bool { _, err := decodeFixed(hdr); return err != nil }); err == nil {
			s.corrupt.Add(uint64(len(removed)))
			s.log.Warn("cache index: dropped undecodable objects", "objects", len(removed))
		}
	}
	objects, size, _ := s.idx.stats()
	s.evict(objectID{})
	s.indexReady.Store(true)
	s.log.Info("cache index ready", "objects", objects, "bytes", size, "undecodable", len(bad),
		"evicted", s.evictions.Load(), "took", time.Since(start))
}

// evict deletes least recently used objects until the store fits in
// MaxBytes, sparing the object id just written.
func (s *Store) evict(spare objectID) {
	if s.opts.MaxBytes <= 0 {
		return
	}
	s.calibrate(false)
	// Deleting leaves pages partly filled, so the ratio grows as objects
	// go: measure again after each round, until the pages fit.
	for range 4 {
		limit := int64(float64(s.opts.MaxBytes) / math.Float64frombits(s.ratio.Load()))
		ids := s.idx.victims(limit, spare)
		if len(ids) == 0 {
			return
		}
		removed, err := s.deleteIDs(ids, nil)
		if err != nil {
			s.log.Error("cache eviction failed", "objects", len(ids), "err", err)
			return
		}
		s.evictions.Add(uint64(len(removed)))
		if !s.calibrate(true) {
			return
		}
	}
}

// The index counts what objects cost by estimate (objectSize); the file
// costs more: bbolt's pages are partly filled, and small objects pay for
// their keys and page headers several times over. So that MaxBytes bounds
// the file, not the estimate, the store measures the ratio of the pages in
// use (the file's high-water mark less its free pages) to the estimate,
// at most once a second, and evicts down to MaxBytes / ratio.
const (
	calibrateEvery = time.Second
	minCalibrate   = 256 << 10 // below this the fixed pages (meta, roots) dominate: trust the estimate
	maxRatio       = 16
)

// calibrate updates s.ratio if forced or older than calibrateEvery, and
// reports whether the pages in use exceed MaxBytes.
func (s *Store) calibrate(force bool) (over bool) {
	now := time.Now().UnixNano()
	last := s.calibrated.Load()
	if !force && (now-last < int64(calibrateEvery) || !s.calibrated.CompareAndSwap(last, now)) {
		return false
	}
	s.calibrated.Store(now)
	_, estimate, _ := s.idx.stats()
	used := s.pagesInUse()
	r := 1.0
	if estimate >= minCalibrate && used > estimate {
		r = min(float64(used)/float64(estimate), maxRatio)
	}
	s.ratio.Store(math.Float64bits(r))
	return used > s.opts.MaxBytes
}

// pagesInUse is the bytes of the file's pages that hold data: its
// high-water mark less the free and pending pages (which bbolt reuses).
func (s *Store) pagesInUse() int64 {
	var size, page int64
	if err := s.db.View(func(tx *bolt.Tx) error {
		// Info reads the mapping: only inside a transaction, which
		// keeps a writer from remapping meanwhile.
		size, page = tx.Size(), int64(tx.DB().Info().PageSize)
		return nil
	}); err != nil {
		return 0
	}
	st := s.db.Stats()
	return size - int64(st.FreePageN+st.PendingPageN)*page
}

// sweepLoop drops objects past their KeepUntil every SweepInterval.
func (s *Store) sweepLoop(ctx context.Context) {
	defer s.wg.Done()
	t := time.NewTicker(s.opts.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			s.sweep(ctx, now)
		}
	}
}

// sweepBatch bounds the objects one sweep transaction deletes.
const sweepBatch = 512

func (s *Store) sweep(ctx context.Context, now time.Time) {
	limit := now.UnixNano()
	past := func(hdr []byte) bool {
		f, err := decodeFixed(hdr)
		return err == nil && f.keepUntil != zeroTime && f.keepUntil < limit
	}
	ids := s.idx.expired(limit)
	for len(ids) > 0 && ctx.Err() == nil {
		n := min(len(ids), sweepBatch)
		removed, err := s.deleteIDs(ids[:n], past)
		if err != nil {
			s.log.Error("cache sweep failed", "err", err)
			return
		}
		s.expired.Add(uint64(len(removed)))
		ids = ids[n:]
	}
}
