package backend

import (
	"context"
	"io"
	"sync/atomic"
	"time"
)

// body wraps a response body from the origin. Every Read arms the
// between-bytes timer, and only Read: time the caller spends elsewhere (say,
// writing to a slow client) is not the origin's fault. When the timer fires
// it closes the transport's body, which may be done while a Read is blocked:
// the transport then closes the connection and the Read returns. (Cancelling
// a per-request context does the same at the cost of a context, its
// channel and its registration with the transport's own context, for every
// request; see BenchmarkDo.) Errors come back as *Error:
// ErrBetweenBytesTimeout, ErrTruncated, or the caller's context error. At EOF,
// on an error, or on Close the MaxConns slot is released.
type body struct {
	rc    io.ReadCloser
	b     *Backend
	ctx   context.Context // the caller's
	timer *time.Timer
	err   error // sticky, once Read failed
	fired atomic.Bool
	done  atomic.Bool
}

func (r *body) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	r.timer.Reset(r.b.betweenByte)
	n, err := r.rc.Read(p)
	r.timer.Stop()
	if err == nil {
		return n, nil
	}
	if err == io.EOF {
		r.finish()
		return n, io.EOF
	}
	r.err = r.b.fail(r.classify(err))
	r.finish()
	return n, r.err
}

// newBody wraps rc. The timer exists (stopped) from the start, so that
// Close may run in another goroutine than Read without a race on it.
func newBody(rc io.ReadCloser, b *Backend, ctx context.Context) *body {
	r := &body{rc: rc, b: b, ctx: ctx}
	r.timer = time.AfterFunc(time.Hour, r.expire)
	r.timer.Stop()
	return r
}

// classify turns an error of the transport's body into an *Error.
func (r *body) classify(err error) error {
	e := &Error{Backend: r.b.name, Err: err}
	switch {
	case r.fired.Load():
		e.Kind = ErrBetweenBytesTimeout
	case r.ctx.Err() != nil:
		e.Kind = r.ctx.Err()
	default:
		// io.ErrUnexpectedEOF (Content-Length not reached, chunked body
		// cut short) and connection errors alike: the body is
		// incomplete.
		e.Kind = ErrTruncated
	}
	if e.Kind == ErrBetweenBytesTimeout {
		e.Err = nil // the error of the body we closed says nothing more
	}
	return e
}

// expire runs when the origin was silent for BetweenBytesTimeout.
func (r *body) expire() {
	r.fired.Store(true)
	r.rc.Close()
}

func (r *body) Close() error {
	r.timer.Stop()
	err := r.rc.Close()
	r.finish()
	return err
}

// finish releases the request's resources, once.
func (r *body) finish() {
	if r.done.CompareAndSwap(false, true) {
		r.b.release()
	}
}
