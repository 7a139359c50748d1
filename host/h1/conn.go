package h1

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

type conn struct {
	s      *Server
	nc     net.Conn
	rw     io.ReadWriter // nc, or raw I/O on it
	br     *bufio.Reader // nil while parked
	bw     *bufio.Writer // nil while parked
	hb     *[]byte       // the head buffer (req.buf) from the server's pool; nil while parked
	remote string
	req    Request
	fw     Writer
	raw    *rawIO   // nil: plain net.Conn I/O
	spans  [][2]int // line offsets of the head being read, reused
	// idleSet is when the idle read deadline was last set (zero: not set);
	// writeSet the same for the write deadline.
	idleSet, writeSet time.Time
	state             atomic.Int32 // connActive, connWaiting, connParked, connClosing, connReading
	idleSince         atomic.Int64 // unix ns when the connection last started waiting for a request
	linger            bool         // the client may have sent bytes not read: close gently
	// cold: park as soon as the connection waits for a request (a new
	// connection, or one whose client took hotWait or more to send its
	// last request). A hot one waits in a goroutine, parked only after
	// parkAfter without a request: a busy keep-alive connection costs no
	// epoll call or goroutine start per request.
	cold    bool
	served  bool // a request has been read (the first wait says nothing of the client's pace)
	resumed bool // started by the poller: bytes (or a hang-up) are waiting

	// The poller's registration: id in its table (0: none yet), the
	// sequence number of the last arm (events of older arms are stale),
	// and the cancel function of the request being watched.
	pollID   uint32
	inEpoll  bool // added to the epoll set (removed when the socket closes)
	armSeq   atomic.Uint32
	watch    atomic.Pointer[context.CancelCauseFunc]
	watching bool
}

// A connection's states. Whoever moves a connection out of connWaiting or
// connParked by CompareAndSwap owns what happens next: its goroutine (a
// request came), the poller (resuming a parked one), or the code that
// closes it (shedding, the idle timeout, Shutdown) — never two of them.
const (
	connActive  int32 = iota // a goroutine serves it
	connWaiting              // a goroutine waits for its next request
	connParked               // no goroutine: in the poller until readable
	connClosing              // taken to be closed
	connReading              // its goroutine reads a head that is not all in yet
)

const (
	// hotWait: a client that sends its next request within this keeps
	// its connection's goroutine between requests.
	hotWait = 100 * time.Millisecond
	// parkAfter: a hot connection without a request for this long (at
	// least half of it: the deadline moves once a second) is parked.
	parkAfter = 2 * time.Second
)

// ErrClientGone is the cause of a request context cancelled because its
// client closed the connection (or half-closed it, as net/http counts it)
// while the handler ran.
var ErrClientGone = errors.New("h1: client closed the connection")

var (
	readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 8<<10) }}
	writerPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 16<<10) }}
)

func newConn(s *Server, nc net.Conn) *conn {
	c := &conn{s: s, nc: nc, remote: nc.RemoteAddr().String(), rw: nc, cold: true}
	if c.raw = newRawIO(nc); c.raw != nil {
		c.rw = c.raw
	}
	c.req.RemoteAddr = c.remote
	c.fw = Writer{c: c}
	c.state.Store(connWaiting)
	c.idleSince.Store(time.Now().UnixNano())
	return c
}

// takeBuffers gives the connection its pooled buffers (a new or resumed
// one).
func (c *conn) takeBuffers() {
	if c.br != nil {
		return
	}
	c.br = readerPool.Get().(*bufio.Reader)
	c.br.Reset(c.rw)
	c.bw = writerPool.Get().(*bufio.Writer)
	c.bw.Reset(c.rw)
}

// releaseBuffers gives the buffers back to the pools (nothing is buffered
// in either: a connection parks or ends). The head's slices point into the
// head buffer: they go too.
func (c *conn) releaseBuffers() {
	if c.br != nil {
		c.br.Reset(nil)
		readerPool.Put(c.br)
		c.bw.Reset(nil)
		writerPool.Put(c.bw)
		c.br, c.bw = nil, nil
	}
	if c.hb != nil {
		*c.hb = c.req.buf[:0]
		c.s.heads.Put(c.hb)
		c.hb = nil
	}
	c.req = Request{RemoteAddr: c.remote}
	c.spans = nil
	c.fw.head = nil
}

// shed closes the connection if it waits for a request, and reports
// whether it did.
func (c *conn) shed() bool {
	if c.state.CompareAndSwap(connWaiting, connClosing) {
		c.nc.Close() // its goroutine's read fails and it ends the connection
		return true
	}
	if c.state.CompareAndSwap(connParked, connClosing) {
		c.end()
		return true
	}
	return false
}

// shedReading closes the connection if it is reading a head that has not
// all arrived (Shutdown: no request has been made on it yet).
func (c *conn) shedReading() {
	if c.state.CompareAndSwap(connReading, connClosing) {
		c.nc.Close() // its goroutine's read fails and it ends the connection
	}
}

// end closes the connection and gives back what it holds; called once, by
// its goroutine or by whoever took it while parked.
func (c *conn) end() {
	if c.linger {
		c.lingeringClose()
	}
	c.nc.Close()
	if c.pollID != 0 {
		c.s.poll.Load().forget(c)
	}
	c.releaseBuffers()
	c.s.forget(c)
}

// pollEvent is the poller's: c's socket became readable or hung up.
func (c *conn) pollEvent(ev uint32) {
	if c.state.CompareAndSwap(connParked, connActive) {
		c.resumed = true
		go c.serve()
		return
	}
	if ev&goneEvents != 0 {
		if cancel := c.watch.Swap(nil); cancel != nil {
			(*cancel)(ErrClientGone)
		}
	}
}

func (c *conn) serve() {
	parked := false
	defer func() {
		if p := recover(); p != nil && p != http.ErrAbortHandler {
			c.logf("panic serving %s: %v\n%s", c.remote, p, debug.Stack())
		}
		if !parked {
			c.end()
		}
	}()
	for {
		if c.s.shutdown.Load() {
			return
		}
		if c.br == nil || c.br.Buffered() == 0 {
			switch c.wait() {
			case waitEnd:
				return
			case waitParked:
				parked = true
				return
			}
		}
		partial := !headBuffered(c.br)
		if partial {
			if c.s.HeaderTimeout > 0 {
				c.nc.SetReadDeadline(time.Now().Add(c.s.HeaderTimeout))
				c.idleSet = time.Time{}
			}
			// Until its head is in, no request has been made: Shutdown
			// closes the connection as an idle one (a client trickling
			// a head held a graceful stop for header_timeout).
			c.state.Store(connReading)
		}
		err := c.readHead()
		if partial && !c.state.CompareAndSwap(connReading, connActive) {
			return // closed by Shutdown
		}
		if err != nil {
			var he *httpError
			if errors.As(err, &he) {
				c.writeError(he)
			}
			return
		}
		c.served = true
		r := &c.req
		if c.s.Fast != nil && !r.HasBody() && c.s.Fast(r, &c.fw) {
			if !r.KeepAlive {
				c.bw.Flush()
				return
			}
			// Hold the response back only while a whole pipelined request
			// is waiting behind it (answers leave together).
			if !headBuffered(c.br) {
				c.armWrite()
				if c.bw.Flush() != nil {
					return
				}
			}
			continue
		}
		// The handler may read a body (each read has its own deadline) or
		// take its time: no read deadline while it runs.
		c.nc.SetReadDeadline(time.Time{})
		c.idleSet = time.Time{}
		// Fast-path answers held back for this pipelined request go out
		// first: they must not wait for its handler (an origin's time).
		if c.bw.Buffered() > 0 {
			c.armWrite()
			if c.bw.Flush() != nil {
				return
			}
		}
		if !c.serveSlow() {
			return
		}
	}
}

// watchClient has the poller cancel the running request's context (cause
// ErrClientGone) if the client hangs up, as net/http's background read
// does (issue 13: a pass to a slow origin ran on for seconds after its
// client left). Only the hang-up is watched: bytes of a pipelined request
// stay in the socket for the next request. Called once the request body
// (if any) has been read whole; unwatch ends it.
func (c *conn) watchClient(cancel context.CancelCauseFunc) {
	if c.raw == nil || c.watching {
		return
	}
	p := c.s.poller()
	if p == nil {
		return
	}
	add, seq := p.prepare(c)
	c.watch.Store(&cancel)
	if p.arm(c, watchEvents, add, seq) != nil {
		c.watch.Store(nil)
		c.inEpoll = c.inEpoll && !add
		return
	}
	c.watching = true
}

// unwatch ends the watch of the request's client and reports whether the
// client had hung up.
func (c *conn) unwatch() (gone bool) {
	if !c.watching {
		return false
	}
	c.watching = false
	c.armSeq.Add(1) // the registration stays armed: its event is stale now
	return c.watch.Swap(nil) == nil
}

type waitResult int

const (
	waitRead   waitResult = iota // bytes of a request are buffered
	waitEnd                      // end the connection
	waitParked                   // the poller has it: the goroutine must not touch it
)

// wait waits for the first byte of the next request. Every byte a client
// sends is read under a deadline (issue 13): the idle one while nothing of
// the next request is here, then the header one until its head is
// complete. Only a head that is already buffered whole, the common case,
// costs no timer update.
func (c *conn) wait() waitResult {
	now := time.Now()
	if c.resumed {
		c.resumed = false
		c.cold = !c.served || now.Sub(time.Unix(0, c.idleSince.Load())) >= hotWait
	} else {
		c.idleSince.Store(now.UnixNano())
		if c.cold && c.served && c.s.poller() != nil {
			if r, ok := c.park(); ok {
				return r
			}
		}
	}
	c.takeBuffers()
	if !c.served && c.raw != nil && c.s.poll.Load() != nil {
		// A new connection waits hotWait for its first request here:
		// clients send it right after connecting, and parking first put
		// an epoll wake-up and a goroutine start before every new
		// connection's first byte (issue 15, item 4: the cold TTFB).
		// Past hotWait it parks (the timeout below).
		c.nc.SetReadDeadline(now.Add(hotWait))
		c.idleSet = time.Time{}
	} else {
		c.armIdle(now)
	}
	c.state.Store(connWaiting)
	_, err := c.br.Peek(1)
	if !c.state.CompareAndSwap(connWaiting, connActive) {
		return waitEnd // shed while waiting
	}
	if err == nil {
		return waitRead
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() && c.s.poll.Load() != nil && !c.s.shutdown.Load() &&
		(c.s.IdleTimeout <= 0 || time.Since(time.Unix(0, c.idleSince.Load())) < c.s.IdleTimeout) {
		// parkAfter without a request, idle timeout not reached.
		c.cold = true
		if r, ok := c.park(); ok {
			return r
		}
		return c.wait() // bytes came meanwhile
	}
	return waitEnd
}

// park hands the connection to the poller. ok false: bytes are waiting
// (or the poller would not take it): read them in this goroutine.
func (c *conn) park() (waitResult, bool) {
	p := c.s.poll.Load()
	if c.raw == nil || p == nil {
		return waitRead, false
	}
	c.releaseBuffers()
	c.idleSet = time.Time{} // the read deadline is stale: re-arm when resumed
	add, seq := p.prepare(c)
	c.state.Store(connParked)
	err := p.arm(c, parkEvents, add, seq)
	if err == nil {
		return waitParked, true
	}
	if !c.state.CompareAndSwap(connParked, connActive) {
		return waitParked, true // taken meanwhile (shed): not ours to touch
	}
	c.inEpoll = c.inEpoll && !add
	if err == errReadable && c.served {
		c.cold = false // the client did not keep us waiting
	}
	return waitRead, false
}

// armIdle keeps the read deadline IdleTimeout ahead of now while the
// connection waits for a request (parkAfter, if that is sooner and the
// connection can be parked: then the poller keeps the idle timeout). It moves at most once a second: on a busy
// keep-alive connection that is one timer update per second, not per
// request. Any other deadline (header, body, none) zeroes idleSet, so the
// next wait re-arms it.
func (c *conn) armIdle(now time.Time) {
	d := c.s.IdleTimeout
	if now.Sub(c.idleSet) <= time.Second {
		return
	}
	if c.raw != nil && c.s.poll.Load() != nil && (d <= 0 || d > parkAfter) {
		d = parkAfter // then parked: the poller keeps the idle timeout
	}
	if d > 0 {
		c.nc.SetReadDeadline(now.Add(d))
		c.idleSet = now
	}
}

// headBuffered reports whether a whole request head is already buffered.
// Empty lines before a request line (RFC 9112 §2.2) are not a head: taken
// for one, they let a client send its real head with no header deadline.
func headBuffered(br *bufio.Reader) bool {
	b, _ := br.Peek(br.Buffered())
	for len(b) > 0 && (b[0] == '\r' || b[0] == '\n') {
		b = b[1:]
	}
	return bytes.Contains(b, []byte("\r\n\r\n")) || bytes.Contains(b, []byte("\n\n"))
}

// readHead reads one request head into c.req.
func (c *conn) readHead() error {
	r := &c.req
	r.buf = r.buf[:0]
	r.fields = r.fields[:0]
	max := c.s.MaxHeaderBytes
	// Lines are copied into r.buf; fields point into it, so it must not
	// move: it holds the whole limit. It comes from the server's pool
	// and goes back when the connection parks or ends.
	if c.hb == nil {
		c.hb = c.s.headBuf()
		r.buf = (*c.hb)[:0]
	}
	spans := c.spans[:0]
	defer func() { c.spans = spans[:0] }()
	blank := 0
	for {
		start := len(r.buf)
		for {
			frag, err := c.br.ReadSlice('\n')
			if len(r.buf)+len(frag) > max {
				if len(spans) == 0 {
					return errURITooLong // still in the request line (RFC 9110 §15.5.15)
				}
				return errTooLarge
			}
			r.buf = append(r.buf, frag...)
			if err == nil {
				break
			}
			if err != bufio.ErrBufferFull {
				if len(spans) == 0 && len(r.buf) == 0 {
					return err // connection closed between requests
				}
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					return &httpError{408, "request head timeout"}
				}
				return err
			}
		}
		line := r.buf[start:]
		line = line[:len(line)-1]
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
		if len(line) == 0 {
			if len(spans) == 0 {
				// RFC 9112 §2.2: ignore empty lines before the request line.
				if blank++; blank > 4 {
					return bad("empty request")
				}
				r.buf = r.buf[:start]
				continue
			}
			break
		}
		spans = append(spans, [2]int{start, start + len(line)})
	}
	if err := r.parseRequestLine(r.buf[spans[0][0]:spans[0][1]]); err != nil {
		return err
	}
	for _, sp := range spans[1:] {
		if err := r.addField(r.buf[sp[0]:sp[1]]); err != nil {
			return err
		}
	}
	return r.finishHead()
}

// armWrite keeps a write deadline WriteTimeout ahead, moving it at most
// once a second (a timer update per second, not per write): a client that
// stops reading loses its connection instead of holding it forever.
func (c *conn) armWrite() {
	if c.s.WriteTimeout <= 0 {
		return
	}
	if now := time.Now(); now.Sub(c.writeSet) > time.Second {
		c.nc.SetWriteDeadline(now.Add(c.s.WriteTimeout))
		c.writeSet = now
	}
}

// writeError answers a request that could not be read, then closes. The
// client may still be sending (a 1 MiB request line): the close lingers, or
// the kernel would answer those bytes with a reset that can destroy the
// answer before the client reads it.
func (c *conn) writeError(e *httpError) {
	body := e.Error() + "\n"
	c.armWrite()
	fmt.Fprintf(c.bw, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s",
		e.status, http.StatusText(e.status), len(body), body)
	c.bw.Flush()
	c.linger = true
}

// Lingering close bounds: how long and how much a closing connection
// keeps reading what its client still sends.
const (
	lingerTime  = time.Second
	lingerBytes = 4 << 20
)

// lingeringClose half-closes the connection, reads and drops what the
// client still sends (until it closes, lingerTime or lingerBytes), then
// closes: the client sees our answer and a FIN, not a reset.
func (c *conn) lingeringClose() {
	type closeWriter interface{ CloseWrite() error }
	if cw, ok := c.nc.(closeWriter); ok && cw.CloseWrite() == nil {
		c.nc.SetReadDeadline(time.Now().Add(lingerTime))
		c.br.Reset(c.nc) // raw I/O or not: deadlines hold either way
		io.CopyN(io.Discard, c.br, lingerBytes)
	}
	c.nc.Close()
}

func (c *conn) logf(format string, args ...any) {
	if c.s.Logger != nil {
		c.s.Logger.Warn(fmt.Sprintf(format, args...))
	}
}

// serveSlow runs the http.Handler; it reports whether the connection can
// carry another request.
func (c *conn) serveSlow() bool {
	r := &c.req
	hr, err := c.httpRequest()
	if err != nil {
		var he *httpError
		if errors.As(err, &he) {
			c.writeError(he)
		}
		return false
	}
	ctx, cancel := context.WithCancelCause(c.baseContext())
	defer cancel(nil)
	hr = hr.WithContext(ctx)
	w := &response{c: c, req: r, header: http.Header{}, cl: -1, head: hr.Method == http.MethodHead, keepAlive: r.KeepAlive && !c.s.shutdown.Load(), cancel: cancel}
	if body, ok := hr.Body.(*body); ok {
		body.w = w
	} else {
		c.watchClient(cancel)
	}
	aborted := true
	func() {
		defer func() {
			if p := recover(); p != nil {
				if p != http.ErrAbortHandler {
					c.logf("panic in handler for %s %s: %v\n%s", hr.Method, hr.RequestURI, p, debug.Stack())
				}
				return
			}
			aborted = false
		}()
		h := c.s.Handler
		if hr.RequestURI == "*" { // only OPTIONS gets here (parseRequestLine)
			h = optionsStar
		}
		h.ServeHTTP(w, hr)
	}()
	if c.unwatch() {
		w.keepAlive = false // the client left, or half-closed: no next request
	}
	if aborted {
		return false
	}
	if !w.wroteHeader && !w.committed && len(w.pending) == 0 && w.written == 0 {
		// The handler gave no answer at all (its client went away):
		// close rather than invent an empty 200.
		return false
	}
	w.finish()
	if !w.keepAlive {
		return false
	}
	// Unread request body: drain a little, else close (the next request's
	// head would be read from the middle of this body).
	if b, ok := hr.Body.(*body); ok && !b.eof {
		if n, _ := io.CopyN(io.Discard, b, 256<<10); n == 256<<10 || !b.eof {
			c.linger = true
			return false
		}
	}
	return true
}

// optionsStar answers "OPTIONS *", a question about the server rather than
// a resource (RFC 9110 §9.3.7): no route, cache or origin is involved.
var optionsStar = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Allow", "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS")
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusOK)
})

func (c *conn) baseContext() context.Context {
	if c.s.BaseContext != nil {
		return c.s.BaseContext
	}
	return context.Background()
}

// httpRequest builds the *http.Request of the current head. Strings are
// copied: the handler may keep them.
func (c *conn) httpRequest() (*http.Request, error) {
	r := &c.req
	target := string(r.Target)
	u, err := url.ParseRequestURI(target)
	if err != nil {
		if target != "*" {
			return nil, bad("invalid request target")
		}
		u = &url.URL{Path: "*"}
	}
	h := make(http.Header, len(r.fields))
	for _, f := range r.fields {
		k := http.CanonicalHeaderKey(string(f.name))
		h[k] = append(h[k], string(f.value))
	}
	host := string(r.Host)
	if u.Host != "" {
		host = u.Host
		u.Host, u.Scheme = "", ""
		if u.Path == "" {
			u.Path = "/" // RFC 9112 §3.2.2: absolute-form with an empty path
		}
	}
	proto := "HTTP/1.1"
	if r.Minor == 0 {
		proto = "HTTP/1.0"
	}
	hr := &http.Request{
		Method: string(r.Method), URL: u, Proto: proto, ProtoMajor: 1, ProtoMinor: r.Minor,
		Header: h, Host: host, RemoteAddr: c.remote, RequestURI: target, Close: !r.KeepAlive,
	}
	delete(h, "Host")
	switch {
	case r.chunked:
		hr.ContentLength = -1
		hr.TransferEncoding = []string{"chunked"}
		hr.Body = &body{c: c, r: httputil.NewChunkedReader(c.br), chunked: true}
	case r.contentLength > 0:
		hr.ContentLength = r.contentLength
		hr.Body = &body{c: c, r: io.LimitReader(c.br, r.contentLength), remaining: r.contentLength}
	default:
		hr.Body = http.NoBody
	}
	return hr, nil
}

// body reads a request body, sending "100 Continue" first when the client
// asked for it.
type body struct {
	c         *conn
	w         *response
	r         io.Reader
	chunked   bool
	remaining int64
	eof       bool
	err       error // sticky: a body that failed is never read on
	continued bool
}

func (b *body) Read(p []byte) (int, error) {
	if b.eof {
		return 0, io.EOF
	}
	if b.err != nil {
		return 0, b.err
	}
	if b.c.req.expect100 && !b.continued && b.w != nil && !b.w.wroteHeader {
		b.continued = true
		b.c.bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
		b.c.bw.Flush()
	}
	// A body that stalls gets IdleTimeout per read, then the read fails.
	if t := b.c.s.IdleTimeout; t > 0 {
		b.c.nc.SetReadDeadline(time.Now().Add(t))
		b.c.idleSet = time.Time{}
	}
	n, err := b.r.Read(p)
	if !b.chunked {
		b.remaining -= int64(n)
		if err == io.EOF && b.remaining > 0 {
			err = io.ErrUnexpectedEOF
		}
	}
	if err == io.EOF && b.chunked {
		if terr := b.c.readTrailers(); terr != nil {
			err = terr
		}
	}
	if err == io.EOF {
		b.eof = true
		if b.w != nil {
			// The whole body is read: from here a hang-up is the client
			// leaving, not the end of what it sends.
			b.c.watchClient(b.w.cancel)
		}
	} else if err != nil {
		b.err = err
	}
	return n, err
}

// ErrBadTrailer is a request body whose chunked trailer section is
// malformed or too large.
var ErrBadTrailer = errors.New("h1: malformed chunked trailer section")

// readTrailers consumes the trailer section after the last chunk (RFC 9112
// §7.1.2): field lines, each ending in CRLF, then CRLF, all within
// MaxHeaderBytes. Anything else is an error, and the connection is not
// reused: an intermediary that parses trailers to the letter would see
// another end of this request than we do (request smuggling). The fields
// themselves are dropped: edgehost does not forward request trailers.
func (c *conn) readTrailers() error {
	total := 0
	for {
		line, err := c.br.ReadSlice('\n')
		total += len(line)
		switch {
		case err == bufio.ErrBufferFull || total > c.s.MaxHeaderBytes:
			return fmt.Errorf("%w: larger than %d bytes", ErrBadTrailer, c.s.MaxHeaderBytes)
		case err != nil:
			return io.ErrUnexpectedEOF
		case len(line) < 2 || line[len(line)-2] != '\r':
			return fmt.Errorf("%w: a line not ending in CRLF", ErrBadTrailer)
		}
		line = line[:len(line)-2]
		if len(line) == 0 {
			return nil
		}
		if _, err := parseField(line); err != nil {
			return fmt.Errorf("%w: %v", ErrBadTrailer, err)
		}
	}
}

func (b *body) Close() error { return nil }

// response is the http.ResponseWriter of the slow path. Small bodies are
// buffered so that they get a Content-Length; larger ones, or flushed ones,
// are sent chunked (HTTP/1.1) or delimited by closing (HTTP/1.0).
type response struct {
	c           *conn
	req         *Request
	header      http.Header
	status      int
	wroteHeader bool // WriteHeader called (status decided)
	committed   bool // head written to the wire
	chunked     bool
	cl          int64 // declared Content-Length, -1 none
	written     int64
	pending     []byte
	head        bool
	keepAlive   bool
	cancel      context.CancelCauseFunc // the request context's
}

const pendingMax = 4 << 10

func (w *response) Header() http.Header { return w.header }

func (w *response) WriteHeader(code int) {
	if w.wroteHeader {
		return
	}
	if code >= 100 && code < 200 && code != 101 {
		// Informational: goes out at once with the header fields set so
		// far (as net/http does: 103 Early Hints carries Link), the real
		// status follows. Never to an HTTP/1.0 client (RFC 9110 §15.2).
		if w.req.Minor == 0 {
			return
		}
		bw := w.c.bw
		bw.WriteString("HTTP/1.1 " + strconv.Itoa(code) + " " + http.StatusText(code) + "\r\n")
		writeFields(bw, w.header)
		bw.WriteString("\r\n")
		bw.Flush()
		return
	}
	w.wroteHeader = true
	w.status = code
	if v := w.header.Get("Content-Length"); v != "" {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
			w.cl = n
		} else {
			w.header.Del("Content-Length")
		}
	}
}

func bodyAllowed(status int) bool {
	return status >= 200 && status != 204 && status != 304
}

func (w *response) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !bodyAllowed(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	if w.cl >= 0 && w.written+int64(len(p)) > w.cl {
		return 0, http.ErrContentLength
	}
	w.written += int64(len(p))
	if w.head {
		return len(p), nil
	}
	if !w.committed {
		if w.cl < 0 && len(w.pending)+len(p) <= pendingMax {
			w.pending = append(w.pending, p...)
			return len(p), nil
		}
		w.commit(false)
	}
	return w.writeBody(p)
}

func (w *response) writeBody(p []byte) (int, error) {
	w.c.armWrite()
	bw := w.c.bw
	if w.chunked {
		if len(p) == 0 {
			return 0, nil
		}
		bw.WriteString(strconv.FormatInt(int64(len(p)), 16))
		bw.WriteString("\r\n")
		n, err := bw.Write(p)
		bw.WriteString("\r\n")
		return n, err
	}
	return bw.Write(p)
}

// commit writes the head. final says the handler is done, so buffered
// bytes are the whole body.
func (w *response) commit(final bool) {
	if w.committed {
		return
	}
	w.committed = true
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	h := w.header
	switch {
	case !bodyAllowed(w.status):
		if w.status != 304 {
			h.Del("Content-Length")
		}
	case w.cl >= 0:
	case w.head:
		if w.written > 0 {
			h.Set("Content-Length", strconv.FormatInt(w.written, 10))
		}
	case final:
		w.cl = int64(len(w.pending))
		if w.head {
			w.cl = w.written
		}
		if !w.head || w.written > 0 {
			h.Set("Content-Length", strconv.FormatInt(w.cl, 10))
		}
	case w.req.Minor == 1:
		w.chunked = true
		h.Set("Transfer-Encoding", "chunked")
	default:
		w.keepAlive = false
	}
	if !w.keepAlive {
		h.Set("Connection", "close")
	} else if w.req.Minor == 0 {
		h.Set("Connection", "keep-alive")
	}
	bw := w.c.bw
	bw.WriteString(statusLine(w.req.Minor, w.status))
	if _, ok := h["Date"]; !ok {
		bw.Write(appendDate(nil))
	}
	writeFields(bw, h)
	bw.WriteString("\r\n")
	if len(w.pending) > 0 && !w.head {
		p := w.pending
		w.pending = nil
		w.writeBody(p)
	}
}

// writeFields writes the field lines of h.
func writeFields(bw *bufio.Writer, h http.Header) {
	for k, vs := range h {
		for _, v := range vs {
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(headerValue(v))
			bw.WriteString("\r\n")
		}
	}
}

// Reset takes back the status and header fields if nothing of the
// response has been sent yet, so that the handler can answer otherwise (an
// error found before the first body byte); it reports whether it could.
func (w *response) Reset() bool {
	if w.committed {
		return false
	}
	clear(w.header)
	w.wroteHeader, w.status, w.cl, w.written, w.pending, w.chunked = false, 0, -1, 0, w.pending[:0], false
	return true
}

// headerValue keeps a value from splitting the head: CR and LF become spaces.
func headerValue(v string) string {
	for i := 0; i < len(v); i++ {
		if v[i] == '\r' || v[i] == '\n' {
			b := []byte(v)
			for j := range b {
				if b[j] == '\r' || b[j] == '\n' {
					b[j] = ' '
				}
			}
			return string(b)
		}
	}
	return v
}

// Flush sends what is buffered (committing the head, chunked).
func (w *response) Flush() {
	if !w.committed {
		w.commit(false)
	}
	w.c.armWrite()
	w.c.bw.Flush()
}

// finish ends the response after the handler returned.
func (w *response) finish() {
	if !w.committed {
		w.commit(true)
	}
	if w.chunked && !w.head {
		w.c.bw.WriteString("0\r\n\r\n")
	}
	if w.cl >= 0 && w.written < w.cl && bodyAllowed(w.status) && !w.head {
		// The handler wrote less than it declared: the client must not
		// take the next bytes as this body's end.
		w.keepAlive = false
	}
	w.c.armWrite()
	w.c.bw.Flush()
}

var _ http.Flusher = (*response)(nil)
