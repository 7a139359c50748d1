package ban

import (
	"net/http"
	"testing"
	"time"
)

var sinkBool bool

func BenchmarkParse(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(`req.url ~ "^/img/" && obj.http.content-type == "image/png"`); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMatch(b *testing.B) {
	b.ReportAllocs()
	ban := mustParse(b, `req.url ~ "^/img/" && obj.http.content-type == "image/png"`)
	var o Object = obj{url: "/img/cat.png", req: http.Header{}, status: 200, resp: http.Header{"Content-Type": {"image/png"}}}
	for b.Loop() {
		sinkBool = ban.Match(o)
	}
}

// BenchmarkListCheckCurrent is the hit path: the object has seen every ban.
func BenchmarkListCheckCurrent(b *testing.B) {
	b.ReportAllocs()
	l := NewList()
	l.Add(mustParse(b, `req.url ~ ^/img/`), time.Now())
	var o Object = obj{url: "/a.css"}
	mark := l.Newest()
	for b.Loop() {
		sinkBool, _ = l.Check(o, mark)
	}
}

// BenchmarkListCheck100 tests an object against 100 bans it has not seen.
func BenchmarkListCheck100(b *testing.B) {
	b.ReportAllocs()
	l := NewList()
	for i := range 100 {
		l.Add(mustParse(b, `req.url ~ ^/img/`+string(rune('a'+i%26))+`/ && obj.status == `+string(rune('0'+i%10))+`00`), time.Now())
	}
	var o Object = obj{url: "/img/zz/a.png", status: 200, resp: http.Header{}}
	for b.Loop() {
		sinkBool, _ = l.Check(o, 0)
	}
}
