package kvm

import "encoding/binary"

// Guest physical memory is one slot, identity-mapped (virtual == physical).
// The first 2 MiB belong to the ring-0 stub and are supervisor-only; the
// program, its heap, its mmap area and its stack live above:
//
//	0x000000  page 0, not present (a NULL dereference faults)
//	0x001000  GDT, then the TSS at 0x1080
//	0x002000  IDT: 32 exception gates, all on IST1
//	0x003000  stub code (read-only): syscall entry, exception entries
//	0x004000  PML4
//	0x005000  PDPT
//	0x006000  page table for the first 2 MiB (4 KiB pages)
//	0x007000  page directories, one per GiB (up to 3)
//	0x00a000  exception stack (IST1), top at 0xc000
//	0x00c000  ring-0 stack (TSS.RSP0), top at 0xe000
//	0x00e000  page table for the 2 MiB around the stack guard page
//	0x00f000  syscall gate (user, read-only): LSTAR where the vCPU does not
//	          switch to ring 0 on SYSCALL (kvm_pvm, see gateCode)
//	0x010000  gate doorbell: a user page mapped to gateGPA, outside guest
//	          memory, so that a write to it exits to the host (KVM_EXIT_MMIO)
//	0x200000  user memory: ELF segments, brk heap ↑ … ↓ mmap area,
//	          a guard page (not present), stack
//	memSize   end of guest memory; everything above is not present
const (
	pageSize = 4096
	hugePage = 2 << 20

	gdtAddr   = 0x1000
	tssAddr   = 0x1080
	tssLimit  = 0x67
	idtAddr   = 0x2000
	stubAddr  = 0x3000
	pml4Addr  = 0x4000
	pdptAddr  = 0x5000
	ptAddr    = 0x6000
	pdAddr    = 0x7000
	maxPDs    = 3
	istTop    = 0xc000
	rsp0Top   = 0xe000
	guardPT   = 0xe000
	kernelEnd = 0xf000 // last mapped byte of the ring-0 area, exclusive
	gateAddr  = 0xf000
	bellAddr  = 0x10000
	lowEnd    = 0x11000 // end of everything mapped below userBase

	// gateGPA is the guest physical page behind bellAddr: above MaxMemory
	// and below tssKVMAddr, so no memory slot covers it.
	gateGPA = 0xf000_0000

	userBase = hugePage // lowest address the program may use

	// MinMemory and MaxMemory bound Options.Memory.
	MinMemory = 4 << 20
	MaxMemory = maxPDs << 30

	// tssKVMAddr is the three pages KVM_SET_TSS_ADDR asks for (Intel real
	// mode emulation); it lies above MaxMemory so it never overlaps the slot.
	tssKVMAddr = 0xfffbd000
)

// Segment selectors. SYSCALL loads CS from STAR[47:32] and SS from that +8;
// SYSRET (64-bit) loads CS from STAR[63:48]+16 and SS from STAR[63:48]+8,
// which is why user data sits below user code (Intel SDM vol. 2B, SYSRET).
// They are Linux's own (__KERNEL_CS 0x10 … __USER_CS 0x33, the TSS at GDT
// entry 8): kvm_pvm runs the guest's user mode on the host's user segments
// and refuses a STAR whose user selectors differ from the host's.
const (
	selKernelCode = 0x10
	selKernelData = 0x18
	selUser32Code = 0x20 | 3
	selUserData   = 0x28 | 3
	selUserCode   = 0x30 | 3
	selTSS        = 0x40
	gdtEntries    = 10 // up to the TSS's two slots

	starValue = uint64(selUser32Code)<<48 | uint64(selKernelCode)<<32
	// SFMASK clears TF, IF, DF, IOPL, NT and AC on syscall entry.
	sfmaskValue = 0x47700

	// userFlags are the RFLAGS bits a return through the gate takes from
	// R11 (CF PF AF ZF SF TF IF DF OF AC ID): never IOPL, NT, RF or VM,
	// since a program may jump to the gate with any R11.
	userFlags = 0x1 | 0x4 | 0x10 | 0x40 | 0x80 | 0x100 | 0x200 | 0x400 | 0x800 | 0x40000 | 0x200000
)

// I/O ports the stub writes to; each OUT is a cheap exit to the host.
const (
	portSyscall = 0xE0
	portFault   = 0xE1
)

const (
	syscallEntry   = stubAddr
	exceptionStubs = stubAddr + 0x10
	exceptionStub  = 16 // bytes per vector
	numExceptions  = 32
)

// Control register and EFER bits.
const (
	cr0PE = 1 << 0
	cr0MP = 1 << 1
	cr0ET = 1 << 4
	cr0NE = 1 << 5
	cr0WP = 1 << 16
	cr0AM = 1 << 18
	cr0PG = 1 << 31

	cr4PAE        = 1 << 5
	cr4OSFXSR     = 1 << 9
	cr4OSXMMEXCPT = 1 << 10

	eferSCE = 1 << 0
	eferLME = 1 << 8
	eferLMA = 1 << 10
	eferNXE = 1 << 11
)

// Page table entry bits.
const (
	pteP  = 1 << 0
	pteRW = 1 << 1
	pteUS = 1 << 2
	pteA  = 1 << 5
	pteD  = 1 << 6
	ptePS = 1 << 7
	pteNX = 1 << 63

	pteAddrMask = 0x000f_ffff_ffff_f000
)

// hasErrorCode reports whether the CPU pushes an error code for a vector
// (Intel SDM vol. 3A, table 6-1).
func hasErrorCode(v int) bool {
	switch v {
	case 8, 10, 11, 12, 13, 14, 17, 21, 29, 30:
		return true
	}
	return false
}

// stubCode returns the ring-0 code, placed at stubAddr.
//
// Syscall entry (LSTAR = stubAddr):
//
//	E6 E0      out 0xE0, al   ; exit to the host, which reads and writes
//	                          ; the registers (RAX = number / result)
//	48 0F 07   sysretq        ; back to ring 3: RIP = RCX, RFLAGS = R11
//
// The stub keeps the user's stack: OUT touches no memory, and SYSCALL left
// RCX and R11 as the return state, so nothing needs saving.
//
// Exception entry for vector v at exceptionStubs + 16*v, on the IST1 stack:
//
//	6A 00      push 0          ; only where the CPU pushes no error code
//	6A vv      push v
//	E6 E1      out 0xE1, al    ; the host reads the frame at RSP:
//	                           ; vector, error code, RIP, CS, RFLAGS, RSP, SS
//	F4         hlt             ; never resumed; a reset restores the state
//	EB FD      jmp hlt
func stubCode() []byte {
	code := make([]byte, pageSize)
	for i := range code {
		code[i] = 0xF4 // hlt: a stray jump into the stub stops
	}
	copy(code, []byte{0xE6, portSyscall, 0x48, 0x0F, 0x07})
	for v := 0; v < numExceptions; v++ {
		off := exceptionStubs - stubAddr + v*exceptionStub
		var s []byte
		if !hasErrorCode(v) {
			s = append(s, 0x6A, 0x00)
		}
		s = append(s, 0x6A, byte(v), 0xE6, portFault, 0xF4, 0xEB, 0xFD)
		copy(code[off:], s)
	}
	return code
}

// gateCode returns the syscall gate, placed at gateAddr. It is LSTAR on
// kvm_pvm, whose vCPU does not switch to ring 0 on a user SYSCALL but jumps
// to LSTAR in user mode (with RCX and R11 set as usual): there the ring-0
// stub's page would fault, and the fault's round trip through the guest's
// IDT costs about twice a direct exit. The gate instead writes RAX to the
// doorbell page, whose guest physical address no memory slot covers, so
// the vCPU exits to the host with KVM_EXIT_MMIO still in user mode; the
// host runs the call and resumes at RCX with R11's flags (VM.gateReturn).
//
//	89 04 25 00 00 01 00   mov %eax, bellAddr
//	0F 0B                  ud2   ; never reached: the host resumes at RCX
//
// A program that jumps to the gate or writes the doorbell itself gains
// nothing: it is a system call with a return address of its choosing.
func gateCode() []byte {
	code := make([]byte, pageSize)
	for i := range code {
		code[i] = 0xCC // int3: a stray jump into the gate faults
	}
	copy(code, []byte{0x89, 0x04, 0x25, 0, 0, 0, 0, 0x0F, 0x0B})
	binary.LittleEndian.PutUint32(code[3:], bellAddr)
	return code
}

// Segment descriptors (Intel SDM vol. 3A, 3.4.5). Accessed bits are preset so
// the CPU never writes to the GDT.
const (
	descKernelCode = 0x00AF9B000000FFFF // 64-bit code, DPL 0
	descKernelData = 0x00CF93000000FFFF // data, DPL 0
	descUser32Code = 0x00CFFB000000FFFF // 32-bit code, DPL 3 (unused; STAR needs the slot)
	descUserData   = 0x00CFF3000000FFFF // data, DPL 3
	descUserCode   = 0x00AFFB000000FFFF // 64-bit code, DPL 3
)

// writeKernel lays out the GDT, TSS, IDT, stub and page tables in mem, which
// must be at least memSize long and zero in the first 2 MiB. guard is the
// page below the stack, left unmapped so that a stack overflow faults.
func writeKernel(mem []byte, memSize, guard uint64) {
	le := binary.LittleEndian
	gdt := mem[gdtAddr:]
	for sel, d := range map[uint64]uint64{selKernelCode: descKernelCode, selKernelData: descKernelData,
		selUser32Code &^ 3: descUser32Code, selUserData &^ 3: descUserData, selUserCode &^ 3: descUserCode} {
		le.PutUint64(gdt[sel:], d)
	}
	// 64-bit TSS descriptor, type 0xB (busy: TR is loaded as busy).
	base := uint64(tssAddr)
	lo := uint64(tssLimit) | (base&0xFFFFFF)<<16 | uint64(0x8B)<<40 | (base>>24&0xFF)<<56
	le.PutUint64(gdt[selTSS:], lo)
	le.PutUint64(gdt[selTSS+8:], base>>32)

	tss := mem[tssAddr:]
	le.PutUint64(tss[4:], rsp0Top)       // RSP0
	le.PutUint64(tss[0x24:], istTop)     // IST1
	le.PutUint16(tss[0x66:], tssLimit+1) // I/O map base beyond the limit: no I/O bitmap

	idt := mem[idtAddr:]
	for v := 0; v < numExceptions; v++ {
		off := uint64(exceptionStubs + v*exceptionStub)
		g := idt[v*16:]
		le.PutUint16(g[0:], uint16(off))
		le.PutUint16(g[2:], selKernelCode)
		g[4] = 1    // IST1
		g[5] = 0x8E // present, DPL 0, 64-bit interrupt gate
		le.PutUint16(g[6:], uint16(off>>16))
		le.PutUint32(g[8:], uint32(off>>32))
	}
	copy(mem[stubAddr:], stubCode())
	copy(mem[gateAddr:], gateCode())
	writePageTables(mem, memSize, guard)
}

// writePageTables identity-maps [0, memSize): 4 KiB pages for the ring-0
// area (supervisor only, the stub read-only, page 0 absent), the gate (user,
// read-only) and the doorbell (user, to gateGPA), and 2 MiB user pages from
// userBase up, except for the 2 MiB holding the guard page, which
// get 4 KiB pages with the guard absent. Accessed and dirty bits are preset
// so the CPU never writes to the tables.
func writePageTables(mem []byte, memSize, guard uint64) {
	le := binary.LittleEndian
	const dir = pteP | pteRW | pteUS | pteA
	le.PutUint64(mem[pml4Addr:], pdptAddr|dir)
	npd := (memSize + 1<<30 - 1) >> 30
	for i := uint64(0); i < npd; i++ {
		le.PutUint64(mem[pdptAddr+8*i:], (pdAddr+i*pageSize)|dir)
	}
	le.PutUint64(mem[pdAddr:], ptAddr|dir)
	for a := uint64(userBase); a < memSize; a += hugePage {
		i := a / hugePage // index across consecutive PDs
		le.PutUint64(mem[pdAddr+8*i:], a|pteP|pteRW|pteUS|ptePS|pteA|pteD)
	}
	if guard >= userBase && guard < memSize {
		base := guard &^ (hugePage - 1)
		le.PutUint64(mem[pdAddr+8*(base/hugePage):], guardPT|dir)
		for i := uint64(0); i < hugePage/pageSize; i++ {
			if a := base + i*pageSize; a != guard {
				le.PutUint64(mem[guardPT+8*i:], a|pteP|pteRW|pteUS|pteA|pteD)
			}
		}
	}
	for a := uint64(pageSize); a < kernelEnd; a += pageSize {
		flags := uint64(pteP | pteRW | pteA | pteD | pteNX)
		if a == stubAddr {
			flags = pteP | pteA
		}
		le.PutUint64(mem[ptAddr+8*(a/pageSize):], a|flags)
	}
	le.PutUint64(mem[ptAddr+8*(gateAddr/pageSize):], gateAddr|pteP|pteUS|pteA)
	le.PutUint64(mem[ptAddr+8*(bellAddr/pageSize):], gateGPA|pteP|pteRW|pteUS|pteA|pteD|pteNX)
}

// translate walks the page tables in mem like the MMU does and returns the
// physical address and effective permissions of virtual address va.
func translate(mem []byte, va uint64) (pa uint64, user, write, exec, ok bool) {
	le := binary.LittleEndian
	entry := func(table, idx uint64) (uint64, bool) {
		off := table + idx*8
		if off+8 > uint64(len(mem)) {
			return 0, false
		}
		e := le.Uint64(mem[off:])
		return e, e&pteP != 0
	}
	if va>>47 != 0 {
		return 0, false, false, false, false
	}
	user, write, exec = true, true, true
	table := uint64(pml4Addr)
	for level, shift := 0, uint(39); ; level, shift = level+1, shift-9 {
		e, present := entry(table, va>>shift&511)
		if !present {
			return 0, false, false, false, false
		}
		user = user && e&pteUS != 0
		write = write && e&pteRW != 0
		exec = exec && e&pteNX == 0
		if level == 3 || (level >= 1 && e&ptePS != 0) {
			mask := uint64(1)<<shift - 1
			return e&pteAddrMask&^mask | va&mask, user, write, exec, true
		}
		table = e & pteAddrMask
	}
}
