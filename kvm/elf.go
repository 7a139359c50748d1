package kvm

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Errors from Load.
var (
	// ErrInvalidELF: the bytes are not a well-formed ELF64 x86-64
	// executable that this package can place in guest memory.
	ErrInvalidELF = errors.New("invalid ELF executable")
	// ErrDynamicELF: the executable asks for a dynamic loader (PT_INTERP);
	// only static executables (ET_EXEC or static-PIE) run here.
	ErrDynamicELF = errors.New("dynamically linked ELF executable")
)

const (
	etExec = 2
	etDyn  = 3

	ptLoad   = 1
	ptInterp = 3
	ptPhdr   = 6

	pfX = 1

	emX8664 = 62

	ehdrSize  = 64
	phdrSize  = 56
	maxPhnum  = 128
	pieBase   = 0x400000 // where a static-PIE is placed
	maxImage  = MaxMemory
	maxEntryV = 1 << 46
)

type segment struct {
	vaddr, memsz, off, filesz uint64 // vaddr after relocation
	flags                     uint32
}

// Program is a validated static executable, ready to be placed into VMs. It
// keeps a copy of the file and is safe for concurrent use.
type Program struct {
	file     []byte
	pie      bool
	entry    uint64 // relocated
	segs     []segment
	phoff    uint64
	phnum    uint64
	phdrAddr uint64 // relocated address of the program headers in memory, 0 if not loaded
	end      uint64 // first page above the image
	lowest   uint64 // lowest mapped page
}

// Load validates an ELF64 x86-64 static executable (ET_EXEC, or ET_DYN
// without PT_INTERP: static-PIE) and returns it as a Program. The error says
// precisely what is wrong; it wraps ErrInvalidELF or ErrDynamicELF.
func Load(elf []byte) (*Program, error) {
	p, err := parseELF(elf)
	if err != nil {
		return nil, err
	}
	p.file = append([]byte(nil), elf...)
	return p, nil
}

func bad(format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), ErrInvalidELF)
}

func parseELF(b []byte) (*Program, error) {
	le := binary.LittleEndian
	if len(b) < ehdrSize {
		return nil, bad("file is %d bytes, shorter than the ELF header", len(b))
	}
	if string(b[:4]) != "\x7fELF" {
		return nil, bad("no ELF magic")
	}
	if b[4] != 2 {
		return nil, bad("ELF class %d, want 2 (64-bit)", b[4])
	}
	if b[5] != 1 {
		return nil, bad("ELF data encoding %d, want 1 (little-endian)", b[5])
	}
	if b[6] != 1 {
		return nil, bad("ELF identification version %d, want 1", b[6])
	}
	typ := le.Uint16(b[16:])
	if typ != etExec && typ != etDyn {
		return nil, bad("ELF type %d, want ET_EXEC or ET_DYN", typ)
	}
	if m := le.Uint16(b[18:]); m != emX8664 {
		return nil, bad("machine %d, want %d (x86-64)", m, emX8664)
	}
	entry := le.Uint64(b[24:])
	phoff := le.Uint64(b[32:])
	phentsize := uint64(le.Uint16(b[54:]))
	phnum := uint64(le.Uint16(b[56:]))
	if phentsize != phdrSize {
		return nil, bad("program header size %d, want %d", phentsize, phdrSize)
	}
	if phnum == 0 || phnum > maxPhnum {
		return nil, bad("%d program headers, want 1 to %d", phnum, maxPhnum)
	}
	if phoff > uint64(len(b)) || phnum*phdrSize > uint64(len(b))-phoff {
		return nil, bad("program headers at %#x (%d of them) run past the end of the %d-byte file", phoff, phnum, len(b))
	}
	p := &Program{pie: typ == etDyn, phoff: phoff, phnum: phnum}
	var loads []segment
	for i := uint64(0); i < phnum; i++ {
		h := b[phoff+i*phdrSize:]
		ptype := le.Uint32(h[0:])
		switch ptype {
		case ptInterp:
			return nil, fmt.Errorf("program header %d is PT_INTERP: %w", i, ErrDynamicELF)
		case ptLoad:
		default:
			continue
		}
		s := segment{
			flags:  le.Uint32(h[4:]),
			off:    le.Uint64(h[8:]),
			vaddr:  le.Uint64(h[16:]),
			filesz: le.Uint64(h[32:]),
			memsz:  le.Uint64(h[40:]),
		}
		align := le.Uint64(h[48:])
		switch {
		case s.filesz > s.memsz:
			return nil, bad("PT_LOAD %d: file size %#x exceeds memory size %#x", i, s.filesz, s.memsz)
		case s.off > uint64(len(b)) || s.filesz > uint64(len(b))-s.off:
			return nil, bad("PT_LOAD %d: file range %#x+%#x runs past the end of the %d-byte file", i, s.off, s.filesz, len(b))
		case align&(align-1) != 0:
			return nil, bad("PT_LOAD %d: alignment %#x is not a power of two", i, align)
		case s.memsz > maxImage || s.vaddr > maxEntryV:
			return nil, bad("PT_LOAD %d: %#x+%#x lies beyond the %d GiB a guest can have", i, s.vaddr, s.memsz, MaxMemory>>30)
		}
		if s.memsz == 0 {
			continue
		}
		if n := len(loads); n > 0 && s.vaddr < loads[n-1].vaddr+loads[n-1].memsz {
			return nil, bad("PT_LOAD %d at %#x overlaps or precedes the previous one (ends %#x)", i, s.vaddr, loads[n-1].vaddr+loads[n-1].memsz)
		}
		loads = append(loads, s)
	}
	if len(loads) == 0 {
		return nil, bad("no PT_LOAD segment")
	}
	lowest := loads[0].vaddr &^ (pageSize - 1)
	last := loads[len(loads)-1]
	end := (last.vaddr + last.memsz + pageSize - 1) &^ (pageSize - 1)
	if end-lowest > maxImage {
		return nil, bad("image spans %#x bytes, more than a guest can hold", end-lowest)
	}
	var bias uint64
	if p.pie {
		if lowest > 1<<30 {
			return nil, bad("static-PIE's lowest segment at %#x, want it near 0", lowest)
		}
		bias = pieBase - lowest
	} else if lowest < userBase {
		return nil, bad("PT_LOAD at %#x is below %#x, which the VM reserves", lowest, userBase)
	}
	// The entry point must be in an executable segment.
	okEntry := false
	for i := range loads {
		s := &loads[i]
		if s.flags&pfX != 0 && entry >= s.vaddr && entry < s.vaddr+s.memsz {
			okEntry = true
		}
		if s.off <= phoff && phoff+phnum*phdrSize <= s.off+s.filesz {
			p.phdrAddr = s.vaddr + (phoff - s.off) + bias
		}
		s.vaddr += bias
	}
	if !okEntry {
		return nil, bad("entry point %#x is not in an executable PT_LOAD segment", entry)
	}
	p.entry = entry + bias
	p.segs = loads
	p.lowest = lowest + bias
	p.end = end + bias
	return p, nil
}

// PIE reports whether the program is position independent (static-PIE).
func (p *Program) PIE() bool { return p.pie }

// Entry returns the program's entry point in guest memory.
func (p *Program) Entry() uint64 { return p.entry }

// ImageEnd returns the first guest address above the loaded image; the brk
// heap starts there.
func (p *Program) ImageEnd() uint64 { return p.end }

// place copies the segments into guest memory mem (zero where memsz exceeds
// filesz, which a fresh mapping already is).
func (p *Program) place(mem []byte) {
	for _, s := range p.segs {
		copy(mem[s.vaddr:s.vaddr+s.filesz], p.file[s.off:s.off+s.filesz])
	}
}

// phdrs returns the raw program header table.
func (p *Program) phdrs() []byte {
	return p.file[p.phoff : p.phoff+p.phnum*phdrSize]
}
