package kvm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// requireKVM skips a test where KVM cannot be used, saying why.
func requireKVM(t testing.TB) {
	t.Helper()
	if err := Probe(); err != nil {
		if os.Getenv("EDGEHOST_KVM_REQUIRE") != "" {
			t.Fatalf("EDGEHOST_KVM_REQUIRE is set but KVM is unusable: %v", err)
		}
		t.Skipf("no usable KVM: %v; run make test-kvm to run this test under QEMU with nested KVM, or set EDGEHOST_KVM_REQUIRE=1 to make this a failure", err)
	}
}

// Test ABI numbers of the guests' edgehost.h.
const (
	callWait  = 0x10000
	callArg   = 0x10001
	callWrite = 0x10002
	callRead  = 0x10003
	callNop   = 0x10004
)

// testHandler implements edgehost.h: EH_WAIT pauses, EH_ARG returns arg,
// EH_WRITE appends to resp, EH_NOP returns x+1.
type testHandler struct {
	arg   uint64
	resp  bytes.Buffer
	calls int
	// pauseNop makes EH_NOP pause too (the call benchmark).
	pauseNop bool
}

func (h *testHandler) HandleCall(mem *Memory, c Call) (Result, error) {
	h.calls++
	switch c.Nr {
	case callWait:
		return Result{Pause: true}, nil
	case callArg:
		return Result{Value: h.arg}, nil
	case callWrite:
		if c.Args[1] > 1<<20 {
			return Result{Value: errno(eINVAL)}, nil
		}
		buf := make([]byte, c.Args[1])
		if _, err := mem.ReadAt(buf, int64(c.Args[0])); err != nil {
			if !errors.Is(err, ErrBadAddress) {
				return Result{}, err
			}
			return Result{Value: errno(eFAULT)}, nil
		}
		h.resp.Write(buf)
		return Result{Value: c.Args[1]}, nil
	case callNop:
		return Result{Value: c.Args[0] + 1, Pause: h.pauseNop}, nil
	}
	return Result{Value: errno(eNOSYS)}, nil
}

func newTestVM(t testing.TB, name string, opts Options) *VM {
	t.Helper()
	p, err := Load(guest(t, name))
	if err != nil {
		t.Fatal(err)
	}
	v, err := p.NewVM(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	return v
}

func runFor(t testing.TB, v *VM, d time.Duration) Exit {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	e, err := v.Run(ctx)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return e
}

func TestHello(t *testing.T) {
	requireKVM(t)
	tests := []struct {
		guest      string
		args, env  []string
		wantOut    string
		wantStatus int
		wantSignal int
	}{
		{guest: "hello", wantOut: "hello, world\n"},
		{guest: "hello-pie", wantOut: "hello, world\n"},
		{guest: "hello-musl", wantOut: "hello, world\n"},
		{guest: "hello", args: []string{"/bin/hello", "7"}, env: []string{"GREETING=hi there"},
			wantOut: "hello, world\narg 7\nenv hi there\n", wantStatus: 7},
		{guest: "hello-musl", args: []string{"/bin/hello", "42"}, wantOut: "hello, world\narg 42\n", wantStatus: 42},
		{guest: "hello", args: []string{"/bin/hello", "abort"}, wantOut: "hello, world\narg abort\n", wantStatus: 134, wantSignal: 6},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s%v", tt.guest, tt.args), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			v := newTestVM(t, tt.guest, Options{Args: tt.args, Env: tt.env, IO: IO{Stdout: &stdout, Stderr: &stderr}})
			e := runFor(t, v, 20*time.Second)
			if e.Reason != ExitExited || e.Status != tt.wantStatus || e.Signal != tt.wantSignal {
				t.Errorf("exit = %v, want exited with status %d signal %d", e, tt.wantStatus, tt.wantSignal)
			}
			if got := stdout.String(); got != tt.wantOut {
				t.Errorf("stdout = %q, want %q", got, tt.wantOut)
			}
			if got := stderr.String(); got != "to stderr\n" {
				t.Errorf("stderr = %q, want %q", got, "to stderr\n")
			}
			if _, err := v.Run(context.Background()); !errors.Is(err, ErrNeedsReset) {
				t.Errorf("Run after exit = %v, want ErrNeedsReset", err)
			}
		})
	}
}

func TestSyscalls(t *testing.T) {
	requireKVM(t)
	var out bytes.Buffer
	v := newTestVM(t, "sys", Options{Args: []string{"/bin/sys"}, IO: IO{Stdout: &out, Stderr: &out}})
	e := runFor(t, v, 20*time.Second)
	if e.Reason != ExitExited || e.Status != 0 {
		t.Errorf("exit = %v, want status 0\n%s", e, out.String())
	}
	if !strings.Contains(out.String(), "sys checks done, 0 failed") {
		t.Errorf("output:\n%s", out.String())
	}
}

func TestMalloc(t *testing.T) {
	requireKVM(t)
	var out bytes.Buffer
	v := newTestVM(t, "malloc", Options{Memory: 128 << 20, IO: IO{Stdout: &out, Stderr: &out}})
	e := runFor(t, v, 60*time.Second)
	if e.Reason != ExitExited || e.Status != 0 || !strings.HasPrefix(out.String(), "malloc ok ") {
		t.Fatalf("exit = %v, output %q", e, out.String())
	}
}

func TestOutOfMemory(t *testing.T) {
	requireKVM(t)
	var out bytes.Buffer
	v := newTestVM(t, "malloc", Options{Memory: 16 << 20, Args: []string{"malloc", "oom"}, IO: IO{Stdout: &out, Stderr: &out}})
	e := runFor(t, v, 60*time.Second)
	if e.Reason != ExitExited || e.Status != 3 || !e.OutOfMemory {
		t.Fatalf("exit = %v, want status 3 and out of memory; output %q", e, out.String())
	}
	var mib int
	if _, err := fmt.Sscanf(out.String(), "oom after %d MiB", &mib); err != nil || mib < 8 || mib > 16 {
		t.Errorf("output %q: want 8 to 16 MiB allocated in a 16 MiB guest", out.String())
	}
}

// snapshotAtWait runs a guest to its first EH_WAIT and snapshots it there.
func snapshotAtWait(t testing.TB, name string, h Handler) (*VM, *Snapshot) {
	t.Helper()
	v := newTestVM(t, name, Options{IO: IO{Handler: h}})
	e := runFor(t, v, 20*time.Second)
	if e.Reason != ExitPaused || e.Call.Nr != callWait {
		t.Fatalf("first run: %v, want paused in EH_WAIT", e)
	}
	s, err := v.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return v, s
}

func TestTimeout(t *testing.T) {
	requireKVM(t)
	h := &testHandler{}
	v, _ := snapshotAtWait(t, "spin", h)
	for i := 0; i < 3; i++ {
		start := time.Now()
		e := runFor(t, v, 300*time.Millisecond)
		took := time.Since(start)
		if e.Reason != ExitTimeout || !errors.Is(e.Cause, context.DeadlineExceeded) {
			t.Fatalf("run %d: %v, want timeout", i, e)
		}
		if e.RIP < userBase {
			t.Errorf("run %d: stopped at rip %#x, want the spinning program's", i, e.RIP)
		}
		if took < 300*time.Millisecond || took > 5*time.Second {
			t.Errorf("run %d: stopped after %v, want just over 300ms", i, took)
		}
		if err := v.Reset(); err != nil {
			t.Fatal(err)
		}
	}
	// Cancellation from another goroutine stops it too.
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	e, err := v.Run(ctx)
	if err != nil || e.Reason != ExitTimeout || !errors.Is(e.Cause, context.Canceled) {
		t.Fatalf("cancelled run: %v, %v", e, err)
	}
}

func TestFaults(t *testing.T) {
	requireKVM(t)
	h := &testHandler{}
	v, _ := snapshotAtWait(t, "fault", h)
	tests := []struct {
		arg    uint64
		vector int
		addr   uint64
		kind   string
	}{
		{arg: 1, vector: 14, addr: 0x7ff000000000, kind: "page fault"},
		{arg: 2, vector: 14, addr: 0, kind: "page fault"},
		{arg: 3, vector: 14, addr: 0x1000, kind: "page fault"},
		{arg: 4, vector: 6, kind: "invalid opcode"},
		{arg: 5, vector: 0, kind: "divide error"},
		{arg: 6, vector: 13, kind: "general protection"},
		{arg: 7, vector: 13, kind: "general protection"},
		{arg: 8, vector: 13, kind: "general protection"},
		{arg: 10, vector: 14, kind: "stack overflow"},
	}
	for _, tt := range tests {
		t.Run(tt.kind+fmt.Sprint(tt.arg), func(t *testing.T) {
			if err := v.Reset(); err != nil {
				t.Fatal(err)
			}
			h.arg = tt.arg
			e := runFor(t, v, 20*time.Second)
			if e.Reason != ExitFault {
				t.Fatalf("exit = %v, want fault", e)
			}
			f := e.Fault
			if f.Vector != tt.vector || f.Kind != tt.kind || !f.User || f.RIP < userBase {
				t.Errorf("fault = %+v (%v), want %s (vector %d) in user code", f, f, tt.kind, tt.vector)
			}
			if tt.kind == "page fault" && f.Addr != tt.addr {
				t.Errorf("fault address %#x, want %#x", f.Addr, tt.addr)
			}
			t.Logf("%v", f)
			if _, err := v.Run(context.Background()); !errors.Is(err, ErrNeedsReset) {
				t.Errorf("Run after a fault = %v, want ErrNeedsReset", err)
			}
		})
	}
	// After all that, the VM still serves: a handler refuses bad pointers,
	// and a clean exit works.
	for _, arg := range []uint64{9, 0} {
		if err := v.Reset(); err != nil {
			t.Fatal(err)
		}
		h.arg = arg
		if e := runFor(t, v, 20*time.Second); e.Reason != ExitExited || e.Status != 0 {
			t.Fatalf("arg %d after faults: %v, want exit 0", arg, e)
		}
	}
}

// TestGate attacks the syscall gate and its doorbell page, which are user
// pages: a jump to the gate with hostile flags is only a system call, and
// the doorbell cannot be read, the gate not written.
func TestGate(t *testing.T) {
	requireKVM(t)
	h := &testHandler{}
	v, _ := snapshotAtWait(t, "fault", h)
	run := func(arg uint64) Exit {
		t.Helper()
		if err := v.Reset(); err != nil {
			t.Fatal(err)
		}
		h.arg = arg
		return runFor(t, v, 20*time.Second)
	}
	if e := run(13); e.Reason != ExitExited || e.Status != 0 {
		t.Errorf("jump to the gate: %v, want exit 0 (the call answered, CF kept, IOPL and NT dropped)", e)
	}
	if e := run(11); e.Reason != ExitFault || e.Fault.Kind != "access outside guest memory" || e.Fault.Addr != gateGPA {
		t.Errorf("read of the doorbell: %v, want an access outside guest memory at %#x", e, gateGPA)
	}
	if e := run(12); e.Reason != ExitFault || e.Fault.Vector != 14 || e.Fault.Addr != gateAddr || !e.Fault.User {
		t.Errorf("write to the gate: %v, want a user page fault at %#x", e, gateAddr)
	}
	if e := run(0); e.Reason != ExitExited || e.Status != 0 {
		t.Errorf("after the attacks: %v, want exit 0", e)
	}
}

func TestResetIsolation(t *testing.T) {
	requireKVM(t)
	h := &testHandler{arg: 1}
	v, s := snapshotAtWait(t, "isolation", h)
	serve := func(v *VM, arg uint64) string {
		t.Helper()
		h.arg = arg
		h.resp.Reset()
		e := runFor(t, v, 20*time.Second)
		if e.Reason != ExitPaused || e.Call.Nr != callWait {
			t.Fatalf("request: %v, want paused in EH_WAIT", e)
		}
		return h.resp.String()
	}
	first := serve(v, 1)
	if !strings.HasPrefix(first, "counter=0 data=1 heap=0 big=0 tls=0 ") || !strings.Contains(first, "first=0 ") ||
		strings.Contains(first, "xmm7=2.5 ") {
		t.Fatalf("first request saw %q", first)
	}
	// Without a reset the second request sees the first's writes.
	second := serve(v, 1)
	if !strings.HasPrefix(second, "counter=1 data=77 heap=9 big=5 tls=11 ") || !strings.Contains(second, "xmm7=2.5") {
		t.Fatalf("second request without reset saw %q", second)
	}
	for i := 0; i < 5; i++ {
		if err := v.Reset(); err != nil {
			t.Fatal(err)
		}
		requireSnapshotMemory(t, v)
		if got := serve(v, 1); got != first {
			t.Fatalf("after reset %d: %q, want %q", i, got, first)
		}
	}
	// Another VM from the same snapshot sees the same, whatever v did.
	w, err := s.NewVM(IO{Handler: h})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if got := serve(w, 1); got != first {
		t.Fatalf("new VM from snapshot: %q, want %q", got, first)
	}
	if got := serve(v, 1); !strings.HasPrefix(got, "counter=1 ") {
		t.Fatalf("v after w ran: %q", got)
	}
	if err := w.Reset(); err != nil {
		t.Fatal(err)
	}
	if got := serve(w, 2); got != strings.Replace(first, "arg=1", "arg=2", 1) {
		t.Fatalf("w after reset: %q", got)
	}
	// Footprint of a reset VM that served a request: its private pages.
	if err := w.Reset(); err != nil {
		t.Fatal(err)
	}
	fp, err := w.Footprint()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("footprint of a reset VM after one request: %d KiB", fp>>10)
	if fp <= 0 || fp > 8<<20 {
		t.Errorf("footprint %d bytes, want a few hundred KiB", fp)
	}
}

// TestResetManyDirtyPages dirties more pages than a reset copies back, so
// that it drops them instead.
func TestResetManyDirtyPages(t *testing.T) {
	requireKVM(t)
	h := &testHandler{}
	v, _ := snapshotAtWait(t, "dirty", h)
	for _, k := range []uint64{1, 16, 600, 1024, 3} {
		h.arg = k
		if e := runFor(t, v, 20*time.Second); e.Reason != ExitPaused {
			t.Fatalf("k=%d: %v", k, e)
		}
		if err := v.Reset(); err != nil {
			t.Fatal(err)
		}
		requireSnapshotMemory(t, v)
	}
}

// requireSnapshotMemory checks that all of v's memory equals its
// snapshot's.
func requireSnapshotMemory(t *testing.T, v *VM) {
	t.Helper()
	var differ []uint64
	for a := 0; a < len(v.mem); a += pageSize {
		if !bytes.Equal(v.mem[a:a+pageSize], v.view[a:a+pageSize]) {
			differ = append(differ, uint64(a))
		}
	}
	if len(differ) > 0 {
		t.Fatalf("%d pages differ from the snapshot after reset, first at %#x", len(differ), differ[0])
	}
}

func TestConcurrentVMs(t *testing.T) {
	requireKVM(t)
	_, s := snapshotAtWait(t, "isolation", &testHandler{})
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			h := &testHandler{arg: uint64(i)}
			v, err := s.NewVM(IO{Handler: h})
			if err != nil {
				errs <- err
				return
			}
			defer v.Close()
			for j := 0; j < 3; j++ {
				h.resp.Reset()
				e, err := v.Run(context.Background())
				if err != nil || e.Reason != ExitPaused {
					errs <- fmt.Errorf("vm %d run %d: %v %v", i, j, e, err)
					return
				}
				if !strings.Contains(h.resp.String(), fmt.Sprintf("counter=0 ")) || !strings.HasSuffix(h.resp.String(), fmt.Sprintf("arg=%d", i)) {
					errs <- fmt.Errorf("vm %d run %d: %q", i, j, h.resp.String())
					return
				}
				if err := v.Reset(); err != nil {
					errs <- err
					return
				}
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestProbe(t *testing.T) {
	info, err := ProbeInfo()
	if err != nil && !errors.Is(err, ErrNoKVM) {
		t.Fatalf("Probe() = %v, want nil or ErrNoKVM", err)
	}
	t.Logf("Probe() = %v; %v", err, info)
	if err != nil {
		if info.Flavour != FlavourNone {
			t.Errorf("flavour %v with an error", info.Flavour)
		}
		return
	}
	if info.Flavour != FlavourHardware && info.Flavour != FlavourPVM {
		t.Errorf("flavour %v, want hardware or pvm", info.Flavour)
	}
	if info.CallRoundTrip <= 0 || info.CallRoundTrip > time.Second {
		t.Errorf("call round trip %v, want a measured figure", info.CallRoundTrip)
	}
	// kvm_pvm is the PVM flavour whatever it claims; a kvm_intel or kvm_amd
	// machine is hardware.
	switch info.Module {
	case "kvm_pvm":
		if info.Flavour != FlavourPVM {
			t.Errorf("module kvm_pvm, flavour %v", info.Flavour)
		}
	case "kvm_intel", "kvm_amd":
		if info.Flavour != FlavourHardware {
			t.Errorf("module %s, flavour %v", info.Module, info.Flavour)
		}
	}
}

// TestSignalsAreNotTimeouts interrupts KVM_RUN with signals while the
// program computes: each EINTR must be resumed, never taken for a timeout.
func TestSignalsAreNotTimeouts(t *testing.T) {
	requireKVM(t)
	var out bytes.Buffer
	v := newTestVM(t, "malloc", Options{Memory: 128 << 20, IO: IO{Stdout: &out}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sent := 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			v.kickMu.Lock()
			if v.tid != 0 {
				unix.Tgkill(unix.Getpid(), v.tid, unix.SIGURG)
				sent++
			}
			v.kickMu.Unlock()
			time.Sleep(2 * time.Millisecond)
		}
	}()
	runCtx, stop := context.WithTimeout(context.Background(), 60*time.Second)
	defer stop()
	e, err := v.Run(runCtx)
	cancel()
	<-done
	if err != nil || e.Reason != ExitExited || e.Status != 0 {
		t.Fatalf("exit %v, %v; output %q", e, err, out.String())
	}
	t.Logf("%d signals sent while the program ran", sent)
	if sent == 0 {
		t.Errorf("no signal was sent")
	}
}

// TestTripleFault breaks the IDT from the host so that the next exception
// cannot be delivered (#GP, then #DF, then shutdown): the run must end with
// a triple fault, and a reset must bring the VM back.
func TestTripleFault(t *testing.T) {
	requireKVM(t)
	h := &testHandler{}
	v, _ := snapshotAtWait(t, "fault", h)
	clear(v.mem[idtAddr : idtAddr+pageSize])
	v.memory.markDirty(idtAddr, pageSize)
	h.arg = 4 // ud2
	e := runFor(t, v, 20*time.Second)
	if e.Reason != ExitFault || e.Fault.Kind != "triple fault" {
		t.Fatalf("exit %v, want a triple fault", e)
	}
	t.Logf("%v", e.Fault)
	if err := v.Reset(); err != nil {
		t.Fatal(err)
	}
	requireSnapshotMemory(t, v)
	h.arg = 0
	if e := runFor(t, v, 20*time.Second); e.Reason != ExitExited || e.Status != 0 {
		t.Fatalf("after reset: %v, want exit 0", e)
	}
}
