package kvm

import (
	"fmt"
	"strings"
)

// ExitReason says why Run returned.
type ExitReason int

const (
	// ExitExited: the program called exit or exit_group (Status), or
	// killed itself with a signal (Signal, Status 128+Signal).
	ExitExited ExitReason = iota + 1
	// ExitPaused: the Handler asked to pause (Call is the call); Run again
	// continues the program, Snapshot freezes it here.
	ExitPaused
	// ExitFault: the program faulted (Fault says how); the VM must be
	// reset before it runs again.
	ExitFault
	// ExitTimeout: the context ended while the program ran (Cause says
	// why); reset the VM, or Run again to let it go on.
	ExitTimeout
)

func (r ExitReason) String() string {
	switch r {
	case ExitExited:
		return "exited"
	case ExitPaused:
		return "paused"
	case ExitFault:
		return "fault"
	case ExitTimeout:
		return "timeout"
	}
	return fmt.Sprintf("ExitReason(%d)", int(r))
}

// Exit is the outcome of one Run.
type Exit struct {
	Reason ExitReason
	Status int    // ExitExited: the exit status
	Signal int    // ExitExited: the signal the program killed itself with, or 0
	Call   Call   // ExitPaused: the call that paused
	Fault  *Fault // ExitFault
	Cause  error  // ExitTimeout: context.Cause of the run's context
	RIP    uint64 // ExitTimeout: where the program was stopped
	// OutOfMemory: an allocation (brk, mmap, mremap) was refused since the
	// last reset because guest memory was full.
	OutOfMemory bool
}

func (e Exit) String() string {
	var b strings.Builder
	b.WriteString(e.Reason.String())
	switch e.Reason {
	case ExitExited:
		if e.Signal != 0 {
			fmt.Fprintf(&b, " (signal %d)", e.Signal)
		} else {
			fmt.Fprintf(&b, " (status %d)", e.Status)
		}
	case ExitPaused:
		fmt.Fprintf(&b, " (call %#x)", e.Call.Nr)
	case ExitFault:
		fmt.Fprintf(&b, ": %v", e.Fault)
	case ExitTimeout:
		fmt.Fprintf(&b, ": %v at rip %#x", e.Cause, e.RIP)
	}
	if e.OutOfMemory {
		b.WriteString(" (out of memory)")
	}
	return b.String()
}

// Fault describes how a program failed: a CPU exception, a triple fault,
// an exit KVM could not handle, or a deadlock. It is the guest's failure,
// never the host's.
type Fault struct {
	Kind      string // "page fault", "stack overflow", "general protection", "triple fault", "deadlock", …
	Vector    int    // exception vector, or -1
	ErrorCode uint64 // the exception's error code, where it has one
	RIP       uint64 // where the program was
	RSP       uint64
	Addr      uint64 // page fault: the faulting address (CR2)
	User      bool   // the program (ring 3) faulted, not the stub
}

var vectorNames = [numExceptions]string{
	0: "divide error", 1: "debug", 2: "NMI", 3: "breakpoint", 4: "overflow",
	5: "bound range", 6: "invalid opcode", 7: "device not available",
	8: "double fault", 10: "invalid TSS", 11: "segment not present",
	12: "stack fault", 13: "general protection", 14: "page fault",
	16: "x87 floating point", 17: "alignment check", 18: "machine check",
	19: "SIMD floating point", 20: "virtualization", 21: "control protection",
}

func vectorName(v int) string {
	if v >= 0 && v < numExceptions && vectorNames[v] != "" {
		return vectorNames[v]
	}
	return fmt.Sprintf("exception %d", v)
}

func (f *Fault) Error() string {
	var b strings.Builder
	b.WriteString(f.Kind)
	if f.Vector >= 0 {
		fmt.Fprintf(&b, " (vector %d", f.Vector)
		if hasErrorCode(f.Vector) {
			fmt.Fprintf(&b, ", error code %#x", f.ErrorCode)
		}
		b.WriteString(")")
	}
	if f.Vector >= 0 || f.RIP != 0 {
		fmt.Fprintf(&b, " at rip %#x", f.RIP)
	}
	if f.Vector == 14 {
		// A stack overflow is a page fault on the guard page.
		op := "read"
		if f.ErrorCode&2 != 0 {
			op = "write"
		}
		if f.ErrorCode&16 != 0 {
			op = "execute"
		}
		fmt.Fprintf(&b, ": %s of address %#x", op, f.Addr)
		if f.ErrorCode&1 == 0 {
			b.WriteString(" (not mapped)")
		} else {
			b.WriteString(" (protection)")
		}
	}
	if !f.User && f.Vector >= 0 {
		b.WriteString(" in the ring-0 stub")
	}
	return b.String()
}
