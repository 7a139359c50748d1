package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/edgehost/edgehost/host/backend"
	"github.com/edgehost/edgehost/host/cache"
	"github.com/edgehost/edgehost/host/config"
	"github.com/edgehost/edgehost/host/httpcache"
	"github.com/edgehost/edgehost/host/observe"
)

// hitForMiss is how long a key whose response was not storable skips the
// waiting list (Varnish's hit-for-miss): requests for it go to the origin in
// parallel instead of queueing behind each other, and the first storable
// response ends it.
const hitForMiss = 2 * time.Minute

// lookup is the cacheable path: hit, grace, or miss with coalescing.
func (s *Server) lookup(tx *txn, r *http.Request) {
	key := cacheKey(r)
	now := time.Now()
	o := s.cache.Lookup(key, r.Header, now)
	if o != nil {
		switch {
		case o.Fresh(now):
			s.metrics.Hits.Add(1)
			tx.status = httpcache.CacheStatus{Hit: true, TTL: o.TTL(now)}
			s.deliver(tx, r, o, now)
			return
		case o.InGrace(now):
			// Serve stale now; one background fetch revalidates
			// (Varnish grace, RFC 5861 stale-while-revalidate).
			s.metrics.GraceHits.Add(1)
			if o.TryRevalidate() {
				s.revalidateInBackground(tx, r, key, o)
			}
			tx.status = httpcache.CacheStatus{Hit: true, TTL: o.TTL(now), Detail: "stale"}
			s.deliver(tx, r, o, now)
			return
		}
		// Expired past grace: revalidate it in the foreground if it has
		// validators, else fetch anew.
		if !o.Revalidatable() && !o.UsableOnError(now) {
			o = nil
		}
	}
	s.metrics.Misses.Add(1)
	if until, ok := s.hfm.Load(key); ok && !now.Before(until.(time.Time)) {
		s.hfm.Delete(key)
	} else if ok {
		tx.status = httpcache.CacheStatus{Fwd: httpcache.FwdMiss, Detail: "uncacheable"}
		s.fetchAndDeliver(tx, r, key, o, nil)
		return
	}
	f, leader := s.flights.Join(key)
	if leader {
		s.fetchAndDeliver(tx, r, key, o, f)
		return
	}
	s.metrics.CoalescedWaits.Add(1)
	if err := f.Wait(r.Context()); err != nil {
		return // the client went away
	}
	if f.Err != nil {
		// The origin just failed for everyone waiting: do not send it
		// one request per waiter on top (a thundering herd).
		s.fail(tx, r, statusFor(f.Err), f.Err)
		return
	}
	if f.Shareable && s.variantOK(f, r) {
		tx.status = httpcache.CacheStatus{Fwd: httpcache.FwdURIMiss, FwdStatus: f.Status, Collapsed: true, Stored: f.Object == nil}
		if f.Object != nil {
			tx.status = httpcache.CacheStatus{Hit: true, TTL: f.Object.TTL(time.Now()), Collapsed: true}
			s.deliver(tx, r, f.Object, time.Now())
			return
		}
		s.deliverStream(tx, r, f)
		return
	}
	// The shared response does not fit this request (not storable, other
	// variant): fetch on our own.
	s.fetchAndDeliver(tx, r, key, o, nil)
}

func (s *Server) variantOK(f *cache.Flight, r *http.Request) bool {
	if f.Object != nil {
		// A stored object answers (304 refresh, stale-if-error, sliced):
		// it is of the leader's variant, which may not be this one.
		return f.Object.Matches(r.Header)
	}
	vary := f.Header.Values("Vary")
	if len(vary) == 0 {
		return true
	}
	k, ok := httpcache.VaryKey(vary, r.Header)
	return ok && k == f.Variant
}

// fetchAndDeliver fetches for flight f (nil: a private fetch outside the
// waiting list) and sends the result to the client.
func (s *Server) fetchAndDeliver(tx *txn, r *http.Request, key string, stale *cache.Object, f *cache.Flight) {
	done := func() {}
	if f == nil {
		f = cache.NewFlight(key)
	} else {
		done = func() { s.flights.Done(f) }
	}
	resp := s.fetch(context.WithoutCancel(r.Context()), tx, r, key, stale, f, done)
	now := time.Now()
	switch {
	case f.Err != nil:
		s.fail(tx, r, statusFor(f.Err), f.Err)
	case f.Object != nil:
		if tx.status.Fwd == "" && !tx.status.Hit {
			tx.status = httpcache.CacheStatus{Fwd: httpcache.FwdStale, FwdStatus: f.Status, Stored: f.Status == http.StatusNotModified, TTL: f.Object.TTL(now)}
		}
		s.deliver(tx, r, f.Object, now)
	case resp != nil:
		if tx.status.Fwd == "" {
			tx.status = httpcache.CacheStatus{Fwd: fwdFor(stale), FwdStatus: resp.StatusCode, Detail: f.Reason}
		}
		s.stream(tx, r, resp)
	default:
		if tx.status.Fwd == "" {
			tx.status = httpcache.CacheStatus{Fwd: fwdFor(stale), FwdStatus: f.Status, Stored: true, TTL: f.TTL}
		}
		tx.status.Stored = true
		s.deliverStream(tx, r, f)
	}
}

func fwdFor(stale *cache.Object) string {
	if stale != nil {
		return httpcache.FwdStale
	}
	return httpcache.FwdURIMiss
}

// fetch asks the route's backend for the object and settles f: f.Err on
// failure; f.Object when a stored object answers (a 304 refreshed it, or the
// origin failed and stale-if-error allows the old one); f.Body streaming a
// storable response (filled in the background, stored at its end); or, for
// a response that must not be shared, the response itself, returned to the
// caller alone. done is called once f no longer takes waiters.
func (s *Server) fetch(ctx context.Context, tx *txn, r *http.Request, key string, stale *cache.Object, f *cache.Flight, done func()) *http.Response {
	be := tx.rt.backends[tx.route.Backend]
	route := tx.route
	out := originRequest(ctx, r, stale)
	sl := s.slicing(tx, r)
	switch {
	case tx.seg != nil:
		segmentRequest(out, tx.seg)
	case sl != nil && sl.Stage == "fetch" && !tx.retry:
		out.Method = http.MethodHead // the fetch stage: headers first
	case sl != nil && !tx.retry && stale == nil:
		// The response stage asks for the segment the client needs first:
		// the answer's headers decide, and its body becomes that segment
		// instead of a body that would be abandoned.
		out.Header.Set("Range", firstSegmentRange(r, sl.Size))
	}
	mark := s.cache.BanMark()
	reqTime := time.Now()
	s.metrics.OriginFetches.Add(1)
	if stale != nil && stale.Revalidatable() {
		s.metrics.Revalidations.Add(1)
	}
	resp, err := be.Do(ctx, out)
	respTime := time.Now()
	settle := func() { f.Ready(); done() }
	if err != nil {
		s.metrics.OriginErrors.Add(1)
		if stale != nil && stale.UsableOnError(respTime) {
			f.Object, f.Shareable = stale, true
			tx.status = httpcache.CacheStatus{Hit: true, TTL: stale.TTL(respTime), Detail: "stale-if-error"}
			s.log.Info("origin failed, serving stale", "tx", tx.ID, "key", key, "err", err)
			settle()
			return nil
		}
		f.Err = err
		settle()
		return nil
	}
	if resp.StatusCode == http.StatusNotModified && stale != nil {
		resp.Body.Close()
		s.metrics.Revalidated304.Add(1)
		fresh := s.refresh(stale, resp.Header, route, reqTime, respTime)
		fresh.MarkBans(mark)
		s.cache.Insert(fresh)
		f.Object, f.Status, f.Shareable = fresh, resp.StatusCode, true
		settle()
		return nil
	}
	if resp.StatusCode >= 500 && stale != nil && stale.UsableOnError(respTime) {
		resp.Body.Close()
		s.metrics.OriginErrors.Add(1)
		f.Object, f.Status, f.Shareable = stale, resp.StatusCode, true
		tx.status = httpcache.CacheStatus{Hit: true, TTL: stale.TTL(respTime), Detail: "stale-if-error"}
		settle()
		return nil
	}

	if tx.seg != nil {
		if err := checkSegment(resp.StatusCode, resp.Header, resp.ContentLength, tx.seg.meta, tx.seg.sm, tx.seg.start, tx.seg.end); err != nil {
			resp.Body.Close()
			if errors.Is(err, errSegmentMismatch) {
				// The origin object changed: the meta object and its
				// segments go, and the parent starts over or aborts.
				s.cache.Remove(tx.seg.meta)
			}
			s.log.Warn("segment rejected", "tx", tx.ID, "key", key, "err", err)
			f.Err = err
			settle()
			return nil
		}
		obj := segmentObject(tx.seg, key, resp, r, respTime)
		obj.MarkBans(mark)
		f.Status, f.Header = resp.StatusCode, resp.Header
		f.Shareable, f.TTL = true, obj.TTL(respTime)
		f.Ready()
		s.bg.Add(1)
		go s.fill(tx, tx.seg, f, resp, obj, done)
		return nil
	}
	if sl != nil && !tx.retry {
		partial := resp.StatusCode == http.StatusPartialContent && out.Header.Get("Range") != ""
		var meta *cache.Object
		var err error
		if partial {
			// The segment in hand starts filling the cache while the
			// plugin decides: its first bytes are ready when the client
			// asks for them.
			view := wholeView(resp)
			meta, err = s.sliceMeta(tx, r, sl, view, key, reqTime, respTime)
			if err == nil {
				meta.MarkBans(mark)
				s.adoptSegment(tx, r, meta, resp, key, respTime, mark)
				err = s.askSlicer(ctx, tx, r, sl, view)
			}
		} else {
			meta, err = s.decideSlice(ctx, tx, r, sl, resp, key, reqTime, respTime)
		}
		if err != nil && partial && errors.Is(err, errNotSliceable) {
			// Not sliced: whatever happens next needs the whole object
			// (closing the body also stops an adopted segment's fill,
			// which then stores nothing).
			resp.Body.Close()
			out.Header.Del("Range")
			if resp, err = be.Do(ctx, out); err != nil {
				f.Err = err
				settle()
				return nil
			}
			respTime = time.Now()
			partial = false
			if meta, err = s.decideSlice(ctx, tx, r, sl, resp, key, reqTime, respTime); err == nil {
				s.log.Warn("origin answered a Range request unsliceably and a whole one sliceably", "key", key)
			}
		}
		if err != nil && partial && !errors.Is(err, errNotSliceable) {
			resp.Body.Close()
		}
		switch {
		case err == nil && partial:
			s.cache.Insert(meta)
			f.Object, f.Status, f.Shareable = meta, http.StatusOK, true
			tx.status = httpcache.CacheStatus{Fwd: fwdFor(stale), FwdStatus: http.StatusOK, Stored: true, TTL: meta.TTL(respTime), Detail: "sliced"}
			settle()
			return nil
		case err == nil:
			resp.Body.Close() // the body is abandoned: segments follow
			meta.MarkBans(mark)
			s.cache.Insert(meta)
			f.Object, f.Status, f.Shareable = meta, http.StatusOK, true
			tx.status = httpcache.CacheStatus{Fwd: fwdFor(stale), FwdStatus: resp.StatusCode, Stored: true, TTL: meta.TTL(respTime), Detail: "sliced"}
			settle()
			return nil
		case !errors.Is(err, errNotSliceable):
			// The slicer is down or failing: a fast, clear 503.
			if !partial {
				resp.Body.Close()
			}
			f.Err = fmt.Errorf("slicer: %w", err)
			settle()
			return nil
		}
		s.log.Debug("not sliced", "tx", tx.ID, "key", key, "reason", err, "on_failure", sl.OnFailure)
		switch sl.OnFailure {
		case "fail":
			resp.Body.Close()
			f.Err = err
			settle()
			return nil
		case "pass":
			tx.transit = int(sl.TransitBuffer)
			f.Reason = "not-sliceable"
			if out.Method == http.MethodHead {
				resp.Body.Close()
				out.Method = http.MethodGet
				if resp, err = be.Do(ctx, out); err != nil {
					f.Err = err
					settle()
					return nil
				}
			}
			settle()
			return resp
		case "retry":
			tx.retry = true
			if out.Method == http.MethodHead {
				resp.Body.Close()
				return s.fetch(ctx, tx, r, key, stale, f, done)
			}
			// At the response stage the GET in hand is the retry.
		}
	}
	f.Status, f.Header = resp.StatusCode, resp.Header
	obj, reason := s.storable(tx.rt.cfg, route, r, resp, key, reqTime, respTime)
	if obj == nil {
		s.metrics.NotStored.Add(1)
		f.Reason = reason
		s.hfm.Store(key, respTime.Add(hitForMiss))
		settle()
		return resp
	}
	s.hfm.Delete(key)
	obj.MarkBans(mark)
	if resp.ContentLength < 0 {
		// Unknown length: it may never fit storage.max_object, so it is
		// not buffered for waiters (they fetch on their own); the leader
		// streams it and it is stored if it ends within the limit.
		f.Reason = "unknown-length"
		settle()
		resp.Body = &storeTee{rc: resp.Body, s: s, obj: obj, max: tx.rt.cfg.Storage.MaxObject}
		tx.status = httpcache.CacheStatus{Fwd: fwdFor(stale), FwdStatus: resp.StatusCode, Detail: "streamed"}
		return resp
	}
	f.Shareable, f.Variant, f.TTL = true, obj.Variant, obj.TTL(respTime)
	f.Ready()
	s.bg.Add(1)
	go s.fill(tx, nil, f, resp, obj, done)
	return nil
}

// storeTee keeps a copy of a body of unknown length while it streams to
// one client, and stores the object when the body ends cleanly within max
// bytes; past max the copy is dropped and the stream goes on.
type storeTee struct {
	rc   io.ReadCloser
	s    *Server
	obj  *cache.Object
	max  int64
	buf  []byte
	over bool
}

func (t *storeTee) Read(p []byte) (int, error) {
	n, err := t.rc.Read(p)
	if !t.over {
		if int64(len(t.buf)+n) > t.max {
			t.over, t.buf = true, nil
			t.s.metrics.NotStored.Add(1)
		} else {
			t.buf = append(t.buf, p[:n]...)
		}
	}
	if err == io.EOF && !t.over {
		t.s.store(t.obj, t.buf)
		t.over = true
	}
	return n, err
}

func (t *storeTee) Close() error { return t.rc.Close() }

// storable builds the object to store from resp, or says why not.
func (s *Server) storable(cfg *config.Config, route *config.Route, r *http.Request, resp *http.Response, key string, reqTime, respTime time.Time) (*cache.Object, string) {
	ok, reason := httpcache.Storable(http.MethodGet, resp.StatusCode, r.Header, resp.Header, route.CacheCookies)
	if !ok {
		return nil, reason
	}
	if resp.ContentLength > cfg.Storage.MaxObject {
		return nil, "too-large"
	}
	variant, vok := httpcache.VaryKey(resp.Header.Values("Vary"), r.Header)
	if !vok {
		return nil, "vary-star"
	}
	cc := httpcache.ParseCacheControl(resp.Header.Values("Cache-Control"))
	lt := httpcache.ComputeLifetime(resp.Header, cc, route.DefaultTTL, route.Grace, respTime)
	o := &cache.Object{Key: key, Variant: variant, Status: resp.StatusCode, Header: storedHeader(resp.Header),
		Created: respTime, InitAge: httpcache.InitialAge(resp.Header, reqTime, respTime),
		ReqURL: r.URL.RequestURI(), ReqHost: hostOnly(r.Host)}
	setLifetime(o, lt, route)
	if !o.KeepUntil.After(respTime) {
		return nil, "expired"
	}
	return o, ""
}

func setLifetime(o *cache.Object, lt httpcache.Lifetime, route *config.Route) {
	base := o.Created.Add(-o.InitAge)
	o.Expires = base.Add(lt.TTL)
	o.StaleUntil = o.Expires.Add(lt.Grace)
	o.ErrorUntil = o.Expires.Add(lt.StaleIfError)
	o.KeepUntil = o.StaleUntil
	if route.Keep > 0 && (o.Header.Get("Etag") != "" || o.Header.Get("Last-Modified") != "") {
		o.KeepUntil = o.StaleUntil.Add(route.Keep)
	}
	if o.ErrorUntil.After(o.KeepUntil) {
		o.KeepUntil = o.ErrorUntil
	}
}

// storedHeader is the response header as stored: no Age (recomputed on
// delivery), no per-connection fields.
func storedHeader(h http.Header) http.Header {
	out := h.Clone()
	out.Del("Age")
	out.Del("Cache-Status")
	return out
}

// refresh builds the object that a 304 makes of stale (RFC 9111 §4.3.4):
// the stored header updated with the 304's fields, new freshness.
func (s *Server) refresh(stale *cache.Object, h http.Header, route *config.Route, reqTime, respTime time.Time) *cache.Object {
	nh := stale.Header.Clone()
	for k, v := range h {
		switch k {
		case "Content-Length", "Content-Encoding", "Transfer-Encoding", "Content-Range", "Age":
			continue
		}
		nh[k] = v
	}
	o := &cache.Object{Key: stale.Key, Variant: stale.Variant, Status: stale.Status, Header: nh, Body: stale.Body,
		Created: respTime, InitAge: httpcache.InitialAge(h, reqTime, respTime), ReqURL: stale.ReqURL, ReqHost: stale.ReqHost,
		Kind: stale.Kind, Parent: stale.Parent, Extra: stale.Extra}
	cc := httpcache.ParseCacheControl(nh.Values("Cache-Control"))
	setLifetime(o, httpcache.ComputeLifetime(nh, cc, route.DefaultTTL, route.Grace, respTime), route)
	o.Finish()
	return o
}

// fill copies a storable body into f.Body for every reader and stores the
// object once complete and intact. A body that fails (origin died,
// between-bytes timeout, short of Content-Length) is never stored, and
// readers see the error.
func (s *Server) fill(tx *txn, seg *segReq, f *cache.Flight, resp *http.Response, obj *cache.Object, done func()) {
	defer s.bg.Done()
	defer resp.Body.Close()
	max := tx.rt.cfg.Storage.MaxObject
	if n := resp.ContentLength; n > 0 && n <= max {
		f.Body.Grow(int(n))
	}
	buf := make([]byte, 64<<10)
	var err error
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			f.Body.Write(buf[:n])
			s.metrics.BytesIn.Add(int64(n))
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			err = rerr
			break
		}
	}
	if err != nil {
		s.metrics.OriginErrors.Add(1)
		s.log.Warn("origin body failed, not stored", "tx", tx.ID, "key", obj.Key, "err", err)
		f.Body.Close(err)
		done()
		return
	}
	body, _ := f.Body.Bytes()
	if seg != nil && int64(len(body)) != seg.end-seg.start+1 {
		// A segment shorter or longer than its range is never stored:
		// every later client would get a broken object.
		s.log.Warn("segment body has the wrong length, not stored", "tx", tx.ID, "key", obj.Key, "got", len(body), "want", seg.end-seg.start+1)
		f.Body.Close(errSegmentMismatch)
		done()
		return
	}
	if int64(len(body)) <= max {
		s.store(obj, body)
	} else {
		s.metrics.NotStored.Add(1)
		s.hfm.Store(obj.Key, time.Now().Add(hitForMiss))
	}
	f.Body.Close(nil)
	done()
}

// store completes obj with its body and inserts it.
func (s *Server) store(obj *cache.Object, body []byte) {
	obj.Body = body
	if obj.Status != http.StatusNoContent && obj.Status != http.StatusNotModified && obj.Status >= 200 {
		obj.Header.Set("Content-Length", strconv.Itoa(len(body)))
	}
	obj.Header.Del("Transfer-Encoding")
	if obj.Status == http.StatusOK && obj.Header.Get("Content-Encoding") == "" {
		obj.Header.Set("Accept-Ranges", "bytes")
	}
	obj.Finish()
	s.cache.Insert(obj)
}

// originRequest derives the backend request: always a GET for the whole
// object (a HEAD is served from the stored GET), without the client's own
// conditionals and ranges, with the stored object's validators when
// revalidating (RFC 9111 §4.3.1).
func originRequest(ctx context.Context, r *http.Request, stale *cache.Object) *http.Request {
	out := r.Clone(ctx)
	out.Method = http.MethodGet
	out.Body = http.NoBody
	out.ContentLength = 0
	for _, h := range []string{"If-None-Match", "If-Modified-Since", "If-Match", "If-Unmodified-Since", "Range", "If-Range", "Cache-Control", "Pragma"} {
		out.Header.Del(h)
	}
	if stale != nil {
		if stale.ETag != "" {
			out.Header.Set("If-None-Match", stale.ETag)
		}
		if lm := stale.Header.Get("Last-Modified"); lm != "" {
			out.Header.Set("If-Modified-Since", lm)
		}
	}
	return out
}

// revalidateInBackground refreshes a stale object in grace with a
// subrequest of its own, linked to tx in the log.
func (s *Server) revalidateInBackground(tx *txn, r *http.Request, key string, stale *cache.Object) {
	f, leader := s.flights.Join(key)
	if !leader {
		stale.DoneRevalidate()
		return
	}
	bg := &txn{rt: tx.rt, route: tx.route, depth: tx.depth}
	bg.ID, bg.Parent, bg.Root, bg.Kind = observe.NewID(), tx.ID, tx.Root, "bgfetch"
	bg.Start, bg.Method, bg.Host, bg.URL, bg.Route = time.Now(), http.MethodGet, r.Host, r.RequestURI, tx.Route
	req := r.Clone(context.Background())
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		defer stale.DoneRevalidate()
		waitFill := make(chan struct{})
		resp := s.fetch(s.ctx, bg, req, key, stale, f, func() { s.flights.Done(f); close(waitFill) })
		switch {
		case resp != nil:
			bg.Status = resp.StatusCode
			io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
		case f.Err != nil:
			bg.Error, bg.Status = f.Err.Error(), backend.StatusFor(f.Err)
		default:
			<-waitFill
			bg.Status = f.Status
		}
		bg.Cache = "bgfetch"
		bg.Duration = time.Since(bg.Start)
		s.txlog.Publish(bg.Tx)
	}()
}

// pass forwards the request as is and streams the answer, storing nothing.
func (s *Server) pass(tx *txn, r *http.Request) {
	be := tx.rt.backends[tx.route.Backend]
	s.metrics.OriginFetches.Add(1)
	resp, err := be.Do(r.Context(), r)
	if err != nil {
		s.metrics.OriginErrors.Add(1)
		if r.Context().Err() != nil {
			return
		}
		s.fail(tx, r, backend.StatusFor(err), err)
		return
	}
	tx.status.FwdStatus = resp.StatusCode
	s.stream(tx, r, resp)
}

// unsafe passes a non-GET/HEAD request; a successful answer invalidates the
// stored URL and the one in Location / Content-Location on the same host
// (RFC 9111 §4.4).
func (s *Server) unsafe(tx *txn, r *http.Request) {
	tx.status.Fwd = httpcache.FwdMethod
	s.metrics.Passes.Add(1)
	be := tx.rt.backends[tx.route.Backend]
	if be == nil {
		s.fail(tx, r, http.StatusMethodNotAllowed, errString(r.Method+" is not allowed on a synthetic route"))
		return
	}
	s.metrics.OriginFetches.Add(1)
	resp, err := be.Do(r.Context(), r)
	if err != nil {
		s.metrics.OriginErrors.Add(1)
		if r.Context().Err() == nil {
			s.fail(tx, r, backend.StatusFor(err), err)
		}
		return
	}
	tx.status.FwdStatus = resp.StatusCode
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
}

// stream copies an uncached origin response to the client.
func (s *Server) stream(tx *txn, r *http.Request, resp *http.Response) {
	defer resp.Body.Close()
	h := tx.w.Header()
	for k, v := range resp.Header {
		h[k] = v
	}
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
		tx.w.abort()
	}
}

// writerOnly hides ReadFrom so that io.CopyBuffer uses the given buffer
// (the transit buffer bounds memory per pass-through transfer).
type writerOnly struct{ io.Writer }
