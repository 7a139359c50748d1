package store

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// TestOpenLargeBody: a body past inline is not read by Open but through a
// Body, at any offset and across chunk boundaries, by many readers at
// once; one at most inline comes whole, as from Get.
func TestOpenLargeBody(t *testing.T) {
	s := openT(t, filepath.Join(t.TempDir(), "cache.db"), Options{})
	want := body(5*ChunkSize/2+17, 7)
	if err := s.Put(&Record{Key: "big", Status: 200, Header: http.Header{"A": {"b"}}, Body: want, Expires: t0}); err != nil {
		t.Fatal(err)
	}
	r, b, err := s.Open("big", "", int64(len(want)))
	if err != nil || b != nil || !bytes.Equal(r.Body, want) {
		t.Fatalf("Open(inline = size) = body of %d bytes, Body %v, %v; want the body whole", len(r.Body), b, err)
	}
	r, b, err = s.Open("big", "", ChunkSize)
	if err != nil || b == nil || r.Body != nil {
		t.Fatalf("Open(inline < size) = Record.Body of %d bytes, Body %v, %v; want a Body", len(r.Body), b, err)
	}
	if r.Header.Get("A") != "b" || !r.Expires.Equal(t0) || b.Size() != int64(len(want)) {
		t.Errorf("Open = header %v, expires %v, size %d", r.Header, r.Expires, b.Size())
	}
	for _, tc := range []struct{ off, n int }{
		{0, 10}, {ChunkSize - 3, 6}, {ChunkSize, ChunkSize}, {17, 2 * ChunkSize}, {len(want) - 5, 5},
	} {
		p := make([]byte, tc.n)
		n, err := b.ReadAt(p, int64(tc.off))
		if err != nil && !errors.Is(err, io.EOF) || n != tc.n || !bytes.Equal(p, want[tc.off:tc.off+tc.n]) {
			t.Errorf("ReadAt(%d bytes at %d) = %d, %v; or wrong bytes", tc.n, tc.off, n, err)
		}
	}
	if n, err := b.ReadAt(make([]byte, 10), int64(len(want)-4)); n != 4 || err != io.EOF {
		t.Errorf("ReadAt past the end = %d, %v; want 4, EOF", n, err)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := io.ReadAll(io.NewSectionReader(b, 0, b.Size()))
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("concurrent read: %d bytes, %v", len(got), err)
			}
		}()
	}
	wg.Wait()
	// No read transaction stays open between reads: a slow reader never
	// blocks bbolt's remap.
	if n := s.db.Stats().OpenTxN; n != 0 {
		t.Errorf("%d read transactions open after the reads", n)
	}
}

// TestBodyReplaced: a Body never splices two versions: after the object
// is replaced or deleted, reads fail with ErrReplaced.
func TestBodyReplaced(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(s *Store) error
	}{
		{"replaced", func(s *Store) error {
			return s.Put(&Record{Key: "k", Status: 200, Body: body(3*ChunkSize, 2)})
		}},
		{"replaced by the same length", func(s *Store) error {
			return s.Put(&Record{Key: "k", Status: 200, Body: body(2*ChunkSize+1, 3)})
		}},
		{"deleted", func(s *Store) error { return s.Delete("k", "") }},
		{"purged", func(s *Store) error { _, err := s.DeleteKey("k"); return err }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := openT(t, filepath.Join(t.TempDir(), "cache.db"), Options{})
			if err := s.Put(&Record{Key: "k", Status: 200, Body: body(2*ChunkSize+1, 1)}); err != nil {
				t.Fatal(err)
			}
			_, b, err := s.Open("k", "", 0)
			if err != nil || b.Check() != nil {
				t.Fatalf("Open = %v, Check = %v", err, b.Check())
			}
			if _, err := b.ReadAt(make([]byte, 100), 0); err != nil {
				t.Fatal(err)
			}
			if err := tc.change(s); err != nil {
				t.Fatal(err)
			}
			if _, err := b.ReadAt(make([]byte, 100), ChunkSize); !errors.Is(err, ErrReplaced) {
				t.Errorf("ReadAt after the change = %v, want ErrReplaced", err)
			}
			if err := b.Check(); !errors.Is(err, ErrReplaced) {
				t.Errorf("Check after the change = %v, want ErrReplaced", err)
			}
		})
	}
}

// TestKeepBody: a header rewritten with KeepBody (a 304's refresh) keeps
// the stored chunks, and Bodies opened before it stay readable; once the
// body is replaced, a KeepBody put writes nothing.
func TestKeepBody(t *testing.T) {
	s := openT(t, filepath.Join(t.TempDir(), "cache.db"), Options{})
	want := body(3*ChunkSize-5, 4)
	if err := s.Put(&Record{Key: "k", Status: 200, Body: want, Expires: t0, Tags: []string{"old"}}); err != nil {
		t.Fatal(err)
	}
	_, b, err := s.Open("k", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	chunks := count(t, s, bucketChunks)
	later := t0.Add(time.Hour)
	if err := s.Put(&Record{Key: "k", Status: 200, Expires: later, Tags: []string{"new"}, KeepBody: b}); err != nil {
		t.Fatal(err)
	}
	r, err := s.Get("k", "")
	if err != nil || !r.Expires.Equal(later) || !bytes.Equal(r.Body, want) {
		t.Fatalf("Get after KeepBody put = expires %v, %d body bytes, %v", r.Expires, len(r.Body), err)
	}
	if got := count(t, s, bucketChunks); got != chunks {
		t.Errorf("chunks = %d after the header rewrite, want %d", got, chunks)
	}
	if got, err := io.ReadAll(io.NewSectionReader(b, 0, b.Size())); err != nil || !bytes.Equal(got, want) {
		t.Errorf("old Body after the refresh: %d bytes, %v", len(got), err)
	}
	if keys, _ := s.PurgeTag("old"); len(keys) != 0 {
		t.Errorf("PurgeTag(old) = %q: the old header's tags were kept", keys)
	}
	other := body(ChunkSize, 9)
	if err := s.Put(&Record{Key: "k", Status: 200, Body: other}); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(&Record{Key: "k", Status: 200, Expires: later, KeepBody: b}); err != nil {
		t.Fatalf("KeepBody put of a replaced body = %v, want nil (skipped)", err)
	}
	if r, err := s.Get("k", ""); err != nil || !bytes.Equal(r.Body, other) {
		t.Errorf("a stale KeepBody put overwrote the new object: %d bytes, %v", len(r.Body), err)
	}
	if err := s.Put(&Record{Key: "k2", Status: 200, KeepBody: b}); err == nil {
		t.Error("KeepBody of another key accepted")
	}
}

// TestBodyCorruptChunk: a chunk that fails its checksum is never
// returned: Open checks every chunk (ErrCorrupt, the object dropped), and
// a chunk damaged after Open fails ReadAt the same way.
func TestBodyCorruptChunk(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cache.db")
	s := openT(t, path, Options{})
	for _, k := range []string{"k", "later"} {
		if err := s.Put(&Record{Key: k, Status: 200, Body: body(2*ChunkSize, 5)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	flipFromEnd(t, path, bucketChunks, chunkKey(makeID("k", ""), 1), 100)
	s = openT(t, path, Options{})
	if _, _, err := s.Open("k", "", 0); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Open of the damaged object = %v, want ErrCorrupt", err)
	}
	if _, err := s.Get("k", ""); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after = %v, want ErrNotFound (dropped)", err)
	}

	_, b, err := s.Open("later", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	b.verified[1].Store(false)
	id := makeID("later", "")
	if err := s.db.Update(func(tx *bolt.Tx) error {
		v := bytes.Clone(tx.Bucket(bucketChunks).Get(chunkKey(id, 1)))
		v[7] ^= 1
		return tx.Bucket(bucketChunks).Put(chunkKey(id, 1), v)
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.ReadAt(make([]byte, 10), 0); err != nil {
		t.Errorf("ReadAt of the sound chunk = %v", err)
	}
	if _, err := b.ReadAt(make([]byte, 10), ChunkSize); !errors.Is(err, ErrCorrupt) {
		t.Errorf("ReadAt of the chunk damaged after Open = %v, want ErrCorrupt", err)
	}
	if _, err := s.Get("later", ""); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after = %v, want ErrNotFound (dropped)", err)
	}
}

// TestPinnedBodySurvives: a pinned Body (a response being sent from it)
// reads whole after its object is replaced or purged; its chunks are
// retired and dropped at the last Unpin, or on the next Open after a kill.
func TestPinnedBodySurvives(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(s *Store) error
	}{
		{"replaced", func(s *Store) error { return s.Put(&Record{Key: "k", Status: 200, Body: body(3*ChunkSize, 2)}) }},
		{"purged", func(s *Store) error { _, err := s.DeleteKey("k"); return err }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "cache.db")
			s := openT(t, path, Options{})
			want := body(2*ChunkSize+100, 1)
			if err := s.Put(&Record{Key: "k", Status: 200, Body: want}); err != nil {
				t.Fatal(err)
			}
			_, b, err := s.Open("k", "", 0)
			if err != nil {
				t.Fatal(err)
			}
			b.Pin()
			b.Pin() // two responses
			first := make([]byte, 10)
			if _, err := b.ReadAt(first, 0); err != nil {
				t.Fatal(err)
			}
			if err := tc.change(s); err != nil {
				t.Fatal(err)
			}
			if err := b.Check(); !errors.Is(err, ErrReplaced) {
				t.Errorf("Check of a retired body = %v, want ErrReplaced (no new response may start)", err)
			}
			got, err := io.ReadAll(io.NewSectionReader(b, 0, b.Size()))
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("pinned body after the change: %d bytes, %v", len(got), err)
			}
			b.Unpin()
			if n := count(t, s, bucketRetired); n != 3 {
				t.Errorf("retired chunks with one pin left = %d, want 3", n)
			}
			b.Unpin()
			if n := count(t, s, bucketRetired); n != 0 {
				t.Errorf("retired chunks after the last Unpin = %d, want 0", n)
			}
			if _, err := b.ReadAt(first, 0); !errors.Is(err, ErrReplaced) {
				t.Errorf("ReadAt after the last Unpin = %v, want ErrReplaced", err)
			}

			// Retired chunks left by a killed process go on Open.
			_, b2, err := s.Open("k", "", 0)
			if tc.name == "purged" {
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			b2.Pin()
			if err := tc.change(s); err != nil {
				t.Fatal(err)
			}
			if n := count(t, s, bucketRetired); n != 3 {
				t.Fatalf("retired chunks = %d, want 3", n)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = openT(t, path, Options{})
			if n := count(t, s, bucketRetired); n != 0 {
				t.Errorf("retired chunks after a reopen = %d, want 0", n)
			}
		})
	}
}

// A large object replaced again and again while overlapping slow clients
// send it (a short-lived popular object): each body's retired chunks go
// when its own last reader ends. Pins counted per object kept every
// generation in retired/ for as long as the readers overlapped — disk
// that storage.disk does not count, growing without bound.
func TestRetiredBoundedUnderOverlappingPins(t *testing.T) {
	s := openT(t, filepath.Join(t.TempDir(), "cache.db"), Options{})
	const size = 2*ChunkSize + 100 // 3 chunks
	var prev *Body
	var prevWant []byte
	for gen := 1; gen <= 6; gen++ {
		want := body(size, uint64(gen))
		if err := s.Put(&Record{Key: "k", Status: 200, Body: want}); err != nil {
			t.Fatal(err)
		}
		// The previous generation was retired (its reader still pins it).
		_, b, err := s.Open("k", "", 0)
		if err != nil {
			t.Fatal(err)
		}
		b.Pin() // the next slow client starts before the previous ends
		if prev != nil {
			got, err := io.ReadAll(io.NewSectionReader(prev, 0, prev.Size()))
			if err != nil || !bytes.Equal(got, prevWant) {
				t.Fatalf("gen %d: the pinned previous body: %d bytes, %v", gen, len(got), err)
			}
			prev.Unpin()
		}
		if n := count(t, s, bucketRetired); n != 0 {
			t.Fatalf("gen %d: %d retired chunks kept once their readers ended, want 0", gen, n)
		}
		prev, prevWant = b, want
	}
	if err := s.Put(&Record{Key: "k", Status: 200, Body: body(size, 99)}); err != nil {
		t.Fatal(err)
	}
	if n := count(t, s, bucketRetired); n != 3 {
		t.Errorf("retired chunks of the one body still read = %d, want 3", n)
	}
	prev.Unpin()
	if n := count(t, s, bucketRetired); n != 0 {
		t.Errorf("retired chunks after the last Unpin = %d, want 0", n)
	}
}

// The last Unpin of a body comes while the write that retires its chunks
// has not committed yet: the chunks still go (once it commits), not at the
// next Open.
func TestUnpinDuringRetiringWrite(t *testing.T) {
	s := openT(t, filepath.Join(t.TempDir(), "cache.db"), Options{})
	if err := s.Put(&Record{Key: "k", Status: 200, Body: body(2*ChunkSize+100, 1)}); err != nil {
		t.Fatal(err)
	}
	_, b, err := s.Open("k", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	b.Pin()
	inTx, release := make(chan struct{}), make(chan struct{})
	testHookRetiring = func() { close(inTx); <-release }
	defer func() { testHookRetiring = func() {} }()
	put := make(chan error)
	go func() { put <- s.Put(&Record{Key: "k", Status: 200, Body: body(3*ChunkSize, 2)}) }()
	<-inTx // the replacing write has decided to retire the pinned body
	unpinned := make(chan struct{})
	go func() { b.Unpin(); close(unpinned) }()
	time.Sleep(100 * time.Millisecond) // let the Unpin look before the commit
	close(release)
	if err := <-put; err != nil {
		t.Fatal(err)
	}
	<-unpinned
	if n := count(t, s, bucketRetired); n != 0 {
		t.Errorf("%d retired chunks left after the last Unpin (until the next Open)", n)
	}
}
