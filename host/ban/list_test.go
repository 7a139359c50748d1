package ban

import (
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

func mustParse(t testing.TB, s string) *Ban {
	t.Helper()
	b, err := Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestListLazy(t *testing.T) {
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	l := NewList()
	img := obj{url: "/img/a.png", req: http.Header{}, status: 200, resp: http.Header{}}
	css := obj{url: "/a.css", req: http.Header{}, status: 200, resp: http.Header{}}

	// Objects stored before any ban.
	imgMark, cssMark := l.Newest(), l.Newest()
	if imgMark != 0 {
		t.Fatalf("Newest of an empty list = %d", imgMark)
	}
	e := l.Add(mustParse(t, `req.url ~ ^/img/`), now)
	if e.Seq != 1 || l.Newest() != 1 {
		t.Fatalf("first ban seq %d, newest %d", e.Seq, l.Newest())
	}
	// An object whose fetch starts after the ban is not affected by it.
	lateMark := l.Newest()
	if banned, _ := l.Check(img, lateMark); banned {
		t.Error("object fetched after the ban was banned")
	}
	// Older objects are tested when found.
	if banned, _ := l.Check(img, imgMark); !banned {
		t.Error("img not banned")
	}
	banned, mark := l.Check(css, cssMark)
	if banned || mark != 1 {
		t.Errorf("css: banned %v, mark %d; want false, 1", banned, mark)
	}
	cssMark = mark
	// A second ban: css is tested against it only.
	l.Add(mustParse(t, `obj.status == 200`), now)
	if banned, _ := l.Check(css, cssMark); !banned {
		t.Error("css not banned by the second ban")
	}
}

func TestListDedupAndPrune(t *testing.T) {
	now := time.Now()
	l := NewList()
	l.Add(mustParse(t, `req.url == /a`), now)
	l.Add(mustParse(t, `req.url == /b`), now)
	l.Add(mustParse(t, `req.url  ==  "/a"`), now) // same as the first
	if got := l.Len(); got != 2 {
		t.Fatalf("Len = %d after a duplicate, want 2", got)
	}
	es := l.Entries()
	if es[0].Seq != 2 || es[1].Seq != 3 {
		t.Errorf("entries %v", es)
	}
	// The object marked 0 is still tested against /a (now seq 3).
	if banned, _ := l.Check(obj{url: "/a"}, 0); !banned {
		t.Error("/a not banned after dedup")
	}
	if n := l.Prune(2); n != 1 || l.Len() != 1 {
		t.Errorf("Prune(2) dropped %d, left %d", n, l.Len())
	}
	if n := l.Prune(l.Newest()); n != 1 || l.Len() != 0 {
		t.Errorf("Prune(newest) dropped %d, left %d", n, l.Len())
	}
	// Seq keeps growing after a prune.
	if e := l.Add(mustParse(t, `req.url == /c`), now); e.Seq != 4 {
		t.Errorf("seq after prune %d, want 4", e.Seq)
	}
}

func TestListRequestFree(t *testing.T) {
	now := time.Now()
	l := NewList()
	o := obj{url: "/x", status: 500, resp: http.Header{"X-Tag": {"t"}}}
	l.Add(mustParse(t, `obj.http.x-tag == u`), now) // 1, request-free, no match
	l.Add(mustParse(t, `req.url == /y`), now)       // 2, needs the request
	l.Add(mustParse(t, `obj.status == 404`), now)   // 3, request-free, no match
	banned, mark := l.CheckRequestFree(o, 0)
	if banned || mark != 1 {
		t.Errorf("lurker: banned %v mark %d, want false 1 (stops before the req ban)", banned, mark)
	}
	l.Add(mustParse(t, `obj.status >= 500`), now) // 4, request-free, matches
	if banned, _ := l.CheckRequestFree(o, mark); !banned {
		t.Error("lurker missed a request-free ban past a req ban")
	}
	// With the req ban passed, the lurker advances to the newest.
	l2 := NewList()
	l2.Add(mustParse(t, `obj.status == 404`), now)
	if banned, mark := l2.CheckRequestFree(o, 0); banned || mark != 1 {
		t.Errorf("lurker: %v %d, want false 1", banned, mark)
	}
}

func TestListRestore(t *testing.T) {
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	l := NewList()
	l.Add(mustParse(t, `req.url ~ ^/img/`), now)
	l.Add(mustParse(t, `obj.status==404`), now.Add(time.Second))
	var recs []Record
	for _, e := range l.Entries() {
		recs = append(recs, e.Record())
	}
	recs[0], recs[1] = recs[1], recs[0] // any order
	r, err := Restore(recs)
	if err != nil {
		t.Fatal(err)
	}
	if r.Newest() != 2 || r.Len() != 2 || r.Entries()[1].Ban.String() != "obj.status == 404" || !r.Entries()[1].Time.Equal(now.Add(time.Second)) {
		t.Errorf("restored %v", r.Entries())
	}
	if e := r.Add(mustParse(t, `req.url == /`), now); e.Seq != 3 {
		t.Errorf("seq after restore %d", e.Seq)
	}
	if _, err := Restore([]Record{{Seq: 1, Expr: "req.url =="}}); !errors.Is(err, ErrSyntax) {
		t.Errorf("bad record: %v", err)
	}
	if _, err := Restore([]Record{{Seq: 1, Expr: "req.url == a"}, {Seq: 1, Expr: "req.url == b"}}); err == nil {
		t.Error("duplicate seq accepted")
	}
	// Duplicates (a store keeps what Add dropped) collapse to the newest.
	d, err := Restore([]Record{{Seq: 3, Expr: "req.url == a"}, {Seq: 5, Expr: `req.url == "a"`}, {Seq: 4, Expr: "req.url == b"}})
	if err != nil || d.Len() != 2 || d.Entries()[0].Seq != 4 || d.Entries()[1].Seq != 5 || d.Newest() != 5 {
		t.Errorf("restore with duplicates: %v, %v", d.Entries(), err)
	}
	if _, err := Restore([]Record{{Seq: 0, Expr: "req.url == a"}}); err == nil {
		t.Error("seq 0 accepted")
	}
	// A ban persisted before regular expressions were bounded in size
	// still loads: a ban that does not would stop the cache opening.
	big := `req.url ~ "` + strings.Repeat(`.{1000}`, 30) + `"`
	if _, err := Parse(big); err == nil {
		t.Fatal("a new ban past the regexp size bound was accepted")
	}
	if r, err := Restore([]Record{{Seq: 7, Expr: big}}); err != nil || r.Len() != 1 {
		t.Errorf("a persisted ban past the bound: %v", err)
	}
}

func TestListCheckNoAlloc(t *testing.T) {
	l := NewList()
	l.Add(mustParse(t, `req.url ~ ^/img/ && obj.http.content-type == image/png`), time.Now())
	var o Object = obj{url: "/css/a.css", req: http.Header{}, resp: http.Header{"Content-Type": {"text/css"}}}
	if n := testing.AllocsPerRun(100, func() { l.Check(o, 0) }); n != 0 {
		t.Errorf("Check allocates %v times", n)
	}
}

func TestListConcurrent(t *testing.T) {
	l := NewList()
	o := obj{url: "/a", req: http.Header{}, resp: http.Header{}}
	nope := mustParse(t, `req.url == /nope`)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			mark := uint64(0)
			for range 200 {
				var banned bool
				banned, mark = l.Check(o, mark)
				if banned {
					t.Error("banned by a ban that matches nothing")
					return
				}
			}
		})
	}
	wg.Go(func() {
		for range 50 {
			l.Add(nope, time.Now())
			l.Prune(l.Newest() - 1)
		}
	})
	wg.Wait()
}
