package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/edgehost/edgehost/host/cache"
	"github.com/edgehost/edgehost/host/config"
	"github.com/edgehost/edgehost/host/httpcache"
	"github.com/edgehost/edgehost/host/observe"
	"github.com/edgehost/edgehost/host/store"
	pluginv1 "github.com/edgehost/edgehost/proto/edgehost/plugin/v1"
)

// The slicer (DESIGN §6). A sliced object is a segment meta object — the
// origin's headers, no body — plus segments cached as objects of their own
// under SegmentPrefix(key)+gen+":"+index. Each segment is fetched by a
// subrequest over the self socket (header HeaderSegment), so it goes
// through the whole state machine: its own transaction, cache lookup,
// coalescing and counters. The origin gets `Range` plus `If-Match` (or
// `If-Unmodified-Since`), and every segment is checked against the meta
// object's validators and length before it is stored or delivered: a
// response never mixes bytes of two versions of the origin object.

// HeaderSegment marks a segment subrequest: "<gen> <index>".
const HeaderSegment = "Edgehost-Segment"

var (
	errNotSliceable    = errors.New("object not eligible for slicing")
	errSegmentMismatch = errors.New("segment does not match its meta object (the origin object changed)")
)

// sliceMeta is what a meta object records beyond the origin's headers.
type sliceMeta struct {
	size, segSize int64
	gen           string // validators digest: segments of another version never match
}

const sliceMetaVersion = 1

func encodeSliceMeta(m sliceMeta) []byte {
	b := []byte{sliceMetaVersion}
	b = binary.AppendUvarint(b, uint64(m.size))
	b = binary.AppendUvarint(b, uint64(m.segSize))
	return append(b, m.gen...)
}

func decodeSliceMeta(b []byte) (sliceMeta, bool) {
	if len(b) < 3 || b[0] != sliceMetaVersion {
		return sliceMeta{}, false
	}
	b = b[1:]
	size, n := binary.Uvarint(b)
	if n <= 0 {
		return sliceMeta{}, false
	}
	b = b[n:]
	seg, n := binary.Uvarint(b)
	if n <= 0 || seg == 0 {
		return sliceMeta{}, false
	}
	return sliceMeta{size: int64(size), segSize: int64(seg), gen: string(b[n:])}, true
}

// generation names one version of one variant: segments of another never
// match.
func generation(etag, lastModified, variant string, size int64) string {
	h := sha256.Sum256([]byte(etag + "\x00" + lastModified + "\x00" + variant + "\x00" + strconv.FormatInt(size, 10)))
	return hex.EncodeToString(h[:6])
}

func segmentKey(key, gen string, idx int64) string {
	return cache.SegmentPrefix(key) + gen + ":" + strconv.FormatInt(idx, 10)
}

// slicing returns the route's slice settings when this request is to be
// sliced: a top-level GET/HEAD on a slice route whose condition holds.
func (s *Server) slicing(tx *txn, r *http.Request) *config.Slice {
	sl := tx.route.Slice
	if sl == nil || tx.seg != nil || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
		return nil
	}
	if sl.When != nil {
		creq := conditionRequest(r, hostOnly(r.Host), tx.depth)
		creq.Retry = tx.retry
		ok, err := config.EvalCondition(sl.When, creq)
		if err != nil {
			s.log.Warn("slice condition failed", "route", tx.route.Prefix, "tx", tx.ID, "err", err)
		}
		if !ok {
			return nil
		}
	}
	return sl
}

// decideSlice asks the slicer plugin about resp (a HEAD or GET response)
// and returns the meta object to store when it says yes.
func (s *Server) decideSlice(ctx context.Context, tx *txn, r *http.Request, sl *config.Slice, resp *http.Response, key string, reqTime, respTime time.Time) (*cache.Object, error) {
	meta, err := s.sliceMeta(tx, r, sl, resp, key, reqTime, respTime)
	if err != nil {
		return nil, err
	}
	if err := s.askSlicer(ctx, tx, r, sl, resp); err != nil {
		return nil, err
	}
	return meta, nil
}

// askSlicer asks the slicer plugin whether resp, a whole object's head, is
// to be sliced: nil means yes.
func (s *Server) askSlicer(ctx context.Context, tx *txn, r *http.Request, sl *config.Slice, resp *http.Response) error {
	if s.plugins == nil {
		return fmt.Errorf("slicer plugin %q: no plugins loaded", sl.Plugin)
	}
	sp, err := s.plugins.Slicer(sl.Plugin)
	if err != nil {
		return err
	}
	stage := pluginv1.DecideRequest_STAGE_RESPONSE
	if sl.Stage == "fetch" {
		stage = pluginv1.DecideRequest_STAGE_FETCH
	}
	dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	d, err := sp.Decide(dctx, &pluginv1.DecideRequest{
		Stage:    stage,
		Request:  &pluginv1.RequestHead{Method: r.Method, Url: r.URL.RequestURI(), Host: r.Host, Headers: protoHeader(r.Header), ContentLength: r.ContentLength, Txid: tx.ID.String()},
		Response: &pluginv1.ResponseHead{Status: int32(resp.StatusCode), Headers: protoHeader(resp.Header), ContentLength: resp.ContentLength},
		Config:   tx.route.Prefix,
	})
	if err != nil {
		return err
	}
	if !d.GetSlice() {
		return fmt.Errorf("%w: %s", errNotSliceable, d.GetReason())
	}
	return nil
}

// sliceMeta builds the meta object that resp, a whole object's head,
// makes when sliced into the route's segments, or says why edgehost
// cannot slice it (whatever the plugin thinks).
func (s *Server) sliceMeta(tx *txn, r *http.Request, sl *config.Slice, resp *http.Response, key string, reqTime, respTime time.Time) (*cache.Object, error) {
	if ok, reason := httpcache.Storable(http.MethodGet, resp.StatusCode, r.Header, resp.Header, tx.route.CacheCookies); !ok {
		return nil, fmt.Errorf("%w: response not storable (%s)", errNotSliceable, reason)
	}
	// Parts may only be combined under a strong validator (RFC 9111
	// §3.4): a weak ETag may stay while the bytes change.
	if strongETag(resp.Header.Get("Etag")) == "" && !strongLastModified(resp.Header, respTime) {
		return nil, fmt.Errorf("%w: no strong validator (a strong ETag, or a Last-Modified at least 60s before Date)", errNotSliceable)
	}
	variant, vok := httpcache.VaryKey(resp.Header.Values("Vary"), r.Header)
	if !vok {
		return nil, fmt.Errorf("%w: Vary: *", errNotSliceable)
	}
	size := resp.ContentLength
	if size < 0 {
		size, _ = strconv.ParseInt(resp.Header.Get("Content-Length"), 10, 64)
	}
	if size <= 0 || resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: no length", errNotSliceable)
	}
	h := storedHeader(resp.Header)
	h.Set("Content-Length", strconv.FormatInt(size, 10))
	h.Set("Accept-Ranges", "bytes")
	meta := &cache.Object{Key: key, Variant: variant, Status: http.StatusOK, Header: h, Created: respTime,
		InitAge: httpcache.InitialAge(resp.Header, reqTime, respTime),
		ReqURL:  r.RequestURI, ReqHost: hostOnly(r.Host), Kind: store.KindSegmentMeta}
	meta.Extra = encodeSliceMeta(sliceMeta{size: size, segSize: sl.Size, gen: generation(strongETag(h.Get("Etag")), h.Get("Last-Modified"), variant, size)})
	cc := httpcache.ParseCacheControl(resp.Header.Values("Cache-Control"))
	setLifetime(meta, httpcache.ComputeLifetime(resp.Header, cc, tx.route.DefaultTTL, tx.route.Grace, respTime), tx.route)
	meta.Finish()
	return meta, nil
}

// strongLastModified says whether Last-Modified may serve as a strong
// validator: at least 60 seconds before the response's Date (RFC 9110
// §8.8.2.2), so that two versions written within one second cannot share
// it.
func strongLastModified(h http.Header, respTime time.Time) bool {
	lm, err := http.ParseTime(h.Get("Last-Modified"))
	if err != nil {
		return false
	}
	date, err := http.ParseTime(h.Get("Date"))
	if err != nil {
		date = respTime
	}
	return date.Sub(lm) >= time.Minute
}

// strongETag returns etag unless it is weak (W/…), then "".
func strongETag(etag string) string {
	if strings.HasPrefix(etag, "W/") {
		return ""
	}
	return etag
}

func protoHeader(h http.Header) []*pluginv1.Header {
	out := make([]*pluginv1.Header, 0, len(h))
	for k, v := range h {
		out = append(out, &pluginv1.Header{Name: k, Values: v})
	}
	return out
}

// segReq is a segment subrequest's target.
type segReq struct {
	gen        string
	idx        int64
	meta       *cache.Object
	sm         sliceMeta
	start, end int64 // inclusive byte range in the object
}

// parseSegment reads the HeaderSegment of a self-request.
func parseSegment(v string) (gen string, idx int64, ok bool) {
	gen, is, ok := strings.Cut(strings.TrimSpace(v), " ")
	if !ok || gen == "" {
		return "", 0, false
	}
	idx, err := strconv.ParseInt(is, 10, 64)
	return gen, idx, err == nil && idx >= 0
}

// segment serves a segment subrequest: the segment from cache, or fetched
// from the origin with a Range request, checked, stored and streamed.
func (s *Server) segment(tx *txn, r *http.Request, gen string, idx int64) {
	key := cacheKey(r)
	now := time.Now()
	meta := s.cache.Lookup(key, r.Header, now)
	var sm sliceMeta
	ok := false
	if meta != nil && meta.Kind == store.KindSegmentMeta {
		sm, ok = decodeSliceMeta(meta.Extra)
	}
	if !ok || sm.gen != gen || idx*sm.segSize >= sm.size {
		s.fail(tx, r, http.StatusConflict, errString("segment "+strconv.FormatInt(idx, 10)+": its meta object is gone or changed"))
		return
	}
	seg := &segReq{gen: gen, idx: idx, meta: meta, sm: sm, start: idx * sm.segSize}
	seg.end = min(seg.start+sm.segSize, sm.size) - 1
	tx.seg = seg
	skey := segmentKey(key, gen, idx)
	// A segment is as good as its meta object: same validators (gen), so a
	// meta object refreshed by a 304 keeps its segments usable.
	// Its key carries gen (the validators): it is as usable as the meta
	// object that the parent is serving (fresh, grace, stale-if-error).
	if o := s.cache.Lookup(skey, nil, now); o != nil {
		if int64(len(o.Body)) != seg.end-seg.start+1 || checkSegment(o.Status, o.Header, int64(len(o.Body)), meta, sm, seg.start, seg.end) != nil {
			s.cache.Remove(o)
			o = nil
		}
	}
	if o := s.cache.Lookup(skey, nil, now); o != nil {
		s.metrics.SegmentHits.Add(1)
		tx.status = httpcache.CacheStatus{Hit: true, TTL: o.TTL(now)}
		s.deliver(tx, r, o, now)
		return
	}
	s.metrics.SegmentMisses.Add(1)
	f, leader := s.flights.Join(skey)
	if leader {
		s.fetchAndDeliver(tx, r, skey, nil, f)
		return
	}
	s.metrics.CoalescedWaits.Add(1)
	if err := f.Wait(r.Context()); err != nil {
		return
	}
	if f.Err != nil {
		s.fail(tx, r, statusFor(f.Err), f.Err)
		return
	}
	tx.status = httpcache.CacheStatus{Fwd: httpcache.FwdURIMiss, FwdStatus: f.Status, Collapsed: true, Stored: true}
	s.deliverStream(tx, r, f)
}

// segmentRequest adds the Range and the precondition that makes the origin
// refuse to answer for another version of the object.
func segmentRequest(out *http.Request, seg *segReq) {
	out.Header.Set("Range", "bytes="+strconv.FormatInt(seg.start, 10)+"-"+strconv.FormatInt(seg.end, 10))
	if et := strongETag(seg.meta.ETag); et != "" {
		out.Header.Set("If-Match", et)
	} else if lm := seg.meta.Header.Get("Last-Modified"); lm != "" {
		out.Header.Set("If-Unmodified-Since", lm)
	}
}

// checkSegment verifies an origin's (or a subrequest's) answer for seg:
// status, exact Content-Range and length, and the meta object's strong
// validators. contentLength is -1 when the answer did not say.
func checkSegment(status int, h http.Header, contentLength int64, meta *cache.Object, sm sliceMeta, start, end int64) error {
	if status == http.StatusPreconditionFailed {
		return errSegmentMismatch
	}
	if status != http.StatusPartialContent {
		return fmt.Errorf("segment %d-%d: status %d, want 206", start, end, status)
	}
	want := "bytes " + strconv.FormatInt(start, 10) + "-" + strconv.FormatInt(end, 10) + "/" + strconv.FormatInt(sm.size, 10)
	if got := h.Get("Content-Range"); got != want {
		return fmt.Errorf("%w: Content-Range %q, want %q", errSegmentMismatch, got, want)
	}
	if contentLength >= 0 && contentLength != end-start+1 {
		return fmt.Errorf("%w: %d bytes for a %d-byte segment", errSegmentMismatch, contentLength, end-start+1)
	}
	if et := strongETag(meta.ETag); et != "" && h.Get("Etag") != et {
		return fmt.Errorf("%w: ETag %q, want %q", errSegmentMismatch, h.Get("Etag"), et)
	}
	if lm := meta.Header.Get("Last-Modified"); lm != "" && h.Get("Last-Modified") != "" && h.Get("Last-Modified") != lm {
		return fmt.Errorf("%w: Last-Modified %q, want %q", errSegmentMismatch, h.Get("Last-Modified"), lm)
	}
	return nil
}

// segmentObject builds the stored segment from a checked origin answer. It
// lives and dies with its meta object: same lifetime, and it is the meta
// object's child in the store.
func segmentObject(seg *segReq, key string, resp *http.Response, r *http.Request, respTime time.Time) *cache.Object {
	h := storedHeader(resp.Header)
	h.Del("Vary")
	m := seg.meta
	return &cache.Object{Key: key, Status: http.StatusPartialContent, Header: h, Created: respTime,
		Expires: m.Expires, StaleUntil: m.StaleUntil, ErrorUntil: m.ErrorUntil, KeepUntil: m.KeepUntil,
		ReqURL: m.ReqURL, ReqHost: m.ReqHost, Kind: store.KindSegment, Parent: store.ObjectID(m.Key, m.Variant)}
}

// deliverSliced sends a sliced object: only the segments that the response
// needs are read (fetched when missing), with read-ahead of the next one.
func (s *Server) deliverSliced(tx *txn, r *http.Request, meta *cache.Object, now time.Time) {
	sm, ok := decodeSliceMeta(meta.Extra)
	if !ok {
		s.cache.Remove(meta)
		s.fail(tx, r, http.StatusBadGateway, errString("unreadable segment meta object"))
		return
	}
	h := tx.w.Header()
	for k, v := range meta.Header {
		h[k] = v
	}
	h.Set("Age", string(httpcache.AppendAge(nil, meta.Age(now))))
	h.Set("Cache-Status", tx.status.String())
	sr := &sliceReader{s: s, tx: tx, r: r, meta: meta, sm: sm, limit: sm.size}
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
					s.cache.Remove(meta)
					if !tx.retried {
						tx.retried = true
						for k := range h {
							delete(h, k)
						}
						s.log.Info("origin object changed under a sliced object; starting over", "tx", tx.ID, "key", meta.Key)
						s.lookup(tx, r)
						return
					}
				}
				s.fail(tx, r, statusFor(err), err)
				return
			}
		}
	}
	s.respond(tx, r, http.StatusOK, meta.ETag, meta.LastModified, sm.size, sr)
}

// sliceReader is an io.ReaderAt over a sliced object: it reads segment
// subrequests as streams, keeps the current one open for sequential reads
// and opens the next one ahead of time.
type sliceReader struct {
	s         *Server
	tx        *txn
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
	if o := sr.s.cache.Lookup(skey, nil, now); o != nil &&
		checkSegment(o.Status, o.Header, int64(len(o.Body)), sr.meta, sr.sm, idx*sr.sm.segSize, end) == nil {
		// A stored segment: the same lookup the subrequest would make,
		// without the trip through the socket.
		sr.s.metrics.SegmentHits.Add(1)
		ss.body = &loggedSegment{ReadCloser: io.NopCloser(bytes.NewReader(o.Body)), s: sr.s, tx: sr.tx, r: sr.r, start: now, cache: "edgehost; hit; detail=in-process"}
		close(ss.ready)
		return ss
	}
	if f := sr.s.flights.Get(skey); f != nil && f.IsReady() {
		if f.Err == nil && f.Shareable &&
			checkSegment(f.Status, f.Header, -1, sr.meta, sr.sm, idx*sr.sm.segSize, end) == nil {
			ss.body = &loggedSegment{ReadCloser: f.Body.Reader(sr.r.Context()), s: sr.s, tx: sr.tx, r: sr.r, start: now, cache: "edgehost; fwd=uri-miss; collapsed; detail=in-process"}
			close(ss.ready)
			return ss
		}
	}
	go func() {
		defer close(ss.ready)
		resp, err := sr.s.subrequestSegment(sr.r.Context(), sr.tx, sr.r, sr.sm.gen, idx)
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
	}()
	return ss
}

// loggedSegment records a segment read in process as the parent's
// subrequest in the transaction log, as the self socket would have.
type loggedSegment struct {
	io.ReadCloser
	s     *Server
	tx    *txn
	r     *http.Request
	start time.Time
	cache string // the Cache-Status the subrequest would have logged
	n     int64
}

func (l *loggedSegment) Read(p []byte) (int, error) {
	n, err := l.ReadCloser.Read(p)
	l.n += int64(n)
	return n, err
}

func (l *loggedSegment) Close() error {
	l.s.txlog.Publish(observe.Tx{ID: observe.NewID(), Parent: l.tx.ID, Root: l.tx.Root, Kind: "segment",
		Start: l.start, Duration: time.Since(l.start), Method: http.MethodGet, Host: l.r.Host, URL: l.r.RequestURI,
		Route: l.tx.Route, Status: http.StatusPartialContent, Cache: l.cache, Bytes: l.n})
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
			sr.s.cache.Remove(sr.meta)
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
			skipped, err := io.CopyN(io.Discard, cur.body, at-cur.pos)
			cur.pos += skipped
			if err != nil {
				return n, fmt.Errorf("segment %d: %w", idx, err)
			}
		}
		end := min((idx+1)*sr.sm.segSize, sr.sm.size)
		want := min(int64(len(p)-n), end-at)
		m, err := io.ReadFull(cur.body, p[n:n+int(want)])
		n += m
		cur.pos += int64(m)
		if err != nil {
			return n, fmt.Errorf("segment %d: %w", idx, err)
		}
	}
	return n, nil
}

// subrequestSegment fetches one segment through the self socket: a
// subrequest of tx with its own transaction, linked to tx in the log.
func (s *Server) subrequestSegment(ctx context.Context, tx *txn, r *http.Request, gen string, idx int64) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://edgehost-self"+r.URL.RequestURI(), nil)
	if err != nil {
		return nil, err
	}
	for k, v := range r.Header {
		switch k {
		case "Range", "If-Range", "If-None-Match", "If-Modified-Since", "If-Match", "If-Unmodified-Since", "Cache-Control", "Pragma":
			continue
		}
		req.Header[k] = v
	}
	req.Host = r.Host
	req.Header.Set(HeaderDepth, strconv.Itoa(tx.depth))
	req.Header.Set(HeaderParent, tx.ID.String())
	req.Header.Set(HeaderSegment, gen+" "+strconv.FormatInt(idx, 10))
	return s.selfClient.Do(req)
}

// firstSegmentRange is the Range header of the first fetch at the response
// stage: the segment holding the first byte the client asked for.
func firstSegmentRange(r *http.Request, segSize int64) string {
	start := int64(0)
	if rh := r.Header.Get("Range"); strings.HasPrefix(rh, "bytes=") {
		spec, _, _ := strings.Cut(rh[len("bytes="):], ",")
		if a, _, ok := strings.Cut(strings.TrimSpace(spec), "-"); ok && a != "" {
			if n, err := strconv.ParseInt(a, 10, 64); err == nil && n >= 0 {
				start = n
			}
		}
	}
	idx := start / segSize
	return "bytes=" + strconv.FormatInt(idx*segSize, 10) + "-" + strconv.FormatInt((idx+1)*segSize-1, 10)
}

// parseContentRange parses "bytes S-E/TOTAL".
func parseContentRange(v string) (start, end, total int64, ok bool) {
	rest, found := strings.CutPrefix(v, "bytes ")
	if !found {
		return 0, 0, 0, false
	}
	se, ts, found := strings.Cut(rest, "/")
	if !found {
		return 0, 0, 0, false
	}
	ss, es, found := strings.Cut(se, "-")
	if !found {
		return 0, 0, 0, false
	}
	var err1, err2, err3 error
	start, err1 = strconv.ParseInt(ss, 10, 64)
	end, err2 = strconv.ParseInt(es, 10, 64)
	total, err3 = strconv.ParseInt(ts, 10, 64)
	return start, end, total, err1 == nil && err2 == nil && err3 == nil && start <= end && end < total
}

// wholeView presents a 206 as the 200 it is a part of, for the slicer's
// decision: status 200, Content-Length the whole length.
func wholeView(resp *http.Response) *http.Response {
	_, _, total, ok := parseContentRange(resp.Header.Get("Content-Range"))
	if !ok {
		return resp // not a usable 206: the decision will say no
	}
	h := resp.Header.Clone()
	h.Del("Content-Range")
	h.Set("Content-Length", strconv.FormatInt(total, 10))
	return &http.Response{StatusCode: http.StatusOK, Header: h, ContentLength: total}
}

// adoptSegment stores the body of the response stage's ranged fetch as
// the segment it is, through the same waiting list the segment
// subrequest will join. A part that is not exactly one of meta's segments
// is dropped (the subrequest fetches it).
func (s *Server) adoptSegment(tx *txn, r *http.Request, meta *cache.Object, resp *http.Response, key string, respTime time.Time, mark uint64) bool {
	sm, _ := decodeSliceMeta(meta.Extra)
	start, end, _, ok := parseContentRange(resp.Header.Get("Content-Range"))
	idx := start / sm.segSize
	seg := &segReq{gen: sm.gen, idx: idx, meta: meta, sm: sm, start: idx * sm.segSize}
	seg.end = min(seg.start+sm.segSize, sm.size) - 1
	if !ok || start != seg.start || end != seg.end || checkSegment(resp.StatusCode, resp.Header, resp.ContentLength, meta, sm, seg.start, seg.end) != nil {
		resp.Body.Close()
		return false
	}
	skey := segmentKey(key, sm.gen, idx)
	f, leader := s.flights.Join(skey)
	if !leader {
		resp.Body.Close()
		return false
	}
	s.metrics.SegmentMisses.Add(1)
	obj := segmentObject(seg, skey, resp, r, respTime)
	obj.MarkBans(mark)
	f.Status, f.Header = resp.StatusCode, resp.Header
	f.Shareable, f.TTL = true, obj.TTL(respTime)
	f.Ready()
	s.bg.Add(1)
	go s.fill(tx, seg, f, resp, obj, func() { s.flights.Done(f) })
	return true
}
