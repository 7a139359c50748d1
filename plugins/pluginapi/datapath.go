package pluginapi

// The data path: the calls that every request pays for (Compute.Handle,
// Processor.Process, File.Read, Slicer.Decide) over plain Unix stream
// sockets with a hand-written framing, beside the gRPC connection that
// go-plugin sets up and that keeps everything else (Info, Configure,
// Health, Shutdown, File.Watch, File.Check).
//
// Why hand-written (issue 15): through gRPC a small call host → plugin →
// host cost ~190 µs on the 2-core machine and a 1 MiB body streamed at
// ~145 MB/s. A profile shows ~70 µs of host CPU per call in HTTP/2
// framing, HPACK, the loopy writer's goroutine hand-offs and futex wake-
// ups, as much again in the plugin; TLS is ~1% and the in-process test
// transport (TCP, no TLS, no subprocess) is no faster. Window and buffer
// tuning (transport.go) had already been done. A request/response
// exchange on its own socket needs none of that: one write and one read
// per message, no multiplexing, no header compression, and the kernel's
// socket buffers for flow control.
//
// Negotiation. The host creates a Unix socket pair (the control socket)
// and hands one end to the plugin at launch, as a file descriptor named
// by EDGEHOST_PLUGIN_DATA_FD (OfferDataPath). A plugin that serves the
// data path says so in Info (capabilities.data_path); only then does the
// host's Client use it, else every call stays on gRPC. For each new
// connection the host makes another socket pair and sends one end over
// the control socket (SCM_RIGHTS). Nothing is ever named in the file
// system and no other process can connect: the descriptors are the
// credentials, as the AutoMTLS certificates are for gRPC.
//
// Connections. One call at a time per connection; idle connections are
// pooled by the host (at most maxIdleConns), a new one made when none is
// idle. A call that fails or is cancelled closes its connection, which
// the other side sees at once (the plugin's context is cancelled).
//
// Frames: a 5-byte header, type (1 byte) and payload length (4 bytes,
// big endian), then the payload. A call:
//
//	host → plugin:  C(method, has_body, deadline, proto message)  [D(data)… T(error text)]
//	plugin → host:  H(proto message)  [D(data)… T(error text)]   or   E(code, message)
//
// C's payload is the method (1 byte), 1 when a request body follows, the
// context deadline in Unix nanoseconds (8 bytes, 0 for none) and the
// request message: DecideRequest, RequestHead, ProcessHead or
// ReadRequest. H carries DecideResponse (Decide), ResponseHead (Handle,
// Process) or nothing (Read). T ends a body; a non-empty text means the
// sender aborted it (ErrBodyAborted on the other side). E ends a call
// with a gRPC status code and message at any point before T, so the
// host's callers see the same errors as over gRPC.
//
// Bounds and back-pressure: a message frame is at most maxFrame bytes
// (gRPC's default message limit); body data is never buffered beyond the
// connection's bufio buffers (connBufSize each way) and the kernel's
// socket buffers, so a reader that stops reading stops the writer (see
// TestDataPathBackPressure). The plugin drains at most drainLimit bytes
// of a request body that its handler left unread before it closes the
// connection instead of reusing it.

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	pluginv1 "github.com/edgehost/edgehost/proto/edgehost/plugin/v1"
)

// DataPathVersion is the version of the data path protocol that this
// package speaks; a plugin reports the version it serves in Info.
const DataPathVersion = 1

// Frame types.
const (
	frameCall    byte = 'C'
	frameHead    byte = 'H'
	frameChunk   byte = 'D'
	frameTrailer byte = 'T'
	frameError   byte = 'E'
)

// Methods of a call frame.
const (
	methodDecide  byte = 1
	methodHandle  byte = 2
	methodProcess byte = 3
	methodRead    byte = 4
)

const (
	frameHeaderLen = 5
	callPrefixLen  = 10       // method, has_body, deadline
	maxFrame       = 4 << 20  // a message frame (head, request); gRPC's default limit
	connBufSize    = 32 << 10 // bufio buffers of a connection, each way
	dpChunkSize    = 256 << 10
	maxIdleConns   = 64
	drainLimit     = 256 << 10
	// directWrite is the chunk size from which a chunk is written with
	// writev beside its header instead of being copied into the buffer.
	directWrite = 4 << 10
)

var errProtocol = errors.New("data path protocol error")

// dpConn is one data path connection. On the host, a call's body sender
// uses the write side while its caller reads; each side has its own
// scratch space.
type dpConn struct {
	conn    net.Conn
	br      *bufio.Reader
	bw      *bufio.Writer
	rhdr    [frameHeaderLen]byte
	whdr    [frameHeaderLen]byte
	scratch []byte // payload of the last message frame read
	wbuf    []byte // a message being written
}

func newDPConn(c net.Conn) *dpConn {
	return &dpConn{conn: c, br: bufio.NewReaderSize(c, connBufSize), bw: bufio.NewWriterSize(c, connBufSize)}
}

// readHeader reads a frame header.
func (c *dpConn) readHeader() (byte, int, error) {
	if _, err := io.ReadFull(c.br, c.rhdr[:]); err != nil {
		return 0, 0, err
	}
	n := binary.BigEndian.Uint32(c.rhdr[1:])
	if n > maxFrame {
		return 0, 0, fmt.Errorf("%w: frame of %d bytes", errProtocol, n)
	}
	return c.rhdr[0], int(n), nil
}

// readPayload reads n bytes into the scratch buffer, valid until the next
// readPayload.
func (c *dpConn) readPayload(n int) ([]byte, error) {
	if cap(c.scratch) < n {
		c.scratch = make([]byte, n)
	}
	b := c.scratch[:n]
	_, err := io.ReadFull(c.br, b)
	return b, err
}

// readFrame reads a whole frame.
func (c *dpConn) readFrame() (byte, []byte, error) {
	typ, n, err := c.readHeader()
	if err != nil {
		return 0, nil, err
	}
	b, err := c.readPayload(n)
	return typ, b, err
}

func (c *dpConn) putHeader(typ byte, n int) {
	c.whdr[0] = typ
	binary.BigEndian.PutUint32(c.whdr[1:], uint32(n))
}

// writeFrame buffers a frame; flush sends it.
func (c *dpConn) writeFrame(typ byte, payload []byte) error {
	c.putHeader(typ, len(payload))
	if _, err := c.bw.Write(c.whdr[:]); err != nil {
		return err
	}
	_, err := c.bw.Write(payload)
	return err
}

// writeMessage buffers a frame whose payload is prefix and msg's wire form.
func (c *dpConn) writeMessage(typ byte, prefix []byte, msg proto.Message) error {
	b := append(c.wbuf[:0], prefix...)
	b, err := proto.MarshalOptions{}.MarshalAppend(b, msg)
	if err != nil {
		return err
	}
	if len(b) > maxFrame {
		return fmt.Errorf("message of %d bytes is larger than %d", len(b), maxFrame)
	}
	if cap(b) <= 64<<10 {
		c.wbuf = b
	}
	return c.writeFrame(typ, b)
}

// writeChunk sends a chunk of body data: small ones through the buffer,
// large ones straight to the socket beside their header.
func (c *dpConn) writeChunk(p []byte) error {
	if len(p) == 0 {
		return nil
	}
	if len(p) < directWrite {
		return c.writeFrame(frameChunk, p)
	}
	if err := c.bw.Flush(); err != nil {
		return err
	}
	c.putHeader(frameChunk, len(p))
	bufs := net.Buffers{c.whdr[:], p}
	_, err := bufs.WriteTo(c.conn)
	return err
}

// writeTrailer sends the trailer that ends a body and flushes.
func (c *dpConn) writeTrailer(t *pluginv1.Trailer) error {
	if err := c.writeFrame(frameTrailer, []byte(t.GetError())); err != nil {
		return err
	}
	return c.bw.Flush()
}

// frameBody reads a body of chunk frames up to its trailer. fail turns a
// transport error into the error its reader sees; end, when set, is
// called once the trailer has been read.
type frameBody struct {
	c     *dpConn
	left  int // bytes left in the current chunk
	err   error
	ended bool // the trailer was read
	fail  func(error) error
	end   func()
	// allowError accepts an E frame in place of the trailer (File.Read).
	allowError bool
}

func (b *frameBody) Read(p []byte) (int, error) {
	for b.left == 0 {
		if b.err != nil {
			return 0, b.err
		}
		typ, n, err := b.c.readHeader()
		if err != nil {
			b.err = b.fail(err)
			continue
		}
		switch typ {
		case frameChunk:
			b.left = n
		case frameTrailer:
			msg, err := b.c.readPayload(n)
			if err != nil {
				b.err = b.fail(err)
				continue
			}
			b.ended = true
			b.err = io.EOF
			if len(msg) > 0 {
				b.err = fmt.Errorf("%w: %s", ErrBodyAborted, msg)
			}
			if b.end != nil {
				b.end()
			}
		case frameError:
			payload, err := b.c.readPayload(n)
			if err != nil {
				b.err = b.fail(err)
				continue
			}
			if !b.allowError {
				b.err = b.fail(fmt.Errorf("%w: error frame in a body", errProtocol))
				continue
			}
			b.ended = true
			b.err = decodeError(payload)
		default:
			b.err = b.fail(fmt.Errorf("%w: frame %q in a body", errProtocol, typ))
		}
	}
	if len(p) > b.left {
		p = p[:b.left]
	}
	n, err := b.c.br.Read(p)
	b.left -= n
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		b.err = b.fail(err)
		if n > 0 {
			return n, nil
		}
		return 0, b.err
	}
	return n, nil
}

func encodeError(err error) []byte {
	s := status.Convert(toStatus(err))
	b := make([]byte, 4, 4+len(s.Message()))
	binary.BigEndian.PutUint32(b, uint32(s.Code()))
	return append(b, s.Message()...)
}

func decodeError(p []byte) error {
	if len(p) < 4 {
		return status.Error(codes.Internal, "malformed error frame from plugin")
	}
	code := codes.Code(binary.BigEndian.Uint32(p))
	if code == codes.OK {
		code = codes.Unknown
	}
	return status.Error(code, string(p[4:]))
}

// ---- host side ----

// dataPath is the host's side of a plugin's data path: the control socket
// and the pool of idle connections.
type dataPath struct {
	ctlMu sync.Mutex
	ctl   *net.UnixConn

	mu     sync.Mutex
	idle   []*dpConn
	closed bool
}

var errDataPathClosed = errors.New("data path closed")

// get returns an idle connection or a new one.
func (d *dataPath) get() (*dpConn, error) {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil, status.Error(codes.Unavailable, errDataPathClosed.Error())
	}
	if n := len(d.idle); n > 0 {
		c := d.idle[n-1]
		d.idle = d.idle[:n-1]
		d.mu.Unlock()
		return c, nil
	}
	d.mu.Unlock()
	conn, err := d.dial()
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "plugin data path: %v", err)
	}
	return newDPConn(conn), nil
}

// dial makes a connection and sends its other end to the plugin.
func (d *dataPath) dial() (net.Conn, error) {
	local, remote, err := socketPair()
	if err != nil {
		return nil, err
	}
	defer remote.Close()
	d.ctlMu.Lock()
	err = sendFile(d.ctl, remote)
	d.ctlMu.Unlock()
	if err != nil {
		local.Close()
		return nil, err
	}
	return local, nil
}

// put pools a connection that ended a call cleanly.
func (d *dataPath) put(c *dpConn) {
	d.mu.Lock()
	if !d.closed && len(d.idle) < maxIdleConns {
		d.idle = append(d.idle, c)
		d.mu.Unlock()
		return
	}
	d.mu.Unlock()
	c.conn.Close()
}

// close closes the idle connections and the control socket; calls in
// flight end on their own (their connections are closed, not pooled).
func (d *dataPath) close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	idle := d.idle
	d.idle = nil
	d.mu.Unlock()
	for _, c := range idle {
		c.conn.Close()
	}
	d.ctlMu.Lock()
	defer d.ctlMu.Unlock()
	return d.ctl.Close()
}

// dpCall is one call on the host side. Its connection goes back to the
// pool when every side that uses it (the caller reading, and the body
// sender when there is a request body) is done cleanly; the caller's
// failure or early Close, or its context ending, closes it at once.
type dpCall struct {
	d    *dataPath
	c    *dpConn
	ctx  context.Context
	stop func() bool
	refs atomic.Int32
	bad  atomic.Bool
}

func (d *dataPath) begin(ctx context.Context, sides int32) (*dpCall, error) {
	c, err := d.get()
	if err != nil {
		return nil, err
	}
	k := &dpCall{d: d, c: c, ctx: ctx}
	k.refs.Store(sides)
	k.stop = context.AfterFunc(ctx, func() { c.conn.Close() })
	return k, nil
}

// done is called once by the caller's side (the reader); ok false closes
// the connection at once, which also stops a body sender still writing.
func (k *dpCall) done(ok bool) {
	if !ok && !k.bad.Swap(true) {
		k.c.conn.Close()
	}
	k.release()
}

// senderDone is called once by the body sender. A failed write does not
// close the connection: the plugin may have answered before it read the
// whole body (and then closed its end), and the caller reads that answer
// to its end; the connection is only not reused.
func (k *dpCall) senderDone(ok bool) {
	if !ok {
		k.bad.Store(true)
	}
	k.release()
}

func (k *dpCall) release() {
	if k.refs.Add(-1) > 0 {
		return
	}
	if k.stop() && !k.bad.Load() {
		k.d.put(k.c)
		return
	}
	k.c.conn.Close()
}

// transportErr is what a caller sees of a broken connection: the context's
// error when it ended the call, else Unavailable (as gRPC reports a
// plugin that went away).
func (k *dpCall) transportErr(err error) error {
	if e := k.ctx.Err(); e != nil {
		return status.FromContextError(e).Err()
	}
	if errors.Is(err, errProtocol) {
		return status.Errorf(codes.Internal, "plugin data path: %v", err)
	}
	return status.Errorf(codes.Unavailable, "plugin data path: %v", err)
}

// send writes the call frame and flushes it.
func (k *dpCall) send(method byte, hasBody bool, msg proto.Message) error {
	var prefix [callPrefixLen]byte
	prefix[0] = method
	if hasBody {
		prefix[1] = 1
	}
	if dl, ok := k.ctx.Deadline(); ok {
		binary.BigEndian.PutUint64(prefix[2:], uint64(dl.UnixNano()))
	}
	if err := k.c.writeMessage(frameCall, prefix[:], msg); err != nil {
		return err
	}
	return k.c.bw.Flush()
}

// decide is Slicer.Decide over the data path.
func (d *dataPath) decide(ctx context.Context, req *pluginv1.DecideRequest) (*pluginv1.DecideResponse, error) {
	k, err := d.begin(ctx, 1)
	if err != nil {
		return nil, err
	}
	if err := k.send(methodDecide, false, req); err != nil {
		k.done(false)
		return nil, k.transportErr(err)
	}
	payload, err := k.answer()
	if err != nil {
		return nil, err
	}
	resp := &pluginv1.DecideResponse{}
	err = proto.Unmarshal(payload, resp)
	k.done(err == nil)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "decide response: %v", err)
	}
	return resp, nil
}

// answer reads the frame that answers a call: the head's payload, or the
// plugin's error (the call then ended cleanly), or a transport error.
func (k *dpCall) answer() ([]byte, error) {
	typ, payload, err := k.c.readFrame()
	switch {
	case err != nil:
		k.done(false)
		return nil, k.transportErr(err)
	case typ == frameHead:
		return payload, nil
	case typ == frameError:
		err := decodeError(payload)
		k.done(true)
		return nil, err
	}
	k.done(false)
	return nil, k.transportErr(fmt.Errorf("%w: frame %q answering a call", errProtocol, typ))
}

// stream is Compute.Handle and Processor.Process over the data path: the
// call frame, then the body from a goroutine while the response head is
// awaited, so that a plugin may answer before it has read the body.
func (d *dataPath) stream(ctx context.Context, method byte, msg proto.Message, body io.Reader) (*Response, error) {
	sides := int32(1)
	if body != nil {
		sides = 2
	}
	k, err := d.begin(ctx, sides)
	if err != nil {
		return nil, err
	}
	if err := k.send(method, body != nil, msg); err != nil {
		k.done(false)
		if body != nil {
			k.done(false)
		}
		return nil, k.transportErr(err)
	}
	if body != nil {
		go func() {
			err := sendBody(body, dpChunkSize, k.c.writeChunk, k.c.writeTrailer)
			k.senderDone(err == nil)
		}()
	}
	payload, err := k.answer()
	if err != nil {
		return nil, err
	}
	head := &pluginv1.ResponseHead{}
	if err := proto.Unmarshal(payload, head); err != nil {
		k.done(false)
		return nil, status.Errorf(codes.Internal, "response head: %v", err)
	}
	return &Response{Head: head, Body: &dpBody{k: k, fb: frameBody{c: k.c, fail: k.transportErr}}}, nil
}

// dpBody is a response body on the host side.
type dpBody struct {
	k    *dpCall
	fb   frameBody
	once sync.Once
}

func (b *dpBody) Read(p []byte) (int, error) {
	n, err := b.fb.Read(p)
	if err != nil {
		ok := b.fb.ended
		b.once.Do(func() { b.k.done(ok) })
	}
	return n, err
}

// Close releases the call; a body not read to its end closes the
// connection, which cancels the call in the plugin.
func (b *dpBody) Close() error {
	b.once.Do(func() { b.k.done(b.fb.ended) })
	return nil
}

// read is File.Read over the data path.
func (d *dataPath) read(ctx context.Context, req *pluginv1.ReadRequest, w io.Writer) error {
	k, err := d.begin(ctx, 1)
	if err != nil {
		return err
	}
	if err := k.send(methodRead, false, req); err != nil {
		k.done(false)
		return k.transportErr(err)
	}
	fb := frameBody{c: k.c, fail: k.transportErr, allowError: true}
	buf := make([]byte, 32<<10)
	for {
		n, err := fb.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				k.done(false)
				return werr
			}
		}
		if err == io.EOF {
			k.done(true)
			return nil
		}
		if err != nil {
			k.done(fb.ended)
			return err
		}
	}
}

// ---- plugin side ----

// dpServer serves the data path in a plugin.
type dpServer struct {
	slicer    Slicer
	compute   Compute
	processor Processor
	file      File
}

func newDPServer(impl Plugin) *dpServer {
	s := &dpServer{}
	s.slicer, _ = impl.(Slicer)
	s.compute, _ = impl.(Compute)
	s.processor, _ = impl.(Processor)
	s.file, _ = impl.(File)
	return s
}

// serve accepts connections from the control socket until it fails (the
// host is gone or closed it).
func (s *dpServer) serve(ctl *net.UnixConn) error {
	for {
		conn, err := recvConn(ctl)
		if err != nil {
			return err
		}
		if conn == nil {
			continue
		}
		go s.serveConn(newDPConn(conn))
	}
}

// serveConn serves calls on c one after another. The goroutine that reads
// the next call changes with every call (see serverCall.watch), so
// serveConn returns whenever another goroutine has taken the connection
// over, or the connection is closed.
func (s *dpServer) serveConn(c *dpConn) {
	for {
		typ, payload, err := c.readFrame()
		if err != nil || typ != frameCall || len(payload) < callPrefixLen {
			c.conn.Close()
			return
		}
		if !s.call(c, payload) {
			return
		}
	}
}

// serverCall is one call in the plugin.
type serverCall struct {
	s        *dpServer
	c        *dpConn
	cancel   context.CancelFunc
	finished atomic.Bool   // the last frame of the answer is being written
	released chan struct{} // closed once the handler's goroutine is done with c
}

// watch hands the connection's read side to a new goroutine once the
// request has been read: while the handler runs, anything it reads (EOF
// when the host closed the connection) cancels the call; after the
// answer, what it reads is the next call, which it then serves. This
// notices a cancelled call without a reader goroutine per connection and
// without a hand-off on the way to the handler.
func (st *serverCall) watch() {
	go func() {
		_, err := st.c.br.Peek(1)
		if err != nil || !st.finished.Load() {
			// The host closed the connection (or spoke out of turn).
			st.cancel()
			st.c.conn.Close()
			return
		}
		<-st.released
		st.s.serveConn(st.c)
	}()
}

// last writes the final frame of the answer.
func (st *serverCall) last(write func() error) error {
	st.finished.Store(true)
	if err := write(); err != nil {
		return err
	}
	return st.c.bw.Flush()
}

// call serves one call whose call frame is payload; it reports whether
// the caller's goroutine keeps serving the connection.
func (s *dpServer) call(c *dpConn, payload []byte) bool {
	method, hasBody := payload[0], payload[1] == 1
	msg := payload[callPrefixLen:]
	var (
		ctx    context.Context
		cancel context.CancelFunc
	)
	if dl := int64(binary.BigEndian.Uint64(payload[2:])); dl != 0 {
		ctx, cancel = context.WithDeadline(context.Background(), time.Unix(0, dl))
	} else {
		ctx, cancel = context.WithCancel(context.Background())
	}
	defer cancel()
	st := &serverCall{s: s, c: c, cancel: cancel, released: make(chan struct{})}
	var body *frameBody
	if hasBody {
		body = &frameBody{c: c, fail: func(err error) error {
			cancel()
			return err
		}, end: st.watch}
	}
	// Decode the message before anything else reads from c (msg is c's
	// scratch space).
	var err error
	var req proto.Message
	switch method {
	case methodDecide:
		req = &pluginv1.DecideRequest{}
	case methodHandle:
		req = &pluginv1.RequestHead{}
	case methodProcess:
		req = &pluginv1.ProcessHead{}
	case methodRead:
		req = &pluginv1.ReadRequest{}
	default:
		c.conn.Close()
		return false
	}
	if err = proto.Unmarshal(msg, req); err != nil {
		err = status.Errorf(codes.InvalidArgument, "call message: %v", err)
	}
	if !hasBody {
		st.watch()
	}
	if err == nil {
		err = s.dispatch(ctx, st, method, req, body)
	}
	if err != nil && !errors.Is(err, errWrite) {
		// The handler failed before its answer started.
		err = wrapWrite(st.last(func() error { return c.writeFrame(frameError, encodeError(err)) }))
	}
	close(st.released)
	if err != nil { // the answer could not be written
		c.conn.Close()
		return false
	}
	if body == nil || body.ended {
		return false // the watcher has the connection
	}
	// The handler left part of the request body unread: drain a little,
	// else give the connection up.
	body.end = nil
	_, _ = io.Copy(io.Discard, io.LimitReader(body, drainLimit))
	if !body.ended {
		c.conn.Close()
		return false
	}
	return true
}

// errWrite marks a failure to write the answer: the connection is broken.
var errWrite = errors.New("writing the answer failed")

// dispatch runs the method and writes its answer; an error it returns
// before the answer started is sent as an E frame.
func (s *dpServer) dispatch(ctx context.Context, st *serverCall, method byte, req proto.Message, body *frameBody) error {
	c := st.c
	unimplemented := func(what string) error { return status.Errorf(codes.Unimplemented, "plugin does not serve %s", what) }
	switch method {
	case methodDecide:
		if s.slicer == nil {
			return unimplemented("slicer")
		}
		resp, err := s.slicer.Decide(ctx, req.(*pluginv1.DecideRequest))
		if err != nil {
			return err
		}
		return wrapWrite(st.last(func() error { return c.writeMessage(frameHead, nil, resp) }))
	case methodHandle, methodProcess:
		var (
			resp *Response
			err  error
			rb   io.Reader
		)
		if body != nil {
			rb = body
		}
		if method == methodHandle {
			if s.compute == nil {
				return unimplemented("compute")
			}
			resp, err = s.compute.Handle(ctx, &Request{Head: req.(*pluginv1.RequestHead), Body: rb})
		} else {
			if s.processor == nil {
				return unimplemented("processor")
			}
			if rb == nil {
				rb = eofReader{}
			}
			resp, err = s.processor.Process(ctx, req.(*pluginv1.ProcessHead), rb)
		}
		if err != nil {
			return err
		}
		if resp == nil || resp.Head == nil {
			if resp != nil && resp.Body != nil {
				resp.Body.Close()
			}
			return status.Error(codes.Internal, "plugin returned a response without a head")
		}
		if resp.Body != nil {
			defer resp.Body.Close()
		}
		if err := c.writeMessage(frameHead, nil, resp.Head); err != nil {
			return wrapWrite(err)
		}
		var rbody io.Reader
		if resp.Body != nil {
			rbody = resp.Body
		} else if err := c.bw.Flush(); err != nil {
			return wrapWrite(err)
		}
		return wrapWrite(sendBody(rbody, dpChunkSize, c.writeChunk, func(t *pluginv1.Trailer) error {
			return st.last(func() error { return c.writeFrame(frameTrailer, []byte(t.GetError())) })
		}))
	case methodRead:
		if s.file == nil {
			return unimplemented("file")
		}
		err := s.file.Read(ctx, req.(*pluginv1.ReadRequest), &chunkWriter{size: dpChunkSize, send: func(p []byte) error {
			return wrapWrite(c.writeChunk(p))
		}})
		if err != nil {
			if errors.Is(err, errWrite) {
				return err
			}
			return wrapWrite(st.last(func() error { return c.writeFrame(frameError, encodeError(err)) }))
		}
		return wrapWrite(st.last(func() error { return c.writeFrame(frameTrailer, nil) }))
	}
	return status.Error(codes.Unimplemented, "unknown data path method")
}

func wrapWrite(err error) error {
	if err == nil || errors.Is(err, errWrite) {
		return err
	}
	return fmt.Errorf("%w: %w", errWrite, err)
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }
