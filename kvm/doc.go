// Package kvm runs static x86-64 Linux ELF programs in tiny KVM virtual
// machines, freezes them as snapshots and resets them to a snapshot cheaply.
// It is the engine under the compute plugin (DESIGN §8) and is policy-free:
// it knows nothing of HTTP or tenants. It is pure Go over /dev/kvm
// (golang.org/x/sys/unix, no cgo).
//
// # Use
//
//	info, err := kvm.ProbeInfo() // wraps ErrNoKVM: fall back
//	// info.Flavour: hardware or pvm; info.CallRoundTrip: measured here
//	prog, err := kvm.Load(elfBytes) // validated ET_EXEC or static-PIE
//	vm, err := prog.NewVM(kvm.Options{Memory: 64 << 20, Args: []string{"/app"}, IO: kvm.IO{Handler: h, Stdout: w}})
//	exit, err := vm.Run(ctx) // runs until the handler pauses (program waits for its first request)
//	snap, err := vm.Snapshot()
//	// per concurrency slot:
//	slot, err := snap.NewVM(kvm.IO{Handler: h2})
//	// per request:
//	slot.SetIO(kvm.IO{Handler: requestHandler, Stdout: log})
//	exit, err = slot.Run(ctx) // handler calls hand over input and take the response; pauses at the next wait
//	err = slot.Reset()        // back to the snapshot, nothing of this request left
//
// Run reports how the run ended in an Exit: ExitExited (Status, Signal),
// ExitPaused (the Handler asked), ExitFault (a *Fault: vector, RIP,
// faulting address; the program's failure, never the host's), ExitTimeout
// (ctx ended; a vCPU is stopped with immediate_exit and a signal, never by
// an EINTR alone). Faulted or timed-out VMs are reset and reused.
//
// # The machine
//
// Guest memory is one mmap'd slot (never the Go heap) of Options.Memory
// bytes, identity-mapped by long-mode page tables (see layout.go for the
// map). The program runs in ring 3. A page of ring-0 code written for this
// package (stubCode) handles SYSCALL through LSTAR with a single OUT to
// port 0xE0, which exits to the host with the registers already in kvm_run
// (KVM_CAP_SYNC_REGS), and every CPU exception with an OUT to port 0xE1 on
// an IST stack. CPUID comes from KVM_GET_SUPPORTED_CPUID.
//
// # Flavours
//
// Probe runs a self-test guest (17 bytes of ring-3 code making system
// calls) and keeps the flavour under which it works:
//
//   - hardware: KVM on VT-x or AMD-V, also nested under QEMU. SYSCALL
//     enters the ring-0 stub as above.
//   - pvm: the kvm_pvm module, KVM without hardware virtualization. It runs
//     the same long-mode guest (GDT, IDT, TSS, page tables, exceptions
//     through the IDT), but a user-mode SYSCALL jumps to LSTAR without
//     switching to ring 0, so the stub's supervisor page would fault. LSTAR
//     is then a user-mode gate page whose one instruction writes RAX to a
//     doorbell page mapped outside guest memory: the vCPU exits to the host
//     (KVM_EXIT_MMIO) still in user mode, and the host resumes it at RCX
//     with R11's flags, as SYSRET would. One exit per call, where taking
//     the page fault through the guest's IDT and exiting from there costs
//     two mode switches more (measured on a 2-core kvm_pvm machine: 31–38 µs
//     against 52–59 µs per call).
//
// The flavour decides only LSTAR; memory layout, snapshots and reset are
// the same. Probe also measures the call round trip (Info.CallRoundTrip):
// on kvm_pvm every exit costs tens of microseconds, more than a seccomp
// user notification, so an embedder compares before choosing KVM.
//
// The host answers a small Linux surface, enough for static glibc and musl
// programs to start, allocate and print: brk, anonymous mmap, munmap,
// mprotect, mremap, arch_prctl (FS), set_tid_address, set_robust_list,
// rseq (ENOSYS), prlimit64, getrandom, clock_gettime, write and writev to
// stdout and stderr (IO.Stdout, IO.Stderr), exit and exit_group, readlink
// of /proc/self/exe, uname, a single-threaded futex, rt_sig* accepted,
// kill/tgkill of itself (abort). Everything else is ENOSYS. Numbers from
// FirstCall (0x10000) up go to the embedder's Handler, with a bounds-checked
// Memory to read arguments and write results.
//
// # Snapshots and reset
//
// Snapshot copies the VM's touched memory into a sealed memfd; VMs made from
// it map that memfd privately (copy-on-write), so they share every page they
// never write. Reset finds the pages written since (KVM's dirty log for the
// guest's writes, a bitmap for the host's), copies the snapshot's contents
// back over them (or drops them with MADV_DONTNEED when there are many),
// and restores registers, special registers (through kvm_run, no ioctl),
// x87/SSE state (XSAVE), FS base and the emulation state (brk, mmap area).
//
// # Concurrency
//
// A VM is used by one goroutine at a time; only the context given to Run may
// be cancelled from elsewhere. A Program and a Snapshot are safe for
// concurrent use, and VMs made from a Snapshot outlive it.
//
// Tests that need KVM skip, saying why, only where Probe fails;
// EDGEHOST_KVM_REQUIRE=1 makes that a failure (.ci/run sets it where
// /dev/kvm exists, and scripts/test-kvm.sh inside QEMU). make test runs
// them natively (pvm on these machines); make test-kvm runs them under
// QEMU with nested KVM (hardware flavour).
package kvm
