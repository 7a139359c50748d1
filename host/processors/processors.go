// Package processors is the processors feature on the host's side
// (DESIGN §9, issue 16): body transforms chained by the formats they
// declare. A route's processors block asks for processors on the fetch
// side (between the origin and the cache) and on the delivery side
// (between the cache and the client); the chain builder (chain.go)
// places them by format, inserts the built-in converters (codec.go)
// where formats do not meet and says why, and never drops one silently.
//
// It attaches through the server's interfaces (host/server feature.go):
// a FetchStep that wraps the origin's body in the fetch chain before it
// is stored, and a DeliverStep that wraps the response writer of the
// route, so every response (hit, miss, pass, error page) goes through
// the delivery chain, which ends in what the client's Accept-Encoding
// takes. Routes without a processors block get neither: their hit path
// is untouched (and keeps the h1 fast path).
package processors

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/edgehost/edgehost/host/config"
	"github.com/edgehost/edgehost/host/server"
	"github.com/edgehost/edgehost/plugins/pluginapi"
)

// Options construct the feature.
type Options struct {
	Logger  *slog.Logger
	Plugins Plugins // nil: no plugin processors
}

// Plugins gives the plugins' declarations and Processor services
// (pluginhost.Manager).
type Plugins interface {
	Info(name string) (*pluginapi.Info, error)
	Processor(name string) (pluginapi.Processor, error)
}

// Processors is the feature. Lifecycle: New (no side effects) →
// attached by the server to every config → Close.
type Processors struct {
	log     *slog.Logger
	plugins Plugins

	mu   sync.Mutex
	sock string
	self *http.Client // ESI includes, through the self socket
}

// New returns the feature.
func New(o Options) *Processors {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Processors{log: o.Logger, plugins: o.Plugins}
}

// Close ends the self socket's idle connections.
func (p *Processors) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.self != nil {
		p.self.CloseIdleConnections()
	}
}

// Attach returns the steps of a route with a processors block.
func (p *Processors) Attach(cfg *config.Config, route *config.Route) (server.Steps, error) {
	rp := NewRoute(route)
	if rp == nil {
		return server.Steps{}, nil
	}
	rp.p, rp.log = p, p.log
	if err := rp.resolvePlugins(p.plugins); err != nil {
		return server.Steps{}, err
	}
	p.selfSocket(cfg.Listen.Self)
	st := server.Steps{Deliver: rp}
	if len(rp.fetch) > 0 {
		st.Fetch = fetchStep{rp}
	}
	return st, nil
}

func (p *Processors) selfSocket(sock string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.self != nil && p.sock == sock {
		return
	}
	p.sock = sock
	p.self = &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		},
		MaxIdleConnsPerHost: 64,
		DisableCompression:  true,
	}}
}

func (p *Processors) client() *http.Client {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.self
}

// Route is the processors of one route, compiled once per config.
type Route struct {
	p    *Processors
	log  *slog.Logger
	cfg  *config.Processors
	subs []Substitution

	fetch, deliver []Spec
	procs          map[string]pluginapi.Processor // "PLUGIN.PROCESSOR" → its service

	mu     sync.Mutex
	chains map[chainKey]Chain
}

type chainKey struct {
	side  Side
	start Format
	sink  string
}

// NewRoute compiles a route's processors block (nil: none).
func NewRoute(route *config.Route) *Route {
	pc := route.Processors
	if pc == nil {
		return nil
	}
	rp := &Route{log: slog.Default(), cfg: pc, chains: map[chainKey]Chain{}}
	for _, rx := range pc.Regex {
		rp.subs = append(rp.subs, Substitution{Pattern: rx.Pattern, Replace: []byte(rx.Replace)})
	}
	esiFetch := false
	for _, ref := range pc.Fetch {
		rp.fetch = append(rp.fetch, spec(ref, FetchSide))
		esiFetch = esiFetch || ref.Name == "esi"
	}
	esiDeliver := false
	for _, ref := range pc.Deliver {
		rp.deliver = append(rp.deliver, spec(ref, DeliverSide))
		esiDeliver = esiDeliver || ref.Name == "esi"
	}
	if esiFetch && !esiDeliver {
		// ESI marked on the fetch side is expanded on delivery.
		rp.deliver = append(rp.deliver, esiDeliverSpec)
	}
	return rp
}

func spec(ref config.ProcessorRef, side Side) Spec {
	s, ok := Lookup(ref.Name, side) // config checked the name
	if !ok {
		// A plugin's processor: its formats come with the plugin
		// (resolvePlugins); until then it takes nothing.
		s = Spec{Name: ref.Name}
	}
	if pos, ok := ParsePosition(ref.Position); ok && ref.Position != "default" {
		s.Pos = pos
	}
	return s
}

// Chain is the chain of side for a body of format start; sink is the
// content codings the client takes (delivery only).
func (rp *Route) Chain(side Side, start Format, sink []string) Chain {
	k := chainKey{side: side, start: start, sink: strings.Join(sink, ",")}
	rp.mu.Lock()
	defer rp.mu.Unlock()
	if c, ok := rp.chains[k]; ok {
		return c
	}
	var c Chain
	if side == FetchSide {
		c = Build(start, rp.fetch, BuildOptions{KeepEncoding: rp.cfg.KeepEncoding})
	} else {
		c = Build(start, rp.deliver, BuildOptions{Sink: sink})
	}
	if len(rp.chains) < 256 {
		rp.chains[k] = c
	}
	return c
}

// FormatOf is the format of a body from its header: Content-Encoding,
// refined by Content-Type for a body without one.
func FormatOf(h http.Header) Format {
	ce := strings.ToLower(strings.TrimSpace(h.Get("Content-Encoding")))
	switch ce {
	case "gzip", "x-gzip":
		return Gzip
	case "br":
		return Br
	case "", "identity":
	default:
		return Format(ce)
	}
	ct := strings.ToLower(h.Get("Content-Type"))
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	ct = strings.TrimSpace(ct)
	switch {
	case ct == "", strings.HasPrefix(ct, "text/"), strings.HasSuffix(ct, "+xml"), strings.HasSuffix(ct, "+json"),
		ct == "application/json", ct == "application/javascript", ct == "application/xml":
		return Text
	}
	return Format(ct)
}

// setCoding sets the Content-Encoding of format f.
func setCoding(h http.Header, f Format) {
	if c := f.Coding(); c == "identity" {
		h.Del("Content-Encoding")
	} else {
		h.Set("Content-Encoding", c)
	}
}

// weakETag: a transformed representation is no longer byte-identical
// to the origin's (RFC 9110 §8.8.1).
func weakETag(h http.Header) {
	if et := h.Get("Etag"); et != "" && !strings.HasPrefix(et, "W/") {
		h.Set("Etag", "W/"+et)
	}
}

// Sink is the content codings that an Accept-Encoding takes, best
// first (RFC 9110 §12.5.3); identity is taken unless refused.
func Sink(ae string) []string {
	type coding struct {
		name string
		q    float64
	}
	var cs []coding
	identity, star := -1.0, -1.0
	for _, part := range strings.Split(ae, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		name = strings.ToLower(strings.TrimSpace(name))
		q := 1.0
		if v, ok := strings.CutPrefix(strings.TrimSpace(params), "q="); ok {
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				q = f
			}
		}
		switch name {
		case "":
		case "identity":
			identity = q
		case "*":
			star = q
		case "x-gzip":
			cs = append(cs, coding{"gzip", q})
		case "gzip", "br":
			cs = append(cs, coding{name, q})
		}
	}
	if star > 0 {
		for _, n := range []string{"gzip", "br"} {
			if !strings.Contains(ae, n) {
				cs = append(cs, coding{n, star})
			}
		}
	}
	sort.SliceStable(cs, func(i, j int) bool { return cs[i].q > cs[j].q })
	var out []string
	for _, c := range cs {
		if c.q > 0 {
			out = append(out, c.name)
		}
	}
	if identity != 0 && !(star == 0 && identity < 0) {
		out = append(out, "identity")
	}
	if out == nil {
		out = []string{"identity"} // nothing acceptable: identity anyway (RFC 9110 §12.5.3)
	}
	return out
}

var (
	_ server.Feature     = (*Processors)(nil)
	_ server.DeliverStep = (*Route)(nil)
	_ server.FetchStep   = fetchStep{}
)
