package cache

import (
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"
)

// Flight is one origin fetch that several requests share (Varnish's waiting
// list). The leader fills it; every client, the leader's own included, reads
// the body as it arrives, so the first byte reaches all of them as soon as
// the origin sends it and the object is stored at the end.
type Flight struct {
	key   string
	ready chan struct{} // closed when the head is known or the fetch failed

	// Set before ready is closed.
	Status    int
	Header    http.Header
	Shareable bool          // cacheable: waiters may use this response
	Variant   string        // the stored variant (Vary)
	TTL       time.Duration // freshness of the stored object at arrival
	Reason    string        // why the response is not shareable
	Err       error         // the fetch failed before a head arrived
	Object    *Object       // a stored object answers (304 refresh, stale-if-error)
	Fill      int64         // bytes of the fill budget its filler holds (Cache.ReserveFill)

	Body *Stream
}

// Flights is the registry of fetches in progress, by key.
type Flights struct {
	mu sync.Mutex
	m  map[string]*Flight
}

// Join returns the flight for key, creating it when none is in progress;
// leader is true for the caller that must perform the fetch.
func (fs *Flights) Join(key string) (f *Flight, leader bool) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.m == nil {
		fs.m = map[string]*Flight{}
	}
	if f := fs.m[key]; f != nil {
		return f, false
	}
	f = NewFlight(key)
	fs.m[key] = f
	return f, true
}

// JoinReader is Join for a request that will read the flight's body: it
// also takes a Cursor at the body's start, under the registry's lock, so
// that a body spilled after the flight leaves the registry still keeps
// every byte this reader has not read. The caller closes it.
func (fs *Flights) JoinReader(key string) (f *Flight, leader bool, c *Cursor) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.m == nil {
		fs.m = map[string]*Flight{}
	}
	if f = fs.m[key]; f == nil {
		f, leader = NewFlight(key), true
		fs.m[key] = f
	}
	return f, leader, f.Body.Cursor()
}

// NewFlight returns a flight outside any registry (a fetch nobody joins).
func NewFlight(key string) *Flight {
	return &Flight{key: key, ready: make(chan struct{}), Body: NewStream()}
}

// Get returns the flight in progress for key, or nil.
func (fs *Flights) Get(key string) *Flight {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.m[key]
}

// Ready publishes the head (or f.Err) to the waiters.
func (f *Flight) Ready() { close(f.ready) }

// IsReady reports whether the head is known (Wait would not block).
func (f *Flight) IsReady() bool {
	select {
	case <-f.ready:
		return true
	default:
		return false
	}
}

// Wait blocks until the head is known or ctx ends.
func (f *Flight) Wait(ctx context.Context) error {
	select {
	case <-f.ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Done removes f from the registry: later requests start a new flight (or
// find the stored object).
func (fs *Flights) Done(f *Flight) {
	fs.mu.Lock()
	if fs.m[f.key] == f {
		delete(fs.m, f.key)
	}
	fs.mu.Unlock()
}

// Stream is an append-only body buffer that many readers follow while one
// writer fills it. It holds the whole body (to be stored at its end) until
// the writer calls Spill: from then on it keeps only what its Cursors have
// not read yet, and Write waits while they are a window behind (a body of
// unknown length that turned out too large to store still reaches every
// waiter whole, in bounded memory: issue 13, item 8).
type Stream struct {
	mu     sync.Mutex
	buf    []byte
	base   int // body offset of buf[0]: bytes before it were dropped (Spill)
	done   bool
	err    error
	notify chan struct{} // closed and renewed when bytes arrive or the stream ends
	expect int           // > 0: the body's whole length (Expect), the most buf grows to

	// Pull: the writer's step, which readers short of bytes may run
	// themselves; pullMu is held while a step runs, pulled once a step
	// said the body ended.
	pullMu sync.Mutex
	pull   func() bool
	pulled bool
	lead   chan struct{} // HoldPull: closed when the writer may pull (ReleasePull)

	window   int                  // > 0 once spilled: bytes kept ahead of the slowest cursor
	cursors  map[*Cursor]struct{} // readers whose place keeps bytes (Cursor)
	consumed chan struct{}        // closed and renewed when a cursor moves or goes
}

// ErrLagging ends the body for a reader of a spilled stream that held the
// others back: it took nothing for laggardAfter while the writer waited on
// it (issue 13 attack: one client that stops reading must not stall every
// other reader of a body too large to keep, nor the origin).
var ErrLagging = errors.New("reader dropped: it held the other readers of the body back")

// laggardAfter is how long the slowest reader of a spilled stream may take
// nothing while the writer waits on it; spilledPiece bounds what one Next
// hands it, so a slow but steady client (above spilledPiece/laggardAfter,
// 16 KiB/s) keeps its place. Variables for the tests.
var (
	laggardAfter = 4 * time.Second
	spilledPiece = 64 << 10
)

// ErrDropped is returned to a reader of a spilled stream that asks for
// bytes already dropped: it did not hold a Cursor from the start.
var ErrDropped = errors.New("stream bytes already dropped: the body was too large to keep")

// NewStream returns an empty stream.
func NewStream() *Stream {
	return &Stream{notify: make(chan struct{}), consumed: make(chan struct{}), cursors: map[*Cursor]struct{}{}}
}

// firstCap is the capacity a stream of known length starts with (Expect).
// Allocating the whole length at once put the zeroing of a 5 MiB slicer
// segment (0.3–2 ms with the GC assist it costs, in a trace of cold
// ranges) between the origin's head and the first byte read from its body
// (issue 15, item 4). Grown fourfold from here, and to the whole length
// once a fourfold step would pass half of it, the copying costs at most
// two thirds of the length (a quarter for a 5 MiB segment: 256 KiB, 1 MiB,
// 5 MiB), after the first bytes went out.
const firstCap = 256 << 10

// Expect says the body is n bytes long: the buffer grows toward n in a
// few steps, never past it, and ends without reallocation at that
// length.
func (s *Stream) Expect(n int) {
	s.mu.Lock()
	s.expect = n
	if c := min(n, firstCap); cap(s.buf) < c {
		s.buf = slices.Grow(s.buf, c-len(s.buf))
	}
	s.mu.Unlock()
}

// grow makes room for n more bytes of a body of expected length (mu held).
func (s *Stream) grow(n int) {
	need := len(s.buf) + n
	if s.expect <= 0 || need <= cap(s.buf) || need > s.expect {
		return // append's own growth
	}
	c := max(4*cap(s.buf), need)
	if 2*c > s.expect {
		c = s.expect
	}
	nb := make([]byte, len(s.buf), c)
	copy(nb, s.buf)
	s.buf = nb
}

// Write appends p and wakes readers. Once spilled it drops what every
// cursor has read and waits while the slowest is more than the window
// behind (or until ctx ends: its error is returned).
func (s *Stream) Write(p []byte) (int, error) { return s.WriteContext(context.Background(), p) }

// WriteContext is Write whose wait for slow readers ends with ctx.
func (s *Stream) WriteContext(ctx context.Context, p []byte) (int, error) {
	s.mu.Lock()
	s.grow(len(p))
	s.buf = append(s.buf, p...)
	close(s.notify)
	s.notify = make(chan struct{})
	for s.window > 0 && len(s.buf) > s.window {
		// Past the window: drop what every cursor has read, once the
		// slowest is within half of it (a new array per half window,
		// not per write).
		if low := s.low(); s.base+len(s.buf)-low <= s.window/2 {
			s.trim(low)
			break
		}
		ch := s.consumed
		s.mu.Unlock()
		t := time.NewTimer(laggardAfter / 4)
		select {
		case <-ch:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return len(p), ctx.Err()
		}
		t.Stop()
		s.mu.Lock()
		s.dropLaggards(time.Now())
	}
	s.mu.Unlock()
	return len(p), nil
}

// dropLaggards lets go of the slowest cursors when they took nothing for
// laggardAfter (mu held, spilled): their next Next fails with ErrLagging.
func (s *Stream) dropLaggards(now time.Time) {
	low := s.low()
	for c := range s.cursors {
		if c.off == low && now.Sub(c.at) >= laggardAfter {
			c.lagging = true
			delete(s.cursors, c)
		}
	}
}

// SetPull gives the stream the writer's step, which reads the next bytes
// from the origin and writes them to the stream, and returns false once
// the body ended or failed. A reader that runs out of bytes (Next) runs
// the step itself when no one else is: a client then reads the origin's
// bytes in its own goroutine, as it would without a cache, instead of
// waiting for the writer's goroutine to be scheduled and hand them over.
// step must never wait for readers (not on a spilled stream); its calls
// never overlap.
func (s *Stream) SetPull(step func() bool) {
	s.mu.Lock()
	s.pull = step
	close(s.notify) // readers waiting already may pull now
	s.notify = make(chan struct{})
	s.mu.Unlock()
}

// Pull runs the step given to SetPull until the body ends (after
// HoldPull, once released), also when readers ran some of it.
func (s *Stream) Pull() {
	s.mu.Lock()
	lead := s.lead
	s.mu.Unlock()
	if lead != nil {
		t := time.NewTimer(leadWait)
		select {
		case <-lead:
		case <-t.C:
		}
		t.Stop()
	}
	for {
		s.pullMu.Lock()
		more := s.pullStep()
		s.pullMu.Unlock()
		if !more {
			return
		}
	}
}

// leadWait bounds HoldPull: past it the writer pulls whatever its lead
// reader does (a client that reads slowly, or never comes). A variable
// for the tests.
var leadWait = 50 * time.Millisecond

// HoldPull keeps Pull's own goroutine from reading the origin until
// ReleasePull or leadWait: a reader known to come at once (the client
// whose fetch this is) pulls alone, without a second goroutine taking
// turns with it on every read (issue 15, item 4). Readers pull meanwhile.
func (s *Stream) HoldPull() {
	s.mu.Lock()
	if s.lead == nil {
		s.lead = make(chan struct{})
	}
	s.mu.Unlock()
}

// ReleasePull lets Pull's goroutine read the origin (HoldPull).
func (s *Stream) ReleasePull() {
	s.mu.Lock()
	if s.lead != nil {
		select {
		case <-s.lead:
		default:
			close(s.lead)
		}
	}
	s.mu.Unlock()
}

// pullStep runs the pull step unless the body already ended (pullMu held).
func (s *Stream) pullStep() bool {
	s.mu.Lock()
	step, ended := s.pull, s.pulled
	s.mu.Unlock()
	if ended || step == nil {
		return false
	}
	if step() {
		return true
	}
	s.mu.Lock()
	s.pulled = true
	s.mu.Unlock()
	return false
}

// Spill stops keeping the whole body: from now on only the bytes that a
// cursor has not read yet are kept, at most about window bytes ahead of
// the slowest. Readers that are to read the body must hold a Cursor by
// now (Flights.JoinReader takes one before the flight leaves the
// registry).
func (s *Stream) Spill(window int) {
	s.mu.Lock()
	s.window = max(window, 2)
	s.trim(s.low())
	s.mu.Unlock()
}

// low is the body offset of the slowest cursor (the end when there is
// none).
func (s *Stream) low() int {
	low := s.base + len(s.buf)
	for c := range s.cursors {
		low = min(low, c.off)
	}
	return low
}

// trim drops the bytes before low. The rest moves to a new array: readers
// may still hold slices of the old one.
func (s *Stream) trim(low int) {
	if low == s.base {
		return
	}
	rest := s.buf[low-s.base:]
	s.buf = append(make([]byte, 0, max(s.window+s.window/4, len(rest))), rest...)
	s.base = low
}

// Close ends the stream; err != nil means the body is incomplete and
// readers must fail (close the client connection) rather than end cleanly.
func (s *Stream) Close(err error) {
	s.mu.Lock()
	if !s.done {
		s.done, s.err = true, err
		close(s.notify)
	}
	s.mu.Unlock()
}

// Bytes returns the whole body once the stream ended without error (nil
// and ErrDropped when it was spilled).
func (s *Stream) Bytes() ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.base > 0 {
		return nil, ErrDropped
	}
	return s.buf, s.err
}

// Complete returns the length of the body once it ended cleanly and is
// still whole (not spilled).
func (s *Stream) Complete() (n int, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.buf), s.done && s.err == nil && s.base == 0
}

// Len is the number of bytes written so far.
func (s *Stream) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.base + len(s.buf)
}

// Next returns the bytes after off, waiting for some if there are none yet.
// At the end it returns io.EOF-like (nil, true, err).
func (s *Stream) Next(ctx context.Context, off int) (p []byte, end bool, err error) {
	for {
		s.mu.Lock()
		if off < s.base {
			s.mu.Unlock()
			return nil, true, ErrDropped
		}
		if i := off - s.base; i < len(s.buf) {
			p = s.buf[i:len(s.buf):len(s.buf)]
			s.mu.Unlock()
			return p, false, nil
		}
		if s.done {
			err := s.err
			s.mu.Unlock()
			return nil, true, err
		}
		ch := s.notify
		pull := s.pull != nil && !s.pulled
		s.mu.Unlock()
		if pull && s.pullMu.TryLock() {
			// The writer is not reading the origin now: read it here.
			s.pullStep()
			s.pullMu.Unlock()
			continue
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, true, ctx.Err()
		}
	}
}

// Cursor is one reader's place in a Stream: the bytes from it on are kept
// for the reader even after Spill. Close it when done reading.
type Cursor struct {
	s       *Stream
	off     int
	at      time.Time // when it last asked for bytes
	lagging bool      // dropped by dropLaggards
}

// Cursor returns a new cursor at the start of the body; nil when the
// start was already dropped.
func (s *Stream) Cursor() *Cursor {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.base > 0 {
		return nil
	}
	c := &Cursor{s: s, at: time.Now()}
	s.cursors[c] = struct{}{}
	return c
}

// Next returns the bytes after those it returned before, waiting for some
// if there are none yet; the ones returned before may be dropped now.
// At the end it returns (nil, true, err).
func (c *Cursor) Next(ctx context.Context) (p []byte, end bool, err error) {
	c.s.mu.Lock()
	if c.lagging {
		c.s.mu.Unlock()
		return nil, true, ErrLagging
	}
	c.at = time.Now()
	c.s.mu.Unlock()
	p, end, err = c.s.Next(ctx, c.off)
	if len(p) > 0 {
		c.s.mu.Lock()
		if c.s.window > 0 && len(p) > spilledPiece {
			p = p[:spilledPiece]
		}
		c.off += len(p)
		c.at = time.Now()
		c.s.moved()
		c.s.mu.Unlock()
	}
	return p, end, err
}

// Readers is the number of open cursors.
func (s *Stream) Readers() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.cursors)
}

// Close lets the stream drop what c kept. It may be called more than once.
func (c *Cursor) Close() {
	if c == nil {
		return
	}
	c.s.mu.Lock()
	if _, ok := c.s.cursors[c]; ok {
		delete(c.s.cursors, c)
		c.s.moved()
	}
	c.s.mu.Unlock()
}

// moved wakes a writer waiting for readers (s.mu held).
func (s *Stream) moved() {
	if s.window > 0 {
		close(s.consumed)
		s.consumed = make(chan struct{})
	}
}

// Reader reads the stream from its start as it fills, for one reader in
// the same process (an io.ReadCloser whose Close does nothing).
func (s *Stream) Reader(ctx context.Context) io.ReadCloser { return &streamReader{ctx: ctx, s: s} }

type streamReader struct {
	ctx context.Context
	s   *Stream
	off int
}

func (r *streamReader) Read(p []byte) (int, error) {
	chunk, end, err := r.s.Next(r.ctx, r.off)
	if len(chunk) > 0 {
		n := copy(p, chunk)
		r.off += n
		return n, nil
	}
	if end && err == nil {
		return 0, io.EOF
	}
	return 0, err
}

// Skip moves past n bytes without copying them, waiting until they have
// arrived; short of n at the end of the stream it returns io.EOF (as
// io.CopyN would).
func (r *streamReader) Skip(n int64) (int64, error) {
	start, target := r.off, r.off+int(n)
	for r.off < target {
		chunk, end, err := r.s.Next(r.ctx, r.off)
		if len(chunk) > 0 {
			r.off += min(len(chunk), target-r.off)
			continue
		}
		if end {
			if err == nil {
				err = io.EOF
			}
			return int64(r.off - start), err
		}
	}
	return n, nil
}

func (r *streamReader) Close() error { return nil }
