package files

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/edgehost/edgehost/host/cache"
	"github.com/edgehost/edgehost/host/config"
	"github.com/edgehost/edgehost/host/server"
	"github.com/edgehost/edgehost/plugins/pluginapi"
	pluginv1 "github.com/edgehost/edgehost/proto/edgehost/plugin/v1"
)

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

// staticRoot is the source of a route's `static` block: a miss (or an
// expired copy, revalidated) reads the file through the plugin.
type staticRoot struct {
	f     *Files
	route *config.Route
}

// Fetch checks the file through the plugin and, unless stale holds that
// very version, reads it.
func (sr *staticRoot) Fetch(ctx context.Context, tx *server.Txn, r *http.Request, key string, stale *cache.Object) (*cache.Object, error) {
	f, route := sr.f, sr.route
	st := route.Static
	if f.plugins == nil {
		return nil, server.NewStatusError(http.StatusServiceUnavailable, errors.New("no plugin manager"))
	}
	h, err := f.plugins.File(st.Plugin)
	if err != nil {
		return nil, server.NewStatusError(http.StatusServiceUnavailable, err)
	}
	rel := staticPath(route, r.URL.Path)
	name := pluginapi.StaticFileName(st.Name, rel)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	f.metrics.OriginFetches.Add(1)
	state, err := h.Check(ctx, name)
	if err != nil {
		return nil, server.NewStatusError(staticStatus(err), fmt.Errorf("static %s: %w", rel, err))
	}
	if state.GetError() != "" {
		return nil, server.NewStatusError(http.StatusNotFound, fmt.Errorf("static %s: %s: %s", rel, state.GetError(), state.GetMessage()))
	}
	etag := `"` + state.GetIdDigest() + `"`
	if state.GetSha256() != "" {
		etag = `"sha256-` + state.GetSha256() + `"`
	}
	var body []byte
	if stale != nil && stale.ETag == etag && stale.Stored == nil { // a body left in the store is read again
		f.metrics.Revalidated304.Add(1)
		body = stale.Body
	} else {
		var buf bytes.Buffer
		buf.Grow(int(max(0, state.GetSize())))
		if err := h.Read(ctx, &pluginv1.ReadRequest{Reader: name, Length: -1, IdDigest: state.GetIdDigest()}, &buf); err != nil {
			return nil, server.NewStatusError(staticStatus(err), fmt.Errorf("static %s: %w", rel, err))
		}
		if int64(buf.Len()) != state.GetSize() {
			return nil, server.NewStatusError(http.StatusServiceUnavailable, fmt.Errorf("static %s: read %d bytes of %d", rel, buf.Len(), state.GetSize()))
		}
		body = buf.Bytes()
		f.metrics.BytesIn.Add(int64(len(body)))
	}
	o := staticObject(route, r, key, rel, etag, state, body)
	// Every object of one static file carries its tag: a change purges
	// them all (whatever the query string or host), with nothing to
	// remember per key.
	o.Tags = append(o.Tags, staticTag(name))
	f.smu.Lock()
	if f.static == nil {
		f.static = map[string]*staticFile{}
	}
	sf := f.static[name]
	changed := sf != nil && sf.id != state.GetIdDigest()
	if sf == nil || changed {
		f.static[name] = &staticFile{plugin: st.Plugin, id: state.GetIdDigest()}
	}
	f.smu.Unlock()
	if changed {
		f.cache.PurgeTag(staticTag(name)) // copies of the old version
	}
	return o, nil
}

// staticObject is the object to store of one version of a static file.
func staticObject(route *config.Route, r *http.Request, key, rel, etag string, state *pluginv1.ReaderState, body []byte) *cache.Object {
	now := time.Now()
	mtime := time.Unix(0, state.GetMtimeUnixNano()).UTC()
	hdr := http.Header{
		"Content-Type":   {config.ContentTypeFor(rel)},
		"Content-Length": {strconv.Itoa(len(body))},
		"Last-Modified":  {mtime.Format(http.TimeFormat)},
		"Etag":           {etag},
		"Accept-Ranges":  {"bytes"},
	}
	ttl := route.Static.TTL // the check interval, at most the route's default_ttl when it has one
	if d := route.DefaultTTL; d > 0 {
		ttl = min(ttl, d)
	}
	o := &cache.Object{Key: key, Status: http.StatusOK, Header: hdr, Body: body, Created: now,
		// Kept past its freshness (the route's keep, at least an hour) so
		// that an expired copy is revalidated with a stat, not read again.
		Expires: now.Add(ttl), StaleUntil: now.Add(ttl), ErrorUntil: now.Add(ttl), KeepUntil: now.Add(ttl + max(route.Keep, time.Hour)),
		ReqURL: r.URL.RequestURI(), ReqHost: server.HostOnly(r.Host)}
	o.Finish()
	return o
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
func (f *Files) staticChanged(st *pluginv1.ReaderState) {
	f.smu.Lock()
	sf := f.static[st.GetReader()]
	if sf == nil || (sf.id == st.GetIdDigest() && st.GetError() == "" && !st.GetDeleted()) {
		f.smu.Unlock()
		return
	}
	delete(f.static, st.GetReader())
	f.smu.Unlock()
	n := f.cache.PurgeTag(staticTag(st.GetReader()))
	f.log.Info("static file changed; purged", "file", st.GetReader(), "objects", n, "deleted", st.GetDeleted())
}

// recheckStatic checks every static file cached from plugin again (after
// a relaunch) and purges the changed ones.
func (f *Files) recheckStatic(plugin string, h pluginapi.File) {
	f.smu.Lock()
	var names []string
	for n, sf := range f.static {
		if sf.plugin == plugin {
			names = append(names, n)
		}
	}
	f.smu.Unlock()
	if len(names) == 0 {
		return
	}
	f.bg.Add(1)
	go func() {
		defer f.bg.Done()
		for _, n := range names {
			ctx, cancel := context.WithTimeout(f.ctx, 10*time.Second)
			st, err := h.Check(ctx, n)
			cancel()
			if err != nil {
				st = &pluginv1.ReaderState{Reader: n, Deleted: true, Error: pluginapi.FileErrMissing, Message: err.Error()}
			}
			f.staticChanged(st)
		}
	}()
}
