package server

import (
	"context"
	"io"
	"net/http"
	"time"

	"github.com/edgehost/edgehost/host/backend"
	"github.com/edgehost/edgehost/host/cache"
	"github.com/edgehost/edgehost/host/httpcache"
	"github.com/edgehost/edgehost/host/observe"
)

// hitForMiss is how long a key whose response was not storable skips the
// waiting list (Varnish's hit-for-miss): requests for it go to the origin in
// parallel instead of queueing behind each other, and the first storable
// response ends it.
const hitForMiss = 2 * time.Minute

// lookup is the cacheable path: hit, grace, or miss with coalescing.
func (s *Server) lookup(tx *Txn, r *http.Request) error {
	key := cacheKey(r)
	now := time.Now()
	o := s.cache.Lookup(key, r.Header, now)
	if o != nil {
		switch {
		case o.Fresh(now):
			s.metrics.Hits.Add(1)
			tx.status = httpcache.CacheStatus{Hit: true, TTL: o.TTL(now)}
			return s.deliver(tx, r, o, now)
		case o.InGrace(now):
			// Serve stale now; one background fetch revalidates
			// (Varnish grace, RFC 5861 stale-while-revalidate).
			s.metrics.GraceHits.Add(1)
			if o.TryRevalidate() {
				s.revalidateInBackground(tx, r, key, o)
			}
			tx.status = httpcache.CacheStatus{Hit: true, TTL: o.TTL(now), Detail: "stale"}
			return s.deliver(tx, r, o, now)
		}
		// Expired past grace: revalidate it in the foreground if it has
		// validators, else fetch anew.
		tx.found = foundExpired
		if !o.Revalidatable() && !o.UsableOnError(now) {
			o = nil
		}
	} else if s.cache.Stored(key) {
		tx.found = foundOtherVariants
	}
	s.metrics.Misses.Add(1)
	if until, ok := s.hfm.Load(key); ok && !now.Before(until.(time.Time)) {
		s.hfm.Delete(key)
	} else if ok {
		tx.status = httpcache.CacheStatus{Fwd: httpcache.FwdMiss, Detail: "uncacheable"}
		return s.fetchAndDeliver(tx, r, key, o, nil, nil)
	}
	f, leader, c := s.flights.JoinReader(key)
	defer c.Close()
	if leader {
		return s.fetchAndDeliver(tx, r, key, o, f, c)
	}
	return s.waitFor(tx, r, key, o, f, c)
}

// waitFor shares the leader's fetch f of key, reading its body from c.
func (s *Server) waitFor(tx *Txn, r *http.Request, key string, stale *cache.Object, f *cache.Flight, c *cache.Cursor) error {
	s.metrics.CoalescedWaits.Add(1)
	if err := f.Wait(r.Context()); err != nil {
		return nil // the client went away
	}
	if f.Err != nil {
		// The origin just failed for everyone waiting: do not send it
		// one request per waiter on top (a thundering herd).
		return f.Err
	}
	if !f.Shareable || !s.variantOK(f, r) {
		// The shared response does not fit this request (not storable,
		// other variant): fetch on our own, leaving f's body to
		// its readers.
		c.Close()
		return s.fetchAndDeliver(tx, r, key, stale, nil, nil)
	}
	if f.Object != nil {
		tx.status = httpcache.CacheStatus{Hit: true, TTL: f.Object.TTL(time.Now()), Collapsed: true}
		return s.deliver(tx, r, f.Object, time.Now())
	}
	tx.status = httpcache.CacheStatus{Fwd: tx.fwdFor(nil), FwdStatus: f.Status, Collapsed: true, Stored: true, TTL: f.TTL}
	return s.deliverStream(tx, r, f, c)
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

// lookupSource is the path of a route whose objects come whole from a
// feature's source (a static root, a tenant's program): a fresh hit, or a
// miss coalesced per key, produced by the source and delivered; stored
// when the object may be kept (a static file always; a program's answer
// when its header says so, by the same rules as an origin's). A source
// that answers every method (anyMethod: a program) gets the other methods
// too, uncached and uncoalesced.
func (s *Server) lookupSource(tx *Txn, r *http.Request, src Source, anyMethod bool) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		if !anyMethod {
			return NewStatusError(http.StatusMethodNotAllowed, errString(r.Method+" is not allowed on a static route"))
		}
		s.metrics.Passes.Add(1)
		tx.status = httpcache.CacheStatus{Fwd: httpcache.FwdMethod}
		return s.sourceOnce(tx, r, src, nil)
	}
	key := cacheKey(r)
	now := time.Now()
	o := s.cache.Lookup(key, r.Header, now)
	if o != nil && o.Fresh(now) {
		s.metrics.Hits.Add(1)
		tx.status = httpcache.CacheStatus{Hit: true, TTL: o.TTL(now)}
		return s.deliver(tx, r, o, now)
	}
	s.metrics.Misses.Add(1)
	if anyMethod && tx.depth > 0 {
		// A program's self-request to a program's route does not wait on
		// a flight: the flight's leader may be its own ancestor, waiting
		// for it (a program fetching its own URL). Running on its own, a
		// loop ends at max_depth or a full queue instead of a deadlock.
		tx.status = httpcache.CacheStatus{Fwd: tx.fwdFor(o)}
		return s.sourceOnce(tx, r, src, o)
	}
	f, leader := s.flights.Join(key)
	if !leader {
		s.metrics.CoalescedWaits.Add(1)
		if err := f.Wait(r.Context()); err != nil {
			return nil
		}
		switch {
		case f.Object != nil:
			tx.status = httpcache.CacheStatus{Hit: true, TTL: f.Object.TTL(time.Now()), Collapsed: true}
			return s.deliver(tx, r, f.Object, time.Now())
		case f.Err != nil:
			return f.Err
		}
		// The leader's answer was not to be kept, so not to be shared
		// either: this request gets its own.
		tx.status = httpcache.CacheStatus{Fwd: tx.fwdFor(o)}
		return s.sourceOnce(tx, r, src, o)
	}
	obj, err := src.Fetch(context.WithoutCancel(r.Context()), tx, r, key, o)
	keep := err == nil && obj.KeepUntil.After(time.Now())
	if keep {
		s.cache.Insert(obj)
		f.Status = http.StatusOK
		f.Object = obj
	}
	f.Err, f.Shareable = err, keep
	f.Ready()
	s.flights.Done(f)
	if err != nil {
		return err
	}
	tx.status = httpcache.CacheStatus{Fwd: tx.fwdFor(o), Stored: keep}
	if keep {
		tx.status.TTL = obj.TTL(time.Now())
	}
	return s.deliver(tx, r, obj, time.Now())
}

// sourceOnce has src answer r alone: nothing stored, nothing shared, and
// the work ends when the client leaves.
func (s *Server) sourceOnce(tx *Txn, r *http.Request, src Source, stale *cache.Object) error {
	obj, err := src.Fetch(r.Context(), tx, r, "", stale)
	if err != nil {
		return err
	}
	return s.deliver(tx, r, obj, time.Now())
}

// revalidateInBackground refreshes a stale object in grace with a
// subrequest of its own, linked to tx in the log.
func (s *Server) revalidateInBackground(tx *Txn, r *http.Request, key string, stale *cache.Object) {
	f, leader := s.flights.Join(key)
	if !leader {
		stale.DoneRevalidate()
		return
	}
	bg := &Txn{rt: tx.rt, route: tx.route, depth: tx.depth}
	bg.ID, bg.Parent, bg.Root, bg.Kind = observe.NewID(), tx.ID, tx.Root, "bgfetch"
	bg.Start, bg.Method, bg.Host, bg.URL, bg.Route = time.Now(), http.MethodGet, r.Host, r.RequestURI, tx.Route
	req := r.Clone(context.Background())
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		defer stale.DoneRevalidate()
		waitFill := make(chan struct{})
		resp := s.fetch(s.ctx, bg, req, key, stale, f, func() { s.flights.Done(f); close(waitFill) }, false)
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
