package h1

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// poller holds idle keep-alive connections without a goroutine (issue 15),
// and watches the connections of running requests for their client leaving
// (issue 13).
//
// Why an epoll set of our own: Go's netpoller wakes a goroutine blocked in
// Read; it cannot be asked "tell me when this socket is readable" without
// one, and a blocked goroutine costs its stack per idle connection (8 KiB
// at least, more once a request has deepened it), with the buffers it
// holds. A parked connection keeps only its conn struct and socket: its
// buffers are back in the pools, no goroutine waits for it, and one
// goroutine here waits for all of them. When a parked socket becomes
// readable (or hangs up), that goroutine resumes the connection in a new
// goroutine, which starts with a small stack.
//
// The socket stays registered with the runtime's netpoller as well (an fd
// may be in several epoll sets): the resumed goroutine reads it the
// ordinary way. Registrations are one-shot and carry the connection's id
// and an arm sequence number, so an event that was in flight when its
// registration changed (a watch that ended, a connection that closed and
// whose descriptor number was reused) is recognised and dropped.
type poller struct {
	s    *Server
	epfd int
	wake int // eventfd: tells run to look at p.closed

	mu     sync.Mutex
	conns  map[uint32]*conn // registered connections by id
	nextID uint32
	closed bool
	done   chan struct{}
}

// Event sets: a parked connection waits for bytes or a hang-up; a watched
// one (its request being served) only for a hang-up, so that a pipelined
// request does not look like one.
const (
	parkEvents  = unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT
	watchEvents = unix.EPOLLRDHUP | unix.EPOLLONESHOT
	goneEvents  = unix.EPOLLRDHUP | unix.EPOLLHUP | unix.EPOLLERR
)

// pollScan is how often parked connections are checked against the idle
// timeout: a parked connection is closed at most this late.
const pollScan = 250 * time.Millisecond

// errReadable is arm's answer when bytes are already waiting: read them
// instead of parking.
var errReadable = errors.New("h1: socket readable")

func newPoller(s *Server) (*poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	// id 0 is the wake-up eventfd; connections count from 1.
	ev := unix.EpollEvent{Events: unix.EPOLLIN}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wake, &ev); err != nil {
		unix.Close(epfd)
		unix.Close(wake)
		return nil, fmt.Errorf("epoll_ctl eventfd: %w", err)
	}
	p := &poller{s: s, epfd: epfd, wake: wake, conns: map[uint32]*conn{}, done: make(chan struct{})}
	go p.run()
	return p, nil
}

// prepare readies c's next arm while its goroutine still owns it alone:
// an id in the table, the next sequence number, and whether the socket
// must be added to the epoll set (add) rather than modified. Nothing of c
// is written after that: once parked, c may be taken (resumed, shed) as
// soon as its state says so, and those hand-overs order only what was
// written before them.
func (p *poller) prepare(c *conn) (add bool, seq uint32) {
	if c.pollID == 0 {
		p.mu.Lock()
		// After a wrap (2^32 connections) an id may still be held by a
		// long-lived connection: skip those, and 0 (the eventfd). The
		// table holds far fewer than 2^32, so this ends.
		for p.nextID++; p.nextID == 0 || p.conns[p.nextID] != nil; p.nextID++ {
		}
		c.pollID = p.nextID
		p.conns[c.pollID] = c
		p.mu.Unlock()
	}
	add = !c.inEpoll
	c.inEpoll = true
	return add, c.armSeq.Add(1)
}

// arm registers c's socket for events (parkEvents or watchEvents) after
// prepare. With parkEvents, a socket that already has bytes to read is not
// armed: errReadable. When arm fails, the socket is not in the epoll set
// if add was asked (the caller, owning c again, clears c.inEpoll).
func (p *poller) arm(c *conn, events uint32, add bool, seq uint32) error {
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if closed {
		return net.ErrClosed
	}
	ev := unix.EpollEvent{Events: events, Fd: int32(c.pollID), Pad: int32(seq)}
	op := unix.EPOLL_CTL_MOD
	if add {
		op = unix.EPOLL_CTL_ADD
	}
	var err error
	cerr := c.raw.rc.Control(func(fd uintptr) {
		if events&unix.EPOLLIN != 0 {
			if n, e := unix.IoctlGetInt(int(fd), unix.SIOCINQ); e == nil && n > 0 {
				err = errReadable
				return
			}
		}
		err = unix.EpollCtl(p.epfd, op, int(fd), &ev)
	})
	if cerr != nil {
		return cerr
	}
	return err
}

// forget drops c (its socket is closing, which takes it out of the epoll
// set).
func (p *poller) forget(c *conn) {
	if c.pollID == 0 {
		return
	}
	p.mu.Lock()
	delete(p.conns, c.pollID)
	p.mu.Unlock()
}

func (p *poller) run() {
	defer close(p.done)
	events := make([]unix.EpollEvent, 256)
	last := time.Now()
	for {
		n, err := unix.EpollWait(p.epfd, events, int(pollScan/time.Millisecond))
		if err != nil && !errors.Is(err, syscall.EINTR) {
			// Not expected from a valid epoll fd; park no more (arm
			// fails) and give parked connections back to goroutines.
			p.s.logf("h1: epoll_wait: %v: parking disabled", err)
			p.mu.Lock()
			p.closed = true
			p.mu.Unlock()
			p.resumeAll()
			return
		}
		for _, ev := range events[:max(n, 0)] {
			if ev.Fd == 0 {
				p.mu.Lock()
				closed := p.closed
				p.mu.Unlock()
				if closed {
					p.resumeAll()
					return
				}
				continue
			}
			p.mu.Lock()
			c := p.conns[uint32(ev.Fd)]
			p.mu.Unlock()
			if c == nil || c.armSeq.Load() != uint32(ev.Pad) {
				continue // a registration that has changed since
			}
			c.pollEvent(ev.Events)
		}
		if now := time.Now(); now.Sub(last) >= pollScan {
			last = now
			p.expire(now)
		}
	}
}

// expire closes the parked connections whose idle timeout has passed.
func (p *poller) expire(now time.Time) {
	t := p.s.IdleTimeout
	if t <= 0 {
		return
	}
	limit := now.Add(-t).UnixNano()
	var old []*conn
	p.mu.Lock()
	for _, c := range p.conns {
		if c.state.Load() == connParked && c.idleSince.Load() <= limit {
			old = append(old, c)
		}
	}
	p.mu.Unlock()
	for _, c := range old {
		if c.state.CompareAndSwap(connParked, connClosing) {
			c.end()
		}
	}
}

// resumeAll hands every parked connection back to a goroutine (the poller
// is stopping): each reads, or sees its socket closed by Shutdown.
func (p *poller) resumeAll() {
	p.mu.Lock()
	var all []*conn
	for _, c := range p.conns {
		all = append(all, c)
	}
	p.mu.Unlock()
	for _, c := range all {
		c.pollEvent(unix.EPOLLIN)
	}
}

// stop ends the poller's goroutine (parked connections, if any are left,
// are handed back to goroutines) and releases its descriptors.
func (p *poller) stop() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	one := [8]byte{1}
	unix.Write(p.wake, one[:])
	<-p.done
	unix.Close(p.epfd)
	unix.Close(p.wake)
}
