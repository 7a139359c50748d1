package kvm

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ErrNoKVM is wrapped by every error that means KVM cannot be used here:
// no /dev/kvm, no permission, a wrong API version or a missing capability.
// An embedder falls back to another backend on it.
var ErrNoKVM = errors.New("kvm unavailable")

// Flavour is the kind of KVM a machine has, as Probe's self-test guest found
// it (never assumed from the CPU's flags or the module's name).
type Flavour int

const (
	// FlavourNone: no usable KVM.
	FlavourNone Flavour = iota
	// FlavourHardware: KVM on VT-x or AMD-V, also nested (under QEMU, say).
	// SYSCALL enters ring 0; the stub exits to the host with one OUT.
	FlavourHardware
	// FlavourPVM: kvm_pvm, KVM without hardware virtualization. It runs
	// ordinary long-mode guests, but a user-mode SYSCALL reaches LSTAR
	// without switching to ring 0; LSTAR is then the user-mode gate, which
	// exits to the host through a doorbell page (see gateCode).
	FlavourPVM
)

func (f Flavour) String() string {
	switch f {
	case FlavourHardware:
		return "hardware"
	case FlavourPVM:
		return "pvm"
	}
	return "none"
}

// Info is what Probe learned about this machine's KVM.
type Info struct {
	Flavour Flavour
	// Module is the kernel module serving /dev/kvm, as /sys/module shows
	// it (kvm_intel, kvm_amd, kvm_pvm), or "" when none of those is seen.
	Module string
	// CallRoundTrip is the median time of one guest system call through
	// the host and back (a Handler call), measured by the self-test guest.
	// Exits are what a request to a program pays for: an embedder compares
	// this with its other backends before choosing KVM.
	CallRoundTrip time.Duration
}

func (i Info) String() string {
	s := fmt.Sprintf("%s KVM", i.Flavour)
	if i.Module != "" {
		s += " (" + i.Module + ")"
	}
	return s + fmt.Sprintf(", guest call round trip %v", i.CallRoundTrip)
}

// host is the process-wide /dev/kvm handle and what was learned from it.
type host struct {
	fd        int
	runSize   int              // size of the kvm_run mapping
	cpuid     []kvmCPUIDEntry2 // KVM_GET_SUPPORTED_CPUID
	syncMask  uint64
	flavour   Flavour
	roundTrip time.Duration
}

var (
	hostOnce sync.Once
	hostKVM  *host
	hostErr  error
)

// Probe checks that KVM is usable: /dev/kvm opens read-write, the API
// version is 12, the capabilities this package needs are there (user
// memory, sync regs for registers and sregs, immediate exit, vCPU events,
// XSAVE, TSS address, extended CPUID), and a tiny self-test guest runs: it
// makes system calls from ring 3 and checks what comes back, which also
// tells the flavour (hardware or kvm_pvm) and measures the call round trip.
// The error names what failed and wraps ErrNoKVM. The result is cached for
// the life of the process.
func Probe() error {
	_, err := kvmHost()
	return err
}

// ProbeInfo is Probe, with what it found.
func ProbeInfo() (Info, error) {
	h, err := kvmHost()
	if err != nil {
		return Info{Module: kvmModule()}, err
	}
	return Info{Flavour: h.flavour, Module: kvmModule(), CallRoundTrip: h.roundTrip}, nil
}

// kvmModule names the loaded module that serves /dev/kvm, for messages only.
func kvmModule() string {
	for _, m := range []string{"kvm_pvm", "kvm_intel", "kvm_amd"} {
		if _, err := os.Stat("/sys/module/" + m); err == nil {
			return m
		}
	}
	return ""
}

func kvmHost() (*host, error) {
	hostOnce.Do(func() { hostKVM, hostErr = openHost() })
	return hostKVM, hostErr
}

func openHost() (*host, error) {
	fd, err := unix.Open("/dev/kvm", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open /dev/kvm: %v: %w", err, ErrNoKVM)
	}
	h := &host{fd: fd}
	fail := func(format string, args ...any) (*host, error) {
		unix.Close(fd)
		return nil, fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), ErrNoKVM)
	}
	v, err := ioctl(fd, kvmGetAPIVersion, 0)
	if err != nil {
		return fail("KVM_GET_API_VERSION: %v", err)
	}
	if v != apiVersion {
		return fail("KVM API version %d, want %d", v, apiVersion)
	}
	for _, c := range []struct {
		cap  uintptr
		name string
	}{
		{capUserMemory, "KVM_CAP_USER_MEMORY"},
		{capSetTSSAddr, "KVM_CAP_SET_TSS_ADDR"},
		{capExtCPUID, "KVM_CAP_EXT_CPUID"},
		{capVCPUEvents, "KVM_CAP_VCPU_EVENTS"},
		{capXSAVE, "KVM_CAP_XSAVE"},
		{capSyncRegs, "KVM_CAP_SYNC_REGS"},
		{capImmediateExit, "KVM_CAP_IMMEDIATE_EXIT"},
	} {
		r, err := ioctl(fd, kvmCheckExtension, c.cap)
		if err != nil || r == 0 {
			return fail("missing capability %s", c.name)
		}
		if c.cap == capSyncRegs {
			h.syncMask = uint64(r)
		}
	}
	if h.syncMask&(syncRegs|syncSregs) != syncRegs|syncSregs {
		return fail("KVM_CAP_SYNC_REGS lacks registers or special registers (mask %#x)", h.syncMask)
	}
	n, err := ioctl(fd, kvmGetVCPUMmapSize, 0)
	if err != nil {
		return fail("KVM_GET_VCPU_MMAP_SIZE: %v", err)
	}
	h.runSize = int(n)
	if h.runSize < runSyncEvents+64 {
		return fail("kvm_run is %d bytes, too small for sync regs", h.runSize)
	}
	if h.cpuid, err = supportedCPUID(fd); err != nil {
		return fail("KVM_GET_SUPPORTED_CPUID: %v", err)
	}
	if err := selfTest(h); err != nil {
		return fail("self-test guest: %v", err)
	}
	return h, nil
}

// errWrongFlavour: the self-test guest's SYSCALL did not reach the ring-0
// stub in ring 0.
var errWrongFlavour = errors.New("syscall did not enter ring 0")

// selfTest runs the probe guest on the hardware machine and, when its
// SYSCALL faults at the stub from user mode (kvm_pvm's trap), on the PVM
// machine; it keeps the flavour that works and its measured round trip.
func selfTest(h *host) error {
	for _, f := range []Flavour{FlavourHardware, FlavourPVM} {
		h.flavour = f
		rt, err := measureCalls(h)
		if errors.Is(err, errWrongFlavour) {
			continue
		}
		if err != nil {
			h.flavour = FlavourNone
			return fmt.Errorf("%s flavour: %w", f, err)
		}
		h.roundTrip = rt
		return nil
	}
	h.flavour = FlavourNone
	return fmt.Errorf("no flavour runs it: a ring-3 SYSCALL neither enters the ring-0 stub nor the user-mode gate")
}

// probeCall is the probe guest's system call: the host returns its
// argument + 1, which the guest passes back in the next call.
const probeCall = FirstCall

// probeProgram is the self-test guest, 17 bytes of ring-3 code:
//
//	31 DB                  xor %ebx, %ebx
//	loop:
//	B8 00 00 01 00         mov $probeCall, %eax
//	48 89 DF               mov %rbx, %rdi
//	0F 05                  syscall
//	48 89 C3               mov %rax, %rbx
//	EB F1                  jmp loop
func probeProgram() *Program {
	code := []byte{0x31, 0xDB, 0xB8, 0, 0, 0, 0, 0x48, 0x89, 0xDF, 0x0F, 0x05, 0x48, 0x89, 0xC3, 0xEB, 0xF1}
	binary.LittleEndian.PutUint32(code[3:], probeCall)
	return &Program{file: code, entry: userBase, end: userBase + pageSize, lowest: userBase,
		segs: []segment{{vaddr: userBase, memsz: pageSize, filesz: uint64(len(code)), flags: pfX}}}
}

// probeRounds is how many calls the self-test times, in batches.
const probeRounds, probeBatch = 8, 16

// measureCalls runs the probe guest on h's current flavour: every call must
// carry the previous answer, and the median time of a call over
// probeRounds batches is the round trip.
func measureCalls(h *host) (time.Duration, error) {
	v, err := probeProgram().newVM(h, Options{Memory: MinMemory, Stack: 64 << 10})
	if err != nil {
		return 0, err
	}
	defer v.Close()
	var want uint64
	n := 0
	v.SetIO(IO{Handler: HandlerFunc(func(_ *Memory, c Call) (Result, error) {
		if c.Nr != probeCall || c.Args[0] != want {
			return Result{}, fmt.Errorf("call %#x with %d, want %#x with %d", c.Nr, c.Args[0], probeCall, want)
		}
		want++
		n++
		return Result{Value: want, Pause: n%probeBatch == 0}, nil
	})})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	times := make([]time.Duration, 0, probeRounds)
	for i := 0; i <= probeRounds; i++ {
		start := time.Now()
		e, err := v.Run(ctx)
		if err != nil {
			return 0, err
		}
		if e.Reason == ExitFault && e.Fault.Vector == 14 && e.Fault.RIP == syscallEntry && e.Fault.User {
			return 0, errWrongFlavour
		}
		if e.Reason != ExitPaused {
			return 0, fmt.Errorf("run ended with %v, want a pause after %d calls", e, probeBatch)
		}
		if i > 0 { // the first batch warms up
			times = append(times, time.Since(start)/probeBatch)
		}
	}
	slices.Sort(times)
	return times[len(times)/2], nil
}

// cpuidBuf is struct kvm_cpuid2 followed by its entries.
type cpuidBuf struct {
	hdr     kvmCPUID2
	entries [256]kvmCPUIDEntry2
}

func supportedCPUID(fd int) ([]kvmCPUIDEntry2, error) {
	var b cpuidBuf
	b.hdr.NEnt = uint32(len(b.entries))
	if err := ioctlPtr(fd, kvmGetSupportedCPUID, unsafe.Pointer(&b)); err != nil {
		return nil, err
	}
	return append([]kvmCPUIDEntry2(nil), b.entries[:b.hdr.NEnt]...), nil
}
