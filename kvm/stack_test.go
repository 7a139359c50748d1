package kvm

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

func cstring(mem []byte, addr uint64) string {
	end := addr
	for mem[end] != 0 {
		end++
	}
	return string(mem[addr:end])
}

func TestStack(t *testing.T) {
	p, err := Load(minimalELF())
	if err != nil {
		t.Fatal(err)
	}
	outside := *p
	outside.phdrAddr = 0 // as if no segment held the program headers
	for _, prog := range []*Program{p, &outside} {
		const memSize = 8 << 20
		mem := guestMem(t, memSize)
		si := stackImage{
			args:  []string{"/bin/prog", "one", ""},
			env:   []string{"A=1", "GREETING=hello world"},
			hwcap: 0x178bfbff,
			prog:  prog,
		}
		copy(si.random[:], "0123456789abcdef")
		rsp, err := si.build(mem, memSize)
		if err != nil {
			t.Fatal(err)
		}
		if rsp%16 != 0 {
			t.Errorf("rsp %#x not 16-byte aligned", rsp)
		}
		le := binary.LittleEndian
		w := func(i int) uint64 { return le.Uint64(mem[rsp+uint64(8*i):]) }
		argc := int(w(0))
		var args, env []string
		i := 1
		for ; w(i) != 0; i++ {
			args = append(args, cstring(mem, w(i)))
		}
		if len(args) != argc {
			t.Errorf("argc %d, %d argv entries", argc, len(args))
		}
		for i++; w(i) != 0; i++ {
			env = append(env, cstring(mem, w(i)))
		}
		auxv := map[uint64]uint64{}
		for i++; w(i) != atNull; i += 2 {
			auxv[w(i)] = w(i + 1)
		}
		if strings.Join(args, "|") != "/bin/prog|one|" || strings.Join(env, "|") != "A=1|GREETING=hello world" {
			t.Errorf("argv %q envp %q", args, env)
		}
		want := map[uint64]uint64{atPhent: phdrSize, atPhnum: 1, atPagesz: pageSize, atEntry: 0x400100, atHwcap: 0x178bfbff, atClktck: 100, atSecure: 0, atBase: 0}
		for k, v := range want {
			if got, ok := auxv[k]; !ok || got != v {
				t.Errorf("auxv[%d] = %#x (present %v), want %#x", k, got, ok, v)
			}
		}
		if r := auxv[atRandom]; string(mem[r:r+16]) != "0123456789abcdef" {
			t.Errorf("AT_RANDOM bytes %q", mem[r:r+16])
		}
		if got := cstring(mem, auxv[atExecfn]); got != "/bin/prog" {
			t.Errorf("AT_EXECFN %q", got)
		}
		if got := cstring(mem, auxv[atPlatform]); got != "x86_64" {
			t.Errorf("AT_PLATFORM %q", got)
		}
		ph := auxv[atPhdr]
		if prog.phdrAddr != 0 && ph != prog.phdrAddr {
			t.Errorf("AT_PHDR %#x, want the loaded headers at %#x", ph, prog.phdrAddr)
		}
		if prog.phdrAddr == 0 && string(mem[ph:ph+phdrSize]) != string(prog.phdrs()) {
			t.Errorf("AT_PHDR %#x does not hold a copy of the program headers", ph)
		}
	}
}

func TestStackTooLarge(t *testing.T) {
	p, _ := Load(minimalELF())
	mem := guestMem(t, MinMemory)
	si := stackImage{args: []string{"x"}, env: []string{strings.Repeat("A", maxStackInfo)}, prog: p}
	if _, err := si.build(mem, MinMemory); !errors.Is(err, ErrArgsTooLarge) {
		t.Errorf("build = %v, want ErrArgsTooLarge", err)
	}
}
