package store

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// logBuffer collects log lines for assertions.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func openT(t testing.TB, path string, opts Options) *Store {
	t.Helper()
	s, err := Open(path, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func waitReady(t testing.TB, s *Store) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !s.Stats().IndexReady {
		if time.Now().After(deadline) {
			t.Fatal("index not ready after 10s")
		}
		time.Sleep(time.Millisecond)
	}
}

func body(n int, seed uint64) []byte {
	b := make([]byte, n)
	var key [32]byte
	key[0] = byte(seed)
	_, _ = rand.NewChaCha8(key).Read(b)
	return b
}

var t0 = time.Date(2026, 11, 22, 9, 0, 0, 123, time.UTC)

func TestPutGetRoundTrip(t *testing.T) {
	s := openT(t, filepath.Join(t.TempDir(), "cache.db"), Options{NoSync: true})
	tests := []struct {
		name string
		rec  Record
	}{
		{"empty", Record{Key: "a.example/empty", Status: 204}},
		{"small", Record{
			Key: "a.example/img/cat.png?x=1", Status: 200,
			Header:  http.Header{"Content-Type": {"image/png"}, "Set-Cookie": {"a=1", "b=2"}, "X-Empty": {""}},
			Body:    body(1024, 1),
			Created: t0, Expires: t0.Add(2 * time.Minute), StaleUntil: t0.Add(time.Hour), KeepUntil: t0.Add(100 * 365 * 24 * time.Hour),
			Tags:  []string{"cats", "img"},
			Extra: []byte{0, 1, 2, 255},
		}},
		{"variant", Record{Key: "a.example/v", Variant: "gzip", Status: 200, Body: []byte("zipped")}},
		{"one chunk exactly", Record{Key: "a.example/1m", Status: 200, Body: body(ChunkSize, 2)}},
		{"one chunk and a byte", Record{Key: "a.example/1m1", Status: 200, Body: body(ChunkSize+1, 3)}},
		{"several chunks", Record{Key: "a.example/big", Status: 206, Body: body(5*ChunkSize/2, 4), Kind: KindSegmentMeta}},
		{"segment", Record{Key: "a.example/big#0", Status: 206, Body: []byte("seg"), Kind: KindSegment, Parent: ObjectID("a.example/big", "")}},
		{"utf8 and binary key", Record{Key: "ü.example/\x00\xff", Variant: "\x00", Status: 599}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := s.Put(&tc.rec); err != nil {
				t.Fatalf("Put: %v", err)
			}
			got, err := s.Get(tc.rec.Key, tc.rec.Variant)
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			want := tc.rec
			if len(want.Body) == 0 {
				want.Body = nil
			}
			if !recordsEqual(got, &want) {
				t.Errorf("Get = %+v\nwant %+v", summary(got), summary(&want))
			}
		})
	}
}

// TestFarTimes: times that unix nanoseconds cannot hold are clamped, so a
// KeepUntil of year 9999 still means "keep".
func TestFarTimes(t *testing.T) {
	s := openT(t, filepath.Join(t.TempDir(), "cache.db"), Options{})
	r := &Record{Key: "far", Status: 200, Created: time.Date(1000, 1, 1, 0, 0, 0, 0, time.UTC), KeepUntil: time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)}
	if err := s.Put(r); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get("far", "")
	if err != nil {
		t.Fatalf("Get = %v", err)
	}
	if got.KeepUntil.Year() != 2262 || got.Created.Year() != 1677 {
		t.Errorf("KeepUntil %v, Created %v; want clamped to 2262 and 1677", got.KeepUntil, got.Created)
	}
}

func recordsEqual(a, b *Record) bool {
	return a.Key == b.Key && a.Variant == b.Variant && a.Status == b.Status &&
		headersEqual(a.Header, b.Header) && bytes.Equal(a.Body, b.Body) &&
		a.Created.Equal(b.Created) && a.Expires.Equal(b.Expires) &&
		a.StaleUntil.Equal(b.StaleUntil) && a.KeepUntil.Equal(b.KeepUntil) &&
		slices.Equal(a.Tags, b.Tags) && a.Kind == b.Kind && a.Parent == b.Parent &&
		bytes.Equal(a.Extra, b.Extra)
}

func headersEqual(a, b http.Header) bool {
	if len(a) == 0 && len(b) == 0 {
		return true
	}
	return reflect.DeepEqual(a, b)
}

func summary(r *Record) string {
	return fmt.Sprintf("{Key:%q Variant:%q Status:%d Header:%v Body:%d bytes Created:%v Expires:%v Stale:%v Keep:%v Tags:%q Kind:%d Parent:%q Extra:%x}",
		r.Key, r.Variant, r.Status, r.Header, len(r.Body), r.Created, r.Expires, r.StaleUntil, r.KeepUntil, r.Tags, r.Kind, r.Parent, r.Extra)
}

func TestPutRejects(t *testing.T) {
	s := openT(t, filepath.Join(t.TempDir(), "cache.db"), Options{MaxBytes: 4096})
	tests := []struct {
		name string
		rec  Record
		want error // nil: any error
	}{
		{"too large for the budget", Record{Key: "k", Body: make([]byte, 8192)}, ErrTooLarge},
		{"bad parent", Record{Key: "k", Parent: "nothex"}, nil},
		{"empty tag", Record{Key: "k", Tags: []string{""}}, nil},
		{"huge tag", Record{Key: "k", Tags: []string{strings.Repeat("t", maxTagLen+1)}}, nil},
		{"status", Record{Key: "k", Status: 70000}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := s.Put(&tc.rec)
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Fatalf("Put = %v, want error %v", err, tc.want)
			}
			if _, err := s.Get("k", ""); !errors.Is(err, ErrNotFound) {
				t.Errorf("Get after a rejected Put = %v, want ErrNotFound", err)
			}
		})
	}
}

func TestPutAll(t *testing.T) {
	s := openT(t, filepath.Join(t.TempDir(), "cache.db"), Options{})
	good := func(k string) *Record { return &Record{Key: k, Status: 200, Body: []byte(k)} }
	// One bad record: nothing is written.
	if err := s.PutAll(good("a"), &Record{Key: "bad", Parent: "x"}, good("b")); err == nil {
		t.Fatal("PutAll with a bad record succeeded")
	}
	if n := count(t, s, bucketObjects); n != 0 {
		t.Fatalf("%d objects written by a failed PutAll", n)
	}
	if err := s.PutAll(good("a"), good("b"), good("c")); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"a", "b", "c"} {
		if r, err := s.Get(k, ""); err != nil || string(r.Body) != k {
			t.Errorf("Get(%s) = %v, %v", k, r, err)
		}
	}
	if st := s.Stats(); st.Objects != 3 {
		t.Errorf("Stats.Objects = %d, want 3", st.Objects)
	}
	if err := s.PutAll(); err != nil {
		t.Errorf("empty PutAll = %v", err)
	}
}

// count returns the number of keys in a top-level bucket.
func count(t *testing.T, s *Store, bucket []byte) int {
	t.Helper()
	n := 0
	if err := s.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucket); b != nil { // retired/ exists only while needed
			n = b.Stats().KeyN
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestReplace(t *testing.T) {
	s := openT(t, filepath.Join(t.TempDir(), "cache.db"), Options{})
	if err := s.Put(&Record{Key: "k", Status: 200, Body: body(3*ChunkSize, 1), Tags: []string{"old"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(&Record{Key: "k", Status: 200, Body: []byte("new"), Tags: []string{"new"}}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get("k", "")
	if err != nil || string(got.Body) != "new" {
		t.Fatalf("Get = %v, %v; want body \"new\"", got, err)
	}
	if n := count(t, s, bucketChunks); n != 1 {
		t.Errorf("chunks after replace = %d, want 1", n)
	}
	if keys, err := s.PurgeTag("old"); err != nil || len(keys) != 0 {
		t.Errorf("PurgeTag(old) = %q, %v; want nothing (the tag went with the old version)", keys, err)
	}
	if keys, err := s.PurgeTag("new"); err != nil || !slices.Equal(keys, []string{"k"}) {
		t.Errorf("PurgeTag(new) = %q, %v; want [k]", keys, err)
	}
	if st := s.Stats(); st.Objects != 0 || st.Bytes != 0 {
		t.Errorf("Stats after purge = %+v, want no objects, no bytes", st)
	}
}

func TestVariantsDeleteKey(t *testing.T) {
	s := openT(t, filepath.Join(t.TempDir(), "cache.db"), Options{})
	for _, v := range []string{"", "gzip", "br"} {
		if err := s.Put(&Record{Key: "k", Variant: v, Status: 200, Body: []byte(v)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Put(&Record{Key: "other", Variant: "gzip", Status: 200}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Variants("k")
	slices.Sort(got)
	if want := []string{"", "br", "gzip"}; err != nil || !slices.Equal(got, want) {
		t.Fatalf("Variants = %q, %v; want %q", got, err, want)
	}
	if got, err := s.Variants("nothing"); err != nil || len(got) != 0 {
		t.Errorf("Variants(nothing) = %q, %v", got, err)
	}
	if err := s.Delete("k", "br"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if err := s.Delete("k", "br"); !errors.Is(err, ErrNotFound) {
		t.Errorf("second Delete = %v, want ErrNotFound", err)
	}
	if n, err := s.DeleteKey("k"); err != nil || n != 2 {
		t.Errorf("DeleteKey = %d, %v; want 2", n, err)
	}
	if _, err := s.Get("k", "gzip"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after DeleteKey = %v, want ErrNotFound", err)
	}
	if _, err := s.Get("other", "gzip"); err != nil {
		t.Errorf("Get(other) after DeleteKey(k) = %v", err)
	}
}

// putSliced stores a segment meta object with n segments.
func putSliced(t *testing.T, s *Store, key string, n int, tags ...string) {
	t.Helper()
	meta := &Record{Key: key, Status: 200, Kind: KindSegmentMeta, Tags: tags}
	if err := s.Put(meta); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		seg := &Record{Key: fmt.Sprintf("%s#%d", key, i), Status: 206, Kind: KindSegment, Parent: meta.ID(), Body: []byte{byte(i)}}
		if err := s.Put(seg); err != nil {
			t.Fatal(err)
		}
	}
}

func TestChildren(t *testing.T) {
	tests := []struct {
		name     string
		del      func(s *Store) error
		wantKeys []string // PurgeTag only
	}{
		{"Delete", func(s *Store) error { return s.Delete("v", "") }, nil},
		{"DeleteKey", func(s *Store) error { _, err := s.DeleteKey("v"); return err }, nil},
		{"PurgeTag", func(s *Store) error {
			keys, err := s.PurgeTag("video")
			if len(keys) > 1 {
				slices.Sort(keys[1:]) // children come in id order
			}
			if want := []string{"v", "v#0", "v#1", "v#2"}; !slices.Equal(keys, want) {
				return fmt.Errorf("PurgeTag = %q, want %q", keys, want)
			}
			return err
		}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := openT(t, filepath.Join(t.TempDir(), "cache.db"), Options{})
			putSliced(t, s, "v", 3, "video")
			putSliced(t, s, "w", 2, "other")
			if err := tc.del(s); err != nil {
				t.Fatal(err)
			}
			for _, k := range []string{"v", "v#0", "v#1", "v#2"} {
				if _, err := s.Get(k, ""); !errors.Is(err, ErrNotFound) {
					t.Errorf("Get(%s) = %v, want ErrNotFound", k, err)
				}
			}
			for _, k := range []string{"w", "w#0", "w#1"} {
				if _, err := s.Get(k, ""); err != nil {
					t.Errorf("Get(%s) = %v", k, err)
				}
			}
			if n := count(t, s, bucketChildren); n != 2 {
				t.Errorf("children entries = %d, want 2 (w's)", n)
			}
			if st := s.Stats(); st.Objects != 3 {
				t.Errorf("Stats.Objects = %d, want 3", st.Objects)
			}
		})
	}
}

func TestDeleteSegmentLeavesParent(t *testing.T) {
	s := openT(t, filepath.Join(t.TempDir(), "cache.db"), Options{})
	putSliced(t, s, "v", 2)
	if err := s.Delete("v#1", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get("v", ""); err != nil {
		t.Errorf("Get(v) = %v", err)
	}
	if n := count(t, s, bucketChildren); n != 1 {
		t.Errorf("children entries = %d, want 1", n)
	}
}

func TestScan(t *testing.T) {
	s := openT(t, filepath.Join(t.TempDir(), "cache.db"), Options{NoSync: true})
	const n = 300 // more than one scan batch
	for i := range n {
		if err := s.Put(&Record{Key: fmt.Sprintf("k%d", i), Status: 200, Body: []byte("body"), Tags: []string{"t"}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Put(&Record{Key: "gone", Status: 200, KeepUntil: time.Now().Add(-time.Second)}); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	err := s.Scan(func(h *Header) bool {
		if seen[h.Key] {
			t.Errorf("Scan yielded %s twice", h.Key)
		}
		seen[h.Key] = true
		if h.BodySize != 4 || h.Status != 200 || !slices.Equal(h.Tags, []string{"t"}) {
			t.Errorf("Scan header %+v", h)
		}
		// Deleting while scanning is allowed.
		if err := s.Delete(h.Key, h.Variant); err != nil {
			t.Errorf("Delete in Scan: %v", err)
		}
		return true
	})
	if err != nil || len(seen) != n {
		t.Fatalf("Scan saw %d objects (err %v), want %d", len(seen), err, n)
	}
	if seen["gone"] {
		t.Error("Scan yielded an object past its KeepUntil")
	}
	if err := s.Put(&Record{Key: "again", Status: 200}); err != nil {
		t.Fatal(err)
	}
	calls := 0
	if err := s.Scan(func(*Header) bool { calls++; return false }); err != nil || calls != 1 {
		t.Errorf("Scan stopping at once: %d calls, %v", calls, err)
	}
}

func TestBans(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cache.db")
	s := openT(t, path, Options{})
	exprs := []string{`req.url ~ "^/img"`, `obj.http.x-tenant == "a"`, `req.url == "/"`}
	for i, e := range exprs {
		b, err := s.AddBan(e, t0.Add(time.Duration(i)*time.Minute))
		if err != nil || b.ID != uint64(i+1) || b.Expr != e {
			t.Fatalf("AddBan = %+v, %v", b, err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openT(t, path, Options{})
	if err := s.DeleteBansBefore(t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	got, err := s.Bans()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].ID != 2 || got[0].Expr != exprs[1] || !got[0].Created.Equal(t0.Add(time.Minute)) || got[1].ID != 3 {
		t.Errorf("Bans after reopen and DeleteBansBefore = %+v", got)
	}
	if b, err := s.AddBan("x", t0); err != nil || b.ID != 4 {
		t.Errorf("AddBan after reopen = %+v, %v; want id 4", b, err)
	}
}

func TestEviction(t *testing.T) {
	one := objectSize(len(encodeHeader(nil, &Record{Key: "k00", Status: 200, Body: make([]byte, 1000)})), 1000, 1)
	s := openT(t, filepath.Join(t.TempDir(), "cache.db"), Options{MaxBytes: 10 * one})
	waitReady(t, s)
	put := func(i int) {
		t.Helper()
		if err := s.Put(&Record{Key: fmt.Sprintf("k%02d", i), Status: 200, Body: make([]byte, 1000)}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 10 {
		put(i)
	}
	if st := s.Stats(); st.Objects != 10 || st.Evictions != 0 || st.Bytes != 10*one {
		t.Fatalf("Stats at the budget = %+v, want 10 objects of %d bytes, no eviction", st, one)
	}
	// k00 is used: k01 is now the least recently used.
	if _, err := s.Get("k00", ""); err != nil {
		t.Fatal(err)
	}
	put(10)
	put(11)
	if st := s.Stats(); st.Objects != 10 || st.Evictions != 2 || st.Bytes > 10*one {
		t.Errorf("Stats after 2 more = %+v, want 10 objects, 2 evictions", st)
	}
	for i, want := range map[int]error{0: nil, 1: ErrNotFound, 2: ErrNotFound, 3: nil, 11: nil} {
		if _, err := s.Get(fmt.Sprintf("k%02d", i), ""); !errors.Is(err, want) {
			t.Errorf("Get(k%02d) = %v, want %v", i, err, want)
		}
	}
	if n := count(t, s, bucketObjects); n != 10 {
		t.Errorf("objects in the file = %d, want 10", n)
	}
}

func TestEvictionAfterReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cache.db")
	s := openT(t, path, Options{})
	for i := range 20 {
		if err := s.Put(&Record{Key: fmt.Sprintf("k%02d", i), Status: 200, Body: make([]byte, 1000), Created: t0.Add(time.Duration(i) * time.Second)}); err != nil {
			t.Fatal(err)
		}
	}
	one := s.Stats().Bytes / 20
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// A smaller budget than what the file holds: once the index is built,
	// the oldest (by Created) go.
	s = openT(t, path, Options{MaxBytes: 5 * one})
	waitReady(t, s)
	st := s.Stats()
	if st.Objects != 5 || st.Evictions != 15 {
		t.Errorf("Stats = %+v, want 5 objects after 15 evictions", st)
	}
	for i := range 20 {
		_, err := s.Get(fmt.Sprintf("k%02d", i), "")
		if want := i >= 15; (err == nil) != want {
			t.Errorf("Get(k%02d) = %v, want found=%v", i, err, want)
		}
	}
}

func TestSweep(t *testing.T) {
	s := openT(t, filepath.Join(t.TempDir(), "cache.db"), Options{})
	waitReady(t, s)
	now := time.Now()
	recs := []Record{
		{Key: "past", Status: 200, KeepUntil: now.Add(-time.Second), Body: []byte("x")},
		{Key: "future", Status: 200, KeepUntil: now.Add(time.Hour)},
		{Key: "forever", Status: 200},
	}
	for i := range recs {
		if err := s.Put(&recs[i]); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Get("past", ""); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get(past) = %v, want ErrNotFound", err)
	}
	s.sweep(t.Context(), now)
	if st := s.Stats(); st.Expired != 1 || st.Objects != 2 {
		t.Errorf("Stats after sweep = %+v, want 1 expired, 2 objects", st)
	}
	if n := count(t, s, bucketObjects); n != 2 {
		t.Errorf("objects in the file = %d, want 2", n)
	}
	if n := count(t, s, bucketChunks); n != 0 {
		t.Errorf("chunks in the file = %d, want 0", n)
	}
}

func TestSweepLoop(t *testing.T) {
	s := openT(t, filepath.Join(t.TempDir(), "cache.db"), Options{SweepInterval: 10 * time.Millisecond})
	waitReady(t, s)
	if err := s.Put(&Record{Key: "soon", Status: 200, KeepUntil: time.Now().Add(20 * time.Millisecond)}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.Stats().Expired == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the sweep did not drop the object within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestPersistence(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cache.db")
	s := openT(t, path, Options{NoSync: true})
	rec := &Record{Key: "k", Status: 200, Header: http.Header{"Etag": {`"1"`}}, Body: body(ChunkSize+10, 9), Tags: []string{"t"}, Created: t0}
	if err := s.Put(rec); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	if _, err := s.Get("k", ""); !errors.Is(err, ErrClosed) {
		t.Errorf("Get after Close = %v, want ErrClosed", err)
	}
	s = openT(t, path, Options{NoSync: true})
	got, err := s.Get("k", "")
	if err != nil || !recordsEqual(got, rec) {
		t.Fatalf("Get after reopen = %v, %v", got, err)
	}
	waitReady(t, s)
	if st := s.Stats(); st.Objects != 1 || st.Bytes == 0 {
		t.Errorf("Stats after reopen = %+v", st)
	}
}

// TestDiskBudget: with small objects the file costs far more than the
// objects' bytes; MaxBytes still bounds the pages in use.
func TestDiskBudget(t *testing.T) {
	const budget = 1 << 20
	s := openT(t, filepath.Join(t.TempDir(), "cache.db"), Options{NoSync: true, MaxBytes: budget})
	waitReady(t, s)
	put := func(i int) {
		t.Helper()
		r := &Record{Key: fmt.Sprintf("small.example/%d", i), Status: 200, Body: []byte("tiny"),
			Header: http.Header{"Content-Type": {"text/plain"}}, Tags: []string{fmt.Sprintf("t%d", i%50)}}
		if err := s.Put(r); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 4000 {
		put(i)
	}
	time.Sleep(calibrateEvery + 100*time.Millisecond)
	put(-1)
	st := s.Stats()
	ratio := math.Float64frombits(s.ratio.Load())
	t.Logf("%+v, ratio %.2f", st, ratio)
	if st.Evictions == 0 || ratio <= 1 {
		t.Errorf("no eviction or no calibration: %+v, ratio %.2f", st, ratio)
	}
	// A page or two of slack: the last commit's own pages.
	if st.DiskBytes > budget+64<<10 {
		t.Errorf("pages in use %d, over the budget %d", st.DiskBytes, budget)
	}
}
