package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
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
	"github.com/edgehost/edgehost/host/config"
	"github.com/edgehost/edgehost/host/demoorigin"
	"github.com/edgehost/edgehost/host/files"
	"github.com/edgehost/edgehost/host/observe"
	"github.com/edgehost/edgehost/host/pluginhost"
	"github.com/edgehost/edgehost/host/server"
	"github.com/edgehost/edgehost/host/slicing"
	"github.com/edgehost/edgehost/host/store"
)

func loadConfig(path string) (*config.Config, error) {
	cfg, diags := config.Load(path)
	if diags.HasErrors() {
		cfg.WriteDiagnostics(os.Stderr, diags)
		return nil, fmt.Errorf("%s: %d error(s)", path, len(diags.Errs()))
	}
	if len(diags) > 0 {
		cfg.WriteDiagnostics(os.Stderr, diags)
	}
	return cfg, nil
}

func cmdValidate(args []string) error {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	path := fs.String("config", "config.hcl", "config file")
	if err := fs.Parse(args); err != nil {
		return usageError{}
	}
	if _, err := loadConfig(*path); err != nil {
		return err
	}
	fmt.Printf("%s: ok\n", *path)
	return nil
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

func cmdRun(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	path := fs.String("config", "config.hcl", "config file")
	if err := fs.Parse(args); err != nil {
		return usageError{}
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	log := newLogger(cfg)
	slog.SetDefault(log)
	start := time.Now()

	if err := os.MkdirAll(cfg.StateDir, 0o755); err != nil {
		return fmt.Errorf("state_dir: %w", err)
	}
	st, err := store.Open(filepath.Join(cfg.StateDir, "cache.db"), store.Options{
		// cache.db is rebuildable: no fsync per write (the store moves a
		// file left by a machine crash aside).
		MaxBytes: cfg.Storage.Disk, Timeout: 2 * time.Second, NoSync: true, Logger: log.With("component", "store"),
	})
	if err != nil {
		return err
	}
	defer st.Close()

	metrics := &observe.Metrics{}
	metrics.Gauge("edgehost_disk_objects", func() float64 { return float64(st.Stats().Objects) })
	metrics.Gauge("edgehost_disk_bytes", func() float64 { return float64(st.Stats().Bytes) })
	metrics.Gauge("edgehost_disk_evictions", func() float64 { return float64(st.Stats().Evictions) })
	txlog := observe.NewTxLog(4096)
	c := cache.New(cache.Options{MemoryBytes: cfg.Storage.Memory, Store: st, Metrics: metrics, Logger: log.With("component", "cache")})
	// The cache's writer outlives the signal: Close flushes it after the
	// listeners have stopped.
	if err := c.Start(context.Background()); err != nil {
		return err
	}
	defer c.Close()

	plugins := pluginhost.New(pluginhost.Options{StateDir: cfg.StateDir, Logger: log.With("component", "plugins"), EvalContext: config.EvalContext()})
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		plugins.Shutdown(sctx)
	}()
	if diags := plugins.Load(ctx, pluginSpecs(cfg)); diags.HasErrors() {
		cfg.WriteDiagnostics(os.Stderr, diags)
		return fmt.Errorf("plugins failed to start")
	}
	metrics.Extra(plugins.Metrics)

	// The features attach to the server's routes (host/server feature.go).
	flights := &cache.Flights{}
	fileFeature := files.New(files.Options{Logger: log, Cache: c, Metrics: metrics, TxLog: txlog, Plugins: plugins})
	defer fileFeature.Close()
	sliceFeature := slicing.New(slicing.Options{Logger: log, Cache: c, Flights: flights, Metrics: metrics, TxLog: txlog, Plugins: plugins})
	defer sliceFeature.Close()
	srv, err := server.New(cfg, server.Options{Logger: log, Cache: c, Metrics: metrics, TxLog: txlog, Flights: flights,
		Features: []server.Feature{fileFeature, sliceFeature}})
	if err != nil {
		return err
	}
	// File readers: follow the file plugins and wait for their first state.
	if err := fileFeature.Watch(cfg, 5*time.Second); err != nil {
		log.Warn("file readers", "err", err)
	}
	metrics.Gauge("edgehost_file_readers", func() float64 { n, _ := fileFeature.FileCounts(); return float64(n) })
	metrics.Gauge("edgehost_file_readers_failing", func() float64 { _, n := fileFeature.FileCounts(); return float64(n) })
	public, self, err := srv.Listen()
	if err != nil {
		return err
	}
	adminLn, err := net.Listen("tcp", cfg.Listen.Admin)
	if err != nil {
		public.Close()
		self.Close()
		return fmt.Errorf("listen.admin: %w", err)
	}

	var reloadMu sync.Mutex
	reload := func() error {
		reloadMu.Lock()
		defer reloadMu.Unlock()
		next, diags := config.Load(*path)
		if diags.HasErrors() {
			next.WriteDiagnostics(os.Stderr, diags)
			log.Error("reload rejected: config has errors; the old config keeps serving", "config", *path, "errors", diags.Error())
			return fmt.Errorf("config has errors: %s", diags.Error())
		}
		if next.Storage != srv.Config().Storage || next.StateDir != srv.Config().StateDir {
			log.Warn("storage and state_dir changes take effect at the next restart")
		}
		// Plugins first: a plugin that fails its checks keeps its old
		// instance, and the old config keeps serving.
		if diags := plugins.Load(context.Background(), pluginSpecs(next)); diags.HasErrors() {
			next.WriteDiagnostics(os.Stderr, diags)
			log.Error("reload rejected: plugins failed; the old config keeps serving", "errors", diags.Error())
			return fmt.Errorf("plugins: %s", diags.Error())
		}
		if err := srv.Reload(next); err != nil {
			log.Error("reload failed; the old config keeps serving", "err", err)
			return err
		}
		if err := fileFeature.Watch(next, 5*time.Second); err != nil {
			log.Warn("file readers", "err", err)
		}
		log.Info("config reloaded", "config", *path)
		return nil
	}

	adminSrv := &http.Server{
		Handler: admin.Handler(admin.Options{
			Token: cfg.Admin.Token, Cache: c, Metrics: metrics, TxLog: txlog, Logger: log.With("component", "admin"),
			Reload:  reload,
			Plugins: plugins.AdminHandler(cfg.Admin.Token),
			Extra:   fileFeature.AdminHandlers(), // GET /files, POST /files/NAME/check
			Status: func() map[string]any {
				objs, bytes := c.Stats()
				return map[string]any{
					"version": version, "config": *path, "uptime": time.Since(start).Round(time.Second).String(),
					"memory":   map[string]any{"objects": objs, "bytes": bytes, "budget": srv.Config().Storage.Memory},
					"disk":     st.Stats(),
					"backends": srv.Backends(),
				}
			},
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	pidFile := filepath.Join(cfg.StateDir, "edgehost.pid")
	os.WriteFile(pidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644)
	defer os.Remove(pidFile)

	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(public, self) }()
	go func() {
		if err := adminSrv.Serve(adminLn); !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("admin: %w", err)
		}
	}()
	log.Info("edgehost ready", "version", version, "http", public.Addr().String(), "self", cfg.Listen.Self,
		"admin", adminLn.Addr().String(), "state_dir", cfg.StateDir, "startup", time.Since(start).Round(time.Microsecond).String())

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-hup:
			_ = reload()
			continue
		case err = <-errc:
		case <-ctx.Done():
		}
		break
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	adminSrv.Shutdown(sctx)
	if serr := srv.Shutdown(sctx); serr != nil && err == nil {
		log.Warn("shutdown", "err", serr)
	}
	return err
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

func cmdDemoOrigin(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("demo-origin", flag.ContinueOnError)
	addr := fs.String("listen", "127.0.0.1:18081", "address to listen on")
	if err := fs.Parse(args); err != nil {
		return usageError{}
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: demoorigin.New(log), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	log.Info("demo origin ready", "listen", ln.Addr().String())
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
