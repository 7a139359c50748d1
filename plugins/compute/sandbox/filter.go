package sandbox

import (
	"fmt"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// The seccomp filter of the process backend, assembled by hand with
// golang.org/x/net/bpf: it is some forty instructions, and a library would
// add a dependency (and, for the usual one, cgo) to write what this file
// says in full. The policy (NOTES "Same small Linux surface on both
// backends"):
//
//   - another architecture (an int 0x80 call): the process is killed;
//   - numbers from 0x10000 (below the x32 bit): the ABI's, to the plugin by
//     user notification;
//   - an allow-list: write and writev to fds 1 and 2, exit, exit_group,
//     brk, anonymous mmap and mprotect without PROT_EXEC, munmap, mremap,
//     arch_prctl, clock_gettime, gettimeofday, getrandom, futex,
//     rt_sigaction, rt_sigprocmask, rt_sigreturn, sigaltstack,
//     set_tid_address, set_robust_list, getpid, gettid, sched_yield,
//     prlimit64 that only reads;
//   - two calls of the stub itself, which runs under the filter between
//     installing it and exec: sendmsg on fd 4 (the listener back to the
//     plugin) and execveat of fd 3 with AT_EMPTY_PATH (the program). Both
//     fds are close-on-exec and the program can make no fd (open, socket,
//     dup, memfd_create… fail), so neither call can succeed after exec;
//   - rseq, for the stub's Go runtime when the plugin is built with cgo: a
//     thread that the runtime started before the filter registers its
//     rseq area under it, and glibc aborts when that fails. It only
//     touches the caller's own memory;
//   - epoll_wait and epoll_pwait, for the stub's Go runtime, whose network
//     poller (when something initialized it) dies of an error from them.
//     They give nothing to the program: it cannot create an epoll fd, and
//     the stub's is close-on-exec;
//   - everything else: ENOSYS, the answer the kvm backend gives too.

const (
	auditArchX8664 = 0xc000003e
	x32Bit         = 0x40000000
	stubProgFD     = 3
	stubSockFD     = 4
)

const (
	retAllow  = unix.SECCOMP_RET_ALLOW
	retNotify = unix.SECCOMP_RET_USER_NOTIF
	retKill   = unix.SECCOMP_RET_KILL_PROCESS
	retNoSys  = unix.SECCOMP_RET_ERRNO | eNOSYS
	retPerm   = unix.SECCOMP_RET_ERRNO | ePERM
)

// cond is a test of one 32-bit half of a system call argument.
type cond struct {
	arg  int
	hi   bool
	kind int // condEq, condClear (A & v == 0), condSet (A & v != 0)
	v    uint32
}

const (
	condEq = iota
	condClear
	condSet
)

func eq(arg int, v uint32) []cond {
	return []cond{{arg: arg, hi: true, kind: condEq, v: 0}, {arg: arg, kind: condEq, v: v}}
}

// rule: system call nr with all of conds true gets ret.
type rule struct {
	nr    uint32
	conds []cond
	ret   uint32
}

func filterRules() []rule {
	allow := func(nrs ...uint32) []rule {
		var r []rule
		for _, n := range nrs {
			r = append(r, rule{nr: n, ret: retAllow})
		}
		return r
	}
	rules := []rule{
		{nr: unix.SYS_WRITE, conds: eq(0, 1), ret: retAllow},
		{nr: unix.SYS_WRITE, conds: eq(0, 2), ret: retAllow},
		{nr: unix.SYS_WRITEV, conds: eq(0, 1), ret: retAllow},
		{nr: unix.SYS_WRITEV, conds: eq(0, 2), ret: retAllow},
		{nr: unix.SYS_MMAP, conds: []cond{
			{arg: 2, kind: condClear, v: unix.PROT_EXEC},
			{arg: 3, kind: condSet, v: unix.MAP_ANONYMOUS},
		}, ret: retAllow},
		{nr: unix.SYS_MMAP, ret: retPerm},
		{nr: unix.SYS_MPROTECT, conds: []cond{{arg: 2, kind: condClear, v: unix.PROT_EXEC}}, ret: retAllow},
		{nr: unix.SYS_MPROTECT, ret: retPerm},
		{nr: unix.SYS_PRLIMIT64, conds: append(eq(0, 0), eq(2, 0)...), ret: retAllow},
		{nr: unix.SYS_SENDMSG, conds: eq(0, stubSockFD), ret: retAllow},
		{nr: unix.SYS_EXECVEAT, conds: append(eq(0, stubProgFD), cond{arg: 4, kind: condEq, v: unix.AT_EMPTY_PATH}), ret: retAllow},
	}
	rules = append(rules, allow(
		unix.SYS_EXIT, unix.SYS_EXIT_GROUP, unix.SYS_BRK, unix.SYS_MUNMAP, unix.SYS_MREMAP,
		unix.SYS_ARCH_PRCTL, unix.SYS_CLOCK_GETTIME, unix.SYS_GETTIMEOFDAY, unix.SYS_GETRANDOM,
		unix.SYS_FUTEX, unix.SYS_RT_SIGACTION, unix.SYS_RT_SIGPROCMASK, unix.SYS_RT_SIGRETURN,
		unix.SYS_SIGALTSTACK, unix.SYS_SET_TID_ADDRESS, unix.SYS_SET_ROBUST_LIST,
		unix.SYS_GETPID, unix.SYS_GETTID, unix.SYS_SCHED_YIELD,
		unix.SYS_EPOLL_WAIT, unix.SYS_EPOLL_PWAIT, unix.SYS_EPOLL_PWAIT2, unix.SYS_RSEQ,
	)...)
	return rules
}

func argOff(c cond) uint32 {
	off := uint32(16 + 8*c.arg)
	if c.hi {
		off += 4
	}
	return off
}

// assembleFilter builds the filter: a head that checks the architecture and
// sends the ABI's numbers to the plugin, then one block per rule (each
// reloads the number, so a failed test jumps straight to the next block),
// then ENOSYS.
func assembleFilter() ([]unix.SockFilter, error) {
	prog := []bpf.Instruction{
		bpf.LoadAbsolute{Off: 4, Size: 4},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: auditArchX8664, SkipTrue: 1},
		bpf.RetConstant{Val: retKill},
		bpf.LoadAbsolute{Off: 0, Size: 4},
		bpf.JumpIf{Cond: bpf.JumpGreaterOrEqual, Val: x32Bit, SkipFalse: 1},
		bpf.RetConstant{Val: retNoSys},
		bpf.JumpIf{Cond: bpf.JumpGreaterOrEqual, Val: callFirst, SkipFalse: 1},
		bpf.RetConstant{Val: retNotify},
	}
	for _, r := range filterRules() {
		n := 2 + 2*len(r.conds) + 1 // ld nr, jeq, (ld arg, test)*, ret
		block := []bpf.Instruction{
			bpf.LoadAbsolute{Off: 0, Size: 4},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: r.nr, SkipFalse: uint8(n - 2)},
		}
		for i, c := range r.conds {
			rest := uint8(n - 2 - 2*i - 2) // instructions after this test
			block = append(block, bpf.LoadAbsolute{Off: argOff(c), Size: 4})
			switch c.kind {
			case condEq:
				block = append(block, bpf.JumpIf{Cond: bpf.JumpEqual, Val: c.v, SkipFalse: rest})
			case condClear:
				block = append(block, bpf.JumpIf{Cond: bpf.JumpBitsNotSet, Val: c.v, SkipFalse: rest})
			case condSet:
				block = append(block, bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: c.v, SkipFalse: rest})
			}
		}
		block = append(block, bpf.RetConstant{Val: r.ret})
		prog = append(prog, block...)
	}
	prog = append(prog, bpf.RetConstant{Val: retNoSys})
	raw, err := bpf.Assemble(prog)
	if err != nil {
		return nil, fmt.Errorf("assemble seccomp filter: %w", err)
	}
	out := make([]unix.SockFilter, len(raw))
	for i, ins := range raw {
		out[i] = unix.SockFilter{Code: ins.Op, Jt: ins.Jt, Jf: ins.Jf, K: ins.K}
	}
	return out, nil
}
