package selfsock

import (
	"bufio"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// peerCred asks the kernel who connected (SO_PEERCRED: the credentials of
// the peer at connect time).
func peerCred(c *net.UnixConn) (Cred, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return Cred{PID: -1, UID: -1, GID: -1}, err
	}
	var uc *syscall.Ucred
	var uerr error
	if err := rc.Control(func(fd uintptr) {
		uc, uerr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil {
		uerr = err
	}
	if uerr != nil {
		return Cred{PID: -1, UID: -1, GID: -1}, uerr
	}
	return Cred{PID: int(uc.Pid), UID: int(uc.Uid), GID: int(uc.Gid)}, nil
}

// inGroup reports whether process pid has gid among its supplementary
// groups (SO_PEERCRED gives the primary group only).
func inGroup(pid, gid int) bool {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "Groups:"); ok {
			for _, g := range strings.Fields(rest) {
				if n, err := strconv.Atoi(g); err == nil && n == gid {
					return true
				}
			}
			return false
		}
	}
	return false
}
