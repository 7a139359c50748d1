package server

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/edgehost/edgehost/host/config"
	"github.com/edgehost/edgehost/host/httpcache"
	"github.com/edgehost/edgehost/host/observe"
)

// Txn is one transaction: a client request or a subrequest. Features
// see it through the methods of feature.go.
type Txn struct {
	observe.Tx
	rt     *runtime
	route  *route
	depth  int
	w      *respWriter
	status httpcache.CacheStatus

	step    FetchStep // a subrequest's own fetch step (a slicer segment)
	retried bool      // the lookup already started over once (ErrStartOver)
	found   found     // what lookup found before a fetch, for Cache-Status (fwdFor)
	transit int       // pass: copy buffer size (slice transit_buffer)
}

// internalPrefix starts the names of the host's own header fields.
const internalPrefix = "Edgehost-"

func (s *Server) servePublic(w http.ResponseWriter, r *http.Request) {
	// Edgehost-* fields belong to the host (depth, parent, and any added
	// later): a client cannot set them (DESIGN §5, issue 13), nor a
	// subrequest's marker.
	for k := range r.Header {
		if len(k) >= len(internalPrefix) && strings.EqualFold(k[:len(internalPrefix)], internalPrefix) {
			delete(r.Header, k)
		}
	}
	for _, sub := range s.subs {
		r.Header.Del(sub.header)
	}
	s.metrics.Requests.Add(1)
	s.serve(w, r, 0, 0, "client")
}

// serveSelf handles the self-request socket: a plugin or program fetching a
// path. The depth is the caller's plus one.
func (s *Server) serveSelf(w http.ResponseWriter, r *http.Request) {
	s.metrics.SelfRequests.Add(1)
	depth := 1
	if d, err := strconv.Atoi(r.Header.Get(HeaderDepth)); err == nil && d >= 0 {
		depth = d + 1
	}
	parent := observe.ParseTxID(r.Header.Get(HeaderParent))
	r.Header.Del(HeaderDepth)
	r.Header.Del(HeaderParent)
	limits := s.rt.Load().cfg.Limits
	if depth > limits.MaxDepth {
		s.metrics.LoopRejects.Add(1)
		s.reject(w, r, depth, parent, "self-request depth "+strconv.Itoa(depth)+" exceeds limits.max_depth "+strconv.Itoa(limits.MaxDepth))
		return
	}
	// The host's own subrequests (slicer segments) are paced by their
	// client and bounded by depth: they do not take the slots that stop
	// plugins and programs from looping.
	for _, sub := range s.subs {
		if v := r.Header.Get(sub.header); v != "" {
			r.Header.Del(sub.header)
			s.serveSubrequest(w, r, depth, parent, sub, v)
			return
		}
	}
	select {
	case s.selfSem <- struct{}{}:
		defer func() { <-s.selfSem }()
	default:
		s.metrics.LoopRejects.Add(1)
		s.reject(w, r, depth, parent, "too many concurrent self-requests (limits.self_concurrency)")
		return
	}
	s.serve(w, r, depth, parent, "self")
}

func (s *Server) serveSubrequest(w http.ResponseWriter, r *http.Request, depth int, parent observe.TxID, sub subrequests, v string) {
	tx := s.newTxn(w, r, depth, parent, sub.kind)
	defer s.finish(tx)
	tx.route = s.match(tx, r)
	if tx.route == nil {
		s.fail(tx, r, NewStatusError(http.StatusBadRequest, errString("invalid "+sub.kind+" subrequest")))
		return
	}
	tx.Route = tx.route.Prefix
	s.run(tx, r, func(tx *Txn, r *http.Request) error { return sub.ServeSubrequest(tx, r, v) })
}

func (s *Server) reject(w http.ResponseWriter, r *http.Request, depth int, parent observe.TxID, why string) {
	tx := s.newTxn(w, r, depth, parent, "self")
	s.fail(tx, r, NewStatusError(http.StatusLoopDetected, errString(why)))
	s.finish(tx)
}

type errString string

func (e errString) Error() string { return string(e) }

func (s *Server) newTxn(w http.ResponseWriter, r *http.Request, depth int, parent observe.TxID, kind string) *Txn {
	tx := &Txn{rt: s.rt.Load(), depth: depth}
	tx.ID = observe.NewID()
	tx.Parent = parent
	tx.Root = tx.ID
	if parent != 0 {
		tx.Root = parent
	}
	tx.Kind = kind
	tx.Start = time.Now()
	tx.Method = r.Method
	tx.Host = r.Host
	tx.URL = r.RequestURI
	tx.Remote = r.RemoteAddr
	tx.w = &respWriter{ResponseWriter: w, s: s, r: r, tx: tx}
	return tx
}

func (s *Server) finish(tx *Txn) {
	tx.Duration = time.Since(tx.Start)
	tx.Status = tx.w.status
	tx.Bytes = tx.w.bytes
	if tx.Cache == "" {
		tx.Cache = tx.status.String()
	}
	s.metrics.Status(tx.Status)
	s.metrics.BytesOut.Add(tx.Bytes)
	if tx.Kind == "client" || tx.Kind == "self" { // the host's subrequests are parts of these
		obs := tx.rt.noRoute
		if tx.route != nil {
			obs = tx.route.obs
		}
		obs.Observe(cacheLabel(tx), tx.Duration.Seconds())
	}
	s.txlog.Publish(tx.Tx)
}

// serve is recv → route → the route's handler (compiled with the config:
// synth, a source's lookup, pass, or the cache's lookup).
func (s *Server) serve(w http.ResponseWriter, r *http.Request, depth int, parent observe.TxID, kind string) {
	tx := s.newTxn(w, r, depth, parent, kind)
	defer s.finish(tx)
	tx.route = s.match(tx, r)
	if tx.route == nil {
		s.fail(tx, r, NewStatusError(http.StatusNotFound, errString("no route matches "+r.Host+r.URL.Path)))
		return
	}
	tx.Route = tx.route.Prefix
	if d := tx.route.deliver; d != nil {
		w, end := d.Wrap(tx, r, tx.w.ResponseWriter)
		tx.w.ResponseWriter = w
		defer end()
	}
	s.run(tx, r, tx.route.handle)
}

// run runs a handler; its error becomes the response (fail).
func (s *Server) run(tx *Txn, r *http.Request, h func(*Txn, *http.Request) error) {
	if err := h(tx, r); err != nil {
		s.fail(tx, r, err)
	}
}

// match finds the route: host, longest prefix, then the condition.
func (s *Server) match(tx *Txn, r *http.Request) *route {
	host := hostOnly(r.Host)
	var creq *config.Request
	for _, rt := range tx.rt.routes {
		if !strings.HasPrefix(r.URL.Path, rt.Prefix) || !hostMatch(rt.Hosts, host) {
			continue
		}
		if rt.When != nil {
			if creq == nil {
				creq = conditionRequest(r, host, tx.depth)
				if s.vars != nil {
					creq.Files = s.vars.FileVars()
				}
			}
			ok, err := config.EvalCondition(rt.When, creq)
			if err != nil {
				s.log.Warn("route condition failed", "route", rt.Prefix, "tx", tx.ID, "err", err)
			}
			if !ok {
				continue
			}
		}
		return rt
	}
	return nil
}

// ConditionRequest is the `request` variable of a request-time condition.
func ConditionRequest(r *http.Request, depth int) *config.Request {
	return conditionRequest(r, hostOnly(r.Host), depth)
}

func conditionRequest(r *http.Request, host string, depth int) *config.Request {
	q := map[string]string{}
	for k, v := range r.URL.Query() {
		q[k] = v[0]
	}
	h := make(map[string]string, len(r.Header))
	for k, v := range r.Header {
		h[strings.ToLower(k)] = strings.Join(v, ", ")
	}
	return &config.Request{Method: r.Method, Path: r.URL.Path, URL: r.RequestURI, Host: host,
		Remote: r.RemoteAddr, Query: q, Headers: h, Depth: depth}
}

// HostOnly is a Host header without its port, lowercased.
func HostOnly(h string) string { return hostOnly(h) }

func hostOnly(h string) string {
	if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.Contains(h[i:], "]") {
		h = h[:i]
	}
	return strings.ToLower(h)
}

func hostMatch(hosts []string, host string) bool {
	if len(hosts) == 0 {
		return true
	}
	for _, h := range hosts {
		if h == host || h == "*" || (strings.HasPrefix(h, "*.") && strings.HasSuffix(host, h[1:])) {
			return true
		}
	}
	return false
}

// cacheKey is host (lowercased, port kept) + the request target as
// received (the fast path builds the same key from raw bytes).
func cacheKey(r *http.Request) string {
	return CacheKey(r)
}

// CacheKey is the cache key of a request: host (lowercased, port kept) +
// the request target as received.
func CacheKey(r *http.Request) string {
	if strings.HasPrefix(r.RequestURI, "/") {
		return strings.ToLower(r.Host) + r.RequestURI
	}
	return strings.ToLower(r.Host) + r.URL.RequestURI()
}

// respWriter records what was sent for the transaction log.
type respWriter struct {
	http.ResponseWriter
	s      *Server
	r      *http.Request
	tx     *Txn
	status int
	bytes  int64
	wrote  bool
}

func (w *respWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status = code
		w.wrote = code >= 200
		if w.tx.TTFB == 0 {
			w.tx.TTFB = time.Since(w.tx.Start)
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *respWriter) Write(p []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

func (w *respWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// abort ends the client connection without a clean end of body: used when
// a streamed body fails half-way, so the client can tell the response is
// incomplete (RFC 9112 §8). When err is known and not a byte of the
// response has left yet (an origin that sent its header fields, then
// failed before the first body byte), the head is taken back and the
// client gets the error's 502 or 504 instead of an empty reply (issue 13).
func (w *respWriter) abort(err error) {
	if u, ok := w.ResponseWriter.(interface{ Reset() bool }); ok && err != nil && w.bytes == 0 && u.Reset() {
		w.wrote, w.status = false, 0
		w.s.fail(w.tx, w.r, err)
		return
	}
	panic(http.ErrAbortHandler)
}
