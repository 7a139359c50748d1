package kvm

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrArgsTooLarge: argv, envp and the auxiliary vector do not fit the limit
// for the initial stack.
var ErrArgsTooLarge = errors.New("arguments and environment too large")

// maxStackInfo bounds what the initial stack may hold (Linux allows a
// quarter of the stack limit; a fixed bound is simpler and plenty).
const maxStackInfo = 128 << 10

// Auxiliary vector entry types (include/uapi/linux/auxvec.h).
const (
	atNull     = 0
	atPhdr     = 3
	atPhent    = 4
	atPhnum    = 5
	atPagesz   = 6
	atBase     = 7
	atFlags    = 8
	atEntry    = 9
	atUID      = 11
	atEUID     = 12
	atGID      = 13
	atEGID     = 14
	atPlatform = 15
	atHwcap    = 16
	atClktck   = 17
	atSecure   = 23
	atRandom   = 25
	atHwcap2   = 26
	atExecfn   = 31
)

// stackImage is the process entry state the Linux ABI prescribes (System V
// x86-64 psABI §3.4.1): RSP points at argc, then argv, NULL, envp, NULL, the
// auxiliary vector, and the strings above them.
type stackImage struct {
	args, env []string
	random    [16]byte
	hwcap     uint64
	prog      *Program
}

// build writes the stack ending at top into mem and returns the initial RSP.
func (s *stackImage) build(mem []byte, top uint64) (uint64, error) {
	size := 16 + 16 + len("x86_64") + 1 // random bytes, alignment, platform
	for _, a := range s.args {
		size += len(a) + 1
	}
	for _, e := range s.env {
		size += len(e) + 1
	}
	execfn := "/program"
	if len(s.args) > 0 {
		execfn = s.args[0]
	}
	size += len(execfn) + 1
	phdrs := s.prog.phdrs()
	if s.prog.phdrAddr == 0 {
		size += len(phdrs) + 8
	}
	words := 1 + len(s.args) + 1 + len(s.env) + 1 + 2*19
	size += 8*words + 16
	if size > maxStackInfo {
		return 0, fmt.Errorf("initial stack needs %d bytes, limit %d: %w", size, maxStackInfo, ErrArgsTooLarge)
	}
	if top < uint64(size) || top-uint64(size) < userBase {
		return 0, fmt.Errorf("no room for the initial stack below %#x: %w", top, ErrArgsTooLarge)
	}
	sp := top
	putString := func(str string) uint64 {
		sp -= uint64(len(str) + 1)
		copy(mem[sp:], str)
		mem[sp+uint64(len(str))] = 0
		return sp
	}
	execAddr := putString(execfn)
	platform := putString("x86_64")
	argv := make([]uint64, len(s.args))
	for i, a := range s.args {
		argv[i] = putString(a)
	}
	envp := make([]uint64, len(s.env))
	for i, e := range s.env {
		envp[i] = putString(e)
	}
	sp &^= 15
	sp -= 16
	random := sp
	copy(mem[random:], s.random[:])
	phdrAddr := s.prog.phdrAddr
	if phdrAddr == 0 {
		sp -= uint64(len(phdrs))
		sp &^= 7
		copy(mem[sp:], phdrs)
		phdrAddr = sp
	}
	auxv := []uint64{
		atPhdr, phdrAddr,
		atPhent, phdrSize,
		atPhnum, s.prog.phnum,
		atPagesz, pageSize,
		atBase, 0,
		atFlags, 0,
		atEntry, s.prog.entry,
		atUID, 0, atEUID, 0, atGID, 0, atEGID, 0,
		atSecure, 0,
		atRandom, random,
		atHwcap, s.hwcap,
		atHwcap2, 0,
		atClktck, 100,
		atPlatform, platform,
		atExecfn, execAddr,
		atNull, 0,
	}
	vec := []uint64{uint64(len(s.args))}
	vec = append(vec, argv...)
	vec = append(vec, 0)
	vec = append(vec, envp...)
	vec = append(vec, 0)
	vec = append(vec, auxv...)
	sp -= uint64(8 * len(vec))
	sp &^= 15 // RSP is 16-byte aligned at the entry point
	for i, w := range vec {
		binary.LittleEndian.PutUint64(mem[sp+uint64(8*i):], w)
	}
	return sp, nil
}
