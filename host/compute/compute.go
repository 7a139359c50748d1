// Package compute is the compute feature on the host's side (DESIGN §8):
// routes answered by tenants' programs, one tenant (`compute =
// tenant.NAME`) or a chain (`chain = ["fetch", tenant.a, tenant.b]`). It
// attaches to the state machine as a Source (host/server feature.go), so a
// program's answer is cached, coalesced and delivered like any object:
// stored only when its header allows it (the plugin turns the program's
// ttl into Cache-Control, and no ttl into no-store), GET and HEAD only;
// other methods reach the program uncached.
//
// A request crosses to the compute plugin that runs the tenant
// (pluginapi.Compute.Handle) with its transaction id and self-request
// depth, so a program's own fetches (to the self socket) are logged as its
// children and stopped at limits.max_depth. In a chain each stage's
// response is the next stage's request body; a chain that starts with
// "fetch" fetches from the route's backend in the host, holding no
// program's slot while the origin answers. A stage that answers an error
// (status ≥ 400) ends the chain with its answer.
//
// The plugin bounds each program (request time, memory, response size,
// queue) and answers its failures itself (504, 500, 503); the host adds an
// overall deadline and a cap on what it buffers, so that a plugin that
// misbehaves cannot hold a request or the host's memory.
package compute

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/edgehost/edgehost/host/cache"
	"github.com/edgehost/edgehost/host/config"
	"github.com/edgehost/edgehost/host/server"
	"github.com/edgehost/edgehost/plugins/pluginapi"
	pluginv1 "github.com/edgehost/edgehost/proto/edgehost/plugin/v1"
)

// Plugins gives the compute plugins by name (pluginhost.Manager).
type Plugins interface {
	Compute(name string) (pluginapi.Compute, error)
}

// Options construct the feature.
type Options struct {
	Logger  *slog.Logger
	Plugins Plugins // nil: no plugins (every compute route answers 503)
	// Timeout bounds a whole request through a route (all stages); 0
	// means DefaultTimeout. The plugin's own max_request_time is shorter.
	Timeout time.Duration
	// MaxBody caps a stage's response the host buffers; 0 means
	// DefaultMaxBody.
	MaxBody int64
}

// Defaults of Options.
const (
	DefaultTimeout = 60 * time.Second
	DefaultMaxBody = 64 << 20
)

// Compute is the feature. It holds no state of its own: a route's stages
// are compiled when a config is attached.
type Compute struct {
	log     *slog.Logger
	plugins Plugins
	timeout time.Duration
	maxBody int64
}

// New returns the feature; it starts nothing.
func New(o Options) *Compute {
	c := &Compute{log: o.Logger, plugins: o.Plugins, timeout: o.Timeout, maxBody: o.MaxBody}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	if c.maxBody <= 0 {
		c.maxBody = DefaultMaxBody
	}
	return c
}

// Attach gives a compute route its source.
func (c *Compute) Attach(_ *config.Config, route *config.Route) (server.Steps, error) {
	if route.Compute == nil {
		return server.Steps{}, nil
	}
	return server.Steps{Source: &chain{c: c, stages: route.Compute.Stages}}, nil
}

// chain is a route's source: its stages run in order.
type chain struct {
	c      *Compute
	stages []config.Stage
}

// answer is one stage's response, body buffered.
type answer struct {
	status int
	header http.Header
	body   []byte
}

// Fetch runs the stages for r and returns the last answer as an object,
// stored when its header allows (server.Txn.Object decides, by the
// rules of an origin's answer). stale is not used: a program's answer is
// produced again, not revalidated.
func (ch *chain) Fetch(ctx context.Context, tx *server.Txn, r *http.Request, key string, _ *cache.Object) (*cache.Object, error) {
	ctx, cancel := context.WithTimeout(ctx, ch.c.timeout)
	defer cancel()
	reqTime := time.Now()
	var in *answer // the previous stage's answer: the next one's body
	for i, st := range ch.stages {
		var a *answer
		var err error
		if st.Fetch {
			a, err = ch.c.origin(ctx, tx, r)
		} else {
			a, err = ch.c.run(ctx, tx, r, st.Tenant, in, i == 0)
		}
		if err != nil {
			return nil, err
		}
		in = a
		if a.status >= 400 {
			break
		}
	}
	return tx.Object(r, key, in.status, in.header, in.body, reqTime, time.Now()), nil
}

// origin is a chain's "fetch" stage: the route's backend, through the host.
func (c *Compute) origin(ctx context.Context, tx *server.Txn, r *http.Request) (*answer, error) {
	resp, err := tx.Origin(ctx, r)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := c.readBody(resp.Body)
	if err != nil {
		return nil, server.NewStatusError(http.StatusBadGateway, fmt.Errorf("origin body: %w", err))
	}
	return &answer{status: resp.StatusCode, header: resp.Header, body: body}, nil
}

// run has tenant t answer r; prev, when set, is its request body (a chain's
// earlier stage), else the client's body when first.
func (c *Compute) run(ctx context.Context, tx *server.Txn, r *http.Request, t *config.Tenant, prev *answer, first bool) (*answer, error) {
	if c.plugins == nil {
		return nil, server.NewStatusError(http.StatusServiceUnavailable, errors.New("no plugin manager"))
	}
	h, err := c.plugins.Compute(t.Plugin)
	if err != nil {
		return nil, server.NewStatusError(http.StatusServiceUnavailable, fmt.Errorf("tenant %s: %w", t.Name, err))
	}
	head := &pluginv1.RequestHead{Method: r.Method, Url: r.URL.RequestURI(), Host: r.Host, Txid: tx.ID.String(),
		Tenant: t.Name, Depth: uint32(tx.Depth()), ContentLength: -1}
	header := r.Header
	var body io.Reader
	switch {
	case prev != nil:
		header = r.Header.Clone()
		header.Del("Content-Encoding")
		header.Set("Content-Type", prev.header.Get("Content-Type"))
		header.Set("Content-Length", strconv.Itoa(len(prev.body)))
		header.Set("Edgehost-Stage-Status", strconv.Itoa(prev.status))
		body, head.ContentLength = bytes.NewReader(prev.body), int64(len(prev.body))
	case first && r.Body != nil && r.Body != http.NoBody:
		body, head.ContentLength = r.Body, r.ContentLength
	}
	for k, vs := range header {
		head.Headers = append(head.Headers, &pluginv1.Header{Name: k, Values: vs})
	}
	resp, err := h.Handle(ctx, &pluginapi.Request{Head: head, Body: body})
	if err != nil {
		return nil, server.NewStatusError(handleStatus(ctx, err), fmt.Errorf("tenant %s: %w", t.Name, err))
	}
	defer resp.Body.Close()
	out, err := c.readBody(resp.Body)
	if err != nil {
		return nil, server.NewStatusError(handleStatus(ctx, err), fmt.Errorf("tenant %s: response body: %w", t.Name, err))
	}
	hdr := make(http.Header, len(resp.Head.GetHeaders()))
	for _, f := range resp.Head.GetHeaders() {
		hdr[http.CanonicalHeaderKey(f.GetName())] = f.GetValues()
	}
	st := int(resp.Head.GetStatus())
	if st < 200 || st > 999 {
		return nil, server.NewStatusError(http.StatusBadGateway, fmt.Errorf("tenant %s answered status %d", t.Name, st))
	}
	return &answer{status: st, header: hdr, body: out}, nil
}

// readBody reads a stage's body up to the feature's cap.
func (c *Compute) readBody(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, c.maxBody+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > c.maxBody {
		return nil, fmt.Errorf("larger than %d bytes", c.maxBody)
	}
	return b, nil
}

// handleStatus is the client's status for a failed plugin call: past the
// deadline 504, a missing tenant 404 would leak config, so 503 like a
// plugin that is down; a broken body 502.
func handleStatus(ctx context.Context, err error) int {
	if ctx.Err() != nil || status.Code(err) == codes.DeadlineExceeded {
		return http.StatusGatewayTimeout
	}
	switch status.Code(err) {
	case codes.Aborted, codes.DataLoss:
		return http.StatusBadGateway
	}
	return http.StatusServiceUnavailable
}

var (
	_ server.Feature = (*Compute)(nil)
	_ server.Source  = (*chain)(nil)
)
