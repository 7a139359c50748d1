package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/zclconf/go-cty/cty"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/edgehost/edgehost/plugins/compute/sandbox"
	"github.com/edgehost/edgehost/plugins/pluginapi"
	pluginv1 "github.com/edgehost/edgehost/proto/edgehost/plugin/v1"
)

// Plugin is the compute plugin. Its settings:
//
//	plugin "compute" {
//	  self_socket = "./var/self.sock"   # the host's self-request socket (fetch)
//	  tenant "hello" {
//	    program          = "bin/programs/hello"   # a static x86-64 ELF
//	    backend          = "auto"     # auto, process, kvm
//	    concurrency      = 2          # processes or VMs
//	    max_boot_time    = "16s"      # to the snapshot point
//	    max_request_time = "8s"
//	    max_queue_time   = "1s"       # waiting for a free slot, then 503
//	    max_queue        = 64         # waiting requests; more get 503 at once
//	    max_memory       = "256MiB"
//	    max_response_size = "16MiB"
//	    ephemeral        = true       # every request from the snapshot
//	    allow_debug      = false      # edgehost debug TENANT URL: a request under GDB (process backend)
//	    warm_requests    = 0          # GETs to warm_path answered (no 5xx) before it goes live
//	    warm_path        = "/"
//	    second_chance    = false      # a timed-out or crashed request: 1 s more, flagged
//	    recycle_after    = 0          # process: a new process after N requests
//	    arguments        = []
//	    environment      = {}
//	  }
//	}
//
// Lifecycle: Configure loads every tenant's program and boots it to its
// snapshot (a program that fails to boot fails the configuration, and the
// running tenants stay as they were); Handle routes by
// RequestHead.tenant; Shutdown stops every slot.
//
// Configure is incremental (issue 12: a program goes live without
// disturbing the other tenants): a tenant whose program bytes and
// settings are unchanged keeps running; a changed one is booted (and
// warmed) beside the old one, then new requests go to it while the old
// one finishes its requests (queued ones included) and is closed.
type Plugin struct {
	Version string

	mu      sync.RWMutex
	tenants map[string]*entry
	waiting map[string]bool // tenants declared without a program (uploads only)
}

// entry is a running tenant.
type entry struct {
	t     *sandbox.Tenant
	key   string         // what it was built from; an equal key reuses it
	prog  program        // where its program came from
	calls sync.WaitGroup // requests routed to it (added under Plugin.mu)
}

// program is where a tenant's program came from.
type program struct{ path, sha256 string }

// retire closes e once the requests routed to it are done.
func (e *entry) retire() {
	go func() {
		e.calls.Wait()
		e.t.Close()
	}()
}

var durationDoc = `a duration ("500ms", "8s")`

// Schema is the plugin's block.
func Schema() *pluginapi.Schema {
	tenant := &pluginapi.Schema{Attributes: []pluginapi.Attribute{
		{Name: "program", Type: cty.String, Doc: "path of the program, a static x86-64 ELF; none: the tenant waits for an upload (503 until then)"},
		{Name: "backend", Type: cty.String, Doc: `"auto" (default), "process" or "kvm"`},
		{Name: "concurrency", Type: cty.Number, Doc: "slots (processes or VMs); default 2"},
		{Name: "max_boot_time", Type: cty.String, Doc: durationDoc + "; default 16s"},
		{Name: "max_request_time", Type: cty.String, Doc: durationDoc + "; default 8s"},
		{Name: "max_queue_time", Type: cty.String, Doc: durationDoc + "; default 1s"},
		{Name: "max_queue", Type: cty.Number, Doc: "requests waiting for a slot; more get 503 at once; default 64"},
		{Name: "max_memory", Type: cty.String, Doc: `bytes per slot ("256MiB"); default 256MiB`},
		{Name: "max_response_size", Type: cty.String, Doc: `response body bytes ("16MiB"); default 16MiB`},
		{Name: "ephemeral", Type: cty.Bool, Doc: "every request starts from the snapshot; default true"},
		{Name: "allow_debug", Type: cty.Bool, Doc: "`edgehost debug TENANT URL` may run a request under GDB (process backend: ptrace); default false"},
		{Name: "warm_requests", Type: cty.Number, Doc: "GET requests (to warm_path) the program must answer, without a 5xx, before it goes live; default 0"},
		{Name: "warm_path", Type: cty.String, Doc: `the warm-up requests' path; default "/"`},
		{Name: "second_chance", Type: cty.Bool, Doc: "a request that timed out or crashed goes to the program again, flagged, to answer within 1s; default false"},
		{Name: "recycle_after", Type: cty.Number, Doc: "process backend: a new process after this many requests; 0 = never"},
		{Name: "arguments", Type: cty.List(cty.String), Doc: "argv after argv[0], which is the tenant's name"},
		{Name: "environment", Type: cty.Map(cty.String), Doc: "the program's environment"},
		{Name: "hosts", Type: cty.List(cty.String), Doc: "Host names the host routes to this tenant (read by the host, not the plugin)"},
	}}
	return &pluginapi.Schema{
		Attributes: []pluginapi.Attribute{
			{Name: "self_socket", Type: cty.String, Doc: "the host's self-request Unix socket, for programs' fetches"},
		},
		Blocks: []pluginapi.Block{{TypeName: "tenant", Nesting: pluginapi.NestingMap, LabelName: "name", Body: tenant}},
	}
}

// Info describes the plugin and its settings.
func (p *Plugin) Info(context.Context) (*pluginapi.Info, error) {
	return &pluginapi.Info{Name: "compute", Version: p.Version, Schema: Schema()}, nil
}

// Configure loads and boots every new or changed tenant, and warms those
// that ask for it; unchanged tenants keep running.
func (p *Plugin) Configure(ctx context.Context, cfg pluginapi.Config) error {
	v := cfg.Value
	socket := str(v, "self_socket")
	var fetch sandbox.Fetcher
	if socket != "" {
		fetch = selfFetcher(socket)
	}
	p.mu.RLock()
	cur := p.tenants
	p.mu.RUnlock()
	next := map[string]*entry{}
	waiting := map[string]bool{}
	var started []*entry
	fail := func(err error) error {
		for _, e := range started {
			e.t.Close()
		}
		return err
	}
	if attr(v, "tenant") {
		if tv := v.GetAttr("tenant"); !tv.IsNull() {
			for it := tv.ElementIterator(); it.Next(); {
				k, b := it.Element()
				name := k.AsString()
				s, err := settings(b)
				if err != nil {
					return fail(fmt.Errorf("tenant %q: %w", name, err))
				}
				if s.Program == "" {
					waiting[name] = true
					continue
				}
				elf, err := os.ReadFile(s.Program)
				if err != nil {
					return fail(fmt.Errorf("tenant %q: %w", name, err))
				}
				sum := sha256.Sum256(elf)
				e := &entry{prog: program{s.Program, hex.EncodeToString(sum[:])}}
				e.key = tenantKey(e.prog.sha256, socket, b)
				if old := cur[name]; old != nil && old.key == e.key {
					next[name] = old
					continue
				}
				if e.t, err = sandbox.NewTenant(name, elf, s, fetch, pluginapi.Logger()); err != nil {
					return fail(err)
				}
				started = append(started, e)
				if err := warm(ctx, e.t, name, b); err != nil {
					return fail(err)
				}
				next[name] = e
			}
		}
	}
	p.mu.Lock()
	old := p.tenants
	p.tenants, p.waiting = next, waiting
	p.mu.Unlock()
	for name, e := range old {
		if next[name] != e {
			e.retire()
		}
	}
	return nil
}

// tenantKey identifies what a tenant is built from: its program's bytes,
// the self-request socket and its settings (the program's path aside).
func tenantKey(sum, socket string, block cty.Value) string {
	attrs := block.AsValueMap()
	attrs["program"] = cty.NullVal(cty.String)
	return sum + "|" + socket + "|" + cty.ObjectVal(attrs).GoString()
}

// warm sends a tenant's warm-up requests (warm_requests to warm_path):
// a program that fails one, or answers it with a 5xx, does not go live
// (issue 12: "optionally warmed with N requests").
func warm(ctx context.Context, t *sandbox.Tenant, name string, v cty.Value) error {
	n := 0
	if attr(v, "warm_requests") && !v.GetAttr("warm_requests").IsNull() {
		i, acc := v.GetAttr("warm_requests").AsBigFloat().Int64()
		if acc != 0 || i < 0 || i > 1000 {
			return fmt.Errorf("tenant %q: warm_requests: want a whole number from 0 to 1000", name)
		}
		n = int(i)
	}
	path := str(v, "warm_path")
	if path == "" {
		path = "/"
	}
	if !strings.HasPrefix(path, "/") {
		return fmt.Errorf("tenant %q: warm_path: want a path starting with /, got %q", name, path)
	}
	for i := 1; i <= n; i++ {
		r, err := t.Handle(ctx, sandbox.RequestInfo{Method: "GET", URL: path, Host: "localhost",
			Headers: [][2]string{{"Edgehost-Warmup", strconv.Itoa(i)}}}, nil)
		if err == nil && r.Status >= 500 {
			err = fmt.Errorf("answered %d", r.Status)
		}
		if err != nil {
			return fmt.Errorf("tenant %q: warm-up request %d of %d (GET %s) failed: %w", name, i, n, path, err)
		}
	}
	return nil
}

func attr(v cty.Value, name string) bool {
	return v.Type().IsObjectType() && v.Type().HasAttribute(name)
}

func str(v cty.Value, name string) string {
	if !attr(v, name) || v.GetAttr(name).IsNull() {
		return ""
	}
	return v.GetAttr(name).AsString()
}

// settings reads a tenant block.
func settings(v cty.Value) (sandbox.Settings, error) {
	s := sandbox.Settings{Program: str(v, "program"), Backend: str(v, "backend"), Ephemeral: true}
	num := func(name string) (int, error) {
		if !attr(v, name) || v.GetAttr(name).IsNull() {
			return 0, nil
		}
		bf := v.GetAttr(name).AsBigFloat()
		n, acc := bf.Int64()
		if acc != 0 || n < 0 || n > 1<<20 {
			return 0, fmt.Errorf("%s: want a whole number from 0 to %d", name, 1<<20)
		}
		return int(n), nil
	}
	var err error
	if s.Concurrency, err = num("concurrency"); err != nil {
		return s, err
	}
	if s.RecycleAfter, err = num("recycle_after"); err != nil {
		return s, err
	}
	if s.MaxQueue, err = num("max_queue"); err != nil {
		return s, err
	}
	for _, d := range []struct {
		name string
		to   *time.Duration
	}{{"max_boot_time", &s.MaxBootTime}, {"max_request_time", &s.MaxRequestTime}, {"max_queue_time", &s.MaxQueueTime}} {
		if t := str(v, d.name); t != "" {
			if *d.to, err = time.ParseDuration(t); err != nil || *d.to <= 0 {
				return s, fmt.Errorf("%s: want a positive duration such as \"8s\", got %q", d.name, t)
			}
		}
	}
	for _, b := range []struct {
		name string
		to   *uint64
	}{{"max_memory", &s.MaxMemory}, {"max_response_size", &s.MaxResponse}} {
		if t := str(v, b.name); t != "" {
			if *b.to, err = parseSize(t); err != nil {
				return s, fmt.Errorf("%s: %w", b.name, err)
			}
		}
	}
	if s.MaxMemory != 0 && s.MaxMemory < 4<<20 {
		return s, fmt.Errorf("max_memory: at least 4MiB")
	}
	if attr(v, "ephemeral") && !v.GetAttr("ephemeral").IsNull() {
		s.Ephemeral = v.GetAttr("ephemeral").True()
	}
	if attr(v, "allow_debug") && !v.GetAttr("allow_debug").IsNull() {
		s.AllowDebug = v.GetAttr("allow_debug").True()
	}
	if attr(v, "second_chance") && !v.GetAttr("second_chance").IsNull() {
		s.SecondChance = v.GetAttr("second_chance").True()
	}
	switch s.Backend {
	case "", "auto", "process", "kvm":
	default:
		return s, fmt.Errorf("backend: want \"auto\", \"process\" or \"kvm\", got %q", s.Backend)
	}
	if attr(v, "arguments") && !v.GetAttr("arguments").IsNull() {
		for it := v.GetAttr("arguments").ElementIterator(); it.Next(); {
			_, a := it.Element()
			s.Arguments = append(s.Arguments, a.AsString())
		}
	}
	if attr(v, "environment") && !v.GetAttr("environment").IsNull() {
		for it := v.GetAttr("environment").ElementIterator(); it.Next(); {
			k, e := it.Element()
			if strings.ContainsAny(k.AsString(), "=\x00") {
				return s, fmt.Errorf("environment: bad name %q", k.AsString())
			}
			s.Environment = append(s.Environment, k.AsString()+"="+e.AsString())
		}
		sort.Strings(s.Environment)
	}
	return s, nil
}

// parseSize reads "256MiB", "64MB", "1GiB", "4096".
func parseSize(s string) (uint64, error) {
	t := strings.TrimSpace(s)
	mult := uint64(1)
	for _, u := range []struct {
		suffix string
		m      uint64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1}} {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.m
			break
		}
	}
	n, err := strconv.ParseUint(t, 10, 64)
	if err != nil || n == 0 || n > (1<<40)/mult {
		return 0, fmt.Errorf("want a size such as \"256MiB\", got %q", s)
	}
	return n * mult, nil
}

// Status reports every tenant, by name.
func (p *Plugin) Status(context.Context) ([]*pluginv1.TenantStatus, error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	var out []*pluginv1.TenantStatus
	for name, e := range p.tenants {
		st := e.t.Status()
		ts := &pluginv1.TenantStatus{Name: name, Backend: st.Backend, BackendWhy: st.Why,
			Program: e.prog.path, ProgramSha256: e.prog.sha256,
			Concurrency: uint32(st.Concurrency), Busy: st.Busy, Queued: st.Queued, Requests: st.Requests,
			Faults: st.Faults, Timeouts: st.Timeouts, Rejected: st.Rejected, Booted: st.Booted,
			BootTimeUs: st.BootTime.Microseconds(), QueueWaitUs: st.QueueWait.Microseconds(), LastError: st.LastError}
		if !st.LastErrorAt.IsZero() {
			ts.LastErrorUnixMs = st.LastErrorAt.UnixMilli()
		}
		out = append(out, ts)
	}
	for name := range p.waiting {
		out = append(out, &pluginv1.TenantStatus{Name: name, LastError: "no program yet"})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Health is fine while the plugin runs: a tenant's failing instances are
// replaced by the tenant itself.
func (p *Plugin) Health(context.Context) error { return nil }

// Shutdown stops every tenant.
func (p *Plugin) Shutdown(context.Context) error {
	p.mu.Lock()
	old := p.tenants
	p.tenants = nil
	p.mu.Unlock()
	for _, e := range old {
		e.t.Close()
	}
	return nil
}

// maxRequestBody caps the request body a program is given.
const maxRequestBody = 16 << 20

// Handle runs a request through its tenant's program. A request the
// program did not answer (timeout, fault, full queue) is answered here
// with its status; only a missing tenant is a gRPC error.
func (p *Plugin) Handle(ctx context.Context, req *pluginapi.Request) (*pluginapi.Response, error) {
	h := req.Head
	p.mu.RLock()
	e := p.tenants[h.GetTenant()]
	if e != nil {
		e.calls.Add(1) // under the lock: a Configure that replaces e waits for it
		defer e.calls.Done()
	}
	waiting := p.waiting[h.GetTenant()]
	p.mu.RUnlock()
	if waiting && h.GetDebugPort() != 0 {
		return nil, status.Errorf(codes.FailedPrecondition, "tenant %q has no program yet: nothing to debug", h.GetTenant())
	}
	if waiting {
		return failure(503, fmt.Sprintf("tenant %q has no program yet (edgehost upload %s FILE)", h.GetTenant(), h.GetTenant())), nil
	}
	if e == nil {
		return nil, status.Errorf(codes.NotFound, "no tenant %q", h.GetTenant())
	}
	t := e.t
	var body []byte
	if req.Body != nil {
		b, err := io.ReadAll(io.LimitReader(req.Body, maxRequestBody+1))
		if err != nil {
			return nil, status.Errorf(codes.Aborted, "request body: %v", err)
		}
		if len(b) > maxRequestBody {
			return failure(413, "request body larger than 16MiB"), nil
		}
		body = b
	}
	info := sandbox.RequestInfo{Method: h.GetMethod(), URL: h.GetUrl(), Host: h.GetHost(), Depth: h.GetDepth(), TxID: h.GetTxid()}
	for _, hd := range h.GetHeaders() {
		for _, v := range hd.GetValues() {
			info.Headers = append(info.Headers, [2]string{hd.GetName(), v})
		}
	}
	var r *sandbox.Reply
	var err error
	if port := h.GetDebugPort(); port != 0 {
		// Only the host's admin sets it (edgehost debug).
		ln, lerr := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port))))
		if lerr != nil {
			return nil, status.Errorf(codes.Unavailable, "debug: %v", lerr)
		}
		r, err = t.Debug(ctx, info, body, ln)
		if errors.Is(err, sandbox.ErrNoDebug) {
			return nil, status.Error(codes.FailedPrecondition, err.Error())
		}
	} else {
		r, err = t.Handle(ctx, info, body)
	}
	if err != nil {
		var f *sandbox.Failure
		if errors.As(err, &f) {
			return failure(f.Status, f.Reason), nil
		}
		return nil, err
	}
	return reply(r), nil
}

// reply turns a program's response into a response head and body. The
// program's caching wish becomes Cache-Control unless it set one itself:
// a ttl gives max-age (and stale-while-revalidate for a grace); no ttl or
// EH_RESP_NOCACHE gives no-store, so a program's response is stored only
// when the program says so.
func reply(r *sandbox.Reply) *pluginapi.Response {
	head := &pluginv1.ResponseHead{Status: int32(r.Status), ContentLength: int64(len(r.Body))}
	hasCC := false
	for _, h := range r.Headers {
		if strings.EqualFold(h[0], "Cache-Control") {
			hasCC = true
		}
		if strings.EqualFold(h[0], "Content-Length") || strings.EqualFold(h[0], "Transfer-Encoding") {
			continue
		}
		head.Headers = append(head.Headers, &pluginv1.Header{Name: h[0], Values: []string{h[1]}})
	}
	if r.ContentType != "" {
		head.Headers = append(head.Headers, &pluginv1.Header{Name: "Content-Type", Values: []string{r.ContentType}})
	}
	if !hasCC {
		cc := "no-store"
		if r.TTLms >= 0 && !r.NoCache {
			cc = "max-age=" + strconv.FormatInt(r.TTLms/1000, 10)
			if r.GraceMS > 0 {
				cc += ", stale-while-revalidate=" + strconv.FormatInt(r.GraceMS/1000, 10)
			}
		}
		head.Headers = append(head.Headers, &pluginv1.Header{Name: "Cache-Control", Values: []string{cc}})
	}
	return &pluginapi.Response{Head: head, Body: io.NopCloser(bytes.NewReader(r.Body))}
}

func failure(code int, why string) *pluginapi.Response {
	body := http.StatusText(code) + ": " + why + "\n"
	return &pluginapi.Response{
		Head: &pluginv1.ResponseHead{Status: int32(code), ContentLength: int64(len(body)), Headers: []*pluginv1.Header{
			{Name: "Content-Type", Values: []string{"text/plain; charset=utf-8"}},
			{Name: "Cache-Control", Values: []string{"no-store"}},
		}},
		Body: io.NopCloser(strings.NewReader(body)),
	}
}

// Header names of the host's self-request socket (host/server).
const (
	headerDepth  = "Edgehost-Depth"
	headerParent = "Edgehost-Parent"
)

// selfFetcher fetches programs' path-only URLs from the host's
// self-request socket, with the depth and parent transaction carried on:
// the host answers 508 past its max_depth.
func selfFetcher(socket string) sandbox.Fetcher {
	client := &http.Client{
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", socket)
			},
			MaxIdleConnsPerHost: 64,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return func(ctx context.Context, depth uint32, parent string, f *sandbox.FetchRequest) (*sandbox.FetchResult, error) {
		req, err := http.NewRequestWithContext(ctx, f.Method, "http://self"+f.URL, bytes.NewReader(f.Body))
		if err != nil {
			return nil, err
		}
		for _, h := range f.Headers {
			req.Header.Add(h[0], h[1])
		}
		req.Header.Set(headerDepth, strconv.FormatUint(uint64(depth), 10))
		if parent != "" {
			req.Header.Set(headerParent, parent)
		}
		resp, err := client.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
		if err != nil {
			return nil, err
		}
		return &sandbox.FetchResult{Status: resp.StatusCode, ContentType: resp.Header.Get("Content-Type"), Body: b}, nil
	}
}

var (
	_ pluginapi.Plugin        = (*Plugin)(nil)
	_ pluginapi.Compute       = (*Plugin)(nil)
	_ pluginapi.ComputeStatus = (*Plugin)(nil)
)
