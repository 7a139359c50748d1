package observe

import (
	"strings"
	"testing"
	"time"
)

// ids renders groups as "a,b c": records of a group joined by commas.
func ids(groups [][]Tx) string {
	var out []string
	for _, g := range groups {
		var s []string
		for _, tx := range g {
			s = append(s, tx.ID.String())
		}
		out = append(out, strings.Join(s, ","))
	}
	return strings.Join(out, " ")
}

func collect(groups *[][]Tx) func([]Tx) {
	return func(g []Tx) { *groups = append(*groups, append([]Tx(nil), g...)) }
}

func TestGrouperNestsSubrequests(t *testing.T) {
	// Publication order: subrequests finish before their parent. 1 has a
	// self subrequest 2 with a segment 3 of its own, and a segment 4; 5 has
	// none; 6's subrequest 7 is interleaved with 5.
	stream := []Tx{
		{ID: 3, Parent: 2, Root: 2}, {ID: 7, Parent: 6, Root: 6}, {ID: 2, Parent: 1, Root: 1},
		{ID: 4, Parent: 1, Root: 1}, {ID: 5, Root: 5}, {ID: 1, Root: 1}, {ID: 6, Root: 6},
	}
	g := NewGrouper(16, 16)
	var got [][]Tx
	for _, tx := range stream {
		g.Add(tx, collect(&got))
	}
	if s, want := ids(got), "5 1,2,3,4 6,7"; s != want {
		t.Errorf("groups %s, want %s", s, want)
	}
	if g.Pending() != 0 {
		t.Errorf("%d parents still waited for", g.Pending())
	}
}

func TestGrouperBounds(t *testing.T) {
	g := NewGrouper(2, 4)
	var got [][]Tx
	emit := collect(&got)
	// Subrequests of three parents that have not come: past 2 parents the
	// oldest group is given up (emitted without its parent).
	g.Add(Tx{ID: 11, Parent: 1}, emit)
	g.Add(Tx{ID: 21, Parent: 2}, emit)
	g.Add(Tx{ID: 31, Parent: 3}, emit)
	if s := ids(got); s != "b" || g.Pending() != 2 {
		t.Fatalf("after 3 parents waited for: emitted %q, %d waiting; want the oldest group (b) and 2", s, g.Pending())
	}
	// Past 4 records in all, the oldest group is given up too.
	g.Add(Tx{ID: 32, Parent: 3}, emit)
	g.Add(Tx{ID: 22, Parent: 2}, emit)
	g.Add(Tx{ID: 33, Parent: 3}, emit)
	if s := ids(got); s != "b l,m" || g.Pending() != 1 || g.total != 3 {
		t.Fatalf("past 4 records: emitted %q, %d waiting with %d records; want b l,m, 1 with 3", s, g.Pending(), g.total)
	}
	// One group keeps at most 4 records; the rest are counted.
	for id := TxID(34); id <= 36; id++ {
		g.Add(Tx{ID: id, Parent: 3}, emit)
	}
	if g.Dropped != 2 || g.total != 4 {
		t.Errorf("Dropped = %d, total %d; want 2 and 4", g.Dropped, g.total)
	}
	got = nil
	g.Add(Tx{ID: 3}, emit)
	if s := ids(got); s != "3,v,w,x,y" || g.Pending() != 0 || g.total != 0 {
		t.Errorf("group 3 = %q (%d waiting, %d records), want 3,v,w,x,y and nothing left", s, g.Pending(), g.total)
	}
	// Under a stream of subrequests whose parents never come, and of groups
	// that complete, the bounds hold.
	g = NewGrouper(8, 32)
	for i := TxID(100); i < 20000; i += 3 {
		g.Add(Tx{ID: i + 1, Parent: i + i%7}, emit)
		g.Add(Tx{ID: i + 2, Parent: i}, emit)
		g.Add(Tx{ID: i}, emit)
		if g.Pending() > 8 || g.total > 32 || len(g.order) > 2*8+16 {
			t.Fatalf("%d waiting, %d records, order %d: bounds 8, 32, %d", g.Pending(), g.total, len(g.order), 2*8+16)
		}
	}
	got = nil
	g.Flush(emit)
	if g.Pending() != 0 || g.total != 0 {
		t.Errorf("after Flush: %d waiting, %d records", g.Pending(), g.total)
	}
}

func TestSelector(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 6, 0, 0, 0, time.UTC)
	stream := []Tx{
		{ID: 2, Parent: 1, Root: 1, Status: 503, Start: t0.Add(2 * time.Second)},
		{ID: 1, Root: 1, Status: 200, Start: t0.Add(1 * time.Second)},
		{ID: 3, Root: 3, Status: 200, Start: t0.Add(3 * time.Second)},
		{ID: 5, Parent: 4, Root: 4, Status: 200, Start: t0.Add(5 * time.Second)},
		{ID: 4, Root: 4, Status: 500, Start: t0.Add(4 * time.Second)},
		{ID: 7, Parent: 6, Root: 6, Status: 502, Start: t0.Add(7 * time.Second)}, // its parent never comes
	}
	q5xx, _ := ParseQuery("status >= 500")
	for _, tc := range []struct {
		name string
		sel  Selection
		want string
	}{
		{"raw", Selection{}, "2 1 3 5 4 7"},
		{"raw query", Selection{Query: q5xx}, "2 4 7"},
		{"groups select whole requests", Selection{Query: q5xx, Group: true}, "1,2 4,5 7"},
		{"groups", Selection{Group: true}, "1,2 3 4,5 7"},
		{"limit groups", Selection{Query: q5xx, Group: true, Limit: 2}, "1,2 4,5"},
		{"limit records", Selection{Limit: 3}, "2 1 3"},
		{"since", Selection{Since: t0.Add(3 * time.Second)}, "3 5 4 7"},
		{"since groups", Selection{Since: t0.Add(3 * time.Second), Group: true}, "3 4,5 7"},
	} {
		s := NewSelector(tc.sel)
		var got [][]Tx
		emit := collect(&got)
		for _, tx := range stream {
			if !s.Add(tx, emit) {
				break
			}
		}
		s.Flush(emit)
		if g := ids(got); g != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, g, tc.want)
		}
		if tc.sel.Limit > 0 && !s.Done() {
			t.Errorf("%s: not done after the limit", tc.name)
		}
	}
}

func TestParseSince(t *testing.T) {
	now := time.Date(2026, 12, 2, 6, 50, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Time
		err  string
	}{
		{"", time.Time{}, ""},
		{"5m", now.Add(-5 * time.Minute), ""},
		{"2026-12-02T06:00:00Z", time.Date(2026, 12, 2, 6, 0, 0, 0, time.UTC), ""},
		{"-5m", time.Time{}, `"-5m" is negative`},
		{"yesterday", time.Time{}, `expected a duration such as 5m or an RFC 3339 time`},
	} {
		got, err := ParseSince(tc.in, now)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("%q = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}
