package server

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/edgehost/edgehost/host/cache"
	"github.com/edgehost/edgehost/host/httpcache"
	"github.com/edgehost/edgehost/host/store"
)

// deliver sends a stored object: conditional (304), range (206/416), HEAD.
func (s *Server) deliver(tx *Txn, r *http.Request, o *cache.Object, now time.Time) error {
	// A segment is a plain stored response (its 206 and body), delivered
	// as any; only a meta object, which has no body of its own, needs the
	// feature that made it.
	if o.Kind != store.KindNormal && o.Kind != store.KindSegment {
		return s.deliverKind(tx, r, o, now)
	}
	if o.Stored != nil {
		// Pinned while it is sent: a purge or a new body meanwhile keeps
		// this one readable until the response ends.
		o.Stored.Pin()
		defer o.Stored.Unpin()
		if err := o.Stored.Check(); err != nil {
			// The body left the store (evicted, purged on disk) since
			// the object was read: before anything is sent, forget it and
			// look up again (a miss, or a newer object), once.
			s.cache.Forget(o)
			if tx.retried {
				return err
			}
			tx.retried = true
			return s.lookup(tx, r)
		}
	}
	h := tx.w.Header()
	for k, v := range o.Header {
		h[k] = v
	}
	var ab [20]byte
	h["Age"] = []string{string(httpcache.AppendAge(ab[:0], o.Age(now)))}
	var cb [128]byte
	h["Cache-Status"] = []string{string(tx.status.AppendTo(cb[:0]))}
	s.respond(tx, r, o.Status, o.ETag, o.LastModified, o.BodyLen(), o.BodyReader())
	return nil
}

// deliverKind sends an object of a feature's own kind (a sliced object)
// through that feature. When the feature asks to start over (the origin
// changed under it before anything was sent), the lookup runs again,
// once.
func (s *Server) deliverKind(tx *Txn, r *http.Request, o *cache.Object, now time.Time) error {
	d := s.kinds[o.Kind]
	if d == nil {
		return NewStatusError(http.StatusBadGateway, errString("no feature delivers objects of kind "+strconv.Itoa(int(o.Kind))))
	}
	err := d.Deliver(tx, r, o, now)
	var again *StartOver
	if !errors.As(err, &again) {
		return err
	}
	if tx.retried {
		return again.Err
	}
	tx.retried = true
	h := tx.w.Header()
	for k := range h {
		delete(h, k)
	}
	return s.lookup(tx, r)
}

// respond writes a complete representation of size bytes readable from
// body, applying the request's conditionals and ranges. The header is
// already set.
func (s *Server) respond(tx *Txn, r *http.Request, status int, etag string, lastModified time.Time, size int64, body io.ReaderAt) {
	h := tx.w.Header()
	if status == http.StatusOK {
		if st := httpcache.EvaluatePreconditions(r.Method, r.Header, etag, lastModified); st != 0 {
			h.Del("Content-Length")
			if st == http.StatusNotModified {
				h.Del("Content-Type")
			}
			tx.w.WriteHeader(st)
			return
		}
		if rh := r.Header.Get("Range"); rh != "" && httpcache.IfRangeMatches(r.Header, etag, lastModified) && h.Get("Content-Encoding") == "" {
			ranges, err := httpcache.ParseRange(rh, size)
			switch {
			case err == nil:
				if err := httpcache.ServeRanges(tx.w, h, ranges, size, h.Get("Content-Type"), body, r.Method == http.MethodHead); err != nil && r.Context().Err() == nil {
					tx.Error = err.Error()
					tx.w.abort(err)
				}
				return
			case errors.Is(err, httpcache.ErrUnsatisfiable):
				h.Del("Content-Length")
				httpcache.WriteUnsatisfiable(tx.w, size)
				return
			}
			// An invalid Range is ignored: the whole representation
			// follows (RFC 9110 §14.2).
		}
	}
	h["Content-Length"] = []string{strconv.FormatInt(size, 10)}
	tx.w.WriteHeader(status)
	if r.Method == http.MethodHead || size == 0 {
		return
	}
	var err error
	switch b := body.(type) {
	case *bytes.Reader:
		_, err = b.WriteTo(tx.w)
	case *store.Body:
		// A body in the store: one read transaction per storeBuf bytes,
		// the only part of it this connection holds.
		buf := storeBufs.Get().(*[]byte)
		_, err = io.CopyBuffer(tx.w, io.NewSectionReader(b, 0, size), *buf)
		storeBufs.Put(buf)
	default:
		_, err = io.Copy(tx.w, io.NewSectionReader(body, 0, size))
	}
	if err != nil && r.Context().Err() == nil {
		// Short of its Content-Length: the connection closes, and the
		// log says why.
		tx.Error = err.Error()
		tx.w.abort(err)
	}
}

// storeBufs are the copy buffers of bodies delivered from the store
// (128 KiB: a per-connection buffer, and one short bbolt read transaction
// per 128 KiB sent).
var storeBufs = sync.Pool{New: func() any { b := make([]byte, 128<<10); return &b }}

// deliverStream sends a response while its body is still arriving; c is
// this client's place in it (nil: take one now).
func (s *Server) deliverStream(tx *Txn, r *http.Request, f *cache.Flight, c *cache.Cursor) error {
	if c == nil {
		if c = f.Body.Cursor(); c == nil {
			return NewStatusError(http.StatusServiceUnavailable, cache.ErrDropped)
		}
		defer c.Close()
	}
	h := tx.w.Header()
	copyOriginHeader(h, f.Header, tx.route.Route)
	h.Set("Cache-Status", tx.status.String())
	etag := f.Header.Get("Etag")
	var lm time.Time
	if v := f.Header.Get("Last-Modified"); v != "" {
		lm, _ = http.ParseTime(v)
	}
	size := int64(-1)
	if cl := f.Header.Get("Content-Length"); cl != "" {
		size, _ = strconv.ParseInt(cl, 10, 64)
	} else if n, ok := f.Body.Complete(); ok {
		// A body of unknown length that ended before this client
		// started: it is sent with its length, as its hits will be.
		size = int64(n)
	}
	if f.Status == http.StatusOK && size >= 0 {
		// Ranges are served from the stream as from the stored object:
		// say so as its hits will (store).
		if rangeable(f.Status, h) {
			h["Accept-Ranges"] = acceptRanges
		}
		s.respond(tx, r, f.Status, etag, lm, size, &streamReaderAt{ctx: r.Context(), s: f.Body})
		// A whole GET body: let the fetch finish storing before its last
		// buffered bytes go out, so the client's next request is a hit.
		// (A HEAD, 304 or range does not wait for the rest.)
		if r.Method == http.MethodGet && tx.w.status == http.StatusOK {
			f.Body.Next(r.Context(), int(size))
		}
		return nil
	}
	// Unknown length: conditionals still apply, before any Range (RFC
	// 9110 §13.2.2: a matching If-None-Match is a 304, a failing If-Match
	// a 412, ranged or not); a range cannot be cut before the end is
	// known, so the whole body follows, chunked (a body that fails ends
	// without its last chunk: never a truncated body that looks complete).
	if f.Status == http.StatusOK {
		if st := httpcache.EvaluatePreconditions(r.Method, r.Header, etag, lm); st != 0 {
			tx.w.WriteHeader(st)
			return nil
		}
	}
	tx.w.WriteHeader(f.Status)
	if r.Method == http.MethodHead {
		return nil
	}
	for {
		p, end, err := c.Next(r.Context())
		if len(p) > 0 {
			if _, werr := tx.w.Write(p); werr != nil {
				return nil
			}
			tx.w.Flush()
		}
		if end {
			if err != nil && r.Context().Err() == nil {
				tx.Error = err.Error()
				tx.w.abort(err)
			}
			return nil
		}
	}
}

// streamReaderAt reads a Stream that may still be filling: ReadAt waits
// until the bytes exist.
type streamReaderAt struct {
	ctx context.Context
	s   *cache.Stream
}

func (sr *streamReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n := 0
	for n < len(p) {
		chunk, end, err := sr.s.Next(sr.ctx, int(off)+n)
		if len(chunk) > 0 {
			n += copy(p[n:], chunk)
			continue
		}
		if end {
			if err != nil {
				return n, err
			}
			return n, io.EOF
		}
	}
	return n, nil
}

// synth answers from the route's respond block.
func (s *Server) synth(tx *Txn, r *http.Request) error {
	rs := tx.route.Respond
	h := tx.w.Header()
	for k, v := range rs.Headers {
		h.Set(k, v)
	}
	if h.Get("Content-Type") == "" {
		h.Set("Content-Type", "text/plain; charset=utf-8")
	}
	tx.status.Detail = "synthetic"
	h.Set("Cache-Status", httpcache.CacheName+"; fwd=bypass; detail=synthetic")
	s.metrics.Synth.Add(1)
	s.respond(tx, r, rs.Status, "", time.Time{}, int64(len(rs.Body)), bytes.NewReader([]byte(rs.Body)))
	return nil
}
