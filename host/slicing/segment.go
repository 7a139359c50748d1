package slicing

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/edgehost/edgehost/host/cache"
	"github.com/edgehost/edgehost/host/config"
	"github.com/edgehost/edgehost/host/httpcache"
	"github.com/edgehost/edgehost/host/server"
	"github.com/edgehost/edgehost/host/store"
)

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

// newSegReq is segment idx of meta.
func newSegReq(meta *cache.Object, sm sliceMeta, idx int64) *segReq {
	seg := &segReq{gen: sm.gen, idx: idx, meta: meta, sm: sm, start: idx * sm.segSize}
	seg.end = min(seg.start+sm.segSize, sm.size) - 1
	return seg
}

// length is the segment's length in bytes.
func (seg *segReq) length() int64 { return seg.end - seg.start + 1 }

// ServeSubrequest serves a segment subrequest: the segment from cache,
// or fetched from the origin with a Range request, checked, stored and
// streamed.
func (sl *Slicing) ServeSubrequest(tx *server.Txn, r *http.Request, v string) error {
	gen, idx, ok := parseSegment(v)
	if !ok || tx.RouteConfig().Slice == nil {
		return server.NewStatusError(http.StatusBadRequest, errors.New("invalid segment subrequest"))
	}
	key := server.CacheKey(r)
	now := time.Now()
	meta := sl.cache.Lookup(key, r.Header, now)
	var sm sliceMeta
	ok = false
	if meta != nil && meta.Kind == store.KindSegmentMeta {
		sm, ok = decodeSliceMeta(meta.Extra)
	}
	if !ok || sm.gen != gen {
		// Stored now is another version (or none): a delivery that
		// started under this generation goes on with its meta object,
		// and the origin's If-Match tells whether it still may.
		meta, sm, ok = sl.heldMeta(key, gen)
	}
	if !ok || idx*sm.segSize >= sm.size {
		return server.NewStatusError(http.StatusConflict, errors.New("segment "+strconv.FormatInt(idx, 10)+": its meta object is gone or changed"))
	}
	seg := newSegReq(meta, sm, idx)
	skey := segmentKey(key, gen, idx)
	// A segment is as good as its meta object: same validators (gen), so a
	// meta object refreshed by a 304 keeps its segments usable.
	// Its key carries gen (the validators): it is as usable as the meta
	// object that the parent is serving (fresh, grace, stale-if-error).
	if o := sl.cache.Lookup(skey, nil, now); o != nil {
		if int64(len(o.Body)) != seg.length() || checkSegment(o.Status, o.Header, int64(len(o.Body)), meta, sm, seg.start, seg.end) != nil {
			sl.cache.Remove(o)
			o = nil
		}
	}
	if o := sl.cache.Lookup(skey, nil, now); o != nil {
		sl.metrics.SegmentHits.Add(1)
		tx.SetCacheStatus(httpcache.CacheStatus{Hit: true, TTL: o.TTL(now)})
		return tx.Deliver(r, o, now)
	}
	sl.metrics.SegmentMisses.Add(1)
	for again := true; ; again = false {
		f, leader := sl.flights.Join(skey)
		if leader {
			return tx.FetchAndDeliver(r, skey, f, &segStep{sl: sl, seg: seg})
		}
		sl.metrics.CoalescedWaits.Add(1)
		if err := f.Wait(r.Context()); err != nil {
			return nil
		}
		if f.Err != nil && again && errors.Is(f.Err, errSegmentMismatch) {
			// The fetch joined was answered by another version of the
			// object: it may have begun before the origin changed
			// back (issue 13, item 11). This request asks on its own,
			// once.
			continue
		}
		return sl.deliverJoined(tx, r, f)
	}
}

// deliverJoined sends the segment of flight f, joined by a subrequest.
func (sl *Slicing) deliverJoined(tx *server.Txn, r *http.Request, f *cache.Flight) error {
	if f.Err != nil {
		return f.Err
	}
	tx.SetCacheStatus(httpcache.CacheStatus{Fwd: httpcache.FwdURIMiss, FwdStatus: f.Status, Collapsed: true, Stored: true})
	return tx.DeliverStream(r, f)
}

// segStep is a segment subrequest's part in its fetch: a Range request
// under the meta object's validators, and an answer checked against them.
type segStep struct {
	sl  *Slicing
	seg *segReq
}

// Prepare adds the Range and the precondition that makes the origin
// refuse to answer for another version of the object.
func (st *segStep) Prepare(fx *server.Fetch) bool {
	seg := st.seg
	fx.Out.Header.Set("Range", "bytes="+strconv.FormatInt(seg.start, 10)+"-"+strconv.FormatInt(seg.end, 10))
	if et := strongETag(seg.meta.ETag); et != "" {
		fx.Out.Header.Set("If-Match", et)
	} else if lm := seg.meta.Header.Get("Last-Modified"); lm != "" {
		fx.Out.Header.Set("If-Unmodified-Since", lm)
	}
	return true
}

// Fetched checks the answer and stores it as the segment.
func (st *segStep) Fetched(fx *server.Fetch) (server.Verdict, error) {
	seg, resp := st.seg, fx.Resp
	if err := checkSegment(resp.StatusCode, resp.Header, resp.ContentLength, seg.meta, seg.sm, seg.start, seg.end); err != nil {
		resp.Body.Close()
		if errors.Is(err, errSegmentMismatch) {
			// The origin object changed: the meta object and its
			// segments go, and the parent starts over or aborts.
			st.sl.outdate(seg.meta)
		}
		st.sl.log.Warn("segment rejected", "tx", fx.Tx.ID, "key", fx.Key, "err", err)
		return 0, err
	}
	obj := segmentObject(seg, fx.Key, resp, fx.RespTime, fx.Tx.RouteConfig())
	obj.MarkBans(fx.BanMark)
	st.sl.metrics.SegmentBytes.Add(seg.length())
	fx.FillFlight(obj, seg.length(), errSegmentMismatch)
	return server.Filling, nil
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
func segmentObject(seg *segReq, key string, resp *http.Response, respTime time.Time, route *config.Route) *cache.Object {
	h, _ := server.StoredHeader(resp.Header, route)
	h.Del("Vary")
	m := seg.meta
	return &cache.Object{Key: key, Status: http.StatusPartialContent, Header: h, Created: respTime,
		Expires: m.Expires, StaleUntil: m.StaleUntil, ErrorUntil: m.ErrorUntil, KeepUntil: m.KeepUntil,
		ReqURL: m.ReqURL, ReqHost: m.ReqHost, Kind: store.KindSegment, Parent: store.ObjectID(m.Key, m.Variant)}
}

// subrequestSegment fetches one segment through the self socket: a
// subrequest of tx with its own transaction, linked to tx in the log.
func (sl *Slicing) subrequestSegment(ctx context.Context, tx *server.Txn, r *http.Request, gen string, idx int64) (*http.Response, error) {
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
	req.Header.Set(server.HeaderDepth, strconv.Itoa(tx.Depth()))
	req.Header.Set(server.HeaderParent, tx.ID.String())
	req.Header.Set(HeaderSegment, gen+" "+strconv.FormatInt(idx, 10))
	return sl.client().Do(req)
}
