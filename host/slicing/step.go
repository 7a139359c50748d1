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
	pluginv1 "github.com/edgehost/edgehost/proto/edgehost/plugin/v1"
)

// sliceStep is a slice route's part in the fetch of a miss: the fetch
// stage asks for the head first (HEAD), the response stage for the
// segment that the client needs first; the answer's head goes to the
// slicer plugin, and a yes stores a meta object instead of the body.
type sliceStep struct {
	sl       *Slicing
	route    *config.Route
	cfg      *config.Slice
	verdicts verdictMemo // the plugin's reusable verdicts, for this route of this config
}

// Prepare takes part in a top-level GET or HEAD whose slice condition
// holds, unless this is the fetch again after a no (on_failure = "retry").
func (st *sliceStep) Prepare(fx *server.Fetch) bool {
	r, tx := fx.Req, fx.Tx
	if fx.Retry || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
		return false
	}
	if st.cfg.When != nil {
		creq := server.ConditionRequest(r, tx.Depth())
		ok, err := config.EvalCondition(st.cfg.When, creq)
		if err != nil {
			st.sl.log.Warn("slice condition failed", "route", st.route.Prefix, "tx", tx.ID, "err", err)
		}
		if !ok {
			return false
		}
	}
	switch {
	case st.cfg.Stage == "fetch":
		fx.Out.Method = http.MethodHead // the fetch stage: headers first
	case fx.Stale == nil:
		// The response stage asks for the segment the client needs first:
		// the answer's headers decide, and its body becomes that segment
		// instead of a body that would be abandoned.
		fx.Out.Header.Set("Range", firstSegmentRange(r, st.cfg.Size))
	}
	return true
}

// Fetched decides whether the answer is sliced: a meta object is stored
// (Settled), or on_failure says what happens to an object that is not
// sliceable.
func (st *sliceStep) Fetched(fx *server.Fetch) (server.Verdict, error) {
	partial := fx.Resp.StatusCode == http.StatusPartialContent && fx.Out.Header.Get("Range") != ""
	meta, err := st.decide(fx, partial)
	if err == nil {
		st.stored(fx, meta, partial)
		return server.Settled, nil
	}
	if !errors.Is(err, errNotSliceable) {
		// The slicer is down or failing: a fast, clear 503.
		fx.Resp.Body.Close()
		return 0, fmt.Errorf("slicer: %w", err)
	}
	st.sl.log.Debug("not sliced", "tx", fx.Tx.ID, "key", fx.Key, "reason", err, "on_failure", st.cfg.OnFailure)
	switch st.cfg.OnFailure {
	case "fail":
		fx.Resp.Body.Close()
		return 0, err
	case "pass":
		fx.Tx.SetTransit(int(st.cfg.TransitBuffer))
		fx.Flight.Reason = "not-sliceable"
		if fx.Out.Method == http.MethodHead {
			fx.Resp.Body.Close()
			fx.Out.Method = http.MethodGet
			if fx.Resp, err = fx.Do(fx.Out); err != nil {
				return 0, err
			}
		}
		return server.Pass, nil
	case "retry":
		if fx.Out.Method == http.MethodHead {
			fx.Resp.Body.Close()
			return server.Retry, nil
		}
		// At the response stage the GET in hand is the retry.
	}
	return server.Store, nil
}

// decide builds the meta object and asks the plugin. A part (the response
// stage's ranged fetch) starts filling its segment while the plugin
// decides; a part of an object that is not sliceable is fetched again
// whole (fx.Resp), since whatever happens next needs the whole object.
func (st *sliceStep) decide(fx *server.Fetch, partial bool) (*cache.Object, error) {
	if !partial {
		return st.decideSlice(fx, fx.Resp)
	}
	// The segment in hand starts filling the cache while the plugin
	// decides: its first bytes are ready when the client asks for them.
	view := wholeView(fx.Resp)
	meta, err := st.sliceMeta(fx, view)
	if err == nil {
		meta.MarkBans(fx.BanMark)
		st.sl.adoptSegment(fx, meta)
		err = st.askSlicer(fx, view)
	}
	if err == nil || !errors.Is(err, errNotSliceable) {
		return meta, err
	}
	// Not sliced: whatever happens next needs the whole object (closing
	// the body also stops an adopted segment's fill, which then stores
	// nothing).
	fx.Resp.Body.Close()
	fx.Out.Header.Del("Range")
	resp, derr := fx.Do(fx.Out)
	if derr != nil {
		return nil, derr
	}
	fx.Resp, fx.RespTime = resp, time.Now()
	if meta, err = st.decideSlice(fx, resp); err == nil {
		st.sl.log.Warn("origin answered a Range request unsliceably and a whole one sliceably", "key", fx.Key)
	}
	return meta, err
}

// stored inserts a meta object the plugin said yes to and settles the
// fetch with it.
func (st *sliceStep) stored(fx *server.Fetch, meta *cache.Object, partial bool) {
	status := http.StatusOK
	if !partial {
		fx.Resp.Body.Close() // the body is abandoned: segments follow
		meta.MarkBans(fx.BanMark)
		status = fx.Resp.StatusCode
	}
	meta = st.sl.insertMeta(meta, fx)
	f := fx.Flight
	f.Object, f.Status, f.Shareable = meta, http.StatusOK, true
	fwd := httpcache.FwdURIMiss
	if fx.Stale != nil {
		fwd = httpcache.FwdStale
	}
	fx.Tx.SetCacheStatus(httpcache.CacheStatus{Fwd: fwd, FwdStatus: status, Stored: true, TTL: meta.TTL(fx.RespTime), Detail: "sliced"})
}

// insertMeta stores meta unless the meta object stored under its key now
// came from a later origin answer than meta did (and is not the one this
// fetch revalidated), or the origin was seen to leave meta's version
// after meta's answer (outdate): work that began before the origin last
// changed must never replace a newer version's meta object (issue 13,
// item 11). It returns the meta object that settles the fetch: the newer
// one stored, or meta (stored or, if outdated, for this fetch alone).
func (sl *Slicing) insertMeta(meta *cache.Object, fx *server.Fetch) *cache.Object {
	sl.storeMu.Lock()
	defer sl.storeMu.Unlock()
	cur := sl.cache.Lookup(meta.Key, fx.Req.Header, fx.RespTime)
	if cur != nil && cur != fx.Stale && cur.Kind == store.KindSegmentMeta && cur.Variant == meta.Variant && cur.Created.After(meta.Created) {
		sl.log.Info("a newer meta object is stored; this fetch's older answer is not", "tx", fx.Tx.ID, "key", meta.Key)
		return cur
	}
	if t, ok := sl.outdated[genOf(meta)]; ok && meta.Created.Before(t) {
		sl.log.Info("the origin changed after this fetch's answer; its meta object is not stored", "tx", fx.Tx.ID, "key", meta.Key)
		return meta
	}
	sl.cache.Insert(meta)
	return meta
}

// genOf is the key and generation of a meta object.
func genOf(meta *cache.Object) heldKey {
	sm, _ := decodeSliceMeta(meta.Extra)
	return heldKey{meta.Key, sm.gen}
}

// maxOutdated bounds the outdate times kept; past it those older than
// outdatedFor go (work that old is long settled).
const (
	maxOutdated = 4096
	outdatedFor = time.Minute
)

// outdate removes meta, whose version the origin no longer serves (a
// segment failed its If-Match), if it is still the one stored, and
// remembers when: a meta object of that version from an answer older
// than that is not stored later.
func (sl *Slicing) outdate(meta *cache.Object) {
	now := time.Now()
	sl.storeMu.Lock()
	if len(sl.outdated) >= maxOutdated {
		for k, t := range sl.outdated {
			if now.Sub(t) > outdatedFor {
				delete(sl.outdated, k)
			}
		}
	}
	if len(sl.outdated) < maxOutdated {
		sl.outdated[genOf(meta)] = now
	}
	sl.storeMu.Unlock()
	sl.cache.Remove(meta) // only if it is still the one stored
}

// decideSlice asks the slicer plugin about resp (a HEAD or GET response)
// and returns the meta object to store when it says yes.
func (st *sliceStep) decideSlice(fx *server.Fetch, resp *http.Response) (*cache.Object, error) {
	meta, err := st.sliceMeta(fx, resp)
	if err != nil {
		return nil, err
	}
	if err := st.askSlicer(fx, resp); err != nil {
		return nil, err
	}
	return meta, nil
}

// askSlicer asks the slicer plugin whether resp, a whole object's head, is
// to be sliced: nil means yes.
func (st *sliceStep) askSlicer(fx *server.Fetch, resp *http.Response) error {
	sl, r := st.cfg, fx.Req
	if st.sl.plugins == nil {
		return fmt.Errorf("slicer plugin %q: no plugins loaded", sl.Plugin)
	}
	sp, err := st.sl.plugins.Slicer(sl.Plugin)
	if err != nil {
		return err
	}
	stage := pluginv1.DecideRequest_STAGE_RESPONSE
	if sl.Stage == "fetch" {
		stage = pluginv1.DecideRequest_STAGE_FETCH
	}
	shape, size := decideShape(stage, r, resp)
	if v, ok := st.verdicts.get(shape, size); ok {
		return v.err()
	}
	dctx, cancel := context.WithTimeout(fx.Ctx, 2*time.Second)
	defer cancel()
	d, err := sp.Decide(dctx, &pluginv1.DecideRequest{
		Stage:    stage,
		Request:  &pluginv1.RequestHead{Method: r.Method, Url: r.URL.RequestURI(), Host: r.Host, Headers: protoHeader(r.Header), ContentLength: r.ContentLength, Txid: fx.Tx.ID.String()},
		Response: &pluginv1.ResponseHead{Status: int32(resp.StatusCode), Headers: protoHeader(resp.Header), ContentLength: resp.ContentLength},
		Config:   st.route.Prefix,
	})
	if err != nil {
		// A slicer that fails or does not answer in time (a crashed one
		// being relaunched, say) is unavailable: 503, never the origin's
		// 504.
		return server.NewStatusError(http.StatusServiceUnavailable, err)
	}
	v := verdict{slice: d.GetSlice(), reason: d.GetReason()}
	if d.GetShapeVerdict() {
		st.verdicts.put(shape, verdict{min: d.GetSizeMin(), max: d.GetSizeMax(), slice: v.slice, reason: v.reason})
	}
	return v.err()
}

// sliceMeta builds the meta object that resp, a whole object's head,
// makes when sliced into the route's segments, or says why edgehost
// cannot slice it (whatever the plugin thinks).
func (st *sliceStep) sliceMeta(fx *server.Fetch, resp *http.Response) (*cache.Object, error) {
	r, route, respTime := fx.Req, st.route, fx.RespTime
	h, cc := server.StoredHeader(resp.Header, route)
	if ok, reason := route.Policy.Storable(http.MethodGet, resp.StatusCode, r.Header, resp.Header, cc); !ok {
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
	h.Set("Content-Length", strconv.FormatInt(size, 10))
	h.Set("Accept-Ranges", "bytes")
	meta := &cache.Object{Key: fx.Key, Variant: variant, Status: http.StatusOK, Header: h, Created: respTime,
		InitAge: httpcache.InitialAge(resp.Header, fx.ReqTime, respTime),
		ReqURL:  r.RequestURI, ReqHost: server.HostOnly(r.Host), Kind: store.KindSegmentMeta}
	meta.Extra = encodeSliceMeta(sliceMeta{size: size, segSize: st.cfg.Size, gen: generation(strongETag(h.Get("Etag")), h.Get("Last-Modified"), variant, size)})
	server.SetLifetime(meta, route.Policy.Lifetime(resp.StatusCode, resp.Header, cc, respTime), route)
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
func (sl *Slicing) adoptSegment(fx *server.Fetch, meta *cache.Object) bool {
	resp := fx.Resp
	sm, _ := decodeSliceMeta(meta.Extra)
	start, end, _, ok := parseContentRange(resp.Header.Get("Content-Range"))
	seg := newSegReq(meta, sm, start/sm.segSize)
	if !ok || start != seg.start || end != seg.end || checkSegment(resp.StatusCode, resp.Header, resp.ContentLength, meta, sm, seg.start, seg.end) != nil {
		resp.Body.Close()
		return false
	}
	skey := segmentKey(fx.Key, sm.gen, seg.idx)
	f, leader := sl.flights.Join(skey)
	if !leader {
		resp.Body.Close()
		return false
	}
	sl.metrics.SegmentMisses.Add(1)
	sl.metrics.SegmentBytes.Add(seg.length())
	obj := segmentObject(seg, skey, resp, fx.RespTime, fx.Tx.RouteConfig())
	obj.MarkBans(fx.BanMark)
	// This client reads the segment first (Deliver): it reads the origin
	// itself until it is done with it (loggedSegment.Close).
	f.Body.HoldPull()
	fx.Fill(f, resp, obj, seg.length(), errSegmentMismatch, func() { sl.flights.Done(f) })
	return true
}
