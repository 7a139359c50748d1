package observe

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkQueryMatch is the cost per followed record of a typical -q on
// the server (admin /log?q=).
func BenchmarkQueryMatch(b *testing.B) {
	q, err := ParseQuery(`(status >= 500 || miss) && route == "/api/" && dur > 1ms && url ~ "^/api"`)
	if err != nil {
		b.Fatal(err)
	}
	tx := Tx{Kind: "client", Method: "GET", Host: "h", URL: "/api/users?id=7", Route: "/api/", Status: 200,
		Cache: "edgehost; fwd=uri-miss; stored; ttl=120", Duration: 3 * time.Millisecond}
	b.ReportAllocs()
	for b.Loop() {
		q.Match(&tx)
	}
}

// BenchmarkSelectorGroups is the server's cost per record of -g request: a
// request with two subrequests, selected by a query on the subrequests.
func BenchmarkSelectorGroups(b *testing.B) {
	q, _ := ParseQuery(`status >= 500`)
	s := NewSelector(Selection{Query: q, Group: true})
	emit := func([]Tx) {}
	b.ReportAllocs()
	id := TxID(1)
	for b.Loop() {
		s.Add(Tx{ID: id + 1, Parent: id, Status: 206}, emit)
		s.Add(Tx{ID: id + 2, Parent: id, Status: 503}, emit)
		s.Add(Tx{ID: id, Status: 200}, emit)
		id += 3
	}
}

// BenchmarkTopAddUnique is top's cost per record under a flood of unique
// URLs (the eviction's worst case).
func BenchmarkTopAddUnique(b *testing.B) {
	top := NewTop(10000, time.Minute, time.Minute)
	urls := make([]string, 1<<16)
	for i := range urls {
		urls[i] = fmt.Sprintf("/u/%d", i)
	}
	tx := Tx{Start: time.Now()}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		tx.URL = urls[i%len(urls)]
		top.Add(&tx)
	}
}
