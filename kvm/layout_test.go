package kvm

import (
	"encoding/binary"
	"testing"

	"golang.org/x/sys/unix"
)

// guestMem maps size bytes of zeroed memory outside the Go heap, as a VM's.
func guestMem(t testing.TB, size uint64) []byte {
	t.Helper()
	m, err := unix.Mmap(-1, 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Munmap(m) })
	return m
}

func TestPageTables(t *testing.T) {
	for _, memSize := range []uint64{MinMemory, 64 << 20, 1<<30 + 2<<20, MaxMemory} {
		mem := guestMem(t, memSize)
		guard := memSize - 1<<20 - pageSize
		writeKernel(mem, memSize, guard)
		tests := []struct {
			name                  string
			va                    uint64
			ok, user, write, exec bool
		}{
			{"NULL page", 0, false, false, false, false},
			{"end of NULL page", 0xfff, false, false, false, false},
			{"GDT", gdtAddr, true, false, true, false},
			{"TSS", tssAddr, true, false, true, false},
			{"IDT", idtAddr, true, false, true, false},
			{"stub", stubAddr, true, false, false, true},
			{"stub end", stubAddr + pageSize - 1, true, false, false, true},
			{"PML4", pml4Addr, true, false, true, false},
			{"IST stack", istTop - 8, true, false, true, false},
			{"ring-0 stack", rsp0Top - 8, true, false, true, false},
			{"gate", gateAddr, true, true, false, true},
			{"gate end", gateAddr + pageSize - 1, true, true, false, true},
			{"above the gate and doorbell", lowEnd, false, false, false, false},
			{"below user memory", userBase - 1, false, false, false, false},
			{"user memory", userBase, true, true, true, true},
			{"last byte", memSize - 1, true, true, true, true},
			{"stack guard page", guard, false, false, false, false},
			{"end of the guard page", guard + pageSize - 1, false, false, false, false},
			{"below the guard page", guard - 1, true, true, true, true},
			{"stack bottom", guard + pageSize, true, true, true, true},
			{"start of the guard's 2 MiB", guard &^ (hugePage - 1), true, true, true, true},
			{"past memory", memSize, false, false, false, false},
			{"far past memory", 1 << 40, false, false, false, false},
			{"non-canonical", 1 << 47, false, false, false, false},
		}
		for _, tt := range tests {
			pa, user, write, exec, ok := translate(mem, tt.va)
			if ok != tt.ok || ok && (user != tt.user || write != tt.write || exec != tt.exec || pa != tt.va) {
				t.Errorf("memory %d MiB, %s (%#x): pa %#x ok %v user %v write %v exec %v; want identity, ok %v user %v write %v exec %v",
					memSize>>20, tt.name, tt.va, pa, ok, user, write, exec, tt.ok, tt.user, tt.write, tt.exec)
			}
		}
		// The doorbell is a user page outside guest memory.
		if pa, user, write, exec, ok := translate(mem, bellAddr+8); !ok || pa != gateGPA+8 || !user || !write || exec {
			t.Errorf("memory %d MiB, doorbell: pa %#x ok %v user %v write %v exec %v; want %#x, user, write, no exec",
				memSize>>20, pa, ok, user, write, exec, gateGPA+8)
		}
		if gateGPA < MaxMemory || gateGPA+pageSize > tssKVMAddr {
			t.Errorf("doorbell page %#x overlaps guest memory or KVM's TSS", gateGPA)
		}
		// Every table the walk uses lies in the ring-0 area.
		if int(pdAddr+maxPDs*pageSize) > istTop-0x2000 || guardPT < rsp0Top || guardPT+pageSize > kernelEnd {
			t.Fatalf("page tables overlap the stacks or lie outside the ring-0 area")
		}
	}
}

func TestGateCode(t *testing.T) {
	code := gateCode()
	// mov %eax, bellAddr (absolute, SIB without base); ud2
	if got, want := code[:9], []byte{0x89, 0x04, 0x25, 0x00, 0x00, 0x01, 0x00, 0x0F, 0x0B}; string(got) != string(want) {
		t.Errorf("gate % x, want % x", got, want)
	}
}

func TestStubCode(t *testing.T) {
	code := stubCode()
	if got, want := code[:5], []byte{0xE6, portSyscall, 0x48, 0x0F, 0x07}; string(got) != string(want) {
		t.Errorf("syscall entry % x, want % x (out 0xE0, al; sysretq)", got, want)
	}
	for v := 0; v < numExceptions; v++ {
		off := exceptionStubs - stubAddr + v*exceptionStub
		want := []byte{0x6A, byte(v), 0xE6, portFault, 0xF4, 0xEB, 0xFD}
		if !hasErrorCode(v) {
			want = append([]byte{0x6A, 0x00}, want...)
		}
		if got := code[off : off+len(want)]; string(got) != string(want) {
			t.Errorf("vector %d stub % x, want % x", v, got, want)
		}
		// jmp -3 lands on the hlt before it.
		if hlt := off + len(want) - 3; code[hlt] != 0xF4 {
			t.Errorf("vector %d: jmp target is not hlt", v)
		}
	}
}

func TestDescriptors(t *testing.T) {
	mem := guestMem(t, MinMemory)
	writeKernel(mem, MinMemory, MinMemory-1<<20-pageSize)
	le := binary.LittleEndian
	// SYSCALL/SYSRET selectors derived from STAR must be ours.
	star := uint64(starValue)
	if k := uint16(star >> 32); k != selKernelCode || k+8 != selKernelData {
		t.Errorf("STAR kernel selectors %#x/%#x", k, k+8)
	}
	if u := uint16(star >> 48); (u+16)|3 != selUserCode || (u+8)|3 != selUserData {
		t.Errorf("STAR user selectors %#x/%#x", (u+16)|3, (u+8)|3)
	}
	desc := func(sel uint16) uint64 { return le.Uint64(mem[gdtAddr+uint64(sel&^7):]) }
	tests := []struct {
		sel       uint16
		dpl       uint64
		code, l64 bool
	}{
		{selKernelCode, 0, true, true},
		{selKernelData, 0, false, false},
		{selUserCode, 3, true, true},
		{selUserData, 3, false, false},
	}
	for _, tt := range tests {
		d := desc(tt.sel)
		if p := d >> 47 & 1; p != 1 {
			t.Errorf("selector %#x not present", tt.sel)
		}
		if dpl := d >> 45 & 3; dpl != tt.dpl {
			t.Errorf("selector %#x DPL %d, want %d", tt.sel, dpl, tt.dpl)
		}
		if code := d>>43&1 == 1; code != tt.code {
			t.Errorf("selector %#x code %v, want %v", tt.sel, code, tt.code)
		}
		if l := d>>53&1 == 1; l != tt.l64 {
			t.Errorf("selector %#x L %v, want %v", tt.sel, l, tt.l64)
		}
	}
	lo, hi := desc(selTSS), le.Uint64(mem[gdtAddr+selTSS+8:])
	base := lo>>16&0xFFFFFF | lo>>56<<24 | hi<<32
	if base != tssAddr || lo&0xFFFF != tssLimit || lo>>40&0xFF != 0x8B {
		t.Errorf("TSS descriptor base %#x limit %#x type %#x", base, lo&0xFFFF, lo>>40&0xFF)
	}
	if rsp0 := le.Uint64(mem[tssAddr+4:]); rsp0 != rsp0Top {
		t.Errorf("TSS RSP0 %#x", rsp0)
	}
	if ist1 := le.Uint64(mem[tssAddr+0x24:]); ist1 != istTop {
		t.Errorf("TSS IST1 %#x", ist1)
	}
	if iomap := le.Uint16(mem[tssAddr+0x66:]); iomap <= tssLimit {
		t.Errorf("TSS I/O map base %#x inside the TSS: ring 3 could get ports", iomap)
	}
	for v := 0; v < numExceptions; v++ {
		g := mem[idtAddr+16*v:]
		off := uint64(le.Uint16(g[0:])) | uint64(le.Uint16(g[6:]))<<16 | uint64(le.Uint32(g[8:]))<<32
		if off != uint64(exceptionStubs+v*exceptionStub) || le.Uint16(g[2:]) != selKernelCode || g[4] != 1 || g[5] != 0x8E {
			t.Errorf("IDT gate %d: offset %#x selector %#x ist %d type %#x", v, off, le.Uint16(g[2:]), g[4], g[5])
		}
	}
	// Vectors past the exceptions have no gate: INT n from ring 3 faults.
	if !isZero(mem[idtAddr+16*numExceptions : idtAddr+pageSize]) {
		t.Errorf("IDT has gates past the exceptions")
	}
}
