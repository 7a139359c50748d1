package server

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/edgehost/edgehost/host/cache"
	"github.com/edgehost/edgehost/host/config"
	"github.com/edgehost/edgehost/host/httpcache"
)

// fetchAndDeliver fetches for flight f (nil: a private fetch outside the
// waiting list) and sends the result to the client; c is the client's
// place in f's body (Flights.JoinReader), nil to take one when the body
// streams.
func (s *Server) fetchAndDeliver(tx *Txn, r *http.Request, key string, stale *cache.Object, f *cache.Flight, c *cache.Cursor) error {
	done := func() {}
	if f == nil {
		f = cache.NewFlight(key)
	} else {
		done = func() { s.flights.Done(f) }
	}
	if c == nil {
		// Before the fill starts: a body that spills keeps what this
		// client has not read.
		c = f.Body.Cursor()
		defer c.Close()
	}
	resp := s.fetch(context.WithoutCancel(r.Context()), tx, r, key, stale, f, done, false)
	now := time.Now()
	switch {
	case f.Err != nil:
		return f.Err
	case f.Object != nil:
		if tx.status.Fwd == "" && !tx.status.Hit {
			tx.status = httpcache.CacheStatus{Fwd: httpcache.FwdStale, FwdStatus: f.Status, Stored: f.Status == http.StatusNotModified, TTL: f.Object.TTL(now)}
		}
		return s.deliver(tx, r, f.Object, now)
	case resp != nil:
		if tx.status.Fwd == "" {
			tx.status = httpcache.CacheStatus{Fwd: tx.fwdFor(stale), FwdStatus: resp.StatusCode, Detail: f.Reason}
		}
		if resp.StatusCode == http.StatusOK && preconditionsAnswer(tx, r, resp) {
			return nil
		}
		s.stream(tx, r, resp)
		return nil
	}
	// Stored: whatever was said before the fetch (a hit-for-miss expected
	// it not to be) no longer holds.
	tx.status = httpcache.CacheStatus{Fwd: tx.fwdFor(stale), FwdStatus: f.Status, Stored: true, TTL: f.TTL}
	return s.deliverStream(tx, r, f, c)
}

// fwdFor is the Cache-Status fwd of a fetch (RFC 9211 §2.2): stale when a
// stored response is revalidated or expired, vary-miss when only other
// variants of the URL are stored, else uri-miss.
func (tx *Txn) fwdFor(stale *cache.Object) string {
	switch {
	case stale != nil || tx.found == foundExpired:
		return httpcache.FwdStale
	case tx.found == foundOtherVariants:
		return httpcache.FwdVaryMiss
	}
	return httpcache.FwdURIMiss
}

// found is what lookup found stored for a request it could not answer.
type found uint8

const (
	foundNothing       found = iota
	foundExpired             // the request's variant, expired
	foundOtherVariants       // only other variants of the URL (Vary)
)

// fetch asks the route's backend for the object and settles f: f.Err on
// failure; f.Object when a stored object answers (a 304 refreshed it, the
// origin failed and stale-if-error allows the old one, or a fetch step
// stored it: a sliced object); f.Body streaming a storable response
// (filled in the background, stored at its end); or, for a response that
// must not be shared, the response itself, returned to the caller alone.
// done is called once f no longer takes waiters. retry is set on the
// fetch again after a fetch step said Retry (the step sits it out).
func (s *Server) fetch(ctx context.Context, tx *Txn, r *http.Request, key string, stale *cache.Object, f *cache.Flight, done func(), retry bool) *http.Response {
	fx := &Fetch{Ctx: ctx, Tx: tx, Req: r, Out: originRequest(ctx, r, stale), Key: key, Stale: stale, Flight: f,
		Retry: retry, backend: tx.route.backend, done: done}
	step := tx.step
	if step == nil {
		step = tx.route.fetch
	}
	if step != nil && !step.Prepare(fx) {
		step = nil
	}
	fx.BanMark = s.cache.BanMark()
	fx.ReqTime = time.Now()
	s.metrics.OriginFetches.Add(1)
	if stale != nil && stale.Revalidatable() {
		s.metrics.Revalidations.Add(1)
	}
	resp, err := fx.backend.Do(interim(ctx, tx), fx.Out)
	fx.Resp, fx.RespTime = resp, time.Now()
	switch {
	case err != nil:
		s.originFailed(fx, err)
		return nil
	case s.staleAnswers(fx):
		return nil
	case fx.Resp == nil:
		// A 304 that selects nothing (staleAnswers): the whole object.
		return s.fetch(ctx, tx, r, key, nil, f, done, retry)
	case step == nil:
		return s.storeAnswer(fx)
	}
	v, err := step.Fetched(fx)
	switch {
	case err != nil:
		f.Err = err
	case v == Store:
		return s.storeAnswer(fx)
	case v == Retry:
		return s.fetch(ctx, tx, r, key, stale, f, done, true)
	case v == Filling:
		return nil
	}
	f.Ready()
	done()
	if v == Pass && err == nil {
		return fx.Resp
	}
	return nil
}

// originFailed settles a fetch whose origin could not answer: the stale
// object when stale-if-error allows it, else the error.
func (s *Server) originFailed(fx *Fetch, err error) {
	s.metrics.OriginErrors.Add(1)
	f, stale := fx.Flight, fx.Stale
	if stale != nil && stale.UsableOnError(fx.RespTime) {
		f.Object, f.Shareable = stale, true
		fx.Tx.status = httpcache.CacheStatus{Hit: true, TTL: stale.TTL(fx.RespTime), Detail: "stale-if-error"}
		s.log.Info("origin failed, serving stale", "tx", fx.Tx.ID, "key", fx.Key, "err", err)
	} else {
		f.Err = err
	}
	f.Ready()
	fx.done()
}

// staleAnswers settles the fetch when the stored object answers it: a 304
// refreshes it (RFC 9111 §4.3.4), a 5xx leaves it serving when
// stale-if-error allows.
func (s *Server) staleAnswers(fx *Fetch) bool {
	resp, stale, f := fx.Resp, fx.Stale, fx.Flight
	switch {
	case stale == nil:
		return false
	case resp.StatusCode == http.StatusNotModified && !httpcache.NotModifiedSelects(stale.Header, resp.Header):
		// RFC 9111 §4.3.4: this 304 is about another representation
		// (another strong ETag): it must not relabel the stored body.
		// fetch asks again without conditions.
		resp.Body.Close()
		s.log.Warn("304 does not select the stored response, fetching it whole", "tx", fx.Tx.ID, "key", fx.Key,
			"stored_etag", stale.ETag, "etag", resp.Header.Get("Etag"))
		fx.Resp = nil
		return false
	case resp.StatusCode == http.StatusNotModified:
		resp.Body.Close()
		s.metrics.Revalidated304.Add(1)
		fresh := s.refresh(stale, resp.Header, fx.Tx.route.Route, fx.ReqTime, fx.RespTime)
		fresh.MarkBans(fx.BanMark)
		s.cache.Insert(fresh)
		f.Object, f.Status, f.Shareable = fresh, resp.StatusCode, true
	case resp.StatusCode >= 500 && stale.UsableOnError(fx.RespTime):
		resp.Body.Close()
		s.metrics.OriginErrors.Add(1)
		f.Object, f.Status, f.Shareable = stale, resp.StatusCode, true
		fx.Tx.status = httpcache.CacheStatus{Hit: true, TTL: stale.TTL(fx.RespTime), Detail: "stale-if-error"}
	default:
		return false
	}
	f.Ready()
	fx.done()
	return true
}

// storeAnswer stores the origin's answer when it may be (filling f for
// every waiter as it arrives) or returns it to stream to this client
// alone.
func (s *Server) storeAnswer(fx *Fetch) *http.Response {
	tx, resp, f, key := fx.Tx, fx.Resp, fx.Flight, fx.Key
	f.Status, f.Header = resp.StatusCode, resp.Header
	obj, reason := s.storable(tx.rt.cfg, tx.route.Route, fx.Req, resp, key, fx.ReqTime, fx.RespTime)
	if obj == nil {
		s.metrics.NotStored.Add(1)
		f.Reason = reason
		s.hfm.Store(key, fx.RespTime.Add(hitForMiss))
		f.Ready()
		fx.done()
		return resp
	}
	s.hfm.Delete(key)
	obj.MarkBans(fx.BanMark)
	if _, aged := resp.Header["Age"]; aged {
		// An upstream cache's answer: the clients of this fetch get its
		// corrected age, as the hits after them will (RFC 9111 §4.2.3; a
		// fresh origin answer carries no Age, §5.1).
		resp.Header["Age"] = []string{string(httpcache.AppendAge(nil, obj.InitAge))}
	}
	// The body is held whole until stored (and shared with waiters): only
	// within the fill budget; past it the response streams through
	// uncached (issue 13: memory bounded by storage.memory). A body of
	// unknown length reserves as it grows (fill) and is shared all the
	// same: dynamic origins send chunked bodies (issue 13, item 8).
	if resp.ContentLength >= 0 && !s.cache.ReserveFill(resp.ContentLength) {
		s.metrics.NotStored.Add(1)
		f.Reason = "busy"
		f.Ready()
		fx.done()
		tx.status = httpcache.CacheStatus{Fwd: tx.fwdFor(fx.Stale), FwdStatus: resp.StatusCode, Detail: "busy"}
		return resp
	}
	f.Fill = max(resp.ContentLength, 0)
	f.Variant = obj.Variant
	fx.FillFlight(obj, -1, nil)
	return nil
}

// storable builds the object to store from resp, or says why not.
func (s *Server) storable(cfg *config.Config, route *config.Route, r *http.Request, resp *http.Response, key string, reqTime, respTime time.Time) (*cache.Object, string) {
	pol := &route.Policy
	cc := httpcache.ResponseDirectives(resp.Header, pol.Targeted)
	ok, reason := pol.Storable(http.MethodGet, resp.StatusCode, r.Header, resp.Header, cc)
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
	lt := pol.Lifetime(resp.StatusCode, resp.Header, cc, respTime)
	o := &cache.Object{Key: key, Variant: variant, Status: resp.StatusCode, Header: httpcache.StoredHeader(resp.Header, cc, pol.Targeted),
		Created: respTime, InitAge: httpcache.InitialAge(resp.Header, reqTime, respTime),
		ReqURL: r.URL.RequestURI(), ReqHost: hostOnly(r.Host)}
	setLifetime(o, lt, route)
	if !o.KeepUntil.After(respTime) {
		return nil, "expired"
	}
	return o, ""
}

// SetLifetime sets o's freshness, grace, stale-if-error and keep times
// from lt and the route.
func SetLifetime(o *cache.Object, lt httpcache.Lifetime, route *config.Route) {
	setLifetime(o, lt, route)
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

// StoredHeader is resp's header as the route stores it
// (httpcache.StoredHeader): without what RFC 9111 §3.1 keeps out of
// storage, the fields of a qualified private or no-cache, Age,
// Cache-Status and the targeted fields (RFC 9213). cc returns the
// response's directives for the route, read once for the features that
// store parts (slicing).
func StoredHeader(h http.Header, route *config.Route) (stored http.Header, cc httpcache.CacheControl) {
	cc = httpcache.ResponseDirectives(h, route.Policy.Targeted)
	return httpcache.StoredHeader(h, cc, route.Policy.Targeted), cc
}

// refresh builds the object that a 304 selecting stale makes of it (RFC
// 9111 §4.3.4): the stored header updated with the 304's fields
// (httpcache.UpdateStored), its directives and lifetime read anew, its age
// restarted from the 304.
func (s *Server) refresh(stale *cache.Object, h http.Header, route *config.Route, reqTime, respTime time.Time) *cache.Object {
	nh := stale.Header.Clone()
	httpcache.UpdateStored(nh, h)
	stored, cc := StoredHeader(nh, route)
	o := &cache.Object{Key: stale.Key, Variant: stale.Variant, Status: stale.Status, Header: stored, Body: stale.Body, Stored: stale.Stored,
		Created: respTime, InitAge: httpcache.InitialAge(h, reqTime, respTime), ReqURL: stale.ReqURL, ReqHost: stale.ReqHost,
		Kind: stale.Kind, Parent: stale.Parent, Extra: stale.Extra}
	setLifetime(o, route.Policy.Lifetime(stale.Status, nh, cc, respTime), route)
	o.Finish()
	return o
}

// fill copies a storable body into f.Body for every reader and stores the
// object once complete and intact. A body that fails (origin died,
// between-bytes timeout, short of Content-Length) is never stored, and
// readers see the error; so is one that is not of length bytes (unless
// length < 0), and readers see mismatch.
//
// A body of unknown length reserves the fill budget as it grows. Past the
// budget or storage.max_object it will not be stored, but its readers
// still get it whole: the flight leaves the registry (later requests do
// not join a body whose start is gone) and the stream spills, keeping
// only what its slowest reader has not read, so the origin is read at
// that reader's pace.
//
// fill prepares in the caller's goroutine (readers may pull the body from
// then on: cache.Stream.SetPull) and returns the part that runs in the
// fill's own.
func (s *Server) fill(tx *Txn, f *cache.Flight, resp *http.Response, obj *cache.Object, length int64, mismatch error, done func()) (run func()) {
	var once sync.Once
	finish := func() { once.Do(done) }
	max := tx.rt.cfg.Storage.MaxObject
	if n := resp.ContentLength; n > 0 && n <= max {
		f.Body.Expect(int(n))
	}
	buf := make([]byte, 64<<10)
	spilled := false
	var err error
	// step reads once from the origin into the stream; false at the end
	// of the body (err says how it ended) or when the fill stops.
	step := func() bool {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			if resp.ContentLength < 0 && !spilled {
				spilled = !s.reserveGrowing(f, obj, int64(n), max)
				if spilled {
					finish()
					f.Body.Spill(spillWindow)
				}
			}
			s.metrics.BytesIn.Add(int64(n))
			if _, werr := f.Body.WriteContext(s.ctx, buf[:n]); werr != nil {
				err = werr
				return false
			}
			if spilled && f.Body.Readers() == 0 {
				// Nobody reads a body that will not be stored: stop
				// fetching it.
				s.log.Info("unstorable body left by all its readers, fetch ended", "tx", tx.ID, "key", obj.Key)
				f.Body.Close(errNoReaders)
				err = errNoReaders
				return false
			}
		}
		if rerr != nil && rerr != io.EOF {
			err = rerr
		}
		return rerr == nil
	}
	if resp.ContentLength >= 0 {
		// A body of known length never spills (its step never waits
		// for readers): a reader that runs out of bytes reads the next
		// ones from the origin itself, as nginx's one loop does, rather
		// than wait for this goroutine to be scheduled (issue 15, item
		// 4: that hand-off cost a cold slicer range 0.5–5 ms on a
		// loaded machine).
		f.Body.SetPull(step)
	}
	return func() {
		defer s.bg.Done()
		defer resp.Body.Close()
		defer finish()
		defer func() { s.cache.ReleaseFill(f.Fill) }() // once stored, the memory tier accounts for it
		if resp.ContentLength >= 0 {
			f.Body.Pull()
		} else {
			for step() {
			}
		}
		s.fillEnd(tx, f, obj, length, mismatch, spilled, err)
	}
}

// fillEnd stores what fill read, or says why not.
func (s *Server) fillEnd(tx *Txn, f *cache.Flight, obj *cache.Object, length int64, mismatch error, spilled bool, err error) {
	max := tx.rt.cfg.Storage.MaxObject
	if err == errNoReaders {
		return
	}
	if err != nil {
		s.metrics.OriginErrors.Add(1)
		s.log.Warn("origin body failed, not stored", "tx", tx.ID, "key", obj.Key, "err", err)
		f.Body.Close(err)
		return
	}
	if spilled {
		f.Body.Close(nil)
		return
	}
	body, _ := f.Body.Bytes()
	if length >= 0 && int64(len(body)) != length {
		// A part shorter or longer than its range is never stored:
		// every later client would get a broken object.
		s.log.Warn("body has the wrong length, not stored", "tx", tx.ID, "key", obj.Key, "got", len(body), "want", length)
		f.Body.Close(mismatch)
		return
	}
	if int64(len(body)) <= max {
		s.store(obj, body)
	} else {
		s.metrics.NotStored.Add(1)
		s.hfm.Store(obj.Key, time.Now().Add(hitForMiss))
	}
	f.Body.Close(nil)
}

// spillWindow is how far a body that will not be stored may run ahead of
// its slowest reader (Stream.Spill).
const spillWindow = 1 << 20

var errNoReaders = errString("no reader left")

// reserveGrowing reserves n more bytes of a body of unknown length for
// storing it: false when they pass max_object (the key then skips the
// waiting list for a while, as a too-large known length does) or the fill
// budget, and then the bytes reserved so far are given back.
func (s *Server) reserveGrowing(f *cache.Flight, obj *cache.Object, n, max int64) bool {
	if int64(f.Body.Len())+n <= max && s.cache.ReserveFill(n) {
		f.Fill += n
		return true
	}
	if int64(f.Body.Len())+n > max {
		s.hfm.Store(obj.Key, time.Now().Add(hitForMiss))
	}
	s.metrics.NotStored.Add(1)
	s.cache.ReleaseFill(f.Fill)
	f.Fill = 0
	return false
}

// store completes obj with its body and inserts it.
func (s *Server) store(obj *cache.Object, body []byte) {
	obj.Body = body
	if obj.Status != http.StatusNoContent && obj.Status != http.StatusNotModified && obj.Status >= 200 {
		obj.Header.Set("Content-Length", strconv.Itoa(len(body)))
	}
	obj.Header.Del("Transfer-Encoding")
	if rangeable(obj.Status, obj.Header) {
		obj.Header["Accept-Ranges"] = acceptRanges
	}
	obj.Finish()
	s.cache.Insert(obj)
}

var acceptRanges = []string{"bytes"}

// rangeable says whether edgehost serves byte ranges (RFC 9110 §14) of a
// response it stores: a whole 200 without a content coding (a range of a
// coded body would be a range of the coding).
func rangeable(status int, h http.Header) bool {
	return status == http.StatusOK && h.Get("Content-Encoding") == ""
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
		httpcache.AddValidators(out.Header, stale.Header)
	}
	return out
}
