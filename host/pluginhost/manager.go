package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/zclconf/go-cty/cty"

	"github.com/edgehost/edgehost/plugins/pluginapi"
)

// Manager runs the configured plugins. Its methods are safe for concurrent
// use.
type Manager struct {
	opts Options
	log  *slog.Logger

	ctx    context.Context // ends the supervisors
	cancel context.CancelFunc
	wg     sync.WaitGroup // supervisors
	bg     sync.WaitGroup // stops of crashed instances

	mu      sync.RWMutex
	plugins map[string]*managed
	closed  bool

	pruneOnce sync.Once
	meters    meters
}

// New returns a Manager; it starts nothing.
func New(opts Options) *Manager {
	opts.setDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	return &Manager{
		opts:    opts,
		log:     opts.Logger,
		ctx:     ctx,
		cancel:  cancel,
		plugins: map[string]*managed{},
		meters:  newMeters(),
	}
}

// managed is one configured plugin across its instances.
type managed struct {
	m    *Manager
	name string
	log  *slog.Logger

	// opMu serializes what replaces the instance: first start, relaunch,
	// swap, stop.
	opMu sync.Mutex

	mu      sync.Mutex
	spec    Spec
	bin     binary
	cfg     cty.Value
	cur     *instance
	state   string
	lastErr string
	changed chan struct{} // closed and replaced whenever cur changes

	restarts atomic.Uint64
	reloads  atomic.Uint64
	calls    atomic.Uint64
	errs     atomic.Uint64
	meters   sync.Map // method → *meter

	kick      chan *instance // a call saw a transport error on this instance
	cancelSup context.CancelFunc
	done      chan struct{} // closed when the supervisor ends
}

func (m *Manager) get(name string) (*managed, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	p, ok := m.plugins[name]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownPlugin, name)
	}
	return p, nil
}

// Load starts the plugins of specs, all at once, and returns diagnostics
// for those that fail (checksum, unknown or mistyped setting per the
// plugin's schema, start, protocol, Configure or health failures), each
// pointing at its block. Called again (a config reload), it swaps each
// running plugin whose binary (by digest), settings or environment changed
// for a new instance (a failing one keeps its old instance), leaves the
// others alone and, when nothing failed, stops the plugins that are no
// longer configured. Reload swaps a plugin unconditionally.
func (m *Manager) Load(ctx context.Context, specs []Spec) hcl.Diagnostics {
	m.pruneOnce.Do(m.pruneStore)
	seen, diags := eachSpec(specs, func(s Spec) hcl.Diagnostics { return m.loadOne(ctx, s) })
	if diags.HasErrors() {
		return diags
	}
	m.mu.Lock()
	var gone []*managed
	for name, p := range m.plugins {
		if !seen[name] {
			gone = append(gone, p)
			delete(m.plugins, name)
		}
	}
	m.mu.Unlock()
	for _, p := range gone {
		p.stop(m.opts.ShutdownGrace)
	}
	return diags
}

// eachSpec runs do for every spec, side by side, after refusing a second
// spec of one name; it returns the names and every diagnostic.
func eachSpec(specs []Spec, do func(Spec) hcl.Diagnostics) (map[string]bool, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	seen := map[string]bool{}
	var todo []Spec
	for _, s := range specs {
		if seen[s.Name] {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Duplicate plugin block",
				Detail:   fmt.Sprintf("A plugin named %q is already defined.", s.Name),
				Subject:  s.DefRange.Ptr(),
			})
			continue
		}
		seen[s.Name] = true
		todo = append(todo, s)
	}
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	for _, s := range todo {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := do(s)
			mu.Lock()
			diags = append(diags, d...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return seen, diags
}

func (m *Manager) loadOne(ctx context.Context, s Spec) hcl.Diagnostics {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Plugin manager shut down", Subject: s.DefRange.Ptr()}}
	}
	p, exists := m.plugins[s.Name]
	if !exists {
		p = &managed{
			m:       m,
			name:    s.Name,
			log:     m.log.With("plugin", s.Name),
			spec:    s,
			state:   StateStarting,
			changed: make(chan struct{}),
			kick:    make(chan *instance, 1),
			done:    make(chan struct{}),
		}
	}
	m.mu.Unlock()
	if exists {
		if unchanged, diags := p.unchanged(s); diags.HasErrors() || unchanged {
			return diags
		}
		return p.swap(ctx, s)
	}
	p.opMu.Lock()
	inst, bin, cfg, diags := m.start(ctx, p, s)
	if diags.HasErrors() {
		p.opMu.Unlock()
		return diags
	}
	p.mu.Lock()
	p.bin, p.cfg = bin, cfg
	p.mu.Unlock()
	p.install(inst)
	p.opMu.Unlock()
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		p.stop(m.opts.ShutdownGrace)
		return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Plugin manager shut down", Subject: s.DefRange.Ptr()}}
	}
	m.plugins[s.Name] = p
	m.wg.Add(1)
	var supCtx context.Context
	supCtx, p.cancelSup = context.WithCancel(m.ctx)
	m.mu.Unlock()
	go func() {
		defer m.wg.Done()
		p.supervise(supCtx)
	}()
	p.log.Info("plugin started", "version", inst.info.Version, "pid", inst.pid, "sha256", bin.digest)
	return diags
}

// start pins the spec's binary, launches it and runs every check; the
// returned instance has passed them all.
func (m *Manager) start(ctx context.Context, p *managed, s Spec) (*instance, binary, cty.Value, hcl.Diagnostics) {
	inst, bin, cfg, diags := m.launchChecked(ctx, s, p.log)
	if diags.HasErrors() {
		return nil, bin, cty.NilVal, diags
	}
	if err := m.configure(ctx, inst, pluginapi.Config{Value: cfg, StateDir: m.pluginDataDir(s.Name)}); err != nil {
		inst.stop(m.opts.ShutdownGrace)
		return nil, bin, cty.NilVal, failedDiag(s, bin, "Plugin refused its configuration", err)
	}
	return inst, bin, cfg, diags
}

// launchChecked pins the spec's binary, launches it, checks it and decodes
// its settings against the schema it declares: everything but Configure.
func (m *Manager) launchChecked(ctx context.Context, s Spec, log *slog.Logger) (*instance, binary, cty.Value, hcl.Diagnostics) {
	bin, diags := m.pin(s)
	if diags.HasErrors() {
		return nil, bin, cty.NilVal, diags
	}
	inst, err := m.launch(s.Name, bin, s.Env, log)
	if err != nil {
		return nil, bin, cty.NilVal, failedDiag(s, bin, "Plugin failed to start", err)
	}
	if err := m.check(ctx, inst); err != nil {
		inst.stop(m.opts.ShutdownGrace)
		return nil, bin, cty.NilVal, failedDiag(s, bin, "Plugin failed its checks", err)
	}
	cfg, diags := m.decode(s, inst.info.Schema)
	if diags.HasErrors() {
		inst.stop(m.opts.ShutdownGrace)
		return nil, bin, cty.NilVal, diags
	}
	return inst, bin, cfg, diags
}

func failedDiag(s Spec, bin binary, summary string, err error) hcl.Diagnostics {
	return hcl.Diagnostics{{
		Severity: hcl.DiagError,
		Summary:  summary,
		Detail:   fmt.Sprintf("Plugin %q (%s, sha256 %s): %v.", s.Name, bin.source, bin.digest, err),
		Subject:  s.DefRange.Ptr(),
	}}
}

// decodeBody decodes a plugin's settings against the schema it declared;
// HCL reports unknown, missing and mistyped settings at their lines.
func decodeBody(body hcl.Body, schema *pluginapi.Schema, ctx *hcl.EvalContext) (cty.Value, hcl.Diagnostics) {
	if body == nil {
		body = hcl.EmptyBody()
	}
	v, diags := hcldec.Decode(body, schema.Spec(), ctx)
	if diags.HasErrors() {
		return cty.NilVal, diags
	}
	if !v.IsWhollyKnown() {
		return cty.NilVal, append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Plugin setting not known at load",
			Detail:   "A plugin's settings must be known when the configuration is loaded; request-time values are not available here.",
			Subject:  body.MissingItemRange().Ptr(),
		})
	}
	return v, diags
}

// decode decodes a spec's block and applies Options.Adjust.
func (m *Manager) decode(s Spec, schema *pluginapi.Schema) (cty.Value, hcl.Diagnostics) {
	v, diags := decodeBody(s.Body, schema, m.opts.EvalContext)
	if diags.HasErrors() || m.opts.Adjust == nil {
		return v, diags
	}
	v, err := m.opts.Adjust(s.Name, v)
	if err != nil {
		return cty.NilVal, append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Plugin settings not adjusted",
			Detail:   fmt.Sprintf("Plugin %q: %v.", s.Name, err),
			Subject:  s.DefRange.Ptr(),
		})
	}
	return v, diags
}

// unchanged reports whether s would start the same binary with the same
// configuration as the running instance, so that a config reload leaves
// the plugin alone. A block that no longer decodes is an error here, and
// the old instance keeps serving.
func (p *managed) unchanged(s Spec) (bool, hcl.Diagnostics) {
	p.mu.Lock()
	cur, bin, cfg, old := p.cur, p.bin, p.cfg, p.spec
	p.mu.Unlock()
	if cur == nil || !slices.Equal(s.Env, old.Env) {
		return false, nil
	}
	nb, diags := p.m.pin(s)
	if diags.HasErrors() {
		return false, diags
	}
	if nb.digest != bin.digest || nb.source != bin.source {
		return false, nil
	}
	v, diags := p.m.decode(s, cur.info.Schema)
	if diags.HasErrors() {
		return false, diags
	}
	if !v.RawEquals(cfg) {
		return false, nil
	}
	p.mu.Lock()
	p.spec = s // new source ranges for later diagnostics
	p.mu.Unlock()
	return true, nil
}

// install makes inst the current instance and returns the previous one.
func (p *managed) install(inst *instance) *instance {
	p.mu.Lock()
	defer p.mu.Unlock()
	old := p.cur
	p.cur = inst
	p.state = StateRunning
	close(p.changed)
	p.changed = make(chan struct{})
	return old
}

// down records that inst no longer serves, if it is still the current one.
func (p *managed) down(inst *instance, why string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cur != inst || inst == nil {
		return false
	}
	p.cur = nil
	p.state = StateRestarting
	p.lastErr = why
	close(p.changed)
	p.changed = make(chan struct{})
	return true
}

func (p *managed) current() (*instance, <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cur, p.changed
}

func (p *managed) setErr(err string) {
	p.mu.Lock()
	p.lastErr = err
	p.mu.Unlock()
}

// unavailable is the error of a call made while no instance serves.
func (p *managed) unavailable() error {
	p.mu.Lock()
	state, why := p.state, p.lastErr
	p.mu.Unlock()
	if why == "" {
		why = state
	} else {
		why = state + " after: " + why
	}
	return fmt.Errorf("plugin %q: %w (%s)", p.name, ErrUnavailable, why)
}

// supervise owns the plugin's liveness: it notices exits and failed health
// checks and relaunches, one launch at a time, with backoff. It ends with
// ctx.
func (p *managed) supervise(ctx context.Context) {
	defer close(p.done)
	opts := &p.m.opts
	tick := time.NewTicker(opts.HealthInterval)
	defer tick.Stop()
	fails := 0
	for {
		cur, changed := p.current()
		var exited <-chan struct{}
		if cur != nil {
			exited = cur.exited
		}
		why := ""
		select {
		case <-ctx.Done():
			return
		case <-changed:
			fails = 0
			continue
		case <-exited:
			why = "plugin process exited"
		case inst := <-p.kick:
			if inst != cur || cur == nil {
				continue
			}
			if cur.hasExited() {
				why = "plugin process exited"
			} else if err := p.health(ctx, cur); err != nil {
				if ctx.Err() != nil {
					return
				}
				why = "health check failed: " + err.Error()
			}
		case <-tick.C:
			if cur == nil {
				continue
			}
			if err := p.health(ctx, cur); err != nil {
				if ctx.Err() != nil {
					return
				}
				if fails++; fails < 2 && !cur.hasExited() {
					p.log.Warn("plugin health check failed", "error", err, "pid", cur.pid)
					continue
				}
				why = "health check failed: " + err.Error()
			} else {
				fails = 0
			}
		}
		if why == "" || !p.down(cur, why) {
			continue
		}
		fails = 0
		p.log.Error("plugin down, relaunching", "reason", why, "pid", cur.pid)
		lived := time.Since(cur.started)
		p.m.bg.Add(1)
		go func() { // kill what is left of it, without holding up the relaunch
			defer p.m.bg.Done()
			cur.stop(opts.ShutdownGrace)
		}()
		p.relaunch(ctx, lived)
	}
}

func (p *managed) health(ctx context.Context, i *instance) error {
	ctx, cancel := context.WithTimeout(ctx, p.m.opts.HealthTimeout)
	defer cancel()
	return i.api.Health(ctx)
}

// stableAfter is how long an instance must have lived for its crash to
// count as the first in a row (relaunched at once, no backoff).
const stableAfter = 10 * time.Second

// relaunch starts the pinned binary with the decoded configuration until
// an instance passes its checks, ctx ends, or a swap installed one.
func (p *managed) relaunch(ctx context.Context, lived time.Duration) {
	opts := &p.m.opts
	n := 0 // failures in a row
	if lived < stableAfter {
		n = 1
	}
	for {
		if n > 0 {
			d := opts.BackoffMin << min(n-1, 16)
			if d > opts.BackoffMax || d <= 0 {
				d = opts.BackoffMax
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(d):
			}
		}
		p.opMu.Lock()
		if cur, _ := p.current(); cur != nil || ctx.Err() != nil {
			p.opMu.Unlock() // a swap got there first, or we are shutting down
			return
		}
		p.mu.Lock()
		spec, bin, cfg := p.spec, p.bin, p.cfg
		p.mu.Unlock()
		inst, err := p.m.relaunchOnce(ctx, p, spec, bin, cfg)
		if err == nil {
			p.install(inst)
			p.restarts.Add(1)
			p.opMu.Unlock()
			p.log.Info("plugin relaunched", "pid", inst.pid, "version", inst.info.Version)
			return
		}
		p.opMu.Unlock()
		n++
		p.setErr("relaunch failed: " + err.Error())
		p.log.Error("plugin relaunch failed", "error", err, "attempt", n)
	}
}

// relaunchOnce starts the pinned binary again with the configuration it
// was checked with.
func (m *Manager) relaunchOnce(ctx context.Context, p *managed, s Spec, bin binary, cfg cty.Value) (*instance, error) {
	inst, err := m.launch(s.Name, bin, s.Env, p.log)
	if err != nil {
		return nil, err
	}
	if err := m.check(ctx, inst); err != nil {
		inst.stop(m.opts.ShutdownGrace)
		return nil, err
	}
	if err := m.configure(ctx, inst, pluginapi.Config{Value: cfg, StateDir: m.pluginDataDir(s.Name)}); err != nil {
		inst.stop(m.opts.ShutdownGrace)
		return nil, err
	}
	return inst, nil
}

// swap starts the spec's current binary beside the running instance,
// checks it, switches calls to it, drains the old one and stops it. When
// the new one fails, the old one keeps serving.
func (p *managed) swap(ctx context.Context, s Spec) hcl.Diagnostics {
	p.opMu.Lock()
	inst, bin, cfg, diags := p.m.start(ctx, p, s)
	if diags.HasErrors() {
		p.opMu.Unlock()
		p.setErr("reload failed: " + diags.Error())
		p.log.Error("plugin reload failed; the running instance keeps serving", "error", diags.Error())
		return diags
	}
	p.mu.Lock()
	p.spec, p.bin, p.cfg = s, bin, cfg
	p.lastErr = ""
	p.mu.Unlock()
	old := p.install(inst)
	p.reloads.Add(1)
	p.opMu.Unlock()
	p.log.Info("plugin swapped", "version", inst.info.Version, "pid", inst.pid, "sha256", bin.digest)
	if old != nil {
		dctx, cancel := context.WithTimeout(context.Background(), p.m.opts.DrainTimeout)
		old.retire(dctx)
		cancel()
		old.stop(p.m.opts.ShutdownGrace)
		p.log.Info("old plugin instance stopped", "pid", old.pid, "version", old.info.Version)
	}
	return diags
}

// stop retires and stops the current instance; the plugin stays stopped.
func (p *managed) stop(grace time.Duration) {
	if p.cancelSup != nil {
		p.cancelSup()
		<-p.done
	}
	p.opMu.Lock()
	defer p.opMu.Unlock()
	p.mu.Lock()
	cur := p.cur
	p.cur = nil
	p.state = StateStopped
	close(p.changed)
	p.changed = make(chan struct{})
	p.mu.Unlock()
	if cur != nil {
		ctx, cancel := context.WithTimeout(context.Background(), grace)
		cur.retire(ctx)
		cancel()
		cur.stop(grace)
	}
}

// Reload swaps the named plugin for a new instance of its configured
// binary (re-read and re-pinned) with its current block. It returns when
// the old instance is stopped, or with the reason the new one was refused
// (the old one then keeps serving).
func (m *Manager) Reload(ctx context.Context, name string) error {
	p, err := m.get(name)
	if err != nil {
		return err
	}
	p.mu.Lock()
	s := p.spec
	p.mu.Unlock()
	if diags := p.swap(ctx, s); diags.HasErrors() {
		return fmt.Errorf("reload plugin %q: %w", name, diags)
	}
	return nil
}

// Reconfigure sends the named plugin's block, decoded and adjusted again
// (Options.Adjust), to its running instance, which applies it in place
// (the compute plugin boots changed tenants beside the running ones, then
// switches: issue 12). On success relaunches use the new configuration;
// on an error the plugin keeps the old one.
func (m *Manager) Reconfigure(ctx context.Context, name string) error {
	p, err := m.get(name)
	if err != nil {
		return err
	}
	p.opMu.Lock()
	defer p.opMu.Unlock()
	p.mu.Lock()
	s, cur := p.spec, p.cur
	p.mu.Unlock()
	if cur == nil {
		return p.unavailable()
	}
	cfg, diags := m.decode(s, cur.info.Schema)
	if diags.HasErrors() {
		return fmt.Errorf("reconfigure plugin %q: %w", name, diags)
	}
	if !cur.acquire() {
		return p.unavailable()
	}
	err = m.configure(ctx, cur, pluginapi.Config{Value: cfg, StateDir: m.pluginDataDir(s.Name)})
	cur.release()
	if err != nil {
		return fmt.Errorf("reconfigure plugin %q: %w", name, err)
	}
	p.mu.Lock()
	p.cfg = cfg
	p.mu.Unlock()
	p.reloads.Add(1)
	p.log.Info("plugin reconfigured in place", "pid", cur.pid)
	return nil
}

// ReloadAll reloads every plugin, one after another, and joins the errors.
func (m *Manager) ReloadAll(ctx context.Context) error {
	var errs []error
	for _, name := range m.names() {
		if err := m.Reload(ctx, name); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (m *Manager) names() []string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	names := make([]string, 0, len(m.plugins))
	for n := range m.plugins {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Shutdown stops every plugin: in-flight calls get until ctx ends (or the
// grace period), each plugin is asked to shut down, then its process is
// killed if it has not exited. It returns when every process is gone.
func (m *Manager) Shutdown(ctx context.Context) error {
	m.mu.Lock()
	m.closed = true
	ps := make([]*managed, 0, len(m.plugins))
	for _, p := range m.plugins {
		ps = append(ps, p)
	}
	m.mu.Unlock()
	m.cancel()
	m.wg.Wait() // supervisors are gone: nothing relaunches now
	grace := m.opts.ShutdownGrace
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < grace {
		grace = max(time.Until(dl), 100*time.Millisecond)
	}
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.stop(grace)
		}()
	}
	wg.Wait()
	m.bg.Wait()
	return ctx.Err()
}
