package sandbox

import (
	"encoding/json"
	"os"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The stub is the first half of a program's process: the plugin binary
// re-executed with EnvStub set. It locks itself down and becomes the
// program:
//
//  1. PR_SET_NO_NEW_PRIVS (required to install a filter unprivileged, and
//     no set-uid exec afterwards); everything the next steps need is
//     allocated, then the rlimits (address space = max_memory, no core
//     files, no file writes, few fds) are set;
//  2. every fd above 4 close-on-exec; fds 3 (the program, a sealed memfd)
//     and 4 (a socket to the plugin) too;
//  3. the seccomp filter (filter.go) on every thread (TSYNC), with a user
//     notification listener (NEW_LISTENER, WAIT_KILLABLE_RECV: once the
//     plugin has read a call, only SIGKILL interrupts the wait);
//  4. the listener's fd to the plugin over fd 4 (SCM_RIGHTS);
//  5. execveat(3, "", argv, envp, AT_EMPTY_PATH): the program replaces the
//     stub, filter and limits included.
//
// Nothing here may fail quietly: the stub exits with a status the plugin
// reports (stubExit*), and writes why on stderr, which the plugin logs.

// EnvStub names the environment variable that makes the plugin binary a
// stub; its value is the stub's configuration (JSON).
const EnvStub = "EDGEHOST_COMPUTE_STUB"

// Stub exit statuses.
const (
	stubExitConfig = 120 + iota
	stubExitLimits
	stubExitFilter
	stubExitSend
	stubExitExec
)

type stubConfig struct {
	Args      []string `json:"args"`
	Env       []string `json:"env"`
	MaxMemory uint64   `json:"max_memory"`
}

// IsStub reports whether this process was started as a program's stub.
// The plugin's main (and the tests' TestMain) call StubMain first thing
// when it is.
func IsStub() bool { return os.Getenv(EnvStub) != "" }

// StubMain turns this process into the program. It never returns.
func StubMain() {
	runtime.LockOSThread()
	var cfg stubConfig
	if err := json.Unmarshal([]byte(os.Getenv(EnvStub)), &cfg); err != nil || len(cfg.Args) == 0 {
		stubFail(stubExitConfig, "bad stub configuration")
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		stubFail(stubExitLimits, "PR_SET_NO_NEW_PRIVS: "+err.Error())
	}
	if err := unix.CloseRange(stubProgFD, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		stubFail(stubExitLimits, "close_range: "+err.Error())
	}
	argv, err := cStrings(cfg.Args)
	if err != nil {
		stubFail(stubExitConfig, "argv: "+err.Error())
	}
	envp, err := cStrings(cfg.Env)
	if err != nil {
		stubFail(stubExitConfig, "envp: "+err.Error())
	}
	empty, _ := unix.BytePtrFromString("")
	filter, err := assembleFilter()
	if err != nil {
		stubFail(stubExitFilter, err.Error())
	}
	fprog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	// The message that carries the listener, built now: nothing may
	// allocate once the address space is limited (the Go runtime would
	// die of it, as the program would).
	rights := unix.UnixRights(0)
	payload := []byte{'L'}
	iov := unix.Iovec{Base: &payload[0], Len: 1}
	msg := unix.Msghdr{Iov: &iov, Iovlen: 1, Control: &rights[0]}
	msg.SetControllen(len(rights))
	fdSlot := (*int32)(unsafe.Pointer(&rights[unix.CmsgLen(0)]))

	limits := []struct {
		res int
		v   uint64
	}{
		{unix.RLIMIT_CORE, 0},
		{unix.RLIMIT_FSIZE, 0},
		{unix.RLIMIT_NOFILE, 8},
		{unix.RLIMIT_MEMLOCK, 0},
		{unix.RLIMIT_MSGQUEUE, 0},
	}
	if cfg.MaxMemory > 0 {
		limits = append(limits, struct {
			res int
			v   uint64
		}{unix.RLIMIT_AS, cfg.MaxMemory})
	}
	for _, l := range limits {
		if err := unix.Setrlimit(l.res, &unix.Rlimit{Cur: l.v, Max: l.v}); err != nil {
			stubFail(stubExitLimits, "setrlimit: "+err.Error())
		}
	}

	// From here on the filter is in force: only the calls it lets the stub
	// make (sendmsg on fd 4, execveat of fd 3) may follow.
	flags := uintptr(unix.SECCOMP_FILTER_FLAG_TSYNC | unix.SECCOMP_FILTER_FLAG_TSYNC_ESRCH |
		unix.SECCOMP_FILTER_FLAG_NEW_LISTENER | unix.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV)
	lfd, _, errno := unix.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, flags, uintptr(unsafe.Pointer(&fprog)))
	if errno != 0 {
		stubFail(stubExitFilter, "seccomp: "+errno.Error())
	}
	*fdSlot = int32(lfd)
	if _, _, errno := unix.RawSyscall(unix.SYS_SENDMSG, stubSockFD, uintptr(unsafe.Pointer(&msg)), 0); errno != 0 {
		stubFail(stubExitSend, "send listener: "+errno.Error())
	}
	_, _, errno = unix.RawSyscall6(unix.SYS_EXECVEAT, stubProgFD, uintptr(unsafe.Pointer(empty)),
		uintptr(unsafe.Pointer(&argv[0])), uintptr(unsafe.Pointer(&envp[0])), unix.AT_EMPTY_PATH, 0)
	stubFail(stubExitExec, "execveat: "+errno.Error())
}

// cStrings is a NULL-terminated array of C strings.
func cStrings(ss []string) ([]*byte, error) {
	out := make([]*byte, 0, len(ss)+1)
	for _, s := range ss {
		p, err := unix.BytePtrFromString(s)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return append(out, nil), nil
}

// stubFail writes why on stderr (write to fd 2 passes the filter) and
// exits the whole process.
func stubFail(status int, msg string) {
	b := []byte("edgehost compute stub: " + msg + "\n")
	unix.RawSyscall(unix.SYS_WRITE, 2, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
	unix.RawSyscall(unix.SYS_EXIT_GROUP, uintptr(status), 0, 0)
	os.Exit(status)
}
