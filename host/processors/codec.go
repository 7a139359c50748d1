package processors

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
)

// The built-ins at run time. Each is a pull-based reader over the
// previous step, so a chain streams with bounded memory: a decoder holds
// its window, an encoder at most the compressed output of one chunk of
// input. Only buffer holds a whole body, up to its cap.

// ErrTooLarge is the error of buffer on a body longer than its cap.
var ErrTooLarge = errors.New("body larger than the processors' buffer cap")

// stage opens one step's reader over src.
type stage func(src io.Reader) io.Reader

// chunk is how much input an encoder takes per read.
const chunk = 32 << 10

// lazy defers opening a reader to the first Read, so that building a
// chain never blocks on its input.
type lazy struct {
	open func() (io.Reader, error)
	r    io.Reader
	err  error
}

func (l *lazy) Read(p []byte) (int, error) {
	if l.r == nil && l.err == nil {
		l.r, l.err = l.open()
	}
	if l.err != nil {
		return 0, l.err
	}
	return l.r.Read(p)
}

var gzipReaders sync.Pool

func gunzipStage(src io.Reader) io.Reader {
	return &lazy{open: func() (io.Reader, error) {
		zr, ok := gzipReaders.Get().(*gzip.Reader)
		var err error
		if ok {
			err = zr.Reset(src)
		} else {
			zr, err = gzip.NewReader(src)
		}
		if err != nil {
			return nil, fmt.Errorf("gunzip: %w", err)
		}
		return &gunzipReader{zr: zr}, nil
	}}
}

// gunzipReader returns its decoder to the pool at the end of a clean
// stream.
type gunzipReader struct {
	zr  *gzip.Reader
	eof bool
}

func (g *gunzipReader) Read(p []byte) (int, error) {
	if g.eof {
		return 0, io.EOF
	}
	n, err := g.zr.Read(p)
	switch {
	case err == io.EOF:
		g.eof = true
		gzipReaders.Put(g.zr)
		g.zr = nil
	case err != nil:
		err = fmt.Errorf("gunzip: %w", err)
	}
	return n, err
}

func unbrotliStage(src io.Reader) io.Reader {
	return &wrapErr{r: brotli.NewReader(src), name: "unbrotli"}
}

// wrapErr names the step in its errors; a truncated stream is an error,
// never a short body.
type wrapErr struct {
	r    io.Reader
	name string
}

func (w *wrapErr) Read(p []byte) (int, error) {
	n, err := w.r.Read(p)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("%s: %w", w.name, err)
	}
	return n, err
}

// encoder compresses src as it is read.
type encoder struct {
	src     io.Reader
	w       io.WriteCloser
	out     bytes.Buffer
	in      *[chunk]byte
	done    bool
	err     error
	release func() // returns w to its pool once closed
}

func newEncoder(src io.Reader, mk func(io.Writer) io.WriteCloser) *encoder {
	e := &encoder{src: src}
	e.w = mk(&e.out)
	return e
}

func (e *encoder) Read(p []byte) (int, error) {
	for e.out.Len() == 0 {
		if e.err != nil {
			return 0, e.err
		}
		if e.done {
			return 0, io.EOF
		}
		if e.in == nil {
			e.in = inBuffers.Get().(*[chunk]byte)
		}
		n, err := e.src.Read(e.in[:])
		if n > 0 {
			e.w.Write(e.in[:n]) // into a bytes.Buffer: cannot fail
		}
		switch {
		case err == io.EOF:
			e.w.Close()
			e.done = true
			inBuffers.Put(e.in)
			e.in = nil
			if e.release != nil {
				e.release()
			}
		case err != nil:
			e.err = err
		}
	}
	return e.out.Read(p)
}

// The encoders' state is large (about 1 MiB for gzip): it is reused.
var (
	gzipWriters   sync.Pool
	brotliWriters sync.Pool
	inBuffers     = sync.Pool{New: func() any { return new([chunk]byte) }}
)

func gzipStage(src io.Reader) io.Reader {
	e := newEncoder(src, func(w io.Writer) io.WriteCloser {
		if zw, ok := gzipWriters.Get().(*gzip.Writer); ok {
			zw.Reset(w)
			return zw
		}
		zw, _ := gzip.NewWriterLevel(w, gzip.DefaultCompression)
		return zw
	})
	e.release = func() { gzipWriters.Put(e.w) }
	return e
}

func brotliStage(src io.Reader) io.Reader {
	e := newEncoder(src, func(w io.Writer) io.WriteCloser {
		if bw, ok := brotliWriters.Get().(*brotli.Writer); ok {
			bw.Reset(w)
			return bw
		}
		return brotli.NewWriterLevel(w, 4)
	})
	e.release = func() { brotliWriters.Put(e.w) }
	return e
}

// whole is a body read into one buffer (buffertext).
type whole struct {
	*bytes.Reader
	b []byte
}

// readWhole reads src into one buffer of at most max bytes.
func readWhole(src io.Reader, max int64) ([]byte, error) {
	if l, ok := src.(*lazy); ok {
		if l.r == nil && l.err == nil {
			l.r, l.err = l.open()
		}
		if l.err != nil {
			return nil, l.err
		}
		src = l.r
	}
	if w, ok := src.(*whole); ok {
		return w.b, nil
	}
	b, err := io.ReadAll(io.LimitReader(src, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, ErrTooLarge
	}
	return b, nil
}

func bufferStage(max int64) stage {
	return func(src io.Reader) io.Reader {
		return &lazy{open: func() (io.Reader, error) {
			b, err := readWhole(src, max)
			if err != nil {
				return nil, err
			}
			return &whole{Reader: bytes.NewReader(b), b: b}, nil
		}}
	}
}
