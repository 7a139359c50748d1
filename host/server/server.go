// Package server is edgehost's request state machine and its listeners: the
// public HTTP/1.1 listener, the self-request Unix socket (the same state
// machine, with requests marked as subrequests) and the plumbing to swap a
// new configuration in without dropping a connection.
//
// A request's way (DESIGN §2), one file per step:
//
//	recv (request.go) ─ route (route.go) ─┬─ synth ───────────────────────────► deliver
//	                                      ├─ pass, unsafe (pass.go) ─────────► stream
//	                                      ├─ source ─ lookup ─ miss ─ source ─ store ─► deliver
//	                                      └─ lookup (lookup.go) ─┬─ hit ─────► deliver
//	                                                             ├─ grace ─ (background revalidation) ─► deliver
//	                                                             └─ miss ─ coalesce ─► fetch ─► store ─► deliver (fetch.go)
//
// deliver (deliver.go) = conditional (304) → range (206/416) → client; a
// fresh hit takes the h1 fast path (fast.go). The hit path makes no plugin
// call and no bbolt write. Every handler returns an error, which fail
// (errors.go) turns into the response.
//
// Features (host/files, host/slicing) attach through the interfaces of
// feature.go, compiled into each route once per config: this package
// imports none of them. docs/architecture.md draws the whole map.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgehost/edgehost/host/backend"
	"github.com/edgehost/edgehost/host/cache"
	"github.com/edgehost/edgehost/host/config"
	"github.com/edgehost/edgehost/host/h1"
	"github.com/edgehost/edgehost/host/observe"
	"github.com/edgehost/edgehost/host/selfsock"
)

// Headers owned by the host: stripped from client input on the public
// listener, trusted on the self socket (DESIGN §5).
const (
	HeaderDepth  = "Edgehost-Depth"
	HeaderParent = "Edgehost-Parent"
)

// Server runs the listeners and the state machine.
type Server struct {
	log     *slog.Logger
	cache   *cache.Cache
	metrics *observe.Metrics
	txlog   *observe.TxLog
	flights *cache.Flights

	// What features add at fixed points (feature.go), found once in New.
	features []Feature
	pages    []ErrorPages
	fast     FastResponder
	vars     RequestVars
	kinds    map[uint8]Delivery
	subs     []subrequests

	rt atomic.Pointer[runtime]

	selfSem chan struct{}
	hfm     sync.Map // key → time.Time: hit-for-miss markers (uncacheable keys)

	ctx    context.Context
	cancel context.CancelFunc
	bg     sync.WaitGroup

	mu     sync.Mutex // guards public and self
	public *h1.Server
	self   *http.Server
}

// subrequests is a feature's kind of subrequest with its header.
type subrequests struct {
	Subrequests
	header, kind string
}

// runtime is one configuration compiled for serving: immutable, swapped
// atomically on reload.
type runtime struct {
	s        *Server // the transactions' way back to their server
	cfg      *config.Config
	routes   []*route
	noRoute  *observe.RouteObservers // requests that no route matched
	backends map[string]*backend.Backend
}

// route is a config route compiled: its handler and the steps that
// features attach to it.
type route struct {
	*config.Route
	backend *backend.Backend
	handle  func(*Txn, *http.Request) error
	source  Source    // a feature's source of whole objects (a static root)
	fetch   FetchStep // a feature's part in the backend's fetch (the slicer)
	deliver DeliverStep
	obs     *observe.RouteObservers // edgehost_request_duration_seconds of the route, by cache status
}

// Options construct a Server.
type Options struct {
	Logger  *slog.Logger
	Cache   *cache.Cache
	Metrics *observe.Metrics
	TxLog   *observe.TxLog
	Flights *cache.Flights // fetches in progress, shared with features; nil: the server's own
	// Features attach to the routes (host/files, host/slicing …).
	Features []Feature
}

// New returns a server for cfg; nothing listens until Serve.
func New(cfg *config.Config, opts Options) (*Server, error) {
	s := &Server{log: opts.Logger, cache: opts.Cache, metrics: opts.Metrics, txlog: opts.TxLog, flights: opts.Flights}
	if s.flights == nil {
		s.flights = &cache.Flights{}
	}
	s.useFeatures(opts.Features)
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.metrics == nil {
		s.metrics = &observe.Metrics{}
	}
	if s.txlog == nil {
		s.txlog = observe.NewTxLog(1024)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.selfSem = make(chan struct{}, cfg.Limits.SelfConcurrency)
	rt, err := s.compile(cfg)
	if err != nil {
		return nil, err
	}
	s.rt.Store(rt)
	return s, nil
}

// useFeatures finds what each feature adds at the fixed points.
func (s *Server) useFeatures(fs []Feature) {
	s.features = fs
	s.kinds = map[uint8]Delivery{}
	for _, f := range fs {
		if p, ok := f.(ErrorPages); ok {
			s.pages = append(s.pages, p)
		}
		if p, ok := f.(FastResponder); ok {
			s.fast = p
		}
		if p, ok := f.(RequestVars); ok {
			s.vars = p
		}
		if p, ok := f.(KindDelivery); ok {
			s.kinds[p.Kind()] = p
		}
		if p, ok := f.(Subrequests); ok {
			h, kind := p.Subrequest()
			s.subs = append(s.subs, subrequests{Subrequests: p, header: h, kind: kind})
		}
	}
}

func (s *Server) compile(cfg *config.Config) (*runtime, error) {
	rt := &runtime{s: s, cfg: cfg, backends: map[string]*backend.Backend{}, noRoute: s.metrics.RouteObservers(noRouteLabel)}
	for name, bc := range cfg.Backends {
		c := backend.Config{
			Name: name, URL: bc.URL, HostHeader: bc.HostHeader,
			ConnectTimeout: bc.ConnectTimeout, FirstByteTimeout: bc.FirstByteTimeout,
			BetweenBytesTimeout: bc.BetweenBytesTimeout, MaxConns: bc.MaxConns,
			FetchObserver: s.metrics.OriginObserver(name), Errors: s.metrics.OriginErrorCounter(name),
		}
		if p := bc.Probe; p != nil {
			c.Probe = &backend.Probe{Path: p.Path, Interval: p.Interval, Timeout: p.Timeout,
				Window: p.Window, Threshold: p.Threshold, ExpectStatus: p.ExpectStatus}
		}
		b, err := backend.New(c, s.log.With("backend", name))
		if err != nil {
			for _, b := range rt.backends {
				b.Close()
			}
			return nil, fmt.Errorf("backend %q: %w", name, err)
		}
		rt.backends[name] = b
	}
	for _, c := range cfg.Routes {
		r, err := s.compileRoute(rt, c)
		if err != nil {
			for _, b := range rt.backends {
				b.Close()
			}
			return nil, err
		}
		rt.routes = append(rt.routes, r)
	}
	for _, b := range rt.backends {
		b.Start(s.ctx)
	}
	return rt, nil
}

// Config returns the configuration being served.
func (s *Server) Config() *config.Config { return s.rt.Load().cfg }

// Reload swaps cfg in. Listener addresses cannot change without a restart;
// everything else (routes, backends, TTLs) takes effect for new requests,
// while requests in flight finish on the old backends.
func (s *Server) Reload(cfg *config.Config) error {
	old := s.rt.Load()
	if cfg.Listen != old.cfg.Listen {
		s.log.Warn("listen addresses changed: restart edgehost to apply them", "old", old.cfg.Listen, "new", cfg.Listen)
	}
	rt, err := s.compile(cfg)
	if err != nil {
		return err
	}
	s.rt.Store(rt)
	s.metrics.ForgetRoutes(rt.routeLabels())
	// Requests that already hold the old runtime finish within the
	// backends' timeouts; close the old pools after that.
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		select {
		case <-time.After(2 * time.Minute):
		case <-s.ctx.Done():
		}
		for _, b := range old.backends {
			b.Close()
		}
	}()
	return nil
}

// Backends reports every backend of the current config.
func (s *Server) Backends() map[string]backend.Stats {
	out := map[string]backend.Stats{}
	for n, b := range s.rt.Load().backends {
		out[n] = b.Stats()
	}
	return out
}

// Listen opens the public and self listeners (so that errors such as a port
// in use are reported before anything is served).
func (s *Server) Listen() (public, self net.Listener, err error) {
	cfg := s.rt.Load().cfg
	public, err = net.Listen("tcp", cfg.Listen.HTTP)
	if err != nil {
		return nil, nil, fmt.Errorf("listen.http: %w", err)
	}
	sock := cfg.Listen.Self
	if err := os.MkdirAll(filepath.Dir(sock), 0o755); err != nil {
		public.Close()
		return nil, nil, fmt.Errorf("listen.self: %w", err)
	}
	// A socket left by a previous run (kill -9) is removed, but only when
	// nothing answers on it: two edgehosts must not share a state dir.
	if c, err := net.DialTimeout("unix", sock, 200*time.Millisecond); err == nil {
		c.Close()
		public.Close()
		return nil, nil, fmt.Errorf("listen.self: %s is in use by another process", sock)
	}
	os.Remove(sock)
	self, err = selfsock.Listen(sock, selfsock.Options{Group: cfg.Listen.SelfGroup, Logger: s.log, Refused: &s.metrics.SelfRefused})
	if err != nil {
		public.Close()
		return nil, nil, fmt.Errorf("listen.self: %w", err)
	}
	return public, self, nil
}

// Serve serves on the listeners until Shutdown.
func (s *Server) Serve(public, self net.Listener) error {
	cfg := s.rt.Load().cfg
	mk := func(h http.Handler) *http.Server {
		return &http.Server{
			Handler:           h,
			ReadHeaderTimeout: cfg.Limits.HeaderTimeout,
			IdleTimeout:       cfg.Limits.IdleTimeout,
			MaxHeaderBytes:    cfg.Limits.MaxHeaderBytes,
			ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
			ConnState:         s.connState,
		}
	}
	pub := &h1.Server{
		Handler:        http.HandlerFunc(s.servePublic),
		Fast:           s.fastHit,
		MaxHeaderBytes: cfg.Limits.MaxHeaderBytes,
		HeaderTimeout:  cfg.Limits.HeaderTimeout,
		IdleTimeout:    cfg.Limits.IdleTimeout,
		WriteTimeout:   cfg.Limits.SendTimeout,
		MaxConns:       cfg.Limits.MaxConnections,
		AcceptErrors:   &s.metrics.AcceptErrors,
		Shed:           &s.metrics.ConnsShed,
		ConnState:      s.connState,
		Logger:         s.log,
		BaseContext:    s.ctx,
	}
	s.mu.Lock()
	s.public, s.self = pub, mk(http.HandlerFunc(s.serveSelf))
	s.mu.Unlock()
	s.bg.Add(1)
	go s.sweepHitForMiss()
	errc := make(chan error, 2)
	go func() { errc <- pub.Serve(public) }()
	go func() { errc <- s.self.Serve(self) }()
	err := <-errc
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

func (s *Server) connState(_ net.Conn, st http.ConnState) {
	switch st {
	case http.StateNew:
		s.metrics.ActiveConns.Add(1)
	case http.StateClosed, http.StateHijacked:
		s.metrics.ActiveConns.Add(-1)
	}
}

// Shutdown stops accepting, lets requests in flight finish until ctx ends,
// then stops background work.
func (s *Server) Shutdown(ctx context.Context) error {
	var err error
	s.mu.Lock()
	pub, self := s.public, s.self
	s.mu.Unlock()
	if pub != nil {
		err = pub.Shutdown(ctx)
	}
	if self != nil {
		if e := self.Shutdown(ctx); e != nil && err == nil {
			err = e
		}
	}
	s.cancel()
	s.bg.Wait()
	for _, b := range s.rt.Load().backends {
		b.Close()
	}
	if sock := s.rt.Load().cfg.Listen.Self; sock != "" {
		os.Remove(sock)
	}
	return err
}

// sweepHitForMiss forgets expired hit-for-miss markers once a minute, so
// that unique uncacheable URLs do not pile up.
func (s *Server) sweepHitForMiss() {
	defer s.bg.Done()
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case now := <-tick.C:
			s.hfm.Range(func(k, v any) bool {
				if !now.Before(v.(time.Time)) {
					s.hfm.Delete(k)
				}
				return true
			})
		}
	}
}
