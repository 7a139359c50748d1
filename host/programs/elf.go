package programs

import (
	"debug/elf"
	"errors"
	"fmt"
	"io"
)

// ErrBadProgram: the file is not a program the compute backends load (a
// static x86-64 ELF executable). The error's text says what is wrong.
var ErrBadProgram = errors.New("not a static x86-64 ELF executable")

// CheckELF checks that r holds what the compute plugin's backends load: an
// ELF64 x86-64 executable (ET_EXEC, or ET_DYN without PT_INTERP: a
// static-PIE) with a loadable, executable segment holding its entry
// point. The host reads the file with debug/elf; it never imports kvm/
// (DESIGN §1), whose loader checks the same and more at boot.
func CheckELF(r io.ReaderAt) (err error) {
	defer func() {
		if p := recover(); p != nil { // debug/elf on hostile input: an answer, not a crash
			err = fmt.Errorf("unreadable ELF (%v): %w", p, ErrBadProgram)
		}
	}()
	f, err := elf.NewFile(r)
	if err != nil {
		return fmt.Errorf("not an ELF file (%v): %w", err, ErrBadProgram)
	}
	defer f.Close()
	if f.Class != elf.ELFCLASS64 {
		return fmt.Errorf("a %v file, want ELFCLASS64: %w", f.Class, ErrBadProgram)
	}
	if f.Machine != elf.EM_X86_64 {
		return fmt.Errorf("built for %v, want EM_X86_64: %w", f.Machine, ErrBadProgram)
	}
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return fmt.Errorf("an ELF of type %v, want an executable (ET_EXEC or static-PIE ET_DYN): %w", f.Type, ErrBadProgram)
	}
	entry := false
	loads := 0
	for _, p := range f.Progs {
		switch p.Type {
		case elf.PT_INTERP:
			interp := "?"
			if b, err := io.ReadAll(io.LimitReader(p.Open(), 256)); err == nil {
				interp = string(trimNul(b))
			}
			return fmt.Errorf("dynamically linked (interpreter %s): link it with -static: %w", interp, ErrBadProgram)
		case elf.PT_LOAD:
			loads++
			if p.Flags&elf.PF_X != 0 && f.Entry >= p.Vaddr && f.Entry < p.Vaddr+p.Memsz {
				entry = true
			}
		}
	}
	if f.Type == elf.ET_DYN && f.Entry == 0 {
		return fmt.Errorf("a shared library (ET_DYN without an entry point), not an executable: %w", ErrBadProgram)
	}
	if loads == 0 {
		return fmt.Errorf("no loadable segment (PT_LOAD): %w", ErrBadProgram)
	}
	if !entry {
		return fmt.Errorf("entry point %#x is in no executable segment: %w", f.Entry, ErrBadProgram)
	}
	return nil
}

func trimNul(b []byte) []byte {
	for i, c := range b {
		if c == 0 {
			return b[:i]
		}
	}
	return b
}
