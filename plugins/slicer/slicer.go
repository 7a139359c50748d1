package main

import (
	"context"
	"math"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/zclconf/go-cty/cty"

	"github.com/edgehost/edgehost/plugins/pluginapi"
	pluginv1 "github.com/edgehost/edgehost/proto/edgehost/plugin/v1"
)

// Plugin is the slicer. Its settings (all optional):
//
//	plugin "slicer" {
//	  min_size = "1MiB"   # objects smaller than this are not worth slicing
//	}
type Plugin struct {
	Version string
	minSize atomic.Int64
}

// Info describes the plugin and its settings.
func (p *Plugin) Info(context.Context) (*pluginapi.Info, error) {
	return &pluginapi.Info{
		Name: "slicer", Version: p.Version,
		Schema: &pluginapi.Schema{Attributes: []pluginapi.Attribute{
			{Name: "min_size", Type: cty.Number, Doc: "bytes; smaller objects are not sliced (default 0)"},
		}},
	}, nil
}

// Configure takes the plugin block.
func (p *Plugin) Configure(_ context.Context, cfg pluginapi.Config) error {
	p.minSize.Store(0)
	if v := cfg.Value; v.Type().IsObjectType() && v.Type().HasAttribute("min_size") {
		if ms := v.GetAttr("min_size"); !ms.IsNull() {
			n, _ := ms.AsBigFloat().Int64()
			p.minSize.Store(n)
		}
	}
	return nil
}

// Health is always fine: the slicer has no state to lose.
func (p *Plugin) Health(context.Context) error { return nil }

// Shutdown has nothing to release.
func (p *Plugin) Shutdown(context.Context) error { return nil }

// Decide applies the eligibility rules of DESIGN §6 to the response head
// (a HEAD response at the fetch stage, the GET response's head at the
// response stage): a 200 with no Content-Encoding, a Content-Length, a
// validator (a strong ETag or Last-Modified) that the segments can be
// checked against, for a request without a body. Every rule reads only
// the head's shape (pluginv1.DecideResponse.shape_verdict) and its size,
// so every verdict says for which sizes it holds: the host reuses it
// without asking again.
func (p *Plugin) Decide(_ context.Context, req *pluginv1.DecideRequest) (*pluginv1.DecideResponse, error) {
	no := func(reason string, sizeMin, sizeMax int64) (*pluginv1.DecideResponse, error) {
		return &pluginv1.DecideResponse{Slice: false, Reason: reason, ShapeVerdict: true, SizeMin: sizeMin, SizeMax: sizeMax}, nil
	}
	rq, rs := req.GetRequest(), req.GetResponse()
	if rq == nil || rs == nil {
		return &pluginv1.DecideResponse{Slice: false, Reason: "no request or response head"}, nil
	}
	switch rq.GetMethod() {
	case "GET", "HEAD":
	default:
		return no("method "+rq.GetMethod(), math.MinInt64, math.MaxInt64)
	}
	if rq.GetContentLength() > 0 || header(rq.GetHeaders(), "transfer-encoding") != "" {
		return no("request has a body", math.MinInt64, math.MaxInt64)
	}
	if rs.GetStatus() != 200 {
		return no("status "+strconv.Itoa(int(rs.GetStatus())), math.MinInt64, math.MaxInt64)
	}
	if ce := header(rs.GetHeaders(), "content-encoding"); ce != "" && !strings.EqualFold(ce, "identity") {
		return no("Content-Encoding "+ce, math.MinInt64, math.MaxInt64)
	}
	size := responseSize(rs)
	if size <= 0 {
		return no("no Content-Length", math.MinInt64, 0)
	}
	// Parts combine only under a strong validator (RFC 9111 §3.4): a weak
	// ETag may stay the same while the bytes change.
	if et := header(rs.GetHeaders(), "etag"); (et == "" || strings.HasPrefix(et, "W/")) && header(rs.GetHeaders(), "last-modified") == "" {
		return no("no strong ETag or Last-Modified to check segments against", math.MinInt64, math.MaxInt64)
	}
	minSize := p.minSize.Load()
	if size < minSize {
		return no("smaller than min_size", 1, minSize-1)
	}
	return &pluginv1.DecideResponse{Slice: true, ShapeVerdict: true, SizeMin: max(minSize, 1), SizeMax: math.MaxInt64}, nil
}

// responseSize is the size of the response a Decide is about: its content
// length, else its Content-Length field (as the proto says; the host
// reuses verdicts by the same size).
func responseSize(rs *pluginv1.ResponseHead) int64 {
	size := rs.GetContentLength()
	if size < 0 {
		if cl := header(rs.GetHeaders(), "content-length"); cl != "" {
			size, _ = strconv.ParseInt(cl, 10, 64)
		}
	}
	return size
}

func header(hs []*pluginv1.Header, name string) string {
	for _, h := range hs {
		if strings.EqualFold(h.GetName(), name) && len(h.GetValues()) > 0 {
			return h.GetValues()[0]
		}
	}
	return ""
}

var (
	_ pluginapi.Plugin = (*Plugin)(nil)
	_ pluginapi.Slicer = (*Plugin)(nil)
)
