package server

import (
	"context"
	"io"
	"net/http"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/edgehost/edgehost/host/backend"
	"github.com/edgehost/edgehost/host/cache"
	"github.com/edgehost/edgehost/host/config"
	"github.com/edgehost/edgehost/host/h1"
	"github.com/edgehost/edgehost/host/httpcache"
)

// How features attach to the state machine (DESIGN §2). A feature never
// adds a branch to the state machine: for each route of each config it
// hands the server the steps it contributes (Attach, once per config, not
// per request), and it may answer a few questions the server asks at
// fixed points (error pages, the fast path, request variables,
// subrequests, the delivery of objects of its own kind). The feature
// packages (host/files, host/slicing) import this package; this package
// imports none of them.

// Feature attaches to the routes of every config the server compiles.
type Feature interface {
	// Attach returns what the feature adds to route (the zero Steps:
	// nothing). It is called for each route of cfg before cfg serves.
	Attach(cfg *config.Config, route *config.Route) (Steps, error)
}

// Steps are a feature's parts of one route.
type Steps struct {
	// Synth answers the route itself, without the cache ("synth" in
	// DESIGN §2): a reader's file.
	Synth Handler
	// Source produces a whole object for a miss, which the server stores
	// and delivers ("source"): a static root's file.
	Source Source
	// Fetch takes part in a miss fetched from the route's backend: the
	// slicer, fetch processors.
	Fetch FetchStep
	// Deliver sees every response of the route on its way to the client:
	// delivery processors. A route without one delivers as before (and
	// keeps the h1 fast path).
	Deliver DeliverStep
}

// DeliverStep transforms the responses of a route on their way to the
// client (delivery processors, Accept-Encoding negotiation, issue 16).
type DeliverStep interface {
	// Wrap returns the writer the response goes to instead of w (it may
	// change the request first: take its Range, to cut the delivered
	// representation itself) and end, called once the handler returned.
	Wrap(tx *Txn, r *http.Request, w http.ResponseWriter) (_ http.ResponseWriter, end func())
}

// Handler answers a request. An error becomes the response in one place
// (fail): its status comes from the error (StatusError, or the fetch
// path's errors).
type Handler interface {
	Serve(tx *Txn, r *http.Request) error
}

// Source produces the object for a miss on key. stale is the expired
// copy (nil: none), which the source may revalidate. The server
// coalesces the misses of one key, stores the object and delivers it.
type Source interface {
	Fetch(ctx context.Context, tx *Txn, r *http.Request, key string, stale *cache.Object) (*cache.Object, error)
}

// FetchStep takes part in a miss fetched from the route's backend.
type FetchStep interface {
	// Prepare adjusts the origin request (fx.Out) before it goes out.
	// It returns false when the step sits this fetch out.
	Prepare(fx *Fetch) bool
	// Fetched sees the origin's answer (fx.Resp) when it is neither an
	// error nor a 304 or 5xx that a stale object answers, and says what
	// becomes of it. An error settles the fetch as failed.
	Fetched(fx *Fetch) (Verdict, error)
}

// Verdict is what a FetchStep makes of the origin's answer.
type Verdict int

const (
	// Store: fx.Resp goes on to be stored (or not) as any answer.
	Store Verdict = iota
	// Settled: the step stored the answer and set the flight's Object.
	Settled
	// Pass: fx.Resp streams to this client alone, stored nowhere.
	Pass
	// Retry: fetch again without the step (its body is closed).
	Retry
	// Filling: the step started filling the flight (fx.Fill).
	Filling
)

// Delivery sends the stored objects of one kind (store.Kind*) that are
// not plain responses: a sliced object's segments.
type Delivery interface {
	Deliver(tx *Txn, r *http.Request, o *cache.Object, now time.Time) error
}

// KindDelivery is a feature that delivers objects of its own kind.
type KindDelivery interface {
	Kind() uint8
	Delivery
}

// ErrorPages answers an error status with a page of the config's; false
// leaves the built-in page. The header is already set (Cache-Control,
// Retry-After, Cache-Status).
type ErrorPages interface {
	ErrorPage(tx *Txn, r *http.Request, status int) bool
}

// FastResponder answers on the h1 fast path what no plain cache route
// takes (a reader's file), or returns false for the full state machine.
// It must not allocate but the transaction log's record.
type FastResponder interface {
	ServeFast(cfg *config.Config, r *h1.Request, w *h1.Writer, isHead bool) bool
}

// RequestVars provides the `file` variable of request-time conditions.
type RequestVars interface {
	FileVars() cty.Value
}

// Subrequests serves the host's own subrequests on the self socket that
// carry its header (a slicer segment): they are paced by their client
// and bounded by depth, so they take no self-request slot. A client can
// never send the header (the public listener strips it).
type Subrequests interface {
	// Subrequest names the header that marks them and their kind in the
	// transaction log.
	Subrequest() (header, kind string)
	ServeSubrequest(tx *Txn, r *http.Request, value string) error
}

// StatusError is an error that knows the client's status; it reads as
// the error it wraps.
type StatusError struct {
	Status int
	Err    error
}

// NewStatusError returns err, answered with status.
func NewStatusError(status int, err error) error { return &StatusError{Status: status, Err: err} }

func (e *StatusError) Error() string { return e.Err.Error() }
func (e *StatusError) Unwrap() error { return e.Err }

// StartOver is the error of a Delivery that asks the server to run the
// request's lookup again, once (a sliced object whose origin changed
// under it, before any byte went out); a second time the request fails
// with Err.
type StartOver struct{ Err error }

func (e *StartOver) Error() string { return e.Err.Error() }
func (e *StartOver) Unwrap() error { return e.Err }

// What a transaction offers a feature.

// Header is the response header.
func (tx *Txn) Header() http.Header { return tx.w.Header() }

// ResponseWriter is where the response goes (an error page writes to it).
func (tx *Txn) ResponseWriter() http.ResponseWriter { return tx.w }

// Config is the configuration that the transaction runs on.
func (tx *Txn) Config() *config.Config { return tx.rt.cfg }

// RouteConfig is the transaction's route.
func (tx *Txn) RouteConfig() *config.Route { return tx.route.Route }

// Depth is the self-request depth (0: a client's request).
func (tx *Txn) Depth() int { return tx.depth }

// SetCacheStatus sets the Cache-Status of the response.
func (tx *Txn) SetCacheStatus(cs httpcache.CacheStatus) { tx.status = cs }

// CacheStatus is the Cache-Status of the response so far.
func (tx *Txn) CacheStatus() httpcache.CacheStatus { return tx.status }

// SetTransit sets the copy buffer of a response passed through (the
// slice block's transit_buffer).
func (tx *Txn) SetTransit(n int) { tx.transit = n }

// Respond writes a complete representation of size bytes readable from
// body, applying the request's conditionals and ranges. The header is
// already set.
func (tx *Txn) Respond(r *http.Request, status int, etag string, lastModified time.Time, size int64, body io.ReaderAt) {
	tx.rt.s.respond(tx, r, status, etag, lastModified, size, body)
}

// Deliver sends a stored object.
func (tx *Txn) Deliver(r *http.Request, o *cache.Object, now time.Time) error {
	return tx.rt.s.deliver(tx, r, o, now)
}

// DeliverStream sends flight f's response while its body arrives.
func (tx *Txn) DeliverStream(r *http.Request, f *cache.Flight) error {
	return tx.rt.s.deliverStream(tx, r, f, nil)
}

// FetchAndDeliver fetches key from the route's backend for flight f with
// step taking part, and delivers the answer.
func (tx *Txn) FetchAndDeliver(r *http.Request, key string, f *cache.Flight, step FetchStep) error {
	tx.step = step
	return tx.rt.s.fetchAndDeliver(tx, r, key, nil, f, nil)
}

// Origin fetches r's URL from the route's backend as a miss would (GET,
// the client's conditionals and ranges left out), with ctx: a chain's
// "fetch" stage. The answer's status is the Cache-Status fwd-status.
func (tx *Txn) Origin(ctx context.Context, r *http.Request) (*http.Response, error) {
	if tx.route.backend == nil {
		return nil, NewStatusError(http.StatusServiceUnavailable, errString("the route has no backend"))
	}
	s := tx.rt.s
	s.metrics.OriginFetches.Add(1)
	resp, err := tx.route.backend.Do(ctx, originRequest(ctx, r, nil))
	if err != nil {
		s.metrics.OriginErrors.Add(1)
		return nil, err
	}
	tx.status.FwdStatus = resp.StatusCode
	return resp, nil
}

// Object builds the object of a response that a feature produced whole
// (status, header and body; received at respTime for a request sent at
// reqTime), under the rules of an origin's answer: stored (KeepUntil in
// the future) only when they allow it, and with their lifetime; otherwise
// an object to deliver once.
func (tx *Txn) Object(r *http.Request, key string, status int, header http.Header, body []byte, reqTime, respTime time.Time) *cache.Object {
	resp := &http.Response{StatusCode: status, Header: header, ContentLength: int64(len(body))}
	o, _ := tx.rt.s.storable(tx.rt.cfg, tx.route.Route, r, resp, key, reqTime, respTime)
	if o == nil || r.Method != http.MethodGet && r.Method != http.MethodHead {
		stored, _ := StoredHeader(header, tx.route.Route)
		o = &cache.Object{Key: key, Status: status, Header: stored, Created: respTime,
			ReqURL: r.URL.RequestURI(), ReqHost: HostOnly(r.Host)}
	}
	o.Body = body
	o.Finish()
	return o
}

// Fetch is a miss's fetch from the route's backend, as a FetchStep sees it.
type Fetch struct {
	Ctx   context.Context
	Tx    *Txn
	Req   *http.Request  // the client's request
	Out   *http.Request  // the origin request
	Resp  *http.Response // the origin's answer (Fetched)
	Key   string
	Stale *cache.Object // the object being revalidated, or nil
	// Flight is the miss's flight; Fetched sets its Object (Settled).
	Flight            *cache.Flight
	ReqTime, RespTime time.Time
	BanMark           uint64 // the cache's ban mark when the fetch began
	// Retry is set on the fetch that follows a Retry verdict.
	Retry bool

	backend *backend.Backend
	done    func()
}

// Do sends req to the route's backend (another request of the same
// fetch: the whole object after a part, a GET after a HEAD).
func (fx *Fetch) Do(req *http.Request) (*http.Response, error) {
	return fx.backend.Do(fx.Ctx, req)
}

// Fill copies resp's body into f for every reader in the background and
// stores obj when it is complete and intact (of exactly length bytes,
// unless length < 0; otherwise f's readers get mismatch). done runs when
// f takes no more waiters. f's head is published (Ready) first.
func (fx *Fetch) Fill(f *cache.Flight, resp *http.Response, obj *cache.Object, length int64, mismatch error, done func()) {
	s := fx.Tx.rt.s
	f.Status, f.Header = resp.StatusCode, resp.Header
	f.Shareable, f.TTL = true, obj.TTL(fx.RespTime)
	f.Ready()
	s.bg.Add(1)
	go s.fill(fx.Tx, f, resp, obj, length, mismatch, done)()
}

// FillFlight is Fill for the fetch's own flight.
func (fx *Fetch) FillFlight(obj *cache.Object, length int64, mismatch error) {
	fx.Fill(fx.Flight, fx.Resp, obj, length, mismatch, fx.done)
}

var _ error = (*StatusError)(nil)
