package server

// The file feature on the host's side (DESIGN §7, issue 4).
//
// Readers. The server follows each file plugin's Watch stream (WatchFiles)
// and keeps a table of the readers' states in memory, contents included:
// when a state names a version (id) that the table does not hold, the
// consumer reads it through the plugin (Read with that id, so a version
// that moved on fails instead of mixing) and checks its size and, when
// known, its SHA-256, before swapping it in. The request path only loads
// the table (an atomic pointer): no file I/O and no plugin call. A reader
// serves while it holds contents and its last check has no error; a
// deleted file keeps serving its last contents. After a plugin relaunch
// or swap the stream replays the full state: versions already held are
// not read again.
//
// Responses from readers carry Last-Modified (the mtime), an ETag (the
// SHA-256 when the reader computes it, else the id) and Accept-Ranges;
// conditionals and ranges go through the same respond as cached objects.
//
// Error pages. fail() asks errorPage for the config's first error_page
// matching the status whose reader serves; none (or a failing reader)
// leaves the built-in page.
//
// Static routes. A miss reads the file through the plugin (Check for its
// state, then Read of that version), coalesced per key, and stores it as
// an object fresh for the static block's ttl; an expired object is
// revalidated with a Check (no body moves when the id is unchanged). The
// plugin tracks every file it was asked about and reports changes on the
// watch stream ("route3/css/site.css"): the server purges the keys it
// stored for that file. After a relaunch (a second sync marker on the
// stream) every tracked file is checked again, since the new plugin
// instance tracks nothing yet.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/zclconf/go-cty/cty"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/edgehost/edgehost/host/cache"
	"github.com/edgehost/edgehost/host/config"
	"github.com/edgehost/edgehost/host/h1"
	"github.com/edgehost/edgehost/host/httpcache"
	"github.com/edgehost/edgehost/host/observe"
	"github.com/edgehost/edgehost/plugins/pluginapi"
	pluginv1 "github.com/edgehost/edgehost/proto/edgehost/plugin/v1"
)

// ErrFileUnavailable is the error of a request whose reader cannot serve
// (its check failed, or its contents never loaded); the client gets 503.
var ErrFileUnavailable = errors.New("file reader unavailable")

// maxContentsVar bounds `file.NAME.contents` in expressions.
const maxContentsVar = 64 << 10

// fileEntry is one reader as the host serves it. Immutable once built.
type fileEntry struct {
	state *pluginv1.ReaderState
	// The loaded version: its contents and validators. bodyID may differ
	// from state.IdDigest while a newer version could not be read yet.
	body     []byte
	bodyID   string
	bodySHA  string
	mtime    time.Time
	loaded   bool
	etag     string
	lastMod  string
	loadErr  string
	loadedAt time.Time
	// wire caches, per respond route, the header lines of a 200 answer
	// from this version for the h1 fast path (fastFile).
	wire sync.Map // *config.Route → []byte
}

// usable says whether the reader serves, and why not.
func (e *fileEntry) usable() (bool, string) {
	switch {
	case e == nil:
		return false, "no state received from the file plugin yet"
	case e.state.GetError() != "":
		return false, e.state.GetError() + ": " + e.state.GetMessage()
	case !e.loaded:
		if e.loadErr != "" {
			return false, "contents not loaded: " + e.loadErr
		}
		return false, "contents not loaded yet"
	}
	return true, ""
}

// fileTable is the server's view of every reader and of the static files
// it has cached.
type fileTable struct {
	entries atomic.Pointer[map[string]*fileEntry]
	vars    atomic.Pointer[cty.Value]

	mu       sync.Mutex // writers of entries; watching; synced; readerMu
	readerMu map[string]*sync.Mutex
	watching map[string]*watcher
	syncs    map[string]int
	synced   map[string]chan struct{}

	smu    sync.Mutex
	static map[string]*staticFile // "ROUTE/PATH" → what is cached of it

	lastHost atomic.Pointer[string] // fastFile's transaction log records
}

// staticFile is a static file the server stored: its version (its
// objects carry staticTag).
type staticFile struct {
	plugin string
	id     string
}

func (t *fileTable) get(name string) *fileEntry {
	if m := t.entries.Load(); m != nil {
		return (*m)[name]
	}
	return nil
}

func (t *fileTable) put(name string, e *fileEntry) {
	old := t.entries.Load()
	next := map[string]*fileEntry{}
	if old != nil {
		for k, v := range *old {
			next[k] = v
		}
	}
	next[name] = e
	t.entries.Store(&next)
	v := filesValue(next)
	t.vars.Store(&v)
}

// filesValue is the `file` variable of request-time expressions.
func filesValue(m map[string]*fileEntry) cty.Value {
	if len(m) == 0 {
		return cty.EmptyObjectVal
	}
	obj := make(map[string]cty.Value, len(m))
	for name, e := range m {
		st := e.state
		contents := ""
		if e.loaded && len(e.body) <= maxContentsVar && utf8.Valid(e.body) {
			contents = string(e.body)
		}
		obj[name] = cty.ObjectVal(map[string]cty.Value{
			"contents": cty.StringVal(contents),
			"mtime":    cty.NumberIntVal(st.GetMtimeUnixNano() / int64(time.Second)),
			"size":     cty.NumberIntVal(st.GetSize()),
			"id":       cty.StringVal(st.GetIdDigest()),
			"sha256":   cty.StringVal(st.GetSha256()),
			"error":    cty.BoolVal(st.GetError() != ""),
			"errmsg":   cty.StringVal(st.GetMessage()),
			"deleted":  cty.BoolVal(st.GetDeleted()),
		})
	}
	return cty.ObjectVal(obj)
}

// fileVars is the `file` variable for a request's conditions.
func (s *Server) fileVars() cty.Value {
	if v := s.files.vars.Load(); v != nil {
		return *v
	}
	return cty.NilVal
}

// filePlugins lists the plugins that cfg's readers and static routes use.
func filePlugins(cfg *config.Config) map[string][]string {
	out := map[string][]string{}
	for _, f := range cfg.Files {
		out[f.Plugin] = append(out[f.Plugin], f.Name)
	}
	for _, rt := range cfg.Routes {
		if rt.Static != nil {
			if _, ok := out[rt.Static.Plugin]; !ok {
				out[rt.Static.Plugin] = nil
			}
		}
	}
	return out
}

// WatchFiles follows the file plugins that the current configuration's
// readers and static routes use: one Watch stream per plugin, started once
// and ended by Shutdown. It waits at most wait for each plugin's first full
// state, so that the first requests find the readers loaded, and returns
// an error naming the plugins that did not answer in time (they are still
// followed). Call it after New and after every Reload.
func (s *Server) WatchFiles(wait time.Duration) error {
	if s.plugins == nil {
		if len(filePlugins(s.rt.Load().cfg)) > 0 {
			return errors.New("the configuration has file readers but the server has no plugin manager")
		}
		return nil
	}
	t := &s.files
	var waits []string
	var chans []chan struct{}
	t.mu.Lock()
	if t.watching == nil {
		t.watching, t.syncs, t.synced = map[string]*watcher{}, map[string]int{}, map[string]chan struct{}{}
	}
	for name := range filePlugins(s.rt.Load().cfg) {
		h, err := s.plugins.File(name)
		if err != nil {
			t.mu.Unlock()
			return fmt.Errorf("file plugin %q: %w", name, err)
		}
		// A handle follows its plugin across relaunches and swaps; a
		// different one means the plugin was removed and declared again.
		if w := t.watching[name]; w == nil || w.h != h {
			if w != nil {
				w.cancel()
			}
			ctx, cancel := context.WithCancel(s.ctx)
			t.watching[name] = &watcher{h: h, cancel: cancel}
			t.syncs[name] = 0
			t.synced[name] = make(chan struct{})
			s.bg.Add(1)
			go func() {
				defer s.bg.Done()
				s.followFiles(ctx, name, h)
			}()
		}
		waits = append(waits, name)
		chans = append(chans, t.synced[name])
	}
	t.mu.Unlock()
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	var late []string
	for i, ch := range chans {
		select {
		case <-ch:
		case <-deadline.C:
			late = append(late, waits[i])
			deadline.Reset(0)
		}
	}
	if len(late) > 0 {
		return fmt.Errorf("file plugins %v sent no state within %s", late, wait)
	}
	// After a reload the stream was synced long ago: wait for the states
	// of readers that the new configuration adds (the swapped plugin's
	// stream replays them).
	for {
		var missing []string
		for name := range s.rt.Load().cfg.Files {
			if t.get(name) == nil {
				missing = append(missing, name)
			}
		}
		if len(missing) == 0 {
			return nil
		}
		select {
		case <-deadline.C:
			sort.Strings(missing)
			return fmt.Errorf("no state for file readers %v within %s", missing, wait)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// watcher is one plugin's Watch consumer.
type watcher struct {
	h      pluginapi.File
	cancel context.CancelFunc
}

// followFiles consumes one plugin's Watch stream until ctx ends (Shutdown,
// or the plugin was replaced by another of the same name).
func (s *Server) followFiles(ctx context.Context, plugin string, h pluginapi.File) {
	for ctx.Err() == nil {
		err := h.Watch(ctx, func(st *pluginv1.ReaderState) error {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			s.applyFileState(plugin, h, st)
			return nil
		})
		if err != nil && ctx.Err() == nil {
			s.log.Warn("file watch ended; following again", "plugin", plugin, "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
}

// applyFileState takes one message of a watch stream.
func (s *Server) applyFileState(plugin string, h pluginapi.File, st *pluginv1.ReaderState) {
	t := &s.files
	switch pluginapi.KindOfFileState(st.GetReader(), st.GetMessage()) {
	case pluginapi.FileStateSync:
		t.mu.Lock()
		t.syncs[plugin]++
		n := t.syncs[plugin]
		if n == 1 {
			close(t.synced[plugin])
		}
		t.mu.Unlock()
		if n > 1 {
			// A new plugin instance: it tracks no static file yet.
			s.recheckStatic(plugin, h)
		}
	case pluginapi.FileStateStatic:
		s.staticChanged(st)
	default:
		s.updateReader(h, st)
	}
}

// updateReader records a reader's state, reading its contents when the
// state names a version the table does not hold.
func (s *Server) updateReader(h pluginapi.File, st *pluginv1.ReaderState) {
	t := &s.files
	name := st.GetReader()
	// One reader's updates are serialized by its own lock; the table's
	// lock is held only to publish, so a slow read of one file's new
	// contents delays no other reader, watch or check.
	rl := t.readerLock(name)
	rl.Lock()
	defer rl.Unlock()
	old := t.get(name)
	if st.GetError() == pluginapi.FileErrMissing && old != nil && old.loaded {
		// The file is gone and the plugin has no mapping of it (it was
		// relaunched after the deletion): the host's copy of the last
		// contents serves on, as the mapping would have.
		st = &pluginv1.ReaderState{Reader: name, MtimeUnixNano: old.mtime.UnixNano(), Size: int64(len(old.body)),
			IdDigest: old.bodyID, Sha256: old.bodySHA, Deleted: true, Message: "file deleted; serving the last contents kept by the host"}
	}
	e := &fileEntry{state: st}
	if old != nil {
		e.body, e.bodyID, e.bodySHA, e.mtime, e.loaded = old.body, old.bodyID, old.bodySHA, old.mtime, old.loaded
		e.etag, e.lastMod, e.loadedAt = old.etag, old.lastMod, old.loadedAt
	}
	if st.GetError() == "" && st.GetIdDigest() != "" && (!e.loaded || st.GetIdDigest() != e.bodyID) {
		body, err := s.readContents(h, st)
		if err != nil {
			e.loadErr = err.Error()
			s.log.Warn("file reader's new version not loaded; the previous one serves", "reader", name, "id", st.GetIdDigest(), "err", err)
		} else {
			e.body, e.bodyID, e.bodySHA, e.loaded, e.loadedAt = body, st.GetIdDigest(), st.GetSha256(), true, time.Now()
			e.mtime = time.Unix(0, st.GetMtimeUnixNano()).UTC()
			e.lastMod = e.mtime.Format(http.TimeFormat)
			e.etag = `"` + e.bodyID + `"`
			if e.bodySHA != "" {
				e.etag = `"sha256-` + e.bodySHA + `"`
			}
			s.log.Info("file reader loaded", "reader", name, "size", len(body), "id", e.bodyID, "deleted", st.GetDeleted())
		}
	}
	if ok, why := e.usable(); !ok && (old == nil || old.state.GetError() != st.GetError() || old.state.GetMessage() != st.GetMessage()) {
		s.log.Warn("file reader cannot serve", "reader", name, "why", why)
	}
	t.mu.Lock()
	t.put(name, e)
	t.mu.Unlock()
}

// readerLock returns the lock that serializes updates of one reader.
func (t *fileTable) readerLock(name string) *sync.Mutex {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.readerMu == nil {
		t.readerMu = map[string]*sync.Mutex{}
	}
	l := t.readerMu[name]
	if l == nil {
		l = &sync.Mutex{}
		t.readerMu[name] = l
	}
	return l
}

// readContents reads one version of a reader through the plugin and
// checks it against its state.
func (s *Server) readContents(h pluginapi.File, st *pluginv1.ReaderState) ([]byte, error) {
	ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
	defer cancel()
	var buf bytes.Buffer
	buf.Grow(int(max(0, st.GetSize())))
	if err := h.Read(ctx, &pluginv1.ReadRequest{Reader: st.GetReader(), Length: -1, IdDigest: st.GetIdDigest()}, &buf); err != nil {
		return nil, err
	}
	if int64(buf.Len()) != st.GetSize() {
		return nil, fmt.Errorf("read %d bytes of a %d-byte version", buf.Len(), st.GetSize())
	}
	if want := st.GetSha256(); want != "" {
		sum := sha256.Sum256(buf.Bytes())
		if got := hex.EncodeToString(sum[:]); got != want {
			return nil, fmt.Errorf("contents have sha256 %s, the plugin hashed %s", got, want)
		}
	}
	return buf.Bytes(), nil
}

// synthFile answers a `respond { file = file.NAME }` route.
func (s *Server) synthFile(tx *txn, r *http.Request) {
	rs := tx.route.Respond
	e := s.files.get(rs.File)
	if ok, why := e.usable(); !ok {
		s.fail(tx, r, http.StatusServiceUnavailable, fmt.Errorf("%w: file %q: %s", ErrFileUnavailable, rs.File, why))
		return
	}
	h := tx.w.Header()
	for k, v := range rs.Headers {
		h.Set(k, v)
	}
	if _, set := h["Content-Type"]; !set {
		if f := tx.rt.cfg.Files[rs.File]; f != nil {
			h["Content-Type"] = []string{f.ContentType}
		}
	}
	h["Last-Modified"] = []string{e.lastMod}
	h["Etag"] = []string{e.etag}
	h["Accept-Ranges"] = []string{"bytes"}
	h["Cache-Status"] = synthFileStatus
	tx.status.Detail = "synthetic"
	s.respond(tx, r, rs.Status, e.etag, e.mtime, int64(len(e.body)), bytes.NewReader(e.body))
}

var synthFileStatus = []string{httpcache.CacheName + "; fwd=bypass; detail=synthetic"}

// synthTxCache is the transaction log's cache field of a synthetic
// response, as the full path records it.
var synthTxCache = httpcache.CacheStatus{Detail: "synthetic"}.String()

// fastFile answers a `respond { file = … }` route on the h1 fast path
// (fastHit's fallback) for a GET or HEAD without conditional or range
// fields: the same bytes as synthFile, from header lines built once per
// version and route. Anything else returns false (the full state machine).
func (s *Server) fastFile(r *h1.Request, w *h1.Writer, rt *runtime, host []byte, isHead bool) bool {
	// One If-None-Match is answered here (browsers revalidating); other
	// conditionals and ranges take the full path (respond).
	var inm []byte
	for i := 0; i < r.NumFields(); i++ {
		name, value := r.Field(i)
		if len(name) >= 3 && (name[0]|0x20) == 'i' && (name[1]|0x20) == 'f' && name[2] == '-' {
			if !h1.EqualFold(name, "if-none-match") || inm != nil {
				return false
			}
			inm = value
		}
		if h1.EqualFold(name, "range") {
			return false
		}
	}
	var route *config.Route
	for _, c := range rt.routes {
		if !bytes.HasPrefix(r.Path, []byte(c.Prefix)) || !hostMatchBytes(c.Hosts, host) {
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
	e := s.files.get(route.Respond.File)
	if ok, _ := e.usable(); !ok {
		return false
	}
	now := time.Now()
	wl := e.wireFor(route, rt.cfg)
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
	body = s.sendFast(r, w, head, body, isHead, status)
	s.metrics.Synth.Add(1)
	// The record reuses strings where it can: the route's prefix is the
	// target of a route for one file, and the host repeats.
	url := route.Prefix
	if string(r.Target) != url {
		url = string(r.Target)
	}
	hs := s.files.lastHost.Load()
	if hs == nil || *hs != string(host) {
		h := string(host)
		hs = &h
		s.files.lastHost.Store(hs)
	}
	id := observe.NewID()
	method := http.MethodGet
	if isHead {
		method = http.MethodHead
	}
	s.txlog.Publish(observe.Tx{ID: id, Root: id, Kind: "client", Start: now, Duration: time.Since(now),
		Method: method, Host: *hs, URL: url, Route: route.Prefix, Status: status,
		Cache: synthTxCache, Bytes: int64(len(body)), Remote: r.RemoteAddr})
	return true
}

// wireLines are the header lines (each ending in CRLF) of a reader's
// answer on one route: whole, and for a 304 (no Content-Length and
// Content-Type, as respond leaves them out).
type wireLines struct{ full, notModified []byte }

// wireFor returns the header lines that synthFile sets for route, built
// once per version and route.
func (e *fileEntry) wireFor(route *config.Route, cfg *config.Config) *wireLines {
	if wl, ok := e.wire.Load(route); ok {
		return wl.(*wireLines)
	}
	h := http.Header{}
	for k, v := range route.Respond.Headers {
		h.Set(k, v)
	}
	if _, set := h["Content-Type"]; !set {
		if f := cfg.Files[route.Respond.File]; f != nil {
			h["Content-Type"] = []string{f.ContentType}
		}
	}
	h["Last-Modified"] = []string{e.lastMod}
	h["Etag"] = []string{e.etag}
	h["Accept-Ranges"] = []string{"bytes"}
	h["Cache-Status"] = synthFileStatus
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

// errorPage answers status with the first matching error_page whose
// reader serves; false leaves the built-in page to fail. The header is
// already set (Cache-Control, Retry-After, Cache-Status).
func (s *Server) errorPage(tx *txn, r *http.Request, status int) bool {
	for _, ep := range tx.rt.cfg.ErrorPages {
		if !ep.Matches(status) {
			continue
		}
		e := s.files.get(ep.File)
		if ok, why := e.usable(); !ok {
			s.log.Warn("error page cannot serve; built-in page instead", "tx", tx.ID, "status", status, "file", ep.File, "why", why)
			continue
		}
		h := tx.w.Header()
		ct := ep.ContentType
		if ct == "" {
			if f := tx.rt.cfg.Files[ep.File]; f != nil {
				ct = f.ContentType
			}
		}
		h.Set("Content-Type", ct)
		h.Set("Content-Length", strconv.Itoa(len(e.body)))
		h.Set("Edgehost-Transaction", tx.ID.String())
		if status == http.StatusTooManyRequests && h.Get("Retry-After") == "" {
			h.Set("Retry-After", "5")
		}
		tx.w.WriteHeader(status)
		if r.Method != http.MethodHead {
			tx.w.Write(e.body)
		}
		return true
	}
	return false
}

// serveStatic answers a route's `static` block: a cache hit, or the file
// read through the plugin and stored.
func (s *Server) serveStatic(tx *txn, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		tx.w.Header().Set("Allow", "GET, HEAD")
		s.fail(tx, r, http.StatusMethodNotAllowed, errString(r.Method+" is not allowed on a static route"))
		return
	}
	key := cacheKey(r)
	now := time.Now()
	o := s.cache.Lookup(key, r.Header, now)
	if o != nil && o.Fresh(now) {
		s.metrics.Hits.Add(1)
		tx.status = httpcache.CacheStatus{Hit: true, TTL: o.TTL(now)}
		s.deliver(tx, r, o, now)
		return
	}
	s.metrics.Misses.Add(1)
	f, leader := s.flights.Join(key)
	if !leader {
		s.metrics.CoalescedWaits.Add(1)
		if err := f.Wait(r.Context()); err != nil {
			return
		}
		if f.Object != nil {
			tx.status = httpcache.CacheStatus{Hit: true, TTL: f.Object.TTL(time.Now()), Collapsed: true}
			s.deliver(tx, r, f.Object, time.Now())
			return
		}
		s.fail(tx, r, f.Status, f.Err)
		return
	}
	obj, code, err := s.fetchStatic(tx, r, key, o)
	f.Object, f.Status, f.Err, f.Shareable = obj, code, err, obj != nil
	f.Ready()
	s.flights.Done(f)
	if err != nil {
		s.fail(tx, r, code, err)
		return
	}
	fwd := httpcache.FwdURIMiss
	if o != nil {
		fwd = httpcache.FwdStale
	}
	tx.status = httpcache.CacheStatus{Fwd: fwd, Stored: true, TTL: obj.TTL(time.Now())}
	s.deliver(tx, r, obj, time.Now())
}

// staticPath is the file a static route's request asks for, relative to
// the root.
func staticPath(rt *config.Route, urlPath string) string {
	rel := strings.TrimPrefix(urlPath, rt.Prefix)
	rel = strings.TrimPrefix(rel, "/")
	if rel == "" || strings.HasSuffix(rel, "/") {
		rel += rt.Static.Index
	}
	return rel
}

// fetchStatic checks the file through the plugin and, unless stale holds
// that very version, reads it; the object is stored.
func (s *Server) fetchStatic(tx *txn, r *http.Request, key string, stale *cache.Object) (*cache.Object, int, error) {
	st := tx.route.Static
	h, err := s.plugins.File(st.Plugin)
	if err != nil {
		return nil, http.StatusServiceUnavailable, err
	}
	rel := staticPath(tx.route, r.URL.Path)
	name := pluginapi.StaticFileName(st.Name, rel)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 30*time.Second)
	defer cancel()
	s.metrics.OriginFetches.Add(1)
	state, err := h.Check(ctx, name)
	if err != nil {
		return nil, staticStatus(err), fmt.Errorf("static %s: %w", rel, err)
	}
	if state.GetError() != "" {
		return nil, http.StatusNotFound, fmt.Errorf("static %s: %s: %s", rel, state.GetError(), state.GetMessage())
	}
	now := time.Now()
	etag := `"` + state.GetIdDigest() + `"`
	if state.GetSha256() != "" {
		etag = `"sha256-` + state.GetSha256() + `"`
	}
	var body []byte
	if stale != nil && stale.ETag == etag {
		s.metrics.Revalidated304.Add(1)
		body = stale.Body
	} else {
		var buf bytes.Buffer
		buf.Grow(int(max(0, state.GetSize())))
		if err := h.Read(ctx, &pluginv1.ReadRequest{Reader: name, Length: -1, IdDigest: state.GetIdDigest()}, &buf); err != nil {
			return nil, staticStatus(err), fmt.Errorf("static %s: %w", rel, err)
		}
		if int64(buf.Len()) != state.GetSize() {
			return nil, http.StatusServiceUnavailable, fmt.Errorf("static %s: read %d bytes of %d", rel, buf.Len(), state.GetSize())
		}
		body = buf.Bytes()
		s.metrics.BytesIn.Add(int64(len(body)))
	}
	mtime := time.Unix(0, state.GetMtimeUnixNano()).UTC()
	hdr := http.Header{
		"Content-Type":   {config.ContentTypeFor(rel)},
		"Content-Length": {strconv.Itoa(len(body))},
		"Last-Modified":  {mtime.Format(http.TimeFormat)},
		"Etag":           {etag},
		"Accept-Ranges":  {"bytes"},
	}
	ttl := min(st.TTL, tx.route.DefaultTTL)
	o := &cache.Object{Key: key, Status: http.StatusOK, Header: hdr, Body: body, Created: now,
		// Kept past its freshness (the route's keep, at least an hour) so
		// that an expired copy is revalidated with a stat, not read again.
		Expires: now.Add(ttl), StaleUntil: now.Add(ttl), ErrorUntil: now.Add(ttl), KeepUntil: now.Add(ttl + max(tx.route.Keep, time.Hour)),
		ReqURL: r.URL.RequestURI(), ReqHost: hostOnly(r.Host)}
	o.Finish()
	// Every object of one static file carries its tag: a change purges
	// them all (whatever the query string or host), with nothing to
	// remember per key.
	o.Tags = append(o.Tags, staticTag(name))
	s.files.smu.Lock()
	if s.files.static == nil {
		s.files.static = map[string]*staticFile{}
	}
	sf := s.files.static[name]
	changed := sf != nil && sf.id != state.GetIdDigest()
	if sf == nil || changed {
		s.files.static[name] = &staticFile{plugin: st.Plugin, id: state.GetIdDigest()}
	}
	s.files.smu.Unlock()
	if changed {
		s.cache.PurgeTag(staticTag(name)) // copies of the old version
	}
	s.cache.Insert(o)
	return o, http.StatusOK, nil
}

// staticTag is the cache tag of the objects of one static file.
func staticTag(name string) string { return "edgehost-static:" + name }

// staticStatus maps a plugin error on a static file to the client's
// status: a path outside the root or a missing file is a 404 (the log
// says which), a plugin that is down a 503.
func staticStatus(err error) int {
	switch status.Code(err) {
	case codes.NotFound, codes.PermissionDenied, codes.InvalidArgument:
		return http.StatusNotFound
	}
	return http.StatusServiceUnavailable
}

// staticChanged purges what is cached of a static file the plugin
// reports changed or gone.
func (s *Server) staticChanged(st *pluginv1.ReaderState) {
	s.files.smu.Lock()
	sf := s.files.static[st.GetReader()]
	if sf == nil || (sf.id == st.GetIdDigest() && st.GetError() == "" && !st.GetDeleted()) {
		s.files.smu.Unlock()
		return
	}
	delete(s.files.static, st.GetReader())
	s.files.smu.Unlock()
	n := s.cache.PurgeTag(staticTag(st.GetReader()))
	s.log.Info("static file changed; purged", "file", st.GetReader(), "objects", n, "deleted", st.GetDeleted())
}

// recheckStatic checks every static file cached from plugin again (after
// a relaunch) and purges the changed ones.
func (s *Server) recheckStatic(plugin string, h pluginapi.File) {
	s.files.smu.Lock()
	var names []string
	for n, sf := range s.files.static {
		if sf.plugin == plugin {
			names = append(names, n)
		}
	}
	s.files.smu.Unlock()
	if len(names) == 0 {
		return
	}
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		for _, n := range names {
			ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
			st, err := h.Check(ctx, n)
			cancel()
			if err != nil {
				st = &pluginv1.ReaderState{Reader: n, Deleted: true, Error: pluginapi.FileErrMissing, Message: err.Error()}
			}
			s.staticChanged(st)
		}
	}()
}

// FileStatus is a reader as GET /files and a check show it.
type FileStatus struct {
	Name        string    `json:"name"`
	Path        string    `json:"path,omitempty"`
	Plugin      string    `json:"plugin,omitempty"`
	ContentType string    `json:"content_type,omitempty"`
	Size        int64     `json:"size"`
	Mtime       time.Time `json:"mtime,omitzero"`
	ID          string    `json:"id,omitempty"`
	SHA256      string    `json:"sha256,omitempty"`
	Error       bool      `json:"error"`
	ErrCode     string    `json:"error_code,omitempty"`
	ErrMsg      string    `json:"errmsg,omitempty"`
	Deleted     bool      `json:"deleted"`
	Serving     bool      `json:"serving"`
	Why         string    `json:"why,omitempty"`
	LoadedID    string    `json:"loaded_id,omitempty"`
	LoadedBytes int       `json:"loaded_bytes"`
	LoadedAt    time.Time `json:"loaded_at,omitzero"`
	ETag        string    `json:"etag,omitempty"`
}

// Files reports every reader of the current configuration.
func (s *Server) Files() []FileStatus {
	cfg := s.rt.Load().cfg
	var out []FileStatus
	for name := range cfg.Files {
		out = append(out, s.fileStatus(cfg, name))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (s *Server) fileStatus(cfg *config.Config, name string) FileStatus {
	fs := FileStatus{Name: name}
	if f := cfg.Files[name]; f != nil {
		fs.Path, fs.Plugin, fs.ContentType = f.Path, f.Plugin, f.ContentType
	}
	e := s.files.get(name)
	fs.Serving, fs.Why = e.usable()
	if e == nil {
		fs.Error = true
		return fs
	}
	st := e.state
	fs.Size, fs.ID, fs.SHA256, fs.Deleted = st.GetSize(), st.GetIdDigest(), st.GetSha256(), st.GetDeleted()
	fs.Error, fs.ErrCode, fs.ErrMsg = st.GetError() != "", st.GetError(), st.GetMessage()
	if st.GetMtimeUnixNano() != 0 {
		fs.Mtime = time.Unix(0, st.GetMtimeUnixNano()).UTC()
	}
	if e.loaded {
		fs.LoadedID, fs.LoadedBytes, fs.LoadedAt, fs.ETag = e.bodyID, len(e.body), e.loadedAt, e.etag
	}
	return fs
}

// FileCounts reports how many readers the current configuration has and
// how many of them cannot serve (for metrics).
func (s *Server) FileCounts() (readers, failing int) {
	for name := range s.rt.Load().cfg.Files {
		readers++
		if ok, _ := s.files.get(name).usable(); !ok {
			failing++
		}
	}
	return readers, failing
}

// ErrUnknownFile is returned by CheckFile for a name that no file block
// declares.
var ErrUnknownFile = errors.New("unknown file")

// CheckFile runs a synchronous check of a reader through its plugin,
// applies the state it returns (loading a new version) and reports it.
func (s *Server) CheckFile(ctx context.Context, name string) (FileStatus, error) {
	cfg := s.rt.Load().cfg
	f := cfg.Files[name]
	if f == nil {
		return FileStatus{}, fmt.Errorf("%w %q", ErrUnknownFile, name)
	}
	if s.plugins == nil {
		return FileStatus{}, errors.New("no plugin manager")
	}
	h, err := s.plugins.File(f.Plugin)
	if err != nil {
		return FileStatus{}, err
	}
	st, err := h.Check(ctx, name)
	if err != nil {
		return FileStatus{}, err
	}
	s.updateReader(h, st)
	return s.fileStatus(cfg, name), nil
}

// FileAdminHandlers are the admin API's file endpoints, for
// admin.Options.Extra (which puts them behind the token):
//
//	GET  /files              every reader's state (FileStatus), as JSON
//	GET  /files/NAME         one reader's state
//	GET  /files/NAME/contents  the contents the host serves (409 when
//	                         none are loaded)
//	POST /files/NAME/check   check NAME now; 200 with its new state, 404
//	                         for an unknown reader, 503 when its plugin is
//	                         down
func (s *Server) FileAdminHandlers() map[string]http.Handler {
	writeJSON := func(w http.ResponseWriter, code int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(v)
	}
	return map[string]http.Handler{
		"GET /files": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, http.StatusOK, s.Files())
		}),
		"GET /files/{name}": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			cfg := s.rt.Load().cfg
			name := r.PathValue("name")
			if cfg.Files[name] == nil {
				writeJSON(w, http.StatusNotFound, map[string]string{"error": fmt.Sprintf("%v %q", ErrUnknownFile, name)})
				return
			}
			writeJSON(w, http.StatusOK, s.fileStatus(cfg, name))
		}),
		"GET /files/{name}/contents": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			cfg := s.rt.Load().cfg
			name := r.PathValue("name")
			f, e := cfg.Files[name], s.files.get(name)
			switch {
			case f == nil:
				writeJSON(w, http.StatusNotFound, map[string]string{"error": fmt.Sprintf("%v %q", ErrUnknownFile, name)})
			case e == nil || !e.loaded:
				writeJSON(w, http.StatusConflict, map[string]string{"error": "no contents loaded"})
			default:
				w.Header().Set("Content-Type", f.ContentType)
				w.Header().Set("Etag", e.etag)
				w.Header().Set("Content-Length", strconv.Itoa(len(e.body)))
				w.Write(e.body)
			}
		}),
		"POST /files/{name}/check": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fs, err := s.CheckFile(r.Context(), r.PathValue("name"))
			switch {
			case errors.Is(err, ErrUnknownFile):
				writeJSON(w, http.StatusNotFound, map[string]string{"error": err.Error()})
			case err != nil:
				writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
			default:
				writeJSON(w, http.StatusOK, fs)
			}
		}),
	}
}
