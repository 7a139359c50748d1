package pluginapi

import (
	"errors"
	"fmt"
	"io"

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

// sendBody sends body in chunks through send, then a trailer carrying the
// read error, if any. It returns the error of send; a read error is the
// receiver's to see.
func sendBody(body io.Reader, chunk func([]byte) error, trailer func(*pluginv1.Trailer) error) error {
	if body != nil {
		buf := make([]byte, ChunkSize)
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

// chunkWriter turns writes into chunk messages of at most ChunkSize.
type chunkWriter struct {
	send func([]byte) error
}

func (w chunkWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		c := p
		if len(c) > ChunkSize {
			c = c[:ChunkSize]
		}
		if err := w.send(c); err != nil {
			return n, err
		}
		n += len(c)
		p = p[len(c):]
	}
	return n, nil
}
