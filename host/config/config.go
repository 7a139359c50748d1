// Package config loads edgehost's HCL configuration.
//
// Loading happens in two phases (STYLE 10): at load time the file is decoded
// with gohcl against the host's own schema, every static value is evaluated
// in a base EvalContext (functions and env), durations and sizes are parsed,
// and every request-time expression (route conditions) is checked to name
// only variables that exist at request time. At request time the server
// evaluates those expressions in a child context that adds `request`.
//
// All problems are reported as hcl.Diagnostics with source ranges, so the
// command line can print them with file:line:col and the offending line.
package config

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/edgehost/edgehost/host/httpcache"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclparse"
)

// Defaults applied where the config says nothing. They are what `make run`
// relies on ("embedded defaults").
const (
	DefaultStateDir        = "./var"
	DefaultHTTP            = "127.0.0.1:18080"
	DefaultAdmin           = "127.0.0.1:18090"
	DefaultMemory          = 64 << 20
	DefaultDisk            = 1 << 30
	DefaultMaxObject       = 64 << 20
	DefaultMaxProgram      = 64 << 20
	DefaultKeepPrograms    = 5
	DefaultMaxHeaderBytes  = 32 << 10
	DefaultHeaderTimeout   = 10 * time.Second
	DefaultIdleTimeout     = 75 * time.Second
	DefaultSendTimeout     = 60 * time.Second
	DefaultSelfConcurrency = 256
	DefaultMaxDepth        = 8
)

// Config is a loaded, validated configuration. It is immutable once built:
// a reload builds a new one and swaps it in.
type Config struct {
	Path     string
	StateDir string
	Listen   Listen
	Admin    Admin
	Storage  Storage
	Limits   Limits
	Log      Log
	Cache    Cache
	Backends map[string]*Backend
	// Routes sorted for matching: longest prefix first, then declaration order.
	Routes  []*Route
	Plugins []*Plugin
	// Tenants are the tenant blocks of the compute plugins, by name.
	Tenants map[string]*Tenant
	// Files are the `file` blocks by name, ErrorPages the `error_page`
	// blocks in order (file.go).
	Files      map[string]*File
	ErrorPages []*ErrorPage

	files map[string]*hcl.File
}

// Listen holds the listener addresses.
type Listen struct {
	HTTP string // public TCP listener
	Self string // Unix socket for self-requests
	// SelfGroup (name or number) makes the self socket 0660 with that
	// group and lets its members connect; "" = 0600, edgehost's user only.
	SelfGroup string
	Admin     string // admin API, loopback by default
}

// Admin holds the admin API settings.
type Admin struct {
	Token         string
	PublicMetrics bool // GET /metrics without the token; everything else but /healthz needs it
}

// Storage holds the cache budgets in bytes, and the bounds of
// programs.db: the largest program accepted, and how many binaries are
// kept per tenant.
type Storage struct {
	Memory, Disk, MaxObject int64
	MaxProgram              int64
	KeepPrograms            int
}

// Limits protect the listeners from bad clients and loops.
type Limits struct {
	MaxHeaderBytes  int
	HeaderTimeout   time.Duration // slowloris guard: whole request head
	IdleTimeout     time.Duration // keep-alive idle
	SendTimeout     time.Duration // writing a response
	SelfConcurrency int           // concurrent self-requests
	MaxDepth        int           // self-request nesting
	MaxConnections  int           // open client connections on the public listener
}

// DefaultMaxConnections is limits.max_connections when the config says
// nothing: half the process's file-descriptor limit, leaving the other
// half for origin connections, cache files and plugins. Past it the oldest
// idle connection is closed for a new one (issue 13).
func DefaultMaxConnections() int {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur > 1<<30 {
		return 1 << 20
	}
	return max(int(lim.Cur/2), 16)
}

// Log selects log level and format.
type Log struct {
	Level  string // debug, info, warn, error
	Format string // text, json
}

// Cache holds the settings of the HTTP caching rules common to all routes
// (the `cache` block).
type Cache struct {
	// TargetedFields are the targeted cache-control fields (RFC 9213) that
	// edgehost obeys, highest precedence first, canonical; default
	// ["CDN-Cache-Control"].
	TargetedFields []string
	// HeuristicMax caps heuristic freshness (RFC 9111 §4.2.2); "0s" turns
	// it off.
	HeuristicMax time.Duration
}

// Backend is an HTTP origin.
type Backend struct {
	Name                string
	URL                 string
	HostHeader          string
	ConnectTimeout      time.Duration
	FirstByteTimeout    time.Duration
	BetweenBytesTimeout time.Duration
	MaxConns            int
	Probe               *Probe
	DeclRange           hcl.Range
}

// Probe is a backend health probe.
type Probe struct {
	Path              string
	Interval, Timeout time.Duration
	Window, Threshold int
	ExpectStatus      int
}

// Route maps requests (host, path prefix, condition) to a behaviour.
type Route struct {
	Prefix       string
	Hosts        []string       // lowercased; "*.example.com" wildcards; empty = any
	When         hcl.Expression // nil = always
	Backend      string         // backend name; "" for synthetic routes
	Pass         bool
	DefaultTTL   time.Duration // 0 unless the route says default_ttl: RFC 9111 decides
	Grace        time.Duration
	Keep         time.Duration
	CacheCookies bool
	Respond      *Respond
	Slice        *Slice
	Static       *Static  // a directory served through the file plugin (file.go)
	Compute      *Compute // a tenant or a chain answers (compute.go)
	// Policy is the caching rules' view of the route (DefaultTTL, Grace,
	// CacheCookies and the cache block), built once at load.
	Policy    httpcache.Policy
	Index     int
	DeclRange hcl.Range

	Processors *Processors // body transforms (processors.go); nil: none
}

// Slice makes a route fetch and cache large objects as segments (DESIGN §6).
type Slice struct {
	Size          int64          // segment size
	Stage         string         // "response" (GET headers decide) or "fetch" (a HEAD first)
	OnFailure     string         // not eligible: "fail" (503), "pass" (stream uncached) or "retry" (unsliced)
	TransitBuffer int64          // pass: copy buffer, bounding memory per transfer
	When          hcl.Expression // nil = every GET/HEAD of the route
	Plugin        string         // the slicer plugin's name
	DeclRange     hcl.Range
}

// Defaults of a slice block.
const (
	DefaultSliceSize     = 5 << 20
	DefaultTransitBuffer = 1 << 20
)

// Respond is a synthetic response.
type Respond struct {
	Status  int
	Body    string
	Headers map[string]string
	File    string // a `file` block's name: the body is that reader's contents
}

// Plugin is a `plugin "NAME" { … }` block; its own settings stay an hcl.Body
// decoded later against the schema the plugin declares (STYLE 8).
type Plugin struct {
	Name        string
	Path        string // resolved against the config file's directory; "" = beside the host
	SHA256      string
	Env         []string // the plugin's whole environment (KEY=value); it inherits none of the host's
	Body        hcl.Body
	DeclRange   hcl.Range
	PathRange   hcl.Range
	SHA256Range hcl.Range
}

// Load reads and validates the file at path.
func Load(path string) (*Config, hcl.Diagnostics) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Cannot read config",
			Detail:   err.Error(),
		}}
	}
	return Parse(path, src)
}

// Parse validates the config source src, reported as filename.
func Parse(filename string, src []byte) (*Config, hcl.Diagnostics) {
	p := hclparse.NewParser()
	f, diags := p.ParseHCL(src, filename)
	if diags.HasErrors() {
		return &Config{Path: filename, files: p.Files()}, diags
	}
	var raw fileSchema
	diags = append(diags, gohcl.DecodeBody(f.Body, baseContext(), &raw)...)
	c := &Config{Path: filename, files: p.Files()}
	// gohcl decodes what it can even when it reports errors, so the semantic
	// checks still run: the user sees every problem at once.
	diags = append(diags, c.build(&raw)...)
	return c, diags
}

// WriteDiagnostics prints each diagnostic as
//
//	file:line:col: error: Summary: detail
//	   12 |   when = request.methd == "GET"
//	      |          ^^^^^^^^^^^^^
func (c *Config) WriteDiagnostics(w io.Writer, diags hcl.Diagnostics) {
	var files map[string]*hcl.File
	if c != nil {
		files = c.files
	}
	for _, d := range diags {
		sev := "error"
		if d.Severity == hcl.DiagWarning {
			sev = "warning"
		}
		msg := d.Summary
		if d.Detail != "" {
			msg += ": " + d.Detail
		}
		if d.Subject == nil {
			fmt.Fprintf(w, "%s: %s\n", sev, msg)
			continue
		}
		r := *d.Subject
		fmt.Fprintf(w, "%s:%d:%d: %s: %s\n", r.Filename, r.Start.Line, r.Start.Column, sev, msg)
		f := files[r.Filename]
		if f == nil {
			continue
		}
		lines := strings.Split(string(f.Bytes), "\n")
		if r.Start.Line < 1 || r.Start.Line > len(lines) {
			continue
		}
		line := strings.TrimRight(lines[r.Start.Line-1], "\r")
		fmt.Fprintf(w, "%5d | %s\n", r.Start.Line, line)
		width := 1
		if r.End.Line == r.Start.Line && r.End.Column > r.Start.Column {
			width = r.End.Column - r.Start.Column
		}
		pad := strings.Map(func(c rune) rune {
			if c == '\t' {
				return c
			}
			return ' '
		}, line[:min(len(line), max(0, r.Start.Column-1))])
		fmt.Fprintf(w, "      | %s%s\n", pad, strings.Repeat("^", width))
	}
}

func (c *Config) build(raw *fileSchema) (diags hcl.Diagnostics) {
	c.StateDir = or(raw.StateDir, DefaultStateDir)

	c.Listen = Listen{HTTP: DefaultHTTP, Admin: DefaultAdmin}
	if l := raw.Listen; l != nil {
		c.Listen.HTTP = or(l.HTTP, DefaultHTTP)
		c.Listen.Admin = or(l.Admin, DefaultAdmin)
		c.Listen.Self = l.Self
		c.Listen.SelfGroup = l.SelfGroup
		for _, a := range []struct {
			v string
			r hcl.Range
		}{{l.HTTP, l.HTTPRange}, {l.Admin, l.AdminRange}} {
			if a.v == "" {
				continue
			}
			if _, _, err := net.SplitHostPort(a.v); err != nil {
				diags = append(diags, rangeErr(a.r, "Invalid listen address", fmt.Sprintf("%q is not host:port: %v", a.v, err)))
			}
		}
	}
	if c.Listen.Self == "" {
		c.Listen.Self = filepath.Join(c.StateDir, "self.sock")
	}
	if raw.Admin != nil {
		c.Admin.Token = raw.Admin.Token
		c.Admin.PublicMetrics = raw.Admin.PublicMetrics
	}

	c.Storage = Storage{Memory: DefaultMemory, Disk: DefaultDisk, MaxObject: DefaultMaxObject,
		MaxProgram: DefaultMaxProgram, KeepPrograms: DefaultKeepPrograms}
	if s := raw.Storage; s != nil {
		diags = append(diags, sizeAttr(s.MemoryRange, s.Memory, &c.Storage.Memory)...)
		diags = append(diags, sizeAttr(s.DiskRange, s.Disk, &c.Storage.Disk)...)
		diags = append(diags, sizeAttr(s.MaxObjectRange, s.MaxObject, &c.Storage.MaxObject)...)
		diags = append(diags, sizeAttr(s.MaxProgramRange, s.MaxProgram, &c.Storage.MaxProgram)...)
		if k := s.KeepPrograms; k != nil {
			if *k < 1 || *k > 1000 {
				diags = append(diags, rangeErr(s.KeepProgramsRange, "Invalid keep_programs",
					"the number of program binaries kept per tenant (rollback targets), from 1 to 1000"))
			} else {
				c.Storage.KeepPrograms = *k
			}
		}
	}

	c.Limits = Limits{
		MaxHeaderBytes: DefaultMaxHeaderBytes, HeaderTimeout: DefaultHeaderTimeout,
		IdleTimeout: DefaultIdleTimeout, SendTimeout: DefaultSendTimeout,
		SelfConcurrency: DefaultSelfConcurrency, MaxDepth: DefaultMaxDepth,
		MaxConnections: DefaultMaxConnections(),
	}
	if l := raw.Limits; l != nil {
		var mh int64
		diags = append(diags, sizeAttr(l.MaxHeaderBytesRange, l.MaxHeaderBytes, &mh)...)
		if mh > 0 {
			c.Limits.MaxHeaderBytes = int(mh)
		}
		diags = append(diags, durAttr(l.HeaderTimeoutRange, l.HeaderTimeout, &c.Limits.HeaderTimeout)...)
		diags = append(diags, durAttr(l.IdleTimeoutRange, l.IdleTimeout, &c.Limits.IdleTimeout)...)
		diags = append(diags, durAttr(l.SendTimeoutRange, l.SendTimeout, &c.Limits.SendTimeout)...)
		if l.SelfConcurrency > 0 {
			c.Limits.SelfConcurrency = l.SelfConcurrency
		}
		if l.MaxDepth > 0 {
			c.Limits.MaxDepth = l.MaxDepth
		}
		switch {
		case l.MaxConnections > 0:
			c.Limits.MaxConnections = l.MaxConnections
		case l.MaxConnections < 0:
			diags = append(diags, rangeErr(l.MaxConnectionsRange, "Invalid max_connections", "a number of connections, at least 1 (leave it out for half the file-descriptor limit)"))
		}
	}

	c.Log = Log{Level: "info", Format: "text"}
	if l := raw.Log; l != nil {
		c.Log.Level = or(l.Level, "info")
		c.Log.Format = or(l.Format, "text")
		switch c.Log.Level {
		case "debug", "info", "warn", "error":
		default:
			diags = append(diags, rangeErr(l.LevelRange, "Invalid log level", `use "debug", "info", "warn" or "error"`))
		}
		switch c.Log.Format {
		case "text", "json":
		default:
			diags = append(diags, rangeErr(l.FormatRange, "Invalid log format", `use "text" or "json"`))
		}
	}

	diags = append(diags, c.buildCache(raw.Cache)...)

	c.Backends = map[string]*Backend{}
	for _, b := range raw.Backends {
		be, d := buildBackend(b)
		diags = append(diags, d...)
		if prev, dup := c.Backends[b.Name]; dup {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError, Summary: "Duplicate backend",
				Detail:  fmt.Sprintf("backend %q was already declared at %s", b.Name, prev.DeclRange),
				Subject: b.DeclRange.Ptr(),
			})
			continue
		}
		c.Backends[b.Name] = be
	}

	diags = append(diags, c.buildFiles(raw)...)
	diags = append(diags, c.buildTenants(raw)...)
	for i, r := range raw.Routes {
		rt, d := c.buildRoute(i, r)
		diags = append(diags, d...)
		if rt != nil {
			c.Routes = append(c.Routes, rt)
		}
	}
	c.Routes = append(c.Routes, c.tenantRoutes()...)
	// Longest prefix first; for one prefix the more specific route first
	// (a host list, then a condition), then declaration order.
	sort.SliceStable(c.Routes, func(i, j int) bool {
		a, b := c.Routes[i], c.Routes[j]
		if len(a.Prefix) != len(b.Prefix) {
			return len(a.Prefix) > len(b.Prefix)
		}
		if (len(a.Hosts) > 0) != (len(b.Hosts) > 0) {
			return len(a.Hosts) > 0
		}
		return a.When != nil && b.When == nil
	})

	seen := map[string]hcl.Range{}
	defer func() {
		// A slice needs its plugin (checked once every block is known).
		for _, rt := range c.Routes {
			if rt.Slice == nil {
				continue
			}
			if _, ok := seen[rt.Slice.Plugin]; !ok {
				diags = append(diags, rangeErr(rt.Slice.DeclRange, "Slicer plugin not declared",
					fmt.Sprintf("route %q slices with plugin %q: add `plugin %q {}`", rt.Prefix, rt.Slice.Plugin, rt.Slice.Plugin)))
			}
			if rt.Slice.Size > c.Storage.MaxObject {
				diags = append(diags, rangeErr(rt.Slice.DeclRange, "Segment larger than storage.max_object",
					fmt.Sprintf("segments of %d bytes could not be stored (max_object %d)", rt.Slice.Size, c.Storage.MaxObject)))
			}
		}
	}()
	for _, p := range raw.Plugins {
		if prev, dup := seen[p.Name]; dup {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError, Summary: "Duplicate plugin",
				Detail:  fmt.Sprintf("plugin %q was already declared at %s", p.Name, prev),
				Subject: p.DeclRange.Ptr(),
			})
			continue
		}
		seen[p.Name] = p.DeclRange
		pl := &Plugin{Name: p.Name, Path: p.Path, SHA256: strings.ToLower(p.SHA256), Body: p.Remain,
			DeclRange: p.DeclRange, PathRange: p.PathRange, SHA256Range: p.SHA256Range}
		if pl.Path != "" && !filepath.IsAbs(pl.Path) {
			pl.Path = filepath.Join(filepath.Dir(c.Path), pl.Path)
		}
		for k, v := range p.Env {
			pl.Env = append(pl.Env, k+"="+v)
		}
		sort.Strings(pl.Env)
		c.Plugins = append(c.Plugins, pl)
	}
	diags = append(diags, c.bindFiles(raw)...)
	return diags
}

func buildBackend(b *backendSchema) (*Backend, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	be := &Backend{Name: b.Name, URL: b.URL, HostHeader: b.HostHeader, MaxConns: b.MaxConnections, DeclRange: b.DeclRange}
	u, err := url.Parse(b.URL)
	switch {
	case err != nil:
		diags = append(diags, rangeErr(b.URLRange, "Invalid backend URL", err.Error()))
	case u.Scheme == "unix":
		if u.Path == "" {
			diags = append(diags, rangeErr(b.URLRange, "Invalid backend URL", "unix:// URLs need a socket path, e.g. unix:///run/app.sock"))
		}
	case u.Scheme != "http" || u.Host == "":
		diags = append(diags, rangeErr(b.URLRange, "Invalid backend URL", fmt.Sprintf("%q: use http://host:port[/path] or unix:///path/to.sock", b.URL)))
	}
	diags = append(diags, durAttr(b.ConnectTimeoutRange, b.ConnectTimeout, &be.ConnectTimeout)...)
	diags = append(diags, durAttr(b.FirstByteTimeoutRange, b.FirstByteTimeout, &be.FirstByteTimeout)...)
	diags = append(diags, durAttr(b.BetweenBytesTimeoutRange, b.BetweenBytesTimeout, &be.BetweenBytesTimeout)...)
	if p := b.Probe; p != nil {
		pr := &Probe{Path: or(p.Path, "/"), Interval: 5 * time.Second, Timeout: 2 * time.Second, Window: 8, Threshold: 3, ExpectStatus: 200}
		diags = append(diags, durAttr(p.IntervalRange, p.Interval, &pr.Interval)...)
		diags = append(diags, durAttr(p.TimeoutRange, p.Timeout, &pr.Timeout)...)
		if p.Window > 0 {
			pr.Window = p.Window
		}
		if p.Threshold > 0 {
			pr.Threshold = p.Threshold
		}
		if p.ExpectStatus > 0 {
			pr.ExpectStatus = p.ExpectStatus
		}
		if pr.Threshold > pr.Window {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid probe",
				Detail: fmt.Sprintf("threshold (%d) is larger than window (%d): the backend could never be healthy", pr.Threshold, pr.Window), Subject: p.DeclRange.Ptr()})
		}
		be.Probe = pr
	}
	return be, diags
}

func (c *Config) buildRoute(i int, r *routeSchema) (*Route, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	rt := &Route{Prefix: r.Prefix, Pass: r.Pass, CacheCookies: r.CacheCookies, Index: i, DeclRange: r.DeclRange}
	if !strings.HasPrefix(r.Prefix, "/") {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid route prefix",
			Detail: fmt.Sprintf("route %q: a prefix is a path starting with \"/\"", r.Prefix), Subject: r.LabelRange.Ptr()})
	}
	if r.Host != nil {
		hosts, d := stringOrList(r.Host)
		diags = append(diags, d...)
		for _, h := range hosts {
			rt.Hosts = append(rt.Hosts, strings.ToLower(h))
		}
	}
	if r.When != nil {
		diags = append(diags, CheckRequestExpr(r.When.Expr)...)
		rt.When = r.When.Expr
	}
	if r.Backend != nil {
		name, d := c.backendRef(r.Backend)
		diags = append(diags, d...)
		rt.Backend = name
	}
	diags = append(diags, durAttr(r.DefaultTTLRange, r.DefaultTTL, &rt.DefaultTTL)...)
	diags = append(diags, durAttr(r.GraceRange, r.Grace, &rt.Grace)...)
	diags = append(diags, durAttr(r.KeepRange, r.Keep, &rt.Keep)...)
	rt.Policy = httpcache.Policy{DefaultTTL: rt.DefaultTTL, HeuristicMax: c.Cache.HeuristicMax, Grace: rt.Grace,
		AllowCookies: rt.CacheCookies, Targeted: c.Cache.TargetedFields}
	if r.Respond != nil {
		rs := &Respond{Status: 200, Body: r.Respond.Body, Headers: r.Respond.Headers}
		if r.Respond.Status != 0 {
			rs.Status = r.Respond.Status
		}
		if rs.Status < 100 || rs.Status > 999 {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid status",
				Detail: fmt.Sprintf("status %d is not an HTTP status code", rs.Status), Subject: r.Respond.DeclRange.Ptr()})
		}
		rt.Respond = rs
	}
	if sl := r.Slice; sl != nil {
		rt.Slice, diags = c.buildSlice(sl, diags)
		if r.Backend == nil {
			diags = append(diags, rangeErr(sl.DeclRange, "Slice without a backend", "a slice block needs the route's backend to fetch segments from"))
		}
	}
	diags = append(diags, c.buildRouteFile(rt, r)...)
	if r.Processors != nil {
		var d hcl.Diagnostics
		rt.Processors, d = buildProcessors(r.Processors)
		diags = append(diags, d...)
	}
	diags = append(diags, c.buildCompute(r, rt)...)
	switch {
	case rt.Respond != nil && rt.Backend != "":
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Conflicting route",
			Detail: "a route either answers itself (respond) or forwards to a backend, not both", Subject: r.DeclRange.Ptr()})
	case rt.Respond == nil && r.Backend == nil && rt.Static == nil && rt.Compute == nil && r.Compute == nil && r.Chain == nil:
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Route has nothing to do",
			Detail: fmt.Sprintf("route %q needs a backend (backend = backend.NAME), a respond block or a tenant (compute = tenant.NAME)", r.Prefix), Subject: r.DeclRange.Ptr()})
	}
	return rt, diags
}

// buildCache reads the `cache` block.
func (c *Config) buildCache(cs *cacheSchema) hcl.Diagnostics {
	c.Cache = Cache{TargetedFields: []string{httpcache.CDNCacheControl}, HeuristicMax: httpcache.DefaultHeuristicMax}
	if cs == nil {
		return nil
	}
	diags := durAttr(cs.HeuristicMaxRange, cs.HeuristicMax, &c.Cache.HeuristicMax)
	if a := cs.TargetedFields; a != nil {
		names, d := stringOrList(a)
		diags = append(diags, d...)
		c.Cache.TargetedFields = nil
		for _, n := range names {
			canon := http.CanonicalHeaderKey(n)
			switch {
			case n == "" || strings.ContainsAny(n, " \t\r\n:,;=\"()"):
				diags = append(diags, attrErr(a, "Invalid field name", fmt.Sprintf("%q is not an HTTP field name", n)))
			case canon == "Cache-Control":
				diags = append(diags, attrErr(a, "Invalid targeted field", "Cache-Control is what a targeted field overrides (RFC 9213); list only targeted fields such as CDN-Cache-Control"))
			case slices.Contains(c.Cache.TargetedFields, canon):
				diags = append(diags, attrErr(a, "Duplicate targeted field", fmt.Sprintf("%q is listed twice", n)))
			default:
				c.Cache.TargetedFields = append(c.Cache.TargetedFields, canon)
			}
		}
	}
	return diags
}

func (c *Config) buildSlice(sl *sliceSchema, diags hcl.Diagnostics) (*Slice, hcl.Diagnostics) {
	out := &Slice{Size: DefaultSliceSize, Stage: or(sl.Stage, "response"), OnFailure: or(sl.OnFailure, "pass"),
		TransitBuffer: DefaultTransitBuffer, Plugin: or(sl.Plugin, "slicer"), DeclRange: sl.DeclRange}
	diags = append(diags, sizeAttr(sl.SizeRange, sl.Size, &out.Size)...)
	diags = append(diags, sizeAttr(sl.TransitBufferRange, sl.TransitBuffer, &out.TransitBuffer)...)
	if out.Size < 64<<10 {
		diags = append(diags, rangeErr(sl.SizeRange, "Segment size too small", fmt.Sprintf("%d bytes: use at least 64KiB (each segment is one origin request)", out.Size)))
	}
	if out.TransitBuffer < 4<<10 {
		diags = append(diags, rangeErr(sl.TransitBufferRange, "Transit buffer too small", "use at least 4KiB"))
	}
	switch out.Stage {
	case "response", "fetch":
	default:
		diags = append(diags, rangeErr(sl.StageRange, "Invalid slice stage", `use "response" (the GET's headers decide) or "fetch" (a HEAD request first)`))
	}
	switch out.OnFailure {
	case "fail", "pass", "retry":
	default:
		diags = append(diags, rangeErr(sl.OnFailureRange, "Invalid on_failure", `use "fail" (503), "pass" (stream uncached) or "retry" (fetch unsliced)`))
	}
	if sl.When != nil {
		diags = append(diags, CheckRequestExpr(sl.When.Expr)...)
		out.When = sl.When.Expr
	}
	return out, diags
}

// backendRef resolves `backend.NAME` (or a string "NAME") to a declared backend.
func (c *Config) backendRef(a *hcl.Attribute) (string, hcl.Diagnostics) {
	if tr, d := hcl.AbsTraversalForExpr(a.Expr); !d.HasErrors() {
		if len(tr) == 2 && tr.RootName() == "backend" {
			if at, ok := tr[1].(hcl.TraverseAttr); ok {
				if _, ok := c.Backends[at.Name]; !ok {
					return "", hcl.Diagnostics{attrErr(a, "Unknown backend", fmt.Sprintf("no backend %q is declared; declared: %s", at.Name, c.backendNames()))}
				}
				return at.Name, nil
			}
		}
	}
	var s string
	if d := gohcl.DecodeExpression(a.Expr, baseContext(), &s); !d.HasErrors() {
		if _, ok := c.Backends[s]; ok {
			return s, nil
		}
	}
	return "", hcl.Diagnostics{attrErr(a, "Invalid backend reference", fmt.Sprintf("use backend.NAME with a declared backend (%s)", c.backendNames()))}
}

func (c *Config) backendNames() string {
	var n []string
	for k := range c.Backends {
		n = append(n, k)
	}
	sort.Strings(n)
	if len(n) == 0 {
		return "none"
	}
	return strings.Join(n, ", ")
}

func stringOrList(a *hcl.Attribute) ([]string, hcl.Diagnostics) {
	var one string
	if d := gohcl.DecodeExpression(a.Expr, baseContext(), &one); !d.HasErrors() {
		return []string{one}, nil
	}
	var list []string
	d := gohcl.DecodeExpression(a.Expr, baseContext(), &list)
	return list, d
}

func attrErr(a *hcl.Attribute, summary, detail string) *hcl.Diagnostic {
	d := rangeErr(hcl.Range{}, summary, detail)
	if a != nil {
		d.Subject = a.Expr.Range().Ptr()
		d.Context = a.Range.Ptr()
	}
	return d
}

func rangeErr(r hcl.Range, summary, detail string) *hcl.Diagnostic {
	d := &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: detail}
	if r.Filename != "" {
		d.Subject = r.Ptr()
	}
	return d
}

func sizeAttr(a hcl.Range, v string, dst *int64) hcl.Diagnostics {
	if v == "" {
		return nil
	}
	n, err := ParseSize(v)
	if err != nil {
		return hcl.Diagnostics{rangeErr(a, "Invalid size", err.Error())}
	}
	*dst = n
	return nil
}

func durAttr(a hcl.Range, v string, dst *time.Duration) hcl.Diagnostics {
	if v == "" {
		return nil
	}
	d, err := ParseDuration(v)
	if err != nil {
		return hcl.Diagnostics{rangeErr(a, "Invalid duration", err.Error())}
	}
	*dst = d
	return nil
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
