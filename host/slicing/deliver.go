package slicing

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/edgehost/edgehost/host/cache"
	"github.com/edgehost/edgehost/host/httpcache"
	"github.com/edgehost/edgehost/host/observe"
	"github.com/edgehost/edgehost/host/server"
)

// Deliver sends a sliced object: only the segments that the response
// needs are read (fetched when missing), with read-ahead of the next one.
func (sl *Slicing) Deliver(tx *server.Txn, r *http.Request, meta *cache.Object, now time.Time) error {
	sm, ok := decodeSliceMeta(meta.Extra)
	if !ok {
		sl.cache.Remove(meta)
		return server.NewStatusError(http.StatusBadGateway, errors.New("unreadable segment meta object"))
	}
	h := tx.Header()
	for k, v := range meta.Header {
		h[k] = v
	}
	h.Set("Age", string(httpcache.AppendAge(nil, meta.Age(now))))
	h.Set("Cache-Status", tx.CacheStatus().String())
	defer sl.hold(meta, sm)()
	sr := &sliceReader{sl: sl, tx: tx, r: r, meta: meta, sm: sm, limit: sm.size}
	defer sr.close()
	// Open the first segment the response needs before committing the
	// head: if the origin changed, nothing has been sent and the request
	// starts over once with a fresh meta object.
	if r.Method == http.MethodGet && httpcache.EvaluatePreconditions(r.Method, r.Header, meta.ETag, meta.LastModified) == 0 && sm.size > 0 {
		first := int64(0)
		if rh := r.Header.Get("Range"); rh != "" && httpcache.IfRangeMatches(r.Header, meta.ETag, meta.LastModified) {
			if ranges, err := httpcache.ParseRange(rh, sm.size); err == nil {
				first, sr.limit = ranges[0].Start, 0
				for _, br := range ranges {
					first = min(first, br.Start)
					sr.limit = max(sr.limit, br.End+1)
				}
			} else if errors.Is(err, httpcache.ErrUnsatisfiable) {
				first = -1
			}
		}
		if first >= 0 {
			if err := sr.open(first / sm.segSize); err != nil {
				if errors.Is(err, errSegmentMismatch) {
					sl.outdate(meta)
					sl.log.Info("origin object changed under a sliced object; starting over", "tx", tx.ID, "key", meta.Key)
					return &server.StartOver{Err: err}
				}
				return err
			}
		}
	}
	tx.Respond(r, http.StatusOK, meta.ETag, meta.LastModified, sm.size, sr)
	return nil
}

// sliceReader is an io.ReaderAt over a sliced object: it reads segment
// subrequests as streams, keeps the current one open for sequential reads
// and opens the next one ahead of time.
type sliceReader struct {
	sl        *Slicing
	tx        *server.Txn
	r         *http.Request
	meta      *cache.Object
	sm        sliceMeta
	limit     int64 // the response needs no byte at or past this offset
	cur, next *segStream
}

type segStream struct {
	idx   int64
	pos   int64 // offset in the object of the next byte of body
	body  io.ReadCloser
	err   error
	ready chan struct{}
	// shared: read from another fetch's flight, whose length is checked
	// only when it ends; a short one is fetched again by a subrequest.
	shared bool
}

func (sr *sliceReader) nsegs() int64 { return (sr.sm.size + sr.sm.segSize - 1) / sr.sm.segSize }

// start opens segment idx. A segment already stored, or already streaming
// into the cache (the response stage's first segment, or another
// client's fetch), is read in process: the subrequest would find exactly
// that, one round trip through the self socket later. Any other segment
// is fetched by a subrequest, in the background.
func (sr *sliceReader) start(idx int64) *segStream {
	ss := &segStream{idx: idx, pos: idx * sr.sm.segSize, ready: make(chan struct{})}
	end := min((idx+1)*sr.sm.segSize, sr.sm.size) - 1
	skey := segmentKey(sr.meta.Key, sr.sm.gen, idx)
	now := time.Now()
	// A segment still streaming in (the response stage's first one, on
	// a cold miss) first: it is in memory, where the stored one may have
	// to be read from disk.
	if f := sr.sl.flights.Get(skey); f != nil && f.IsReady() {
		if f.Err == nil && f.Shareable &&
			checkSegment(f.Status, f.Header, -1, sr.meta, sr.sm, idx*sr.sm.segSize, end) == nil {
			ss.body = &loggedSegment{ReadCloser: f.Body.Reader(sr.r.Context()), sl: sr.sl, tx: sr.tx, r: sr.r, start: now, cache: "edgehost; fwd=uri-miss; collapsed; detail=in-process",
				release: f.Body.ReleasePull}
			ss.shared = true
			close(ss.ready)
			return ss
		}
	}
	if o := sr.sl.cache.Lookup(skey, nil, now); o != nil &&
		checkSegment(o.Status, o.Header, int64(len(o.Body)), sr.meta, sr.sm, idx*sr.sm.segSize, end) == nil {
		// A stored segment: the same lookup the subrequest would make,
		// without the trip through the socket.
		sr.sl.metrics.SegmentHits.Add(1)
		ss.body = &loggedSegment{ReadCloser: io.NopCloser(bytes.NewReader(o.Body)), sl: sr.sl, tx: sr.tx, r: sr.r, start: now, cache: "edgehost; hit; detail=in-process"}
		close(ss.ready)
		return ss
	}
	go sr.fetch(ss)
	return ss
}

// fetch fetches segment ss.idx by a subrequest and closes ss.ready.
func (sr *sliceReader) fetch(ss *segStream) {
	defer close(ss.ready)
	idx := ss.idx
	end := min((idx+1)*sr.sm.segSize, sr.sm.size) - 1
	resp, err := sr.sl.subrequestSegment(sr.r.Context(), sr.tx, sr.r, sr.sm.gen, idx)
	if err != nil {
		ss.err = err
		return
	}
	if err := checkSegment(resp.StatusCode, resp.Header, resp.ContentLength, sr.meta, sr.sm, idx*sr.sm.segSize, end); err != nil {
		if resp.StatusCode == http.StatusConflict {
			err = fmt.Errorf("%w: segment meta object gone", errSegmentMismatch)
		}
		resp.Body.Close()
		ss.err = err
		return
	}
	ss.body = resp.Body
}

// refetch replaces the current segment, read from another fetch's flight
// that ended short (the origin's answer failed its length check), with a
// subrequest of its own; the caller skips to where it was.
func (sr *sliceReader) refetch() error {
	old := sr.cur
	ss := &segStream{idx: old.idx, pos: old.idx * sr.sm.segSize, ready: make(chan struct{})}
	old.close()
	sr.cur = ss
	sr.fetch(ss)
	return ss.err
}

// loggedSegment records a segment read in process as the parent's
// subrequest in the transaction log, as the self socket would have.
type loggedSegment struct {
	io.ReadCloser
	sl    *Slicing
	tx    *server.Txn
	r     *http.Request
	start time.Time
	cache string // the Cache-Status the subrequest would have logged
	n     int64
	// release lets the fill's own goroutine read the origin once this
	// reader is done (cache.Stream.HoldPull); nil for a stored segment.
	release func()
}

func (l *loggedSegment) Read(p []byte) (int, error) {
	n, err := l.ReadCloser.Read(p)
	l.n += int64(n)
	return n, err
}

// Skip passes over n bytes without copying them when the segment is read
// from a stream in process (cache.Stream's reader).
func (l *loggedSegment) Skip(n int64) (int64, error) {
	skipped, err := skip(l.ReadCloser, n)
	l.n += skipped
	return skipped, err
}

// skip passes over n bytes of r: without copying them when r can
// (a segment streaming in process: the bytes before a range's start need
// only to have arrived), else by reading them.
func skip(r io.Reader, n int64) (int64, error) {
	if s, ok := r.(interface{ Skip(int64) (int64, error) }); ok {
		return s.Skip(n)
	}
	return io.CopyN(io.Discard, r, n)
}

func (l *loggedSegment) Close() error {
	l.sl.txlog.Publish(observe.Tx{ID: observe.NewID(), Parent: l.tx.ID, Root: l.tx.Root, Kind: "segment",
		Start: l.start, Duration: time.Since(l.start), Method: http.MethodGet, Host: l.r.Host, URL: l.r.RequestURI,
		Route: l.tx.Route, Status: http.StatusPartialContent, Cache: l.cache, Bytes: l.n})
	if l.release != nil {
		l.release()
	}
	return l.ReadCloser.Close()
}

// open makes segment idx the current one and starts reading the next one
// ahead.
func (sr *sliceReader) open(idx int64) error {
	if sr.cur != nil {
		sr.cur.close()
		sr.cur = nil
	}
	if sr.next != nil && sr.next.idx == idx {
		sr.cur, sr.next = sr.next, nil
	} else {
		if sr.next != nil {
			sr.next.close()
			sr.next = nil
		}
		sr.cur = sr.start(idx)
	}
	<-sr.cur.ready
	if err := sr.cur.err; err != nil {
		if errors.Is(err, errSegmentMismatch) {
			// Another version now: the meta object and its segments go,
			// so the next request starts over cleanly.
			sr.sl.outdate(sr.meta)
		}
		return err
	}
	if idx+1 < sr.nsegs() && (idx+1)*sr.sm.segSize < sr.limit {
		sr.next = sr.start(idx + 1) // read-ahead, only of what the response needs
	}
	return nil
}

func (ss *segStream) close() {
	select {
	case <-ss.ready:
		// Closed now, so that its log record precedes the parent's.
		if ss.body != nil {
			ss.body.Close()
		}
	default:
		go func() {
			<-ss.ready
			if ss.body != nil {
				ss.body.Close()
			}
		}()
	}
}

func (sr *sliceReader) close() {
	if sr.cur != nil {
		sr.cur.close()
	}
	if sr.next != nil {
		sr.next.close()
	}
}

// ReadAt reads len(p) bytes at off, crossing segments as needed.
func (sr *sliceReader) ReadAt(p []byte, off int64) (int, error) {
	n := 0
	for n < len(p) {
		at := off + int64(n)
		if at >= sr.sm.size {
			return n, io.EOF
		}
		idx := at / sr.sm.segSize
		if sr.cur == nil || sr.cur.idx != idx || at < sr.cur.pos {
			if err := sr.open(idx); err != nil {
				return n, err
			}
		}
		cur := sr.cur
		if at > cur.pos {
			skipped, err := skip(cur.body, at-cur.pos)
			cur.pos += skipped
			if err != nil {
				if cur.shared {
					if err := sr.refetch(); err != nil {
						return n, fmt.Errorf("segment %d: %w", idx, err)
					}
					continue
				}
				return n, fmt.Errorf("segment %d: %w", idx, err)
			}
		}
		end := min((idx+1)*sr.sm.segSize, sr.sm.size)
		want := min(int64(len(p)-n), end-at)
		m, err := io.ReadFull(cur.body, p[n:n+int(want)])
		n += m
		cur.pos += int64(m)
		if err != nil {
			if cur.shared {
				// The flight we shared ended short: this request fetches
				// the segment itself and goes on from where it was.
				if err := sr.refetch(); err != nil {
					return n, fmt.Errorf("segment %d: %w", idx, err)
				}
				continue
			}
			return n, fmt.Errorf("segment %d: %w", idx, err)
		}
	}
	return n, nil
}
