package h1

import (
	"math"
	"testing"
)

// Poll ids wrap after 2^32 connections (a day at 50 000 new connections a
// second) while a long-lived connection (a long download, a parked one)
// may still hold a small id: a new connection must not take it. Sharing
// it, the new one replaced the old one in the table, and the old one's end
// removed the new one: its events were dropped as unknown and the idle
// timeout never saw it, so it stayed parked, its descriptor open, until
// shutdown.
func TestPollIDWrapSkipsIDsInUse(t *testing.T) {
	p, err := newPoller(&Server{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.stop()
	old := &conn{}
	p.prepare(old) // id 1
	p.mu.Lock()
	p.nextID = math.MaxUint32 - 1
	p.mu.Unlock()
	last, wrapped := &conn{}, &conn{}
	p.prepare(last)    // id MaxUint32
	p.prepare(wrapped) // wraps past 0 (the eventfd) and the old connection's 1
	if last.pollID != math.MaxUint32 {
		t.Fatalf("last id %d, want %d", last.pollID, uint32(math.MaxUint32))
	}
	if wrapped.pollID == 0 || wrapped.pollID == old.pollID {
		t.Fatalf("after the wrap a new connection took id %d (the old one has %d)", wrapped.pollID, old.pollID)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range []*conn{old, last, wrapped} {
		if p.conns[c.pollID] != c {
			t.Errorf("id %d is not its connection's in the table", c.pollID)
		}
	}
}
