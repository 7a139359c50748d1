package backend

import (
	"context"
	"errors"
	"net/http"
	"strings"
)

// Sentinel errors. Every error that Do returns, and every error that a
// response body returned by Do reports, is an *Error whose Kind is one of
// these (or a context error), so callers test them with errors.Is and map
// them to a status with StatusFor.
var (
	// ErrUnhealthy: the health probe says the origin is sick; Do did not
	// try it. → 503.
	ErrUnhealthy = errors.New("backend: unhealthy")
	// ErrConnect: the TCP (or Unix socket) connection could not be opened:
	// refused, unreachable, or not established within ConnectTimeout. → 502.
	ErrConnect = errors.New("backend: connect failed")
	// ErrFirstByteTimeout: the request was sent but the response header did
	// not arrive within FirstByteTimeout. → 504.
	ErrFirstByteTimeout = errors.New("backend: first byte timeout")
	// ErrBetweenBytesTimeout: a Read of the response body waited longer
	// than BetweenBytesTimeout for the origin. → 504.
	ErrBetweenBytesTimeout = errors.New("backend: between bytes timeout")
	// ErrTruncated: the response body ended before its declared end
	// (Content-Length, or the last chunk of a chunked body): the origin died
	// mid-body or lied about the length. Such a body must never be stored.
	// → 502.
	ErrTruncated = errors.New("backend: body shorter than Content-Length")
	// ErrTooManyConns: MaxConns requests are already in flight to this
	// origin; Do fails at once rather than queueing. → 503.
	ErrTooManyConns = errors.New("backend: max connections reached")
	// ErrFetch: any other failure to get a response: the connection was
	// reset or closed before a response, or the response was malformed. → 502.
	ErrFetch = errors.New("backend: fetch failed")
	// ErrClosed: Do was called after Close. → 503.
	ErrClosed = errors.New("backend: closed")
)

// Error is the error type of this package: which backend, what kind of
// failure (one of the sentinels above, or context.Canceled /
// context.DeadlineExceeded), and the underlying error, if any.
type Error struct {
	Backend string
	Kind    error
	Err     error
}

func (e *Error) Error() string {
	var sb strings.Builder
	sb.WriteString("backend ")
	sb.WriteString(e.Backend)
	sb.WriteString(": ")
	sb.WriteString(strings.TrimPrefix(e.Kind.Error(), "backend: "))
	if e.Err != nil && e.Err != e.Kind {
		sb.WriteString(": ")
		sb.WriteString(e.Err.Error())
	}
	return sb.String()
}

// Unwrap lets errors.Is find both the kind and the cause.
func (e *Error) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}

// StatusFor maps an error from Do (or from reading a response body returned
// by Do) to the status the client gets:
//
//	nil                                         200 (no error)
//	ErrUnhealthy, ErrTooManyConns, ErrClosed    503 Service Unavailable: we chose not to try
//	ErrFirstByteTimeout, ErrBetweenBytesTimeout,
//	context.DeadlineExceeded                    504 Gateway Timeout
//	ErrConnect, ErrTruncated, ErrFetch,
//	context.Canceled, anything else             502 Bad Gateway
//
// A refused or timed-out connect is 502, like nginx's "connect() failed"
// (Varnish answers 503 for every backend failure; we keep 503 for the cases
// where the origin was deliberately not contacted, so that the status tells an
// operator whether edgehost or the origin is to blame). A body error usually
// happens after the header went out, so its status matters only for logs and
// for a caller that buffers.
func StatusFor(err error) int {
	switch {
	case err == nil:
		return http.StatusOK
	case errors.Is(err, ErrUnhealthy), errors.Is(err, ErrTooManyConns), errors.Is(err, ErrClosed):
		return http.StatusServiceUnavailable
	case errors.Is(err, ErrFirstByteTimeout), errors.Is(err, ErrBetweenBytesTimeout):
		return http.StatusGatewayTimeout
	case errors.Is(err, ErrConnect), errors.Is(err, ErrTruncated), errors.Is(err, ErrFetch):
		// Checked before DeadlineExceeded: a connect timeout's net error
		// also matches context.DeadlineExceeded.
		return http.StatusBadGateway
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout
	default:
		return http.StatusBadGateway
	}
}
