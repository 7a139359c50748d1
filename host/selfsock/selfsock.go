// Package selfsock opens the self-request Unix socket (DESIGN §5) so that
// only the processes meant to use it can: plugins and programs, which run
// as edgehost's own user.
//
// A request on this socket is trusted more than a client's: it carries a
// loop depth and a parent transaction (Edgehost-Depth, Edgehost-Parent) and
// may fetch slicer segments. So (issue 13):
//
//   - the socket is created 0600 whatever the umask (0660 and the
//     configured group with listen.self_group): it is bound inside a fresh
//     0700 directory, given its mode and group there, and only then renamed
//     into place, so there is no moment at which it is reachable with the
//     umask's mode;
//   - every connection's peer is checked with SO_PEERCRED, so a socket made
//     reachable by mistake (a chmod, a bind mount) still refuses strangers:
//     a peer must run as edgehost's user, or be in the configured group.
package selfsock

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"
)

// Options configure Listen.
type Options struct {
	// Group, a group name or number, makes the socket 0660 with that
	// group, and lets its members connect. "" = 0600, owner only.
	Group   string
	Logger  *slog.Logger
	Refused *atomic.Int64 // counts refused peers when not nil
}

// Listen creates the socket at path (which must not exist) and returns a
// listener whose Accept only returns connections from allowed peers.
func Listen(path string, opts Options) (net.Listener, error) {
	gid := -1
	mode := os.FileMode(0o600)
	if opts.Group != "" {
		g, err := lookupGroup(opts.Group)
		if err != nil {
			return nil, err
		}
		gid, mode = g, 0o660
	}
	dir, err := os.MkdirTemp(filepath.Dir(path), ".self-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	tmp := filepath.Join(dir, "s")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, err
	}
	ln.SetUnlinkOnClose(false) // it is renamed; the server removes it
	fail := func(err error) (net.Listener, error) {
		ln.Close()
		return nil, err
	}
	if gid >= 0 {
		if err := os.Chown(tmp, -1, gid); err != nil {
			return fail(fmt.Errorf("giving the socket group %s: %w", opts.Group, err))
		}
	}
	if err := os.Chmod(tmp, mode); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fail(err)
	}
	l := &listener{UnixListener: ln, uid: os.Geteuid(), gid: gid, opts: opts}
	if l.opts.Logger == nil {
		l.opts.Logger = slog.Default()
	}
	return l, nil
}

func lookupGroup(name string) (int, error) {
	if n, err := strconv.Atoi(name); err == nil && n >= 0 {
		return n, nil
	}
	g, err := user.LookupGroup(name)
	if err != nil {
		return 0, fmt.Errorf("listen.self_group: %w", err)
	}
	return strconv.Atoi(g.Gid)
}

// Cred is what the kernel says about a peer process.
type Cred struct{ PID, UID, GID int }

// listener refuses connections from peers that are not allowed.
type listener struct {
	*net.UnixListener
	uid, gid int // gid -1: no group
	opts     Options
	lastLog  atomic.Int64
}

func (l *listener) Accept() (net.Conn, error) {
	for {
		c, err := l.UnixListener.AcceptUnix()
		if err != nil {
			return nil, err
		}
		cred, err := peerCred(c)
		if err == nil && l.allowed(cred) {
			return c, nil
		}
		if l.opts.Refused != nil {
			l.opts.Refused.Add(1)
		}
		c.Close()
		// One line a second at most: refusals must not flood the log.
		if now := time.Now().UnixNano(); now-l.lastLog.Load() > int64(time.Second) {
			l.lastLog.Store(now)
			l.opts.Logger.Warn("self socket: peer refused (not edgehost's user or listen.self_group)",
				"pid", cred.PID, "uid", cred.UID, "gid", cred.GID, "err", err)
		}
	}
}

// allowed: edgehost's own user, or a member of the configured group.
func (l *listener) allowed(c Cred) bool {
	if c.UID == l.uid {
		return true
	}
	return l.gid >= 0 && (c.GID == l.gid || inGroup(c.PID, l.gid))
}
