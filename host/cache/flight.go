package cache

import (
	"context"
	"io"
	"net/http"
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
// writer fills it.
type Stream struct {
	mu     sync.Mutex
	buf    []byte
	done   bool
	err    error
	notify chan struct{}
}

// NewStream returns an empty stream.
func NewStream() *Stream { return &Stream{notify: make(chan struct{})} }

// Grow reserves room for n more bytes: a body of known length is
// buffered without reallocation and copying as it arrives.
func (s *Stream) Grow(n int) {
	s.mu.Lock()
	if cap(s.buf)-len(s.buf) < n {
		nb := make([]byte, len(s.buf), len(s.buf)+n)
		copy(nb, s.buf)
		s.buf = nb
	}
	s.mu.Unlock()
}

// Write appends p and wakes readers.
func (s *Stream) Write(p []byte) (int, error) {
	s.mu.Lock()
	s.buf = append(s.buf, p...)
	close(s.notify)
	s.notify = make(chan struct{})
	s.mu.Unlock()
	return len(p), nil
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

// Bytes returns the whole body once the stream ended without error.
func (s *Stream) Bytes() ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf, s.err
}

// Len is the number of bytes written so far.
func (s *Stream) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.buf)
}

// Next returns the bytes after off, waiting for some if there are none yet.
// At the end it returns io.EOF-like (nil, true, err).
func (s *Stream) Next(ctx context.Context, off int) (p []byte, end bool, err error) {
	for {
		s.mu.Lock()
		if off < len(s.buf) {
			p = s.buf[off:len(s.buf):len(s.buf)]
			s.mu.Unlock()
			return p, false, nil
		}
		if s.done {
			err := s.err
			s.mu.Unlock()
			return nil, true, err
		}
		ch := s.notify
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, true, ctx.Err()
		}
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

func (r *streamReader) Close() error { return nil }
