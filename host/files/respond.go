package files

import (
	"bytes"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/edgehost/edgehost/host/config"
	"github.com/edgehost/edgehost/host/h1"
	"github.com/edgehost/edgehost/host/httpcache"
	"github.com/edgehost/edgehost/host/observe"
	"github.com/edgehost/edgehost/host/server"
)

// respondFile answers a `respond { file = file.NAME }` route.
type respondFile struct {
	f           *Files
	rs          *config.Respond
	contentType []string // the file block's; nil without one
}

func (rf *respondFile) Serve(tx *server.Txn, r *http.Request) error {
	rs := rf.rs
	e := rf.f.get(rs.File)
	if ok, why := e.usable(); !ok {
		return server.NewStatusError(http.StatusServiceUnavailable, fmt.Errorf("%w: file %q: %s", ErrFileUnavailable, rs.File, why))
	}
	fileHeader(tx.Header(), rs, rf.contentType, e)
	cs := tx.CacheStatus()
	cs.Detail = "synthetic"
	tx.SetCacheStatus(cs)
	tx.Respond(r, rs.Status, e.etag, e.mtime, int64(len(e.body)), bytes.NewReader(e.body))
	return nil
}

// fileHeader sets the header of a reader's answer on a respond route.
func fileHeader(h http.Header, rs *config.Respond, contentType []string, e *fileEntry) {
	for k, v := range rs.Headers {
		h.Set(k, v)
	}
	if _, set := h["Content-Type"]; !set && contentType != nil {
		h["Content-Type"] = contentType
	}
	h["Last-Modified"] = []string{e.lastMod}
	h["Etag"] = []string{e.etag}
	h["Accept-Ranges"] = []string{"bytes"}
	h["Cache-Status"] = synthFileStatus
}

var synthFileStatus = []string{httpcache.CacheName + "; fwd=bypass; detail=synthetic"}

// synthTxCache is the transaction log's cache field of a synthetic
// response, as the full path records it.
var synthTxCache = httpcache.CacheStatus{Detail: "synthetic"}.String()

// ServeFast answers a `respond { file = … }` route on the h1 fast path
// (the server's fallback when no plain cache route takes the request) for
// a GET or HEAD without conditional or range fields: the same bytes as
// respondFile, from header lines built once per version and route.
// Anything else returns false (the full state machine).
func (f *Files) ServeFast(cfg *config.Config, r *h1.Request, w *h1.Writer, isHead bool) bool {
	// One If-None-Match is answered here (browsers revalidating); other
	// conditionals and ranges take the full path (respond).
	inm, ok := server.FastConditional(r)
	if !ok {
		return false
	}
	var hb [256]byte
	host := server.AppendHost(hb[:0], r.Host)
	var route *config.Route
	for _, c := range cfg.Routes {
		if !bytes.HasPrefix(r.Path, []byte(c.Prefix)) || !server.HostMatchBytes(c.Hosts, host) {
			continue
		}
		if c.When != nil || c.Respond == nil || c.Respond.File == "" {
			return false
		}
		route = c
		break
	}
	if route == nil {
		return false
	}
	e := f.get(route.Respond.File)
	if ok, _ := e.usable(); !ok {
		return false
	}
	now := time.Now()
	wl := e.wireFor(route, cfg)
	status, wire, body := route.Respond.Status, wl.full, e.body
	if inm != nil {
		if status != http.StatusOK {
			return false
		}
		if httpcache.NoneMatch(inm, e.etag) {
			// RFC 9110 §13.1.2, as respond evaluates it.
			status, wire, body = http.StatusNotModified, wl.notModified, nil
		}
	}
	head := w.Head()
	head = append(head, h1.StatusLine(r.Minor, status)...)
	head = append(head, wire...)
	head = h1.AppendDate(head)
	body = server.SendFast(f.metrics, r, w, head, body, isHead, status)
	f.metrics.Synth.Add(1)
	// The record reuses strings where it can: the route's prefix is the
	// target of a route for one file, and the host repeats.
	url := route.Prefix
	if string(r.Target) != url {
		url = string(r.Target)
	}
	hs := f.lastHost.Load()
	if hs == nil || *hs != string(host) {
		h := string(host)
		hs = &h
		f.lastHost.Store(hs)
	}
	id := observe.NewID()
	method := http.MethodGet
	if isHead {
		method = http.MethodHead
	}
	f.txlog.Publish(observe.Tx{ID: id, Root: id, Kind: "client", Start: now, Duration: time.Since(now),
		Method: method, Host: *hs, URL: url, Route: route.Prefix, Status: status,
		Cache: synthTxCache, Bytes: int64(len(body)), Remote: r.RemoteAddr})
	return true
}

// wireLines are the header lines (each ending in CRLF) of a reader's
// answer on one route: whole, and for a 304 (no Content-Length and
// Content-Type, as respond leaves them out).
type wireLines struct{ full, notModified []byte }

// wireFor returns the header lines that respondFile sets for route, built
// once per version and route.
func (e *fileEntry) wireFor(route *config.Route, cfg *config.Config) *wireLines {
	if wl, ok := e.wire.Load(route); ok {
		return wl.(*wireLines)
	}
	h := http.Header{}
	fileHeader(h, route.Respond, contentTypeField(cfg, route.Respond.File), e)
	h["Content-Length"] = []string{strconv.Itoa(len(e.body))}
	wl := &wireLines{}
	for k, vs := range h {
		for _, v := range vs {
			line := append(append(append(append([]byte(nil), k...), ": "...), v...), "\r\n"...)
			wl.full = append(wl.full, line...)
			if k != "Content-Length" && k != "Content-Type" {
				wl.notModified = append(wl.notModified, line...)
			}
		}
	}
	e.wire.Store(route, wl)
	return wl
}

// ErrorPage answers status with the first matching error_page whose
// reader serves; false leaves the built-in page. The header is already
// set (Cache-Control, Retry-After, Cache-Status).
func (f *Files) ErrorPage(tx *server.Txn, r *http.Request, status int) bool {
	cfg := tx.Config()
	for _, ep := range cfg.ErrorPages {
		if !ep.Matches(status) {
			continue
		}
		e := f.get(ep.File)
		if ok, why := e.usable(); !ok {
			f.log.Warn("error page cannot serve; built-in page instead", "tx", tx.ID, "status", status, "file", ep.File, "why", why)
			continue
		}
		w := tx.ResponseWriter()
		h := w.Header()
		ct := ep.ContentType
		if ct == "" {
			ct = contentType(cfg, ep.File)
		}
		h.Set("Content-Type", ct)
		h.Set("Content-Length", strconv.Itoa(len(e.body)))
		h.Set("Edgehost-Transaction", tx.ID.String())
		if status == http.StatusTooManyRequests && h.Get("Retry-After") == "" {
			h.Set("Retry-After", "5")
		}
		w.WriteHeader(status)
		if r.Method != http.MethodHead {
			w.Write(e.body)
		}
		return true
	}
	return false
}
