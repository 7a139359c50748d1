package kvm

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

func TestLoadGuests(t *testing.T) {
	tests := []struct {
		name string
		pie  bool
	}{
		{"hello", false},
		{"hello-pie", true},
		{"hello-musl", false},
		{"malloc", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Load(guest(t, tt.name))
			if err != nil {
				t.Fatal(err)
			}
			if got := p.PIE(); got != tt.pie {
				t.Errorf("PIE() = %v, want %v", got, tt.pie)
			}
			if p.lowest < userBase || p.Entry() < p.lowest || p.Entry() >= p.ImageEnd() {
				t.Errorf("entry %#x outside image [%#x, %#x)", p.Entry(), p.lowest, p.ImageEnd())
			}
			if tt.pie && p.lowest != pieBase {
				t.Errorf("static-PIE placed at %#x, want %#x", p.lowest, pieBase)
			}
			if p.phdrAddr == 0 {
				t.Errorf("program headers not found in a loaded segment")
			}
			// The program headers in memory must be the file's.
			mem := make([]byte, p.ImageEnd())
			p.place(mem)
			if got := mem[p.phdrAddr : p.phdrAddr+p.phnum*phdrSize]; string(got) != string(p.phdrs()) {
				t.Errorf("program headers at %#x differ from the file's", p.phdrAddr)
			}
		})
	}
}

func TestLoadDynamic(t *testing.T) {
	_, err := Load(guest(t, "hello-dyn"))
	if !errors.Is(err, ErrDynamicELF) {
		t.Fatalf("Load(dynamic) = %v, want ErrDynamicELF", err)
	}
}

// minimalELF builds a small valid ET_EXEC with one PT_LOAD.
func minimalELF() []byte {
	b := make([]byte, 0x1000)
	le := binary.LittleEndian
	copy(b, "\x7fELF\x02\x01\x01")
	le.PutUint16(b[16:], etExec)
	le.PutUint16(b[18:], emX8664)
	le.PutUint32(b[20:], 1)
	le.PutUint64(b[24:], 0x400100) // entry
	le.PutUint64(b[32:], ehdrSize) // phoff
	le.PutUint16(b[52:], ehdrSize)
	le.PutUint16(b[54:], phdrSize)
	le.PutUint16(b[56:], 1)
	ph := b[ehdrSize:]
	le.PutUint32(ph[0:], ptLoad)
	le.PutUint32(ph[4:], 5) // R+X
	le.PutUint64(ph[8:], 0)
	le.PutUint64(ph[16:], 0x400000)
	le.PutUint64(ph[32:], 0x1000)
	le.PutUint64(ph[40:], 0x2000)
	le.PutUint64(ph[48:], 0x1000)
	return b
}

func TestLoadMalformed(t *testing.T) {
	le := binary.LittleEndian
	tests := []struct {
		name   string
		mutate func(b []byte) []byte
		want   error
		msg    string
	}{
		{"valid", func(b []byte) []byte { return b }, nil, ""},
		{"short", func(b []byte) []byte { return b[:40] }, ErrInvalidELF, "shorter than the ELF header"},
		{"magic", func(b []byte) []byte { b[1] = 'X'; return b }, ErrInvalidELF, "no ELF magic"},
		{"32-bit", func(b []byte) []byte { b[4] = 1; return b }, ErrInvalidELF, "ELF class 1"},
		{"big-endian", func(b []byte) []byte { b[5] = 2; return b }, ErrInvalidELF, "data encoding 2"},
		{"relocatable", func(b []byte) []byte { le.PutUint16(b[16:], 1); return b }, ErrInvalidELF, "ELF type 1"},
		{"arm64", func(b []byte) []byte { le.PutUint16(b[18:], 183); return b }, ErrInvalidELF, "machine 183"},
		{"phentsize", func(b []byte) []byte { le.PutUint16(b[54:], 32); return b }, ErrInvalidELF, "program header size 32"},
		{"no phdrs", func(b []byte) []byte { le.PutUint16(b[56:], 0); return b }, ErrInvalidELF, "0 program headers"},
		{"phdrs past end", func(b []byte) []byte { le.PutUint64(b[32:], 0xff0); return b }, ErrInvalidELF, "run past the end"},
		{"phoff overflow", func(b []byte) []byte { le.PutUint64(b[32:], ^uint64(0)-8); return b }, ErrInvalidELF, "run past the end"},
		{"filesz > memsz", func(b []byte) []byte { le.PutUint64(b[ehdrSize+32:], 0x3000); return b }, ErrInvalidELF, "exceeds memory size"},
		{"segment past file", func(b []byte) []byte { le.PutUint64(b[ehdrSize+8:], 0x800); return b }, ErrInvalidELF, "runs past the end"},
		{"offset overflow", func(b []byte) []byte { le.PutUint64(b[ehdrSize+8:], ^uint64(0)); return b }, ErrInvalidELF, "runs past the end"},
		{"align", func(b []byte) []byte { le.PutUint64(b[ehdrSize+48:], 3); return b }, ErrInvalidELF, "not a power of two"},
		{"huge", func(b []byte) []byte { le.PutUint64(b[ehdrSize+40:], 1<<40); return b }, ErrInvalidELF, "beyond"},
		{"high vaddr", func(b []byte) []byte { le.PutUint64(b[ehdrSize+16:], 1<<62); return b }, ErrInvalidELF, "beyond"},
		{"low vaddr", func(b []byte) []byte {
			le.PutUint64(b[ehdrSize+16:], 0x1000)
			le.PutUint64(b[24:], 0x1100)
			return b
		}, ErrInvalidELF, "below 0x200000"},
		{"entry outside", func(b []byte) []byte { le.PutUint64(b[24:], 0x900000); return b }, ErrInvalidELF, "entry point"},
		{"entry not exec", func(b []byte) []byte { le.PutUint32(b[ehdrSize+4:], 6); return b }, ErrInvalidELF, "entry point"},
		{"no load", func(b []byte) []byte { le.PutUint32(b[ehdrSize:], 4); return b }, ErrInvalidELF, "no PT_LOAD"},
		{"interp", func(b []byte) []byte {
			le.PutUint16(b[56:], 2)
			ph := b[ehdrSize+phdrSize:]
			le.PutUint32(ph[0:], ptInterp)
			return b
		}, ErrDynamicELF, "PT_INTERP"},
		{"overlap", func(b []byte) []byte {
			le.PutUint16(b[56:], 2)
			copy(b[ehdrSize+phdrSize:], b[ehdrSize:ehdrSize+phdrSize])
			return b
		}, ErrInvalidELF, "overlaps"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(tt.mutate(minimalELF()))
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("Load = %v, want %v", err, tt.want)
			}
			if err != nil && !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q does not say %q", err, tt.msg)
			}
		})
	}
}

func FuzzLoad(f *testing.F) {
	f.Add(minimalELF())
	for _, n := range []string{"hello", "hello-pie"} {
		if b, err := guestBinary(n); err == nil {
			f.Add(b[:4096]) // headers only: segments run past the end
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Load(b)
		if err != nil {
			if !errors.Is(err, ErrInvalidELF) && !errors.Is(err, ErrDynamicELF) {
				t.Fatalf("error %v wraps neither sentinel", err)
			}
			return
		}
		// A program that loads must fit in the largest guest and place
		// without panicking into memory of its size.
		if p.end > MaxMemory*2 || p.lowest < userBase || p.entry < p.lowest || p.entry >= p.end {
			t.Fatalf("accepted image [%#x, %#x) entry %#x", p.lowest, p.end, p.entry)
		}
		for _, s := range p.segs {
			if s.vaddr+s.memsz > p.end || s.off+s.filesz > uint64(len(b)) {
				t.Fatalf("segment %+v outside image or file", s)
			}
		}
		if p.end <= 64<<20 {
			p.place(make([]byte, p.end))
		}
	})
}
