package ban

import (
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Entry is a ban in a List: its sequence number (ascending in the order
// bans were added, never reused), when it was added, and the ban.
type Entry struct {
	Seq  uint64
	Time time.Time
	Ban  *Ban
}

// Record is the persisted form of an Entry: the ban as its source text.
type Record struct {
	Seq  uint64
	Time time.Time
	Expr string
}

// Record returns e's persisted form.
func (e Entry) Record() Record { return Record{Seq: e.Seq, Time: e.Time, Expr: e.Ban.String()} }

// List is the set of active bans, applied lazily as Varnish does.
//
// Every stored object carries a mark: the Seq of the newest ban it has been
// tested against. A new object takes Newest() when its fetch starts (not
// when it ends: a ban added while the origin is answering must still apply
// to that answer). When the object is next found, Check tests it against
// the bans added since its mark only; if none matches, the caller stores
// the returned newest mark with the object. Bans that every live object has
// passed are dropped with Prune.
//
// A List is safe for concurrent use. Check does not allocate and, when no
// ban was added since the object's mark (the common case on a hit), takes
// no lock.
type List struct {
	mu      sync.RWMutex
	entries []Entry // ascending Seq
	next    uint64  // Seq of the next ban
	newest  atomic.Uint64
}

// NewList returns an empty list whose first ban gets Seq 1.
func NewList() *List { return &List{next: 1} }

// Restore rebuilds a list from persisted records (in any order). Sequence
// numbers continue after the largest one. Of records with the same
// expression only the newest is kept, as Add would have done.
func Restore(records []Record) (*List, error) {
	l := NewList()
	for _, r := range records {
		b, err := parsePersisted(r.Expr)
		if err != nil {
			return nil, fmt.Errorf("restore ban %d: %w", r.Seq, err)
		}
		if r.Seq == 0 {
			return nil, fmt.Errorf("restore ban %q: sequence number 0", r.Expr)
		}
		l.entries = append(l.entries, Entry{Seq: r.Seq, Time: r.Time, Ban: b})
	}
	sort.Slice(l.entries, func(i, j int) bool { return l.entries[i].Seq < l.entries[j].Seq })
	for i := 1; i < len(l.entries); i++ {
		if l.entries[i].Seq == l.entries[i-1].Seq {
			return nil, fmt.Errorf("restore ban %d: duplicate sequence number", l.entries[i].Seq)
		}
	}
	if n := len(l.entries); n > 0 {
		l.next = l.entries[n-1].Seq + 1
		l.newest.Store(l.entries[n-1].Seq)
	}
	newest := make(map[string]uint64, len(l.entries))
	for _, e := range l.entries {
		newest[e.Ban.String()] = e.Seq
	}
	kept := l.entries[:0]
	for _, e := range l.entries {
		if newest[e.Ban.String()] == e.Seq {
			kept = append(kept, e)
		}
	}
	clear(l.entries[len(kept):])
	l.entries = kept
	return l, nil
}

// Add appends a ban and returns its entry. An older ban with the same text
// is dropped: every object it would still have to test will test the new
// one too (Varnish marks such duplicates completed).
func (l *List) Add(b *Ban, now time.Time) Entry {
	l.mu.Lock()
	defer l.mu.Unlock()
	kept := l.entries[:0]
	for _, e := range l.entries {
		if e.Ban.String() != b.String() {
			kept = append(kept, e)
		}
	}
	clear(l.entries[len(kept):])
	l.entries = kept
	e := Entry{Seq: l.next, Time: now, Ban: b}
	l.next++
	l.entries = append(l.entries, e)
	l.newest.Store(e.Seq)
	return e
}

// Newest is the Seq of the newest ban ever added (0 if none): the mark for
// an object whose fetch starts now.
func (l *List) Newest() uint64 { return l.newest.Load() }

// Check tests o, whose mark is checked, against the bans added since. It
// returns whether one matches (the object must be dropped) and, if not, the
// mark to store with the object.
func (l *List) Check(o Object, checked uint64) (banned bool, mark uint64) {
	newest := l.newest.Load()
	if checked >= newest {
		return false, checked
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	es := l.entries[l.after(checked):]
	for i := len(es) - 1; i >= 0; i-- { // newest first, as Varnish
		if es[i].Ban.Match(o) {
			return true, checked
		}
	}
	if n := len(l.entries); n > 0 {
		newest = max(newest, l.entries[n-1].Seq)
	}
	return false, newest
}

// CheckRequestFree is Check for a background lurker, which has the stored
// object but not the request that stored it: it tests only request-free
// bans. The mark it returns advances past request-free bans only up to the
// first ban that needs the request, which a later Check still has to test.
func (l *List) CheckRequestFree(o Object, checked uint64) (banned bool, mark uint64) {
	if checked >= l.newest.Load() {
		return false, checked
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	mark = checked
	blocked := false
	for _, e := range l.entries[l.after(checked):] {
		if !e.Ban.RequestFree() {
			blocked = true
			continue
		}
		if e.Ban.Match(o) {
			return true, checked
		}
		if !blocked {
			mark = e.Seq
		}
	}
	if !blocked {
		mark = max(mark, l.newest.Load())
	}
	return false, mark
}

// after returns the index of the first entry with Seq > seq.
func (l *List) after(seq uint64) int {
	return sort.Search(len(l.entries), func(i int) bool { return l.entries[i].Seq > seq })
}

// Prune drops the bans that every live object has passed: those with
// Seq <= minMark, the smallest mark among stored objects (pass Newest()
// when the cache is empty). It returns how many were dropped.
func (l *List) Prune(minMark uint64) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	i := l.after(minMark)
	if i == 0 {
		return 0
	}
	n := copy(l.entries, l.entries[i:])
	clear(l.entries[n:])
	l.entries = l.entries[:n]
	return i
}

// Entries returns a copy of the active bans, oldest first.
func (l *List) Entries() []Entry {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return append([]Entry(nil), l.entries...)
}

// Len is the number of active bans.
func (l *List) Len() int {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return len(l.entries)
}
