package sandbox

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Live debugging (issue 12): `edgehost debug TENANT URL` runs one request
// in a fresh instance of the program, stopped right after it received the
// request, under a GDB remote serial protocol stub on a loopback port.
//
// The process backend does it with ptrace: the plugin is the program's
// parent, so it seizes the process, and answers GDB's packets with
// PTRACE_GETREGS/SETREGS (the general registers: a short 'g' reply, GDB
// takes the rest as unavailable), PEEKDATA/POKEDATA (memory, 'm'/'M'),
// int3 software breakpoints ('Z0'/'z0'), SINGLESTEP ('s'), CONT ('c'),
// ^C, detach ('D', the request then runs on to its answer) and kill ('k').
// The program's ABI calls are answered as usual meanwhile (seccomp user
// notification is independent of ptrace). The instance is never reused:
// it is killed once the request is answered. The kvm backend has no
// stub: a debug request on it is refused, saying so.

// ErrNoDebug: the tenant does not allow debugging, or its backend cannot.
var ErrNoDebug = errors.New("live debugging not available")

// DebugTimeouts bound a debug session: GDB must connect within Connect,
// and the whole request may take Session.
var DebugTimeouts = struct{ Connect, Session time.Duration }{time.Minute, 10 * time.Minute}

// Debug runs the request in a fresh instance under a GDB stub listening
// on ln (which it closes), and returns the program's answer.
func (t *Tenant) Debug(ctx context.Context, info RequestInfo, body []byte, ln net.Listener) (*Reply, error) {
	defer ln.Close()
	if !t.cfg.AllowDebug {
		return nil, fmt.Errorf("%w: tenant %s does not set allow_debug = true", ErrNoDebug, t.name)
	}
	if _, ok := t.be.(*processBackend); !ok {
		return nil, fmt.Errorf("%w: tenant %s runs on the %s backend, whose VMs have no GDB stub yet; set backend = \"process\" (ptrace) to debug it",
			ErrNoDebug, t.name, t.be.name())
	}
	info.Tenant = t.name
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.closed {
		return nil, ErrClosed
	}
	inst, err := t.be.boot()
	if err != nil {
		return nil, fmt.Errorf("booting a debug instance: %w", err)
	}
	p := inst.(*proc)
	defer p.kill() // never reused
	if p.snap != nil {
		p.snap.close() // not reset: killed after the request
		p.snap = nil
	}
	t.log.Info("debug instance waiting for GDB", "tenant", t.name, "addr", ln.Addr().String(), "pid", p.pid, "url", info.URL)
	conn, err := accept(ctx, ln, DebugTimeouts.Connect)
	if err != nil {
		return nil, fmt.Errorf("waiting for GDB on %s: %w", ln.Addr(), err)
	}
	defer conn.Close()

	tr := newTracer(p.pid)
	defer tr.close()
	if err := tr.do(func() error {
		if err := unix.PtraceSeize(p.pid); err != nil {
			return fmt.Errorf("PTRACE_SEIZE: %w", err)
		}
		return unix.PtraceInterrupt(p.pid)
	}); err != nil {
		return nil, err
	}
	j := newJob(ctx, info, body, time.Now().Add(DebugTimeouts.Session))
	served := make(chan error, 1)
	go func() { served <- p.serve(j) }()
	stub := &gdbStub{t: tr, conn: conn, rd: bufio.NewReader(conn), served: served, log: t.log.Info}
	serr := stub.run()
	err = <-stub.servedErr()
	<-j.done
	if j.err != nil {
		return nil, j.err
	}
	if err != nil && !errors.Is(err, errLayout) && !errors.Is(err, errRecycle) {
		return nil, err
	}
	if serr != nil {
		t.log.Warn("debug session", "tenant", t.name, "error", serr)
	}
	return j.reply, nil
}

func accept(ctx context.Context, ln net.Listener, d time.Duration) (net.Conn, error) {
	if tl, ok := ln.(*net.TCPListener); ok {
		tl.SetDeadline(time.Now().Add(d))
	}
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	return ln.Accept()
}

// tracer runs ptrace requests on one locked OS thread (ptrace wants the
// thread that attached).
type tracer struct {
	pid  int
	reqs chan func()
	done chan struct{}
}

func newTracer(pid int) *tracer {
	tr := &tracer{pid: pid, reqs: make(chan func()), done: make(chan struct{})}
	go func() {
		// Locked while tracing, then unlocked, not ended: a thread that
		// ends takes with it (Pdeathsig) every program process forked
		// from it earlier, by any goroutine that ran on it.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		for {
			select {
			case f := <-tr.reqs:
				f()
			case <-tr.done:
				return
			}
		}
	}()
	return tr
}

func (tr *tracer) do(f func() error) error {
	errc := make(chan error, 1)
	tr.reqs <- func() { errc <- f() }
	return <-errc
}

func (tr *tracer) close() { close(tr.done) }

// stop is why the program stopped, as GDB's signal number.
type stop struct {
	sig    int
	exited bool
}

// waitStop polls for the tracee's next stop, the request's end (served),
// or GDB's ^C (interrupt).
func (tr *tracer) waitStop(served <-chan error, interrupt <-chan struct{}) (stop, error, bool) {
	for {
		var ws unix.WaitStatus
		var pid int
		err := tr.do(func() error {
			var e error
			pid, e = unix.Wait4(tr.pid, &ws, unix.WALL|unix.WNOHANG, nil)
			return e
		})
		if err != nil {
			return stop{exited: true}, nil, false
		}
		if pid == tr.pid {
			switch {
			case ws.Exited() || ws.Signaled():
				return stop{exited: true}, nil, false
			case ws.Stopped():
				sig := int(ws.StopSignal())
				if ws.TrapCause() == unix.PTRACE_EVENT_STOP || sig == int(unix.SIGSTOP) {
					sig = int(unix.SIGTRAP)
				}
				return stop{sig: sig}, nil, false
			}
		}
		select {
		case err := <-served:
			return stop{}, err, true
		case <-interrupt:
			tr.do(func() error { return unix.PtraceInterrupt(tr.pid) })
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// gdbStub answers GDB's remote serial protocol on one connection.
type gdbStub struct {
	t      *tracer
	conn   net.Conn
	rd     *bufio.Reader
	served chan error
	log    func(msg string, args ...any)

	bps      map[uint64]byte // address → original byte, removed while stopped
	pending  *stop           // the last stop, to report
	finished bool            // the request has been answered
	doneErr  error
	detached bool
}

// servedErr is the serve goroutine's result, whether the stub saw it or not.
func (s *gdbStub) servedErr() <-chan error {
	if s.finished {
		c := make(chan error, 1)
		c <- s.doneErr
		return c
	}
	if !s.detached {
		// GDB left with the program stopped: let it run on.
		s.t.do(func() error { return unix.PtraceDetach(s.t.pid) })
	}
	return s.served
}

func (s *gdbStub) run() error {
	s.bps = map[uint64]byte{}
	packets := make(chan string)
	interrupt := make(chan struct{}, 1)
	readErr := make(chan error, 1)
	go func() {
		for {
			pkt, intr, err := s.readPacket()
			if err != nil {
				readErr <- err
				close(packets)
				return
			}
			if intr {
				select {
				case interrupt <- struct{}{}:
				default:
				}
				continue
			}
			packets <- pkt
		}
	}()
	// The program stops right after it received the request.
	st, err, done := s.t.waitStop(s.served, nil)
	if done {
		s.finished, s.doneErr = true, err
		return errors.New("the request ended before the first stop")
	}
	s.pending = &st
	for pkt := range packets {
		reply, resume := s.handle(pkt)
		if resume != "" {
			st, err, done := s.resume(resume, pkt, interrupt)
			switch {
			case done:
				s.finished, s.doneErr = true, err
				reply = "W00" // the program answered: the "process" is done for GDB
			case st.exited:
				reply = "X09"
			default:
				s.pending = &st
				reply = fmt.Sprintf("S%02x", st.sig)
			}
		}
		if reply == "\x00close" {
			return nil
		}
		if err := s.send(reply); err != nil {
			return err
		}
		if s.finished || s.detached {
			return nil
		}
	}
	return <-readErr
}

// handle answers one packet; resume is "c" or "s" when the program must
// run first (the reply is then its stop).
func (s *gdbStub) handle(pkt string) (reply, resume string) {
	pid := s.t.pid
	switch {
	case pkt == "?":
		sig := int(unix.SIGTRAP)
		if s.pending != nil {
			sig = s.pending.sig
		}
		return fmt.Sprintf("S%02x", sig), ""
	case strings.HasPrefix(pkt, "qSupported"):
		return "PacketSize=4000", ""
	case pkt == "qAttached":
		return "1", ""
	case strings.HasPrefix(pkt, "H"):
		return "OK", ""
	case pkt == "g":
		var r unix.PtraceRegs
		if err := s.t.do(func() error { return unix.PtraceGetRegs(pid, &r) }); err != nil {
			return "E01", ""
		}
		return hex.EncodeToString(packRegs(&r)), ""
	case strings.HasPrefix(pkt, "G"):
		b, err := hex.DecodeString(pkt[1:])
		if err != nil || len(b) < gRegsLen {
			return "E01", ""
		}
		err = s.t.do(func() error {
			var r unix.PtraceRegs
			if err := unix.PtraceGetRegs(pid, &r); err != nil {
				return err
			}
			unpackRegs(&r, b)
			return unix.PtraceSetRegs(pid, &r)
		})
		if err != nil {
			return "E01", ""
		}
		return "OK", ""
	case strings.HasPrefix(pkt, "m"):
		addr, n, ok := addrLen(pkt[1:])
		if !ok || n > 4096 {
			return "E01", ""
		}
		buf := make([]byte, n)
		var got int
		s.t.do(func() error {
			var err error
			got, err = unix.PtracePeekData(pid, uintptr(addr), buf)
			return err
		})
		if got == 0 && n > 0 {
			return "E14", "" // EFAULT
		}
		return hex.EncodeToString(buf[:got]), ""
	case strings.HasPrefix(pkt, "M"):
		head, data, _ := strings.Cut(pkt[1:], ":")
		addr, n, ok := addrLen(head)
		b, err := hex.DecodeString(data)
		if !ok || err != nil || len(b) != n {
			return "E01", ""
		}
		if err := s.t.do(func() error { _, err := unix.PtracePokeData(pid, uintptr(addr), b); return err }); err != nil {
			return "E14", ""
		}
		return "OK", ""
	case strings.HasPrefix(pkt, "Z0,"), strings.HasPrefix(pkt, "z0,"):
		addr, _, ok := addrLen(pkt[3:])
		if !ok {
			return "E01", ""
		}
		if pkt[0] == 'z' {
			delete(s.bps, addr)
			return "OK", ""
		}
		var orig [1]byte
		if err := s.t.do(func() error { _, err := unix.PtracePeekData(pid, uintptr(addr), orig[:]); return err }); err != nil {
			return "E14", ""
		}
		s.bps[addr] = orig[0]
		return "OK", ""
	case pkt == "c" || strings.HasPrefix(pkt, "C"):
		return "", "c"
	case pkt == "s" || strings.HasPrefix(pkt, "S"):
		return "", "s"
	case pkt == "D" || strings.HasPrefix(pkt, "D;"):
		s.t.do(func() error { return unix.PtraceDetach(pid) })
		s.detached = true
		return "OK", ""
	case pkt == "k" || strings.HasPrefix(pkt, "vKill"):
		s.t.do(func() error { return unix.Kill(pid, unix.SIGKILL) })
		s.detached = true
		return "\x00close", ""
	}
	return "", "" // unsupported: GDB falls back or does without
}

// resume runs the program ('c' with the breakpoints in, 's' one
// instruction) until it stops or the request ends.
func (s *gdbStub) resume(how, pkt string, interrupt <-chan struct{}) (stop, error, bool) {
	pid := s.t.pid
	sig := 0
	if len(pkt) >= 3 && (pkt[0] == 'C' || pkt[0] == 'S') {
		if n, err := strconv.ParseUint(pkt[1:3], 16, 8); err == nil && n != uint64(unix.SIGTRAP) {
			sig = int(n)
		}
	}
	var rip uint64
	s.t.do(func() error {
		var r unix.PtraceRegs
		err := unix.PtraceGetRegs(pid, &r)
		rip = r.Rip
		return err
	})
	if how == "c" {
		if _, at := s.bps[rip]; at {
			// Step off the breakpoint first, without it.
			if err := s.t.do(func() error { return unix.PtraceSingleStep(pid) }); err != nil {
				return stop{exited: true}, nil, false
			}
			st, err, done := s.t.waitStop(s.served, interrupt)
			if done || st.exited || st.sig != int(unix.SIGTRAP) {
				return st, err, done
			}
		}
		s.insert(true)
		s.t.do(func() error { return unix.PtraceCont(pid, sig) })
	} else {
		s.t.do(func() error { return unix.PtraceSingleStep(pid) })
	}
	st, err, done := s.t.waitStop(s.served, interrupt)
	if done || st.exited {
		return st, err, done
	}
	if how == "c" {
		s.insert(false)
		if st.sig == int(unix.SIGTRAP) {
			s.t.do(func() error {
				var r unix.PtraceRegs
				if err := unix.PtraceGetRegs(pid, &r); err != nil {
					return err
				}
				if _, hit := s.bps[r.Rip-1]; hit {
					r.Rip-- // report the breakpoint's own address
					return unix.PtraceSetRegs(pid, &r)
				}
				return nil
			})
		}
	}
	return st, nil, false
}

// insert writes (or removes) the int3 of every breakpoint.
func (s *gdbStub) insert(in bool) {
	pid := s.t.pid
	for addr, orig := range s.bps {
		b := []byte{orig}
		if in {
			b[0] = 0xcc
		}
		s.t.do(func() error { _, err := unix.PtracePokeData(pid, uintptr(addr), b); return err })
	}
}

// readPacket reads one "$data#cs" packet (acknowledged with '+'), or a
// ^C (intr).
func (s *gdbStub) readPacket() (pkt string, intr bool, err error) {
	for {
		c, err := s.rd.ReadByte()
		if err != nil {
			return "", false, err
		}
		switch c {
		case 0x03:
			return "", true, nil
		case '$':
			data, err := s.rd.ReadString('#')
			if err != nil {
				return "", false, err
			}
			var cs [2]byte
			if _, err := s.rd.Read(cs[:1]); err != nil {
				return "", false, err
			}
			if _, err := s.rd.Read(cs[1:]); err != nil {
				return "", false, err
			}
			data = data[:len(data)-1]
			if want, err := strconv.ParseUint(string(cs[:]), 16, 8); err != nil || byte(want) != checksum(data) {
				s.conn.Write([]byte("-"))
				continue
			}
			s.conn.Write([]byte("+"))
			return data, false, nil
		}
		// '+', '-' and noise between packets
	}
}

func (s *gdbStub) send(data string) error {
	_, err := fmt.Fprintf(s.conn, "$%s#%02x", data, checksum(data))
	return err
}

func checksum(s string) byte {
	var c byte
	for i := 0; i < len(s); i++ {
		c += s[i]
	}
	return c
}

func addrLen(s string) (addr uint64, n int, ok bool) {
	a, l, found := strings.Cut(s, ",")
	if !found {
		return 0, 0, false
	}
	addr, err := strconv.ParseUint(a, 16, 64)
	if err != nil {
		return 0, 0, false
	}
	if i := strings.IndexByte(l, ','); i >= 0 { // Z0,addr,kind
		l = l[:i]
	}
	ln, err := strconv.ParseUint(l, 16, 32)
	if err != nil {
		return 0, 0, false
	}
	return addr, int(ln), true
}

// gRegsLen is GDB's amd64 'g' layout up to the segment registers: rax,
// rbx, rcx, rdx, rsi, rdi, rbp, rsp, r8-r15, rip (8 bytes each), eflags,
// cs, ss, ds, es, fs, gs (4 bytes each).
const gRegsLen = 17*8 + 7*4

func packRegs(r *unix.PtraceRegs) []byte {
	b := make([]byte, 0, gRegsLen)
	for _, v := range []uint64{r.Rax, r.Rbx, r.Rcx, r.Rdx, r.Rsi, r.Rdi, r.Rbp, r.Rsp,
		r.R8, r.R9, r.R10, r.R11, r.R12, r.R13, r.R14, r.R15, r.Rip} {
		b = binary.LittleEndian.AppendUint64(b, v)
	}
	for _, v := range []uint64{r.Eflags, r.Cs, r.Ss, r.Ds, r.Es, r.Fs, r.Gs} {
		b = binary.LittleEndian.AppendUint32(b, uint32(v))
	}
	return b
}

func unpackRegs(r *unix.PtraceRegs, b []byte) {
	q := func(i int) uint64 { return binary.LittleEndian.Uint64(b[8*i:]) }
	r.Rax, r.Rbx, r.Rcx, r.Rdx, r.Rsi, r.Rdi, r.Rbp, r.Rsp = q(0), q(1), q(2), q(3), q(4), q(5), q(6), q(7)
	r.R8, r.R9, r.R10, r.R11, r.R12, r.R13, r.R14, r.R15 = q(8), q(9), q(10), q(11), q(12), q(13), q(14), q(15)
	r.Rip = q(16)
	r.Eflags = uint64(binary.LittleEndian.Uint32(b[17*8:]))
}
