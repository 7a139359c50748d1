package sandbox

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The process backend: each slot is a native process (stub.go, filter.go)
// whose ABI calls arrive here as seccomp user notifications. An idle
// process waits in the tenant's free list; the request that takes it
// answers its calls in turn until it waits again, and nothing else touches
// it meanwhile.
//
// Reset (ephemeral = true): fork is 1.6 ms here and a program may not fork
// itself, so a process is kept and its memory is put back instead. At the
// snapshot point (the first NEXT call) the plugin copies the pages present
// in every writable private mapping (data, bss, heap, stack); after each
// request, when the program waits in NEXT again, it checks that the
// address space has the snapshot's size and that the program waits in the
// same instruction with the same arguments and stack pointer (the SDK's
// eh_next_request passes it), then writes the copy back with
// process_vm_writev: the pages written since when the kernel tracks
// soft-dirty bits, else those present (this machine's kernel has no
// soft-dirty tracking). eh_next_request keeps the callee-saved registers
// on the stack across the call, so the restored stack brings the
// snapshot's registers back when it returns: the reset is exact (14–16 µs
// for hello here, against 3.9 ms for a new process). A program that waits
// elsewhere gets a new process instead. A process
// whose layout changed (a new mapping, a grown heap), that faulted, timed
// out or exited is killed and a new one boots: the "kept process recycled
// on any fault" strategy, with memory restored between requests.
//
// What is not restored: signal dispositions and the FS base changed
// during a request. The kvm backend restores all.

// notif layouts (linux/seccomp.h).
type seccompData struct {
	Nr   int32
	Arch uint32
	IP   uint64
	Args [6]uint64
}

type seccompNotif struct {
	ID    uint64
	Pid   uint32
	Flags uint32
	Data  seccompData
}

type seccompNotifResp struct {
	ID    uint64
	Val   int64
	Error int32
	Flags uint32
}

const ioctlNotifIDValid = 0x40082102 // SECCOMP_IOCTL_NOTIF_ID_VALID

// procMem reaches a process's memory. The pid cannot be reused while the
// plugin uses it: the process is the plugin's child and is reaped only
// after it is known dead.
type procMem struct{ pid int }

func (m procMem) ReadAt(p []byte, addr int64) (int, error) {
	n, err := unix.ProcessVMReadv(m.pid, []unix.Iovec{{Base: &p[0], Len: uint64(len(p))}},
		[]unix.RemoteIovec{{Base: uintptr(addr), Len: len(p)}}, 0)
	if err == nil && n != len(p) {
		err = errFault
	}
	return n, err
}

func (m procMem) WriteAt(p []byte, addr int64) (int, error) {
	n, err := unix.ProcessVMWritev(m.pid, []unix.Iovec{{Base: &p[0], Len: uint64(len(p))}},
		[]unix.RemoteIovec{{Base: uintptr(addr), Len: len(p)}}, 0)
	if err == nil && n != len(p) {
		err = errFault
	}
	return n, err
}

// processBackend boots programs as processes.
type processBackend struct {
	t     *Tenant
	memfd *os.File // the program, sealed
	self  string   // the plugin binary, re-executed as the stub
}

func newProcessBackend(t *Tenant, elf []byte) (*processBackend, error) {
	fd, err := unix.MemfdCreate("edgehost-program-"+t.name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("memfd_create: %w", err)
	}
	f := os.NewFile(uintptr(fd), "program")
	if _, err := f.Write(elf); err != nil {
		f.Close()
		return nil, fmt.Errorf("write program: %w", err)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_SEAL|unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_WRITE); err != nil {
		f.Close()
		return nil, fmt.Errorf("seal program: %w", err)
	}
	self, err := os.Executable()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &processBackend{t: t, memfd: f, self: self}, nil
}

func (b *processBackend) name() string { return "process" }

func (b *processBackend) close() { b.memfd.Close() }

// proc is one program process, waiting in NEXT between requests.
type proc struct {
	b        *processBackend
	cmd      *exec.Cmd
	pid      int
	listener int
	x        *exchange
	mem      procMem
	held     uint64 // the id of the NEXT notification the program waits in
	snap     *memSnapshot
	// the NEXT call at the snapshot: its arguments and instruction
	snapBuf, snapCap, snapSP, snapIP uint64
	ip                               uint64 // of the call last received
	served                           int
	exitMsg                          string // how it ended, once killed
}

var (
	errTimeout = errors.New("timed out")
	errExited  = errors.New("program exited")
)

func (b *processBackend) boot() (instance, error) {
	t := b.t
	cfg := stubConfig{Args: append([]string{t.name}, t.cfg.Arguments...), Env: t.cfg.Environment, MaxMemory: t.cfg.MaxMemory}
	if cfg.Env == nil {
		cfg.Env = []string{}
	}
	js, _ := json.Marshal(cfg)
	sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socketpair: %w", err)
	}
	theirs := os.NewFile(uintptr(sp[1]), "stub-socket")
	cmd := exec.Command(b.self)
	cmd.Args = []string{"edgehost-compute-stub"}
	cmd.Env = []string{EnvStub + "=" + string(js)}
	cmd.ExtraFiles = []*os.File{b.memfd, theirs}
	out := &logLines{t: t}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	err = cmd.Start()
	theirs.Close()
	if err != nil {
		unix.Close(sp[0])
		return nil, fmt.Errorf("start stub: %w", err)
	}
	p := &proc{b: b, cmd: cmd, pid: cmd.Process.Pid, listener: -1, mem: procMem{cmd.Process.Pid}}
	p.x = newExchange(t, backendProcess)
	deadline := time.Now().Add(t.cfg.MaxBootTime)
	lfd, err := recvListener(sp[0], deadline)
	unix.Close(sp[0])
	if err != nil {
		p.kill()
		return nil, fmt.Errorf("stub: %w (%s)", err, p.exitMsg)
	}
	p.listener = lfd
	// Boot: answer calls until the program waits for its first request.
	for {
		id, nr, args, err := p.recv(deadline)
		if err != nil {
			p.kill()
			if err == errExited {
				return nil, fmt.Errorf("program exited before asking for a request (%s)", p.exitMsg)
			}
			return nil, fmt.Errorf("boot: %w (max_boot_time %v)", err, t.cfg.MaxBootTime)
		}
		ret, wait := p.x.call(p.mem, nr, args)
		if wait {
			p.held = id
			break
		}
		p.answer(id, ret, nr != callABI)
	}
	if t.cfg.Ephemeral {
		s, err := takeSnapshot(p.pid)
		if err != nil {
			p.kill()
			return nil, fmt.Errorf("snapshot: %w", err)
		}
		p.snap, p.snapBuf, p.snapCap, p.snapSP, p.snapIP = s, p.x.nextBuf, p.x.nextCap, p.x.nextSP, p.ip
	}
	return p, nil
}

// recvListener receives the listener fd that the stub sends.
func recvListener(sock int, deadline time.Time) (int, error) {
	if err := pollIn(sock, deadline); err != nil {
		return -1, err
	}
	buf, oob := make([]byte, 1), make([]byte, unix.CmsgSpace(4))
	_, oobn, _, _, err := unix.Recvmsg(sock, buf, oob, unix.MSG_CMSG_CLOEXEC)
	if err != nil {
		return -1, fmt.Errorf("receive listener: %w", err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return -1, errors.New("stub sent no listener")
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		return -1, errors.New("stub sent no listener")
	}
	return fds[0], nil
}

// pollIn waits until fd is readable; a hang-up is errExited.
func pollIn(fd int, deadline time.Time) error {
	for {
		ms := -1
		if !deadline.IsZero() {
			d := time.Until(deadline)
			if d <= 0 {
				return errTimeout
			}
			ms = int((d + time.Millisecond - 1) / time.Millisecond)
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, ms)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("poll: %w", err)
		}
		if n == 0 {
			continue // the loop checks the deadline
		}
		if fds[0].Revents&unix.POLLIN != 0 {
			return nil
		}
		return errExited
	}
}

// recv waits for the program's next call.
func (p *proc) recv(deadline time.Time) (id uint64, nr uint64, args [6]uint64, err error) {
	for {
		if err := pollIn(p.listener, deadline); err != nil {
			return 0, 0, args, err
		}
		var n seccompNotif
		_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(p.listener), unix.SECCOMP_IOCTL_NOTIF_RECV, uintptr(unsafe.Pointer(&n)))
		if e == unix.EINTR || e == unix.ENOENT {
			continue // the caller died or was interrupted before we read it
		}
		if e != 0 {
			return 0, 0, args, fmt.Errorf("SECCOMP_IOCTL_NOTIF_RECV: %w", e)
		}
		p.ip = n.Data.IP
		return n.ID, uint64(uint32(n.Data.Nr)), n.Data.Args, nil
	}
}

// answer returns ret from the program's call. After a call whose
// arguments were read from the program's memory it first checks that the
// call is still pending (NOTIF_ID_VALID): what was read belongs to the
// caller. (The pid cannot be another process's meanwhile: see procMem.)
func (p *proc) answer(id uint64, ret int64, readMemory bool) {
	if readMemory {
		_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(p.listener), ioctlNotifIDValid, uintptr(unsafe.Pointer(&id)))
		if e != 0 {
			return
		}
	}
	r := seccompNotifResp{ID: id}
	if ret < 0 && ret > -4096 {
		r.Error = int32(ret)
	} else {
		r.Val = ret
	}
	unix.Syscall(unix.SYS_IOCTL, uintptr(p.listener), unix.SECCOMP_IOCTL_NOTIF_SEND, uintptr(unsafe.Pointer(&r)))
}

// serve runs one request: it answers the NEXT call the program waits in
// with the request, then its calls until it waits again. A nil error
// leaves the process ready (restored to its snapshot when ephemeral).
func (p *proc) serve(j *job) error {
	t := p.b.t
	p.answer(p.held, p.x.deliver(p.mem, j), false)
	p.held = 0
	for {
		id, nr, args, err := p.recv(j.deadline)
		switch {
		case err == errTimeout:
			p.x.fail(&Failure{504, fmt.Sprintf("program ran past max_request_time (%v)%s", t.cfg.MaxRequestTime, p.where())})
			p.kill()
			return err
		case err == errExited:
			p.kill()
			p.x.fail(&Failure{500, "program died: " + p.exitMsg})
			return fmt.Errorf("%w: %s", err, p.exitMsg)
		case err != nil:
			p.kill()
			p.x.fail(&Failure{500, err.Error()})
			return err
		}
		ret, wait := p.x.call(p.mem, nr, args)
		if wait {
			p.held = id
			break
		}
		p.answer(id, ret, nr != callABI)
	}
	p.served++
	if p.snap != nil {
		if p.x.nextBuf != p.snapBuf || p.x.nextCap != p.snapCap || p.x.nextSP != p.snapSP || p.ip != p.snapIP {
			return fmt.Errorf("reset: %w: the program waits at another place than at the snapshot", errLayout)
		}
		if err := p.snap.restore(p.pid); err != nil {
			return fmt.Errorf("reset: %w", err)
		}
	}
	if n := t.cfg.RecycleAfter; n > 0 && p.served >= n {
		return errRecycle
	}
	return nil
}

var errRecycle = errors.New("recycled after recycle_after requests")

// where stops the process and says where it was, for the log line of a
// timeout: /proc/PID/syscall of a stopped task outside a system call is
// "-1 SP PC" (the kernel shows no registers of a running one).
func (p *proc) where() string {
	if unix.Kill(p.pid, unix.SIGSTOP) != nil {
		return ""
	}
	path := fmt.Sprintf("/proc/%d/syscall", p.pid)
	for i := 0; i < 100; i++ {
		b, err := os.ReadFile(path)
		if err != nil {
			return ""
		}
		f := bytes.Fields(b)
		switch {
		case len(f) == 3 && string(f[0]) == "-1":
			return " at pc " + string(f[2])
		case len(f) == 9:
			return " in a system call at pc " + string(f[8])
		}
		time.Sleep(100 * time.Microsecond) // "running": not stopped yet
	}
	return ""
}

// kill ends the process and reaps it. Only kill reaps: until then the pid
// stays the program's (a zombie at worst), so a write through procMem can
// never reach another process that got the pid again.
func (p *proc) kill() {
	if p.cmd == nil {
		return
	}
	unix.Kill(p.pid, unix.SIGKILL)
	err := p.cmd.Wait()
	if out, ok := p.cmd.Stdout.(*logLines); ok {
		out.flush() // a last line without a newline, for the boot error's output tail
	}
	if err != nil {
		p.exitMsg = err.Error()
	} else {
		p.exitMsg = "exit status 0"
	}
	p.cmd = nil
	if p.snap != nil {
		p.snap.close()
	}
	if p.listener >= 0 {
		unix.Close(p.listener)
		p.listener = -1
	}
}

func (p *proc) close() { p.kill() }

// footprint is the process's resident memory in bytes.
func (p *proc) footprint() int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/statm", p.pid))
	if err != nil {
		return 0
	}
	var size, rss int64
	fmt.Sscan(string(b), &size, &rss)
	return rss * int64(os.Getpagesize())
}

// logLines sends a program's stdout and stderr to the log, line by line,
// at most logBurst lines a second per tenant.
type logLines struct {
	t   *Tenant
	buf []byte
}

func (l *logLines) Write(p []byte) (int, error) {
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			if len(l.buf) > 4096 {
				l.t.programLog(string(l.buf))
				l.buf = l.buf[:0]
			}
			return len(p), nil
		}
		l.t.programLog(string(l.buf[:i]))
		l.buf = l.buf[i+1:]
	}
}

// flush logs a last line that had no newline.
func (l *logLines) flush() {
	if len(l.buf) > 0 {
		l.t.programLog(string(l.buf))
		l.buf = l.buf[:0]
	}
}

var _ io.Writer = (*logLines)(nil)
