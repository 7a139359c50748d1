package kvm

import (
	"bufio"
	"bytes"
	"fmt"
	"math/bits"
	"os"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Snapshot is a frozen VM: its memory in a sealed memfd, its vCPU state and
// its Linux emulation state. VMs made from it map that memory privately,
// copy-on-write, so they share every page they do not write. A Snapshot is
// safe for concurrent use; VMs made from it stay valid after it is closed.
type Snapshot struct {
	mu      sync.Mutex
	memfd   int
	memSize uint64

	regs   kvmRegs
	sregs  kvmSregs
	xsave  kvmXSAVE
	events kvmVCPUEvents
	emu    emuState
	stack  uint64
	guard  uint64
	execfn string
}

// Snapshot freezes the VM where it stands (typically paused in a Handler
// call: the program waits for its first request) and returns the snapshot.
// The VM itself is switched onto the snapshot's memory, so it can be Reset
// to this point like any VM made from it.
func (v *VM) Snapshot() (*Snapshot, error) {
	if v.closed {
		return nil, ErrClosed
	}
	if v.ended {
		return nil, fmt.Errorf("snapshot of a program that exited or faulted: %w", ErrNeedsReset)
	}
	if err := v.completeIO(); err != nil {
		return nil, err
	}
	s := &Snapshot{memfd: -1, memSize: uint64(len(v.mem)), emu: v.emu.st.clone(),
		stack: v.emu.stack, guard: v.guard, execfn: v.emu.execfn}
	if err := ioctlPtr(v.vcpufd, kvmGetRegs, unsafe.Pointer(&s.regs)); err != nil {
		return nil, fmt.Errorf("KVM_GET_REGS: %w", err)
	}
	var err error
	if s.sregs, err = v.getSregs(); err != nil {
		return nil, err
	}
	if err := ioctlPtr(v.vcpufd, kvmGetXSAVE, unsafe.Pointer(&s.xsave)); err != nil {
		return nil, fmt.Errorf("KVM_GET_XSAVE: %w", err)
	}
	if err := ioctlPtr(v.vcpufd, kvmGetVCPUEvents, unsafe.Pointer(&s.events)); err != nil {
		return nil, fmt.Errorf("KVM_GET_VCPU_EVENTS: %w", err)
	}
	if err := s.writeMemory(v.mem); err != nil {
		s.Close()
		return nil, err
	}
	// Put the VM on the snapshot's pages: a private mapping of the memfd at
	// the same address (KVM follows the change through its MMU notifier).
	addr := unsafe.Pointer(&v.mem[0])
	if _, err := unix.MmapPtr(s.memfd, 0, addr, uintptr(len(v.mem)), unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_FIXED|unix.MAP_NORESERVE); err != nil {
		s.Close()
		return nil, fmt.Errorf("remap guest memory onto the snapshot: %w", err)
	}
	if err := v.attach(s); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// completeIO lets KVM finish an OUT or MMIO access the vCPU stopped on, so that its state
// is architecturally complete: KVM_RUN with immediate_exit set does that
// and returns EINTR without running the guest.
func (v *VM) completeIO() error {
	if !v.pendingIO {
		return nil
	}
	w := (*uint32)(unsafe.Pointer(&v.run[0]))
	*w = 1 << 8
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(v.vcpufd), kvmRun, 0)
	*w = 0
	if e != 0 && e != unix.EINTR {
		return fmt.Errorf("KVM_RUN to complete I/O: %w", e)
	}
	v.pendingIO = false
	return nil
}

// writeMemory copies the non-zero resident pages of mem into a new sealed
// memfd; pages never touched stay holes.
func (s *Snapshot) writeMemory(mem []byte) error {
	fd, err := unix.MemfdCreate("edgehost-kvm-snapshot", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return fmt.Errorf("memfd_create: %w", err)
	}
	s.memfd = fd
	if err := unix.Ftruncate(fd, int64(len(mem))); err != nil {
		return fmt.Errorf("size snapshot memory: %w", err)
	}
	pages := len(mem) / pageSize
	resident := make([]byte, pages)
	if _, _, e := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&mem[0])), uintptr(len(mem)), uintptr(unsafe.Pointer(&resident[0]))); e != 0 {
		return fmt.Errorf("mincore: %w", e)
	}
	for i := 0; i < pages; {
		if resident[i]&1 == 0 || isZero(mem[i*pageSize:(i+1)*pageSize]) {
			i++
			continue
		}
		j := i + 1
		for j < pages && resident[j]&1 != 0 && !isZero(mem[j*pageSize:(j+1)*pageSize]) {
			j++
		}
		for off := i * pageSize; off < j*pageSize; {
			n, err := unix.Pwrite(fd, mem[off:j*pageSize], int64(off))
			if err != nil {
				return fmt.Errorf("write snapshot memory: %w", err)
			}
			off += n
		}
		i = j
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_WRITE|unix.F_SEAL_SEAL); err != nil {
		return fmt.Errorf("seal snapshot memory: %w", err)
	}
	return nil
}

// attach makes s what v resets to: a read-only view of the snapshot's
// memory for restoring pages, and dirty tracking started afresh.
func (v *VM) attach(s *Snapshot) error { return v.attachFD(s, s.memfd) }

func (v *VM) attachFD(s *Snapshot, memfd int) error {
	view, err := unix.Mmap(memfd, 0, int(s.memSize), unix.PROT_READ, unix.MAP_SHARED|unix.MAP_NORESERVE)
	if err != nil {
		return fmt.Errorf("map snapshot view: %w", err)
	}
	if v.view != nil {
		unix.Munmap(v.view)
	}
	v.view = view
	v.snap = s
	if err := v.fetchDirtyLog(); err != nil {
		return err
	}
	clear(v.hostDirty)
	return nil
}

// NewVM makes a VM from the snapshot: guest memory is a private
// copy-on-write mapping of the snapshot's, and the vCPU and emulation state
// are the snapshot's. io connects it to its embedder.
func (s *Snapshot) NewVM(io IO) (*VM, error) {
	h, err := kvmHost()
	if err != nil {
		return nil, err
	}
	// A duplicate of the memfd keeps it open while this VM is made
	// outside the lock (mappings hold the file after that).
	s.mu.Lock()
	fd := -1
	if s.memfd >= 0 {
		fd, err = unix.FcntlInt(uintptr(s.memfd), unix.F_DUPFD_CLOEXEC, 0)
	}
	s.mu.Unlock()
	if fd < 0 {
		if err != nil {
			return nil, fmt.Errorf("dup snapshot memory: %w", err)
		}
		return nil, ErrClosed
	}
	defer unix.Close(fd)
	v, err := newVM(h, s.memSize, fd)
	if err != nil {
		return nil, err
	}
	v.emu.stack = s.stack
	v.guard = s.guard
	v.emu.execfn = s.execfn
	v.emu.io = io
	v.emu.st = s.emu.clone()
	if err := v.attachFD(s, fd); err != nil {
		v.Close()
		return nil, err
	}
	if err := v.setState(&s.regs, &s.sregs, nil, &s.xsave, &s.events); err != nil {
		v.Close()
		return nil, err
	}
	return v, nil
}

// Close releases the snapshot's memory file. VMs made from it keep their
// mappings and stay usable.
func (s *Snapshot) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.memfd < 0 {
		return nil
	}
	err := unix.Close(s.memfd)
	s.memfd = -1
	return err
}

// fetchDirtyLog reads (and clears) KVM's log of the pages the guest wrote
// into v.dirtyLog.
func (v *VM) fetchDirtyLog() error {
	dl := kvmDirtyLog{Slot: 0, Bitmap: uint64(uintptr(unsafe.Pointer(&v.dirtyLog[0])))}
	if err := ioctlPtr(v.vmfd, kvmGetDirtyLog, unsafe.Pointer(&dl)); err != nil {
		return fmt.Errorf("KVM_GET_DIRTY_LOG: %w", err)
	}
	return nil
}

// Reset returns the VM to its snapshot: every page written since (by the
// guest, as KVM's dirty log says, or by the host through the emulation or
// a Handler) gets the snapshot's contents back, and the registers, FPU/SSE
// state, FS base and emulation state (brk, mmap area) are the snapshot's.
// Nothing written during one use is visible in the next.
func (v *VM) Reset() error {
	if v.closed {
		return ErrClosed
	}
	s := v.snap
	if s == nil {
		return ErrNoSnapshot
	}
	if err := v.fetchDirtyLog(); err != nil {
		return err
	}
	n := 0
	for i, w := range v.dirtyLog {
		w |= v.hostDirty[i]
		v.dirtyLog[i] = w
		n += bits.OnesCount64(w)
	}
	drop := n > dropAbove
	for i, w := range v.dirtyLog {
		for w != 0 {
			// A run of consecutive dirty pages within this word.
			lo := bits.TrailingZeros64(w)
			hi := lo + bits.TrailingZeros64(^(w >> lo))
			a, b := (i*64+lo)*pageSize, (i*64+hi)*pageSize
			if drop {
				if err := unix.Madvise(v.mem[a:b], unix.MADV_DONTNEED); err != nil {
					return fmt.Errorf("drop dirty pages: %w", err)
				}
			} else {
				copy(v.mem[a:b], v.view[a:b])
			}
			if hi == 64 {
				break
			}
			w &^= (1<<(hi-lo) - 1) << lo
		}
	}
	clear(v.hostDirty)
	v.emu.st = s.emu.clone()
	v.emu.oom, v.emu.status, v.emu.signal, v.emu.callErr = false, 0, 0, nil
	if v.needFull {
		// An access the vCPU stopped on must be finished first: KVM would
		// finish an MMIO read at the next KVM_RUN by emulating the rest of
		// the instruction over the registers restored here.
		if err := v.completeIO(); err != nil {
			return err
		}
		if err := v.setState(&s.regs, &s.sregs, nil, &s.xsave, &s.events); err != nil {
			return err
		}
	} else {
		// Registers and special registers through kvm_run (applied by the
		// next KVM_RUN, no ioctl), x87/SSE state with one ioctl.
		*v.regs() = s.regs
		*v.sregs() = s.sregs
		*v.runWord(runDirtyRegs) = syncRegs | syncSregs
		if err := ioctlPtr(v.vcpufd, kvmSetXSAVE, unsafe.Pointer(&s.xsave)); err != nil {
			return fmt.Errorf("KVM_SET_XSAVE: %w", err)
		}
	}
	v.ended, v.needFull = false, false
	return nil
}

// Footprint returns the host memory this VM holds on its own: the guest
// pages it has private copies of (from /proc/self/smaps, "Anonymous" of
// its guest memory mapping) plus its kvm_run mapping and dirty bitmaps.
// Pages shared with the snapshot are not counted; KVM's own kernel
// structures (vCPU, page tables) are not visible from here.
func (v *VM) Footprint() (int64, error) {
	if v.closed {
		return 0, ErrClosed
	}
	start := uint64(uintptr(unsafe.Pointer(&v.mem[0])))
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	header := []byte(strconv.FormatUint(start, 16) + "-")
	sc := bufio.NewScanner(f)
	in, found := false, false
	var anon int64
	for sc.Scan() {
		line := sc.Bytes()
		if isMappingHeader(line) {
			in = bytes.HasPrefix(line, header)
			found = found || in
			continue
		}
		if in && bytes.HasPrefix(line, []byte("Anonymous:")) {
			fs := strings.Fields(string(line))
			if len(fs) >= 2 {
				kb, err := strconv.ParseInt(fs[1], 10, 64)
				if err == nil {
					anon += kb << 10
				}
			}
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	if !found {
		return 0, fmt.Errorf("guest memory mapping %#x not in /proc/self/smaps", start)
	}
	return anon + int64(len(v.run)) + int64(8*(len(v.hostDirty)+len(v.dirtyLog))), nil
}

// isMappingHeader reports whether an smaps line starts a mapping
// ("start-end perms …"); field lines start with a capitalised name.
func isMappingHeader(line []byte) bool {
	sp := bytes.IndexByte(line, ' ')
	dash := bytes.IndexByte(line, '-')
	if sp < 0 || dash < 1 || dash > sp {
		return false
	}
	for _, c := range line[:dash] {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
