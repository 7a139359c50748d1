package slicing

import (
	"net/http"
	"testing"
	"time"

	"github.com/edgehost/edgehost/host/cache"
	"github.com/edgehost/edgehost/host/server"
	"github.com/edgehost/edgehost/host/store"
)

func testMeta(key, etag string, created time.Time) *cache.Object {
	o := &cache.Object{Key: key, Status: 200, Header: http.Header{"Etag": {etag}}, Created: created,
		Expires: created.Add(time.Hour), StaleUntil: created.Add(time.Hour), KeepUntil: created.Add(time.Hour),
		Kind: store.KindSegmentMeta}
	o.Extra = encodeSliceMeta(sliceMeta{size: 4096, segSize: 1024, gen: generation(etag, "", "", 4096)})
	o.Finish()
	return o
}

// Issue 13, item 11: a meta object from an older origin answer never
// replaces a newer one, nor is one of a version the origin was seen to
// leave afterwards stored; a newer answer replaces an older one.
func TestInsertMetaKeepsNewer(t *testing.T) {
	c := cache.New(cache.Options{})
	sl := New(Options{Cache: c})
	req, _ := http.NewRequest("GET", "http://x/big", nil)
	fx := func(stale *cache.Object) *server.Fetch {
		return &server.Fetch{Tx: &server.Txn{}, Req: req, Stale: stale, RespTime: time.Now()}
	}
	t0 := time.Now()
	older, newer := testMeta("k", `"v2"`, t0), testMeta("k", `"v1"`, t0.Add(time.Second))

	if got := sl.insertMeta(newer, fx(nil)); got != newer {
		t.Fatal("the first meta object was not kept")
	}
	if got := sl.insertMeta(older, fx(nil)); got != newer {
		t.Fatal("an older answer's meta object was returned over the newer stored one")
	}
	if got := c.Lookup("k", nil, time.Now()); got != newer {
		t.Fatal("an older answer's meta object replaced the newer one")
	}
	// The fetch revalidated the stored one: its answer replaces it.
	if got := sl.insertMeta(older, fx(newer)); got != older || c.Lookup("k", nil, time.Now()) != older {
		t.Fatal("a revalidation's answer did not replace the object it revalidated")
	}

	// v2 found outdated (a segment failed its If-Match) now: a v2 meta
	// object from an earlier answer is not stored, a later one is.
	sl.outdate(older)
	if c.Lookup("k", nil, time.Now()) != nil {
		t.Fatal("outdate left the meta object stored")
	}
	early := testMeta("k", `"v2"`, time.Now().Add(-time.Millisecond))
	if got := sl.insertMeta(early, fx(nil)); got != early || c.Lookup("k", nil, time.Now()) != nil {
		t.Fatal("a meta object of an outdated version, from an earlier answer, was stored")
	}
	late := testMeta("k", `"v2"`, time.Now().Add(time.Millisecond))
	if sl.insertMeta(late, fx(nil)); c.Lookup("k", nil, time.Now()) != late {
		t.Fatal("a meta object from an answer after the outdate was not stored")
	}
	// outdate of an object no longer stored removes nothing.
	sl.outdate(early)
	if c.Lookup("k", nil, time.Now()) != late {
		t.Fatal("outdate of an old meta object removed the one stored")
	}
}

// A delivery's meta object stays usable by generation while held.
func TestHeldMeta(t *testing.T) {
	sl := New(Options{})
	m := testMeta("k", `"v1"`, time.Now())
	sm, _ := decodeSliceMeta(m.Extra)
	r1, r2 := sl.hold(m, sm), sl.hold(m, sm)
	if got, _, ok := sl.heldMeta("k", sm.gen); !ok || got != m {
		t.Fatal("held meta object not found")
	}
	r1()
	if _, _, ok := sl.heldMeta("k", sm.gen); !ok {
		t.Fatal("released by one of two holders")
	}
	r2()
	if _, _, ok := sl.heldMeta("k", sm.gen); ok {
		t.Fatal("still held after both released")
	}
}
