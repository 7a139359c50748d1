package kvm

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Errors from VM methods.
var (
	// ErrNeedsReset: the program exited or faulted; Reset the VM (or
	// close it) before running it again.
	ErrNeedsReset = errors.New("vm needs a reset")
	// ErrNoSnapshot: Reset was called on a VM that has no snapshot.
	ErrNoSnapshot = errors.New("vm has no snapshot")
	// ErrClosed: the VM or snapshot was closed.
	ErrClosed = errors.New("closed")
	// ErrMemory: the memory size is out of range or too small for the
	// program.
	ErrMemory = errors.New("bad guest memory size")
)

// Options configure a VM started from a Program.
type Options struct {
	// Memory is the guest memory size in bytes, a multiple of 2 MiB
	// between MinMemory and MaxMemory; 0 means 64 MiB. It is the
	// program's hard limit: image, heap, mmap area and stack.
	Memory uint64
	// Stack is the stack size; 0 means 1 MiB.
	Stack uint64
	// Args is argv; empty means one argument, "/program".
	Args []string
	// Env is envp, "NAME=value" strings.
	Env []string
	IO
}

const (
	defaultMemory = 64 << 20
	defaultStack  = 1 << 20
	// dropAbove: a reset that finds more dirty pages than this drops
	// them (MADV_DONTNEED, the memory goes back to the host) instead of
	// copying the snapshot's contents over them.
	dropAbove = 512
)

// VM is one virtual machine with one vCPU running one program. A VM is not
// safe for concurrent use, except that the context passed to Run may be
// cancelled from anywhere. Close it when done.
type VM struct {
	host   *host
	vmfd   int
	vcpufd int
	run    []byte // the kvm_run mapping shared with the kernel
	mem    []byte // guest memory, mapped at guest physical 0
	view   []byte // read-only view of the snapshot's memory, after a snapshot
	memory *Memory

	emu  emu
	snap *Snapshot // what Reset restores, or nil

	hostDirty []uint64 // pages the host wrote since the last reset
	dirtyLog  []uint64 // buffer for KVM_GET_DIRTY_LOG

	guard uint64 // the unmapped page below the stack

	pendingIO bool // the vCPU stopped in an OUT that KVM_RUN must complete
	ended     bool // exited or faulted: Run needs a Reset
	needFull  bool // restore every part of the vCPU on Reset, not only registers

	kickMu sync.Mutex
	tid    int // thread in KVM_RUN, or 0

	closed bool
}

func le32(b []byte) uint32 { return binary.LittleEndian.Uint32(b) }

func (v *VM) regs() *kvmRegs   { return (*kvmRegs)(unsafe.Pointer(&v.run[runSyncRegs])) }
func (v *VM) sregs() *kvmSregs { return (*kvmSregs)(unsafe.Pointer(&v.run[runSyncSregs])) }
func (v *VM) runWord(off int) *uint64 {
	return (*uint64)(unsafe.Pointer(&v.run[off]))
}

// NewVM starts the program in a new VM: it lays out guest memory, loads
// the segments, builds the stack with argv, envp and auxv, and leaves the
// vCPU at the entry point in ring 3. Nothing runs until Run.
func (p *Program) NewVM(opts Options) (*VM, error) {
	h, err := kvmHost()
	if err != nil {
		return nil, err
	}
	return p.newVM(h, opts)
}

func (p *Program) newVM(h *host, opts Options) (*VM, error) {
	memSize := opts.Memory
	if memSize == 0 {
		memSize = defaultMemory
	}
	stack := opts.Stack
	if stack == 0 {
		stack = defaultStack
	}
	if memSize < MinMemory || memSize > MaxMemory || memSize%hugePage != 0 {
		return nil, fmt.Errorf("%d bytes, want a multiple of 2 MiB from %d to %d: %w", memSize, MinMemory, MaxMemory, ErrMemory)
	}
	stack, _ = pageUp(stack)
	if stack > memSize/2 || p.end > memSize-stack-pageSize {
		return nil, fmt.Errorf("program image ends at %#x, stack of %#x, memory %#x: %w", p.end, stack, memSize, ErrMemory)
	}
	v, err := newVM(h, memSize, -1)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*VM, error) {
		v.Close()
		return nil, err
	}
	guard := memSize - stack - pageSize
	writeKernel(v.mem, memSize, guard)
	p.place(v.mem)
	args := opts.Args
	if len(args) == 0 {
		args = []string{"/program"}
	}
	si := stackImage{args: args, env: opts.Env, prog: p, hwcap: hwcap(h)}
	if _, err := rand.Read(si.random[:]); err != nil {
		return fail(err)
	}
	rsp, err := si.build(v.mem, memSize)
	if err != nil {
		return fail(err)
	}
	v.emu.st = emuState{
		brkStart: p.end, brk: p.end, brkHigh: p.end,
		mmapTop: guard, mmapLow: guard,
	}
	v.emu.stack = stack
	v.guard = guard
	v.emu.execfn = args[0]
	v.emu.io = opts.IO

	sregs, err := v.getSregs()
	if err != nil {
		return fail(err)
	}
	initSregs(&sregs)
	fpu := kvmFPU{FCW: 0x37f, MXCSR: 0x1f80}
	regs := kvmRegs{RIP: p.entry, RSP: rsp, RFLAGS: 2}
	if err := v.setState(&regs, &sregs, &fpu, nil, nil); err != nil {
		return fail(err)
	}
	return v, nil
}

// hwcap is AT_HWCAP: CPUID.1:EDX, as Linux reports it on x86.
func hwcap(h *host) uint64 {
	for _, e := range h.cpuid {
		if e.Function == 1 {
			return uint64(e.EDX)
		}
	}
	return 0
}

// newVM creates the VM, its memory (anonymous, or a private copy-on-write
// mapping of memfd when memfd ≥ 0) and its vCPU with CPUID set.
func newVM(h *host, memSize uint64, memfd int) (v *VM, err error) {
	v = &VM{host: h, vmfd: -1, vcpufd: -1}
	v.emu.start = time.Now()
	v.emu.rng = newRNG()
	v.emu.setFS = v.setFSBase
	defer func() {
		if err != nil {
			v.Close()
			v = nil
		}
	}()
	for {
		r, err := ioctl(h.fd, kvmCreateVM, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("KVM_CREATE_VM: %w", err)
		}
		v.vmfd = int(r)
		break
	}
	if _, err := ioctl(v.vmfd, kvmSetTSSAddr, tssKVMAddr); err != nil {
		return nil, fmt.Errorf("KVM_SET_TSS_ADDR: %w", err)
	}
	flags := unix.MAP_PRIVATE | unix.MAP_NORESERVE
	fd := -1
	if memfd >= 0 {
		fd = memfd
	} else {
		flags |= unix.MAP_ANONYMOUS
	}
	v.mem, err = unix.Mmap(fd, 0, int(memSize), unix.PROT_READ|unix.PROT_WRITE, flags)
	if err != nil {
		return nil, fmt.Errorf("map %d bytes of guest memory: %w", memSize, err)
	}
	pages := memSize / pageSize
	v.hostDirty = make([]uint64, (pages+63)/64)
	v.dirtyLog = make([]uint64, (pages+63)/64)
	v.memory = newMemory(v.mem, v.hostDirty)
	v.emu.mem = v.memory
	region := kvmUserspaceMemoryRegion{
		Slot: 0, Flags: memLogDirtyPages, GuestPhysAddr: 0, MemorySize: memSize,
		UserspaceAddr: uint64(uintptr(unsafe.Pointer(&v.mem[0]))),
	}
	if err := ioctlPtr(v.vmfd, kvmSetUserMemoryRegion, unsafe.Pointer(&region)); err != nil {
		return nil, fmt.Errorf("KVM_SET_USER_MEMORY_REGION: %w", err)
	}
	r, err := ioctl(v.vmfd, kvmCreateVCPU, 0)
	if err != nil {
		return nil, fmt.Errorf("KVM_CREATE_VCPU: %w", err)
	}
	v.vcpufd = int(r)
	v.run, err = unix.Mmap(v.vcpufd, 0, h.runSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("map kvm_run: %w", err)
	}
	*v.runWord(runValidRegs) = syncRegs
	// CPUID before the special registers: kernels since 6.x refuse long
	// mode in KVM_SET_SREGS until the guest's CPUID says it has it.
	var cb cpuidBuf
	cb.hdr.NEnt = uint32(copy(cb.entries[:], h.cpuid))
	if err := ioctlPtr(v.vcpufd, kvmSetCPUID2, unsafe.Pointer(&cb)); err != nil {
		return nil, fmt.Errorf("KVM_SET_CPUID2: %w", err)
	}
	return v, nil
}

// initSregs puts the vCPU in 64-bit mode, ring 3, with paging on.
func initSregs(s *kvmSregs) {
	code := kvmSegment{Base: 0, Limit: 0xffffffff, Selector: selUserCode, Type: 0xB,
		Present: 1, DPL: 3, S: 1, L: 1, G: 1}
	data := kvmSegment{Base: 0, Limit: 0xffffffff, Selector: selUserData, Type: 0x3,
		Present: 1, DPL: 3, DB: 1, S: 1, G: 1}
	s.CS = code
	s.SS, s.DS, s.ES, s.FS, s.GS = data, data, data, data, data
	s.TR = kvmSegment{Base: tssAddr, Limit: tssLimit, Selector: selTSS, Type: 0xB, Present: 1}
	s.LDT = kvmSegment{Type: 0x2, Unusable: 1}
	s.GDT = kvmDtable{Base: gdtAddr, Limit: gdtEntries*8 - 1}
	s.IDT = kvmDtable{Base: idtAddr, Limit: numExceptions*16 - 1}
	s.CR0 = cr0PE | cr0MP | cr0ET | cr0NE | cr0WP | cr0AM | cr0PG
	s.CR3 = pml4Addr
	s.CR4 = cr4PAE | cr4OSFXSR | cr4OSXMMEXCPT
	s.EFER = eferSCE | eferLME | eferLMA | eferNXE
	s.CR2, s.CR8 = 0, 0
	s.InterruptBitmap = [4]uint64{}
}

// msrs are the model-specific registers the stub relies on. SYSCALL enters
// the ring-0 stub, or the user-mode gate where the flavour of KVM does not
// switch to ring 0 (kvm_pvm).
func (v *VM) setMSRs(fsBase uint64) error {
	entry := uint64(syscallEntry)
	if v.host.flavour == FlavourPVM {
		entry = gateAddr
	}
	entries := []kvmMSREntry{
		{Index: msrSTAR, Data: starValue},
		{Index: msrLSTAR, Data: entry},
		{Index: msrCSTAR, Data: entry},
		{Index: msrSFMASK, Data: sfmaskValue},
		{Index: msrFSBase, Data: fsBase},
		{Index: msrGSBase, Data: 0},
		{Index: msrKernelGSBase, Data: 0},
	}
	return v.writeMSRs(entries)
}

func (v *VM) writeMSRs(entries []kvmMSREntry) error {
	var buf struct {
		hdr kvmMSRs
		e   [8]kvmMSREntry
	}
	buf.hdr.NMSRs = uint32(copy(buf.e[:], entries))
	r, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(v.vcpufd), kvmSetMSRs, uintptr(unsafe.Pointer(&buf)))
	if e != 0 {
		return fmt.Errorf("KVM_SET_MSRS: %w", e)
	}
	if int(r) != len(entries) {
		return fmt.Errorf("KVM_SET_MSRS set %d of %d registers (first refused: %#x)", r, len(entries), entries[r].Index)
	}
	return nil
}

func (v *VM) setFSBase(base uint64) error {
	return v.writeMSRs([]kvmMSREntry{{Index: msrFSBase, Data: base}})
}

func (v *VM) getSregs() (kvmSregs, error) {
	var s kvmSregs
	if err := ioctlPtr(v.vcpufd, kvmGetSregs, unsafe.Pointer(&s)); err != nil {
		return s, fmt.Errorf("KVM_GET_SREGS: %w", err)
	}
	return s, nil
}

// setState loads the whole vCPU state with ioctls; x87/SSE state from fpu
// or xsave, whichever is given.
func (v *VM) setState(regs *kvmRegs, sregs *kvmSregs, fpu *kvmFPU, xsave *kvmXSAVE, events *kvmVCPUEvents) error {
	if err := ioctlPtr(v.vcpufd, kvmSetSregs, unsafe.Pointer(sregs)); err != nil {
		return fmt.Errorf("KVM_SET_SREGS: %w", err)
	}
	if err := v.setMSRs(sregs.FS.Base); err != nil {
		return err
	}
	if err := ioctlPtr(v.vcpufd, kvmSetRegs, unsafe.Pointer(regs)); err != nil {
		return fmt.Errorf("KVM_SET_REGS: %w", err)
	}
	if fpu != nil {
		if err := ioctlPtr(v.vcpufd, kvmSetFPU, unsafe.Pointer(fpu)); err != nil {
			return fmt.Errorf("KVM_SET_FPU: %w", err)
		}
	}
	if xsave != nil {
		if err := ioctlPtr(v.vcpufd, kvmSetXSAVE, unsafe.Pointer(xsave)); err != nil {
			return fmt.Errorf("KVM_SET_XSAVE: %w", err)
		}
	}
	if events != nil {
		if err := ioctlPtr(v.vcpufd, kvmSetVCPUEvents, unsafe.Pointer(events)); err != nil {
			return fmt.Errorf("KVM_SET_VCPU_EVENTS: %w", err)
		}
	}
	// The sync-regs copy in kvm_run is stale now; nothing may write it back.
	*v.runWord(runDirtyRegs) = 0
	v.pendingIO = false
	return nil
}

// SetIO replaces the handler and output writers, for example per request.
func (v *VM) SetIO(io IO) { v.emu.io = io }

// Memory returns the program's memory, for reading a result after a pause.
// It is valid until the VM is closed.
func (v *VM) Memory() *Memory { return v.memory }

// Run runs the program until it exits, faults, pauses (the Handler asks
// to), or ctx ends (ExitTimeout). Guest failures are reported in the Exit;
// the error is for the host's failures and a Handler's error.
//
// A timeout stops the vCPU from another goroutine: immediate_exit is set in
// kvm_run and the vCPU's thread is signalled, which makes KVM_RUN return
// EINTR. An EINTR alone is never taken for a timeout: only the context
// decides.
func (v *VM) Run(ctx context.Context) (Exit, error) {
	if v.closed {
		return Exit{}, ErrClosed
	}
	if v.ended {
		return Exit{}, ErrNeedsReset
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	v.kickMu.Lock()
	v.tid = unix.Gettid()
	v.kickMu.Unlock()
	stop := context.AfterFunc(ctx, v.kick)
	defer func() {
		stop()
		v.kickMu.Lock()
		v.tid = 0
		v.kickMu.Unlock()
	}()
	exitWord := (*uint32)(unsafe.Pointer(&v.run[0]))
	for {
		if ctx.Err() != nil {
			v.needFull = true
			// KVM_RUN stored the registers on its way out (sync regs).
			return v.exit(Exit{Reason: ExitTimeout, Cause: context.Cause(ctx), RIP: v.regs().RIP}), nil
		}
		_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(v.vcpufd), kvmRun, 0)
		if e == unix.EINTR || e == unix.EAGAIN {
			atomic.StoreUint32(exitWord, 0) // clear immediate_exit
			continue
		}
		v.pendingIO = false
		if e != 0 {
			v.ended, v.needFull = true, true
			return Exit{}, fmt.Errorf("KVM_RUN: %w", e)
		}
		switch reason := le32(v.run[runExitReason:]); reason {
		case exitIO:
			port := binary.LittleEndian.Uint16(v.run[runIOPort:])
			v.pendingIO = true
			switch port {
			case portSyscall:
				if e, done, err := v.syscall(false); done {
					return e, err
				}
			case portFault:
				return v.fault(v.exceptionFault()), nil
			default:
				return v.fault(&Fault{Kind: fmt.Sprintf("I/O to port %#x", port), Vector: -1, RIP: v.regs().RIP}), nil
			}
		case exitShutdown:
			// KVM has already reset the vCPU (INIT): where it was is lost.
			return v.fault(&Fault{Kind: "triple fault", Vector: -1}), nil
		case exitHLT:
			return v.fault(&Fault{Kind: "halted", Vector: -1, RIP: v.regs().RIP}), nil
		case exitMMIO:
			addr := binary.LittleEndian.Uint64(v.run[runExitData:])
			v.pendingIO = true
			if addr&^(pageSize-1) == gateGPA && v.run[runMMIOIsWrite] != 0 {
				if e, done, err := v.syscall(true); done {
					return e, err
				}
				continue
			}
			return v.fault(&Fault{Kind: "access outside guest memory", Vector: -1, RIP: v.regs().RIP, Addr: addr}), nil
		case exitInternalError:
			sub := le32(v.run[runExitData:])
			return v.fault(&Fault{Kind: fmt.Sprintf("KVM internal error (suberror %d)", sub), Vector: -1, RIP: v.regs().RIP}), nil
		case exitFailEntry:
			v.ended, v.needFull = true, true
			code := binary.LittleEndian.Uint64(v.run[runExitData:])
			return Exit{}, fmt.Errorf("KVM_RUN: entry failed, hardware reason %#x", code)
		default:
			return v.fault(&Fault{Kind: fmt.Sprintf("unexpected KVM exit %d", reason), Vector: -1, RIP: v.regs().RIP}), nil
		}
	}
}

// syscall runs the system call the vCPU stopped on (number and arguments
// in its registers) and reports whether Run must return, with what. Through
// the ring-0 stub, the stub's SYSRET returns to the program; through the
// gate, the vCPU is still in user mode and resumes where SYSRET would have
// taken it: RIP = RCX, RFLAGS = R11 (the user's bits only).
func (v *VM) syscall(gate bool) (Exit, bool, error) {
	r := v.regs()
	act := v.emu.dispatch(r)
	if gate {
		r.RIP = r.RCX
		r.RFLAGS = r.R11&userFlags | 2
	}
	*v.runWord(runDirtyRegs) |= syncRegs
	switch act {
	case actPause:
		return v.exit(Exit{Reason: ExitPaused, Call: v.emu.lastCall}), true, nil
	case actExit:
		v.ended = true
		if err := v.emu.callErr; err != nil {
			v.emu.callErr = nil
			return v.exit(Exit{}), true, errCall(v.emu.lastCall, err)
		}
		return v.exit(Exit{Reason: ExitExited, Status: v.emu.status, Signal: v.emu.signal}), true, nil
	case actDeadlock:
		return v.fault(&Fault{Kind: "deadlock: futex wait in a single-threaded program", Vector: -1, RIP: r.RCX, RSP: r.RSP, User: true}), true, nil
	}
	return Exit{}, false, nil
}

func (v *VM) exit(e Exit) Exit {
	e.OutOfMemory = v.emu.oom
	return e
}

func (v *VM) fault(f *Fault) Exit {
	v.ended, v.needFull = true, true
	return v.exit(Exit{Reason: ExitFault, Fault: f})
}

// exceptionFault reads the frame the exception stub left on the IST stack:
// vector, error code, then the CPU's RIP, CS, RFLAGS, RSP, SS.
func (v *VM) exceptionFault() *Fault {
	rsp := v.regs().RSP
	f := &Fault{Vector: -1, Kind: "exception with a corrupt frame"}
	if rsp < istTop-0x1000 || rsp+7*8 > istTop {
		return f
	}
	w := func(i uint64) uint64 { return le64(v.mem[rsp+8*i:]) }
	f.Vector = int(w(0))
	f.Kind = vectorName(f.Vector)
	f.ErrorCode = w(1)
	f.RIP = w(2)
	f.User = w(3)&3 == 3
	f.RSP = w(5)
	if f.Vector == 14 {
		if s, err := v.getSregs(); err == nil {
			f.Addr = s.CR2
		}
		if f.Addr&^(pageSize-1) == v.guard {
			f.Kind = "stack overflow"
		}
	}
	return f
}

// kick stops a running vCPU: immediate_exit makes a KVM_RUN that is about
// to start return at once, and the signal interrupts one in progress.
// SIGURG has the Go runtime's handler (a signal without a handler would not
// interrupt KVM_RUN) and Go code already tolerates stray SIGURGs.
func (v *VM) kick() {
	v.kickMu.Lock()
	defer v.kickMu.Unlock()
	if v.tid == 0 || v.closed {
		return
	}
	atomic.StoreUint32((*uint32)(unsafe.Pointer(&v.run[0])), 1<<8) // immediate_exit = 1
	unix.Tgkill(unix.Getpid(), v.tid, unix.SIGURG)
}

// Close releases the VM. It must not be called while Run is running.
func (v *VM) Close() error {
	v.kickMu.Lock()
	defer v.kickMu.Unlock()
	if v.closed {
		return nil
	}
	v.closed = true
	var errs []error
	for _, m := range [][]byte{v.run, v.mem, v.view} {
		if m != nil {
			errs = append(errs, unix.Munmap(m))
		}
	}
	v.run, v.mem, v.view = nil, nil, nil
	for _, fd := range []int{v.vcpufd, v.vmfd} {
		if fd >= 0 {
			errs = append(errs, unix.Close(fd))
		}
	}
	return errors.Join(errs...)
}
