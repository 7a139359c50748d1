package kvm

import (
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"path"
	"slices"
	"time"
)

// Linux x86-64 system call numbers the emulation knows.
const (
	sysRead          = 0
	sysWrite         = 1
	sysClose         = 3
	sysMmap          = 9
	sysMprotect      = 10
	sysMunmap        = 11
	sysBrk           = 12
	sysRtSigaction   = 13
	sysRtSigprocmask = 14
	sysWritev        = 20
	sysMremap        = 25
	sysGetpid        = 39
	sysKill          = 62
	sysExit          = 60
	sysUname         = 63
	sysReadlink      = 89
	sysGettimeofday  = 96
	sysGetuid        = 102
	sysGetgid        = 104
	sysGeteuid       = 107
	sysGetegid       = 108
	sysSigaltstack   = 131
	sysArchPrctl     = 158
	sysGettid        = 186
	sysTkill         = 200
	sysTime          = 201
	sysFutex         = 202
	sysSetTidAddress = 218
	sysClockGettime  = 228
	sysClockGetres   = 229
	sysExitGroup     = 231
	sysTgkill        = 234
	sysSetRobustList = 273
	sysPrlimit64     = 302
	sysGetrandom     = 318
	sysRseq          = 334

	// FirstCall is the lowest system call number passed to the Handler;
	// the numbers below it are Linux's.
	FirstCall = 0x10000
)

// errno values, returned negated in RAX.
const (
	ePERM   = 1
	eNOENT  = 2
	eBADF   = 9
	eAGAIN  = 11
	eNOMEM  = 12
	eFAULT  = 14
	eINVAL  = 22
	eNOSYS  = 38
	eDEADLK = 35
)

const (
	guestPID    = 1
	maxIOV      = 1024
	maxGetrand  = 1 << 20
	maxPathName = 4096
)

func errno(e int) uint64 { return uint64(-int64(e)) }

// monoBase is where the guests' CLOCK_MONOTONIC counts from (plus an hour,
// so that it is never near zero).
var monoBase = time.Now()

// Call is one guest call to the embedder: the system call number
// (≥ FirstCall) and its six arguments (RDI, RSI, RDX, R10, R8, R9).
type Call struct {
	Nr   uint64
	Args [6]uint64
}

// Result is a Handler's answer: Value goes to the guest in RAX; with Pause
// the run stops after the call (Run returns ExitPaused) and the next Run
// continues the program as if the call had just returned Value.
type Result struct {
	Value uint64
	Pause bool
}

// Handler answers the calls a program makes with numbers ≥ FirstCall: the
// embedder's guest ABI. mem reaches the program's memory, bounds-checked.
// A returned error ends the run; Run returns it wrapped.
type Handler interface {
	HandleCall(mem *Memory, c Call) (Result, error)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(mem *Memory, c Call) (Result, error)

// HandleCall calls f.
func (f HandlerFunc) HandleCall(mem *Memory, c Call) (Result, error) { return f(mem, c) }

// IO connects a VM to its embedder: the handler for calls ≥ FirstCall and
// where the program's stdout and stderr go (nil discards). A writer's error
// makes the write fail in the guest with EIO.
type IO struct {
	Handler Handler
	Stdout  io.Writer
	Stderr  io.Writer
}

// span is a range of guest addresses [lo, hi).
type span struct{ lo, hi uint64 }

// emuState is the part of the Linux emulation that a snapshot keeps and a
// reset restores.
type emuState struct {
	brkStart, brk uint64
	brkHigh       uint64 // highest page-aligned brk ever; memory below may be dirty
	mmapTop       uint64 // the stack starts here
	mmapLow       uint64 // lowest address mmap has handed out; below it is fresh
	free          []span // unmapped ranges in [mmapLow, mmapTop), sorted, not yet zeroed
	fsBase        uint64
}

func (s emuState) clone() emuState {
	s.free = slices.Clone(s.free)
	return s
}

// action tells the run loop what to do after a system call.
type action int

const (
	actContinue action = iota
	actExit
	actPause
	actDeadlock
)

// emu answers system calls against one VM's memory.
type emu struct {
	st       emuState
	mem      *Memory
	io       IO
	rng      *rand.ChaCha8
	execfn   string
	stack    uint64 // stack size
	start    time.Time
	oom      bool // an allocation was refused during this use
	status   int  // exit status after actExit
	signal   int  // terminating signal after actExit, or 0
	setFS    func(uint64) error
	callErr  error // a handler's error
	lastCall Call
}

func newRNG() *rand.ChaCha8 {
	var seed [32]byte
	binary.LittleEndian.PutUint64(seed[:], rand.Uint64())
	binary.LittleEndian.PutUint64(seed[8:], rand.Uint64())
	binary.LittleEndian.PutUint64(seed[16:], rand.Uint64())
	binary.LittleEndian.PutUint64(seed[24:], rand.Uint64())
	return rand.NewChaCha8(seed)
}

// dispatch performs the system call in r (number in RAX, arguments in RDI,
// RSI, RDX, R10, R8, R9) and stores the result in r.RAX.
func (e *emu) dispatch(r *kvmRegs) action {
	nr := r.RAX
	a := [6]uint64{r.RDI, r.RSI, r.RDX, r.R10, r.R8, r.R9}
	if nr >= FirstCall {
		if e.io.Handler == nil {
			r.RAX = errno(eNOSYS)
			return actContinue
		}
		c := Call{Nr: nr, Args: a}
		e.lastCall = c
		res, err := e.io.Handler.HandleCall(e.mem, c)
		if err != nil {
			e.callErr = err
			return actExit
		}
		r.RAX = res.Value
		if res.Pause {
			return actPause
		}
		return actContinue
	}
	var ret uint64
	act := actContinue
	switch nr {
	case sysRead:
		ret = e.read(a[0], a[1], a[2])
	case sysWrite:
		ret = e.write(a[0], a[1], a[2])
	case sysWritev:
		ret = e.writev(a[0], a[1], a[2])
	case sysClose:
		if a[0] <= 2 {
			ret = 0
		} else {
			ret = errno(eBADF)
		}
	case sysMmap:
		ret = e.mmap(a[0], a[1], a[2], a[3], a[4], a[5])
	case sysMunmap:
		ret = e.munmap(a[0], a[1])
	case sysMprotect:
		ret = e.mprotect(a[0], a[1], a[2])
	case sysMremap:
		ret = e.mremap(a[0], a[1], a[2], a[3], a[4])
	case sysBrk:
		ret = e.brk(a[0])
	case sysArchPrctl:
		ret = e.archPrctl(a[0], a[1])
	case sysSetTidAddress, sysGettid, sysGetpid:
		ret = guestPID
	case sysGetuid, sysGetgid, sysGeteuid, sysGetegid:
		ret = 0
	case sysSetRobustList:
		if a[1] != 24 { // sizeof(struct robust_list_head)
			ret = errno(eINVAL)
		}
	case sysRseq:
		ret = errno(eNOSYS)
	case sysRtSigaction:
		ret = e.sigaction(a[0], a[1], a[2], a[3])
	case sysRtSigprocmask:
		ret = e.sigprocmask(a[0], a[1], a[2], a[3])
	case sysSigaltstack:
		ret = e.sigaltstack(a[0], a[1])
	case sysPrlimit64:
		ret = e.prlimit(a[0], a[1], a[2], a[3])
	case sysGetrandom:
		ret = e.getrandom(a[0], a[1], a[2])
	case sysClockGettime:
		ret = e.clockGettime(a[0], a[1])
	case sysClockGetres:
		ret = e.clockGetres(a[0], a[1])
	case sysGettimeofday:
		ret = e.gettimeofday(a[0])
	case sysTime:
		now := uint64(time.Now().Unix())
		if a[0] != 0 && e.mem.writeU64s(a[0], now) != nil {
			ret = errno(eFAULT)
		} else {
			ret = now
		}
	case sysUname:
		ret = e.uname(a[0])
	case sysReadlink:
		ret = e.readlink(a[0], a[1], a[2])
	case sysFutex:
		ret, act = e.futex(a[0], a[1], a[2])
	case sysExit, sysExitGroup:
		e.status = int(a[0] & 0xff)
		return actExit
	case sysKill, sysTkill, sysTgkill:
		ret, act = e.kill(nr, a)
	default:
		ret = errno(eNOSYS)
	}
	r.RAX = ret
	return act
}

func (e *emu) read(fd, buf, n uint64) uint64 {
	if fd != 0 {
		return errno(eBADF)
	}
	if e.mem.check(buf, n) != nil {
		return errno(eFAULT)
	}
	return 0 // stdin is empty
}

func (e *emu) writer(fd uint64) (io.Writer, bool) {
	switch fd {
	case 1:
		return e.io.Stdout, true
	case 2:
		return e.io.Stderr, true
	}
	return nil, false
}

func (e *emu) write(fd, buf, n uint64) uint64 {
	w, ok := e.writer(fd)
	if !ok {
		return errno(eBADF)
	}
	b, err := e.mem.view(buf, n)
	if err != nil {
		return errno(eFAULT)
	}
	if w != nil {
		if _, err := w.Write(b); err != nil {
			return errno(5) // EIO
		}
	}
	return n
}

func (e *emu) writev(fd, iov, cnt uint64) uint64 {
	w, ok := e.writer(fd)
	if !ok {
		return errno(eBADF)
	}
	if cnt > maxIOV {
		return errno(eINVAL)
	}
	vec, err := e.mem.view(iov, cnt*16)
	if err != nil {
		return errno(eFAULT)
	}
	// Check every buffer first, as the kernel does: a bad one fails the
	// whole call before anything is written.
	var total uint64
	for i := uint64(0); i < cnt; i++ {
		base, n := le64(vec[i*16:]), le64(vec[i*16+8:])
		if n > 1<<31 || total+n > 1<<31 {
			return errno(eINVAL)
		}
		if e.mem.check(base, n) != nil && n != 0 {
			return errno(eFAULT)
		}
		total += n
	}
	for i := uint64(0); i < cnt; i++ {
		base, n := le64(vec[i*16:]), le64(vec[i*16+8:])
		if n == 0 || w == nil {
			continue
		}
		b, _ := e.mem.view(base, n)
		if _, err := w.Write(b); err != nil {
			return errno(5)
		}
	}
	return total
}

const (
	protRead  = 1
	protWrite = 2
	protExec  = 4

	mapShared    = 0x01
	mapPrivate   = 0x02
	mapFixed     = 0x10
	mapAnonymous = 0x20
	mapFixedNR   = 0x100000

	mremapMaymove = 1
	mremapFixed   = 2
)

func pageUp(n uint64) (uint64, bool) {
	if n > ^uint64(0)-(pageSize-1) {
		return 0, false
	}
	return (n + pageSize - 1) &^ (pageSize - 1), true
}

// mmap supports private anonymous mappings only: there are no files.
func (e *emu) mmap(addr, length, prot, flags, fd, off uint64) uint64 {
	if length == 0 || addr%pageSize != 0 || off%pageSize != 0 {
		return errno(eINVAL)
	}
	if prot&^(protRead|protWrite|protExec) != 0 {
		return errno(eINVAL)
	}
	if flags&mapAnonymous == 0 {
		return errno(eBADF) // no file can be mapped
	}
	if flags&(mapShared|mapPrivate) != mapPrivate {
		return errno(eINVAL)
	}
	n, ok := pageUp(length)
	if !ok || n > e.mem.hi {
		return errno(eNOMEM)
	}
	if flags&(mapFixed|mapFixedNR) != 0 {
		// Only within what mmap already handed out (musl and glibc map
		// over their own reservations this way).
		if addr < e.st.mmapLow || addr+n > e.st.mmapTop || addr+n < addr {
			e.oom = true
			return errno(eNOMEM)
		}
		e.unfree(addr, addr+n)
		e.mem.zero(addr, n)
		return addr
	}
	a, ok := e.alloc(n)
	if !ok {
		e.oom = true
		return errno(eNOMEM)
	}
	return a
}

// alloc takes n bytes (page-aligned) from the free list, or else below the
// mmap frontier, and returns zeroed memory.
func (e *emu) alloc(n uint64) (uint64, bool) {
	st := &e.st
	// Highest free range that fits, so the area stays compact at the top.
	for i := len(st.free) - 1; i >= 0; i-- {
		f := st.free[i]
		if f.hi-f.lo >= n {
			a := f.hi - n
			if a == f.lo {
				st.free = slices.Delete(st.free, i, i+1)
			} else {
				st.free[i].hi = a
			}
			e.mem.zero(a, n)
			return a, true
		}
	}
	brkTop, _ := pageUp(st.brk)
	if st.mmapLow < brkTop || st.mmapLow-brkTop < n {
		return 0, false
	}
	a := st.mmapLow - n
	if a < st.brkHigh {
		// An earlier, larger brk heap used this memory.
		e.mem.zero(a, min(n, st.brkHigh-a))
		st.brkHigh = a
	}
	st.mmapLow = a
	return a, true
}

// isFree reports whether [lo, hi) lies inside one free range.
func (e *emu) isFree(lo, hi uint64) bool {
	for _, f := range e.st.free {
		if f.lo <= lo && hi <= f.hi {
			return true
		}
	}
	return false
}

// unfree removes [lo, hi) from the free list.
func (e *emu) unfree(lo, hi uint64) {
	var out []span
	for _, f := range e.st.free {
		if f.hi <= lo || f.lo >= hi {
			out = append(out, f)
			continue
		}
		if f.lo < lo {
			out = append(out, span{f.lo, lo})
		}
		if f.hi > hi {
			out = append(out, span{hi, f.hi})
		}
	}
	e.st.free = out
}

// release adds [lo, hi) to the free list, merging neighbours.
func (e *emu) release(lo, hi uint64) {
	e.unfree(lo, hi)
	free := append(e.st.free, span{lo, hi})
	slices.SortFunc(free, func(a, b span) int {
		switch {
		case a.lo < b.lo:
			return -1
		case a.lo > b.lo:
			return 1
		}
		return 0
	})
	out := free[:1]
	for _, f := range free[1:] {
		if last := &out[len(out)-1]; f.lo <= last.hi {
			last.hi = max(last.hi, f.hi)
		} else {
			out = append(out, f)
		}
	}
	e.st.free = out
}

func (e *emu) munmap(addr, length uint64) uint64 {
	if addr%pageSize != 0 || length == 0 {
		return errno(eINVAL)
	}
	n, ok := pageUp(length)
	if !ok || addr+n < addr {
		return errno(eINVAL)
	}
	lo, hi := max(addr, e.st.mmapLow), min(addr+n, e.st.mmapTop)
	if lo < hi {
		e.release(lo, hi)
	}
	return 0
}

// mprotect is accepted for mapped memory; the VM keeps one set of
// permissions for all user memory.
func (e *emu) mprotect(addr, length, prot uint64) uint64 {
	if addr%pageSize != 0 || prot&^(protRead|protWrite|protExec|0x01000000|0x02000000) != 0 {
		return errno(eINVAL)
	}
	n, ok := pageUp(length)
	if !ok || e.mem.check(addr, n) != nil {
		return errno(eNOMEM)
	}
	return 0
}

func (e *emu) mapped(lo, hi uint64) bool {
	if lo < e.st.mmapLow || hi > e.st.mmapTop || hi < lo {
		return false
	}
	for _, f := range e.st.free {
		if f.lo < hi && lo < f.hi {
			return false
		}
	}
	return true
}

func (e *emu) mremap(old, oldLen, newLen, flags, newAddr uint64) uint64 {
	if old%pageSize != 0 || flags&^(mremapMaymove|mremapFixed) != 0 || flags&mremapFixed != 0 {
		return errno(eINVAL)
	}
	on, ok1 := pageUp(oldLen)
	nn, ok2 := pageUp(newLen)
	if !ok1 || !ok2 || nn == 0 || on == 0 {
		return errno(eINVAL)
	}
	if !e.mapped(old, old+on) {
		return errno(eFAULT)
	}
	if nn <= on {
		if nn < on {
			e.release(old+nn, old+on)
		}
		return old
	}
	if old+nn > old && e.isFree(old+on, old+nn) {
		// The pages above are free: grow in place.
		e.unfree(old+on, old+nn)
		e.mem.zero(old+on, nn-on)
		return old
	}
	if flags&mremapMaymove == 0 {
		return errno(eNOMEM)
	}
	a, ok := e.alloc(nn)
	if !ok {
		e.oom = true
		return errno(eNOMEM)
	}
	copy(e.mem.mem[a:a+on], e.mem.mem[old:old+on])
	e.mem.markDirty(a, on)
	e.release(old, old+on)
	return a
}

// brk moves the program break. Growth stops at the mmap area; memory that an
// earlier, larger break used is cleared again on the way up, as Linux hands
// out fresh pages.
func (e *emu) brk(addr uint64) uint64 {
	st := &e.st
	if addr < st.brkStart {
		return st.brk
	}
	top, ok := pageUp(addr)
	if !ok || top > st.mmapLow {
		e.oom = true
		return st.brk
	}
	old, _ := pageUp(st.brk)
	if top > old && old < st.brkHigh {
		e.mem.zero(old, min(top, st.brkHigh)-old)
	}
	st.brkHigh = max(st.brkHigh, top)
	st.brk = addr
	return addr
}

const (
	archSetGS = 0x1001
	archSetFS = 0x1002
	archGetFS = 0x1003
	archGetGS = 0x1004
)

func (e *emu) archPrctl(code, addr uint64) uint64 {
	switch code {
	case archSetFS:
		if addr>>47 != 0 {
			return errno(ePERM) // non-canonical
		}
		if e.setFS != nil {
			if err := e.setFS(addr); err != nil {
				return errno(eINVAL)
			}
		}
		e.st.fsBase = addr
		return 0
	case archGetFS:
		if e.mem.writeU64s(addr, e.st.fsBase) != nil {
			return errno(eFAULT)
		}
		return 0
	}
	return errno(eINVAL)
}

func (e *emu) sigaction(sig, act, old, size uint64) uint64 {
	if sig == 0 || sig > 64 || size != 8 {
		return errno(eINVAL)
	}
	if act != 0 && e.mem.check(act, 32) != nil {
		return errno(eFAULT)
	}
	if old != 0 {
		// struct kernel_sigaction: handler, flags, restorer, mask: SIG_DFL.
		if e.mem.writeU64s(old, 0, 0, 0, 0) != nil {
			return errno(eFAULT)
		}
	}
	return 0 // handlers are accepted and never run: no signal is delivered
}

func (e *emu) sigprocmask(how, set, old, size uint64) uint64 {
	if size != 8 || how > 2 {
		return errno(eINVAL)
	}
	if set != 0 && e.mem.check(set, 8) != nil {
		return errno(eFAULT)
	}
	if old != 0 && e.mem.writeU64s(old, 0) != nil {
		return errno(eFAULT)
	}
	return 0
}

func (e *emu) sigaltstack(ss, old uint64) uint64 {
	if ss != 0 && e.mem.check(ss, 24) != nil {
		return errno(eFAULT)
	}
	if old != 0 && e.mem.writeU64s(old, 0, 2, 0) != nil { // SS_DISABLE
		return errno(eFAULT)
	}
	return 0
}

const rlimInfinity = ^uint64(0)

func (e *emu) prlimit(pid, res, newp, oldp uint64) uint64 {
	if pid != 0 && pid != guestPID {
		return errno(3) // ESRCH
	}
	if res >= 16 {
		return errno(eINVAL)
	}
	if newp != 0 {
		return errno(ePERM)
	}
	if oldp == 0 {
		return 0
	}
	cur := rlimInfinity
	switch res {
	case 3: // RLIMIT_STACK
		cur = e.stack
	case 2, 9: // RLIMIT_DATA, RLIMIT_AS
		cur = e.mem.hi
	case 7: // RLIMIT_NOFILE
		cur = 3
	}
	if e.mem.writeU64s(oldp, cur, cur) != nil {
		return errno(eFAULT)
	}
	return 0
}

func (e *emu) getrandom(buf, n, flags uint64) uint64 {
	if flags&^7 != 0 {
		return errno(eINVAL)
	}
	n = min(n, maxGetrand)
	if e.mem.check(buf, n) != nil {
		return errno(eFAULT)
	}
	b := e.mem.mem[buf : buf+n]
	for i := 0; i < len(b); i += 8 {
		var w [8]byte
		binary.LittleEndian.PutUint64(w[:], e.rng.Uint64())
		copy(b[i:], w[:])
	}
	e.mem.markDirty(buf, n)
	return n
}

func (e *emu) clock(id uint64) (time.Duration, bool) {
	switch id {
	case 0, 5, 8, 11: // REALTIME, REALTIME_COARSE, REALTIME_ALARM, TAI
		return time.Duration(time.Now().UnixNano()), true
	case 1, 4, 6, 7, 9: // MONOTONIC, _RAW, _COARSE, BOOTTIME, BOOTTIME_ALARM
		// One clock for every VM of the process, so that a VM made from
		// a snapshot never sees time run backwards.
		return time.Since(monoBase) + time.Hour, true
	case 2, 3: // process and thread CPU time: wall time since start
		return time.Since(e.start), true
	}
	return 0, false
}

func (e *emu) clockGettime(id, tp uint64) uint64 {
	d, ok := e.clock(id)
	if !ok {
		return errno(eINVAL)
	}
	if e.mem.writeU64s(tp, uint64(d/time.Second), uint64(d%time.Second)) != nil {
		return errno(eFAULT)
	}
	return 0
}

func (e *emu) clockGetres(id, tp uint64) uint64 {
	if _, ok := e.clock(id); !ok {
		return errno(eINVAL)
	}
	if tp != 0 && e.mem.writeU64s(tp, 0, 1) != nil {
		return errno(eFAULT)
	}
	return 0
}

func (e *emu) gettimeofday(tv uint64) uint64 {
	now := time.Now()
	if tv != 0 && e.mem.writeU64s(tv, uint64(now.Unix()), uint64(now.Nanosecond()/1000)) != nil {
		return errno(eFAULT)
	}
	return 0
}

func (e *emu) uname(buf uint64) uint64 {
	const field = 65
	var u [6 * field]byte
	for i, s := range []string{"Linux", "edgehost", "6.1.0-edgehost", "#1 SMP", "x86_64", "(none)"} {
		copy(u[i*field:], s)
	}
	if _, err := e.mem.WriteAt(u[:], int64(buf)); err != nil {
		return errno(eFAULT)
	}
	return 0
}

func (e *emu) readlink(pathp, buf, size uint64) uint64 {
	p, err := e.mem.ReadString(pathp, maxPathName)
	if err != nil {
		return errno(eFAULT)
	}
	if int64(size) <= 0 {
		return errno(eINVAL)
	}
	if p != "/proc/self/exe" {
		return errno(eNOENT)
	}
	// /proc/self/exe is always absolute (glibc asserts it).
	exe := path.Join("/", e.execfn)
	n := min(size, uint64(len(exe)))
	if _, err := e.mem.WriteAt([]byte(exe[:n]), int64(buf)); err != nil {
		return errno(eFAULT)
	}
	return n
}

const (
	futexWait        = 0
	futexWake        = 1
	futexWaitBitset  = 9
	futexWakeBitset  = 10
	futexCmdMask     = 0x7f &^ 0x80
	futexPrivateFlag = 128
)

// futex serves a single thread: a wake finds nobody, and a wait whose value
// still matches would sleep forever, so the run ends as deadlocked.
func (e *emu) futex(addr, op, val uint64) (uint64, action) {
	if addr%4 != 0 {
		return errno(eINVAL), actContinue
	}
	b, err := e.mem.view(addr, 4)
	if err != nil {
		return errno(eFAULT), actContinue
	}
	switch op &^ (futexPrivateFlag | 256) { // FUTEX_CLOCK_REALTIME = 256
	case futexWake, futexWakeBitset:
		return 0, actContinue
	case futexWait, futexWaitBitset:
		if binary.LittleEndian.Uint32(b) != uint32(val) {
			return errno(eAGAIN), actContinue
		}
		return errno(eDEADLK), actDeadlock
	}
	return errno(eNOSYS), actContinue
}

// kill handles a program signalling itself (abort raises SIGABRT): it ends
// the program as killed by that signal. Other targets do not exist.
func (e *emu) kill(nr uint64, a [6]uint64) (uint64, action) {
	var pid, sig uint64
	switch nr {
	case sysKill, sysTkill:
		pid, sig = a[0], a[1]
	case sysTgkill:
		pid, sig = a[1], a[2]
		if a[0] != guestPID {
			return errno(3), actContinue
		}
	}
	if pid != guestPID && !(nr == sysKill && pid == 0) {
		return errno(3), actContinue // ESRCH
	}
	if sig == 0 {
		return 0, actContinue
	}
	if sig > 64 {
		return errno(eINVAL), actContinue
	}
	e.signal = int(sig)
	e.status = 128 + int(sig)
	return 0, actExit
}

// errCall wraps a handler's error.
func errCall(c Call, err error) error {
	return fmt.Errorf("handler call %#x: %w", c.Nr, err)
}
