package store

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// fill writes n small objects into the closed store file at path in large
// transactions (what Put writes, without a commit per object).
func fill(tb testing.TB, path string, n int) {
	tb.Helper()
	s, err := Open(path, Options{NoSync: true})
	if err != nil {
		tb.Fatal(err)
	}
	const perTx = 10000
	for lo := 0; lo < n; lo += perTx {
		type obj struct {
			id  objectID
			rec *Record
		}
		var objs []obj
		for i := lo; i < min(lo+perTx, n); i++ {
			r := &Record{
				Key: fmt.Sprintf("bench.example/obj/%d", i), Status: 200,
				Header:  http.Header{"Content-Type": {"text/plain"}, "Etag": {fmt.Sprintf(`"%d"`, i)}},
				Body:    []byte(fmt.Sprintf("body of object %d", i)),
				Created: t0.Add(time.Duration(i) * time.Millisecond), Expires: t0.Add(time.Hour),
				Tags: []string{fmt.Sprintf("t%d", i%100)},
			}
			objs = append(objs, obj{makeID(r.Key, r.Variant), r})
		}
		// In key order, bbolt appends instead of splitting pages all over
		// the tree: the fill takes seconds, not a minute, under -race.
		slices.SortFunc(objs, func(a, b obj) int { return bytes.Compare(a.id[:], b.id[:]) })
		err := s.db.Update(func(tx *bolt.Tx) error {
			b := bucketsOf(tx)
			for _, o := range objs {
				if err := b.objects.Put(o.id[:], encodeHeader(nil, o.rec)); err != nil {
					return err
				}
				if err := b.chunks.Put(chunkKey(o.id, 0), o.rec.Body); err != nil {
					return err
				}
			}
			var tags [][]byte
			for _, o := range objs {
				tags = append(tags, tagKey(o.rec.Tags[0], o.id))
			}
			slices.SortFunc(tags, bytes.Compare)
			for _, k := range tags {
				if err := b.tags.Put(k, nil); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			tb.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		tb.Fatal(err)
	}
}

// TestOpenLarge: Open of a file with 100 000 objects is ready to serve at
// once; the index follows in the background.
func TestOpenLarge(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skips writing 100 000 objects")
	}
	const n = 100_000
	path := filepath.Join(t.TempDir(), "cache.db")
	fill(t, path, n)

	start := time.Now()
	s, err := Open(path, Options{NoSync: true, MaxBytes: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	opened := time.Since(start)
	got, err := s.Get("bench.example/obj/77777", "")
	firstGet := time.Since(start)
	if err != nil || string(got.Body) != "body of object 77777" {
		t.Fatalf("first Get = %v, %v", got, err)
	}
	waitReady(t, s)
	ready := time.Since(start)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	t.Logf("%d objects: Open %v, Open+first Get %v, index ready after %v; file %d MiB, Stats.Bytes %d MiB, Go heap %d MiB",
		n, opened, firstGet, ready, fi.Size()>>20, s.Stats().Bytes>>20, ms.HeapAlloc>>20)
	if firstGet > 5*time.Second {
		t.Errorf("Open+first Get took %v, want well under a second (5s sanity bound)", firstGet)
	}
	if st := s.Stats(); st.Objects != n || st.Evictions != 0 {
		t.Errorf("Stats = %+v, want %d objects, no evictions", st, n)
	}
}
