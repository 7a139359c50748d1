// Package demoorigin is the HTTP origin that edgehost's demo, integration
// tests and benchmarks run against: `edgehost demo-origin -listen ADDR`
// serves it, tests mount it with httptest, and bench/run.sh puts it behind
// edgehost, Varnish and nginx.
//
// Every body is generated, deterministic and recomputable by a test (see
// BigByte and BigReaderAt), every response carries X-Origin-Request (a global
// sequence number, so a client behind a cache can tell whether the origin was
// hit), and the origin counts requests and body bytes per endpoint (Stats,
// GET /stats) so tests can assert what a cache fetched. The endpoints are
// listed on GET / (see index.go).
package demoorigin

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Origin is the demo origin: an http.Handler, safe for concurrent use.
//
// Lifecycle: New has no side effects; serve it with http.Serve or
// httptest.NewServer; Close releases handlers blocked in /stall (call it
// before httptest.Server.Close, which waits for them).
type Origin struct {
	log *slog.Logger

	seq     atomic.Uint64 // X-Origin-Request
	version atomic.Int64  // version of /big objects, starts at 1

	requests    atomic.Int64
	notModified atomic.Int64
	perEP       [numEndpoints]struct{ requests, bytes atomic.Int64 }

	counters sync.Map // /counter path → *atomic.Int64

	bodiesMu sync.Mutex
	bodies   map[bytesKey]*bytesObject // small /bytes bodies, built once

	closeOnce sync.Once
	closed    chan struct{}
}

// New returns an origin that logs to logger (nil: discard).
func New(logger *slog.Logger) *Origin {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	o := &Origin{
		log:    logger,
		bodies: make(map[bytesKey]*bytesObject),
		closed: make(chan struct{}),
	}
	o.version.Store(1)
	return o
}

// Close ends every /stall in progress; the origin keeps serving otherwise.
func (o *Origin) Close() error {
	o.closeOnce.Do(func() { close(o.closed) })
	return nil
}

// Version returns the current version of the /big objects.
func (o *Origin) Version() int { return int(o.version.Load()) }

// BumpVersion changes the content and validators of every /big object (as
// POST /admin/version does) and returns the new version.
func (o *Origin) BumpVersion() int { return int(o.version.Add(1)) }

// SetVersion sets the version of every /big object (a test that changes
// an object and changes it back).
func (o *Origin) SetVersion(v int) { o.version.Store(int64(v)) }

// endpoint identifies a first path segment; per-endpoint counters are kept
// in an array indexed by it, so counting costs no lock and no map.
type endpoint int

const (
	epIndex endpoint = iota
	epBytes
	epBig
	epStatus
	epDelay
	epStall
	epTruncate
	epCookie
	epVary
	epTag
	epCC
	epETag
	epCounter
	epEcho
	epPage
	epOther
	// Control endpoints: answered, but not counted in Stats, so health
	// probes and stats polling do not disturb what a test measures.
	epHealthz
	epStats
	epAdmin
	numEndpoints
)

const firstControl = epHealthz

var endpointNames = [numEndpoints]string{
	epIndex: "/", epBytes: "/bytes", epBig: "/big", epStatus: "/status",
	epDelay: "/delay", epStall: "/stall", epTruncate: "/truncate",
	epCookie: "/cookie", epVary: "/vary", epTag: "/tag", epCC: "/cc",
	epETag: "/etag", epCounter: "/counter", epEcho: "/echo", epPage: "/page", epOther: "other",
	epHealthz: "/healthz", epStats: "/stats", epAdmin: "/admin",
}

func lookupEndpoint(seg string) endpoint {
	switch seg {
	case "":
		return epIndex
	case "bytes":
		return epBytes
	case "big":
		return epBig
	case "status":
		return epStatus
	case "delay":
		return epDelay
	case "stall":
		return epStall
	case "truncate":
		return epTruncate
	case "cookie":
		return epCookie
	case "vary":
		return epVary
	case "tag":
		return epTag
	case "cc":
		return epCC
	case "etag":
		return epETag
	case "counter":
		return epCounter
	case "echo":
		return epEcho
	case "page":
		return epPage
	case "healthz":
		return epHealthz
	case "stats":
		return epStats
	case "admin":
		return epAdmin
	}
	return epOther
}

// Header values shared by every response that uses them; net/http only
// reads them.
var (
	hvOctet   = []string{"application/octet-stream"}
	hvText    = []string{"text/plain; charset=utf-8"}
	hvJSON    = []string{"application/json"}
	hvBytes   = []string{"bytes"}
	hvMaxAge  = []string{"max-age=3600"}
	hvNoStore = []string{"no-store"}
	hvNoSniff = []string{"nosniff"}
	hvLastMod = []string{fixedLastModified.Format(http.TimeFormat)}
	hvGzip    = []string{"gzip"}
	hvVaryAL  = []string{"Accept-Language"}
)

// fixedLastModified is the Last-Modified of /bytes and /etag objects and the
// base of /big's (which adds one hour per version).
var fixedLastModified = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// ServeHTTP implements http.Handler.
func (o *Origin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := o.seq.Add(1)
	h := w.Header()
	h["X-Origin-Request"] = []string{strconv.FormatUint(n, 10)}

	path := r.URL.Path
	seg, rest := strings.TrimPrefix(path, "/"), ""
	if i := strings.IndexByte(seg, '/'); i >= 0 {
		seg, rest = seg[:i], seg[i+1:]
	}
	ep := lookupEndpoint(seg)
	if ep < firstControl {
		o.requests.Add(1)
		o.perEP[ep].requests.Add(1)
	}
	if o.log.Enabled(r.Context(), slog.LevelDebug) {
		o.log.LogAttrs(r.Context(), slog.LevelDebug, "origin request",
			slog.Uint64("n", n), slog.String("method", r.Method), slog.String("uri", r.RequestURI),
			slog.String("range", r.Header.Get("Range")))
	}

	// ?cc=VALUE or ?max-age=S set Cache-Control on any endpoint; handlers
	// set their default only where none was given.
	if r.URL.RawQuery != "" {
		q := r.URL.Query()
		if v, ok := q["cc"]; ok {
			h["Cache-Control"] = []string{v[0]}
		} else if v := q.Get("max-age"); v != "" {
			h["Cache-Control"] = []string{"max-age=" + v}
		}
	}

	switch ep {
	case epIndex:
		if rest != "" || path != "/" {
			o.notFound(w, ep)
			return
		}
		o.serveIndex(w, r)
	case epBytes:
		o.serveBytes(w, r, rest)
	case epBig:
		o.serveBig(w, r, rest)
	case epStatus:
		o.serveStatus(w, r, rest)
	case epDelay:
		o.serveDelay(w, r, rest)
	case epStall:
		o.serveStall(w, r)
	case epTruncate:
		o.serveTruncate(w, r, rest)
	case epCookie:
		o.serveCookie(w, r)
	case epVary:
		o.serveVary(w, r)
	case epTag:
		o.serveTag(w, r, rest)
	case epCC:
		o.serveCC(w, r)
	case epETag:
		o.serveETag(w, r)
	case epCounter:
		o.serveCounter(w, r)
	case epEcho:
		o.serveEcho(w, r)
	case epPage:
		o.servePage(w, r, rest)
	case epHealthz:
		o.text(w, r, ep, http.StatusOK, "ok\n")
	case epStats:
		o.serveStats(w, r)
	case epAdmin:
		o.serveAdmin(w, r, rest)
	default:
		o.notFound(w, ep)
	}
}

// write sends p as (part of) the body and counts what was written.
func (o *Origin) write(w http.ResponseWriter, ep endpoint, p []byte) error {
	n, err := w.Write(p)
	o.countBytes(ep, n)
	return err
}

func (o *Origin) countBytes(ep endpoint, n int) {
	if n > 0 && ep < firstControl {
		o.perEP[ep].bytes.Add(int64(n))
	}
}

// text answers a short text body (none for HEAD).
func (o *Origin) text(w http.ResponseWriter, r *http.Request, ep endpoint, code int, body string) {
	h := w.Header()
	h["Content-Type"] = hvText
	h["X-Content-Type-Options"] = hvNoSniff
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	w.WriteHeader(code)
	if r.Method != http.MethodHead && bodyAllowed(code) {
		_ = o.write(w, ep, []byte(body))
	}
}

func (o *Origin) notFound(w http.ResponseWriter, ep endpoint) {
	w.Header().Del("Cache-Control")
	w.Header()["Content-Type"] = hvText
	w.WriteHeader(http.StatusNotFound)
	_ = o.write(w, ep, []byte("404 not found: see / for the endpoints\n"))
}

func (o *Origin) badRequest(w http.ResponseWriter, ep endpoint, msg string) {
	w.Header().Del("Cache-Control")
	w.Header()["Content-Type"] = hvText
	w.WriteHeader(http.StatusBadRequest)
	_ = o.write(w, ep, []byte("400 bad request: "+msg+"\n"))
}

// answerNotModified sends a 304 and counts it.
func (o *Origin) answerNotModified(w http.ResponseWriter) {
	o.notModified.Add(1)
	h := w.Header()
	delete(h, "Content-Type")
	delete(h, "Content-Length")
	w.WriteHeader(http.StatusNotModified)
}

// defaultCC sets Cache-Control unless the query already did.
func defaultCC(h http.Header, v []string) {
	if _, ok := h["Cache-Control"]; !ok {
		h["Cache-Control"] = v
	}
}

func bodyAllowed(code int) bool {
	return code >= 200 && code != http.StatusNoContent && code != http.StatusNotModified
}

// sleep waits d, or until the request or the origin ends; it reports
// whether the full time passed.
func (o *Origin) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-o.closed:
		return false
	}
}

var _ http.Handler = (*Origin)(nil)
