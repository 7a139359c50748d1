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

// txn is one transaction: a client request or a subrequest.
type txn struct {
	observe.Tx
	rt     *runtime
	route  *config.Route
	depth  int
	w      *respWriter
	status httpcache.CacheStatus

	seg     *segReq // a segment subrequest
	retry   bool    // fetching unsliced after the slicer said no (on_failure = "retry")
	retried bool    // a sliced delivery already started over once
	transit int     // pass: copy buffer size (slice transit_buffer)
}

func (s *Server) servePublic(w http.ResponseWriter, r *http.Request) {
	// The depth and parent headers belong to the host: a client cannot set
	// them (DESIGN §5).
	r.Header.Del(HeaderDepth)
	r.Header.Del(HeaderParent)
	r.Header.Del(HeaderSegment)
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
		s.reject(w, r, depth, parent, http.StatusLoopDetected, "self-request depth "+strconv.Itoa(depth)+" exceeds limits.max_depth "+strconv.Itoa(limits.MaxDepth))
		return
	}
	// Slicer segments are the host's own subrequests, paced by their
	// client and bounded by depth: they do not take the slots that stop
	// plugins and programs from looping.
	if r.Header.Get(HeaderSegment) == "" {
		select {
		case s.selfSem <- struct{}{}:
			defer func() { <-s.selfSem }()
		default:
			s.metrics.LoopRejects.Add(1)
			s.reject(w, r, depth, parent, http.StatusLoopDetected, "too many concurrent self-requests (limits.self_concurrency)")
			return
		}
	}
	if v := r.Header.Get(HeaderSegment); v != "" {
		r.Header.Del(HeaderSegment)
		gen, idx, ok := parseSegment(v)
		tx := s.newTxn(w, r, depth, parent, "segment")
		defer s.finish(tx)
		tx.route = s.match(tx, r)
		if !ok || tx.route == nil || tx.route.Slice == nil {
			s.fail(tx, r, http.StatusBadRequest, errString("invalid segment subrequest"))
			return
		}
		tx.Route = tx.route.Prefix
		s.segment(tx, r, gen, idx)
		return
	}
	s.serve(w, r, depth, parent, "self")
}

func (s *Server) reject(w http.ResponseWriter, r *http.Request, depth int, parent observe.TxID, status int, why string) {
	tx := s.newTxn(w, r, depth, parent, "self")
	s.fail(tx, r, status, errString(why))
	s.finish(tx)
}

type errString string

func (e errString) Error() string { return string(e) }

func (s *Server) newTxn(w http.ResponseWriter, r *http.Request, depth int, parent observe.TxID, kind string) *txn {
	tx := &txn{rt: s.rt.Load(), depth: depth}
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
	tx.w = &respWriter{ResponseWriter: w, tx: tx}
	return tx
}

func (s *Server) finish(tx *txn) {
	tx.Duration = time.Since(tx.Start)
	tx.Status = tx.w.status
	tx.Bytes = tx.w.bytes
	if tx.Cache == "" {
		tx.Cache = tx.status.String()
	}
	s.metrics.Status(tx.Status)
	s.metrics.BytesOut.Add(tx.Bytes)
	s.txlog.Publish(tx.Tx)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request, depth int, parent observe.TxID, kind string) {
	tx := s.newTxn(w, r, depth, parent, kind)
	defer s.finish(tx)
	tx.route = s.match(tx, r)
	if tx.route == nil {
		s.fail(tx, r, http.StatusNotFound, errString("no route matches "+r.Host+r.URL.Path))
		return
	}
	tx.Route = tx.route.Prefix
	switch {
	case tx.route.Respond != nil && tx.route.Respond.File != "":
		s.metrics.Synth.Add(1)
		s.synthFile(tx, r) // file.go
	case tx.route.Respond != nil:
		s.metrics.Synth.Add(1)
		s.synth(tx, r)
	case tx.route.Static != nil:
		s.serveStatic(tx, r) // file.go
	case r.Method != http.MethodGet && r.Method != http.MethodHead:
		s.unsafe(tx, r)
	case tx.route.Pass:
		tx.status.Fwd = "bypass"
		s.metrics.Passes.Add(1)
		s.pass(tx, r)
	default:
		s.lookup(tx, r)
	}
}

// match finds the route: host, longest prefix, then the condition.
func (s *Server) match(tx *txn, r *http.Request) *config.Route {
	host := hostOnly(r.Host)
	var creq *config.Request
	for _, rt := range tx.rt.routes {
		if !strings.HasPrefix(r.URL.Path, rt.Prefix) || !hostMatch(rt.Hosts, host) {
			continue
		}
		if rt.When != nil {
			if creq == nil {
				creq = conditionRequest(r, host, tx.depth)
				creq.Files = s.fileVars()
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
	if strings.HasPrefix(r.RequestURI, "/") {
		return strings.ToLower(r.Host) + r.RequestURI
	}
	return strings.ToLower(r.Host) + r.URL.RequestURI()
}

// respWriter records what was sent for the transaction log.
type respWriter struct {
	http.ResponseWriter
	tx     *txn
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
// incomplete (RFC 9112 §8).
func (w *respWriter) abort() {
	panic(http.ErrAbortHandler)
}
