package pluginapi

import (
	"errors"
	"fmt"
	"io"
	"sync"

	pluginv1 "github.com/edgehost/edgehost/proto/edgehost/plugin/v1"
)

// ErrBodyAborted is returned by a body reader whose sender ended the body
// with an error trailer: the body is incomplete and must not be cached.
var ErrBodyAborted = errors.New("body aborted by sender")

// errMissingTrailer is returned when a body stream ends without a trailer.
var errMissingTrailer = errors.New("body stream ended without a trailer")

// partReader reads a body from a stream of parts: chunks until a trailer.
type partReader struct {
	next    func() (chunk []byte, trailer *pluginv1.Trailer, err error)
	buf     []byte
	err     error
	trailer *pluginv1.Trailer
}

func (r *partReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		chunk, trailer, err := r.next()
		switch {
		case err == io.EOF:
			r.err = errMissingTrailer
		case err != nil:
			r.err = err
		case trailer != nil:
			r.trailer = trailer
			r.err = io.EOF
			if trailer.GetError() != "" {
				r.err = fmt.Errorf("%w: %s", ErrBodyAborted, trailer.GetError())
			}
		default:
			r.buf = chunk
		}
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// sendBody sends body in chunks of at most size through send, then a
// trailer carrying the read error, if any. It returns the error of send; a
// read error is the receiver's to see. A body that can write itself out
// (bytes.Reader, strings.Reader) is sent from its own memory, without a
// copy into a buffer.
func sendBody(body io.Reader, size int, chunk func([]byte) error, trailer func(*pluginv1.Trailer) error) error {
	if wt, ok := body.(io.WriterTo); ok {
		w := &chunkWriter{send: chunk, size: size}
		_, err := wt.WriteTo(w)
		if w.err != nil {
			return w.err
		}
		if err != nil {
			return trailer(&pluginv1.Trailer{Error: err.Error()})
		}
		return trailer(&pluginv1.Trailer{})
	}
	if body != nil {
		bp := getBuf(size)
		defer putBuf(bp)
		buf := *bp
		for {
			// Read, not ReadFull: a chunk goes out as soon as the body
			// yields it, so a slow body streams instead of stalling.
			n, err := body.Read(buf)
			if n > 0 {
				if serr := chunk(buf[:n]); serr != nil {
					return serr
				}
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				return trailer(&pluginv1.Trailer{Error: err.Error()})
			}
		}
	}
	return trailer(&pluginv1.Trailer{})
}

// Chunk buffers of the two sizes in use, reused across calls.
var bufPools = map[int]*sync.Pool{
	ChunkSize:   {New: func() any { b := make([]byte, ChunkSize); return &b }},
	dpChunkSize: {New: func() any { b := make([]byte, dpChunkSize); return &b }},
}

func getBuf(size int) *[]byte {
	if p := bufPools[size]; p != nil {
		return p.Get().(*[]byte)
	}
	b := make([]byte, size)
	return &b
}

func putBuf(b *[]byte) {
	if p := bufPools[len(*b)]; p != nil {
		p.Put(b)
	}
}

// chunkWriter turns writes into chunks of at most size (ChunkSize when
// 0); err keeps the first error of send.
type chunkWriter struct {
	send func([]byte) error
	size int
	err  error
}

func (w *chunkWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	size := w.size
	if size <= 0 {
		size = ChunkSize
	}
	n := 0
	for len(p) > 0 {
		c := p
		if len(c) > size {
			c = c[:size]
		}
		if err := w.send(c); err != nil {
			w.err = err
			return n, err
		}
		n += len(c)
		p = p[len(c):]
	}
	return n, nil
}
