// Package node runs one edgehost node: it builds the host's parts from a
// configuration (store, cache, plugins, features, server, admin), serves
// until its context ends, reloads on demand (SIGHUP, `edgehost reload`)
// and shuts the parts down in order. Package main only parses flags and
// calls Run.
//
// Lifecycle: Run = open (state dir, store, cache, plugins) → wire (the
// features attached to the server) → listen (public, self, admin) →
// serve (until ctx ends or a listener fails; SIGHUP reloads) → shutdown
// (admin, server, features, plugins, cache, store: the reverse order).
package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/edgehost/edgehost/host/admin"
	"github.com/edgehost/edgehost/host/cache"
	"github.com/edgehost/edgehost/host/compute"
	"github.com/edgehost/edgehost/host/config"
	"github.com/edgehost/edgehost/host/files"
	"github.com/edgehost/edgehost/host/observe"
	"github.com/edgehost/edgehost/host/pluginhost"
	"github.com/edgehost/edgehost/host/processors"
	"github.com/edgehost/edgehost/host/programs"
	"github.com/edgehost/edgehost/host/server"
	"github.com/edgehost/edgehost/host/slicing"
	"github.com/edgehost/edgehost/host/store"
)

// LoadConfig loads the config at path and prints its diagnostics (with
// file, line, column and the offending source) to stderr.
func LoadConfig(path string) (*config.Config, error) {
	cfg, diags := config.Load(path)
	if !diags.HasErrors() {
		diags = append(diags, processors.Diagnose(cfg)...)
	}
	if diags.HasErrors() {
		cfg.WriteDiagnostics(os.Stderr, diags)
		return nil, fmt.Errorf("%s: %d error(s)", path, len(diags.Errs()))
	}
	if len(diags) > 0 {
		cfg.WriteDiagnostics(os.Stderr, diags)
	}
	return cfg, nil
}

// Validate loads the config at path and checks what Run would refuse (issue
// 14): besides the config itself, each plugin's binary, pinned digest,
// start and settings (pluginhost.Manager.Validate). Diagnostics go to
// stderr with file, line and column. The binaries are pinned into a
// throwaway directory, never the config's state_dir.
func Validate(ctx context.Context, path string) error {
	cfg, err := LoadConfig(path)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "edgehost-validate-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	plugins := pluginhost.New(pluginhost.Options{StateDir: tmp, Logger: log, EvalContext: config.EvalContext()})
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	diags := plugins.Validate(ctx, pluginSpecs(cfg))
	plugins.Shutdown(ctx)
	if diags.HasErrors() {
		cfg.WriteDiagnostics(os.Stderr, diags)
		return fmt.Errorf("%s: %d error(s)", path, len(diags.Errs()))
	}
	return nil
}

// node is one running edgehost.
type node struct {
	path    string // the config file
	version string
	start   time.Time
	log     *slog.Logger

	store    *store.Store
	programs *programs.Store
	cache    *cache.Cache
	metrics  *observe.Metrics
	txlog    *observe.TxLog
	plugins  *pluginhost.Manager
	flights  *cache.Flights // fetches in progress: the server's and the slicer's
	files    *files.Files
	slicing  *slicing.Slicing
	compute  *compute.Compute
	srv      *server.Server

	processors *processors.Processors // body transforms per route (issue 16)

	reloadMu sync.Mutex
}

// Run serves the config at path until ctx ends.
func Run(ctx context.Context, path, version string) error {
	cfg, err := LoadConfig(path)
	if err != nil {
		return err
	}
	n := &node{path: path, version: version, start: time.Now(), log: newLogger(cfg)}
	slog.SetDefault(n.log)
	closeAll, err := n.open(ctx, cfg)
	defer closeAll()
	if err != nil {
		return err
	}
	if err := n.wire(cfg); err != nil {
		return err
	}
	return n.serve(ctx, cfg)
}

func newLogger(cfg *config.Config) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(cfg.Log.Level))
	opts := &slog.HandlerOptions{Level: lvl}
	if cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

// open opens the state: the store, the cache and the plugins. closeAll
// closes what was opened, in reverse order, even after an error.
func (n *node) open(ctx context.Context, cfg *config.Config) (closeAll func(), err error) {
	var closers []func()
	closeAll = func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	if err := os.MkdirAll(cfg.StateDir, 0o755); err != nil {
		return closeAll, fmt.Errorf("state_dir: %w", err)
	}
	n.store, err = store.Open(filepath.Join(cfg.StateDir, "cache.db"), store.Options{
		// cache.db is rebuildable: no fsync per write (the store moves a
		// file left by a machine crash aside).
		MaxBytes: cfg.Storage.Disk, Timeout: 2 * time.Second, NoSync: true, Logger: n.log.With("component", "store"),
	})
	if err != nil {
		return closeAll, err
	}
	closers = append(closers, func() { n.store.Close() })
	// programs.db is the source of truth (fsync on every write); a damaged
	// one stops the start, naming the file.
	n.programs, err = programs.Open(cfg.StateDir, programs.Options{
		MaxSize: cfg.Storage.MaxProgram, KeepBinaries: cfg.Storage.KeepPrograms, Logger: n.log.With("component", "programs")})
	if err != nil {
		return closeAll, err
	}
	closers = append(closers, func() { n.programs.Close() })

	n.metrics = &observe.Metrics{}
	n.metrics.GaugeFunc("edgehost_disk_objects", "Objects in the disk tier (cache.db).", func() float64 { return float64(n.store.Stats().Objects) })
	n.metrics.GaugeFunc("edgehost_disk_bytes", "Bytes of objects in the disk tier (cache.db).", func() float64 { return float64(n.store.Stats().Bytes) })
	n.metrics.CounterFunc("edgehost_disk_evictions_total", "Objects evicted from the disk tier to keep it under storage.disk.", func() float64 { return float64(n.store.Stats().Evictions) })
	n.txlog = observe.NewTxLog(4096)
	n.cache = cache.New(cache.Options{MemoryBytes: cfg.Storage.Memory, Store: n.store, Metrics: n.metrics, Logger: n.log.With("component", "cache")})
	n.metrics.GaugeFunc("edgehost_bans_active", "Bans in the ban list (edgehost ban …).", func() float64 { return float64(len(n.cache.Bans())) })
	n.metrics.GaugeFunc("edgehost_cache_write_queue", "Objects waiting for the cache's writer to put them into cache.db.", func() float64 { return float64(n.cache.Pending()) })
	setMemoryLimit(cfg.Storage.Memory, n.log)
	// The cache's writer outlives the signal: Close flushes it after the
	// listeners have stopped.
	if err := n.cache.Start(context.Background()); err != nil {
		return closeAll, err
	}
	closers = append(closers, n.cache.Close)

	n.plugins = pluginhost.New(pluginhost.Options{StateDir: cfg.StateDir, Logger: n.log.With("component", "plugins"), EvalContext: config.EvalContext(),
		Adjust: n.programs.Adjust})
	closers = append(closers, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		n.plugins.Shutdown(sctx)
	})
	if err := n.loadPlugins(ctx, cfg); err != nil {
		return closeAll, fmt.Errorf("plugins failed to start: %w", err)
	}
	if err := n.metrics.Register(n.plugins.Collector()); err != nil {
		return closeAll, fmt.Errorf("plugin metrics: %w", err)
	}
	if err := n.metrics.Register(newTenantCollector(n)); err != nil {
		return closeAll, fmt.Errorf("tenant metrics: %w", err)
	}

	// The features outlive the server (its Shutdown comes first) and go
	// before the plugins they call.
	n.files = files.New(files.Options{Logger: n.log, Cache: n.cache, Metrics: n.metrics, TxLog: n.txlog, Plugins: n.plugins})
	closers = append(closers, n.files.Close)
	n.flights = &cache.Flights{}
	n.slicing = slicing.New(slicing.Options{Logger: n.log, Cache: n.cache, Flights: n.flights, Metrics: n.metrics, TxLog: n.txlog, Plugins: n.plugins})
	closers = append(closers, n.slicing.Close)
	n.processors = processors.New(processors.Options{Logger: n.log, Plugins: n.plugins})
	closers = append(closers, n.processors.Close)
	n.compute = compute.New(compute.Options{Logger: n.log, Plugins: n.plugins})
	return closeAll, nil
}

// wire builds the server with the features attached (host/server
// feature.go) and waits for the file readers' first state.
func (n *node) wire(cfg *config.Config) error {
	var err error
	n.srv, err = server.New(cfg, server.Options{Logger: n.log, Cache: n.cache, Metrics: n.metrics, TxLog: n.txlog,
		Flights: n.flights, Features: []server.Feature{n.files, n.slicing, n.compute, n.processors}})
	if err != nil {
		return err
	}
	if err := n.files.Watch(cfg, 5*time.Second); err != nil {
		n.log.Warn("file readers", "err", err)
	}
	n.metrics.GaugeFunc("edgehost_file_readers", "File readers of the config (file feature).", func() float64 { r, _ := n.files.FileCounts(); return float64(r) })
	n.metrics.GaugeFunc("edgehost_file_readers_failing", "File readers that cannot serve (no good content yet).", func() float64 { _, f := n.files.FileCounts(); return float64(f) })
	return nil
}

// serve listens and serves until ctx ends or a listener fails, reloading
// on SIGHUP, then shuts the listeners down.
func (n *node) serve(ctx context.Context, cfg *config.Config) error {
	public, self, err := n.srv.Listen()
	if err != nil {
		return err
	}
	adminLn, err := net.Listen("tcp", cfg.Listen.Admin)
	if err != nil {
		public.Close()
		self.Close()
		return fmt.Errorf("listen.admin: %w", err)
	}
	live := n.live()
	live.Start()
	defer live.Close()
	adminSrv := &http.Server{Handler: n.adminHandler(cfg, live), ReadHeaderTimeout: 10 * time.Second}
	pidFile := filepath.Join(cfg.StateDir, "edgehost.pid")
	os.WriteFile(pidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644)
	defer os.Remove(pidFile)

	errc := make(chan error, 2)
	go func() { errc <- n.srv.Serve(public, self) }()
	go func() {
		if err := adminSrv.Serve(adminLn); !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("admin: %w", err)
		}
	}()
	n.log.Info("edgehost ready", "version", n.version, "http", public.Addr().String(), "self", cfg.Listen.Self,
		"admin", adminLn.Addr().String(), "state_dir", cfg.StateDir, "startup", time.Since(n.start).Round(time.Microsecond).String())

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-hup:
			_ = n.reload()
			continue
		case err = <-errc:
		case <-ctx.Done():
		}
		break
	}
	n.log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	adminSrv.Shutdown(sctx)
	if serr := n.srv.Shutdown(sctx); serr != nil && err == nil {
		n.log.Warn("shutdown", "err", serr)
	}
	return err
}

// adminHandler is the admin API of the node.
func (n *node) adminHandler(cfg *config.Config, live *admin.Live) http.Handler {
	return admin.Handler(admin.Options{
		Token: cfg.Admin.Token, PublicMetrics: cfg.Admin.PublicMetrics, Cache: n.cache, Metrics: n.metrics, TxLog: n.txlog, Logger: n.log.With("component", "admin"),
		Reload:  n.reload,
		Plugins: n.plugins.AdminHandler(cfg.Admin.Token),
		Extra:   n.adminExtra(),
		Live:    live,
		Status: func() map[string]any {
			objs, bytes := n.cache.Stats()
			return map[string]any{
				"version": n.version, "config": n.path, "uptime": time.Since(n.start).Round(time.Second).String(),
				"memory":   map[string]any{"objects": objs, "bytes": bytes, "budget": n.srv.Config().Storage.Memory},
				"disk":     n.store.Stats(),
				"backends": n.srv.Backends(),
			}
		},
	})
}

// adminExtra are the features' admin endpoints: GET /files, POST
// /files/NAME/check (files), /tenants… (programs.go).
func (n *node) adminExtra() map[string]http.Handler {
	extra := n.files.AdminHandlers()
	for p, h := range n.programHandlers() {
		extra[p] = h
	}
	return extra
}

// reload loads the config file again and swaps it in: plugins first (a
// plugin that fails its checks keeps its old instance), then the server,
// then the file readers. Any failure leaves the old config serving.
func (n *node) reload() error {
	n.reloadMu.Lock()
	defer n.reloadMu.Unlock()
	next, diags := config.Load(n.path)
	if diags.HasErrors() {
		next.WriteDiagnostics(os.Stderr, diags)
		n.log.Error("reload rejected: config has errors; the old config keeps serving", "config", n.path, "errors", diags.Error())
		return fmt.Errorf("config has errors: %s", diags.Error())
	}
	if next.Storage != n.srv.Config().Storage || next.StateDir != n.srv.Config().StateDir {
		n.log.Warn("storage and state_dir changes take effect at the next restart")
	}
	if err := n.loadPlugins(context.Background(), next); err != nil {
		n.log.Error("reload rejected: plugins failed; the old config keeps serving", "errors", err)
		return err
	}
	if err := n.srv.Reload(next); err != nil {
		n.log.Error("reload failed; the old config keeps serving", "err", err)
		return err
	}
	if err := n.files.Watch(next, 5*time.Second); err != nil {
		n.log.Warn("file readers", "err", err)
	}
	n.log.Info("config reloaded", "config", n.path)
	return nil
}

// pluginSpecs turns the config's plugin blocks into the manager's specs.
func pluginSpecs(cfg *config.Config) []pluginhost.Spec {
	var specs []pluginhost.Spec
	for _, p := range cfg.Plugins {
		specs = append(specs, pluginhost.Spec{Name: p.Name, Path: p.Path, SHA256: p.SHA256, Body: p.Body,
			DefRange: p.DeclRange, PathRange: p.PathRange, SHA256Range: p.SHA256Range, Env: p.Env})
	}
	return specs
}
