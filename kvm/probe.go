package kvm

import (
	"errors"
	"fmt"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ErrNoKVM is wrapped by every error that means KVM cannot be used here:
// no /dev/kvm, no permission, a wrong API version or a missing capability.
// An embedder falls back to another backend on it.
var ErrNoKVM = errors.New("kvm unavailable")

// host is the process-wide /dev/kvm handle and what was learned from it.
type host struct {
	fd       int
	runSize  int              // size of the kvm_run mapping
	cpuid    []kvmCPUIDEntry2 // KVM_GET_SUPPORTED_CPUID
	syncMask uint64
}

var (
	hostOnce sync.Once
	hostKVM  *host
	hostErr  error
)

// Probe checks that KVM is usable: /dev/kvm opens read-write, the API
// version is 12, and the capabilities this package needs are there (user
// memory, sync regs for registers and sregs, immediate exit, vCPU events,
// XSAVE,
// TSS address, extended CPUID). The error names what is missing and wraps
// ErrNoKVM. The result is cached for the life of the process.
func Probe() error {
	_, err := kvmHost()
	return err
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
	return h, nil
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
