// Package files is the file feature on the host's side (DESIGN §7, issue 4):
// file readers, static roots, error pages and their fast path. It attaches
// to the state machine through the server's interfaces (host/server
// feature.go): a Handler for `respond { file = … }` routes, a Source for
// static routes, ErrorPages, a FastResponder and the `file` variable of
// request-time conditions.
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
package files

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/zclconf/go-cty/cty"

	"github.com/edgehost/edgehost/host/config"
	"github.com/edgehost/edgehost/host/observe"
	"github.com/edgehost/edgehost/host/server"
	"github.com/edgehost/edgehost/plugins/pluginapi"
	pluginv1 "github.com/edgehost/edgehost/proto/edgehost/plugin/v1"
)

// Plugins gives the file plugins by name (pluginhost.Manager).
type Plugins interface {
	File(name string) (pluginapi.File, error)
}

// Cache is what the feature does to the cache: purge what it stored of a
// static file that changed.
type Cache interface {
	PurgeTag(tag string) int
}

// Options construct the feature.
type Options struct {
	Logger  *slog.Logger
	Cache   Cache
	Metrics *observe.Metrics
	TxLog   *observe.TxLog
	Plugins Plugins // nil: no plugins
}

// Files is the feature. Lifecycle: New (no side effects) → Watch after
// every config the server takes (follows the plugins) → Close.
type Files struct {
	fileTable
	log     *slog.Logger
	cache   Cache
	metrics *observe.Metrics
	txlog   *observe.TxLog
	plugins Plugins
	cfg     atomic.Pointer[config.Config] // the config of the last Watch

	ctx    context.Context
	cancel context.CancelFunc
	bg     sync.WaitGroup
}

// New returns the feature; nothing is followed until Watch.
func New(opts Options) *Files {
	f := &Files{log: opts.Logger, cache: opts.Cache, metrics: opts.Metrics, txlog: opts.TxLog, plugins: opts.Plugins}
	if f.log == nil {
		f.log = slog.Default()
	}
	if f.metrics == nil {
		f.metrics = &observe.Metrics{}
	}
	if f.txlog == nil {
		f.txlog = observe.NewTxLog(1024)
	}
	f.ctx, f.cancel = context.WithCancel(context.Background())
	return f
}

// Close stops following the plugins and waits for background work.
func (f *Files) Close() {
	f.cancel()
	f.bg.Wait()
}

// Attach gives a `respond { file = … }` route its handler and a static
// route its source.
func (f *Files) Attach(cfg *config.Config, route *config.Route) (server.Steps, error) {
	switch {
	case route.Respond != nil && route.Respond.File != "":
		return server.Steps{Synth: &respondFile{f: f, rs: route.Respond, contentType: contentTypeField(cfg, route.Respond.File)}}, nil
	case route.Static != nil:
		return server.Steps{Source: &staticRoot{f: f, route: route}}, nil
	}
	return server.Steps{}, nil
}

// contentType is the content_type of the file block name declares.
func contentType(cfg *config.Config, name string) string {
	if fc := cfg.Files[name]; fc != nil {
		return fc.ContentType
	}
	return ""
}

// contentTypeField is the Content-Type field of a reader's answer: the
// file block's content_type, nil without a block.
func contentTypeField(cfg *config.Config, name string) []string {
	if fc := cfg.Files[name]; fc != nil {
		return []string{fc.ContentType}
	}
	return nil
}

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

// FileVars is the `file` variable for a request's conditions.
func (f *Files) FileVars() cty.Value {
	if v := f.vars.Load(); v != nil {
		return *v
	}
	return cty.NilVal
}

var (
	_ server.Feature       = (*Files)(nil)
	_ server.ErrorPages    = (*Files)(nil)
	_ server.FastResponder = (*Files)(nil)
	_ server.RequestVars   = (*Files)(nil)
	_ server.Handler       = (*respondFile)(nil)
	_ server.Source        = (*staticRoot)(nil)
)
