package observe

import (
	"fmt"
	"time"
)

// Grouper assembles records into request groups: a top-level request
// (Parent 0) followed by its subrequests, each subrequest followed by its
// own, depth first. Subrequests finish, and are published, before their
// parent, so they wait in the Grouper until it arrives.
//
// A parent may never arrive: a follower that fell behind missed it, or the
// ring dropped it. The waiting is bounded: at most maxPending parents are
// waited for and at most maxRecords records wait in all; past either bound
// the group waiting longest is given up: emitted as it is, without its
// parent, so that nothing kept is lost. A single group over maxRecords
// keeps its first maxRecords records (the rest are counted in Dropped).
type Grouper struct {
	maxPending, maxRecords int
	pending                map[TxID][]Tx // by the parent they wait for
	total                  int           // records in pending
	order                  []TxID        // parents in the order they were first waited for; may hold stale ids
	Dropped                int           // records left out of a group over maxRecords
}

// NewGrouper returns a Grouper with the given bounds (each at least 1).
func NewGrouper(maxPending, maxRecords int) *Grouper {
	return &Grouper{maxPending: max(maxPending, 1), maxRecords: max(maxRecords, 1), pending: map[TxID][]Tx{}}
}

// Add takes the next record and calls emit with each group it completes
// (or gives up). emit must not keep the slice.
func (g *Grouper) Add(tx Tx, emit func([]Tx)) {
	subs, waited := g.pending[tx.ID]
	if waited {
		delete(g.pending, tx.ID)
		g.total -= len(subs)
	}
	if tx.Parent == 0 {
		emit(append([]Tx{tx}, subs...))
		return
	}
	group, ok := g.pending[tx.Parent]
	if !ok {
		g.order = append(g.order, tx.Parent)
	}
	merged := append(append(group, tx), subs...)
	if over := len(merged) - g.maxRecords; over > 0 {
		g.Dropped += over // the newest records of the group
		merged = merged[:g.maxRecords]
	}
	g.pending[tx.Parent] = merged
	g.total += len(merged) - len(group)
	for len(g.pending) > g.maxPending || g.total > g.maxRecords {
		g.evictOldest(emit)
	}
	if len(g.order) > 2*g.maxPending+16 {
		g.compact()
	}
}

// Flush emits every group still waiting for its parent, oldest first.
func (g *Grouper) Flush(emit func([]Tx)) {
	for len(g.pending) > 0 {
		g.evictOldest(emit)
	}
	g.order = g.order[:0]
}

// Pending returns how many parents are waited for.
func (g *Grouper) Pending() int { return len(g.pending) }

func (g *Grouper) evictOldest(emit func([]Tx)) {
	for len(g.order) > 0 {
		id := g.order[0]
		g.order = g.order[1:]
		if group, ok := g.pending[id]; ok {
			delete(g.pending, id)
			g.total -= len(group)
			emit(group)
			return
		}
	}
}

// compact drops the ids of parents that arrived from order.
func (g *Grouper) compact() {
	live := g.order[:0]
	seen := map[TxID]bool{}
	for _, id := range g.order {
		if _, ok := g.pending[id]; ok && !seen[id] {
			seen[id] = true
			live = append(live, id)
		}
	}
	g.order = live
}

// Selection is what a reader of the log asks for: the admin API's
// /log?q=…&group=1&since=…&n=….
type Selection struct {
	Query *Query
	Group bool      // whole request groups, selected when any record matches
	Since time.Time // records that started at or after Since
	Limit int       // stop after Limit groups (Group) or records; 0: no limit
}

// Limits of the grouping that a Selector does for a reader: a few MB of
// records waiting for their parent per follower.
const (
	selectorMaxPending = 4096
	selectorMaxRecords = 16384
)

// Selector applies a Selection to a stream of records.
type Selector struct {
	sel  Selection
	g    *Grouper
	sent int
}

// NewSelector returns a Selector for sel.
func NewSelector(sel Selection) *Selector {
	s := &Selector{sel: sel}
	if sel.Group {
		s.g = NewGrouper(selectorMaxPending, selectorMaxRecords)
	}
	return s
}

// Add takes the next record and calls emit with what it selects: one
// record, or a whole group. It returns false once the limit is reached.
func (s *Selector) Add(tx Tx, emit func([]Tx)) bool {
	if s.Done() {
		return false
	}
	if !s.sel.Since.IsZero() && tx.Start.Before(s.sel.Since) {
		return true
	}
	if s.g == nil {
		if s.sel.Query.Match(&tx) {
			s.sent++
			emit([]Tx{tx})
		}
		return !s.Done()
	}
	s.g.Add(tx, func(group []Tx) { s.emitGroup(group, emit) })
	return !s.Done()
}

// Flush emits the groups still waiting for their parent (the end of a dump).
func (s *Selector) Flush(emit func([]Tx)) {
	if s.g != nil {
		s.g.Flush(func(group []Tx) { s.emitGroup(group, emit) })
	}
}

// Done reports whether the limit is reached.
func (s *Selector) Done() bool { return s.sel.Limit > 0 && s.sent >= s.sel.Limit }

func (s *Selector) emitGroup(group []Tx, emit func([]Tx)) {
	if s.Done() {
		return
	}
	for i := range group {
		if s.sel.Query.Match(&group[i]) {
			s.sent++
			emit(group)
			return
		}
	}
}

// ParseSince reads the -since of `edgehost log`: a duration back from now
// ("5m") or an RFC 3339 time.
func ParseSince(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return time.Time{}, fmt.Errorf("%q is negative: give how long back, as in 5m", s)
		}
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("expected a duration such as 5m or an RFC 3339 time such as 2026-12-02T06:50:00Z, found %q", s)
	}
	return t, nil
}
