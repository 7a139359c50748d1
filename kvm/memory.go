package kvm

import (
	"errors"
	"fmt"
	"math/bits"
)

// ErrBadAddress is returned by Memory for a range outside the program's
// memory; an emulated system call answers EFAULT for it.
var ErrBadAddress = errors.New("bad guest address")

// Memory is the program's part of a VM's guest memory, for a Handler to read
// call arguments from and write results to. Every access is bounds-checked
// against the user area [userBase, memory size): a guest pointer can never
// make the host touch anything else. It implements io.ReaderAt and
// io.WriterAt, with the offset being the guest address.
//
// A Memory is valid only during the call it was passed to.
type Memory struct {
	mem    []byte   // all of guest memory
	lo, hi uint64   // accessible range
	dirty  []uint64 // pages written by the host since the last reset, or nil
}

func newMemory(mem []byte, dirty []uint64) *Memory {
	return &Memory{mem: mem, lo: userBase, hi: uint64(len(mem)), dirty: dirty}
}

// Size returns the size of guest memory; valid addresses are below it.
func (m *Memory) Size() int64 { return int64(m.hi) }

// check returns the offset range of [addr, addr+n) if it lies inside the
// user area.
func (m *Memory) check(addr, n uint64) error {
	end, carry := bits.Add64(addr, n, 0)
	if carry != 0 || addr < m.lo || end > m.hi {
		return fmt.Errorf("%d bytes at %#x: %w", n, addr, ErrBadAddress)
	}
	return nil
}

// view returns guest memory [addr, addr+n) without copying, for reading.
func (m *Memory) view(addr, n uint64) ([]byte, error) {
	if err := m.check(addr, n); err != nil {
		return nil, err
	}
	return m.mem[addr : addr+n : addr+n], nil
}

// ReadAt copies guest memory at address off into p. It reads all of p or
// nothing, and then returns an error wrapping ErrBadAddress.
func (m *Memory) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("negative address %d: %w", off, ErrBadAddress)
	}
	b, err := m.view(uint64(off), uint64(len(p)))
	if err != nil {
		return 0, err
	}
	return copy(p, b), nil
}

// WriteAt copies p into guest memory at address off, all or nothing.
func (m *Memory) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("negative address %d: %w", off, ErrBadAddress)
	}
	if err := m.check(uint64(off), uint64(len(p))); err != nil {
		return 0, err
	}
	m.markDirty(uint64(off), uint64(len(p)))
	return copy(m.mem[off:], p), nil
}

// ReadString reads a NUL-terminated string of at most max bytes at addr.
func (m *Memory) ReadString(addr uint64, max int) (string, error) {
	if addr < m.lo || addr >= m.hi {
		return "", fmt.Errorf("string at %#x: %w", addr, ErrBadAddress)
	}
	end := min(m.hi, addr+uint64(max))
	for i := addr; i < end; i++ {
		if m.mem[i] == 0 {
			return string(m.mem[addr:i]), nil
		}
	}
	return "", fmt.Errorf("string at %#x longer than %d bytes: %w", addr, max, ErrBadAddress)
}

func (m *Memory) readU64(addr uint64) (uint64, error) {
	b, err := m.view(addr, 8)
	if err != nil {
		return 0, err
	}
	return le64(b), nil
}

func (m *Memory) writeU64s(addr uint64, vals ...uint64) error {
	var buf [64]byte
	b := buf[:0]
	for _, v := range vals {
		b = append(b, byte(v), byte(v>>8), byte(v>>16), byte(v>>24), byte(v>>32), byte(v>>40), byte(v>>48), byte(v>>56))
	}
	_, err := m.WriteAt(b, int64(addr))
	return err
}

// zero clears [addr, addr+n) (already checked), skipping pages that are
// already zero so that untouched copy-on-write pages stay shared.
func (m *Memory) zero(addr, n uint64) {
	for n > 0 {
		chunk := min(n, pageSize-addr%pageSize)
		b := m.mem[addr : addr+chunk]
		if !isZero(b) {
			clear(b)
			m.markDirty(addr, chunk)
		}
		addr += chunk
		n -= chunk
	}
}

func (m *Memory) markDirty(addr, n uint64) {
	if m.dirty == nil || n == 0 {
		return
	}
	for p := addr / pageSize; p <= (addr+n-1)/pageSize; p++ {
		m.dirty[p/64] |= 1 << (p % 64)
	}
}

func isZero(b []byte) bool {
	for len(b) >= 8 {
		if le64(b) != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

func le64(b []byte) uint64 {
	_ = b[7]
	return uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
		uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
}
