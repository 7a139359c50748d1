package kvm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
	"time"
)

const (
	testMem     = 8 << 20
	testImage   = userBase + 1<<20 // brk starts here
	testMmapTop = testMem - 1<<20
)

type emuFixture struct {
	e      *emu
	stdout bytes.Buffer
	fs     []uint64 // FS bases set
}

func newEmu(t *testing.T, h Handler) *emuFixture {
	t.Helper()
	f := &emuFixture{}
	mem := guestMem(t, testMem)
	f.e = &emu{
		st: emuState{brkStart: testImage, brk: testImage, brkHigh: testImage,
			mmapTop: testMmapTop, mmapLow: testMmapTop},
		mem:    newMemory(mem, make([]uint64, testMem/pageSize/64)),
		io:     IO{Handler: h, Stdout: &f.stdout},
		rng:    newRNG(),
		execfn: "prog",
		stack:  1 << 20,
		start:  time.Now(),
		setFS:  func(b uint64) error { f.fs = append(f.fs, b); return nil },
	}
	return f
}

// call performs system call nr and returns RAX as a signed value.
func (f *emuFixture) call(nr uint64, args ...uint64) (int64, action) {
	var a [6]uint64
	copy(a[:], args)
	r := kvmRegs{RAX: nr, RDI: a[0], RSI: a[1], RDX: a[2], R10: a[3], R8: a[4], R9: a[5]}
	act := f.e.dispatch(&r)
	return int64(r.RAX), act
}

func (f *emuFixture) put(addr uint64, b []byte) { copy(f.e.mem.mem[addr:], b) }

func TestSyscallValidation(t *testing.T) {
	f := newEmu(t, nil)
	buf := uint64(userBase + 0x1000)
	f.put(buf, []byte("hello"))
	iov := uint64(userBase + 0x2000)
	putIOV := func(vecs ...[2]uint64) {
		for i, v := range vecs {
			binary.LittleEndian.PutUint64(f.e.mem.mem[iov+uint64(16*i):], v[0])
			binary.LittleEndian.PutUint64(f.e.mem.mem[iov+uint64(16*i)+8:], v[1])
		}
	}
	pathBuf := uint64(userBase + 0x3000)
	f.put(pathBuf, []byte("/proc/self/exe\x00"))
	other := uint64(userBase + 0x3100)
	f.put(other, []byte("/etc/passwd\x00"))
	tests := []struct {
		name  string
		setup func()
		nr    uint64
		args  []uint64
		want  int64
	}{
		{"write stdout", nil, sysWrite, []uint64{1, buf, 5}, 5},
		{"write bad fd", nil, sysWrite, []uint64{7, buf, 5}, -eBADF},
		{"write NULL", nil, sysWrite, []uint64{1, 0x10, 1}, -eFAULT},
		{"write past memory", nil, sysWrite, []uint64{1, testMem - 2, 4}, -eFAULT},
		{"write wrapping", nil, sysWrite, []uint64{1, ^uint64(0) - 1, 4}, -eFAULT},
		{"writev", func() { putIOV([2]uint64{buf, 2}, [2]uint64{buf + 2, 3}) }, sysWritev, []uint64{1, iov, 2}, 5},
		{"writev too many", nil, sysWritev, []uint64{1, iov, maxIOV + 1}, -eINVAL},
		{"writev bad vector", nil, sysWritev, []uint64{1, 8, 1}, -eFAULT},
		{"writev bad buffer", func() { putIOV([2]uint64{buf, 2}, [2]uint64{0x10, 3}) }, sysWritev, []uint64{1, iov, 2}, -eFAULT},
		{"writev huge", func() { putIOV([2]uint64{buf, 1 << 40}) }, sysWritev, []uint64{1, iov, 1}, -eINVAL},
		{"read stdin", nil, sysRead, []uint64{0, buf, 5}, 0},
		{"read bad fd", nil, sysRead, []uint64{4, buf, 5}, -eBADF},
		{"mmap zero length", nil, sysMmap, []uint64{0, 0, 3, mapPrivate | mapAnonymous, ^uint64(0), 0}, -eINVAL},
		{"mmap unaligned hint", nil, sysMmap, []uint64{123, 4096, 3, mapPrivate | mapAnonymous, ^uint64(0), 0}, -eINVAL},
		{"mmap a file", nil, sysMmap, []uint64{0, 4096, 3, mapPrivate, 3, 0}, -eBADF},
		{"mmap shared", nil, sysMmap, []uint64{0, 4096, 3, mapShared | mapAnonymous, ^uint64(0), 0}, -eINVAL},
		{"mmap bad prot", nil, sysMmap, []uint64{0, 4096, 8, mapPrivate | mapAnonymous, ^uint64(0), 0}, -eINVAL},
		{"mmap too big", nil, sysMmap, []uint64{0, 1 << 40, 3, mapPrivate | mapAnonymous, ^uint64(0), 0}, -eNOMEM},
		{"mmap overflowing length", nil, sysMmap, []uint64{0, ^uint64(0), 3, mapPrivate | mapAnonymous, ^uint64(0), 0}, -eNOMEM},
		{"mmap fixed elsewhere", nil, sysMmap, []uint64{userBase, 4096, 3, mapPrivate | mapAnonymous | mapFixed, ^uint64(0), 0}, -eNOMEM},
		{"munmap unaligned", nil, sysMunmap, []uint64{userBase + 1, 4096}, -eINVAL},
		{"munmap zero", nil, sysMunmap, []uint64{userBase, 0}, -eINVAL},
		{"munmap wrapping", nil, sysMunmap, []uint64{^uint64(0) &^ 4095, 8192}, -eINVAL},
		{"mprotect unaligned", nil, sysMprotect, []uint64{userBase + 1, 4096, 1}, -eINVAL},
		{"mprotect outside", nil, sysMprotect, []uint64{testMem, 4096, 1}, -eNOMEM},
		{"mremap unmapped", nil, sysMremap, []uint64{userBase, 4096, 8192, mremapMaymove}, -eFAULT},
		{"mremap fixed", nil, sysMremap, []uint64{userBase, 4096, 8192, mremapMaymove | mremapFixed, 0}, -eINVAL},
		{"arch_prctl non-canonical", nil, sysArchPrctl, []uint64{archSetFS, 1 << 47}, -ePERM},
		{"arch_prctl bad code", nil, sysArchPrctl, []uint64{0x9999, 0}, -eINVAL},
		{"arch_prctl get to NULL", nil, sysArchPrctl, []uint64{archGetFS, 0}, -eFAULT},
		{"clock_gettime bad clock", nil, sysClockGettime, []uint64{99, buf}, -eINVAL},
		{"clock_gettime bad pointer", nil, sysClockGettime, []uint64{1, 0x10}, -eFAULT},
		{"getrandom bad flags", nil, sysGetrandom, []uint64{buf, 16, 0x100}, -eINVAL},
		{"getrandom bad buffer", nil, sysGetrandom, []uint64{0x10, 16, 0}, -eFAULT},
		{"getrandom", nil, sysGetrandom, []uint64{buf, 16, 0}, 16},
		{"prlimit other process", nil, sysPrlimit64, []uint64{42, 3, 0, buf}, -3},
		{"prlimit set", nil, sysPrlimit64, []uint64{0, 3, buf, 0}, -ePERM},
		{"prlimit bad resource", nil, sysPrlimit64, []uint64{0, 99, 0, buf}, -eINVAL},
		{"sigaction signal 0", nil, sysRtSigaction, []uint64{0, 0, 0, 8}, -eINVAL},
		{"sigaction bad size", nil, sysRtSigaction, []uint64{11, 0, 0, 16}, -eINVAL},
		{"sigprocmask bad how", nil, sysRtSigprocmask, []uint64{7, 0, 0, 8}, -eINVAL},
		{"futex unaligned", nil, sysFutex, []uint64{buf + 1, futexWake, 1}, -eINVAL},
		{"futex bad address", nil, sysFutex, []uint64{0x10, futexWake, 1}, -eFAULT},
		{"futex wake", nil, sysFutex, []uint64{buf, futexWake | futexPrivateFlag, 1}, 0},
		{"futex wait, value changed", nil, sysFutex, []uint64{buf, futexWait | futexPrivateFlag, 7}, -eAGAIN},
		{"set_robust_list bad size", nil, sysSetRobustList, []uint64{buf, 8}, -eINVAL},
		{"readlink exe", nil, sysReadlink, []uint64{pathBuf, buf, 64}, 5},
		{"readlink exe truncated", nil, sysReadlink, []uint64{pathBuf, buf, 2}, 2},
		{"readlink other", nil, sysReadlink, []uint64{other, buf, 64}, -eNOENT},
		{"readlink bad path", nil, sysReadlink, []uint64{0x10, buf, 64}, -eFAULT},
		{"readlink zero size", nil, sysReadlink, []uint64{pathBuf, buf, 0}, -eINVAL},
		{"uname bad pointer", nil, sysUname, []uint64{0x10}, -eFAULT},
		{"uname", nil, sysUname, []uint64{buf}, 0},
		{"rseq", nil, sysRseq, []uint64{buf, 32, 0, 0}, -eNOSYS},
		{"unknown", nil, 999, nil, -eNOSYS},
		{"clone", nil, 56, nil, -eNOSYS},
		{"handler call without handler", nil, FirstCall, nil, -eNOSYS},
		{"kill another process", nil, sysKill, []uint64{7, 9}, -3},
		{"kill self with 0", nil, sysKill, []uint64{1, 0}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.setup != nil {
				tt.setup()
			}
			got, act := f.call(tt.nr, tt.args...)
			if got != tt.want || act != actContinue {
				t.Errorf("= %d, action %d; want %d", got, act, tt.want)
			}
		})
	}
	if got := f.stdout.String(); got != "hellohello" {
		t.Errorf("stdout %q, want the two good writes", got)
	}
}

func TestSyscallExit(t *testing.T) {
	tests := []struct {
		nr          uint64
		args        []uint64
		status, sig int
	}{
		{sysExitGroup, []uint64{300}, 300 & 0xff, 0},
		{sysExit, []uint64{3}, 3, 0},
		{sysTgkill, []uint64{1, 1, 6}, 134, 6},
		{sysKill, []uint64{0, 9}, 137, 9},
	}
	for _, tt := range tests {
		f := newEmu(t, nil)
		_, act := f.call(tt.nr, tt.args...)
		if act != actExit || f.e.status != tt.status || f.e.signal != tt.sig {
			t.Errorf("call %d %v: action %d status %d signal %d, want exit %d signal %d", tt.nr, tt.args, act, f.e.status, f.e.signal, tt.status, tt.sig)
		}
	}
	// A futex wait on a value that matches would sleep forever.
	f := newEmu(t, nil)
	if _, act := f.call(sysFutex, userBase, futexWait, 0); act != actDeadlock {
		t.Errorf("futex wait with no other thread: action %d, want deadlock", act)
	}
}

func TestSyscallMemory(t *testing.T) {
	f := newEmu(t, nil)
	const anon = mapPrivate | mapAnonymous
	mmap := func(n uint64) uint64 {
		t.Helper()
		a, _ := f.call(sysMmap, 0, n, 3, anon, ^uint64(0), 0)
		if a < 0 {
			t.Fatalf("mmap(%d) = %d", n, a)
		}
		return uint64(a)
	}
	a := mmap(3 * pageSize)
	if a%pageSize != 0 || a+3*pageSize != testMmapTop {
		t.Fatalf("first mmap at %#x, want just below %#x", a, testMmapTop)
	}
	b := mmap(1)
	if b != a-pageSize {
		t.Errorf("second mmap at %#x, want %#x", b, a-pageSize)
	}
	f.e.mem.mem[a+100] = 7
	if r, _ := f.call(sysMunmap, a, 3*pageSize); r != 0 {
		t.Fatal(r)
	}
	if c := mmap(2 * pageSize); c != a+pageSize || f.e.mem.mem[a+100] != 7 {
		// Reused from the top of the freed range; a+100 is still free.
		t.Errorf("reuse at %#x, want %#x", c, a+pageSize)
	}
	if c := mmap(pageSize); c != a || f.e.mem.mem[a+100] != 0 {
		t.Errorf("reuse at %#x (byte %d), want %#x zeroed", c, f.e.mem.mem[a+100], a)
	}
	// mremap: grow with move copies, shrink keeps.
	f.e.mem.mem[b] = 42
	nb, _ := f.call(sysMremap, b, pageSize, 4*pageSize, mremapMaymove)
	if nb < 0 || f.e.mem.mem[nb] != 42 {
		t.Fatalf("mremap grow = %#x", nb)
	}
	// The old page above it is free again: growth happens in place.
	if r, _ := f.call(sysMremap, uint64(nb), 4*pageSize, 4*pageSize+1, 0); r != nb {
		t.Errorf("mremap grow into a free page = %#x, want in place at %#x", r, nb)
	}
	if r, _ := f.call(sysMremap, uint64(nb), 4*pageSize, pageSize, 0); r != nb {
		t.Errorf("mremap shrink = %#x, want %#x", r, nb)
	}
	// brk: grows to the mmap area, no further; what shrank comes back zero.
	if r, _ := f.call(sysBrk, 0); r != testImage {
		t.Fatalf("brk(0) = %#x", r)
	}
	if r, _ := f.call(sysBrk, testImage+3*pageSize+5); r != testImage+3*pageSize+5 {
		t.Fatalf("brk grow = %#x", r)
	}
	f.e.mem.mem[testImage+2*pageSize] = 9
	f.call(sysBrk, testImage+pageSize)
	f.call(sysBrk, testImage+4*pageSize)
	if f.e.mem.mem[testImage+2*pageSize] != 0 {
		t.Errorf("memory above a shrunk brk not cleared when it grew again")
	}
	if r, _ := f.call(sysBrk, testMmapTop); r != testImage+4*pageSize || !f.e.oom {
		t.Errorf("brk into the mmap area = %#x (oom %v), want refused", r, f.e.oom)
	}
	// mmap fills the gap down to the brk, then refuses.
	f.e.oom = false
	low := f.e.st.mmapLow
	gap := low - (testImage + 4*pageSize)
	if c := mmap(gap); c != testImage+4*pageSize {
		t.Errorf("mmap of the whole gap at %#x", c)
	}
	if r, _ := f.call(sysMmap, 0, 64*pageSize, 3, anon, ^uint64(0), 0); r != -eNOMEM || !f.e.oom {
		t.Errorf("mmap with memory full = %d (oom %v)", r, f.e.oom)
	}
	// MAP_FIXED over own mapping clears it.
	f.e.mem.mem[a] = 5
	if r, _ := f.call(sysMmap, a, pageSize, 3, anon|mapFixed, ^uint64(0), 0); r != int64(a) || f.e.mem.mem[a] != 0 {
		t.Errorf("MAP_FIXED = %#x", r)
	}
}

func TestSyscallFSBase(t *testing.T) {
	f := newEmu(t, nil)
	if r, _ := f.call(sysArchPrctl, archSetFS, 0x7000_0000); r != 0 || len(f.fs) != 1 || f.fs[0] != 0x7000_0000 {
		t.Fatalf("ARCH_SET_FS = %d, FS bases set %#x", r, f.fs)
	}
	if r, _ := f.call(sysArchPrctl, archGetFS, userBase); r != 0 {
		t.Fatal(r)
	}
	if got := binary.LittleEndian.Uint64(f.e.mem.mem[userBase:]); got != 0x7000_0000 {
		t.Errorf("ARCH_GET_FS wrote %#x", got)
	}
}

func TestSyscallHandler(t *testing.T) {
	var got Call
	h := HandlerFunc(func(mem *Memory, c Call) (Result, error) {
		got = c
		switch c.Nr {
		case FirstCall:
			return Result{Value: 77, Pause: true}, nil
		case FirstCall + 1:
			return Result{}, errors.New("boom")
		}
		buf := make([]byte, c.Args[1])
		_, err := mem.ReadAt(buf, int64(c.Args[0]))
		if errors.Is(err, ErrBadAddress) {
			return Result{Value: errno(eFAULT)}, nil
		}
		return Result{Value: uint64(len(buf))}, err
	})
	f := newEmu(t, h)
	if r, act := f.call(FirstCall, 1, 2, 3, 4, 5, 6); r != 77 || act != actPause || got.Args != [6]uint64{1, 2, 3, 4, 5, 6} {
		t.Errorf("pause call = %d, action %d, handler got %+v", r, act, got)
	}
	if _, act := f.call(FirstCall + 1); act != actExit || f.e.callErr == nil {
		t.Errorf("failing handler: action %d, error %v", act, f.e.callErr)
	}
	if r, act := f.call(FirstCall+2, 0x10, 8); r != -eFAULT || act != actContinue {
		t.Errorf("handler reading a bad pointer = %d", r)
	}
	if r, _ := f.call(FirstCall+2, userBase, 8); r != 8 {
		t.Errorf("handler reading a good pointer = %d", r)
	}
}

func TestSyscallMremapInPlace(t *testing.T) {
	f := newEmu(t, nil)
	const anon = mapPrivate | mapAnonymous
	a, _ := f.call(sysMmap, 0, 8*pageSize, 3, anon, ^uint64(0), 0)
	f.call(sysMunmap, uint64(a)+2*pageSize, 6*pageSize)
	f.e.mem.mem[a+3*pageSize] = 1 // left over in the freed part
	f.e.mem.mem[a] = 42
	if r, _ := f.call(sysMremap, uint64(a), 2*pageSize, 5*pageSize, 0); r != a {
		t.Fatalf("mremap into free pages above = %#x, want in place at %#x", r, a)
	}
	if f.e.mem.mem[a] != 42 || f.e.mem.mem[a+3*pageSize] != 0 {
		t.Errorf("in-place growth lost data or kept stale bytes")
	}
	if r, _ := f.call(sysMremap, uint64(a), 5*pageSize, 9*pageSize, 0); r != -eNOMEM {
		t.Errorf("growth past the free pages without MAYMOVE = %d, want ENOMEM", r)
	}
}
