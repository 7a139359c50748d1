package cache

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgehost/edgehost/host/store"
)

func newTestCache(t *testing.T, mem int64) (*Cache, *store.Store) {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "cache.db"), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	c := New(Options{MemoryBytes: mem, Store: st, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := c.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); st.Close() })
	return c, st
}

func object(key string, body string, h http.Header, ttl time.Duration) *Object {
	now := time.Now()
	if h == nil {
		h = http.Header{}
	}
	o := &Object{Key: key, Status: 200, Header: h, Body: []byte(body), Created: now,
		Expires: now.Add(ttl), StaleUntil: now.Add(ttl), KeepUntil: now.Add(ttl), ReqURL: "/" + key, ReqHost: "h"}
	o.Finish()
	return o
}

func TestInsertLookupPurge(t *testing.T) {
	c, _ := newTestCache(t, 1<<20)
	now := time.Now()
	c.Insert(object("h/a", "A", nil, time.Minute))
	if o := c.Lookup("h/a", nil, now); o == nil || string(o.Body) != "A" {
		t.Fatal("inserted object not found")
	}
	if o := c.LookupFast([]byte("h/a"), now); o == nil {
		t.Fatal("LookupFast missed a plain object")
	}
	if n := c.Purge("h/a"); n != 1 {
		t.Fatalf("Purge = %d, want 1", n)
	}
	if c.Lookup("h/a", nil, now) != nil {
		t.Fatal("purged object still found (memory or disk)")
	}
}

func TestVariants(t *testing.T) {
	c, _ := newTestCache(t, 1<<20)
	now := time.Now()
	mk := func(lang, body string) *Object {
		o := object("h/v", body, http.Header{"Vary": {"Accept-Language"}}, time.Minute)
		o.Variant = varyKey(t, o, http.Header{"Accept-Language": {lang}})
		return o
	}
	c.Insert(mk("en", "hello"))
	c.Insert(mk("fr", "bonjour"))
	for lang, want := range map[string]string{"en": "hello", "fr": "bonjour"} {
		o := c.Lookup("h/v", http.Header{"Accept-Language": {lang}}, now)
		if o == nil || string(o.Body) != want {
			t.Fatalf("%s variant: %v", lang, o)
		}
	}
	if c.Lookup("h/v", http.Header{"Accept-Language": {"de"}}, now) != nil {
		t.Fatal("an absent variant matched")
	}
	// The key is known though: a miss on it is a vary-miss.
	if !c.Stored("h/v") || c.Stored("h/none") {
		t.Fatalf("Stored(h/v) = %v, Stored(h/none) = %v", c.Stored("h/v"), c.Stored("h/none"))
	}
	if c.LookupFast([]byte("h/v"), now) != nil {
		t.Fatal("LookupFast must leave Vary objects to Lookup")
	}
	if n := c.Purge("h/v"); n != 2 {
		t.Fatalf("Purge removed %d variants, want 2", n)
	}
}

func varyKey(t *testing.T, o *Object, req http.Header) string {
	t.Helper()
	for _, v := range []string{"accept-language:" + req.Get("Accept-Language")} {
		o.Variant = v
	}
	// Use the cache's own matching to derive the key it expects.
	for _, cand := range []string{o.Variant} {
		o.Variant = cand
		if matchVariant(o, req) {
			return cand
		}
	}
	t.Fatalf("cannot derive the variant key")
	return ""
}

func TestDiskTierAndTombstones(t *testing.T) {
	c, st := newTestCache(t, 1<<20)
	c.Insert(object("h/d", "disk", nil, time.Minute))
	c.Flush()
	// Drop it from memory only: the next lookup reads the store.
	o := c.Lookup("h/d", nil, time.Now())
	c.removeMemory(o)
	if o := c.Lookup("h/d", nil, time.Now()); o == nil || string(o.Body) != "disk" {
		t.Fatal("object not read back from disk")
	}
	if _, err := st.Get("h/d", ""); err != nil {
		t.Fatalf("store: %v", err)
	}
	c.removeMemory(c.Lookup("h/d", nil, time.Now()))
	if !c.Stored("h/d") {
		t.Fatal("Stored does not see an object on disk only")
	}
	c.Purge("h/d")
	if c.Stored("h/d") {
		t.Fatal("Stored after a purge")
	}
	if _, err := st.Get("h/d", ""); err == nil {
		t.Fatal("purge left the object on disk")
	}
}

func TestBans(t *testing.T) {
	c, _ := newTestCache(t, 1<<20)
	old := object("h/img/1", "1", http.Header{"Content-Type": {"image/png"}}, time.Minute)
	old.ReqURL = "/img/1"
	c.Insert(old)
	keep := object("h/css/1", "2", nil, time.Minute)
	keep.ReqURL = "/css/1"
	c.Insert(keep)
	c.Flush()
	if err := c.Ban(`req.url ~ "^/img/" && obj.http.content-type == "image/png"`); err != nil {
		t.Fatal(err)
	}
	// A banned object does not count as stored, in memory or on disk.
	if c.Stored("h/img/1") || !c.Stored("h/css/1") {
		t.Fatalf("Stored after the ban: img %v, css %v", c.Stored("h/img/1"), c.Stored("h/css/1"))
	}
	if c.Lookup("h/img/1", nil, time.Now()) != nil {
		t.Fatal("banned object served")
	}
	if c.Lookup("h/css/1", nil, time.Now()) == nil {
		t.Fatal("unmatched object dropped")
	}
	// An object stored after the ban is not affected by it.
	fresh := object("h/img/1", "new", http.Header{"Content-Type": {"image/png"}}, time.Minute)
	fresh.ReqURL = "/img/1"
	fresh.MarkBans(c.BanMark())
	c.Insert(fresh)
	if o := c.Lookup("h/img/1", nil, time.Now()); o == nil || string(o.Body) != "new" {
		t.Fatal("object stored after the ban was banned")
	}
	if err := c.Ban(`req.url ~~ "x"`); err == nil {
		t.Fatal("invalid ban accepted")
	}
}

func TestPruneBans(t *testing.T) {
	c, st := newTestCache(t, 1<<20)
	c.Flush()
	time.Sleep(50 * time.Millisecond) // the lurker's startup scan
	c.Insert(object("h/p", "x", nil, 100*time.Millisecond))
	if err := c.Ban(`req.url ~ "^/nothing"`); err != nil {
		t.Fatal(err)
	}
	if n := c.pruneBans(time.Now()); n != 0 {
		t.Fatalf("pruned %d bans while an older object lives", n)
	}
	if n := c.pruneBans(time.Now().Add(time.Second)); n != 1 {
		t.Fatalf("pruned %d bans once every older object expired, want 1", n)
	}
	if bans, _ := st.Bans(); len(bans) != 0 {
		t.Fatalf("%d persisted bans left after pruning", len(bans))
	}
}

func TestMemoryEvictionKeepsDisk(t *testing.T) {
	c, _ := newTestCache(t, 64<<10)
	for i := 0; i < 32; i++ {
		c.Insert(object("h/e/"+string(rune('a'+i)), string(make([]byte, 8<<10)), nil, time.Minute))
	}
	if _, bytes := c.Stats(); bytes > 64<<10 {
		t.Fatalf("memory tier %d bytes over its 64 KiB budget", bytes)
	}
	c.Flush()
	for i := 0; i < 32; i++ {
		if c.Lookup("h/e/"+string(rune('a'+i)), nil, time.Now()) == nil {
			t.Fatalf("object %d lost: eviction must keep the disk copy", i)
		}
	}
}

func TestStream(t *testing.T) {
	s := NewStream()
	done := make(chan []byte)
	go func() {
		var got []byte
		for off := 0; ; {
			p, end, err := s.Next(t.Context(), off)
			got = append(got, p...)
			off += len(p)
			if end {
				if err != nil {
					t.Error(err)
				}
				done <- got
				return
			}
		}
	}()
	s.Write([]byte("hello "))
	s.Write([]byte("world"))
	s.Close(nil)
	if got := string(<-done); got != "hello world" {
		t.Fatalf("stream read %q", got)
	}
}

// TestWriteBehindKeepsEveryPut: a burst larger than one batch reaches the
// store whole (issue 13: the put that ended a 64-object batch was taken
// from the queue and dropped, so objects #65, #130 … of a burst were lost).
func TestWriteBehindKeepsEveryPut(t *testing.T) {
	c, st := newTestCache(t, 1<<30)
	const n = 1000
	for i := range n {
		c.Insert(object(fmt.Sprintf("h/burst/%d", i), "x", nil, time.Hour))
	}
	c.Flush()
	missing := 0
	for i := range n {
		if _, err := st.Get(fmt.Sprintf("h/burst/%d", i), ""); err != nil {
			missing++
		}
	}
	if missing != 0 {
		t.Fatalf("%d of %d objects never reached the store", missing, n)
	}
}

// TestArrivalTimeRoundTrip: an object read back from the store keeps its
// arrival time (bans and purges compare against it) and its age, although
// the store's Created is the freshness base (arrival minus initial age).
func TestArrivalTimeRoundTrip(t *testing.T) {
	o := object("h/age", "x", nil, time.Hour)
	o.Created = time.Now().Round(0) // wall clock only, as stored
	o.InitAge = 1500 * time.Millisecond
	got := fromRecord(o.record(), nil)
	if !got.Created.Equal(o.Created) {
		t.Errorf("arrival %v, want %v", got.Created, o.Created)
	}
	now := time.Now()
	if a, b := got.Age(now), o.Age(now); a != b {
		t.Errorf("age %v, want %v", a, b)
	}
	// Version 1 (no arrival time): the freshness base stands in for it.
	r := o.record()
	r.Extra = []byte{extraV1, 0, 0, 0}
	if got := fromRecord(r, nil); !got.Created.Equal(r.Created) || got.InitAge != 0 {
		t.Errorf("v1: created %v age %v", got.Created, got.InitAge)
	}
}

// batchStore records the body bytes of each PutAll; the first call waits
// for release, so that puts pile up in the queue behind it.
type batchStore struct {
	*store.Store
	release chan struct{}
	mu      sync.Mutex
	batches []int
}

func (b *batchStore) PutAll(rs ...*store.Record) error {
	<-b.release
	n := 0
	for _, r := range rs {
		n += len(r.Body)
	}
	b.mu.Lock()
	b.batches = append(b.batches, n)
	b.mu.Unlock()
	return b.Store.PutAll(rs...)
}

// TestWriteBehindBatchBound: one transaction holds at most batchBytes of
// bodies (bbolt keeps a transaction's pages on the heap until it commits),
// unless a single object is larger, and at most batchMax objects.
func TestWriteBehindBatchBound(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "cache.db"), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	bs := &batchStore{Store: st, release: make(chan struct{})}
	c := New(Options{Store: bs, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := c.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); st.Close() })
	body := strings.Repeat("b", 1<<20)
	for i := range 40 {
		c.Insert(object(fmt.Sprintf("h/big/%d", i), body, nil, time.Hour))
	}
	close(bs.release)
	c.Flush()
	bs.mu.Lock()
	defer bs.mu.Unlock()
	total := 0
	for _, n := range bs.batches {
		total += n
		if n > batchBytes {
			t.Errorf("a batch of %d body bytes, bound %d", n, batchBytes)
		}
	}
	if total != 40<<20 || len(bs.batches) < 40/(batchBytes>>20) {
		t.Errorf("batches %v: %d bytes in all, want %d", bs.batches, total, 40<<20)
	}
}

// countingStore counts Open calls, each slowed down like a large body read.
type countingStore struct {
	*store.Store
	gets atomic.Int64
}

func (s *countingStore) Open(key, variant string, inline int64) (*store.Record, *store.Body, error) {
	s.gets.Add(1)
	time.Sleep(20 * time.Millisecond)
	return s.Store.Open(key, variant, inline)
}

// TestConcurrentDiskLoadsShared (issue 13, item 3): concurrent lookups of
// an object that is on disk only read it from the store once and share the
// copy (100 concurrent hits on a disk-resident 50 MiB object used to make
// 100 copies).
func TestConcurrentDiskLoadsShared(t *testing.T) {
	c1, st := newTestCache(t, 1<<20)
	c1.Insert(object("h/disk", strings.Repeat("d", 100<<10), nil, time.Hour))
	c1.Flush()
	cs := &countingStore{Store: st}
	c := New(Options{MemoryBytes: 1 << 20, Store: cs, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := c.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var wg sync.WaitGroup
	objs := make([]*Object, 20)
	for i := range objs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			objs[i] = c.Lookup("h/disk", nil, time.Now())
		}()
	}
	wg.Wait()
	for i, o := range objs {
		if o == nil || o != objs[0] {
			t.Fatalf("lookup %d: %p, want the shared object %p", i, o, objs[0])
		}
	}
	if n := cs.gets.Load(); n != 1 {
		t.Errorf("%d reads from the store for 20 concurrent lookups, want 1", n)
	}
}

// wantStored looks key up and fails unless its body, want, is left in the
// store and the memory tier holds little.
func wantStored(t *testing.T, c *Cache, key, want string) *Object {
	t.Helper()
	o := c.Lookup(key, nil, time.Now())
	if o == nil || o.Stored == nil || o.Body != nil || o.BodyLen() != int64(len(want)) {
		t.Fatalf("Lookup(%s) = %+v; want the body left in the store", key, o)
	}
	if _, bytes := c.Stats(); bytes > 64<<10 {
		t.Errorf("memory tier holds %d bytes for a stored body", bytes)
	}
	got, err := io.ReadAll(io.NewSectionReader(o.BodyReader(), 0, o.BodyLen()))
	if err != nil || string(got) != want {
		t.Fatalf("body: %d bytes, %v", len(got), err)
	}
	return o
}

// TestLargeDiskBodyStaysInStore (issue 13, item 3): a large object read
// from the store keeps its body there (read chunk by chunk on delivery);
// the memory tier accounts only its header. A refresh of it (a 304) is
// stored again without its body passing through memory.
func TestLargeDiskBodyStaysInStore(t *testing.T) {
	c1, st := newTestCache(t, 1<<20)
	want := strings.Repeat("0123456789abcdef", 3<<16) // 3 MiB
	c1.Insert(object("h/big", want, nil, time.Hour))
	c1.Flush()
	c := New(Options{MemoryBytes: 1 << 20, Store: st, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := c.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	o := wantStored(t, c, "h/big", want)
	fresh := &Object{Key: o.Key, Status: 200, Header: o.Header, Stored: o.Stored, Created: time.Now(),
		Expires: time.Now().Add(2 * time.Hour), StaleUntil: time.Now().Add(2 * time.Hour), KeepUntil: time.Now().Add(2 * time.Hour)}
	fresh.Finish()
	c.Insert(fresh)
	c.Flush()
	r, err := st.Get("h/big", "")
	if err != nil || string(r.Body) != want || r.Expires.Sub(o.Expires) < 30*time.Minute {
		t.Fatalf("stored after the refresh: expires %v (was %v), %d body bytes, %v", r.Expires, o.Expires, len(r.Body), err)
	}
	if err := o.Stored.Check(); err != nil {
		t.Errorf("the body read before the refresh: %v", err)
	}
}

// TestLargeBodyDemotedAfterWrite: once the writer has stored an object
// whose body is larger than inline, the memory tier keeps its header only
// and later lookups read the body from the store; a small one stays whole.
func TestLargeBodyDemotedAfterWrite(t *testing.T) {
	c, _ := newTestCache(t, 16<<20)
	big := strings.Repeat("x", 3<<20)
	c.Insert(object("h/big", big, nil, time.Hour))
	c.Insert(object("h/small", "tiny", nil, time.Hour))
	c.Flush()
	wantStored(t, c, "h/big", big)
	if s := c.Lookup("h/small", nil, time.Now()); s == nil || s.Stored != nil || string(s.Body) != "tiny" {
		t.Errorf("small object: %+v", s)
	}
}
