package store

import (
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

func benchRecord(key string, size int) *Record {
	return &Record{
		Key: key, Status: 200,
		Header: http.Header{
			"Content-Type":  {"application/octet-stream"},
			"Etag":          {`"5f2b-1a"`},
			"Last-Modified": {"Sun, 22 Nov 2026 09:00:00 GMT"},
			"Cache-Control": {"public, max-age=120"},
		},
		Body:    body(size, 1),
		Created: t0, Expires: t0.Add(2 * time.Minute), StaleUntil: t0.Add(time.Hour), KeepUntil: t0.Add(48 * time.Hour),
		Tags: []string{"bench"},
	}
}

func benchPut(b *testing.B, size, keys int, noSync bool) {
	s := openT(b, filepath.Join(b.TempDir(), "cache.db"), Options{NoSync: noSync})
	recs := make([]*Record, keys)
	for i := range recs {
		recs[i] = benchRecord(fmt.Sprintf("bench.example/obj/%d", i), size)
	}
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if err := s.Put(recs[i%keys]); err != nil {
			b.Fatal(err)
		}
	}
}

// Puts replace objects among a fixed set of keys, as a cache under a
// steady working set does. NoSync is what edgehost's cache uses.
func BenchmarkPut1KiB(b *testing.B)     { benchPut(b, 1<<10, 1000, true) }
func BenchmarkPut1MiB(b *testing.B)     { benchPut(b, 1<<20, 32, true) }
func BenchmarkPut1KiBSync(b *testing.B) { benchPut(b, 1<<10, 1000, false) }

// BenchmarkPutAll1KiB: one writer storing 64 objects a transaction.
func BenchmarkPutAll1KiB(b *testing.B) {
	s := openT(b, filepath.Join(b.TempDir(), "cache.db"), Options{NoSync: true})
	const batch = 64
	recs := make([]*Record, 1024)
	for i := range recs {
		recs[i] = benchRecord(fmt.Sprintf("bench.example/obj/%d", i), 1<<10)
	}
	b.SetBytes(batch << 10)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		lo := (i * batch) % len(recs)
		if err := s.PutAll(recs[lo : lo+batch]...); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPutParallel1KiB: concurrent Puts share commits (db.Batch).
func BenchmarkPutParallel1KiB(b *testing.B) {
	s := openT(b, filepath.Join(b.TempDir(), "cache.db"), Options{NoSync: true})
	b.SetBytes(1 << 10)
	b.ReportAllocs()
	b.SetParallelism(4)
	var n atomicCounter
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.next()
			if err := s.Put(benchRecord(fmt.Sprintf("bench.example/obj/%d", i%1000), 1<<10)); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func benchGet(b *testing.B, size, keys int) {
	s := openT(b, filepath.Join(b.TempDir(), "cache.db"), Options{NoSync: true})
	names := make([]string, keys)
	for i := range names {
		names[i] = fmt.Sprintf("bench.example/obj/%d", i)
		if err := s.Put(benchRecord(names[i], size)); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		r, err := s.Get(names[i%keys], "")
		if err != nil || len(r.Body) != size {
			b.Fatal(err)
		}
	}
}

func BenchmarkGet1KiB(b *testing.B) { benchGet(b, 1<<10, 1000) }
func BenchmarkGet1MiB(b *testing.B) { benchGet(b, 1<<20, 32) }

// BenchmarkOpen100k: Open of a file with 100 000 objects plus the first
// Get (what a restart waits for), and, reported apart, how long the
// background index build takes.
func BenchmarkOpen100k(b *testing.B) {
	path := filepath.Join(b.TempDir(), "cache.db")
	fill(b, path, 100_000)
	var index time.Duration
	b.ReportAllocs()
	for b.Loop() {
		start := time.Now()
		s, err := Open(path, Options{NoSync: true})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.Get("bench.example/obj/4242", ""); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		waitReady(b, s)
		index += time.Since(start)
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(index.Milliseconds())/float64(b.N), "ms-to-index-ready/op")
}

type atomicCounter struct{ n atomic.Int64 }

func (c *atomicCounter) next() int { return int(c.n.Add(1)) }

// Reading a 16 MiB body: whole (Get, the copy a disk hit used to make)
// against through a Body in 128 KiB pieces (what a disk hit does now):
// bytes allocated per read of the whole body.
func benchLarge(b *testing.B, read func(s *Store, buf []byte) error) {
	s := openT(b, filepath.Join(b.TempDir(), "cache.db"), Options{NoSync: true})
	r := benchRecord("bench.example/large", 16<<20)
	r.KeepUntil = time.Time{} // kept
	if err := s.Put(r); err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 128<<10)
	b.SetBytes(16 << 20)
	b.ReportAllocs()
	for b.Loop() {
		if err := read(s, buf); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGet16MiB(b *testing.B) {
	benchLarge(b, func(s *Store, _ []byte) error {
		_, err := s.Get("bench.example/large", "")
		return err
	})
}

func BenchmarkBodyRead16MiB(b *testing.B) {
	benchLarge(b, func(s *Store, buf []byte) error {
		_, body, err := s.Open("bench.example/large", "", 0)
		if err != nil {
			return err
		}
		for off := int64(0); off < body.Size(); off += int64(len(buf)) {
			if _, err := body.ReadAt(buf, off); err != nil && err != io.EOF {
				return err
			}
		}
		return nil
	})
}
