package kvm

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// This file mirrors the parts of the kernel's KVM ABI (include/uapi/linux/kvm.h
// and arch/x86/include/uapi/asm/kvm.h) that the package uses. abi_test.go
// checks every size, offset and ioctl number against the C headers.

const kvmio = 0xAE

func ioc(dir, nr, size uintptr) uintptr { return dir<<30 | size<<16 | kvmio<<8 | nr }
func io_(nr uintptr) uintptr            { return ioc(0, nr, 0) }
func iow(nr, size uintptr) uintptr      { return ioc(1, nr, size) }
func ior(nr, size uintptr) uintptr      { return ioc(2, nr, size) }
func iowr(nr, size uintptr) uintptr     { return ioc(3, nr, size) }

var (
	kvmGetAPIVersion       = io_(0x00)
	kvmCreateVM            = io_(0x01)
	kvmCheckExtension      = io_(0x03)
	kvmGetVCPUMmapSize     = io_(0x04)
	kvmGetSupportedCPUID   = iowr(0x05, unsafe.Sizeof(kvmCPUID2{}))
	kvmCreateVCPU          = io_(0x41)
	kvmGetDirtyLog         = iow(0x42, unsafe.Sizeof(kvmDirtyLog{}))
	kvmSetUserMemoryRegion = iow(0x46, unsafe.Sizeof(kvmUserspaceMemoryRegion{}))
	kvmSetTSSAddr          = io_(0x47)
	kvmRun                 = io_(0x80)
	kvmGetRegs             = ior(0x81, unsafe.Sizeof(kvmRegs{}))
	kvmSetRegs             = iow(0x82, unsafe.Sizeof(kvmRegs{}))
	kvmGetSregs            = ior(0x83, unsafe.Sizeof(kvmSregs{}))
	kvmSetSregs            = iow(0x84, unsafe.Sizeof(kvmSregs{}))
	kvmSetMSRs             = iow(0x89, unsafe.Sizeof(kvmMSRs{}))
	kvmGetFPU              = ior(0x8c, unsafe.Sizeof(kvmFPU{}))
	kvmSetFPU              = iow(0x8d, unsafe.Sizeof(kvmFPU{}))
	kvmSetCPUID2           = iow(0x90, unsafe.Sizeof(kvmCPUID2{}))
	kvmGetVCPUEvents       = ior(0x9f, unsafe.Sizeof(kvmVCPUEvents{}))
	kvmGetXSAVE            = ior(0xa4, unsafe.Sizeof(kvmXSAVE{}))
	kvmSetXSAVE            = iow(0xa5, unsafe.Sizeof(kvmXSAVE{}))
	kvmSetVCPUEvents       = iow(0xa0, unsafe.Sizeof(kvmVCPUEvents{}))
)

// Capabilities (KVM_CAP_*).
const (
	capUserMemory    = 3
	capSetTSSAddr    = 4
	capExtCPUID      = 7
	capVCPUEvents    = 41
	capXSAVE         = 55
	capSyncRegs      = 74
	capImmediateExit = 136
)

// Exit reasons (KVM_EXIT_*).
const (
	exitUnknown       = 0
	exitException     = 1
	exitIO            = 2
	exitHypercall     = 3
	exitDebug         = 4
	exitHLT           = 5
	exitMMIO          = 6
	exitShutdown      = 8
	exitFailEntry     = 9
	exitIntr          = 10
	exitInternalError = 17
)

// Sync register sets (KVM_SYNC_X86_*).
const (
	syncRegs   = 1 << 0
	syncSregs  = 1 << 1
	syncEvents = 1 << 2
)

const memLogDirtyPages = 1 << 0 // KVM_MEM_LOG_DIRTY_PAGES

type kvmRegs struct {
	RAX, RBX, RCX, RDX, RSI, RDI, RSP, RBP uint64
	R8, R9, R10, R11, R12, R13, R14, R15   uint64
	RIP, RFLAGS                            uint64
}

type kvmSegment struct {
	Base                           uint64
	Limit                          uint32
	Selector                       uint16
	Type                           uint8
	Present, DPL, DB, S, L, G, AVL uint8
	Unusable                       uint8
	_                              uint8
}

type kvmDtable struct {
	Base  uint64
	Limit uint16
	_     [3]uint16
}

type kvmSregs struct {
	CS, DS, ES, FS, GS, SS, TR, LDT kvmSegment
	GDT, IDT                        kvmDtable
	CR0, CR2, CR3, CR4, CR8         uint64
	EFER, APICBase                  uint64
	InterruptBitmap                 [4]uint64
}

type kvmFPU struct {
	FPR        [8][16]uint8
	FCW, FSW   uint16
	FTWX       uint8
	_          uint8
	LastOpcode uint16
	LastIP     uint64
	LastDP     uint64
	XMM        [16][16]uint8
	MXCSR      uint32
	_          uint32
}

// kvmXSAVE is the XSAVE area: it carries XSTATE_BV, so restoring it brings
// back x87 and SSE state exactly (KVM_SET_FPU leaves XSTATE_BV alone, and a
// vCPU whose XSTATE_BV lacks SSE would load the SSE init state instead).
type kvmXSAVE struct {
	Region [1024]uint32
}

type kvmVCPUEvents struct {
	Exception struct {
		Injected, Nr, HasErrorCode, Pending uint8
		ErrorCode                           uint32
	}
	Interrupt struct {
		Injected, Nr, Soft, Shadow uint8
	}
	NMI struct {
		Injected, Pending, Masked, _ uint8
	}
	SIPIVector uint32
	Flags      uint32
	SMI        struct {
		SMM, Pending, SMMInsideNMI, LatchedInit uint8
	}
	Reserved            [27]uint8
	ExceptionHasPayload uint8
	ExceptionPayload    uint64
}

type kvmMSREntry struct {
	Index uint32
	_     uint32
	Data  uint64
}

type kvmMSRs struct {
	NMSRs uint32
	_     uint32
}

type kvmCPUIDEntry2 struct {
	Function, Index, Flags uint32
	EAX, EBX, ECX, EDX     uint32
	_                      [3]uint32
}

type kvmCPUID2 struct {
	NEnt uint32
	_    uint32
}

type kvmUserspaceMemoryRegion struct {
	Slot          uint32
	Flags         uint32
	GuestPhysAddr uint64
	MemorySize    uint64
	UserspaceAddr uint64
}

type kvmDirtyLog struct {
	Slot   uint32
	_      uint32
	Bitmap uint64 // pointer to the bitmap
}

// kvm_run offsets: the structure is a mapping shared with the kernel, read
// and written in place.
const (
	runImmediateExit = 1
	runExitReason    = 8
	runExitData      = 32 // the union of per-exit structures
	runValidRegs     = 288
	runDirtyRegs     = 296
	runSyncRegs      = 304 // struct kvm_sync_regs: regs, sregs, events
	runSyncSregs     = runSyncRegs + 144
	runSyncEvents    = runSyncSregs + 312

	// struct kvm_run.io
	runIODirection  = runExitData + 0
	runIOSize       = runExitData + 1
	runIOPort       = runExitData + 2
	runIOCount      = runExitData + 4
	runIODataOffset = runExitData + 8

	// struct kvm_run.mmio: phys_addr, data[8], len, is_write
	runMMIOIsWrite = runExitData + 20
)

const (
	apiVersion = 12

	msrEFER         = 0xC0000080
	msrSTAR         = 0xC0000081
	msrLSTAR        = 0xC0000082
	msrCSTAR        = 0xC0000083
	msrSFMASK       = 0xC0000084
	msrFSBase       = 0xC0000100
	msrGSBase       = 0xC0000101
	msrKernelGSBase = 0xC0000102
)

func ioctl(fd int, req, arg uintptr) (uintptr, error) {
	r, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, arg)
	if e != 0 {
		return r, e
	}
	return r, nil
}

func ioctlPtr(fd int, req uintptr, p unsafe.Pointer) error {
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, uintptr(p))
	if e != 0 {
		return e
	}
	return nil
}
