package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// stamped returns a body of n bytes made of the 8-byte stamp repeated, so
// that a reader can tell whether a body is one writer's, whole.
func stamped(stamp uint64, n int) []byte {
	b := make([]byte, n)
	var s [8]byte
	binary.BigEndian.PutUint64(s[:], stamp)
	for i := range b {
		b[i] = s[i%8]
	}
	return b
}

func checkStamped(r *Record) error {
	if len(r.Extra) != 8 {
		return fmt.Errorf("%s: extra of %d bytes", r.Key, len(r.Extra))
	}
	if want := stamped(binary.BigEndian.Uint64(r.Extra), len(r.Body)); !bytes.Equal(r.Body, want) {
		return fmt.Errorf("%s: body of %d bytes is not the one stamped %x", r.Key, len(r.Body), r.Extra)
	}
	return nil
}

func TestConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cache.db")
	s := openT(t, path, Options{NoSync: true, MaxBytes: 48 << 10})
	const workers, ops = 8, 400
	keys := []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l"}
	variants := []string{"", "gzip", "br"}
	tags := []string{"t1", "t2", "t3"}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 1))
			fail := func(err error) { errs <- fmt.Errorf("worker %d: %w", w, err) }
			for i := range ops {
				key, variant := keys[r.IntN(len(keys))], variants[r.IntN(len(variants))]
				switch op := r.IntN(100); {
				case op < 40:
					stamp := uint64(w)<<32 | uint64(i)
					rec := &Record{
						Key: key, Variant: variant, Status: 200,
						Body:  stamped(stamp, r.IntN(8000)),
						Extra: binary.BigEndian.AppendUint64(nil, stamp),
						Tags:  []string{tags[r.IntN(len(tags))]},
					}
					if r.IntN(4) == 0 {
						rec.Kind, rec.Parent = KindSegment, ObjectID(keys[r.IntN(len(keys))], "")
					}
					if err := s.Put(rec); err != nil {
						fail(err)
						return
					}
				case op < 75:
					got, err := s.Get(key, variant)
					if errors.Is(err, ErrNotFound) {
						continue
					}
					if err == nil {
						err = checkStamped(got)
					}
					if err != nil {
						fail(err)
						return
					}
				case op < 82:
					if err := s.Delete(key, variant); err != nil && !errors.Is(err, ErrNotFound) {
						fail(err)
						return
					}
				case op < 87:
					if _, err := s.DeleteKey(key); err != nil {
						fail(err)
						return
					}
				case op < 90:
					if _, err := s.PurgeTag(tags[r.IntN(len(tags))]); err != nil {
						fail(err)
						return
					}
				case op < 95:
					if _, err := s.Variants(key); err != nil {
						fail(err)
						return
					}
				case op < 97:
					if err := s.Scan(func(*Header) bool { return true }); err != nil {
						fail(err)
						return
					}
				default:
					if _, err := s.AddBan("req.url ~ "+key, t0); err != nil {
						fail(err)
						return
					}
					_ = s.Stats()
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	waitReady(t, s)
	st := s.Stats()
	checkConsistent(t, s)
	if st.Bytes > 48<<10 {
		t.Errorf("Stats.Bytes = %d, over the 48 KiB budget", st.Bytes)
	}
	t.Logf("after %d ops: %+v", workers*ops, st)

	// A rebuilt index agrees with the one kept up to date.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openT(t, path, Options{NoSync: true, MaxBytes: 48 << 10})
	waitReady(t, s)
	if got := s.Stats(); got.Objects != st.Objects || got.Bytes != st.Bytes {
		t.Errorf("rebuilt index: %d objects, %d bytes; kept index: %d, %d", got.Objects, got.Bytes, st.Objects, st.Bytes)
	}
}

// checkConsistent compares the index with the file and checks that the
// tags/, children/ and chunks/ entries all belong to stored objects.
func checkConsistent(t *testing.T, s *Store) {
	t.Helper()
	objects, size, _ := s.idx.stats()
	err := s.db.View(func(tx *bolt.Tx) error {
		b := bucketsOf(tx)
		var n, total int64
		hdrs := map[objectID]*decoded{}
		err := b.objects.ForEach(func(k, v []byte) error {
			h, err := decodeHeader(v)
			if err != nil {
				return err
			}
			h.crcs = nil // points into the transaction
			id := objectID(k)
			hdrs[id] = h
			n++
			total += objectSize(len(v), h.BodySize, h.chunks)
			s.idx.mu.Lock()
			_, ok := s.idx.m[id]
			s.idx.mu.Unlock()
			if !ok {
				t.Errorf("object %s is in the file, not in the index", h.Key)
			}
			return nil
		})
		if err != nil {
			return err
		}
		if n != objects || total != size {
			t.Errorf("index: %d objects, %d bytes; file: %d objects, %d bytes", objects, size, n, total)
		}
		chunks := 0
		if err := b.chunks.ForEach(func(k, _ []byte) error {
			chunks++
			if hdrs[objectID(k[:idLen])] == nil {
				t.Errorf("chunk %x without its object", k)
			}
			return nil
		}); err != nil {
			return err
		}
		want := 0
		for _, h := range hdrs {
			want += h.chunks
		}
		if chunks != want {
			t.Errorf("%d chunks in the file, the headers name %d", chunks, want)
		}
		if err := b.tags.ForEach(func(k, _ []byte) error {
			id := objectID(k[len(k)-idLen:])
			h := hdrs[id]
			if h == nil || !slices.ContainsFunc(h.Tags, func(tag string) bool { return bytes.Equal(tagKey(tag, id), k) }) {
				t.Errorf("tag entry %q without a tagged object", k)
			}
			return nil
		}); err != nil {
			return err
		}
		return b.children.ForEach(func(k, _ []byte) error {
			child := hdrs[objectID(k[idLen:])]
			if child == nil || child.Parent != fmt.Sprintf("%x", k[:idLen]) {
				t.Errorf("children entry %x without its child", k)
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
}
