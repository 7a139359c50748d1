// Package pluginhost runs edgehost's plugins (DESIGN §4, STYLE 11–12): it
// starts each configured plugin as a go-plugin subprocess, keeps it alive,
// swaps it for a new binary without dropping a call, and stops it with the
// host.
//
// Lifecycle of the Manager: New (no side effects) → Load (start every
// plugin; HCL diagnostics for what fails) → serve (feature code calls
// plugins through Slicer, File, Compute, Processor; the admin API calls
// Status, Reload, ReloadAll; Metrics) → Shutdown (every plugin asked to
// stop, killed after the grace period). Load may be called again with a
// new configuration: changed plugins are swapped, removed ones stopped.
//
// A plugin's life:
//
//   - Its binary (the block's path, or edgehost-plugin-NAME beside the host)
//     is copied to StateDir/plugins/<sha256>/, hashed while copied; the
//     digest must match the block's sha256 when one is set. The copy is
//     what runs (go-plugin checks its digest once more right before exec),
//     so overwriting the configured file changes nothing until a reload.
//   - It runs with gRPC only, AutoMTLS, none of the host's environment
//     (only Spec.Env and the handshake's variables), its hclog output
//     folded into the host's slog logger under plugin=NAME, and a lifeline
//     pipe that tells it when the host is gone (even after kill -9).
//   - Start = launch, Info (protocol version), decode the block against the
//     schema from Info, Configure, Health. Only an instance that passed all
//     of them serves.
//   - Liveness: the instance's exit is noticed within ~50 ms, a failed
//     health check (two in a row) counts as a crash. One supervisor
//     goroutine per plugin relaunches it (so relaunches are single-flight),
//     with a new go-plugin client each time and exponential backoff from
//     BackoffMin to BackoffMax. While no instance runs, calls fail at once
//     with ErrUnavailable and the reason; idempotent calls that were cut by
//     the crash wait for the relaunch (RetryWait) and are retried once.
//   - Swap (Reload): the current binary is started beside the running
//     instance and checked like a first start; only then do new calls go to
//     it. Watch streams move to it at once; in-flight calls finish on the
//     old instance (DrainTimeout), which is then stopped. A binary that
//     fails a check is reported and the old instance keeps serving.
//
// Wiring in the host:
//
//	m := pluginhost.New(pluginhost.Options{StateDir: cfg.StateDir, Logger: log, EvalContext: base})
//	specs := []pluginhost.Spec{{Name: p.Name, Path: p.Path, SHA256: p.SHA256, Body: p.Body, DefRange: p.DeclRange}}
//	if diags := m.Load(ctx, specs); diags.HasErrors() { … print, exit … }
//	admin: /plugins and /plugins/ → m.AdminHandler(token); /metrics → m.Metrics(w)
//	SIGHUP / edgehost reload: m.Load(ctx, newSpecs) (changed plugins swap), or m.ReloadAll(ctx)
//	miss path: s, err := m.Slicer(name); resp, err := s.Decide(ctx, req)
//	           errors.Is(err, pluginhost.ErrUnavailable) → 503 with err's text
//	shutdown:  m.Shutdown(ctx) after the listeners stop
package pluginhost

import (
	"errors"
	"log/slog"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// Errors returned by the Manager and the plugin handles.
var (
	// ErrUnavailable means the plugin has no running instance (it crashed
	// and is being relaunched, or it is stopped). The wrapping error says
	// which plugin and why; the host answers 503.
	ErrUnavailable = errors.New("plugin unavailable")
	// ErrUnknownPlugin means no plugin of that name is loaded.
	ErrUnknownPlugin = errors.New("unknown plugin")
	// ErrNoService means the plugin does not serve the feature asked for.
	ErrNoService = errors.New("plugin does not serve this feature")
	// ErrChecksum means a plugin binary's sha256 is not the one configured.
	ErrChecksum = errors.New("plugin binary checksum mismatch")
	// ErrProtocol means a plugin speaks another plugin protocol version.
	ErrProtocol = errors.New("plugin protocol version mismatch")
	// ErrShutdown means the Manager has been shut down.
	ErrShutdown = errors.New("plugin manager shut down")
)

// Spec is one `plugin "NAME" { path = "…"  sha256 = "…"  … }` block, as the
// host's config loader hands it over.
type Spec struct {
	// Name is the block's label; plugins are called by it.
	Name string
	// Path is the plugin binary; "" means edgehost-plugin-NAME in
	// Options.BinDir. A relative path is taken from the working directory
	// (the config loader resolves it against the config file).
	Path string
	// SHA256 pins the binary's digest (hex); "" pins nothing (the digest of
	// what runs is still recorded and shown).
	SHA256 string
	// Body holds the plugin's own settings (the block without path, sha256
	// and env); it is decoded against the schema that the plugin declares
	// in Info, with Options.EvalContext. Nil means an empty block.
	Body hcl.Body
	// DefRange is the block's header, PathRange and SHA256Range its
	// attributes (zero when absent): diagnostics point at them.
	DefRange    hcl.Range
	PathRange   hcl.Range
	SHA256Range hcl.Range
	// Env is the plugin's whole environment ("KEY=value"). No plugin
	// inherits the host's environment (it may hold the admin token, and
	// compute must see none of it); nil means an empty one.
	Env []string
}

// Options configure a Manager. Zero durations take the defaults shown.
type Options struct {
	// StateDir holds the content-addressed plugin binaries (StateDir/
	// plugins/<sha256>/) and each plugin's own directory (StateDir/
	// plugin-data/NAME/, passed in Configure). "" means a directory under
	// os.TempDir().
	StateDir string
	// BinDir is where binaries of blocks without path are found: ""
	// means the directory of the host's executable.
	BinDir string
	// Logger receives the manager's and the plugins' logs (nil: slog's
	// default logger).
	Logger *slog.Logger
	// EvalContext evaluates plugin blocks (variables, functions).
	EvalContext *hcl.EvalContext
	// Adjust, when set, rewrites a plugin's decoded settings before they
	// are sent (and compared, on a reload): the host puts the programs of
	// programs.db in the compute plugin's tenant blocks with it (issue 12).
	Adjust func(plugin string, cfg cty.Value) (cty.Value, error)

	StartTimeout   time.Duration // launch up to the handshake: 10s
	CallTimeout    time.Duration // Info, Configure, Shutdown: 10s
	HealthInterval time.Duration // between health checks: 2s
	HealthTimeout  time.Duration // one health check: 2s
	DrainTimeout   time.Duration // in-flight calls on a swapped-out instance: 30s
	ShutdownGrace  time.Duration // Shutdown RPC before the kill: 5s
	RetryWait      time.Duration // an idempotent call waits this long for a relaunch: 3s
	BackoffMin     time.Duration // second relaunch in a row waits this: 250ms
	BackoffMax     time.Duration // cap of the backoff: 30s

	// disableLifeline leaves out the lifeline pipe, so that tests can check
	// the plugin's parent-pid watchdog alone.
	disableLifeline bool
}

func (o *Options) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.StartTimeout, 10*time.Second)
	def(&o.CallTimeout, 10*time.Second)
	def(&o.HealthInterval, 2*time.Second)
	def(&o.HealthTimeout, 2*time.Second)
	def(&o.DrainTimeout, 30*time.Second)
	def(&o.ShutdownGrace, 5*time.Second)
	def(&o.RetryWait, 3*time.Second)
	def(&o.BackoffMin, 250*time.Millisecond)
	def(&o.BackoffMax, 30*time.Second)
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// States of a plugin, as Status reports them.
const (
	StateStarting   = "starting"   // first start in progress
	StateRunning    = "running"    // an instance serves
	StateRestarting = "restarting" // crashed; being relaunched
	StateStopped    = "stopped"    // shut down
)
