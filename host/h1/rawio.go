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

	// The callbacks handed to the RawConn are bound once, and a call's
	// arguments and results pass through these fields: a closure per call
	// would capture them and escape to the heap (two allocations per
	// request on the hit path). Read and Write may run concurrently, so
	// each has its own.
	readFn, writeFn func(fd uintptr) bool
	rp              []byte
	rn              int
	rerr            error
	wa, wb          []byte
	wn              int
	werr            error
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
	r := &rawIO{rc: rc}
	r.readFn, r.writeFn = r.read, r.write
	return r
}

func (r *rawIO) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	r.rp, r.rn, r.rerr = p, 0, nil
	err := r.rc.Read(r.readFn)
	n, rerr := r.rn, r.rerr
	r.rp, r.rerr = nil, nil
	if err != nil {
		return 0, err
	}
	return n, rerr
}

// read is the RawConn callback of Read: false means "not ready, wait".
func (r *rawIO) read(fd uintptr) bool {
	p := r.rp
	for {
		m, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		switch e {
		case 0:
			r.rn = int(m)
			if m == 0 {
				r.rerr = io.EOF
			}
			return true
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		default:
			r.rerr = e
			return true
		}
	}
}

func (r *rawIO) Write(p []byte) (int, error) {
	return r.writev(p, nil)
}

// writev writes a then b completely.
func (r *rawIO) writev(a, b []byte) (int, error) {
	r.wa, r.wb, r.wn, r.werr = a, b, 0, nil
	err := r.rc.Write(r.writeFn)
	n, werr := r.wn, r.werr
	r.wa, r.wb, r.werr = nil, nil, nil
	if err != nil {
		return n, err
	}
	return n, werr
}

// write is the RawConn callback of writev: it writes until both buffers are
// out, or the socket is full (false: wait and call again).
func (r *rawIO) write(fd uintptr) bool {
	for len(r.wa)+len(r.wb) > 0 {
		var iov [2]syscall.Iovec
		cnt := 0
		for _, s := range [2][]byte{r.wa, r.wb} {
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
			r.werr = e
			return true
		}
		n := int(m)
		r.wn += n
		if n >= len(r.wa) {
			n -= len(r.wa)
			r.wa, r.wb = nil, r.wb[n:]
		} else {
			r.wa = r.wa[n:]
		}
	}
	return true
}
