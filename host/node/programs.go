package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/edgehost/edgehost/host/admin"
	"github.com/edgehost/edgehost/host/config"
	"github.com/edgehost/edgehost/host/programs"
	"github.com/edgehost/edgehost/plugins/pluginapi"
	pluginv1 "github.com/edgehost/edgehost/proto/edgehost/plugin/v1"
)

// Tenants' programs (issue 12): the admin API over package programs, and
// the swap that makes a version live.
//
//	GET  /tenants                          every tenant: backend, live version, slots, counters
//	GET  /tenants/NAME/programs            the tenant's versions, newest first
//	POST /tenants/NAME/program             body: the program (streamed, at most programs.MaxSize)
//	POST /tenants/NAME/rollback[?version=N] without N: the previous live version
//	POST /tenants/NAME/debug?url=PATH      a request under GDB: streams "gdb: target remote ADDR",
//	                                       then the program's answer (allow_debug; process backend)
//
// All of them need the admin token (the admin API's Extra handlers).

// tenantPrograms is what Prepare takes: tenant → the file its block names.
func tenantPrograms(cfg *config.Config) map[string]string {
	out := map[string]string{}
	for name, t := range cfg.Tenants {
		if t.Program != "" {
			out[name] = t.Program
		}
	}
	return out
}

// swapTenant makes the staged program of tenant serve: its plugin is
// reconfigured in place (pluginhost.Reconfigure): the compute plugin boots
// the new program (and warms it) beside the running one, switches new
// requests to it, and lets the old one finish its requests; the other
// tenants are not touched. It returns the program's boot time.
func (n *node) swapTenant(ctx context.Context, tenant string) (time.Duration, error) {
	t := n.srv.Config().Tenants[tenant]
	if t == nil {
		return 0, fmt.Errorf("no tenant %q in the config", tenant)
	}
	if err := n.plugins.Reconfigure(ctx, t.Plugin); err != nil {
		// The plugin's own words (which program, why it did not boot,
		// its last output) without the manager's frame around them.
		msg := err.Error()
		if _, after, ok := strings.Cut(msg, "configure: "); ok {
			return 0, fmt.Errorf("the new plugin instance refused it: %s", after)
		}
		return 0, err
	}
	return n.bootTime(ctx, t.Plugin)(tenant), nil
}

// bootTime returns the boot times that plugin reports, by tenant.
func (n *node) bootTime(ctx context.Context, plugin string) func(string) time.Duration {
	st, _ := n.plugins.ComputeStatus(ctx, plugin)
	return func(tenant string) time.Duration {
		for _, s := range st {
			if s.GetName() == tenant {
				return time.Duration(s.GetBootTimeUs()) * time.Microsecond
			}
		}
		return 0
	}
}

// loadPlugins starts or swaps the config's plugins with the config's
// new program files staged, and records which went live.
func (n *node) loadPlugins(ctx context.Context, cfg *config.Config) error {
	change, err := n.programs.Prepare(tenantPrograms(cfg))
	if err != nil {
		return err
	}
	diags := n.plugins.Load(ctx, pluginSpecs(cfg))
	if diags.HasErrors() {
		cfg.WriteDiagnostics(os.Stderr, diags)
		change.Done(diags, nil)
		return fmt.Errorf("plugins: %s", diags.Error())
	}
	boots := map[string]func(string) time.Duration{}
	change.Done(nil, func(tenant string) time.Duration {
		t := cfg.Tenants[tenant]
		if t == nil {
			return 0
		}
		if boots[t.Plugin] == nil {
			boots[t.Plugin] = n.bootTime(ctx, t.Plugin)
		}
		return boots[t.Plugin](tenant)
	})
	return nil
}

func (n *node) programHandlers() map[string]http.Handler {
	return map[string]http.Handler{
		"GET /tenants":                  http.HandlerFunc(n.tenantsHandler),
		"GET /tenants/{name}/programs":  http.HandlerFunc(n.versionsHandler),
		"POST /tenants/{name}/program":  http.HandlerFunc(n.uploadHandler),
		"POST /tenants/{name}/rollback": http.HandlerFunc(n.rollbackHandler),
		"POST /tenants/{name}/debug":    http.HandlerFunc(n.debugHandler),
	}
}

// tenant is the config's tenant named in the path, or a 404.
func (n *node) tenant(w http.ResponseWriter, r *http.Request) *config.Tenant {
	name := r.PathValue("name")
	cfg := n.srv.Config()
	if t := cfg.Tenants[name]; t != nil {
		return t
	}
	var names []string
	for k := range cfg.Tenants {
		names = append(names, k)
	}
	sort.Strings(names)
	admin.WriteError(w, http.StatusNotFound, fmt.Sprintf("no tenant %q in the config (tenants: %s)", name, strings.Join(names, ", ")))
	return nil
}

func (n *node) uploadHandler(w http.ResponseWriter, r *http.Request) {
	t := n.tenant(w, r)
	if t == nil {
		return
	}
	if r.ContentLength > n.programs.MaxSize() {
		admin.WriteError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("%d bytes: %v (%d bytes)", r.ContentLength, programs.ErrTooLarge, n.programs.MaxSize()))
		return
	}
	from := "admin " + r.RemoteAddr
	if who := r.Header.Get("Edgehost-Uploader"); who != "" {
		from += " by " + strings.Map(printable, who)
	}
	// The swap is not cut short by a client that goes away: it either
	// completes or leaves the old version serving.
	ctx := context.WithoutCancel(r.Context())
	v, err := n.programs.Upload(ctx, t.Name, r.Body, from, n.swapTenant)
	n.answerChange(w, t.Name, "upload", v, err)
}

func (n *node) rollbackHandler(w http.ResponseWriter, r *http.Request) {
	t := n.tenant(w, r)
	if t == nil {
		return
	}
	var version uint64
	if s := r.URL.Query().Get("version"); s != "" {
		var err error
		if version, err = strconv.ParseUint(s, 10, 64); err != nil || version == 0 {
			admin.WriteError(w, http.StatusBadRequest, fmt.Sprintf("version %q: want a version number (edgehost programs %s lists them)", s, t.Name))
			return
		}
	}
	v, err := n.programs.Rollback(context.WithoutCancel(r.Context()), t.Name, version, n.swapTenant)
	n.answerChange(w, t.Name, "rollback", v, err)
}

func (n *node) answerChange(w http.ResponseWriter, tenant, what string, v programs.Version, err error) {
	if err != nil {
		code := http.StatusInternalServerError
		switch {
		case errors.Is(err, programs.ErrTooLarge):
			code = http.StatusRequestEntityTooLarge
		case errors.Is(err, programs.ErrBadProgram), errors.Is(err, programs.ErrRejected):
			code = http.StatusUnprocessableEntity
		case errors.Is(err, programs.ErrNoVersion):
			code = http.StatusNotFound
		case strings.Contains(err.Error(), "already live"):
			code = http.StatusConflict
		}
		n.log.Warn(what+" refused", "tenant", tenant, "error", err)
		admin.WriteError(w, code, err.Error())
		return
	}
	admin.WriteJSON(w, v)
}

// debugHandler runs one GET of url through the tenant's program in a
// fresh instance under a GDB stub (sandbox/debug.go). The answer streams:
// first the address GDB connects to, then, when the session ends, the
// program's response.
func (n *node) debugHandler(w http.ResponseWriter, r *http.Request) {
	t := n.tenant(w, r)
	if t == nil {
		return
	}
	target := r.URL.Query().Get("url")
	if !strings.HasPrefix(target, "/") {
		admin.WriteError(w, http.StatusBadRequest, fmt.Sprintf("url %q: want a path such as /hello/x", target))
		return
	}
	// A free loopback port for the plugin's stub (the plugin listens on
	// it; the host only picks it, so that it can print it first).
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		admin.WriteError(w, http.StatusInternalServerError, err.Error())
		return
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	c, err := n.plugins.Compute(t.Plugin)
	if err != nil {
		admin.WriteError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintf(w, "gdb: target remote 127.0.0.1:%d   (tenant %s, GET %s; the program stops right after it received the request)\n", port, t.Name, target)
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	n.log.Info("debug session", "tenant", t.Name, "url", target, "gdb", port)
	resp, err := c.Handle(r.Context(), &pluginapi.Request{Head: &pluginv1.RequestHead{Method: "GET", Url: target, Host: r.Host,
		Tenant: t.Name, DebugPort: uint32(port)}})
	if err != nil {
		fmt.Fprintf(w, "error: %v\n", err)
		return
	}
	defer resp.Body.Close()
	fmt.Fprintf(w, "response: %d\n", resp.Head.GetStatus())
	for _, h := range resp.Head.GetHeaders() {
		for _, v := range h.GetValues() {
			fmt.Fprintf(w, "%s: %s\n", h.GetName(), v)
		}
	}
	fmt.Fprintln(w)
	io.Copy(w, io.LimitReader(resp.Body, 1<<20))
}

func (n *node) versionsHandler(w http.ResponseWriter, r *http.Request) {
	t := n.tenant(w, r)
	if t == nil {
		return
	}
	vs, err := n.programs.Versions(t.Name)
	if err != nil {
		admin.WriteError(w, http.StatusInternalServerError, err.Error())
		return
	}
	if vs == nil {
		vs = []programs.Version{}
	}
	admin.WriteJSON(w, vs)
}

// TenantState is one tenant in GET /tenants.
type TenantState struct {
	Name        string            `json:"name"`
	Plugin      string            `json:"plugin"`
	Hosts       []string          `json:"hosts,omitempty"`
	Live        *programs.Version `json:"live,omitempty"`
	Backend     string            `json:"backend"`
	BackendWhy  string            `json:"backend_why,omitempty"`
	Program     string            `json:"program,omitempty"`
	SHA256      string            `json:"sha256,omitempty"`
	Concurrency uint32            `json:"concurrency"`
	Busy        int64             `json:"busy"`
	Queued      int64             `json:"queued"`
	Requests    int64             `json:"requests"`
	Faults      int64             `json:"faults"`
	Timeouts    int64             `json:"timeouts"`
	Rejected    int64             `json:"rejected"`
	Booted      int64             `json:"booted"`
	BootTime    programs.Duration `json:"boot_time"`
	LastError   string            `json:"last_error,omitempty"`
	LastErrorAt *time.Time        `json:"last_error_at,omitempty"`
	Error       string            `json:"error,omitempty"` // the plugin's status could not be read
}

func (n *node) tenantsHandler(w http.ResponseWriter, r *http.Request) {
	admin.WriteJSON(w, n.tenantStates(r.Context()))
}

// tenantStates reports every tenant of the config with its plugin's
// status (GET /tenants, the status page).
func (n *node) tenantStates(ctx context.Context) []TenantState {
	cfg := n.srv.Config()
	statuses := map[string]map[string]*pluginv1.TenantStatus{}
	errs := map[string]error{}
	out := []TenantState{}
	for _, name := range sortedKeys(cfg.Tenants) {
		t := cfg.Tenants[name]
		if _, done := statuses[t.Plugin]; !done && errs[t.Plugin] == nil {
			ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			st, err := n.plugins.ComputeStatus(ctx, t.Plugin)
			cancel()
			if err != nil {
				errs[t.Plugin] = err
			} else {
				statuses[t.Plugin] = map[string]*pluginv1.TenantStatus{}
				for _, s := range st {
					statuses[t.Plugin][s.GetName()] = s
				}
			}
		}
		ts := TenantState{Name: name, Plugin: t.Plugin, Hosts: t.Hosts}
		if v, ok, err := n.programs.Live(name); err == nil && ok {
			ts.Live = &v
		}
		if err := errs[t.Plugin]; err != nil {
			ts.Error = err.Error()
		} else if s := statuses[t.Plugin][name]; s != nil {
			ts.Backend, ts.BackendWhy, ts.Program, ts.SHA256 = s.GetBackend(), s.GetBackendWhy(), s.GetProgram(), s.GetProgramSha256()
			ts.Concurrency, ts.Busy, ts.Queued, ts.Requests = s.GetConcurrency(), s.GetBusy(), s.GetQueued(), s.GetRequests()
			ts.Faults, ts.Timeouts, ts.Rejected, ts.Booted = s.GetFaults(), s.GetTimeouts(), s.GetRejected(), s.GetBooted()
			ts.BootTime = programs.Duration(time.Duration(s.GetBootTimeUs()) * time.Microsecond)
			ts.LastError = s.GetLastError()
			if ms := s.GetLastErrorUnixMs(); ms != 0 {
				at := time.UnixMilli(ms).UTC()
				ts.LastErrorAt = &at
			}
		} else {
			ts.Error = "the plugin does not report this tenant"
		}
		out = append(out, ts)
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func printable(r rune) rune {
	if r < 0x20 || r == 0x7f {
		return -1
	}
	return r
}
