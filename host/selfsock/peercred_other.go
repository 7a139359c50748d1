//go:build !linux

package selfsock

import (
	"net"
	"os"
)

// peerCred: without SO_PEERCRED the socket's mode (0600 or 0660) is the
// only guard; every peer that got through it passes as edgehost's user.
func peerCred(*net.UnixConn) (Cred, error) { return Cred{PID: -1, UID: os.Geteuid(), GID: -1}, nil }

func inGroup(pid, gid int) bool { return false }
