package h1

import (
	"io"
	"net"
	"syscall"
	"unsafe"
)

// rawIO reads and writes a connection with raw (non-blocking) system
// calls that the Go scheduler is not told about, waiting on the netpoller
// (deadlines included) only when the socket is not ready.
//
// Why: the runtime's syscall entry wakes the sysmon thread whenever all Ps
// were idle, which on a single busy keep-alive connection is before every
// request, and costs three context switches per request (measured with
// perf on the development VM). A non-blocking socket call never blocks its
// thread, so telling the scheduler about it buys nothing.
type rawIO struct {
	rc syscall.RawConn
}

func newRawIO(c net.Conn) *rawIO {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return &rawIO{rc: rc}
}

func (r *rawIO) Read(p []byte) (n int, err error) {
	if len(p) == 0 {
		return 0, nil
	}
	rerr := r.rc.Read(func(fd uintptr) bool {
		for {
			m, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
			switch e {
			case 0:
				n = int(m)
				if n == 0 {
					err = io.EOF
				}
				return true
			case syscall.EINTR:
				continue
			case syscall.EAGAIN:
				return false
			default:
				err = e
				return true
			}
		}
	})
	if rerr != nil {
		return 0, rerr
	}
	return n, err
}

func (r *rawIO) Write(p []byte) (int, error) {
	return r.writev(p, nil)
}

// writev writes a then b completely.
func (r *rawIO) writev(a, b []byte) (int, error) {
	total := 0
	var err error
	werr := r.rc.Write(func(fd uintptr) bool {
		for len(a)+len(b) > 0 {
			var iov [2]syscall.Iovec
			cnt := 0
			for _, s := range [][]byte{a, b} {
				if len(s) > 0 {
					iov[cnt].Base = &s[0]
					iov[cnt].SetLen(len(s))
					cnt++
				}
			}
			m, _, e := syscall.RawSyscall(syscall.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&iov[0])), uintptr(cnt))
			switch e {
			case 0:
			case syscall.EINTR:
				continue
			case syscall.EAGAIN:
				return false
			default:
				err = e
				return true
			}
			n := int(m)
			total += n
			if n >= len(a) {
				n -= len(a)
				a, b = nil, b[n:]
			} else {
				a = a[n:]
			}
		}
		return true
	})
	if werr != nil {
		return total, werr
	}
	return total, err
}
