// Package admin serves edgehost's admin API on its own listener (loopback by
// default, never the public one): health, Prometheus metrics, the
// transaction log, status, and — with the token — invalidation (purge by
// URL, ban, purge by tag), config reload and plugin operations.
//
//	GET  /healthz                      liveness (no token)
//	GET  /                             the live status page (token once, then a cookie: session.go, page.go)
//	GET  /status.json                  the page's data: per-second points, errors, inventory (token or cookie)
//	GET  /metrics                      Prometheus text format (token unless admin.public_metrics)
//	GET  /status                       config path, tiers, backends, bans (token)
//	GET  /log[?follow=1&group=1&q=&n=&since=] transaction log as JSON lines (token; log.go)
//	POST /purge?url=URL                purge a URL with all its Vary variants (token)
//	POST /ban   body: expression       Varnish-style ban, persisted (token)
//	POST /purge-tag?tag=TAG            purge by Surrogate-Key / xkey (token)
//	POST /reload                       reload the config file (token)
//	/plugins…                          plugin manager (token)
//	/files…, /tenants…                 features' endpoints (Extra; token): file readers, tenants' programs
//	GET  /debug/pprof/…                Go profiles (token)
//
// Everything but /healthz needs the token, reads included: status, the log,
// the plugin list (binary paths, pids, errors) and profiles tell an
// attacker much (issue 13). The check wraps the whole mux, so an endpoint
// added later is covered without remembering to. The token is compared in
// constant time and never logged.
package admin

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"net/url"
	"path"
	"strings"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/edgehost/edgehost/host/observe"
)

// Cache is what the admin API needs of the cache.
type Cache interface {
	Purge(key string) int
	PurgeTag(tag string) int
	Ban(expr string) error
	Bans() []string
}

// Options wire the admin API to the rest of the host.
type Options struct {
	Token         string
	PublicMetrics bool // GET /metrics without the token (admin.public_metrics)
	Cache         Cache
	Metrics       *observe.Metrics
	TxLog         *observe.TxLog
	Logger        *slog.Logger
	Reload        func() error          // reload the config
	Status        func() map[string]any // extra status fields
	Plugins       http.Handler          // mounted at /plugins (may be nil)
	Extra         map[string]http.Handler
	Live          *Live // the status page's sampler; nil: no page
}

// Handler returns the admin API.
func Handler(o Options) http.Handler {
	a := &api{o: o}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	// The registry's exposition, content negotiation and gzip are the
	// client library's (promhttp); a collector that fails is reported in
	// the log and its series left out, the others still served.
	mux.Handle("GET /metrics", promhttp.HandlerFor(o.Metrics.Registry(), promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(o.Logger.Handler(), slog.LevelWarn), ErrorHandling: promhttp.ContinueOnError}))
	mux.HandleFunc("GET /status", a.status)
	mux.HandleFunc("GET /log", a.log)
	mux.HandleFunc("POST /purge", a.purge)
	mux.HandleFunc("POST /ban", a.ban)
	mux.HandleFunc("POST /purge-tag", a.purgeTag)
	mux.HandleFunc("POST /reload", a.reload)
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	if o.Plugins != nil {
		mux.Handle("/plugins", o.Plugins)
		mux.Handle("/plugins/", o.Plugins)
	}
	for p, h := range o.Extra {
		mux.Handle(p, h)
	}
	if o.Live != nil {
		registerPage(mux, o.Live)
	}
	authed := a.auth(mux.ServeHTTP)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" || (o.PublicMetrics && r.URL.Path == "/metrics") || (o.Live != nil && strings.HasPrefix(path.Clean(r.URL.Path), "/ui/")) {
			mux.ServeHTTP(w, r)
			return
		}
		authed(w, r)
	})
}

type api struct{ o Options }

// auth requires `Authorization: Bearer TOKEN`, or for reads the status
// page's session cookie (session.go). With no token configured,
// everything it guards is refused outright rather than left open.
func (a *api) auth(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if a.o.Token == "" {
			httpError(w, http.StatusForbidden, "admin.token is not set in the config: this endpoint is disabled")
			return
		}
		if a.o.Live != nil && a.login(w, r) {
			return
		}
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if (!ok || subtle.ConstantTimeCompare([]byte(got), []byte(a.o.Token)) != 1) && !a.cookieAuth(r) {
			if a.o.Live != nil && wantsPage(r) {
				loginPage(w, http.StatusUnauthorized, "")
				return
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="edgehost"`)
			httpError(w, http.StatusUnauthorized, "missing or wrong token (Authorization: Bearer TOKEN)")
			return
		}
		h(w, r)
	}
}

// WriteError answers {"error": msg} with code: the admin API's errors,
// for the features' endpoints too.
func WriteError(w http.ResponseWriter, code int, msg string) { httpError(w, code, msg) }

// WriteJSON answers v as indented JSON.
func WriteJSON(w http.ResponseWriter, v any) { writeJSON(w, v) }

func httpError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]any{"error": msg})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// purgeKey turns a URL ("http://host/path?q", "host/path" or "/path" with
// host=) into a cache key (host + request target).
func purgeKey(r *http.Request) (string, error) {
	raw := r.URL.Query().Get("url")
	if raw == "" {
		return "", fmt.Errorf("url parameter required, e.g. /purge?url=http://example.com/path")
	}
	if !strings.Contains(raw, "://") && !strings.HasPrefix(raw, "/") {
		raw = "http://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("url %q: %v", raw, err)
	}
	host := u.Host
	if host == "" {
		host = r.URL.Query().Get("host")
	}
	if host == "" {
		return "", fmt.Errorf("url %q has no host: give a full URL or host=", raw)
	}
	return strings.ToLower(host) + u.RequestURI(), nil
}

func (a *api) purge(w http.ResponseWriter, r *http.Request) {
	key, err := purgeKey(r)
	if err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	n := a.o.Cache.Purge(key)
	a.o.Logger.Info("purge", "key", key, "objects", n)
	writeJSON(w, map[string]any{"purged": n, "key": key})
}

func (a *api) purgeTag(w http.ResponseWriter, r *http.Request) {
	tag := r.URL.Query().Get("tag")
	if tag == "" {
		httpError(w, http.StatusBadRequest, "tag parameter required")
		return
	}
	n := a.o.Cache.PurgeTag(tag)
	a.o.Logger.Info("purge by tag", "tag", tag, "objects", n)
	writeJSON(w, map[string]any{"purged": n, "tag": tag})
}

// maxBanBody bounds a ban expression sent in a request body.
const maxBanBody = 64 << 10

func (a *api) ban(w http.ResponseWriter, r *http.Request) {
	// Too long is refused, not cut: a ban cut short may match more than
	// the one sent (its last conditions lost).
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBanBody))
	if err != nil {
		code := http.StatusBadRequest
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			code = http.StatusRequestEntityTooLarge
			err = fmt.Errorf("ban expression longer than %d bytes", maxBanBody)
		}
		httpError(w, code, err.Error())
		return
	}
	expr := strings.TrimSpace(string(b))
	if expr == "" {
		expr = r.URL.Query().Get("expr")
	}
	if err := a.o.Cache.Ban(expr); err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	a.o.Logger.Info("ban added", "expr", expr)
	writeJSON(w, map[string]any{"banned": expr})
}

func (a *api) reload(w http.ResponseWriter, _ *http.Request) {
	if a.o.Reload == nil {
		httpError(w, http.StatusNotImplemented, "reload not available")
		return
	}
	if err := a.o.Reload(); err != nil {
		httpError(w, http.StatusUnprocessableEntity, err.Error())
		return
	}
	writeJSON(w, map[string]any{"reloaded": true})
}

func (a *api) status(w http.ResponseWriter, _ *http.Request) {
	st := map[string]any{"bans": a.o.Cache.Bans()}
	if a.o.Status != nil {
		for k, v := range a.o.Status() {
			st[k] = v
		}
	}
	writeJSON(w, st)
}
