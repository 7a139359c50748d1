package kvm

import (
	"errors"
	"math"
	"testing"
)

func TestMemoryBounds(t *testing.T) {
	const size = MinMemory
	dirty := make([]uint64, size/pageSize/64)
	m := newMemory(guestMem(t, size), dirty)
	tests := []struct {
		name string
		off  int64
		n    int
		ok   bool
	}{
		{"user base", userBase, 8, true},
		{"ring-0 area", userBase - 8, 8, false},
		{"straddles user base", userBase - 4, 8, false},
		{"NULL", 0, 1, false},
		{"last byte", size - 1, 1, true},
		{"past the end", size, 1, false},
		{"straddles the end", size - 4, 8, false},
		{"empty at the end", size, 0, true},
		{"negative", -8, 8, false},
		{"huge", math.MaxInt64, 8, false},
		{"longer than memory", userBase, size, false},
	}
	for _, tt := range tests {
		buf := make([]byte, tt.n)
		for i := range buf {
			buf[i] = 0xAB
		}
		n, err := m.WriteAt(buf, tt.off)
		if tt.ok != (err == nil) || (err != nil && !errors.Is(err, ErrBadAddress)) || (tt.ok && n != tt.n) {
			t.Errorf("%s: WriteAt = %d, %v", tt.name, n, err)
		}
		n, err = m.ReadAt(buf, tt.off)
		if tt.ok != (err == nil) || (tt.ok && n != tt.n) {
			t.Errorf("%s: ReadAt = %d, %v", tt.name, n, err)
		}
	}
	// The write at userBase marked its page dirty, and only that one.
	if dirty[userBase/pageSize/64] != 1<<(userBase/pageSize%64) {
		t.Errorf("dirty bits %#x", dirty[userBase/pageSize/64])
	}
	m.WriteAt([]byte("hi\x00"), userBase+100)
	if s, err := m.ReadString(userBase+100, 10); err != nil || s != "hi" {
		t.Errorf("ReadString = %q, %v", s, err)
	}
	m.WriteAt([]byte("long"), size-4)
	if _, err := m.ReadString(size-4, 100); !errors.Is(err, ErrBadAddress) {
		t.Errorf("unterminated string at the end: %v", err)
	}
	if _, err := m.ReadString(8, 10); !errors.Is(err, ErrBadAddress) {
		t.Errorf("string in the ring-0 area: %v", err)
	}
}

func TestMemoryZeroKeepsCleanPages(t *testing.T) {
	const size = MinMemory
	dirty := make([]uint64, size/pageSize/64)
	m := newMemory(guestMem(t, size), dirty)
	m.mem[userBase+3*pageSize+5] = 1
	m.zero(userBase, 8*pageSize)
	if m.mem[userBase+3*pageSize+5] != 0 {
		t.Fatal("not cleared")
	}
	// Only the page that held data was written (and so counts as dirty).
	p := userBase/pageSize + 3
	if dirty[p/64] != 1<<(p%64) {
		t.Errorf("dirty bits %#x, want only page %d", dirty[p/64], p)
	}
}
