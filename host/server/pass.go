package server

import (
	"context"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"time"

	"github.com/edgehost/edgehost/host/config"
	"github.com/edgehost/edgehost/host/httpcache"
)

// pass forwards the request as is and streams the answer, storing nothing.
func (s *Server) pass(tx *Txn, r *http.Request) error {
	resp, err := s.forwardRequest(tx, r)
	if resp == nil {
		return err
	}
	s.stream(tx, r, resp)
	return nil
}

// forwardRequest sends the client's request as is to the route's backend.
// A nil response with a nil error: the client went away.
func (s *Server) forwardRequest(tx *Txn, r *http.Request) (*http.Response, error) {
	s.metrics.OriginFetches.Add(1)
	resp, err := tx.route.backend.Do(interim(r.Context(), tx), r)
	if err != nil {
		s.metrics.OriginErrors.Add(1)
		if r.Context().Err() != nil {
			return nil, nil
		}
		return nil, err
	}
	tx.status.FwdStatus = resp.StatusCode
	return resp, nil
}

// unsafe passes a non-GET/HEAD request; a successful answer invalidates the
// stored URL and the one in Location / Content-Location on the same host
// (RFC 9111 §4.4).
func (s *Server) unsafe(tx *Txn, r *http.Request) error {
	tx.status.Fwd = httpcache.FwdMethod
	s.metrics.Passes.Add(1)
	if tx.route.backend == nil {
		return NewStatusError(http.StatusMethodNotAllowed, errString(r.Method+" is not allowed on a synthetic route"))
	}
	resp, err := s.forwardRequest(tx, r)
	if resp == nil {
		return err
	}
	if resp.StatusCode < 400 && r.Method != http.MethodOptions && r.Method != "TRACE" {
		s.cache.Purge(cacheKey(r))
		for _, h := range []string{"Location", "Content-Location"} {
			if loc := resp.Header.Get(h); loc != "" {
				if u, err := r.URL.Parse(loc); err == nil && (u.Host == "" || strings.EqualFold(u.Host, r.Host)) {
					s.cache.Purge(strings.ToLower(r.Host) + u.RequestURI())
				}
			}
		}
	}
	s.stream(tx, r, resp)
	return nil
}

// stream copies an uncached origin response to the client.
func (s *Server) stream(tx *Txn, r *http.Request, resp *http.Response) {
	defer resp.Body.Close()
	h := tx.w.Header()
	copyOriginHeader(h, resp.Header, tx.route.Route)
	h.Set("Cache-Status", tx.status.String())
	tx.w.WriteHeader(resp.StatusCode)
	if r.Method == http.MethodHead {
		return
	}
	size := 32 << 10
	if tx.transit > 0 {
		size = tx.transit
	}
	n, err := io.CopyBuffer(writerOnly{tx.w}, resp.Body, make([]byte, size))
	s.metrics.BytesIn.Add(n)
	if err != nil && r.Context().Err() == nil {
		s.metrics.OriginErrors.Add(1)
		s.log.Warn("origin body failed mid-stream", "tx", tx.ID, "err", err)
		tx.Error = err.Error()
		tx.w.abort(err)
	}
}

// preconditionsAnswer answers r with 304 or 412 when its preconditions
// decide against resp, a 200 fetched without them (originRequest withholds
// the client's conditionals from a fetch meant for storing) that turned out
// not to be stored: the origin never saw them, so they are evaluated here,
// as a hit would be (RFC 9110 §13.2.2). resp's body is closed then.
func preconditionsAnswer(tx *Txn, r *http.Request, resp *http.Response) bool {
	var lm time.Time
	if v := resp.Header.Get("Last-Modified"); v != "" {
		lm, _ = http.ParseTime(v)
	}
	st := httpcache.EvaluatePreconditions(r.Method, r.Header, resp.Header.Get("Etag"), lm)
	if st == 0 {
		return false
	}
	resp.Body.Close()
	h := tx.w.Header()
	copyOriginHeader(h, resp.Header, tx.route.Route)
	h.Del("Content-Length")
	if st == http.StatusNotModified {
		h.Del("Content-Type")
	}
	h.Set("Cache-Status", tx.status.String())
	tx.w.WriteHeader(st)
	return true
}

// writerOnly hides ReadFrom so that io.CopyBuffer uses the given buffer
// (the transit buffer bounds memory per pass-through transfer).
type writerOnly struct{ io.Writer }

// interim makes the origin's informational responses (1xx but 100 and 101,
// e.g. 103 Early Hints) reach the client of tx as they arrive, with their
// fields (RFC 9110 §15.2). They are hints for this client's connection:
// never stored, and a background fetch or a subrequest's own fetch step (a
// segment) passes none on. A waiter of the fetch gets none either: it
// joins after the fact.
func interim(ctx context.Context, tx *Txn) context.Context {
	if tx.w == nil || tx.step != nil {
		return ctx
	}
	return httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		if code == http.StatusContinue || code == http.StatusSwitchingProtocols {
			return nil
		}
		// The handler's goroutine waits in the round trip meanwhile: the
		// writer is ours. The fields go with the 1xx only.
		wh := tx.w.Header()
		for k, v := range h {
			wh[k] = v
		}
		tx.w.WriteHeader(code)
		for k := range h {
			delete(wh, k)
		}
		return nil
	}})
}

// copyOriginHeader copies an origin's response header for the client,
// without the targeted cache-control fields (RFC 9213) the route obeys:
// they address edgehost, not the client.
func copyOriginHeader(dst, src http.Header, route *config.Route) {
	for k, v := range src {
		dst[k] = v
	}
	for _, f := range route.Policy.Targeted {
		delete(dst, f)
	}
}
